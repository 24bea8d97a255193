#!/usr/bin/env python3
"""Ferry's benchmarks, run by `nox -s bench` (`nox -s bench -- --quick` for a smoke run
with small sizes).

The release binary (target/release/ferry) runs as separate processes and is measured
from outside: the load tools of benches/load/ (seeding, start timing, transfers,
the Server-Sent Events client), Debian's nginx with the bare-metal config rendered as
the nginx tests render it, a throwaway PostgreSQL cluster, Garage (an S3 object
store, benches/object_store.py), wrk, dd and cat. Every figure is measured in the
same run as its reference. The table is printed and the same figures are written
to target/bench/results.json so runs can be compared.

Only 127.0.0.1 is contacted; every wait is bounded. No figure is asserted: a missed
target is reported, not failed (see docs/performance.md).

This file holds the sections and their sizes; beside it are processes.py (the servers
and tools it runs), references.py (dd, cat, wrk) and results.py (the table).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import object_store
from processes import (FERRY, GIB, MIB, ROOT, Load, Nginx, Postgres, Server, api_delete, http_status,
                       raise_fd_limit, run)
from references import cat_rate, dd_fsync, gzip_size, sync, wrk
from results import Results, at_least, below, print_table, ratio_at_least

OUT_DIR = ROOT / "target" / "bench"
LOADAVG_AT_START = os.getloadavg()

SIZES = {
    "full": {
        "start_runs": 10,
        "items": 100_000,
        "transfer_bytes": GIB,
        "transfer_runs": 3,
        "zip_file_bytes": 300 * MIB,
        "zip_runs": 7,
        "sse_n": [100, 1_000, 10_000],
        "sse_notes": 5,
        "wrk_secs": 10,
    },
    "quick": {
        "start_runs": 3,
        "items": 2_000,
        "transfer_bytes": 64 * MIB,
        "transfer_runs": 1,
        "zip_file_bytes": 32 * MIB,
        "zip_runs": 1,
        "sse_n": [10, 100],
        "sse_notes": 2,
        "wrk_secs": 2,
    },
}


# ---------------------------------------------------------------- sections

class Bench:
    def __init__(self, quick, load, keep, garage=None):
        self.quick = quick
        self.garage = garage
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

    # -- "Download all"

    def zip_section(self):
        """An item of three files: the files fetched one by one against the item's
        ZIP, in the same run, and the server's RSS growth while it streams the ZIP.
        Seven pairs (about a second each), alternating which goes first: a pair's
        ratio swings by a third on two shared cores, so the median needs several."""
        s, R = self.size, self.results
        n = s["zip_file_bytes"]
        with self.server("zip") as srv:
            out = self.load("zip", "--url", srv.url, "--token", self.creds["token"], "--file-bytes", n,
                            "--files", 3, "--pid", srv.pid, "--runs", s["zip_runs"])
        R.raw["download_all"] = out
        R.add("download.zip_mb_s", f"\"Download all\": ZIP of 3 × {self.mb(n)}", out["zip_mb_per_s"], "MB/s",
              ref=out["direct_mb_per_s"], ref_label="the 3 files one by one", ratio=out["ratio"],
              target=ratio_at_least(0.9, ">= 90% of the files one by one"))
        R.add("download.zip_cpu_s_per_gib", "server CPU per GiB sent, \"Download all\"",
              out["zip_cpu_s_per_gib"], "s", ref=out["direct_cpu_s_per_gib"],
              ref_label="the 3 files one by one",
              ratio=out["zip_cpu_s_per_gib"] / max(out["direct_cpu_s_per_gib"], 1e-9),
              note="user + system time of the server, median of the runs; steadier than MB/s on a busy machine")
        R.add("memory.zip_growth_mb", f"peak RSS growth, \"Download all\" of 3 × {self.mb(n)}",
              out["rss_growth_kb"] / 1024, "MB", target=below(16, "< 16 MB"))

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

    # -- object store: benches/object_store.py

    def object_store(self):
        if not self.garage:
            raise RuntimeError("no Garage binary: pass --garage (nox -s bench builds it)")
        object_store.section(self, self.garage)

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

    SECTIONS = ("start", "direct", "zip", "nginx", "s3", "sse", "api", "postgres", "size")

    def run_all(self, only=None):
        """Every section, or those named in `only` (start always runs: it seeds)."""
        wanted = set(only or self.SECTIONS)
        t0 = time.monotonic()
        self.section("start", self.start)
        if self.creds is None:
            raise SystemExit("seeding failed; nothing else can run")
        if wanted & {"direct", "nginx"}:
            self.section("memory and transfers, direct", self.direct)
        if "zip" in wanted:
            self.section("download all (ZIP)", self.zip_section)
        if self.transfer_id and "nginx" in wanted:
            self.section("through nginx", self.nginx)
        if "s3" in wanted:
            self.section("object store (Garage)", self.object_store)
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
    parser.add_argument("--load", required=True, help="the load tools (benches/load/) executable")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--garage", help="the garage executable, for the object-store section")
    parser.add_argument("--output", default=str(OUT_DIR / "results.json"))
    parser.add_argument("--only", action="append", choices=Bench.SECTIONS,
                        help="run only this section (repeatable); start always runs, as it seeds")
    args = parser.parse_args()
    if not FERRY.exists():
        sys.exit(f"{FERRY} is missing: cargo build --release")
    raise_fd_limit()
    bench = Bench(args.quick, Load(args.load), args.keep, args.garage)
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