#!/usr/bin/env python3
"""What a Ferry release is made of, in one place: the release workflow
(.github/workflows/release.yml) runs these commands, and the tests in
tests/deploy/test_publish.py and the nox session `audit` run the same ones.

  check-version vX.Y.Z     the tag names the version in Cargo.toml
  tags vX.Y.Z COMMIT       the tags of the multi-arch index, one per line: X.Y.Z
                           first, then X.Y, X and latest (stable versions only),
                           then sha-COMMIT (12 hex digits)
  sbom FILE [--target T]   a CycloneDX 1.5 SBOM (JSON) of the ferry binary with
                           cargo-cyclonedx: the crates it is built from, without
                           build-time and dev dependencies
  files vX.Y.Z DIR         the files attached to the GitHub release: an SBOM per
                           image (ferry-ARCH.cdx.json; the crate graph differs a
                           little between targets), compose.yaml and env.example with FERRY_TAG defaulting
                           to X.Y.Z, and ferry-compose-X.Y.Z.tar.gz (compose/ and
                           the nginx/docker files compose.nginx.yaml mounts)

Only the standard library; needs cargo and cargo-cyclonedx for `sbom`/`files`.
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# SemVer without build metadata: a Docker tag cannot contain "+".
RELEASE_TAG = re.compile(r"^v(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
                         r"(?:-(?P<pre>[0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*))?$")
# The Rust target of the binary in each image the release publishes.
IMAGE_TARGETS = {
    "amd64": "x86_64-unknown-linux-gnu",
    "arm64": "aarch64-unknown-linux-gnu",
    "armv7": "armv7-unknown-linux-gnueabihf",
}
# The line in compose.yaml and .env.example that a release fills in.
COMPOSE_TAG_DEFAULT = "${FERRY_TAG:-latest}"
ENV_TAG_DEFAULT = "#FERRY_TAG=latest"


class ReleaseError(Exception):
    pass


def parse_tag(ref):
    m = RELEASE_TAG.match(ref.removeprefix("refs/tags/"))
    if not m:
        raise ReleaseError(f"{ref!r} is not a release tag: expected vMAJOR.MINOR.PATCH[-PRERELEASE], e.g. v1.2.3 or v1.3.0-rc.1")
    return m


def version_of(ref):
    return parse_tag(ref).group(0)[1:]


def cargo_version():
    with open(ROOT / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["package"]["version"]


def check_version(ref):
    version, crate = version_of(ref), cargo_version()
    if version != crate:
        raise ReleaseError(f"tag {ref} names version {version}, but Cargo.toml says {crate}: bump Cargo.toml first")
    return version


def index_tags(ref, commit):
    """X.Y.Z, X.Y, X, latest for a stable release; a pre-release moves no other tag."""
    m = parse_tag(ref)
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise ReleaseError(f"{commit!r} is not a full commit hash")
    version = m.group(0)[1:]
    tags = [version]
    if not m["pre"]:
        tags += [f"{m['major']}.{m['minor']}", m["major"], "latest"]
    return tags + [f"sha-{commit[:12]}"]


def host_target():
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    return next(line.split()[1] for line in out.splitlines() if line.startswith("host:"))


def sbom(out, target=None):
    """cargo cyclonedx writes its file next to Cargo.toml (named after the
    binary); it is moved out at once."""
    target = target or host_target()
    with tempfile.TemporaryDirectory(prefix="ferry-sbom-") as tmp:
        env = dict(os.environ)
        # The SBOM's timestamp: the commit's, so the same commit gives the same file.
        stamp = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True, text=True)
        if stamp.returncode == 0 and stamp.stdout.strip():
            env["SOURCE_DATE_EPOCH"] = stamp.stdout.strip()
        cmd = ["cargo", "cyclonedx", "--manifest-path", str(ROOT / "Cargo.toml"), "--format", "json",
               "--spec-version", "1.5", "--describe", "binaries", "--no-build-deps", "--target", target, "-q"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        written = ROOT / "ferry_bin.cdx.json"
        if proc.returncode != 0 or not written.exists():
            raise ReleaseError(f"cargo cyclonedx failed ({proc.returncode}):\n{proc.stderr}")
        shutil.move(written, Path(tmp) / "ferry.cdx.json")
        bom = json.loads((Path(tmp) / "ferry.cdx.json").read_text())
    bom["metadata"].setdefault("properties", []).append({"name": "ferry:target", "value": target})
    Path(out).write_text(json.dumps(bom, indent=2) + "\n")
    return bom


def fill_in(text, old, new, name):
    if text.count(old) != 1:
        raise ReleaseError(f"{name}: expected exactly one {old!r} to fill in the version")
    return text.replace(old, new)


def compose_files(version):
    """{path in the archive: bytes}, with the version as the default tag."""
    files = {}
    for path in sorted((ROOT / "compose").rglob("*")):
        rel = path.relative_to(ROOT).as_posix()
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", rel], cwd=ROOT, capture_output=True)
        if path.is_file() and tracked.returncode == 0:
            files[rel] = path.read_bytes()
    for path in sorted((ROOT / "nginx" / "docker").rglob("*")):
        if path.is_file():
            files[path.relative_to(ROOT).as_posix()] = path.read_bytes()
    files["compose/compose.yaml"] = fill_in(files["compose/compose.yaml"].decode(), COMPOSE_TAG_DEFAULT,
                                            "${FERRY_TAG:-%s}" % version, "compose/compose.yaml").encode()
    files["compose/.env.example"] = fill_in(files["compose/.env.example"].decode(), ENV_TAG_DEFAULT,
                                            f"#FERRY_TAG={version}", "compose/.env.example").encode()
    return files


def release_files(ref, out):
    version = check_version(ref)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for arch, target in IMAGE_TARGETS.items():
        sbom(out / f"ferry-{arch}.cdx.json", target)
    files = compose_files(version)
    (out / "compose.yaml").write_bytes(files["compose/compose.yaml"])
    (out / "env.example").write_bytes(files["compose/.env.example"])
    top = f"ferry-compose-{version}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime, info.uname, info.gname = len(content), 0, "", ""
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(content))
    # gzip with a fixed timestamp, so the archive depends on its contents only.
    import gzip
    with open(out / f"{top}.tar.gz", "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(buf.getvalue())
    return sorted(p.name for p in out.iterdir())


def main(argv):
    try:
        match argv:
            case ["check-version", ref]:
                print(check_version(ref))
            case ["tags", ref, commit]:
                print("\n".join(index_tags(ref, commit)))
            case ["sbom", out]:
                sbom(out)
            case ["sbom", out, "--target", target]:
                sbom(out, target)
            case ["files", ref, out]:
                print("\n".join(release_files(ref, out)))
            case _:
                print(__doc__, file=sys.stderr)
                return 2
    except ReleaseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
