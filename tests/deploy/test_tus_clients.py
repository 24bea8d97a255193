"""Standard tus clients against a running Ferry: tuspy (Python) and tus-js-client
(Node, the library Uppy uses). Each uploads a file in chunks, is cut off part-way,
resumes from the upload's URL, and the finished item must have the file's SHA-256.

FERRY_BIN names the binary (default: target/debug/ferry); TUS_JS_NODE_PATH the
node_modules directory holding tus-js-client."""

import hashlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from tusclient import client as tus

ROOT = Path(__file__).resolve().parents[2]
FERRY_BIN = Path(os.environ.get("FERRY_BIN", ROOT / "target" / "debug" / "ferry"))
SIZE = 20 * 1024 * 1024 + 12345


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ferry(args, env, stdin=""):
    out = subprocess.run([str(FERRY_BIN), *args], env=env, input=stdin, text=True,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, f"ferry {' '.join(args)}: {out.stderr}"
    return out.stdout.strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("ferry")
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "FERRY_DATA_DIR": str(data / "data"),
           "FERRY_LOG": "warn", "FERRY_LISTEN": f"127.0.0.1:{port}"}
    ferry(["user", "add", "ops", "--admin"], env, "password123\n")
    token = ferry(["token", "create", "tus", "--user", "ops"], env)
    proc = subprocess.Popen([str(FERRY_BIN), "serve"], env=env)
    base = f"http://127.0.0.1:{port}"
    session = requests.Session()
    session.trust_env = False
    deadline = time.monotonic() + 30
    while True:
        try:
            if session.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "ferry did not become ready"
        time.sleep(0.1)
    yield base, token, session
    proc.terminate()
    proc.wait(timeout=30)


def sample(tmp_path, name, seed):
    path = tmp_path / name
    path.write_bytes(hashlib.shake_256(seed).digest(SIZE))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def item_named(base, token, session, name):
    listing = session.get(f"{base}/api/items", headers={"Authorization": f"Bearer {token}"}).json()
    found = [i for i in listing["items"] if i["name"] == name]
    assert len(found) == 1, listing
    return found[0]


def test_tuspy_uploads_resumes_and_checks_chunks(server, tmp_path, monkeypatch):
    base, token, session = server
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    path, digest = sample(tmp_path, "from-tuspy.bin", b"tuspy")
    my = tus.TusClient(f"{base}/api/uploads/", headers={"Authorization": f"Bearer {token}"})
    first = my.uploader(str(path), chunk_size=5 * 1024 * 1024, upload_checksum=True,
                        metadata={"filename": "from-tuspy.bin"})
    first.upload(stop_at=8 * 1024 * 1024)
    assert 0 < first.offset < SIZE
    # A new client, as after a restart, continues from the upload's URL.
    again = my.uploader(str(path), url=first.url, chunk_size=5 * 1024 * 1024,
                        upload_checksum=True)
    assert again.offset == first.offset, "HEAD reports what was acknowledged"
    again.upload()
    assert again.offset == SIZE
    item = item_named(base, token, session, "from-tuspy.bin")
    assert item["sha256"] == digest and item["size"] == SIZE


def test_tus_js_client_resumes_after_an_abort(server, tmp_path):
    base, token, session = server
    path, digest = sample(tmp_path, "from-node.bin", b"node")
    script = ROOT / "tests" / "deploy" / "tus_js_client.cjs"
    env = dict(os.environ, NODE_PATH=os.environ.get("TUS_JS_NODE_PATH", ""), NO_PROXY="127.0.0.1")
    out = subprocess.run(["node", str(script), base, token, str(path), "from-node.bin"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["resumedFrom"] > 0, f"resumed from the start: {result}"
    item = item_named(base, token, session, "from-node.bin")
    assert item["sha256"] == digest and item["size"] == SIZE
    assert result["url"].endswith(item["id"])
