#!/usr/bin/env python3
"""Local images for the deployment tests.

* ferry: the host's release binary (target/release/ferry) packed into an image with the
  same contract as the Nix image (nix/image-contract.json: user, entrypoint, cmd, env,
  port, volume, healthcheck, stop signal). It is written as a docker-archive, the format
  Nix's dockerTools produces, and loaded with `docker load`.
* postgres and nginx: stand-ins for the official images, built from Debian packages
  (mmdebstrap) because no registry can be reached. They follow the official images'
  conventions that the compose files rely on (POSTGRES_* variables and
  POSTGRES_PASSWORD_FILE, PGDATA; /etc/nginx/templates rendered with envsubst into
  /etc/nginx/conf.d, /docker-entrypoint.d/*.sh hooks, user nginx).

The Debian base is cached as `docker save | zstd` under ~/.cache/ferry-test (or
$FERRY_TEST_CACHE). Run as a script to build everything and print the image names:

    python tests/deploy/build_image.py [--binary target/release/ferry]
"""

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dockerutil import CACHE_DIR, ROOT, ensure_docker, image_exists, load_contract, run  # noqa: E402

FERRY_IMAGE = "ferry-test/ferry"
FERRY_TAG = "local"
BASE_REPO = "ferry-test/base"
POSTGRES_IMAGE = "ferry-test/postgres:15"
NGINX_IMAGE = "ferry-test/nginx:bookworm"

BASE_PACKAGES = ["postgresql-15", "nginx-light", "gettext-base", "curl", "ca-certificates", "openssl"]
NS = 1_000_000_000


# ---------------------------------------------------------------- ferry image

def _tarinfo(name, kind, mode, uid=0, gid=0, size=0, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    info.mtime = 0
    info.size = size
    info.linkname = linkname
    return info


def _shared_libraries(binary):
    out = run(["ldd", str(binary)], check=False)
    if "not a dynamic executable" in out.stdout + out.stderr:
        return []
    libs = []
    for line in out.stdout.splitlines():
        m = re.search(r"(/\S+)", line)
        if m and "linux-vdso" not in line:
            libs.append(m.group(1))
    return libs


def ferry_rootfs_tar(binary, contract):
    """One reproducible layer: /bin/ferry, its shared libraries, passwd/group for the
    contract's user, CA certificates, an empty data dir owned by the user, /tmp."""
    uid, gid = contract["uid"], contract["gid"]
    entry = contract["entrypoint"][0].lstrip("/")
    data = contract["dataDir"].strip("/")
    files = {}  # path in image -> (bytes, mode)
    files[entry] = (Path(binary).read_bytes(), 0o755)
    for lib in _shared_libraries(binary):
        files[lib.lstrip("/")] = (Path(lib).resolve().read_bytes(), 0o755)
    files["etc/passwd"] = (
        f"root:x:0:0:root:/:/sbin/nologin\n"
        f"{contract['user']}:x:{uid}:{gid}:{contract['user']}:{contract['dataDir']}:/sbin/nologin\n".encode(),
        0o644,
    )
    files["etc/group"] = (f"root:x:0:\n{contract['group']}:x:{gid}:\n".encode(), 0o644)
    files["etc/nsswitch.conf"] = (b"hosts: files dns\n", 0o644)
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca.exists():
        files["etc/ssl/certs/ca-certificates.crt"] = (ca.read_bytes(), 0o644)

    dirs = {data: (0o755, uid, gid), "tmp": (0o1777, 0, 0)}
    for path in files:
        parent = os.path.dirname(path)
        while parent:
            dirs.setdefault(parent, (0o755, 0, 0))
            parent = os.path.dirname(parent)

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(set(dirs) | set(files)):
            if path in files:
                content, mode = files[path]
                tar.addfile(_tarinfo(path, tarfile.REGTYPE, mode, size=len(content)), io.BytesIO(content))
            else:
                mode, u, g = dirs[path]
                tar.addfile(_tarinfo(path + "/", tarfile.DIRTYPE, mode, u, g))
    return buf.getvalue()


def ferry_image_config(contract, diff_id, labels=None):
    hc = contract["healthcheck"]
    env = [f"{k}={v}" for k, v in contract["env"].items()]
    return {
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
        "os": "linux",
        "created": "1970-01-01T00:00:01Z",
        "config": {
            "User": f"{contract['uid']}:{contract['gid']}",
            "Entrypoint": contract["entrypoint"],
            "Cmd": contract["cmd"],
            "Env": env,
            "ExposedPorts": {f"{contract['port']}/tcp": {}},
            "Volumes": {contract["dataDir"]: {}},
            "WorkingDir": contract["dataDir"],
            "StopSignal": contract["stopSignal"],
            "Healthcheck": {
                "Test": hc["test"],
                "Interval": hc["intervalSeconds"] * NS,
                "Timeout": hc["timeoutSeconds"] * NS,
                "StartPeriod": hc["startPeriodSeconds"] * NS,
                "Retries": hc["retries"],
            },
            "Labels": labels or {},
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id] if diff_id else []},
        "history": [{"created": "1970-01-01T00:00:01Z", "created_by": "tests/deploy/build_image.py"}],
    }


def docker_archive(ref, layer, config):
    """A docker-archive (the format of Nix's dockerTools) of one layer and an
    image config whose diff_ids are filled in here."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = dict(config, rootfs={"type": "layers", "diff_ids": [diff_id]})
    config = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    layer_name = diff_id.split(":")[1] + "/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref], "Layers": [layer_name]}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in [(config_name, config), (layer_name.split("/")[0] + "/", None),
                              (layer_name, layer), ("manifest.json", manifest)]:
            if content is None:
                tar.addfile(_tarinfo(name, tarfile.DIRTYPE, 0o755))
            else:
                tar.addfile(_tarinfo(name, tarfile.REGTYPE, 0o644, size=len(content)), io.BytesIO(content))
    return buf.getvalue()


def ferry_archive(binary=None, ref=f"{FERRY_IMAGE}:{FERRY_TAG}", labels=None):
    """The release binary as a docker-archive with the image contract."""
    binary = Path(binary or ROOT / "target" / "release" / "ferry")
    if not binary.exists():
        raise FileNotFoundError(f"{binary} is missing; run `cargo build --release` first")
    contract = load_contract()
    layer = ferry_rootfs_tar(binary, contract)
    labels = {
        "org.opencontainers.image.title": "ferry",
        "org.opencontainers.image.description": "test image built from the host's release binary",
        "org.opencontainers.image.source": "https://github.com/ferry-app/ferry",
        "org.opencontainers.image.licenses": "Apache-2.0",
        **(labels or {}),
    }
    return docker_archive(ref, layer, ferry_image_config(contract, None, labels))


def stand_in_archive(ref, architecture, variant, why):
    """An image that only claims a platform, for publishing tests on a machine
    that cannot build for it: one file saying so, and labels that say so too.
    It has no ferry binary and cannot run."""
    note = f"STAND-IN for linux/{architecture}/{variant}: {why}\n".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tarinfo("STAND-IN.txt", tarfile.REGTYPE, 0o644, size=len(note)), io.BytesIO(note))
    config = {
        "architecture": architecture, "variant": variant, "os": "linux", "created": "1970-01-01T00:00:01Z",
        "config": {"Labels": {"org.opencontainers.image.title": "ferry-stand-in",
                              "org.opencontainers.image.description": note.decode().strip(),
                              "dev.ferry.test.stand-in": "true"}},
        "history": [{"created": "1970-01-01T00:00:01Z", "created_by": "tests/deploy/build_image.py (stand-in)"}],
    }
    return docker_archive(ref, buf.getvalue(), config)


def build_ferry_image(binary=None, ref=f"{FERRY_IMAGE}:{FERRY_TAG}"):
    """Pack the release binary as a docker-archive and `docker load` it. Returns ref."""
    run(["docker", "load"], input=ferry_archive(binary, ref), text=False)
    return ref


# ---------------------------------------------------------------- Debian base

def _mmdebstrap_cmd():
    sources = "/etc/apt/sources.list.d/debian.sources"
    if not os.path.exists(sources):
        sources = "/etc/apt/sources.list"
    return [
        "mmdebstrap", "--mode=root", "--variant=essential",
        "--include=" + ",".join(BASE_PACKAGES),
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--customize-hook=cd \"$1\" && rm -rf usr/lib/*/libLLVM* usr/lib/*/libz3.so* "
        "usr/lib/postgresql/15/lib/llvmjit* usr/lib/postgresql/15/lib/bitcode "
        "var/lib/postgresql/15 etc/postgresql/15 var/lib/apt/lists/* var/cache/apt/*",
        "bookworm", "-", sources,
    ]


def _base_key():
    return hashlib.sha256(json.dumps(_mmdebstrap_cmd()).encode()).hexdigest()[:12]


BASE_IMAGE = f"{BASE_REPO}:bookworm-{_base_key()}"


def build_base_image():
    """Debian bookworm with PostgreSQL 15 and nginx, from the cache when possible.
    The tag and the cache file carry a hash of the mmdebstrap command line."""
    if image_exists(BASE_IMAGE):
        return BASE_IMAGE
    cmd = _mmdebstrap_cmd()
    cached = CACHE_DIR / f"base-bookworm-{_base_key()}.tar.zst"
    if cached.exists():
        with open(cached, "rb") as f:
            zstd = subprocess.Popen(["zstd", "-dc"], stdin=f, stdout=subprocess.PIPE)
            run(["docker", "load"], stdin=zstd.stdout, text=False)
            zstd.wait()
        if image_exists(BASE_IMAGE):
            return BASE_IMAGE
    for tool in ("mmdebstrap", "zstd"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (apt-get install mmdebstrap zstd)")
    debstrap = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    imp = subprocess.run(["docker", "import", "--change", "ENV LANG=C.UTF-8", "-", BASE_IMAGE],
                         stdin=debstrap.stdout, capture_output=True)
    err = debstrap.stderr.read().decode(errors="replace")
    if debstrap.wait() != 0 or imp.returncode != 0:
        raise RuntimeError(f"mmdebstrap/import failed:\n{err[-3000:]}\n{imp.stderr.decode(errors='replace')}")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".part")
    with open(tmp, "wb") as f:
        save = subprocess.Popen(["docker", "save", BASE_IMAGE], stdout=subprocess.PIPE)
        subprocess.run(["zstd", "-q", "-T0", "-c"], stdin=save.stdout, stdout=f, check=True)
        save.wait()
    tmp.rename(cached)
    return BASE_IMAGE


# ---------------------------------------------------------------- stand-ins

POSTGRES_DOCKERFILE = f"""\
FROM {BASE_IMAGE}
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PGDATA=/var/lib/postgresql/data
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh \\
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \\
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \\
 && chmod 700 /var/lib/postgresql/data && chmod 3777 /var/run/postgresql
USER postgres
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
HEALTHCHECK --interval=2s --timeout=5s CMD ["pg_isready", "-h", "127.0.0.1", "-U", "postgres"]
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
"""

# The subset of the official postgres entrypoint that Ferry's compose files use.
POSTGRES_ENTRYPOINT = r"""#!/bin/bash
set -euo pipefail
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        POSTGRES_PASSWORD="$(< "$POSTGRES_PASSWORD_FILE")"
    fi
    : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE}"
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        --locale=C.UTF-8 -E UTF8 -D "$PGDATA" >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        echo "CREATE DATABASE \"$db\" OWNER \"$user\";" | postgres --single -D "$PGDATA" -j postgres >/dev/null
    fi
    echo "stand-in postgres: initialised $PGDATA (user $user, database $db)"
fi
if [ "${1:-}" = postgres ]; then
    shift
    exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"
"""

NGINX_DOCKERFILE = f"""\
FROM {BASE_IMAGE}
COPY docker-entrypoint.sh /docker-entrypoint.sh
COPY nginx.conf /etc/nginx/nginx.conf
RUN chmod 755 /docker-entrypoint.sh \\
 && echo 'nginx:x:101:101:nginx:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \\
 && echo 'nginx:x:101:' >> /etc/group \\
 && mkdir -p /docker-entrypoint.d /etc/nginx/templates /etc/nginx/conf.d /var/cache/nginx \\
 && rm -f /etc/nginx/sites-enabled/* \\
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["nginx", "-g", "daemon off;"]
"""

# The official image's default nginx.conf, as far as it matters here.
NGINX_DEFAULT_CONF = """\
user nginx;
worker_processes auto;
error_log /var/log/nginx/error.log notice;
pid /var/run/nginx.pid;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /var/log/nginx/access.log;
    sendfile on;
    keepalive_timeout 65;
    include /etc/nginx/conf.d/*.conf;
}
"""

# The official image's entrypoint: run /docker-entrypoint.d/*.sh, render templates.
NGINX_ENTRYPOINT = r"""#!/bin/bash
set -e
render_templates() {
    local dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
    local suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
    local out="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
    [ -d "$dir" ] || return 0
    local defined
    defined="$(printf '${%s} ' $(env | cut -d= -f1 | grep -E "${NGINX_ENVSUBST_FILTER:-}"))"
    find "$dir" -follow -type f -name "*$suffix" -print | while read -r template; do
        rel="${template#"$dir/"}"
        target="$out/${rel%"$suffix"}"
        mkdir -p "$(dirname "$target")"
        echo "$0: Running envsubst on $template to $target"
        envsubst "$defined" < "$template" > "$target"
    done
}
if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
    render_templates
    for f in /docker-entrypoint.d/*.sh; do
        [ -e "$f" ] || continue
        echo "$0: Launching $f"
        "$f"
    done
    echo "$0: Configuration complete; ready for start up"
fi
exec "$@"
"""


def _docker_build(ref, files):
    with tempfile.TemporaryDirectory() as ctx:
        for name, content in files.items():
            Path(ctx, name).write_text(content)
        run(["docker", "build", "-q", "-t", ref, ctx])
    return ref


def build_postgres_image():
    build_base_image()
    return _docker_build(POSTGRES_IMAGE, {"Dockerfile": POSTGRES_DOCKERFILE,
                                          "docker-entrypoint.sh": POSTGRES_ENTRYPOINT})


def build_nginx_image():
    build_base_image()
    return _docker_build(NGINX_IMAGE, {"Dockerfile": NGINX_DOCKERFILE,
                                       "docker-entrypoint.sh": NGINX_ENTRYPOINT,
                                       "nginx.conf": NGINX_DEFAULT_CONF})


def build_all(binary=None):
    """Build every image; returns the variables a user would set in compose/.env."""
    ferry_ref = build_ferry_image(binary)
    image, tag = ferry_ref.rsplit(":", 1)
    return {
        "FERRY_IMAGE": image,
        "FERRY_TAG": tag,
        "POSTGRES_IMAGE": build_postgres_image(),
        "NGINX_IMAGE": build_nginx_image(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", help="ferry binary (default target/release/ferry)")
    parser.add_argument("--only", choices=["ferry", "base", "postgres", "nginx"])
    args = parser.parse_args()
    problem = ensure_docker()
    if problem:
        sys.exit(f"no Docker engine: {problem}")
    if args.only == "ferry":
        print(build_ferry_image(args.binary))
    elif args.only == "base":
        print(build_base_image())
    elif args.only == "postgres":
        print(build_postgres_image())
    elif args.only == "nginx":
        print(build_nginx_image())
    else:
        for k, v in build_all(args.binary).items():
            print(f"{k}={v}")


if __name__ == "__main__":
    main()
