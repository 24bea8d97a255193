"""The release's CycloneDX SBOM (nix/release.py sbom, with cargo-cyclonedx) against
Cargo.lock and against the crate list that `cargo auditable` embeds in the release
binary (the `.dep-v0` section, zlib-compressed JSON): the SBOM must name exactly the
crates compiled into the shipped binary, at the versions and checksums Cargo.lock
pins. Run by the nox session `audit` after `cargo auditable build --release`;
FERRY_RELEASE_BINARY names another binary."""

import json
import os
import struct
import subprocess
import sys
import tomllib
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "nix"))
import release  # noqa: E402

BINARY = Path(os.environ.get("FERRY_RELEASE_BINARY") or ROOT / "target" / "release" / "ferry")
TARGETS = list(release.IMAGE_TARGETS.values())


def elf_section(path, name):
    """The bytes of one section of a 64-bit little-endian ELF file, or None."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{path} is not a 64-bit little-endian ELF file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i):
        return struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)

    names = header(shstrndx)[4]
    for i in range(shnum):
        name_at, _, _, _, offset, size, *_ = header(i)
        end = data.index(b"\0", names + name_at)
        if data[names + name_at:end].decode() == name:
            return data[offset:offset + size]
    return None


def crates(components):
    return {(c["name"], c["version"]) for c in components}


@pytest.fixture(scope="module")
def lock():
    with open(ROOT / "Cargo.lock", "rb") as f:
        return {(p["name"], p["version"]): p for p in tomllib.load(f)["package"]}


@pytest.fixture(scope="module")
def boms(tmp_path_factory):
    out = tmp_path_factory.mktemp("sbom")
    return {t: release.sbom(out / f"{t}.cdx.json", t) for t in TARGETS}


@pytest.fixture(scope="module")
def embedded():
    if not BINARY.exists():
        pytest.fail(f"{BINARY} is missing: run `cargo auditable build --release --locked` first")
    section = elf_section(BINARY, ".dep-v0")
    assert section, f"{BINARY} has no .dep-v0 section: it was not built with `cargo auditable`"
    return json.loads(zlib.decompress(section))


def test_sbom_describes_the_ferry_binary(boms):
    bom = boms[TARGETS[0]]
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    component = bom["metadata"]["component"]
    assert (component["name"], component["version"], component["type"]) == ("ferry", release.cargo_version(), "application")
    assert len(bom["components"]) > 50, "the whole crate graph, not only the direct dependencies"


def test_every_component_is_pinned_by_cargo_lock(boms, lock):
    for c in boms[TARGETS[0]]["components"]:
        key = (c["name"], c["version"])
        assert key in lock, f"{key} is in the SBOM but not in Cargo.lock"
        assert c["purl"].startswith(f"pkg:cargo/{c['name']}@{c['version']}")
        checksum = lock[key].get("checksum")
        if checksum:
            hashes = {h["alg"]: h["content"] for h in c.get("hashes", [])}
            assert hashes.get("SHA-256") == checksum, f"{key}: SBOM hash differs from Cargo.lock's checksum"


def compiled(target):
    """What cargo links into the binary for TARGET (normal dependencies, no proc
    macros and nothing built for the host only): cargo tree resolves features
    exactly."""
    out = subprocess.run(["cargo", "tree", "--locked", "-e", "normal,no-proc-macro", "--target", target, "--prefix", "none",
                          "-f", "{p}", "--manifest-path", str(ROOT / "Cargo.toml")],
                         capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        name, version, *_ = line.split()
        found.add((name, version.removeprefix("v")))
    return found - {("ferry", release.cargo_version())}


def test_sbom_and_the_binary_name_the_same_crates(boms, embedded):
    """The SBOM adds to the binary's embedded list only the proc macros, which
    the list records as build-time ("kind": "build")."""
    packages = embedded["packages"]
    assert [p["name"] for p in packages if p.get("root")] == ["ferry"]
    runtime = {(p["name"], p["version"]) for p in packages if p.get("kind", "runtime") == "runtime" and not p.get("root")}
    build = {(p["name"], p["version"]) for p in packages if p.get("kind") == "build"}
    in_sbom = crates(boms[TARGETS[0]]["components"])
    assert runtime <= in_sbom, f"in the binary, not in the SBOM: {sorted(runtime - in_sbom)[:10]}"
    assert in_sbom - runtime <= build, f"in the SBOM, unknown to the binary: {sorted(in_sbom - runtime - build)[:10]}"


def test_nothing_compiled_is_missing_from_the_sbom(boms):
    """Both lists come from `cargo metadata`, which counts optional crates that
    only weak features (`dep?/feature`) name, such as sqlx-mysql and rsa: they
    over-report, never under-report. deny.toml's rsa exception relies on rsa
    not being compiled."""
    for target, bom in boms.items():
        built, listed = compiled(target), crates(bom["components"])
        assert built <= listed, f"{target}: compiled but not in the SBOM: {sorted(built - listed)[:10]}"
        assert "rsa" not in {name for name, _ in built}, f"{target}: rsa is compiled in; revisit deny.toml"


def test_dependency_graph_refers_to_listed_components(boms):
    bom = boms[TARGETS[0]]
    refs = {c["bom-ref"] for c in bom["components"]} | {bom["metadata"]["component"]["bom-ref"]}
    for dep in bom["dependencies"]:
        assert dep["ref"] in refs
        assert set(dep.get("dependsOn", [])) <= refs, dep["ref"]


def test_each_image_has_an_sbom_of_its_own_target(boms, lock):
    """The graphs differ between targets (e.g. core_detect on x86_64 only), so the
    release attaches one SBOM per image; each is still pinned by Cargo.lock."""
    for target, bom in boms.items():
        assert {"name": "ferry:target", "value": target} in bom["metadata"]["properties"]
        missing = crates(bom["components"]) - set(lock)
        assert not missing, f"{target}: not in Cargo.lock: {sorted(missing)[:10]}"
        assert ("tokio", next(v for n, v in lock if n == "tokio")) in crates(bom["components"]), target
