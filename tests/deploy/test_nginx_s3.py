"""Debian's nginx sending downloads from an object store: the release binary on
SQLite with FERRY_BLOB_STORE=s3 on a throwaway single-node Garage
(FERRY_TEST_GARAGE, which `nox -s nginx` builds) and FERRY_ACCEL_REDIRECT, behind
nginx with the shipped location nginx/object-store/downloads.conf. Plain HTTP on
loopback: TLS in front is test_nginx.py's subject."""

import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from dockerutil import NGINX_DIR, run
from native import Ferry, direct, free_port, wait_for
from test_nginx import NGINX, main_conf

GARAGE = os.environ.get("FERRY_TEST_GARAGE", "")


class Garage:
    """One node, replication factor 1, one key and one bucket (see Garage's
    configuration reference and quick start)."""

    def __init__(self, base: Path):
        self.base = base
        self.s3_port, rpc, admin = free_port(), free_port(), free_port()
        self.config = base / "garage.toml"
        self.config.write_text(f"""
metadata_dir = "{base}/meta"
data_dir = "{base}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secrets.token_hex(32)}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{self.s3_port}"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
""")
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"
        self.key_id = "GK" + secrets.token_hex(12)
        self.secret = secrets.token_hex(32)
        self.proc = None

    def cli(self, *args):
        return run([GARAGE, "-c", str(self.config), *args])

    def start(self):
        self.log = open(self.base / "garage.log", "ab")
        self.proc = subprocess.Popen([GARAGE, "-c", str(self.config), "server"],
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        # `node id` works before the server listens; `status` asks the server.
        wait_for(lambda: subprocess.run([GARAGE, "-c", str(self.config), "status"],
                                        capture_output=True).returncode == 0, 30, "garage")
        node = self.cli("node", "id", "-q").stdout.strip().split("@")[0]
        self.cli("layout", "assign", "-z", "dc1", "-c", "1G", node)
        self.cli("layout", "apply", "--version", "1")
        self.cli("key", "import", "--yes", "-n", "ferry", self.key_id, self.secret)
        self.cli("bucket", "create", "ferry")
        self.cli("bucket", "allow", "--read", "--write", "--owner", "ferry", "--key", "ferry")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def server_block(port, app_port, endpoint):
    location = (NGINX_DIR / "object-store" / "downloads.conf").read_text()
    shipped = "proxy_pass http://127.0.0.1:3900/;"
    assert shipped in location, "nginx/object-store/downloads.conf no longer has its example endpoint"
    location = location.replace(shipped, f"proxy_pass {endpoint}/;")
    return f"""
server {{
    listen 127.0.0.1:{port};
    client_max_body_size 64m;
    location / {{
        proxy_pass http://127.0.0.1:{app_port};
        proxy_request_buffering off;
    }}
    {location}
}}
"""


@pytest.fixture(scope="module")
def stack():
    if not GARAGE or not os.path.exists(GARAGE):
        pytest.fail("FERRY_TEST_GARAGE names no Garage binary (nox -s nginx builds it)")
    if not os.path.exists(NGINX):
        pytest.fail("nginx is not installed (apt-get install nginx-light)")
    base = Path(tempfile.mkdtemp(prefix="ferry-nginx-s3-"))
    garage = ferry = nginx = None
    try:
        (base / "garage").mkdir()
        garage = Garage(base / "garage").start()
        ferry = Ferry(base, f"sqlite://{base}/data/ferry.db",
                      FERRY_BLOB_STORE="s3", FERRY_S3_ENDPOINT=garage.endpoint,
                      FERRY_S3_BUCKET="ferry", FERRY_S3_ACCESS_KEY_ID=garage.key_id,
                      FERRY_S3_SECRET_ACCESS_KEY=garage.secret,
                      FERRY_ACCEL_REDIRECT="/_protected/",
                      FERRY_TRUSTED_PROXIES="127.0.0.1/32").start()
        token = ferry.create_token()
        port = free_port()
        conf = base / "ferry.conf"
        conf.write_text(server_block(port, ferry.port, garage.endpoint))
        main = base / "nginx.conf"
        main.write_text(main_conf(base, conf))
        test = run([NGINX, "-t", "-p", str(base), "-c", str(main)], check=False)
        assert test.returncode == 0, f"nginx -t failed:\n{test.stderr}"
        nginx = subprocess.Popen([NGINX, "-p", str(base), "-c", str(main), "-g", "daemon off;"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: direct().get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200,
                 20, "nginx")
        yield {"ferry": ferry, "token": token, "url": f"http://127.0.0.1:{port}"}
    finally:
        if nginx:
            nginx.terminate()
            nginx.wait(10)
        if ferry:
            ferry.stop()
        if garage:
            garage.stop()
        if os.environ.get("FERRY_TEST_KEEP"):
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def session(stack):
    s = direct()
    s.headers["Authorization"] = f"Bearer {stack['token']}"
    return s


def test_downloads_come_from_the_store_through_nginx(stack):
    body = os.urandom(20 * 1024 * 1024 + 3)
    s = session(stack)
    res = s.put(f"{stack['url']}/api/items", params={"name": "clip.png"}, data=body, timeout=60)
    assert res.status_code == 201, res.text
    item = res.json()
    url = f"{stack['url']}/items/{item['id']}/content"

    # Ferry itself answers with the presigned redirect, never the bytes.
    raw = s.get(f"http://127.0.0.1:{stack['ferry'].port}/items/{item['id']}/content", timeout=10)
    assert raw.headers["x-accel-redirect"].startswith("/_protected/ferry/blobs/")
    assert "X-Amz-Signature=" in raw.headers["x-accel-redirect"]
    assert raw.content == b""

    res = s.get(url, timeout=60)
    assert res.status_code == 200
    assert hashlib.sha256(res.content).hexdigest() == item["sha256"]
    # Ferry's headers, with the location's safety headers.
    assert res.headers["content-type"] == "image/png"
    assert 'filename="clip.png"' in res.headers["content-disposition"]
    assert res.headers["x-content-type-options"] == "nosniff"
    assert res.headers["content-security-policy"].startswith("sandbox")
    assert res.headers["cache-control"] == "private, no-cache"
    assert "x-amz-request-id" not in res.headers

    part = s.get(url, headers={"Range": "bytes=10000000-10000099"}, timeout=10)
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 10000000-10000099/{len(body)}"
    assert part.content == body[10000000:10000100]

    # The store's validator: the same bytes, the same tag, and a 304 for it.
    etag = res.headers["etag"]
    again = s.get(url, headers={"If-None-Match": etag}, timeout=10)
    assert again.status_code == 304

    # Without Ferry's consent there is no way in: the location is internal.
    assert direct().get(f"{stack['url']}/_protected/ferry/blobs/{item['id']}", timeout=10).status_code == 404
    # And a signed-out request gets nothing from the store.
    assert direct().get(url, timeout=10).status_code in (401, 303)
