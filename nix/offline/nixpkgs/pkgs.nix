# legacyPackages.${system} of the stand-in nixpkgs: the packages and builders
# Ferry's flake names. Arguments of the builders are the real ones' names.
{ lib, system, pkgsFor }:
let
  # A derivation that evaluates like a package and fails if anyone builds it.
  package = name: extra: derivation
    {
      inherit name system;
      builder = "/bin/sh";
      args = [ "-c" "echo 'nix/offline: a stand-in for evaluation only' >&2; exit 1" ];
    } // { meta = { }; } // extra;
  tool = name: package name { meta.mainProgram = name; };

  # Like a function with these formals and no `...`: a required argument
  # missing, or one the real function does not take, is an error.
  accepts = fn: required: optional: args:
    let
      unknown = builtins.filter (n: !(builtins.elem n (required ++ optional))) (builtins.attrNames args);
      missing = builtins.filter (n: !(args ? ${n})) required;
    in
    if unknown != [ ] then throw "'${fn}' called with unexpected argument '${builtins.head unknown}'"
    else if missing != [ ] then throw "'${fn}' called without required argument '${builtins.head missing}'"
    else args;

  # pkgs.pkgsCross.NAME: the package set for another host platform.
  crossSystems = {
    gnu64 = "x86_64-linux";
    aarch64-multiplatform = "aarch64-linux";
    armv7l-hf-multiplatform = "armv7l-linux";
  };
in
{
  inherit lib system;
  stdenv.hostPlatform.system = system;
  pkgsCross = builtins.mapAttrs (_: pkgsFor) crossSystems;

  coreutils = tool "coreutils";
  gzip = tool "gzip";
  jq = tool "jq";
  skopeo = tool "skopeo";
  tzdata = package "tzdata" { };
  watchexec = tool "watchexec";
  rust-analyzer = tool "rust-analyzer";
  sqlx-cli = package "sqlx-cli" { meta.mainProgram = "sqlx"; };
  sqlite = package "sqlite" { bin = package "sqlite-bin" { }; };
  postgresql = tool "postgresql";
  nginx = tool "nginx";
  python3 = tool "python3";
  python3Packages.nox = tool "nox";
  nixpkgs-fmt = tool "nixpkgs-fmt";
  cargo-auditable = tool "cargo-auditable";
  rustPlatform.rustLibSrc = package "rust-lib-src" { };

  runCommand = name: env: script:
    assert builtins.isAttrs env && builtins.isString script;
    package name { };

  # pkgs/build-support/trivial-builders: writeShellApplication's arguments.
  writeShellApplication = args:
    let
      a = accepts "writeShellApplication" [ "name" "text" ] [
        "runtimeInputs"
        "runtimeEnv"
        "meta"
        "passthru"
        "checkPhase"
        "excludeShellChecks"
        "extraShellCheckFlags"
        "bashOptions"
        "inheritPath"
        "derivationArgs"
      ]
        args;
    in
    assert builtins.isString a.text && builtins.all lib.isDerivation (a.runtimeInputs or [ ]);
    package a.name ({ meta = (a.meta or { }) // { mainProgram = a.name; }; } // (a.passthru or { }));

  dockerTools = {
    caCertificates = package "ca-certificates" { };
    # fakeNss is a package with .override of its two arguments.
    fakeNss = package "fake-nss" {
      override = args:
        let a = accepts "fakeNss.override" [ ] [ "extraPasswdLines" "extraGroupLines" ] args; in
        assert builtins.all builtins.isString ((a.extraPasswdLines or [ ]) ++ (a.extraGroupLines or [ ]));
        package "fake-nss" { };
    };
    # pkgs/build-support/docker: arguments of buildLayeredImage (through
    # streamLayeredImage) in nixpkgs 26.05.
    buildLayeredImage = args:
      let
        a = accepts "buildLayeredImage" [ "name" ] [
          "tag"
          "fromImage"
          "contents"
          "config"
          "architecture"
          "created"
          "mtime"
          "uid"
          "gid"
          "uname"
          "gname"
          "maxLayers"
          "extraCommands"
          "fakeRootCommands"
          "enableFakechroot"
          "includeStorePaths"
          "includeNixDB"
          "passthru"
          "meta"
          "compressor"
        ]
          args;
      in
      assert builtins.isList (a.contents or [ ]) && builtins.isAttrs (a.config or { });
      assert builtins.elem (a.architecture or null) [ null "amd64" "arm64" "arm" ];
      package "${a.name}.tar.gz" ({ imageTag = a.tag or null; } // (a.passthru or { }));
  };
}
