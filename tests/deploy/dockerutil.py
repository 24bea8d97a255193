"""Shared helpers for the deployment tests: a Docker engine, docker-compose, paths."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
NGINX_DIR = ROOT / "nginx"
CONTRACT_PATH = ROOT / "nix" / "image-contract.json"
CACHE_DIR = Path(os.environ.get("FERRY_TEST_CACHE", Path.home() / ".cache" / "ferry-test"))


def load_contract():
    with open(CONTRACT_PATH) as f:
        return json.load(f)


def run(cmd, check=True, **kwargs):
    """subprocess.run with text output captured; on failure show what was printed."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    proc = subprocess.run(cmd, **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def docker_ready():
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True
    ).returncode == 0


def ensure_docker():
    """Return None when a Docker engine answers (starting dockerd as root if needed),
    otherwise a sentence saying why none could be started."""
    if docker_ready():
        return None
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)
    if dockerd is None:
        return "no Docker engine answers and dockerd is not installed"
    if os.geteuid() != 0:
        return "no Docker engine answers and starting dockerd needs root"
    log_path = CACHE_DIR / "dockerd.log"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    subprocess.Popen([dockerd], stdout=log, stderr=log, start_new_session=True)
    for _ in range(120):
        if docker_ready():
            return None
        time.sleep(0.5)
    tail = log_path.read_text(errors="replace")[-3000:]
    return f"dockerd did not become ready; its log ends with:\n{tail}"


def image_exists(ref):
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode == 0
