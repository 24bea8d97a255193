# The build's source: exactly the files the build needs, so that editing the
# docs, the deployment files or the Nix files does not rebuild Ferry.
#   - the Cargo sources: every *.rs and *.toml file, Cargo.toml and Cargo.lock
#     (crane's commonCargoSources), which covers build.rs, src/ and tests/;
#   - the directories in source.json: migrations/ (sqlx::migrate!), templates/
#     (askama), static/ (CSS and JS embedded with include_str!) and
#     tests/fixtures/ (the first-schema data the upgrade test loads).
# nix/check.py copies the same set from the same list into a temporary
# directory and runs `cargo build --locked` there.
{ lib, craneLib }:
let
  root = ../.;
  inherit (builtins.fromJSON (builtins.readFile ./source.json)) directories;
in
lib.fileset.toSource {
  inherit root;
  fileset = lib.fileset.unions (
    [ (craneLib.fileset.commonCargoSources root) ]
    ++ map (dir: root + "/${dir}") directories
  );
}
