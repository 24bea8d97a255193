"""Debian's nginx with the bare-metal configuration (nginx/bare-metal/ferry.conf) in
front of the real Ferry release binary and a real PostgreSQL, with TLS from a
self-signed certificate; and `nginx -t` of the official-image templates."""

import hashlib
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from dockerutil import NGINX_DIR, run
from native import Ferry, Postgres, direct, free_port, wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MAX_UPLOAD = 64 * 1024 * 1024


def make_cert(directory: Path):
    """Self-signed certificate for localhost and 127.0.0.1, named like Let's Encrypt's."""
    directory.mkdir(parents=True, exist_ok=True)
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(directory / "privkey.pem"), "-out", str(directory / "fullchain.pem")])
    return directory / "fullchain.pem"


def render_bare_metal(http_port, https_port, app_port, cert_dir, webroot, blobs):
    """The bare-metal file with this test's ports and paths in place of the examples."""
    text = (NGINX_DIR / "bare-metal" / "ferry.conf").read_text()
    replacements = [
        ("listen [::]:80;\n", ""),
        ("listen [::]:443 ssl http2;\n", ""),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("server 127.0.0.1:8080 ", f"server 127.0.0.1:{app_port} "),
        ("/etc/letsencrypt/live/ferry.example.org", str(cert_dir)),
        ("/var/www/letsencrypt", str(webroot)),
        ("/var/lib/ferry/blobs/", f"{blobs}/"),
        ("client_max_body_size 2147483648;", f"client_max_body_size {MAX_UPLOAD};"),
        ("server_name ferry.example.org;", "server_name localhost;"),
    ]
    for old, new in replacements:
        assert old in text, f"nginx/bare-metal/ferry.conf no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def main_conf(base: Path, include: Path, extra=""):
    """A main nginx.conf like Debian's, with everything writable under base."""
    return f"""
worker_processes 2;
pid {base}/nginx.pid;
error_log {base}/nginx-error.log info;
{extra}
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {base}/nginx-access.log;
    client_body_temp_path {base}/client_body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    sendfile on;
    include {include};
}}
"""


@pytest.fixture(scope="module")
def stack():
    if not os.path.exists(NGINX):
        pytest.fail("nginx is not installed (apt-get install nginx-light)")
    base = Path(tempfile.mkdtemp(prefix="ferry-nginx-"))
    base.chmod(0o755)  # nginx workers (nobody) read the blobs below it
    pg = ferry = nginx = None
    try:
        pg = Postgres(base).start()
        metrics_port = free_port()
        ferry = Ferry(base, pg.url,
                      FERRY_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
                      FERRY_ACCEL_REDIRECT="/_protected/",
                      FERRY_TRUSTED_PROXIES="127.0.0.1/32",
                      FERRY_MAX_UPLOAD_BYTES=str(MAX_UPLOAD)).start()
        token = ferry.create_token()
        cert = make_cert(base / "tls")
        webroot = base / "acme"
        (webroot / ".well-known" / "acme-challenge").mkdir(parents=True)
        (webroot / ".well-known" / "acme-challenge" / "test-token").write_text("acme-ok")
        http_port, https_port = free_port(), free_port()
        conf = base / "ferry.conf"
        conf.write_text(render_bare_metal(http_port, https_port, ferry.port, cert.parent, webroot,
                                          ferry.data / "blobs"))
        main = base / "nginx.conf"
        main.write_text(main_conf(base, conf))
        test = run([NGINX, "-t", "-p", str(base), "-c", str(main)], check=False)
        assert test.returncode == 0, f"nginx -t failed:\n{test.stderr}"
        nginx = subprocess.Popen([NGINX, "-p", str(base), "-c", str(main), "-g", "daemon off;"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: direct().get(f"http://127.0.0.1:{http_port}/", allow_redirects=False,
                                      timeout=2).status_code == 301, 20, "nginx")
        yield {
            "base": base, "ferry": ferry, "token": token, "cert": str(cert),
            "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
            "http": f"http://127.0.0.1:{http_port}", "https": f"https://127.0.0.1:{https_port}",
        }
    finally:
        if nginx:
            nginx.terminate()
            nginx.wait(10)
        if ferry:
            ferry.stop()
        if pg:
            pg.stop()
        if os.environ.get("FERRY_TEST_KEEP"):
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def api(stack, auth=True):
    s = requests.Session()
    s.trust_env = False  # no proxies or CA bundles from the environment
    s.verify = stack["cert"]
    if auth:
        s.headers["Authorization"] = f"Bearer {stack['token']}"
    return s


def test_http_redirects_to_https_and_serves_the_acme_challenge(stack):
    r = api(stack, auth=False).get(stack["http"] + "/api/items?x=1", headers={"Host": "localhost"},
                     allow_redirects=False, timeout=5)
    assert r.status_code == 301
    assert r.headers["Location"] == "https://localhost/api/items?x=1"
    r = api(stack, auth=False).get(stack["http"] + "/.well-known/acme-challenge/test-token", timeout=5)
    assert r.status_code == 200 and r.text == "acme-ok"


def test_security_headers_once_each(stack):
    r = api(stack, auth=False).get(stack["https"] + "/healthz", timeout=5)
    assert r.status_code == 200
    raw = r.raw.headers
    for name, value in [("Strict-Transport-Security", "max-age=63072000"),
                        ("X-Content-Type-Options", "nosniff"),
                        ("X-Frame-Options", "DENY"),
                        ("Referrer-Policy", "same-origin")]:
        assert raw.getlist(name) == [value], f"{name}: {raw.getlist(name)}"
    assert r.headers.get("Server") == "nginx", "server_tokens off hides the version"


def test_tls_is_modern(stack):
    host = stack["https"].removeprefix("https://")
    for flag, ok in [("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)]:
        proc = subprocess.run(["openssl", "s_client", "-connect", host, "-servername", "localhost", flag],
                              input="", capture_output=True, text=True, timeout=20)
        assert (proc.returncode == 0) == ok, f"{flag}: {proc.stdout[-500:]}{proc.stderr[-500:]}"


def test_metrics_not_proxied(stack):
    r = api(stack, auth=False).get(stack["https"] + "/metrics", timeout=5)
    assert r.status_code == 404


def test_grafana_dashboard_uses_metrics_ferry_exports(stack):
    """compose/monitoring's dashboard must not drift from Ferry's metric names."""
    api(stack).post(stack["https"] + "/api/items", json={"text": "for the metrics"}, timeout=10)
    exported = set(re.findall(r"^# TYPE (\w+) (\w+)", api(stack, auth=False).get(stack["metrics"], timeout=5).text, re.M))
    names = {name for name, _ in exported}
    names |= {f"{name}_bucket" for name, kind in exported if kind == "histogram"}
    dashboard = json.loads((NGINX_DIR.parent / "compose" / "monitoring" / "grafana" / "dashboards" / "ferry.json").read_text())
    used = {m for panel in dashboard["panels"] for t in panel["targets"]
            for m in re.findall(r"\b(ferry_\w+)", t["expr"])}
    assert used and used <= names, f"not exported by Ferry: {used - names}"


class SlowBody:
    """A request body with a known length that stops half-way until `gate` returns
    true, so the test can see whether Ferry got the first half before the rest is sent."""

    def __init__(self, size, gate, chunk=1 << 20):
        self.size, self.gate, self.chunk = size, gate, chunk
        self.gate_result = None
        self.rng = hashlib.sha256()

    def __len__(self):
        return self.size

    def __iter__(self):
        sent = 0
        block = os.urandom(self.chunk)
        while sent < self.size:
            if sent >= self.size // 2 and self.gate_result is None:
                self.gate_result = self.gate()
            n = min(self.chunk, self.size - sent)
            piece = block[:n]
            self.rng.update(piece)
            sent += n
            yield piece


def test_large_upload_streams_through_and_downloads_via_x_accel(stack):
    size = 24 * 1024 * 1024  # far beyond nginx's client_body_buffer_size
    tmp = stack["ferry"].data / "tmp"

    def ferry_is_receiving():
        # With proxy_request_buffering off, Ferry is writing the upload to its tmp dir
        # while the client has sent only half of it.
        def partial_file():
            return any(p.stat().st_size > 0 for p in tmp.rglob("*.part"))
        try:
            wait_for(partial_file, 15, "a partial upload in Ferry's tmp dir")
            return True
        except TimeoutError:
            return False

    body = SlowBody(size, ferry_is_receiving)
    s = api(stack)
    r = s.put(stack["https"] + "/api/items", params={"name": "big.bin"}, data=body, timeout=120)
    assert r.status_code == 201, r.text
    assert body.gate_result is True, "nginx held the upload back instead of streaming it to Ferry"
    item = r.json()

    r = s.get(stack["https"] + f"/items/{item['id']}/content", timeout=60)
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == body.rng.hexdigest()
    assert "X-Accel-Redirect" not in r.headers
    assert "attachment" in r.headers.get("Content-Disposition", "")
    assert "sandbox" in r.headers.get("Content-Security-Policy", "")
    assert r.headers.get("X-Content-Type-Options") == "nosniff"

    # Ferry answered with an empty body and X-Accel-Redirect, so these bytes came from
    # nginx's internal location; Range requests work there too.
    r = s.get(stack["https"] + f"/items/{item['id']}/content", headers={"Range": "bytes=10-19"}, timeout=10)
    assert r.status_code == 206 and len(r.content) == 10


def test_upload_over_the_limit_is_refused(stack):
    s = api(stack)
    r = s.put(stack["https"] + "/api/items", params={"name": "huge.bin"},
              data=b"x" * (MAX_UPLOAD + 1), timeout=60)
    assert r.status_code == 413


def test_sse_events_arrive_without_buffering(stack):
    s = api(stack)
    events = queue.Queue()
    ready = threading.Event()

    def listen():
        with s.get(stack["https"] + "/events", stream=True, timeout=30,
                   headers={"Accept": "text/event-stream"}) as r:
            assert r.status_code == 200
            ready.set()
            name = None
            for line in r.iter_lines(chunk_size=1, decode_unicode=True):
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and name == "item.created":
                    events.put((time.monotonic(), json.loads(line.split(":", 1)[1])))
                    return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert ready.wait(10), "the SSE response did not start"
    time.sleep(0.3)
    posted = time.monotonic()
    r = s.post(stack["https"] + "/api/items", json={"text": "hello through nginx"}, timeout=10)
    assert r.status_code == 201, r.text
    arrived, item = events.get(timeout=10)
    assert item["id"] == r.json()["id"]
    assert arrived - posted < 1.0, f"event took {arrived - posted:.2f}s: buffered?"


def test_static_assets_are_cached_long_and_compressed(stack):
    r = api(stack, auth=False).get(stack["https"] + "/static/app.js",
                                headers={"Accept-Encoding": "gzip"}, timeout=5)
    assert r.status_code == 200
    cc = r.raw.headers.getlist("Cache-Control")
    assert len(cc) == 1 and "max-age=31536000" in cc[0] and "public" in cc[0], cc
    assert r.headers.get("Content-Encoding") == "gzip"
    assert r.headers.get("X-Frame-Options") == "DENY"


def render_docker_templates(values):
    """What the official image's entrypoint does: envsubst on *.template, only for
    the variables that are set (nginx's own $variables are left alone)."""
    out = {}
    for template in sorted((NGINX_DIR / "docker" / "templates").glob("*.template")):
        text = template.read_text()
        used = set(re.findall(r"\$\{([A-Z_]+)\}", text))
        missing = used - set(values)
        assert not missing, f"{template.name} uses unset variables {missing}"
        for k, v in values.items():
            text = text.replace("${" + k + "}", v)
        out[template.name.removesuffix(".template")] = text
    return out


def test_official_image_templates_pass_nginx_t(tmp_path):
    tmp_path.chmod(0o755)
    cert = make_cert(tmp_path / "live" / "localhost")
    confd = tmp_path / "conf.d"
    confd.mkdir()
    rendered = render_docker_templates({
        "FERRY_SERVER_NAME": "localhost",
        "FERRY_UPSTREAM": "127.0.0.1:8080",
        "FERRY_MAX_UPLOAD_BYTES": "2147483648",
        "FERRY_TLS_CERT_DIR": str(cert.parent),
        "NGINX_LISTEN_HTTP": f"127.0.0.1:{free_port()}",
        "NGINX_LISTEN_HTTPS": f"127.0.0.1:{free_port()}",
    })
    for name, text in rendered.items():
        (confd / name).write_text(text)
    main = (NGINX_DIR / "docker" / "nginx.conf").read_text()
    for old, new in [("user nginx;", "user nobody nogroup;"), ("/tmp/nginx", f"{tmp_path}/nginx"),
                     ("include /etc/nginx/conf.d/*.conf;", f"include {confd}/*.conf;")]:
        assert old in main
        main = main.replace(old, new)
    (tmp_path / "nginx.conf").write_text(main)
    proc = run([NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], check=False)
    assert proc.returncode == 0, proc.stderr


def test_both_configs_have_the_same_locations():
    bare = (NGINX_DIR / "bare-metal" / "ferry.conf").read_text()
    docker = "".join(render_docker_templates({k: "X" for k in [
        "FERRY_SERVER_NAME", "FERRY_UPSTREAM", "FERRY_MAX_UPLOAD_BYTES", "FERRY_TLS_CERT_DIR",
        "NGINX_LISTEN_HTTP", "NGINX_LISTEN_HTTPS"]}).values())
    strip = lambda s: sorted(set(re.findall(r"^\s*location ([^{]+)\{", s, re.M)) - {"= /nginx-health "})  # noqa: E731
    assert strip(bare) == strip(docker)
    directives = lambda s: sorted(set(re.findall(r"^\s*((?:add_header|proxy_\w+|gzip\w*|ssl_\w+|client_max_body_size|expires|keepalive|internal)\b[^;]*);", s, re.M)))  # noqa: E731
    normalise = lambda ds: sorted(d for d in ds if not d.startswith(("ssl_certificate", "client_max_body_size")))  # noqa: E731
    assert normalise(directives(bare)) == normalise(directives(docker))
