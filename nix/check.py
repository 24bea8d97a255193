#!/usr/bin/env python3
"""Offline checks of Ferry's flake, run by the nox session `nix` (and so by CI).

nixpkgs cannot be fetched where this runs, so `nix build` cannot; this checks
everything that can be checked with Debian's nix-bin alone:

  parse      every .nix file parses and binds its variables (nix-instantiate --parse)
  lock       flake.lock is well formed and pins exactly the inputs of flake.nix,
             and `nix flake metadata --no-update-lock-file` accepts it offline
  format     nixpkgs-fmt --check and deadnix --fail (installed with cargo into
             a cache directory when missing); shellcheck on nix/publish.sh if present
  contract   flake.nix reads nix/image-contract.json, and nix/image.nix evaluated
             with stand-ins for nixpkgs yields an image config that meets it
  flake      `nix flake check --no-build` of the whole flake with every input
             overridden by a stand-in flake from nix/offline/ (nix/flake_check.py)
  source     the files the flake's source filter keeps (mirrored from
             nix/source.json, the list nix/source.nix uses) are enough to
             `cargo build --locked --all-targets`
  deep       only with --nixpkgs-lib DIR and --crane DIR (local copies of
             nixpkgs' lib and of crane): realise nix/source.nix with the real
             lib.fileset and compare it with the mirror; evaluate the NixOS
             module with lib.evalModules

Prints what it checked; exits non-zero if anything failed.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import flake_check

ROOT = Path(__file__).resolve().parent.parent
NIX_FEATURES = ["--extra-experimental-features", "nix-command flakes"]
TOOLS = {"nixpkgs-fmt": "1.3.0", "deadnix": "1.3.1"}
TOOLS_DIR = Path(os.environ.get("FERRY_NIX_TOOLS_DIR") or Path.home() / ".cache" / "ferry" / "nix-tools")
SCRATCH = ROOT / "target" / "nix-filter-check"

failures = []


def report(ok, what, detail=""):
    print(f"  [{'ok' if ok else 'FAIL'}] {what}" + (f": {detail}" if detail else ""), flush=True)
    if not ok:
        failures.append(what)
    return ok


def skip(what, why):
    print(f"  [skip] {what}: {why}", flush=True)


def run(cmd, **kwargs):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run(cmd, **kwargs)


def first_lines(text, n=12):
    lines = text.strip().splitlines()
    return "\n      ".join(lines[:n] + (["…"] if len(lines) > n else []))


def git_files(untracked):
    """The files a flake sees (git-tracked), optionally plus untracked ones."""
    tracked = run(["git", "ls-files", "-z", "--cached"], cwd=ROOT, check=True).stdout.split("\0")
    files = {f for f in tracked if f and (ROOT / f).is_file()}
    extra = run(["git", "ls-files", "-z", "--others", "--exclude-standard"], cwd=ROOT, check=True).stdout.split("\0")
    extra = {f for f in extra if f and not f.startswith("target/") and (ROOT / f).is_file()}
    return (files | extra if untracked else files), extra


def nix_files(files):
    return sorted(f for f in files if f.endswith(".nix"))


# ---------------------------------------------------------------- parse


def check_parse(files):
    print("parse: nix-instantiate --parse", flush=True)
    for f in nix_files(files):
        r = run(["nix-instantiate", "--parse", str(ROOT / f)])
        report(r.returncode == 0, f, "" if r.returncode == 0 else first_lines(r.stderr))


# ----------------------------------------------------------------- lock


GITHUB_URL = re.compile(r"^github:(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)(?:/(?P<ref>[^?]+))?$")
SRI = re.compile(r"^sha256-[A-Za-z0-9+/]{43}=$")


def flake_inputs():
    expr = f"builtins.mapAttrs (_: i: {{ url = i.url or null; flake = i.flake or true; follows = i.inputs or {{ }}; }}) (import {ROOT / 'flake.nix'}).inputs"
    r = run(["nix-instantiate", "--eval", "--strict", "--json", "-E", expr])
    if r.returncode != 0:
        raise RuntimeError(first_lines(r.stderr))
    return json.loads(r.stdout)


def check_lock():
    print("lock: flake.lock against flake.nix", flush=True)
    try:
        inputs = flake_inputs()
        lock = json.loads((ROOT / "flake.lock").read_text())
    except (RuntimeError, OSError, ValueError) as e:
        report(False, "read flake.nix inputs and flake.lock", str(e))
        return
    nodes = lock.get("nodes", {})
    report(lock.get("version") == 7, "lock version 7", str(lock.get("version")))
    root = nodes.get(lock.get("root", ""), {})
    root_inputs = root.get("inputs", {})
    report(set(root_inputs) == set(inputs), "root node lists exactly the flake's inputs",
           f"flake.nix {sorted(inputs)}, flake.lock {sorted(root_inputs)}")
    for name, spec in sorted(inputs.items()):
        node = nodes.get(root_inputs.get(name) if isinstance(root_inputs.get(name), str) else "", {})
        locked, original = node.get("locked", {}), node.get("original", {})
        m = GITHUB_URL.match(spec["url"] or "")
        if not report(bool(m), f"{name}: url is github:OWNER/REPO[/REF]", spec["url"] or "no url"):
            continue
        want = {"type": "github", "owner": m["owner"], "repo": m["repo"]}
        if m["ref"]:
            want["ref"] = m["ref"]
        report(original == want, f"{name}: original matches the url", json.dumps(original))
        problems = []
        if locked.get("type") != "github" or locked.get("owner") != m["owner"] or locked.get("repo") != m["repo"]:
            problems.append("type/owner/repo differ from the url")
        if not re.fullmatch(r"[0-9a-f]{40}", str(locked.get("rev", ""))):
            problems.append(f"rev {locked.get('rev')!r} is not a full commit hash")
        if not SRI.match(str(locked.get("narHash", ""))):
            problems.append(f"narHash {locked.get('narHash')!r} is not a sha256 SRI hash")
        if not isinstance(locked.get("lastModified"), int) or isinstance(locked.get("lastModified"), bool):
            problems.append("lastModified is not an integer")
        report(not problems, f"{name}: locked {str(locked.get('rev', ''))[:12]}", "; ".join(problems))
        report((node.get("flake", True) is False) == (spec["flake"] is False), f"{name}: flake = false agrees")
        want_follows = {k: v.get("follows") for k, v in spec["follows"].items()}
        got_inputs = node.get("inputs", {})
        for k, follows in want_follows.items():
            if follows is not None:
                report(got_inputs.get(k) == follows.split("/"), f"{name}: inputs.{k} follows {follows}")
    unused = set(nodes) - {lock.get("root")} - {v for v in root_inputs.values() if isinstance(v, str)}
    report(not unused, "no stray nodes", ", ".join(sorted(unused)))


def check_metadata():
    """`nix flake metadata` resolves every input from the lock, or tries to
    download (and fails, offline) when flake.lock does not match flake.nix."""
    with tempfile.TemporaryDirectory(prefix="ferry-flake-") as tmp:
        shutil.copy(ROOT / "flake.nix", tmp)
        shutil.copy(ROOT / "flake.lock", tmp)
        r = run(["nix", *NIX_FEATURES, "flake", "metadata", "--json", "--no-update-lock-file",
                 "--no-write-lock-file", "--option", "substituters", "", f"path:{tmp}"], timeout=120)
    if not report(r.returncode == 0, "nix flake metadata --no-update-lock-file (offline)",
                  "" if r.returncode == 0 else first_lines(r.stderr)):
        return
    meta = json.loads(r.stdout)
    lock = json.loads((ROOT / "flake.lock").read_text())
    for name, node in meta["locks"]["nodes"].items():
        if name != meta["locks"]["root"]:
            report(node.get("locked") == lock["nodes"][name]["locked"], f"nix reads {name} pinned at {node['locked'].get('rev', '')[:12]}")


# --------------------------------------------------------------- format


def tool(name):
    found = shutil.which(name) or (TOOLS_DIR / "bin" / name if (TOOLS_DIR / "bin" / name).exists() else None)
    if found:
        return str(found)
    if not shutil.which("cargo"):
        return None
    print(f"  installing {name} {TOOLS[name]} into {TOOLS_DIR} (cargo install, about 30 s)", flush=True)
    r = run(["cargo", "install", "--locked", "--quiet", "--root", str(TOOLS_DIR), f"{name}@{TOOLS[name]}"])
    if r.returncode != 0:
        print(first_lines(r.stderr), flush=True)
        return None
    return str(TOOLS_DIR / "bin" / name)


def check_format(files):
    print("format: nixpkgs-fmt, deadnix, shellcheck", flush=True)
    paths = [str(ROOT / f) for f in nix_files(files)]
    fmt = tool("nixpkgs-fmt")
    if report(bool(fmt), "nixpkgs-fmt available"):
        r = run([fmt, "--check", *paths])
        report(r.returncode == 0, f"nixpkgs-fmt --check ({len(paths)} files)",
               "" if r.returncode == 0 else first_lines(r.stdout + r.stderr) + "\n      fix: nix fmt, or nixpkgs-fmt FILE")
    dead = tool("deadnix")
    if report(bool(dead), "deadnix available"):
        r = run([dead, "--fail", *paths])
        report(r.returncode == 0, "deadnix --fail: no unused bindings", "" if r.returncode == 0 else first_lines(r.stdout + r.stderr))
    if shutil.which("shellcheck"):
        r = run(["shellcheck", "--shell=bash", str(ROOT / "nix" / "publish.sh")])
        report(r.returncode == 0, "shellcheck nix/publish.sh", "" if r.returncode == 0 else first_lines(r.stdout))
    else:
        skip("shellcheck nix/publish.sh", "shellcheck not installed (writeShellApplication runs it in the Nix build)")


# ------------------------------------------------------------- contract


def check_contract():
    print("contract: the image config meets nix/image-contract.json", flush=True)
    flake = (ROOT / "flake.nix").read_text()
    report("builtins.fromJSON (builtins.readFile ./nix/image-contract.json)" in flake,
           "flake.nix reads the contract with builtins.fromJSON")
    c = json.loads((ROOT / "nix" / "image-contract.json").read_text())
    r = run(["nix-instantiate", "--eval", "--strict", "--json", str(ROOT / "nix" / "offline" / "image-eval.nix")])
    if not report(r.returncode == 0, "evaluate nix/image.nix with stand-ins", "" if r.returncode == 0 else first_lines(r.stderr)):
        return
    image = json.loads(r.stdout)
    cfg = image["config"]
    ns = 1_000_000_000
    hc = c["healthcheck"]
    expected = {
        "User": f"{c['uid']}:{c['gid']}",
        "Entrypoint": c["entrypoint"],
        "Cmd": c["cmd"],
        "Env": sorted(f"{k}={v}" for k, v in c["env"].items()),
        "ExposedPorts": {f"{c['port']}/tcp": {}},
        "Volumes": {c["dataDir"]: {}},
        "StopSignal": c["stopSignal"],
        "Healthcheck": {"Test": hc["test"], "Interval": hc["intervalSeconds"] * ns, "Timeout": hc["timeoutSeconds"] * ns,
                        "StartPeriod": hc["startPeriodSeconds"] * ns, "Retries": hc["retries"]},
    }
    for key, want in expected.items():
        got = sorted(cfg.get(key, [])) if key == "Env" else cfg.get(key)
        report(got == want, f"config.{key}", "" if got == want else f"image {got!r}, contract {want!r}")
    labels = cfg.get("Labels", {})
    for label in ("title", "version", "revision", "source", "licenses", "created"):
        report(bool(labels.get(f"org.opencontainers.image.{label}")), f"label org.opencontainers.image.{label}")
    report(image.get("created") == "2026-08-03T12:00:00Z", "created is the fixed date passed in, not \"now\"")
    nss = [s for s in image.get("standIns", []) if "extraPasswdLines" in s]
    passwd = f"{c['user']}:x:{c['uid']}:{c['gid']}:"
    report(bool(nss) and any(l.startswith(passwd) for l in nss[0]["extraPasswdLines"]), f"passwd has {passwd}…")
    report(bool(nss) and f"{c['group']}:x:{c['gid']}:" in nss[0]["extraGroupLines"], "group has the ferry group")
    data = "." + c["dataDir"]
    report(f"chown {c['uid']}:{c['gid']} {data}" in image.get("fakeRootCommands", ""), f"{c['dataDir']} owned by {c['uid']}:{c['gid']}")
    contents = " ".join(image.get("contents", []))
    report(all(x in contents for x in ("-ferry", "ca-certificates", "fake-nss", "zoneinfo")) and len(image["contents"]) == 4,
           "contents: ferry, CA certificates, passwd/group, tzdata and nothing else")
    names = [re.sub(r"^/nix/store/[0-9a-z]{32}-", "", p) for p in image.get("contents", [])]
    forbidden = [n for n in names if re.match(r"(bash|busybox|coreutils|dash|bin-sh|nix)\b", n)]
    report(not forbidden, "no shell or package manager in contents", ", ".join(forbidden))


# --------------------------------------------------------------- source


def source_directories():
    """The directories and single files of nix/source.json."""
    listed = json.loads((ROOT / "nix" / "source.json").read_text())
    return listed["directories"] + listed.get("files", [])


def filter_keeps(path, directories):
    """Mirror of nix/source.nix: crane's commonCargoSources (Cargo.toml,
    Cargo.lock, *.rs, *.toml anywhere) plus the listed directories and files."""
    name = path.rsplit("/", 1)[-1]
    return (name in ("Cargo.toml", "Cargo.lock") or name.endswith(".rs") or name.endswith(".toml")
            or any(path == d or path.startswith(d.rstrip("/") + "/") for d in directories))


def check_source(files, untracked_kept, no_build):
    print("source: the filtered source builds", flush=True)
    directories = source_directories()
    kept = sorted(f for f in files if filter_keeps(f, directories))
    for d in directories:
        report(any(f == d or f.startswith(d + "/") for f in kept), f"{d} exists (lib.fileset.unions rejects a missing path)")
    for needed in ("Cargo.toml", "Cargo.lock", "src/main.rs"):
        report(needed in kept, f"keeps {needed}")
    dropped = sorted(f for f in files if f not in kept)
    print(f"  the filter keeps {len(kept)} files and drops {len(dropped)} "
          f"(e.g. {', '.join(dropped[:6])}{', …' if len(dropped) > 6 else ''})", flush=True)
    if untracked_kept:
        print(f"  note: {len(untracked_kept)} kept file(s) are not tracked by git, so a flake would not see them: "
              f"{', '.join(untracked_kept[:8])}{' …' if len(untracked_kept) > 8 else ''}", flush=True)
    if no_build:
        skip("cargo build of the filtered source", "--no-build")
        return kept
    src = SCRATCH / "source"
    shutil.rmtree(src, ignore_errors=True)
    for f in kept:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    env = dict(os.environ, CARGO_TARGET_DIR=str(SCRATCH / "target"), FERRY_GIT_REVISION="nix-filter-check")
    print(f"  cargo build --locked --all-targets in a copy of just those files (target dir {SCRATCH.relative_to(ROOT)}/target)", flush=True)
    r = run(["cargo", "build", "--locked", "--all-targets", "--quiet"], cwd=src, env=env)
    report(r.returncode == 0, "cargo build --locked --all-targets of the filtered source",
           "" if r.returncode == 0 else first_lines(r.stderr, 25))
    return kept


# ----------------------------------------------------------------- deep


def check_deep(args, files, kept):
    print("deep: nix/source.nix and nix/module.nix with the real nixpkgs lib", flush=True)
    lib_dir = args.nixpkgs_lib and Path(args.nixpkgs_lib)
    if lib_dir and (lib_dir / "lib" / "default.nix").exists():
        lib_dir = lib_dir / "lib"
    if not lib_dir or not (lib_dir / "default.nix").exists():
        skip("real lib.fileset and lib.evalModules", "no --nixpkgs-lib DIR (nixpkgs cannot be fetched here)")
        return
    crane = args.crane and Path(args.crane)
    offline = ROOT / "nix" / "offline"
    if crane and (crane / "lib" / "fileset" / "commonCargoSources.nix").exists():
        with tempfile.TemporaryDirectory(prefix="ferry-tree-") as tmp:
            for f in files:
                (Path(tmp) / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / f, Path(tmp) / f)
            r = run(["nix-instantiate", "--eval", "--read-write-mode", "--json", str(offline / "source-eval.nix"),
                     "--arg", "libDir", str(lib_dir), "--arg", "craneDir", str(crane), "--arg", "root", tmp])
        if report(r.returncode == 0, "realise nix/source.nix (lib.fileset.toSource, crane's commonCargoSources)",
                  "" if r.returncode == 0 else first_lines(r.stderr)):
            store = Path(json.loads(r.stdout))
            got = sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file() or p.is_symlink())
            report(got == kept, f"nix/source.nix keeps exactly the mirrored {len(kept)} files",
                   "" if got == kept else f"only nix: {sorted(set(got) - set(kept))[:10]}, only mirror: {sorted(set(kept) - set(got))[:10]}")
    else:
        skip("realise nix/source.nix", "no --crane DIR")

    def module(settings):
        r = run(["nix-instantiate", "--eval", "--strict", "--json", "--read-write-mode", str(offline / "module-eval.nix"),
                 "--arg", "libDir", str(lib_dir), "--arg", "settings", settings])
        if r.returncode != 0:
            report(False, f"evaluate services.ferry = {settings}", first_lines(r.stderr))
            return None
        return json.loads(r.stdout)

    out = module('{ enable = true; databaseUrlFile = "/run/secrets/ferry-db"; }')
    if out:
        svc = out["service"]["serviceConfig"]
        report(svc["ExecStart"].endswith("/bin/ferry serve"), "module: ExecStart runs `ferry serve`", svc["ExecStart"])
        want = {"ProtectSystem": "strict", "NoNewPrivileges": True, "CapabilityBoundingSet": [""], "ProtectHome": True,
                "PrivateTmp": True, "PrivateDevices": True, "StateDirectory": ["ferry"], "User": "ferry"}
        bad = {k: svc.get(k) for k, v in want.items() if svc.get(k) != v}
        report(not bad, "module: hardening (ProtectSystem=strict, NoNewPrivileges, empty CapabilityBoundingSet, …)",
               str(bad) if bad else "")
        report(svc.get("LoadCredential") == ["database-url:/run/secrets/ferry-db"]
               and svc.get("Environment") == ["FERRY_DATABASE_URL_FILE=%d/database-url"],
               "module: databaseUrlFile goes through LoadCredential as FERRY_DATABASE_URL_FILE")
        env = out["service"]["environment"]
        report(env == {"FERRY_LISTEN": "127.0.0.1:8080", "FERRY_DATA_DIR": "/var/lib/ferry"}, "module: default environment", str(env))
        report(all(a["assertion"] for a in out["assertions"]), "module: assertions hold")
    out = module('{ enable = true; listenAddress = "::"; port = 9000; openFirewall = true; dataDir = "/srv/ferry";'
                 ' databaseUrl = "postgres://ferry@db/ferry"; environment.FERRY_LOG_FORMAT = "json"; }')
    if out:
        env = out["service"]["environment"]
        report(env.get("FERRY_LISTEN") == "[::]:9000" and env.get("FERRY_LOG_FORMAT") == "json"
               and env.get("FERRY_DATABASE_URL") == "postgres://ferry@db/ferry", "module: listen, extra env, database URL", str(env))
        report(out["networking"]["firewall"]["allowedTCPPorts"] == [9000], "module: openFirewall opens the port")
        report(out["tmpfiles"] == ["d /srv/ferry 0750 ferry ferry - -"]
               and out["service"]["serviceConfig"]["ReadWritePaths"] == ["/srv/ferry"], "module: a data dir outside /var/lib")
    out = module('{ enable = true; databaseUrl = "sqlite:///x.db"; databaseUrlFile = "/run/x"; }')
    if out:
        report(not all(a["assertion"] for a in out["assertions"]), "module: rejects databaseUrl with databaseUrlFile")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-build", action="store_true", help="skip the cargo build of the filtered source")
    ap.add_argument("--include-untracked", action="store_true",
                    help="count untracked (not ignored) files as part of the tree, as if they were `git add`ed")
    ap.add_argument("--nixpkgs-lib", default=os.environ.get("FERRY_NIXPKGS_LIB"), metavar="DIR",
                    help="a local nixpkgs lib (or nixpkgs.lib checkout) for the deep checks (env FERRY_NIXPKGS_LIB)")
    ap.add_argument("--crane", default=os.environ.get("FERRY_CRANE_SRC"), metavar="DIR",
                    help="a local crane source tree for the deep fileset check (env FERRY_CRANE_SRC)")
    args = ap.parse_args()

    missing = [t for t in ("nix", "nix-instantiate", "git", "cargo") if not shutil.which(t)]
    if missing:
        print(f"missing: {', '.join(missing)} (apt-get install nix-bin git; cargo from rustup)", file=sys.stderr)
        return 2
    print(run(["nix", "--version"]).stdout.strip(), flush=True)

    files, untracked = git_files(args.include_untracked)
    untracked_kept = sorted(f for f in untracked if filter_keeps(f, source_directories())) if args.include_untracked else []
    if not args.include_untracked:
        hidden = sorted(f for f in untracked if filter_keeps(f, source_directories()) or f.endswith(".nix") or f == "flake.lock")
        report(not hidden, "every file the flake needs is tracked by git (a flake sees only those)",
               "" if not hidden else f"untracked: {', '.join(hidden[:10])}{' …' if len(hidden) > 10 else ''}; "
               "git add them, or pass --include-untracked")
    files |= {f for f in ("flake.nix", "flake.lock", "nix/image-contract.json") if (ROOT / f).exists()}

    check_parse(files)
    check_lock()
    check_metadata()
    check_format(files)
    check_contract()
    try:
        inputs = sorted(flake_inputs())
    except RuntimeError as e:
        inputs = []
        report(False, "read flake.nix inputs", str(e))
    if inputs:
        flake_check.check_flake(ROOT, sorted(files), inputs, run, report, first_lines, ROOT / "target" / "nix-flake-check")
    kept = check_source(files, untracked_kept, args.no_build)
    check_deep(args, files, kept)

    print()
    if failures:
        print(f"nix/check.py: {len(failures)} check(s) failed:", *failures, sep="\n  - ")
        return 1
    print("nix/check.py: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
