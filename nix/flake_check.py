"""The step `flake` of nix/check.py: `nix flake check --no-build` of the whole
flake, offline, with every input overridden by a stand-in from nix/offline/
(nixpkgs/ and crane/: small local flakes with just the attributes Ferry's flake
uses, under their real names).

It evaluates every output for every system: packages, checks and devShells must
be derivations (their .drv files are written; nothing is built), so a wrong
attribute path, a misspelt package or builder argument, or a check that names
something missing fails. Nix 2.8 does not check apps or the formatter (its
app check is compiled out), so they are evaluated here as well. Last, a copy
with a deliberately wrong attribute must fail, so the step can fail.

What it cannot catch: anything about the real nixpkgs and crane beyond the
names the stand-ins mirror (what their functions do, arguments crane passes
through to mkDerivation, build failures, hashes). See docs/nix.md.
"""

import json
import os
import re
import shutil
from pathlib import Path

NIX_FEATURES = ["--extra-experimental-features", "nix-command flakes"]
# No registry lookups and no binary cache: everything comes from the overrides.
OFFLINE_CONFIG = "flake-registry = \nsubstituters = \n"
STORE_PROGRAM = re.compile(r"^/nix/store/[0-9a-z]{32}-[^/]+/bin/[^/]+$")


def copy_tree(root, files, dest):
    """The flake as Nix sees it: only the given (git-visible) files."""
    shutil.rmtree(dest, ignore_errors=True)
    for f in files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / f, dest / f)


def nix_args(tree, inputs):
    args = ["--no-write-lock-file"]
    for name in inputs:
        args += ["--override-input", name, f"path:{tree / 'nix' / 'offline' / name}"]
    return args


def check_flake(root, files, inputs, run, report, first_lines, scratch):
    print("flake: nix flake check --no-build with the offline stand-ins", flush=True)
    tree = scratch / "flake"
    copy_tree(root, files, tree)
    missing = [name for name in inputs if not (tree / "nix" / "offline" / name / "flake.nix").exists()]
    if not report(not missing, "every input has a stand-in in nix/offline/", ", ".join(missing)):
        return
    env = dict(os.environ, NIX_CONFIG=OFFLINE_CONFIG + os.environ.get("NIX_CONFIG", ""))
    common = nix_args(tree, inputs)

    def nix(*args, flake=tree):
        return run(["nix", *NIX_FEATURES, *args, *common, f"path:{flake}"], env=env, timeout=300)

    def nix_eval(attr, apply):
        r = run(["nix", *NIX_FEATURES, "eval", "--json", *common, f"path:{tree}#{attr}", "--apply", apply],
                env=env, timeout=300)
        return (json.loads(r.stdout) if r.returncode == 0 else None), r

    r = nix("flake", "check", "--no-build")
    report(r.returncode == 0, "nix flake check --no-build: every output evaluates",
           "" if r.returncode == 0 else first_lines(r.stderr, 20))

    apps, r = nix_eval("apps", "builtins.mapAttrs (_: builtins.mapAttrs (_: a: "
                               "{ type = a.type or null; program = a.program or null; "
                               "description = a.meta.description or null; }))")
    if report(apps is not None, "apps evaluate", "" if apps else first_lines(r.stderr)):
        for system, by_name in sorted(apps.items()):
            for name, app in sorted(by_name.items()):
                ok = app["type"] == "app" and bool(STORE_PROGRAM.match(str(app["program"]))) and bool(app["description"])
                report(ok, f"apps.{system}.{name}: type app, program in the store, a description",
                       "" if ok else json.dumps(app))
    fmt, r = nix_eval("formatter", "builtins.mapAttrs (_: f: f.drvPath)")
    report(fmt is not None and all(str(p).endswith(".drv") for p in fmt.values()),
           "formatter is a derivation for every system", "" if fmt else first_lines(r.stderr))

    # The step must be able to fail: a check naming a missing attribute.
    broken = scratch / "flake-broken"
    copy_tree(tree, [str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file()], broken)
    outputs = broken / "nix" / "outputs.nix"
    text = outputs.read_text()
    anchor = "  checks = {\n"
    if report(anchor in text, "nix/outputs.nix has a checks set to break on purpose"):
        outputs.write_text(text.replace(anchor, anchor + "    misspelt = native.ferri;\n", 1))
        r = nix("flake", "check", "--no-build", flake=broken)
        report(r.returncode != 0 and "ferri" in r.stderr, "a check naming a missing attribute fails the step",
               "" if r.returncode != 0 else "nix flake check passed a broken flake")
    shutil.rmtree(broken, ignore_errors=True)
