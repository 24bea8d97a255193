"""Real services on loopback for the native nginx test: a throwaway PostgreSQL cluster
and the release binary of Ferry."""

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests

from dockerutil import ROOT, run

PG_BIN = Path(os.environ.get("FERRY_PG_BIN", "/usr/lib/postgresql/15/bin"))
FERRY_BIN = Path(os.environ.get("FERRY_BIN", ROOT / "target" / "release" / "ferry"))


def direct():
    """A requests session that ignores proxy and CA settings from the environment."""
    s = requests.Session()
    s.trust_env = False
    return s


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as e:  # noqa: BLE001 - reported below
            last = e
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


class Postgres:
    """initdb + pg_ctl on a loopback port. PostgreSQL refuses to run as root, so as root
    the cluster belongs to the `postgres` user (runuser)."""

    def __init__(self, base: Path):
        self.dir = base / "pg"
        self.sock = base / "pgsock"
        self.port = free_port()
        self.prefix = []
        if os.geteuid() == 0:
            pwd.getpwnam("postgres")  # installed with postgresql-15
            self.prefix = ["runuser", "-u", "postgres", "--"]

    def _chown(self, path):
        if self.prefix:
            shutil.chown(path, "postgres", "postgres")

    def start(self):
        if not (PG_BIN / "initdb").exists():
            raise FileNotFoundError(f"{PG_BIN}/initdb is missing (apt-get install postgresql-15)")
        self.dir.mkdir()
        self.sock.mkdir()
        self._chown(self.dir)
        self._chown(self.sock)
        run(self.prefix + [str(PG_BIN / "initdb"), "-D", str(self.dir), "-U", "postgres",
                           "--auth=trust", "--locale=C.UTF-8", "-E", "UTF8"])
        run(self.prefix + [str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-w", "-t", "60",
                           "-l", str(self.dir / "server.log"),
                           "-o", f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off",
                           "start"])
        run(self.prefix + [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                           "-U", "postgres", "ferry"])
        return self

    @property
    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/ferry"

    def stop(self):
        run(self.prefix + [str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-m", "fast", "-w", "stop"],
            check=False)


class Ferry:
    """The release binary serving on a loopback port."""

    def __init__(self, base: Path, database_url: str, **settings):
        self.port = free_port()
        self.data = base / "data"
        self.log_path = base / "ferry.log"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "FERRY_LISTEN": f"127.0.0.1:{self.port}",
            "FERRY_DATA_DIR": str(self.data),
            "FERRY_DATABASE_URL": database_url,
            "FERRY_LOG_FORMAT": "pretty",
            "FERRY_MIN_FREE_BYTES": "0",
            **settings,
        }
        self.proc = None

    def cli(self, *args, input=None):
        return run([str(FERRY_BIN), *args], env=self.env, input=input)

    def start(self):
        if not FERRY_BIN.exists():
            raise FileNotFoundError(f"{FERRY_BIN} is missing: cargo build --release")
        self.data.mkdir(exist_ok=True)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(FERRY_BIN), "serve"], env=self.env,
                                     stdout=self.log, stderr=self.log, start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"ferry exited with {self.proc.returncode}:\n{self.log_text()}")
            return direct().get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200

        wait_for(ready, 60, "ferry /readyz")
        return self

    def log_text(self):
        return self.log_path.read_text(errors="replace")[-4000:]

    def create_token(self, user="admin", password="correct horse battery staple"):
        self.cli("user", "add", user, "--admin", input=password + "\n")
        return self.cli("token", "create", "deploy-test", "--user", user).stdout.strip()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
