#!/usr/bin/env python3
"""A local stand-in for the official Garage image (dxflrs/garage), which no registry
here can supply: the Garage binary that `nox` builds from crates.io
(target/tools/garage-VERSION/bin/garage, see `garage()` in noxfile.py) packed the way
the official image is, FROM scratch with `/garage` alone, `CMD ["/garage", "server"]`
and its two environment variables. The official binary is static; this one is linked
against glibc, so its shared libraries come along.

Written as a docker-archive and loaded with `docker load`, like the Ferry test image:

    python tests/deploy/garage_image.py target/tools/garage-2.5.0/bin/garage
"""

import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_image import _shared_libraries, _tarinfo, docker_archive  # noqa: E402
from dockerutil import ROOT, run  # noqa: E402

GARAGE_REPO = "ferry-test/garage"


def garage_binary():
    """The binary the nox sessions pass in FERRY_GARAGE_BIN, else the one under
    target/tools (any version, newest first)."""
    given = os.environ.get("FERRY_GARAGE_BIN")
    if given:
        return Path(given)
    found = sorted((ROOT / "target" / "tools").glob("garage-*/bin/garage"), reverse=True)
    if not found:
        raise FileNotFoundError("no Garage binary: run a nox session that builds it (noxfile.py garage())")
    return found[0]


def garage_version(binary):
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    # "garage cargo:2.5.0 [features: ...]" (from crates.io), "garage v2.5.0 [...]" (a release)
    m = re.search(r"(\d+\.\d+\.\d+)", out)
    if not m:
        raise RuntimeError(f"{binary} --version printed no version: {out!r}")
    return m.group(1)


def garage_rootfs_tar(binary):
    """One reproducible layer: /garage, its shared libraries, an empty /tmp."""
    files = {"garage": (Path(binary).read_bytes(), 0o755)}
    for lib in _shared_libraries(binary):
        files[lib.lstrip("/")] = (Path(lib).resolve().read_bytes(), 0o755)
    dirs = {"tmp": 0o1777}
    for path in files:
        parent = os.path.dirname(path)
        while parent:
            dirs.setdefault(parent, 0o755)
            parent = os.path.dirname(parent)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(set(dirs) | set(files)):
            if path in files:
                content, mode = files[path]
                tar.addfile(_tarinfo(path, tarfile.REGTYPE, mode, size=len(content)), io.BytesIO(content))
            else:
                tar.addfile(_tarinfo(path + "/", tarfile.DIRTYPE, dirs[path]))
    return buf.getvalue()


def garage_image_config(version):
    return {
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
        "os": "linux",
        "created": "1970-01-01T00:00:01Z",
        "config": {
            "Env": ["RUST_BACKTRACE=1", "RUST_LOG=garage=info"],
            "Cmd": ["/garage", "server"],
            "Labels": {
                "org.opencontainers.image.title": "garage",
                "org.opencontainers.image.version": version,
                "org.opencontainers.image.description":
                    "test stand-in for dxflrs/garage, built from crates.io by tests/deploy/garage_image.py",
            },
        },
        "history": [{"created": "1970-01-01T00:00:01Z", "created_by": "tests/deploy/garage_image.py"}],
    }


def build_garage_image(binary=None):
    """Pack the Garage binary and `docker load` it; returns the image reference."""
    binary = Path(binary or garage_binary())
    version = garage_version(binary)
    ref = f"{GARAGE_REPO}:{version}"
    archive = docker_archive(ref, garage_rootfs_tar(binary), garage_image_config(version))
    run(["docker", "load"], input=archive, text=False)
    return ref


if __name__ == "__main__":
    print(build_garage_image(sys.argv[1] if len(sys.argv) > 1 else None))
