"""The services a soak runs against, all on 127.0.0.1: a small tmpfs as the shared
data directory, a throwaway PostgreSQL cluster (or SQLite in the data directory),
one or two replicas of the release binary, and Debian's nginx in front of them with
the bare-metal configuration. The pieces come from tests/deploy (native.py,
test_nginx.py) and benches/processes.py; this module only wires them together and adds
the faults: SIGKILL and restart of a replica, a PostgreSQL restart, a full disk."""

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "deploy"))
sys.path.insert(0, str(ROOT / "benches"))

import native  # noqa: E402  tests/deploy: Postgres and Ferry on loopback
import test_nginx  # noqa: E402  tests/deploy: the nginx config as the tests render it
from processes import raise_fd_limit, stop_process  # noqa: E402  benches/processes.py

MIB = 1 << 20
MAX_UPLOAD = 64 * MIB
# The free-space reserve the replicas keep; the disk fault goes below it and further.
MIN_FREE = 16 * MIB


class Tmpfs:
    """A tmpfs of a fixed size: the data disk that the disk fault fills up."""

    def __init__(self, path: Path, size_mib: int):
        self.path, self.size_mib = path, size_mib
        self.filler = None

    def mount(self):
        if os.geteuid() != 0:
            raise PermissionError("the soak mounts a tmpfs as its data disk: run it as root")
        self.path.mkdir(parents=True)
        native.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mib}m,mode=0755", "tmpfs",
                    str(self.path)])
        return self

    def free_bytes(self):
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self):
        """Write a filler file until the disk is full (ENOSPC). Returns its size."""
        self.filler = self.path / "filler"
        block = b"\0" * MIB
        written = 0
        with open(self.filler, "wb", buffering=0) as f:
            while True:
                try:
                    written += f.write(block)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
        return written

    def free(self):
        if self.filler:
            self.filler.unlink(missing_ok=True)
            self.filler = None

    def unmount(self):
        native.run(["umount", "-l", str(self.path)], check=False)


class Postgres(native.Postgres):
    """tests/deploy's throwaway cluster, plus a restart in the middle of the run."""

    def restart(self):
        native.run(self.prefix + [str(native.PG_BIN / "pg_ctl"), "-D", str(self.dir), "-m", "fast",
                                  "-w", "-t", "60", "-l", str(self.dir / "server.log"), "restart"])


class Replica:
    """One `ferry serve` process (tests/deploy's Ferry) on the shared data directory."""

    def __init__(self, base: Path, name: str, data: Path, database_url: str, **settings):
        home = base / name
        home.mkdir()
        self.name = name
        self.ferry = native.Ferry(home, database_url, FERRY_DATA_DIR=str(data), **settings)
        self.ferry.data = data
        self.url = f"http://127.0.0.1:{self.ferry.port}"

    @property
    def port(self):
        return self.ferry.port

    def start(self):
        self.ferry.start()
        return self

    def kill(self):
        """SIGKILL: no graceful shutdown, in-flight uploads are cut off mid-write."""
        proc = self.ferry.proc
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self):
        """SIGTERM and wait: a clean stop, after which the tmp dir must be empty."""
        stop_process(self.ferry.proc, 40)
        return self.ferry.proc.returncode if self.ferry.proc else None

    def log_tail(self):
        return self.ferry.log_text()


class Nginx:
    """nginx/bare-metal/ferry.conf rendered as the nginx tests render it, with every
    replica in the upstream and a plain-HTTP listener beside TLS (TLS is not what a
    soak is about, and it costs the two cores a lot)."""

    def __init__(self, base: Path, replicas, blobs: Path):
        self.base = base
        http_port, https_port, self.port = native.free_port(), native.free_port(), native.free_port()
        cert = test_nginx.make_cert(base / "tls")
        webroot = base / "acme"
        webroot.mkdir(exist_ok=True)
        test_nginx.MAX_UPLOAD = MAX_UPLOAD
        text = test_nginx.render_bare_metal(http_port, https_port, replicas[0].port, cert.parent,
                                            webroot, blobs)
        first = f"server 127.0.0.1:{replicas[0].port} max_fails=3 fail_timeout=10s;"
        tls_listen = f"listen 127.0.0.1:{https_port} ssl http2;"
        for needle in (first, tls_listen):
            if needle not in text:
                raise RuntimeError(f"nginx/bare-metal/ferry.conf no longer contains {needle!r}")
        others = "".join(f"\n    server 127.0.0.1:{r.port} max_fails=3 fail_timeout=10s;"
                         for r in replicas[1:])
        text = text.replace(first, first + others)
        text = text.replace(tls_listen, f"{tls_listen}\n    listen 127.0.0.1:{self.port};")
        conf = base / "ferry.conf"
        conf.write_text(text)
        main = test_nginx.main_conf(base, conf, extra="worker_rlimit_nofile 8192;")
        # A few hundred event streams hold two connections each (client and upstream).
        main = main.replace("worker_connections 256;", "worker_connections 4096;")
        self.main = base / "nginx.conf"
        self.main.write_text(main)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        native.run([test_nginx.NGINX, "-t", "-p", str(self.base), "-c", str(self.main)])
        self.proc = subprocess.Popen([test_nginx.NGINX, "-p", str(self.base), "-c", str(self.main),
                                      "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        native.wait_for(lambda: native.direct().get(self.url + "/healthz", timeout=2).ok, 20,
                        "nginx in front of the replicas")
        return self

    def stop(self):
        stop_process(self.proc, 20)


class Stack:
    """One configuration: "postgres" (two replicas) or "sqlite" (one process)."""

    def __init__(self, base: Path, config: str, disk_mib: int):
        self.base, self.config = base, config
        self.disk = Tmpfs(base / "data", disk_mib)
        self.pg = None
        self.replicas = []
        self.nginx = None
        self.token = None

    @property
    def data(self):
        return self.disk.path

    def start(self):
        raise_fd_limit()
        self.disk.mount()
        if self.config == "postgres":
            self.pg = Postgres(self.base).start()
            url, count = self.pg.url, 2
        else:
            url, count = f"sqlite://{self.data}/ferry.db", 1
        settings = {
            "FERRY_MIN_FREE_BYTES": str(MIN_FREE),
            "FERRY_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
            "FERRY_ACCEL_REDIRECT": "/_protected/",
            "FERRY_TRUSTED_PROXIES": "127.0.0.1/32",
            "FERRY_SHUTDOWN_GRACE": "20s",
            "FERRY_LOG": "ferry=info,tower_http=warn",
        }
        for i in range(count):
            self.replicas.append(Replica(self.base, f"replica{i + 1}", self.data, url, **settings))
        # The first replica migrates alone, then the CLI makes the soak's account.
        self.replicas[0].start()
        self.token = self.replicas[0].ferry.create_token("soak")
        for r in self.replicas[1:]:
            r.start()
        self.nginx = Nginx(self.base, self.replicas, self.data / "blobs").start()
        return self

    def restart_postgres(self):
        self.pg.restart()

    def event_log(self, last_item):
        """The events table, read from the database itself: (id, kind, item id) of
        every event up to `last_item`'s item.created, in id order."""
        sql = ("select id, kind, item_id from events where id <= (select max(id) from events "
               "where kind = 'item.created' and item_id = '{0}') order by id").format(last_item.replace("'", ""))
        if self.pg:
            out = native.run([str(native.PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.pg.port), "-U",
                              "postgres", "-d", "ferry", "-X", "-A", "-t", "-F", "\t", "-c", sql]).stdout
            rows = [line.split("\t") for line in out.splitlines() if line]
            return [(int(i), kind, item) for i, kind, item in rows]
        db = sqlite3.connect(f"file:{self.data / 'ferry.db'}?mode=ro", uri=True)
        try:
            return [(int(i), kind, item) for i, kind, item in db.execute(sql)]
        finally:
            db.close()

    def stop_replicas(self):
        """Clean stops; returns {name: exit code}."""
        return {r.name: r.stop() for r in self.replicas}

    def stop(self):
        for stop in ([self.nginx.stop] if self.nginx else []) + [r.stop for r in self.replicas]:
            try:
                stop()
            except Exception as e:  # noqa: BLE001 - the rest must still stop
                print(f"stopping: {e}", file=sys.stderr)
        if self.pg:
            self.pg.stop()
        self.disk.unmount()

    def tmp_leftovers(self):
        """Everything under FERRY_DATA_DIR/tmp/ (after a clean stop it must be empty)."""
        tmp = self.data / "tmp"
        return sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*")) if tmp.exists() else []

    def wait_ready(self, replica, timeout=60):
        native.wait_for(lambda: native.direct().get(replica.url + "/readyz", timeout=2).ok,
                        timeout, f"{replica.name} ready")


def now():
    return time.monotonic()
