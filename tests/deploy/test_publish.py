"""The release's publish path against a real registry: Debian's docker-registry on
127.0.0.1, the publish script the flake's apps run (nix/publish.sh, as
`nix run .#publish-prebuilt` runs it in the release workflow) and the tags
nix/release.py computes. The amd64 image is the locally assembled one (the host's
release binary with the image contract, see build_image.py); arm64 and armv7 are
stand-ins labelled as such, because no arm toolchain exists on the test machine.
Docker then pulls the index for linux/amd64 and runs it to healthy.

Also: the compose files attached to a release pin that release's tag."""

import gzip
import hashlib
import json
import os
import shutil
import socket
import tarfile
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import build_image
from dockerutil import ROOT, ensure_docker, run

sys.path.insert(0, str(ROOT / "nix"))
import release  # noqa: E402

REPO = "ferry"
VERSION_TAG = "v1.2.3"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# Docker's formats, not OCI's: an OCI image config has no HEALTHCHECK.
INDEX = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE = "application/vnd.docker.distribution.manifest.v2+json"
PLATFORMS = [
    ("amd64", {"os": "linux", "architecture": "amd64"}),
    ("arm64", {"os": "linux", "architecture": "arm64", "variant": "v8"}),
    ("armv7", {"os": "linux", "architecture": "arm", "variant": "v7"}),
]
NO_ARM = "no arm toolchain on the test machine; the release workflow builds the real one with Nix"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    exe = shutil.which("docker-registry")
    if not exe:
        pytest.fail("docker-registry is not installed (apt-get install docker-registry)")
    for tool in ("skopeo", "jq"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed (apt-get install {tool})")
    base = tmp_path_factory.mktemp("registry")
    port = free_port()
    (base / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {base / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    log = open(base / "registry.log", "wb")
    proc = subprocess.Popen([exe, "serve", str(base / "config.yml")], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/v2/"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"docker-registry did not answer: {(base / 'registry.log').read_text()[-2000:]}")
        time.sleep(0.2)
    yield {"host": f"127.0.0.1:{port}", "storage": base / "data"}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """The three images as gzipped docker-archives, like dockerTools' output."""
    out = tmp_path_factory.mktemp("archives")
    data = {
        "amd64": build_image.ferry_archive(ref="ferry:1.2.3", labels={"org.opencontainers.image.version": "1.2.3"}),
        "arm64": build_image.stand_in_archive("ferry:1.2.3", "arm64", "v8", NO_ARM),
        "armv7": build_image.stand_in_archive("ferry:1.2.3", "arm", "v7", NO_ARM),
    }
    paths = {}
    for arch, archive in data.items():
        paths[arch] = out / f"image-{arch}.tar.gz"
        with gzip.GzipFile(paths[arch], "wb", mtime=0) as f:
            f.write(archive)
    return paths


def publish(registry, archives, tags, tmp_path):
    """nix/publish.sh as the flake's writeShellApplication runs it: bash with
    errexit, nounset and pipefail, the images in FERRY_PUBLISH_IMAGES."""
    lines = [f"{arch} {p['architecture']} {p.get('variant', '-')} {archives[arch]}" for arch, p in PLATFORMS]
    digest_file = tmp_path / "index.digest"
    also = [a for t in tags[1:] for a in ("--also-tag", t)]
    env = dict(os.environ, FERRY_PUBLISH_IMAGES="\n".join(lines), FERRY_PUBLISH_DEFAULT_TAG="0.0.0")
    proc = run(["bash", "-o", "errexit", "-o", "nounset", "-o", "pipefail", str(ROOT / "nix" / "publish.sh"),
                "--insecure", "--digest-file", str(digest_file), *also, f"{registry['host']}/{REPO}", tags[0]], env=env)
    pushed = {line.split()[1] for line in proc.stdout.splitlines() if line.strip().startswith("pushed ") and "@" in line}
    return digest_file.read_text().strip(), {p.split("@")[1] for p in pushed}, proc.stdout


def raw(registry, ref):
    return run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{registry['host']}/{REPO}{ref}"],
               text=False).stdout


def registry_tags(registry):
    r = requests.get(f"http://{registry['host']}/v2/{REPO}/tags/list", timeout=5)
    r.raise_for_status()
    return sorted(r.json()["tags"] or [])


def storage_state(root):
    """Every file the registry keeps, with its content: what a push may change."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "_uploads" not in p.parts}


@pytest.fixture(scope="module")
def published(registry, archives, tmp_path_factory):
    tags = release.index_tags(VERSION_TAG, COMMIT)
    tmp = tmp_path_factory.mktemp("publish")
    digest, pushed, output = publish(registry, archives, tags, tmp)
    return {"tags": tags, "digest": digest, "pushed": pushed, "output": output, "tmp": tmp}


# --------------------------------------------------------------------- tests

def test_release_tags():
    assert release.index_tags("v1.2.3", COMMIT) == ["1.2.3", "1.2", "1", "latest", "sha-0123456789ab"]
    assert release.index_tags("v0.10.0", COMMIT)[:3] == ["0.10.0", "0.10", "0"]
    # A pre-release moves neither latest nor the short tags.
    assert release.index_tags("v1.3.0-rc.1", COMMIT) == ["1.3.0-rc.1", "sha-0123456789ab"]
    for bad in ("1.2.3", "v1.2", "v01.2.3", "v1.2.3+build5", "v1.2.3-", "latest"):
        with pytest.raises(release.ReleaseError):
            release.index_tags(bad, COMMIT)
    with pytest.raises(release.ReleaseError):
        release.index_tags("v1.2.3", "abc123")


def test_tag_must_match_cargo_version():
    version = release.cargo_version()
    assert release.check_version(f"v{version}") == version
    with pytest.raises(release.ReleaseError, match="Cargo.toml"):
        release.check_version("v999.0.0")


def test_index_lists_three_platforms_by_digest(registry, archives, published):
    body = raw(registry, f":{published['tags'][0]}")
    assert sha256(body) == published["digest"], "the index under the tag is the one the script reported"
    index = json.loads(body)
    assert index["mediaType"] == INDEX and index["schemaVersion"] == 2
    assert [m["platform"] for m in index["manifests"]] == [p for _, p in PLATFORMS]
    assert {m["digest"] for m in index["manifests"]} == published["pushed"], published["output"]
    for (arch, platform), entry in zip(PLATFORMS, index["manifests"]):
        manifest = raw(registry, f"@{entry['digest']}")
        assert sha256(manifest) == entry["digest"] and len(manifest) == entry["size"]
        assert entry["mediaType"] == json.loads(manifest)["mediaType"] == IMAGE, arch
        config = json.loads(run(["skopeo", "inspect", "--config", "--raw", "--tls-verify=false",
                                 f"docker://{registry['host']}/{REPO}@{entry['digest']}"]).stdout)
        assert config["architecture"] == platform["architecture"], arch
        assert config.get("variant") == platform.get("variant", config.get("variant")), arch
        # The pushed image is the archive's image: same uncompressed layers.
        with gzip.open(archives[arch]) as f:
            local = tarfile.open(fileobj=f)
            local_config = json.load(local.extractfile(json.load(local.extractfile("manifest.json"))[0]["Config"]))
        assert config["rootfs"]["diff_ids"] == local_config["rootfs"]["diff_ids"], arch
        if arch == "amd64":
            hc = build_image.load_contract()["healthcheck"]
            assert config["config"]["Healthcheck"]["Test"] == hc["test"], "the image's HEALTHCHECK survives the push"
        labels = config.get("config", {}).get("Labels") or {}
        assert (labels.get("dev.ferry.test.stand-in") == "true") == (arch != "amd64"), f"{arch}: stand-ins say so"


def test_every_tag_names_the_index(registry, published):
    assert registry_tags(registry) == sorted(published["tags"]), "the images themselves are pushed untagged"
    for tag in published["tags"]:
        assert sha256(raw(registry, f":{tag}")) == published["digest"], tag


def test_pushing_the_same_release_again_changes_nothing(registry, archives, published, tmp_path):
    before = storage_state(registry["storage"])
    assert len(before) > 10, "the registry stores the release"
    digest, pushed, _ = publish(registry, archives, published["tags"], tmp_path)
    assert digest == published["digest"] and pushed == published["pushed"]
    assert registry_tags(registry) == sorted(published["tags"])
    after = storage_state(registry["storage"])
    assert after == before, f"changed: {sorted(set(after.items()) ^ set(before.items()))[:10]}"


@pytest.fixture
def engine():
    problem = ensure_docker()
    if problem:
        pytest.fail(f"no Docker engine: {problem}")


def test_docker_pulls_the_index_and_runs_amd64_to_healthy(engine, registry, published):
    ref = f"{registry['host']}/{REPO}:{published['tags'][0]}"
    run(["docker", "pull", "--platform", "linux/amd64", ref])
    info = json.loads(run(["docker", "image", "inspect", ref]).stdout)[0]
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert f"{registry['host']}/{REPO}@{published['digest']}" in info["RepoDigests"]
    name = f"ferry-publish-test-{os.getpid()}"
    # The image's own healthcheck (`ferry healthcheck`), probed every second
    # instead of every 30 s so that the test need not wait.
    run(["docker", "run", "-d", "--name", name, "--health-interval", "1s", "--read-only",
         "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "-p", "127.0.0.1::8080", ref])
    try:
        deadline = time.monotonic() + 60
        while True:
            state = json.loads(run(["docker", "inspect", name]).stdout)[0]["State"]
            if state.get("Health", {}).get("Status") == "healthy":
                break
            assert state["Running"], run(["docker", "logs", name], check=False).stderr[-2000:]
            assert time.monotonic() < deadline, f"not healthy: {state.get('Health')}"
            time.sleep(0.5)
        port = run(["docker", "port", name, "8080/tcp"]).stdout.split()[0].rsplit(":", 1)[1]
        s = requests.Session()
        s.trust_env = False
        assert s.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        run(["docker", "rm", "-f", "-v", name], check=False)
        run(["docker", "image", "rm", ref], check=False)


def test_docker_picks_the_arm_v7_entry(engine, registry, published):
    ref = f"{registry['host']}/{REPO}:{published['tags'][0]}"
    run(["docker", "pull", "--platform", "linux/arm/v7", ref])
    try:
        info = json.loads(run(["docker", "image", "inspect", ref]).stdout)[0]
        assert (info["Architecture"], info.get("Variant")) == ("arm", "v7")
        assert info["Config"]["Labels"]["dev.ferry.test.stand-in"] == "true"
    finally:
        run(["docker", "image", "rm", ref], check=False)


def test_release_compose_files_pin_the_release(tmp_path):
    files = release.compose_files("1.2.3")
    assert "${FERRY_TAG:-1.2.3}" in files["compose/compose.yaml"].decode()
    assert "#FERRY_TAG=1.2.3\n" in files["compose/.env.example"].decode()
    # compose.nginx.yaml mounts ../nginx/docker: the archive carries it.
    assert "nginx/docker/nginx.conf" in files and "compose/compose.nginx.yaml" in files
    assert not any(name.startswith(("compose/secrets/", "compose/.env")) and name != "compose/.env.example"
                   for name in files)
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    compose = shutil.which("docker-compose")
    if not compose:
        pytest.fail("docker-compose is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "COMPOSE_"))}
    out = run([compose, "-f", "compose.yaml", "config"], cwd=tmp_path / "compose", env=env).stdout
    assert "image: ghcr.io/ferry-app/ferry:1.2.3" in out
