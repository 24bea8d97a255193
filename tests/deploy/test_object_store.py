"""Several replicas with no shared volume: two Ferry containers on PostgreSQL with
their files on Garage, nginx in front, started from the compose files a user runs
(compose.yaml + postgres + nginx + s3 + garage + replicas) with locally built
images: Ferry's test image, the PostgreSQL and nginx stand-ins (build_image.py) and
Garage built from crates.io (garage_image.py), selected through FERRY_IMAGE,
POSTGRES_IMAGE, NGINX_IMAGE and GARAGE_IMAGE as a user would set them in .env."""

import base64
import os
import re
import time

import pytest

import build_image
import garage_image
from composeutil import Compose, compose_v1, free_port_range, load_yaml, with_defaults
from dockerutil import COMPOSE_DIR, ensure_docker, load_contract, run
from test_containers import make_token, session

CONTRACT = load_contract()
PARTS = ["base", "postgres", "nginx", "s3", "garage", "replicas"]
BUCKET = "ferry"


# ------------------------------------------------------------------ the files

def test_garage_is_pinned_by_digest_and_unpublished():
    garage = load_yaml(COMPOSE_DIR / "compose.garage.yaml")
    svc = with_defaults(garage["services"]["garage"])
    assert re.fullmatch(r"dxflrs/garage:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", svc["image"]), svc["image"]
    assert "ports" not in svc, "Garage must not be published"
    assert garage["networks"]["objects"]["internal"] is True
    assert svc["networks"] == ["objects"]
    ferry = garage["services"]["ferry"]
    assert ferry["depends_on"]["garage"]["condition"] == "service_healthy"
    assert set(ferry["networks"]) == {"default", "objects"}


def test_s3_switch_takes_the_key_from_secret_files():
    ferry = with_defaults(load_yaml(COMPOSE_DIR / "compose.s3.yaml")["services"]["ferry"])
    env = ferry["environment"]
    assert env["FERRY_BLOB_STORE"] == "s3"
    assert env["FERRY_S3_ACCESS_KEY_ID_FILE"] == "/run/secrets/s3_access_key_id"
    assert env["FERRY_S3_SECRET_ACCESS_KEY_FILE"] == "/run/secrets/s3_secret_access_key"
    assert not any(k in env for k in ("FERRY_S3_ACCESS_KEY_ID", "FERRY_S3_SECRET_ACCESS_KEY"))
    # The garage service's default bucket and region are the ones Ferry asks for.
    garage = with_defaults(load_yaml(COMPOSE_DIR / "compose.garage.yaml")["services"]["garage"])
    assert garage["environment"]["GARAGE_DEFAULT_BUCKET"] == env["FERRY_S3_BUCKET"]
    toml = (COMPOSE_DIR / "garage" / "garage.toml").read_text()
    assert f's3_region = "{env["FERRY_S3_REGION"]}"' in toml


def test_replicas_switch_shares_no_volume(tmp_path):
    """The merged configuration: Ferry's /data is an anonymous volume (one per
    container) and nginx mounts no Ferry volume."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "garage.env").write_text("GARAGE_RPC_SECRET=00\n")
    stack = Compose(tmp_path, PARTS, {"FERRY_SERVER_NAME": "ferry.example.org", "FERRY_SECRETS_DIR": str(secrets)})
    merged = stack.cmd("config").stdout
    services = load_yaml_text(merged)["services"]
    assert services["ferry"]["volumes"] == [{"type": "volume", "target": CONTRACT["dataDir"]}]
    nginx_data = [v for v in services["nginx"]["volumes"] if isinstance(v, dict) and v["target"] == "/data"]
    assert nginx_data and nginx_data[0]["type"] == "tmpfs"
    # compose.s3.yaml comes after compose.nginx.yaml: nginx has no files to send.
    assert services["ferry"]["environment"]["FERRY_ACCEL_REDIRECT"] == ""


def load_yaml_text(text):
    try:
        import yaml
    except ImportError:
        pytest.fail("PyYAML is needed to read `docker-compose config` (pip install pyyaml)")
    return yaml.safe_load(text)


# ------------------------------------------------------------------ the stack

@pytest.fixture(scope="module")
def images():
    problem = ensure_docker()
    if problem:
        if os.environ.get("FERRY_TEST_REQUIRE_ALL"):
            pytest.fail(f"no Docker engine: {problem}")
        pytest.skip(f"no Docker engine can be started here: {problem}")
    if not compose_v1():
        pytest.fail("docker-compose is not installed (apt-get install docker-compose)")
    started = time.monotonic()
    env = build_image.build_all()
    env["GARAGE_IMAGE"] = garage_image.build_garage_image()
    print(f"images built in {time.monotonic() - started:.1f}s: {env}")
    return env


def write_secrets(secrets):
    secrets.mkdir(mode=0o700)
    password = os.urandom(12).hex()
    key_id, secret = "GK" + os.urandom(12).hex(), os.urandom(32).hex()
    files = {
        "postgres_password": password,
        "database_url": f"postgres://ferry:{password}@postgres:5432/ferry",
        "s3_access_key_id": key_id,
        "s3_secret_access_key": secret,
    }
    for name, value in files.items():
        (secrets / name).write_text(value)
        (secrets / name).chmod(0o644)
    garage_env = secrets / "garage.env"
    garage_env.write_text(f"GARAGE_RPC_SECRET={os.urandom(32).hex()}\n"
                          f"GARAGE_DEFAULT_ACCESS_KEY={key_id}\nGARAGE_DEFAULT_SECRET_KEY={secret}\n")
    garage_env.chmod(0o600)


def self_signed(letsencrypt, name):
    live = letsencrypt / "live" / name
    live.mkdir(parents=True)
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1",
         "-keyout", str(live / "privkey.pem"), "-out", str(live / "fullchain.pem")])
    return str(live / "fullchain.pem")


@pytest.fixture
def object_store_stack(images, tmp_path):
    write_secrets(tmp_path / "secrets")
    cert = self_signed(tmp_path / "letsencrypt", "ferry.test")
    app_ports = free_port_range(2)
    https_port = free_port_range(1)
    stack = Compose(tmp_path, PARTS, {
        **images,
        "FERRY_SECRETS_DIR": str(tmp_path / "secrets"),
        "LETSENCRYPT_DIR": str(tmp_path / "letsencrypt"),
        "FERRY_SERVER_NAME": "ferry.test",
        "FERRY_HTTP_PORT": f"{app_ports}-{app_ports + 1}",
        "NGINX_HTTP_PORT": str(free_port_range(1)),
        "NGINX_HTTPS_PORT": str(https_port),
        "FERRY_HEALTHCHECK_INTERVAL": "1s",
        "HEALTHCHECK_INTERVAL": "1s",
        "RESTART_POLICY": "no",
    })
    stack.https, stack.cert = f"https://127.0.0.1:{https_port}", cert
    try:
        yield stack
    finally:
        stack.down()


def bucket_objects(stack):
    out = stack.cmd("exec", "-T", "garage", "/garage", "bucket", "info", BUCKET).stdout
    m = re.search(r"^\s*Objects:\s+(\d+)", out, re.M)
    assert m, out
    return int(m.group(1))


def wait_bucket_objects(stack, expected, timeout=15):
    """Garage counts a bucket's objects asynchronously: wait, bounded."""
    deadline = time.monotonic() + timeout
    while (n := bucket_objects(stack)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"bucket {BUCKET} holds {n} objects, expected {expected}")
        time.sleep(0.5)


def served_by(stack, method, path, ips, timeout=10):
    """The replica (container id) that nginx sent the last `method path` to. The
    log comes through the engine a moment after the answer, so its last line may
    not be there, or not whole, yet: read again, bounded."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in stack.logs("nginx").splitlines() if f'"{method} {path}' in line]
        found = re.search(r"upstream=([\d.]+):", lines[-1]) if lines else None
        if found:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"nginx logged no upstream for {method} {path}: {lines[-1:]}")
        time.sleep(0.2)
    (cid,) = [cid for cid, addrs in ips.items() if found.group(1) in addrs]
    return cid


def test_two_replicas_on_garage_with_no_shared_volume(object_store_stack):
    stack = object_store_stack
    t0 = time.monotonic()
    stack.cmd("up", "-d", "--scale", "ferry=2", "nginx")
    stack.wait_healthy(["postgres", "garage", "ferry", "nginx"], timeout=180)
    print(f"stack healthy in {time.monotonic() - t0:.1f}s")
    replicas = stack.ids("ferry")
    assert len(replicas) == 2

    # No volume is mounted by two containers; each replica has its own /data.
    owners = {}
    for service in ("ferry", "nginx", "postgres", "garage"):
        for cid in stack.ids(service):
            for mount in stack.inspect(cid)["Mounts"]:
                if mount["Type"] == "volume":
                    owners.setdefault(mount["Name"], []).append(f"{service}/{cid[:12]}")
    assert all(len(users) == 1 for users in owners.values()), owners
    assert not stack.inspect(stack.ids("garage")[0])["NetworkSettings"]["Ports"], "Garage must not be published"

    token = make_token(stack)
    api = session(stack.cert)
    api.headers["Authorization"] = f"Bearer {token}"
    ips = {cid: {n["IPAddress"] for n in stack.inspect(cid)["NetworkSettings"]["Networks"].values()}
           for cid in replicas}
    direct = session()
    direct.headers["Authorization"] = f"Bearer {token}"
    own_port = {cid: stack.inspect(cid)["NetworkSettings"]["Ports"][f"{CONTRACT['port']}/tcp"][0]["HostPort"]
                for cid in replicas}

    # Upload through nginx; the bytes go to Garage, not to the replica's volume.
    payload = os.urandom(12 * 1024 * 1024 + 4321)
    r = api.put(stack.https + "/api/items", params={"name": "shared.bin"}, data=payload, timeout=60)
    assert r.status_code == 201, r.text
    item_id = r.json()["id"]
    took = served_by(stack, "PUT", "/api/items", ips)
    (other,) = [cid for cid in replicas if cid != took]
    wait_bucket_objects(stack, 1)
    print(f"PUT served by {took[:12]}; the object is in Garage")

    # Download through nginx until the other replica has answered, in full and in part
    # (round robin: the second request at the latest).
    content = f"/items/{item_id}/content"
    answered = {}
    for _ in range(4):
        r = api.get(stack.https + content, timeout=60)
        assert r.status_code == 200 and r.content == payload
        answered[served_by(stack, "GET", content, ips)] = True
        if other in answered:
            break
    assert other in answered, f"nginx never sent the download to {other[:12]}"
    start, end = 5 * 1024 * 1024 - 7, 9 * 1024 * 1024 + 11
    for _ in range(4):
        r = api.get(stack.https + content, headers={"Range": f"bytes={start}-{end}"}, timeout=60)
        assert r.status_code == 206, r.status_code
        assert r.headers["Content-Range"] == f"bytes {start}-{end}/{len(payload)}"
        assert r.content == payload[start:end + 1]
        if served_by(stack, "GET", content, ips) == other:
            break
    else:
        raise AssertionError(f"nginx never sent the Range request to {other[:12]}")

    # A resumable upload in pieces, as the feed page sends large files: its unfinished
    # bytes are on one replica, so nginx sends all of one client's pieces there
    # (upstream ferry_uploads); the finished item is on Garage for every replica.
    resumable = os.urandom(3 * 1024 * 1024 + 99)
    tus = {"Tus-Resumable": "1.0.0"}
    name = base64.b64encode(b"pieces.bin").decode()
    r = api.post(stack.https + "/api/uploads/", timeout=10,
                 headers={**tus, "Upload-Length": str(len(resumable)), "Upload-Metadata": f"filename {name}"})
    assert r.status_code == 201, r.text
    upload = r.headers["Location"]
    writers = {served_by(stack, "POST", "/api/uploads/", ips)}
    piece = 1024 * 1024
    for offset in range(0, len(resumable), piece):
        r = api.patch(stack.https + upload, data=resumable[offset:offset + piece], timeout=30,
                      headers={**tus, "Upload-Offset": str(offset),
                               "Content-Type": "application/offset+octet-stream"})
        assert r.status_code == 204, f"piece at {offset}: {r.status_code} {r.text}"
        writers.add(served_by(stack, "PATCH", upload, ips))
    assert len(writers) == 1, "nginx spread one upload's requests over several replicas"
    (reader,) = set(replicas) - writers
    upload_id = upload.rstrip("/").rsplit("/", 1)[1]
    r = direct.get(f"http://127.0.0.1:{own_port[reader]}/items/{upload_id}/content", timeout=30)
    assert r.status_code == 200 and r.content == resumable
    wait_bucket_objects(stack, 2)

    # Delete through one replica (its own port); the other no longer serves it, and
    # the object is gone from Garage.
    r = direct.delete(f"http://127.0.0.1:{own_port[other]}/api/items/{item_id}", timeout=10)
    assert r.status_code in (200, 204), r.text
    r = direct.get(f"http://127.0.0.1:{own_port[took]}{content}", timeout=10)
    assert r.status_code == 404, r.status_code
    for _ in range(2):
        assert api.get(stack.https + content, timeout=10).status_code == 404
    wait_bucket_objects(stack, 1)
    r = direct.delete(f"http://127.0.0.1:{own_port[took]}/api/items/{upload_id}", timeout=10)
    assert r.status_code in (200, 204), r.text
    wait_bucket_objects(stack, 0)
    print(f"upload, downloads and delete across replicas in {time.monotonic() - t0:.1f}s in all")
