# Evaluate nix/image.nix with stand-ins for the few nixpkgs functions it
# calls and return the arguments it hands to dockerTools.buildLayeredImage.
# nix/check.py compares the image config in them with image-contract.json.
# Needs nothing but Nix itself.
let
  stand-in = name: "/nix/store/00000000000000000000000000000000-${name}";
  pkgs = {
    dockerTools = {
      # The arguments, plus the passwd/group lines and the zoneinfo script
      # that the stand-ins below would otherwise hide behind their outPath.
      buildLayeredImage = args: args // {
        standIns = map (c: removeAttrs c [ "outPath" ]) (builtins.filter builtins.isAttrs args.contents);
      };
      caCertificates = stand-in "ca-certificates";
      fakeNss.override = lines: lines // { outPath = stand-in "fake-nss"; };
    };
    runCommand = name: _env: script: { inherit name script; outPath = stand-in name; };
    tzdata = stand-in "tzdata";
  };
  cargoToml = builtins.fromTOML (builtins.readFile ../../Cargo.toml);
in
import ../image.nix {
  inherit pkgs;
  contract = builtins.fromJSON (builtins.readFile ../image-contract.json);
  ferry = stand-in "ferry";
  architecture = "amd64";
  revision = "0123456789abcdef0123456789abcdef01234567";
  created = "2026-08-03T12:00:00Z";
  inherit (cargoToml.package) version description repository license;
}
