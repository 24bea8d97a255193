# The crate, built with crane, and the checks that reuse its dependency build.
# `craneLib` may come from a cross package set: crane then sets the Cargo
# target, linker and C compiler (ring and the bundled SQLite need one) itself.
# `cargo-auditable` is the build machine's (it runs during the build).
{ craneLib, src, revision, meta, cargo-auditable }:
let
  commonArgs = {
    inherit src;
    inherit (craneLib.crateNameFromCargoToml { inherit src; }) pname version;
    strictDeps = true;
    cargoExtraArgs = "--locked";
  };

  # The dependencies, built once in their own derivation from a dummy source:
  # editing Ferry's code, templates, CSS or SQL does not rebuild them. Nothing
  # that changes per commit (such as the revision) may go into commonArgs.
  cargoArtifacts = craneLib.buildDepsOnly commonArgs;
in
{
  inherit cargoArtifacts;

  ferry = craneLib.buildPackage (commonArgs // {
    inherit cargoArtifacts meta;
    # `cargo auditable build` embeds the crate graph (names, versions, sources)
    # in the binary, so `cargo audit bin`, Trivy and Grype can check the
    # shipped binary. nixpkgs' buildRustPackage does this by default; crane
    # does not. It wraps rustc for Ferry's own crate only (via
    # RUSTC_WORKSPACE_WRAPPER), so the dependency build above is reused.
    # crane's default is `cargoWithProfile build`, which would put --release
    # before `build`; the profile is spelled out instead (crane's default
    # CARGO_PROFILE is release).
    cargoBuildCommand = "cargo auditable build --release";
    nativeBuildInputs = [ cargo-auditable ];
    # Read by build.rs for `ferry --version` and the build info.
    FERRY_GIT_REVISION = revision;
    # The tests run once, in the `nextest` check below (and in CI's nox
    # sessions with PostgreSQL and Chromium), not again in every package build.
    doCheck = false;
  });

  clippy = craneLib.cargoClippy (commonArgs // {
    inherit cargoArtifacts;
    cargoClippyExtraArgs = "--all-targets -- --deny warnings";
  });

  # The build sandbox has neither PostgreSQL nor a browser: the test harness
  # skips those suites when FERRY_TEST_SQLITE_ONLY is set and runs the rest
  # (unit tests and the SQLite integration tests against a real server).
  nextest = craneLib.cargoNextest (commonArgs // {
    inherit cargoArtifacts;
    FERRY_TEST_SQLITE_ONLY = "1";
  });

  fmt = craneLib.cargoFmt { inherit src; };
}
