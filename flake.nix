{
  description = "Ferry, a self-hosted drop box: package, container images, checks, dev shell and NixOS module";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    crane.url = "github:ipetkov/crane";
  };

  outputs = { self, nixpkgs, crane }:
    let
      inherit (nixpkgs) lib;

      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = lib.genAttrs systems;

      # The image contract (user, port, paths, env, healthcheck) has one home,
      # shared with the compose files, the tests and the docs.
      contract = builtins.fromJSON (builtins.readFile ./nix/image-contract.json);

      # Build info baked into the binary and the image labels.
      revision = self.rev or self.dirtyRev or "dirty";

      # The commit's date (YYYYMMDDHHMMSS) as the image creation date, so the
      # same commit always gives the same image.
      created =
        let
          date = self.lastModifiedDate or "19700101000001";
          part = start: len: builtins.substring start len date;
        in
        "${part 0 4}-${part 4 2}-${part 6 2}T${part 8 2}:${part 10 2}:${part 12 2}Z";

      perSystem = forAllSystems (system: import ./nix/outputs.nix {
        inherit nixpkgs crane system contract revision created;
      });
    in
    {
      packages = forAllSystems (system: perSystem.${system}.packages);

      checks = forAllSystems (system: perSystem.${system}.checks);

      apps = forAllSystems (system: perSystem.${system}.apps);

      devShells = forAllSystems (system: {
        default = perSystem.${system}.devShell;
      });

      formatter = forAllSystems (system: nixpkgs.legacyPackages.${system}.nixpkgs-fmt);

      nixosModules.default = import ./nix/module.nix { inherit self; };
    };
}
