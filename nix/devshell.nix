# `nix develop`: the Rust toolchain (from crane: cargo, rustc, clippy,
# rustfmt), rust-analyzer, sqlx-cli, watchexec for hot reload, SQLite,
# PostgreSQL (the test harness starts a throwaway cluster from its binaries),
# nginx, nox, skopeo and the Nix formatter used by nix/check.py.
{ pkgs, craneLib, checks }:
let
  # The hot-reload loop: rebuild and restart `ferry serve` whenever the code,
  # templates, assets, migrations or manifest change.
  ferryWatch = pkgs.writeShellApplication {
    name = "ferry-watch";
    runtimeInputs = [ pkgs.watchexec ];
    text = ''
      export FERRY_LISTEN="''${FERRY_LISTEN:-127.0.0.1:8080}"
      export FERRY_DATA_DIR="''${FERRY_DATA_DIR:-''${XDG_DATA_HOME:-$HOME/.local/share}/ferry-dev}"
      mkdir -p "$FERRY_DATA_DIR"
      echo "ferry-watch: http://$FERRY_LISTEN, data in $FERRY_DATA_DIR"
      exec watchexec --restart --stop-signal SIGTERM \
        --watch src --watch templates --watch static --watch migrations \
        --watch Cargo.toml --watch Cargo.lock --watch build.rs \
        -- cargo run --locked -- serve "$@"
    '';
  };
in
craneLib.devShell {
  inherit checks;

  packages = [
    pkgs.rust-analyzer
    pkgs.sqlx-cli
    pkgs.watchexec
    ferryWatch
    (pkgs.lib.getBin pkgs.sqlite)
    pkgs.postgresql
    pkgs.nginx
    pkgs.python3
    pkgs.python3Packages.nox
    pkgs.skopeo
    pkgs.jq
    pkgs.nixpkgs-fmt
  ];

  # rust-analyzer finds the standard library's sources here.
  RUST_SRC_PATH = "${pkgs.rustPlatform.rustLibSrc}";
}
