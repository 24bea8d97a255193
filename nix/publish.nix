# `nix run .#publish -- REPOSITORY [TAG]`: see nix/publish.sh. Referencing the
# images here makes Nix build them (cross-compiling where needed) first.
{ pkgs, name, images, defaultTag }:
let
  line = { arch, platform, image }:
    "${arch} ${platform.architecture} ${platform.variant or "-"} ${image}";
in
pkgs.writeShellApplication {
  inherit name;
  runtimeInputs = [ pkgs.skopeo pkgs.jq pkgs.coreutils pkgs.gzip ];
  text = ''
    FERRY_PUBLISH_IMAGES="''${FERRY_PUBLISH_IMAGES:-${builtins.concatStringsSep "\n" (map line images)}}"
    FERRY_PUBLISH_DEFAULT_TAG=${pkgs.lib.escapeShellArg defaultTag}
  '' + builtins.readFile ./publish.sh;
  meta.description = "Push Ferry's images and a multi-arch manifest to a registry";
}
