"""What `benches/run.py` compares Ferry's figures with, measured on the same machine
in the same run: dd, cat and wrk, plus the CPU time and sizes around them."""

import os
import re
import statistics
import subprocess
import time
import zlib

from processes import MIB, run


def sync():
    subprocess.run(["sync"], check=False, timeout=300)


def dd_fsync(path, nbytes):
    """MB/s of `dd bs=1M conv=fsync` writing nbytes to path."""
    sync()
    t0 = time.monotonic()
    run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={nbytes // MIB}", "conv=fsync"])
    secs = time.monotonic() - t0
    os.unlink(path)
    return nbytes / secs / 1e6


def cat_rate(path, runs):
    """Median MB/s of `cat FILE > /dev/null` (the file is in the page cache, as it is
    for the downloads it is compared with)."""
    size = os.path.getsize(path)
    rates = []
    for _ in range(max(runs, 1)):
        t0 = time.monotonic()
        with open(os.devnull, "wb") as null:
            subprocess.run(["cat", str(path)], stdout=null, check=True, timeout=300)
        rates.append(size / (time.monotonic() - t0) / 1e6)
    return statistics.median(rates)


def cpu_secs(pid):
    """User + system CPU time a process has used, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, secs, header, pids=()):
    """Requests per second, p99 latency (ms) at 64 connections, and the CPU time the
    server processes spent per request (steadier than rates on a shared machine)."""
    before = sum(cpu_secs(p) for p in pids)
    out = run(["wrk", "-t2", "-c64", f"-d{secs}s", "--timeout", "10s", "--latency", "-H", header, url],
              timeout=secs + 120).stdout
    cpu = sum(cpu_secs(p) for p in pids) - before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if non2xx:
        raise RuntimeError(f"wrk saw {non2xx.group(1)} non-2xx answers from {url}:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "p99_ms": p99, "server_cpu_us_per_request": cpu / max(requests, 1) * 1e6,
            "socket_errors": errors.group(0) if errors else None, "output": out}


def gzip_size(cmd):
    """Bytes of gzip -6 of a command's output, streamed."""
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    total = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE) as p:
        while chunk := p.stdout.read(1 << 20):
            total += len(comp.compress(chunk))
        total += len(comp.flush())
        if p.wait(60) != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed")
    return total
