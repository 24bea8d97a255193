# Evaluate nix/module.nix with nixpkgs' lib.evalModules and stand-in option
# declarations for the parts of NixOS it sets, and return what it produces.
# Used by nix/check.py --nixpkgs-lib DIR.
{ libDir, settings }:
let
  lib = import ./lib-shim.nix libDir;
  anyAttrs = lib.mkOption {
    type = lib.types.attrsOf lib.types.anything;
    default = { };
  };
  nixosStandIns = {
    options = {
      assertions = lib.mkOption {
        type = lib.types.listOf lib.types.anything;
        default = [ ];
      };
      users = anyAttrs;
      systemd = anyAttrs;
      networking = anyAttrs;
    };
  };
  ferry = {
    type = "derivation";
    name = "ferry-0.1.0";
    outPath = "/nix/store/00000000000000000000000000000000-ferry-0.1.0";
    meta.mainProgram = "ferry";
  };
  evaluated = lib.evalModules {
    modules = [
      (import ../module.nix { self.packages.x86_64-linux.ferry = ferry; })
      nixosStandIns
      {
        _module.args.pkgs.stdenv.hostPlatform.system = "x86_64-linux";
        services.ferry = settings;
      }
    ];
  };
  inherit (evaluated) config;
in
{
  inherit (config) assertions users networking;
  service = config.systemd.services.ferry or null;
  tmpfiles = config.systemd.tmpfiles.rules or [ ];
}
