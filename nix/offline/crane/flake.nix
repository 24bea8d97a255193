# A stand-in for crane (github:ipetkov/crane), for `nix flake check
# --no-build` offline (nix/check.py, step "flake"): mkLib with the functions
# Ferry's flake calls. Like crane's, they take any derivation arguments, so
# only the names of the functions and of crane's own arguments are checked;
# what crane does with them is not.
{
  description = "Offline stand-in for the parts of crane that Ferry's flake uses";

  outputs = { self }: {
    mkLib = pkgs:
      let
        inherit (pkgs) lib;
        package = suffix: args: derivation
          {
            name = "${args.pname or "crate"}-${args.version or "0"}${suffix}";
            inherit (pkgs) system;
            builder = "/bin/sh";
            args = [ "-c" "echo 'nix/offline: a stand-in for evaluation only' >&2; exit 1" ];
          } // { meta = args.meta or { }; };
        needs = fn: names: args:
          let missing = builtins.filter (n: !(args ? ${n})) names; in
          if missing == [ ] then args
          else throw "crane stand-in: ${fn} needs ${builtins.concatStringsSep ", " missing}";
        isSource = src: builtins.isPath src || (builtins.isString src && builtins.pathExists "${src}/Cargo.toml");
      in
      {
        crateNameFromCargoToml = { src ? null, cargoToml ? src + "/Cargo.toml" }:
          let toml = builtins.fromTOML (builtins.readFile cargoToml); in
          { inherit (toml.package) version; pname = toml.package.name; };
        buildDepsOnly = args: assert isSource (needs "buildDepsOnly" [ "src" ] args).src; package "-deps" args;
        buildPackage = args: package "" (needs "buildPackage" [ "src" "cargoArtifacts" ] args);
        cargoClippy = args: package "-clippy" (needs "cargoClippy" [ "src" "cargoArtifacts" ] args);
        cargoNextest = args: package "-nextest" (needs "cargoNextest" [ "src" "cargoArtifacts" ] args);
        cargoFmt = args: package "-fmt" (needs "cargoFmt" [ "src" ] args);
        devShell = { checks ? { }, packages ? [ ], ... }:
          assert builtins.all lib.isDerivation (packages ++ builtins.attrValues checks);
          package "-shell" { pname = "ferry-dev"; };
        fileset.commonCargoSources = root: lib.fileset.unions [ (root + "/Cargo.toml") (root + "/Cargo.lock") ];
        standIn = self.outPath;
      };
  };
}
