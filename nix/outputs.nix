# Everything the flake outputs for one build system: the package, the images
# (native and cross-compiled), the checks, the publish apps and the dev shell.
{ nixpkgs, crane, system, contract, revision, created }:
let
  pkgs = nixpkgs.legacyPackages.${system};
  inherit (pkgs) lib;

  craneLib = crane.mkLib pkgs;

  # Only what the build needs: see nix/source.nix and nix/source.json.
  src = import ./source.nix { inherit lib craneLib; };

  cargoToml = builtins.fromTOML (builtins.readFile ../Cargo.toml);

  build = buildCraneLib: import ./ferry.nix {
    inherit src revision;
    inherit (pkgs) cargo-auditable;
    craneLib = buildCraneLib;
    meta = {
      inherit (cargoToml.package) description;
      homepage = cargoToml.package.repository;
      license = lib.licenses.asl20;
      mainProgram = "ferry";
    };
  };

  native = build craneLib;

  # The image architectures Ferry ships, by OCI name. The one matching this
  # build system is built natively; the others are cross-compiled through
  # nixpkgs' pkgsCross sets (gcc, glibc and the Rust standard library for the
  # target come from nixpkgs; crane sets CARGO_BUILD_TARGET, the linker and
  # CC_<target> by itself when given a cross package set).
  targets = {
    amd64 = { system = "x86_64-linux"; cross = "gnu64"; platform = { architecture = "amd64"; }; };
    arm64 = { system = "aarch64-linux"; cross = "aarch64-multiplatform"; platform = { architecture = "arm64"; variant = "v8"; }; };
    armv7 = { system = "armv7l-linux"; cross = "armv7l-hf-multiplatform"; platform = { architecture = "arm"; variant = "v7"; }; };
  };

  ferryFor = target:
    if target.system == system
    then native.ferry
    else (build (crane.mkLib pkgs.pkgsCross.${target.cross})).ferry;

  # The image tooling and its data files (CA bundle, tzdata, passwd) come from
  # the build system's package set, which the binary cache has; only the
  # binary and its runtime closure (glibc, libgcc) are for the target.
  imageFor = _arch: target: import ./image.nix {
    inherit pkgs contract revision created;
    ferry = ferryFor target;
    inherit (target.platform) architecture;
    inherit (cargoToml.package) version description repository license;
  };

  images = lib.mapAttrs imageFor targets;

  nativeArch = lib.findFirst (arch: targets.${arch}.system == system) null (lib.attrNames targets);

  publishWith = name: archs: import ./publish.nix {
    inherit pkgs name;
    images = map (arch: { inherit arch; inherit (targets.${arch}) platform; image = images.${arch}; }) archs;
    defaultTag = cargoToml.package.version;
  };

  publish = publishWith "ferry-publish" [ "amd64" "arm64" ];
  publishWithArmv7 = publishWith "ferry-publish-with-armv7" [ "amd64" "arm64" "armv7" ];
  # The same script without images of its own: the release workflow builds
  # each image on its own runner and names the archives in FERRY_PUBLISH_IMAGES.
  publishPrebuilt = publishWith "ferry-publish-prebuilt" [ ];
in
{
  packages = {
    inherit (native) ferry;
    default = native.ferry;
    image = images.${nativeArch};
    image-amd64 = images.amd64;
    image-arm64 = images.arm64;
    image-armv7 = images.armv7;
    ferry-arm64 = ferryFor targets.arm64;
    ferry-armv7 = ferryFor targets.armv7;
    inherit publish;
  };

  checks = {
    inherit (native) ferry clippy nextest fmt;
    image = images.${nativeArch};
  };

  apps = {
    publish = {
      type = "app";
      program = lib.getExe publish;
      meta.description = "Push the amd64 and arm64 images and a multi-arch manifest with skopeo";
    };
    publish-with-armv7 = {
      type = "app";
      program = lib.getExe publishWithArmv7;
      meta.description = "Like publish, with the 32-bit ARM (armv7) image as well";
    };
    publish-prebuilt = {
      type = "app";
      program = lib.getExe publishPrebuilt;
      meta.description = "Push prebuilt image archives named in FERRY_PUBLISH_IMAGES and their index";
    };
  };

  devShell = import ./devshell.nix {
    inherit pkgs craneLib;
    checks = { inherit (native) clippy nextest fmt; };
  };
}
