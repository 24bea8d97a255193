"""The processes `benches/run.py` measures and drives: the load tools, `ferry serve`,
a throwaway PostgreSQL cluster and nginx, each on a free loopback port and stopped
within a bounded time."""

import http.client
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "deploy"))

FERRY = ROOT / "target" / "release" / "ferry"
PG_BIN = Path(os.environ.get("FERRY_PG_BIN", "/usr/lib/postgresql/15/bin"))
GIB = 1 << 30
MIB = 1 << 20


def run(cmd, check=True, timeout=900, **kwargs):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    proc = subprocess.run([str(c) for c in cmd], timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
                           f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit():
    """10,000 event streams need more descriptors than a soft limit of 1024;
    children (Ferry, the load client) inherit the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc_kb(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def api_delete(port, token, item_id):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("DELETE", f"/api/items/{item_id}", headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 204:
            raise RuntimeError(f"DELETE /api/items/{item_id} answered {resp.status}")
    finally:
        conn.close()


def http_status(port, path, headers=None, timeout=2):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def clean_env(**extra):
    """The environment without any FERRY_* of the caller, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Load:
    """benches/load/, built by cargo in the release profile."""

    def __init__(self, exe):
        self.exe = exe

    def __call__(self, *args, env=None, timeout=900):
        proc = run([self.exe, *args], env=env or clean_env(), timeout=timeout)
        return json.loads(proc.stdout.strip().splitlines()[-1])


def stop_process(proc, secs):
    """SIGTERM, and SIGKILL if the process is still there after `secs` seconds."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(secs)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Server:
    """target/release/ferry serve on a loopback port, with a clean environment."""

    def __init__(self, base, name, data_dir, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / f"{name}.log"
        self.env = clean_env(
            FERRY_LISTEN=f"127.0.0.1:{self.port}",
            FERRY_DATA_DIR=data_dir,
            **settings,
        )
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(FERRY), "serve"], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ferry exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if http_status(self.port, "/readyz") == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"ferry not ready within 60 s: {self.log_tail()}")

    @property
    def pid(self):
        return self.proc.pid

    def rss_kb(self):
        return proc_kb(self.pid)

    def log_tail(self):
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self):
        stop_process(self.proc, 30)
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Postgres:
    """A throwaway cluster on a loopback port with PostgreSQL's default durability
    (fsync on), as a production server runs. As root it runs as `postgres`."""

    def __init__(self, base):
        self.dir = base / "pg"
        self.sock = base / "pgsock"
        self.port = free_port()
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self):
        if not (PG_BIN / "initdb").exists():
            raise FileNotFoundError(f"{PG_BIN}/initdb is missing (apt-get install postgresql-15)")
        for d in (self.dir, self.sock):
            d.mkdir()
            if self.prefix:
                shutil.chown(d, "postgres", "postgres")
        run(self.prefix + [PG_BIN / "initdb", "-D", self.dir, "-U", "postgres", "--auth=trust",
                           "--locale=C.UTF-8", "-E", "UTF8"])
        run(self.prefix + [PG_BIN / "pg_ctl", "-D", self.dir, "-w", "-t", "60",
                           "-l", self.dir / "server.log",
                           "-o", f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 "
                                 f"-c max_connections=200",
                           "start"])
        run(self.prefix + [PG_BIN / "createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres",
                           "ferry"])
        return self

    @property
    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/ferry"

    def stop(self):
        run(self.prefix + [PG_BIN / "pg_ctl", "-D", self.dir, "-m", "fast", "-w", "stop"], check=False)


class Nginx:
    """Debian's nginx with nginx/bare-metal/ferry.conf, rendered by the nginx tests'
    own function (TLS on one port), plus a plain-HTTP listener in the same server
    block so the proxy's cost can be told apart from TLS's."""

    def __init__(self, base, app_port, blobs):
        import test_nginx  # tests/deploy: the same rendering the nginx tests use

        self.base = base
        self.http_port, self.https_port, self.plain_port = free_port(), free_port(), free_port()
        self.static_port = free_port()
        cert = test_nginx.make_cert(base / "tls")
        webroot = base / "acme"
        webroot.mkdir(exist_ok=True)
        test_nginx.MAX_UPLOAD = 2 * GIB  # as shipped; the tests lower it
        text = test_nginx.render_bare_metal(self.http_port, self.https_port, app_port, cert.parent,
                                            webroot, blobs)
        tls_listen = f"listen 127.0.0.1:{self.https_port} ssl http2;"
        assert tls_listen in text
        text = text.replace(tls_listen, f"{tls_listen}\n    listen 127.0.0.1:{self.plain_port};")
        # nginx sending the blobs with no request to Ferry: the X-Accel ceiling.
        text += (f"\nserver {{\n    listen 127.0.0.1:{self.static_port};\n"
                 f"    location /blobs/ {{ alias {blobs}/; }}\n}}\n")
        conf = base / "ferry.conf"
        conf.write_text(text)
        self.main = base / "nginx.conf"
        self.main.write_text(test_nginx.main_conf(base, conf))
        self.nginx = test_nginx.NGINX
        self.proc = None

    def start(self):
        run([self.nginx, "-t", "-p", self.base, "-c", self.main])
        self.proc = subprocess.Popen([self.nginx, "-p", str(self.base), "-c", str(self.main),
                                      "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                http_status(self.plain_port, "/readyz")
                return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("nginx did not start")

    @property
    def plain_url(self):
        return f"http://127.0.0.1:{self.plain_port}"

    @property
    def tls_url(self):
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def static_url(self):
        return f"http://127.0.0.1:{self.static_port}"

    def stop(self):
        stop_process(self.proc, 20)
