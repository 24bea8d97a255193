# The build's source: exactly the files the build needs, so that editing the
# docs, the deployment files or the Nix files does not rebuild Ferry.
#   - the Cargo sources: every *.rs and *.toml file, Cargo.toml and Cargo.lock
#     (crane's commonCargoSources), which covers build.rs, src/ and tests/;
#   - the directories in source.json: migrations/ (sqlx::migrate!), templates/
#     (askama), static/ (CSS and JS embedded with include_str!) and
#     tests/fixtures/ (the first-schema data the upgrade test loads);
#   - the single files in source.json: docs/openapi.json (served at
#     /api/openapi.json, embedded with include_str!).
# nix/check.py copies the same set from the same list into a temporary
# directory and runs `cargo build --locked` there.
{ lib, craneLib }:
let
  root = ../.;
  inherit (builtins.fromJSON (builtins.readFile ./source.json)) directories files;
in
lib.fileset.toSource {
  inherit root;
  fileset = lib.fileset.unions (
    [ (craneLib.fileset.commonCargoSources root) ]
    ++ map (dir: root + "/${dir}") directories
    ++ map (file: root + "/${file}") files
  );
}
