"""The JSON API keeps the contract it publishes: schemathesis reads
/api/openapi.json from the real binary (a fresh SQLite data dir, a user and a token
made with the CLI, as an operator would) and sends requests generated from it, valid
and invalid ones. No answer may be a server error, and every answer must match the
description: a documented status, content type, headers and body schema.

Run by the nox session `contract`; FERRY_BIN names the binary,
FERRY_CONTRACT_EXAMPLES the number of generated cases per operation."""

import os
import re
import shutil
from pathlib import Path
import xml.etree.ElementTree as ET

from dockerutil import run
from native import Ferry, direct

# The checks, and the exceptions with their reasons.
CONFIG = Path(__file__).with_name("schemathesis.toml")
# How tus's request bodies are sent.
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
# Schemathesis leaves out the operation it read the description from.
SELF = "GET /api/openapi.json"


def operations(schema):
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {f"{m.upper()} {path}" for path, item in schema["paths"].items() for m in item if m in methods}


def test_every_generated_request_gets_a_described_answer(tmp_path):
    schemathesis = shutil.which("schemathesis")
    assert schemathesis, "schemathesis is not installed (the nox session `contract` installs it)"
    # Generated uploads are many and of any size: a cap on unfinished ones would soon
    # turn every creation into a 403, and a size that a small disk cannot hold into a
    # 507 instead of the described 413.
    ferry = Ferry(tmp_path, f"sqlite://{tmp_path / 'data' / 'ferry.db'}", FERRY_LOG="ferry=warn",
                  FERRY_MAX_UNFINISHED_UPLOADS="10000", FERRY_MAX_UPLOAD_BYTES=str(64 * 1024 * 1024))
    ferry.start()
    try:
        token = ferry.create_token(user="contract")
        base = f"http://127.0.0.1:{ferry.port}"
        answer = direct().get(f"{base}/api/openapi.json", timeout=10)
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        schema = answer.json()
        described = operations(schema)
        assert len(described) >= 9 and SELF in described, f"the description lists only {sorted(described)}"
        expected = described - {SELF}
        junit = tmp_path / "junit.xml"
        examples = os.environ.get("FERRY_CONTRACT_EXAMPLES", "150")
        proc = run([schemathesis, "--config-file", str(CONFIG), "run", f"{base}/api/openapi.json",
                    "--header", f"Authorization: Bearer {token}",
                    "--max-examples", examples,
                    # One worker: with several, Hypothesis's lambda-source parsing
                    # trips a CPython 3.11 AST bug (SystemError, recursion depth mismatch).
                    "--workers", "1",
                    "--report", "junit", "--report-junit-path", str(junit)],
                   # Its caches go to the temporary directory, its requests never to a proxy.
                   check=False, cwd=tmp_path,
                   env=dict(os.environ, NO_COLOR="1", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1",
                            SCHEMATHESIS_HOOKS=str(HOOKS)))
        output = proc.stdout + proc.stderr
        print(output)
        assert proc.returncode == 0, f"schemathesis found problems:\n{output}\n--- ferry log\n{ferry.log_text()}"
        # It really tested every described operation, none skipped or errored.
        cases = list(ET.parse(junit).getroot().iter("testcase"))
        tested = {case.get("name") for case in cases if not list(case)} - {"Stateful tests"}
        assert tested == expected, f"tested {sorted(tested)}, described {sorted(expected)}\n{output}"
        assert re.search(r"Test cases:\s+\d+ generated, \d+ passed", output), output
    finally:
        ferry.stop()
