"""The object-store section of `nox -s bench`: 1 GiB through Ferry to Garage and back,
against the same bytes sent straight to Garage, in the same run.

Garage (the binary `nox` builds from crates.io, passed as --garage) runs natively as
one node on loopback ports with its data under the bench's work directory, on the
same disk. Ferry runs with FERRY_BLOB_STORE=s3 against it. The reference is the
same load tool sending the same body to a presigned URL (SigV4 in the query, signed
by the object_store crate Ferry itself uses): one PUT up, one GET down, so the only
difference is Ferry in the path. Ferry's RSS is sampled during its transfers.
"""

import os
import statistics
import subprocess
import time
import urllib.request

from processes import Server, api_delete, free_port, http_status, run, stop_process
from results import below, ratio_at_least

BUCKET = "ferry-bench"
REGION = "garage"


class Garage:
    """One Garage node: `garage server --single-node --default-bucket`, which lays
    out the node and creates the bucket and the key at its first start."""

    def __init__(self, exe, base):
        self.exe = exe
        self.dir = base / "garage"
        self.dir.mkdir()
        self.s3_port, rpc_port = free_port(), free_port()
        self.key_id, self.secret = "GK" + os.urandom(12).hex(), os.urandom(32).hex()
        self.config = self.dir / "garage.toml"
        self.config.write_text(
            f'metadata_dir = "{self.dir}/meta"\ndata_dir = "{self.dir}/data"\n'
            'db_engine = "lmdb"\nreplication_factor = 1\n'
            f'rpc_bind_addr = "127.0.0.1:{rpc_port}"\nrpc_public_addr = "127.0.0.1:{rpc_port}"\n'
            f'rpc_secret = "{os.urandom(32).hex()}"\n'
            f'[s3_api]\ns3_region = "{REGION}"\napi_bind_addr = "127.0.0.1:{self.s3_port}"\n')
        self.config.chmod(0o600)
        self.env = {**os.environ, "GARAGE_DEFAULT_ACCESS_KEY": self.key_id,
                    "GARAGE_DEFAULT_SECRET_KEY": self.secret, "GARAGE_DEFAULT_BUCKET": BUCKET,
                    "RUST_LOG": "garage=warn"}
        self.proc = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self):
        self.log = open(self.dir / "garage.log", "ab")
        self.proc = subprocess.Popen([str(self.exe), "-c", str(self.config), "server", "--single-node",
                                      "--default-bucket"], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"garage exited with {self.proc.returncode}: {self.log_tail()}")
            done = run([self.exe, "-c", self.config, "bucket", "info", BUCKET], check=False, env=self.env,
                       timeout=10)
            if done.returncode == 0:
                return self
            time.sleep(0.2)
        raise TimeoutError(f"garage had no bucket {BUCKET} within 30 s: {self.log_tail()}")

    def log_tail(self):
        return (self.dir / "garage.log").read_text(errors="replace")[-3000:]

    def ferry_settings(self):
        return {"FERRY_BLOB_STORE": "s3", "FERRY_S3_ENDPOINT": self.endpoint, "FERRY_S3_REGION": REGION,
                "FERRY_S3_BUCKET": BUCKET, "FERRY_S3_PATH_STYLE": "true",
                "FERRY_S3_ACCESS_KEY_ID": self.key_id, "FERRY_S3_SECRET_ACCESS_KEY": self.secret}

    def stop(self):
        stop_process(self.proc, 20)
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def presign(bench, garage, key):
    return bench.load("presign", "--endpoint", garage.endpoint, "--region", REGION, "--bucket", BUCKET,
                      "--access-key-id", garage.key_id, "--secret-access-key", garage.secret, "--key", key)


def delete_url(url):
    req = urllib.request.Request(url, method="DELETE")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=30) as resp:
        resp.read()


def section(bench, garage_exe):
    """`transfer_runs` pairs, each a direct transfer then the same through Ferry, up
    and then down; medians of the rates and of the per-pair ratios."""
    n, runs = bench.size["transfer_bytes"], bench.size["transfer_runs"]
    R = bench.results
    # A data dir and database of their own: the seeded one's files are on the local store.
    data_dir = bench.base / "s3-data"
    token = bench.load("seed", "--database-url", f"sqlite://{data_dir}/ferry.db", "--data-dir", data_dir,
                       "--items", 0)["token"]
    with Garage(garage_exe, bench.base) as garage:
        with Server(bench.base, "s3", data_dir, **garage.ferry_settings()) as srv:
            for path in ("/readyz", "/api/items"):
                http_status(srv.port, path, {"Authorization": f"Bearer {token}"})
            ups, downs = [], []
            for i in range(runs):
                urls = presign(bench, garage, f"direct/bench-{i}.bin")
                direct_up = bench.load("upload", "--put-url", urls["put"], "--bytes", n)
                up = bench.load("upload", "--url", srv.url, "--token", token, "--bytes", n, "--pid", srv.pid)
                ups.append((direct_up, up))
                direct_down = bench.load("download", "--get-url", urls["get"])
                down = bench.load("download", "--url", srv.url, "--token", token, "--id", up["id"],
                                  "--pid", srv.pid)
                if down["bytes"] != n or direct_down["bytes"] != n:
                    raise RuntimeError(f"downloads of {n} bytes returned {down['bytes']} (Ferry) and "
                                       f"{direct_down['bytes']} (direct)")
                downs.append((direct_down, down))
                delete_url(urls["delete"])
                api_delete(srv.port, token, up["id"])
    label = bench.mb(n)
    pairs_up = [(d["mb_per_s"], f["mb_per_s"]) for d, f in ups]
    pairs_down = [(d["mb_per_s"], f["mb_per_s"]) for d, f in downs]
    R.raw["object_store"] = {"upload": [{"direct": d, "ferry": f} for d, f in ups],
                             "download": [{"direct": d, "ferry": f} for d, f in downs]}
    R.add("s3.upload_mb_s", f"upload {label} through Ferry to Garage", statistics.median(f for _, f in pairs_up),
          "MB/s", ref=statistics.median(d for d, _ in pairs_up), ref_label="PUT straight to Garage",
          ratio=statistics.median(f / d for d, f in pairs_up), target=ratio_at_least(0.8, ">= 80% of direct"))
    R.add("s3.download_mb_s", f"download {label} from Garage through Ferry",
          statistics.median(f for _, f in pairs_down), "MB/s",
          ref=statistics.median(d for d, _ in pairs_down), ref_label="GET straight from Garage",
          ratio=statistics.median(f / d for d, f in pairs_down), target=ratio_at_least(0.8, ">= 80% of direct"))
    R.add("memory.s3_upload_growth_mb", f"Ferry's peak RSS growth, {label} upload to Garage",
          max(f["rss_growth_kb"] for _, f in ups) / 1024, "MB", target=below(16, "< 16 MB"))
    R.add("memory.s3_download_growth_mb", f"Ferry's peak RSS growth, {label} download from Garage",
          max(f["rss_growth_kb"] for _, f in downs) / 1024, "MB", target=below(16, "< 16 MB"))
