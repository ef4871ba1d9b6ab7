"""Helpers for the audit log's integration tests: the test writer program
(tests/unit/audit/audit-writer, built, not installed) and log parsing."""
import json
import subprocess

from conftest import BUILD, run_airlock

WRITER = BUILD / "tests" / "unit" / "audit" / "audit-writer"


def setup_keys(state):
    r = run_airlock("log", "setup-keys", "--state-dir", state, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["verification_key"]


def write(state, *args, check=True):
    """Runs the writer to completion; returns its stdout lines."""
    r = subprocess.run([str(WRITER), "--state-dir", str(state), *map(str, args)],
                       capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def verify(log, *args):
    r = run_airlock("log", "verify", "--file", log, "--json", *args)
    assert r.returncode in (0, 1), r.stderr
    j = json.loads(r.stdout)
    assert (r.returncode == 0) == j["ok"]
    return j


def records(data):
    """Valid record lines of a log's bytes, by seq (invalid lines skipped)."""
    out = {}
    for line in data.split(b"\n"):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "seq" in rec:
            out[rec["seq"]] = rec
    return out
