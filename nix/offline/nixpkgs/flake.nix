# A stand-in for nixpkgs, for `nix flake check --no-build` where nixpkgs
# cannot be fetched (nix/check.py, step "flake"). It has only the attributes
# Ferry's flake uses, with the real names; a function takes a subset of the
# real function's arguments and no others, so a misspelt argument fails here
# as it would against nixpkgs. Every package is a real derivation (its .drv is
# written to the store) whose builder fails: evaluation only, never a build.
{
  description = "Offline stand-in for the parts of nixpkgs that Ferry's flake uses";

  outputs = { self }:
    let
      lib = import ./lib.nix;
      systems = [ "x86_64-linux" "aarch64-linux" "armv7l-linux" ];
      pkgsFor = system: import ./pkgs.nix { inherit lib system pkgsFor; };
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs systems pkgsFor;
      # Used by nix/check.py to tell a stand-in from the real thing.
      standIn = self.outPath;
    };
}
