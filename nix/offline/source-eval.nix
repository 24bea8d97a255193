# Realise nix/source.nix of the tree at `root` with nixpkgs' lib and crane's
# own fileset functions, and return the store path it produces. Used by
# nix/check.py --nixpkgs-lib DIR --crane DIR.
{ libDir, craneDir, root }:
let
  lib = import ./lib-shim.nix libDir;
  craneFileset = name: import (craneDir + "/lib/fileset/${name}.nix");
  fileset = {
    cargoTomlAndLock = craneFileset "cargoTomlAndLock" { inherit lib; };
    rust = craneFileset "rust" { inherit lib; };
    toml = craneFileset "toml" { inherit lib; };
  };
  craneLib.fileset = fileset // {
    commonCargoSources = craneFileset "commonCargoSources" { inherit fileset lib; };
  };
  src = import (root + "/nix/source.nix") { inherit lib craneLib; };
in
"${src}"
