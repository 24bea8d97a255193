#!/usr/bin/env python3
"""Ferry's benchmarks, run by `nox -s bench` (`nox -s bench -- --quick` for a smoke run
with small sizes).

The release binary (target/release/ferry) runs as separate processes and is measured
from outside: the load tools of benches/load.rs (seeding, start timing, transfers,
the Server-Sent Events client), Debian's nginx with the bare-metal config rendered as
the nginx tests render it, a throwaway PostgreSQL cluster, wrk, dd and cat. Every
figure is measured in the same run as its reference. The table is printed and the
same figures are written to target/bench/results.json so runs can be compared.

Only 127.0.0.1 is contacted; every wait is bounded. No figure is asserted: a missed
target is reported, not failed (see docs/performance.md).
"""

import argparse
import http.client
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "deploy"))

FERRY = ROOT / "target" / "release" / "ferry"
OUT_DIR = ROOT / "target" / "bench"
PG_BIN = Path(os.environ.get("FERRY_PG_BIN", "/usr/lib/postgresql/15/bin"))
LOADAVG_AT_START = os.getloadavg()
GIB = 1 << 30
MIB = 1 << 20

SIZES = {
    "full": {
        "start_runs": 10,
        "items": 100_000,
        "transfer_bytes": GIB,
        "transfer_runs": 3,
        "sse_n": [100, 1_000, 10_000],
        "sse_notes": 5,
        "wrk_secs": 10,
    },
    "quick": {
        "start_runs": 3,
        "items": 2_000,
        "transfer_bytes": 64 * MIB,
        "transfer_runs": 1,
        "sse_n": [10, 100],
        "sse_notes": 2,
        "wrk_secs": 2,
    },
}


# ---------------------------------------------------------------- results

class Target:
    """A figure to beat: `op` is "<" (below) or ">=" (at least); on the row's ratio to
    its reference when `on_ratio`, else on its value."""

    def __init__(self, op, threshold, text, on_ratio=False):
        self.op, self.threshold, self.text, self.on_ratio = op, threshold, text, on_ratio

    def check(self, value, ratio):
        subject = ratio if self.on_ratio else value
        if subject is None:
            return None
        return subject < self.threshold if self.op == "<" else subject >= self.threshold


def below(threshold, text):
    return Target("<", threshold, text)


def at_least(threshold, text):
    return Target(">=", threshold, text)


def ratio_at_least(threshold, text):
    return Target(">=", threshold, text, on_ratio=True)


class Results:
    """Rows of the table; each row has a stable key so runs can be compared."""

    def __init__(self, judge=True):
        """With `judge` false (the quick run, whose sizes are not the targets'), targets
        are shown but not judged."""
        self.judge = judge
        self.rows = []
        self.raw = {}
        self.errors = []

    def add(self, key, label, value, unit, ref=None, ref_label=None, ratio=None, target=None,
            note=None):
        """A row; `target` (a Target) is checked against the ratio or the value."""
        met = target.check(value, ratio) if target and self.judge else None
        row = {
            "key": key, "label": label, "value": value, "unit": unit,
            "reference": ref, "reference_label": ref_label, "ratio": ratio,
            "target": target.text if target else None, "met": met, "note": note,
        }
        self.rows.append(row)
        print(f"  {label}: {fmt(value)} {unit}"
              + (f"  ({ratio:.0%} of {ref_label} {fmt(ref)})" if ratio is not None else "")
              + (f"  [{target.text}: {'met' if met else 'MISSED'}]" if met is not None else "")
              + (f"  {note}" if note else ""),
              flush=True)
        return row

    def error(self, section, exc):
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self.errors.append({"section": section, "error": text})
        print(f"!! {section} failed: {text}", flush=True)
        traceback.print_exc()


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def print_table(results):
    headers = ["measurement", "value", "reference", "ratio", "target", "met"]
    lines = []
    for r in results.rows:
        ref = "-" if r["reference"] is None else f"{fmt(r['reference'])} ({r['reference_label']})"
        lines.append([
            r["label"], f"{fmt(r['value'])} {r['unit']}", ref,
            "-" if r["ratio"] is None else f"{r['ratio']:.0%}",
            r["target"] or "-",
            {True: "yes", False: "NO", None: "-"}[r["met"]],
        ])
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(headers)]
    sep = "  "
    print()
    print(sep.join(h.ljust(w) for h, w in zip(headers, widths)))
    print(sep.join("-" * w for w in widths))
    for l in lines:
        print(sep.join(c.ljust(w) for c, w in zip(l, widths)))
    if not results.judge:
        print("(quick run: small sizes, so the targets are shown but not judged)")
    for e in results.errors:
        print(f"ERROR in {e['section']}: {e['error']}")


# ---------------------------------------------------------------- processes

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
    """benches/load.rs, built by cargo in the release profile."""

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


# ---------------------------------------------------------------- references

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


# ---------------------------------------------------------------- sections

class Bench:
    def __init__(self, quick, load, keep):
        self.quick = quick
        self.size = SIZES["quick" if quick else "full"]
        self.load = load
        self.keep = keep
        self.results = Results(judge=not quick)
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        # Below the project (same disk as a data dir there), readable by nginx workers.
        self.base = Path(tempfile.mkdtemp(prefix="work-", dir=OUT_DIR))
        self.base.chmod(0o755)
        self.seeded = self.base / "seeded"
        self.creds = None
        self.transfer_id = None

    def section(self, name, fn):
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - recorded, the other sections still run
            self.results.error(name, e)
        self.results.raw.setdefault("section_secs", {})[name] = round(time.monotonic() - t0, 1)

    def mb(self, nbytes):
        return f"{nbytes // MIB} MiB" if nbytes < GIB else f"{nbytes // GIB} GiB"

    # -- start

    def start(self):
        s, R = self.size, self.results
        runs = s["start_runs"]
        empty = self.load("start", "--ferry", FERRY, "--data-dir", self.base / "empty", "--fresh",
                          "--runs", runs, "--log", self.base / "start.log")
        R.raw["start_empty"] = empty
        R.add("start.empty_ms", f"ready after start, empty data dir (median of {runs})",
              empty["median_ms"], "ms", target=below(50, "< 50 ms"))
        seed = self.load("seed", "--database-url", f"sqlite://{self.seeded}/ferry.db",
                         "--data-dir", self.seeded, "--items", s["items"])
        self.creds = seed
        R.raw["seed_sqlite"] = {k: v for k, v in seed.items() if k not in ("token", "session")}
        full = self.load("start", "--ferry", FERRY, "--data-dir", self.seeded, "--runs", runs,
                         "--log", self.base / "start.log")
        R.raw["start_seeded"] = full
        R.add("start.items_ms", f"ready after start, {s['items']:,} items (median of {runs})",
              full["median_ms"], "ms")

    def server(self, name, **settings):
        return Server(self.base, name, self.seeded, **settings)

    # -- memory and transfers, direct

    def direct(self):
        s, R = self.size, self.results
        n = s["transfer_bytes"]
        auth = {"Authorization": f"Bearer {self.creds['token']}"}
        with self.server("idle") as srv:
            for path in ("/readyz", "/api/items", "/"):
                http_status(srv.port, path, auth)
            time.sleep(2)
            R.add("memory.idle_mb", "RSS at idle (after start and a few requests)", srv.rss_kb() / 1024,
                  "MB", target=below(12, "< 12 MB"))

        for mode in ("raw", "multipart"):
            with self.server(f"upload-{mode}") as srv:
                up = self.uploads(srv, srv.url, mode)
            R.raw[f"upload_{mode}"] = up
            R.add(f"memory.upload_{mode}_growth_mb",
                  f"peak RSS growth, {self.mb(n)} upload ({mode})", up["rss_growth_kb"] / 1024, "MB",
                  target=below(8, "< 8 MB"))
            R.add(f"upload.direct_{mode}_mb_s", f"upload {self.mb(n)} direct ({mode})", up["mb_per_s"],
                  "MB/s", ref=up["ref_mb_per_s"], ref_label="dd conv=fsync", ratio=up["ratio"],
                  target=ratio_at_least(0.9, ">= 90% of dd") if mode == "raw" else None)
            if mode == "raw":
                self.transfer_id = up["id"]

        with self.server("download") as srv:
            down = self.downloads(srv.url, self.transfer_id)
        R.raw["download_direct"] = down
        R.add("download.direct_mb_s", f"download {self.mb(n)} direct", down["mb_per_s"], "MB/s",
              ref=down["ref_mb_per_s"], ref_label="cat", ratio=down["ratio"],
              target=ratio_at_least(0.25, ">= 25% of cat"))

    def uploads(self, srv, url, mode="raw"):
        """`transfer_runs` pairs of `dd conv=fsync` and an upload of the same size, one
        right after the other, so both see the disk in the same state. Medians of the
        rates and of the per-pair ratios; the largest RSS growth. All but the last
        upload are deleted again."""
        n, runs = self.size["transfer_bytes"], self.size["transfer_runs"]
        pairs = []
        for i in range(runs):
            dd = dd_fsync(self.seeded / "dd.bin", n)
            sync()
            up = self.load("upload", "--url", url, "--token", self.creds["token"], "--bytes", n,
                           "--mode", mode, "--pid", srv.pid, "--insecure-tls")
            pairs.append((dd, up))
            if i < runs - 1:
                api_delete(srv.port, self.creds["token"], up["id"])
        return {
            "mb_per_s": statistics.median(u["mb_per_s"] for _, u in pairs),
            "ref_mb_per_s": statistics.median(d for d, _ in pairs),
            "ratio": statistics.median(u["mb_per_s"] / d for d, u in pairs),
            "rss_growth_kb": max(u["rss_growth_kb"] for _, u in pairs),
            "id": pairs[-1][1]["id"],
            "runs": [{"dd_mb_per_s": d, **u} for d, u in pairs],
        }

    def downloads(self, url, item_id, path=None):
        """`transfer_runs` pairs of `cat FILE > /dev/null` and a download of the same
        file (the item's content, or `path`), alternated; medians of the rates and of
        the per-pair ratios."""
        blob = self.seeded / "blobs" / item_id
        cat_rate(blob, 1)  # into the page cache
        pairs = []
        for _ in range(self.size["transfer_runs"]):
            cat = cat_rate(blob, 1)
            down = self.load("download", "--url", url, "--token", self.creds["token"], "--id", item_id,
                             "--insecure-tls", *(["--path", path] if path else []))
            pairs.append((cat, down["mb_per_s"]))
        return {
            "mb_per_s": statistics.median(d for _, d in pairs),
            "ref_mb_per_s": statistics.median(c for c, _ in pairs),
            "ratio": statistics.median(d / c for c, d in pairs),
            "runs": [{"cat_mb_per_s": c, "mb_per_s": d} for c, d in pairs],
        }

    # -- through nginx

    def nginx(self):
        s, R = self.size, self.results
        n = s["transfer_bytes"]
        nginx_base = self.base / "nginx"
        nginx_base.mkdir()
        with self.server("behind-nginx", FERRY_ACCEL_REDIRECT="/_protected/",
                         FERRY_TRUSTED_PROXIES="127.0.0.1/32") as srv:
            ngx = Nginx(nginx_base, srv.port, self.seeded / "blobs").start()
            try:
                ids = {}
                for proto, url in (("plain", ngx.plain_url), ("tls", ngx.tls_url)):
                    up = self.uploads(srv, url)
                    ids[proto] = up["id"]
                    R.raw[f"upload_nginx_{proto}"] = up
                    label = "HTTP" if proto == "plain" else "HTTPS"
                    R.add(f"upload.nginx_{proto}_mb_s", f"upload {self.mb(n)} through nginx ({label})",
                          up["mb_per_s"], "MB/s", ref=up["ref_mb_per_s"], ref_label="dd conv=fsync",
                          ratio=up["ratio"], target=ratio_at_least(0.9, ">= 90% of dd"))
                for proto, url in (("plain", ngx.plain_url), ("tls", ngx.tls_url)):
                    down = self.downloads(url, ids["plain"])
                    R.raw[f"download_nginx_{proto}"] = down
                    label = "HTTP" if proto == "plain" else "HTTPS"
                    R.add(f"download.nginx_{proto}_mb_s",
                          f"download {self.mb(n)} through nginx, X-Accel ({label})", down["mb_per_s"],
                          "MB/s", ref=down["ref_mb_per_s"], ref_label="cat", ratio=down["ratio"],
                          target=ratio_at_least(0.5, ">= 50% of cat"))
                # The same file sent by nginx with no request to Ferry at all: what
                # nginx, loopback TCP and the client reach on this machine.
                static = self.downloads(ngx.static_url, ids["plain"], f"/blobs/{ids['plain']}")
                R.raw["download_nginx_static"] = static
                R.add("download.nginx_static_mb_s",
                      f"download {self.mb(n)}, nginx serving the file alone (no Ferry; HTTP)",
                      static["mb_per_s"], "MB/s", ref=static["ref_mb_per_s"], ref_label="cat",
                      ratio=static["ratio"],
                      note="the ceiling for X-Accel downloads here")
            finally:
                ngx.stop()

    # -- live events

    def sse_sqlite(self):
        s, R = self.size, self.results
        for n in s["sse_n"]:
            with self.server(f"sse-{n}") as srv:
                idle = srv.rss_kb()
                out = self.load("sse", "--url", srv.url, "--token", self.creds["token"], "--n", n,
                                "--notes", s["sse_notes"], "--pid", srv.pid)
            R.raw[f"sse_sqlite_{n}"] = out
            self.sse_rows("sqlite", n, out, [srv.pid], idle)

    def sse_rows(self, backend, n, out, pids, idle_kb):
        R = self.results
        if backend == "sqlite":
            rss = out["rss_kb"][str(pids[0])] / 1024
            big = n >= 10_000
            R.add(f"memory.sse_{n}_mb", f"RSS with {n:,} open event streams", rss, "MB",
                  target=below(150, "< 150 MB") if big else None,
                  note=f"{(rss * 1024 - idle_kb) / n:.1f} kB per stream")
        else:
            rss = sum(out["rss_kb"][str(p)] for p in pids) / 1024
            R.add(f"memory.sse_pg_{n}_mb", f"RSS of both replicas with {n:,} event streams", rss, "MB")
        where = "one process, SQLite" if backend == "sqlite" else "two replicas, PostgreSQL"
        target = below(500, "< 500 ms") if n >= 10_000 else None
        R.add(f"sse.{backend}_{n}_p50_ms", f"fan-out to {n:,} subscribers, p50 ({where})", out["p50_ms"], "ms")
        R.add(f"sse.{backend}_{n}_p99_ms", f"fan-out to {n:,} subscribers, p99 ({where})", out["p99_ms"], "ms",
              target=target)
        if out["missing"]:
            raise RuntimeError(f"{out['missing']} of {n * out['notes']} events did not arrive")

    # -- API

    def api(self, backend, srv, creds):
        s, R = self.size, self.results
        secs = s["wrk_secs"]
        items = wrk(f"{srv.url}/api/items", secs, f"Authorization: Bearer {creds['token']}", [srv.pid])
        feed = wrk(f"{srv.url}/", secs, f"Cookie: ferry_session={creds['session']}", [srv.pid])
        R.raw[f"wrk_{backend}"] = {"items": {k: v for k, v in items.items() if k != "output"},
                                   "feed": {k: v for k, v in feed.items() if k != "output"}}
        target = at_least(20_000, "> 20,000/s") if backend == "sqlite" else None
        R.add(f"api.{backend}_items_rps", f"GET /api/items, 50 a page, 64 conns ({backend})",
              items["rps"], "req/s", target=target)
        R.add(f"api.{backend}_items_p99_ms", f"GET /api/items p99 ({backend})", items["p99_ms"], "ms")
        R.add(f"api.{backend}_items_cpu_us", f"GET /api/items, server CPU per request ({backend})",
              items["server_cpu_us_per_request"], "µs")
        R.add(f"api.{backend}_feed_rps", f"GET / (feed page), 64 conns ({backend})", feed["rps"], "req/s")
        R.add(f"api.{backend}_feed_p99_ms", f"GET / (feed page) p99 ({backend})", feed["p99_ms"], "ms")
        R.add(f"api.{backend}_feed_cpu_us", f"GET / (feed page), server CPU per request ({backend})",
              feed["server_cpu_us_per_request"], "µs")

    def api_sqlite(self):
        with self.server("api-sqlite") as srv:
            self.api("sqlite", srv, self.creds)

    # -- PostgreSQL: two replicas

    def postgres(self):
        s, R = self.size, self.results
        pg = Postgres(self.base).start()
        try:
            creds = self.load("seed", "--database-url", pg.url, "--data-dir", self.base / "pg-a",
                              "--items", s["items"])
            R.raw["seed_postgres"] = {k: v for k, v in creds.items() if k not in ("token", "session")}
            for n in s["sse_n"]:
                a = Server(self.base, f"pg-a-{n}", self.base / "pg-a", FERRY_DATABASE_URL=pg.url)
                b = Server(self.base, f"pg-b-{n}", self.base / "pg-b", FERRY_DATABASE_URL=pg.url)
                with a, b:
                    out = self.load("sse", "--url", f"{a.url},{b.url}", "--post-url", a.url,
                                    "--token", creds["token"], "--n", n, "--notes", s["sse_notes"],
                                    "--pid", f"{a.pid},{b.pid}")
                R.raw[f"sse_postgres_{n}"] = out
                self.sse_rows("postgres", n, out, [a.pid, b.pid], None)
            with Server(self.base, "api-pg", self.base / "pg-a", FERRY_DATABASE_URL=pg.url) as srv:
                self.api("postgres", srv, creds)
        finally:
            pg.stop()

    # -- size

    def size_section(self):
        R = self.results
        R.add("size.binary_mb", "release binary", FERRY.stat().st_size / 1e6, "MB")
        import build_image  # tests/deploy: the local image the container tests use
        from dockerutil import ensure_docker

        problem = ensure_docker()
        if problem is None:
            ref = build_image.build_ferry_image(FERRY)
            size = int(run(["docker", "image", "inspect", "-f", "{{.Size}}", ref]).stdout.strip())
            gz = gzip_size(["docker", "save", ref])
            how = "docker save | gzip -6"
        else:
            layer = build_image.ferry_rootfs_tar(FERRY, build_image.load_contract())
            size = len(layer)
            gz = len(zlib.compress(layer, 6))
            how = f"layer packed without Docker ({problem})"
        R.raw["image"] = {"bytes": size, "gzip_bytes": gz, "how": how}
        R.add("size.image_mb", "local image, uncompressed", size / 1e6, "MB")
        R.add("size.image_gz_mb", "local image, gzipped", gz / 1e6, "MB", target=below(25, "< 25 MB"),
              note=how)

    # -- all

    SECTIONS = ("start", "direct", "nginx", "sse", "api", "postgres", "size")

    def run_all(self, only=None):
        """Every section, or those named in `only` (start always runs: it seeds)."""
        wanted = set(only or self.SECTIONS)
        t0 = time.monotonic()
        self.section("start", self.start)
        if self.creds is None:
            raise SystemExit("seeding failed; nothing else can run")
        if wanted & {"direct", "nginx"}:
            self.section("memory and transfers, direct", self.direct)
        if self.transfer_id and "nginx" in wanted:
            self.section("through nginx", self.nginx)
        if "sse" in wanted:
            self.section("live events, SQLite", self.sse_sqlite)
        if "api" in wanted:
            self.section("API, SQLite", self.api_sqlite)
        if "postgres" in wanted:
            self.section("PostgreSQL, two replicas", self.postgres)
        if "size" in wanted:
            self.section("size", self.size_section)
        return time.monotonic() - t0

    def cleanup(self):
        if self.keep:
            print(f"kept {self.base}")
        else:
            shutil.rmtree(self.base, ignore_errors=True)


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


def meta(quick, secs, only=None):
    rev = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
    dirty = bool(run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                     check=False).stdout.strip())
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "revision": rev + ("+dirty" if dirty else ""),
        "mode": "quick" if quick else "full",
        "sections": only or list(Bench.SECTIONS),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "loadavg_at_start": LOADAVG_AT_START,
        "loadavg_at_end": os.getloadavg(),
        "duration_secs": round(secs, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--load", required=True, help="the load tools (benches/load.rs) executable")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--output", default=str(OUT_DIR / "results.json"))
    parser.add_argument("--only", action="append", choices=Bench.SECTIONS,
                        help="run only this section (repeatable); start always runs, as it seeds")
    args = parser.parse_args()
    if not FERRY.exists():
        sys.exit(f"{FERRY} is missing: cargo build --release")
    raise_fd_limit()
    bench = Bench(args.quick, Load(args.load), args.keep)
    try:
        secs = bench.run_all(args.only)
    finally:
        bench.cleanup()
    results = bench.results
    doc = {"meta": meta(args.quick, secs, args.only), "rows": results.rows, "errors": results.errors,
           "raw": results.raw}
    Path(args.output).write_text(json.dumps(doc, indent=2) + "\n")
    print_table(results)
    print(f"\n{len(results.rows)} figures in {secs:.0f} s ({doc['meta']['mode']} run); "
          f"written to {os.path.relpath(args.output, ROOT)}")
    if results.errors:
        sys.exit(f"{len(results.errors)} section(s) failed")


if __name__ == "__main__":
    main()
