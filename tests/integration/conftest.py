"""Shared fixtures: the integration tests drive the real, built binaries.

AIRLOCK_BUILD names the meson build directory (dev/test sets it; the default
is ./build). Every helper returns subprocess.CompletedProcess with text output.
"""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("AIRLOCK_BUILD", ROOT / "build"))
AIRLOCK = BUILD / "src" / "cli" / "airlock"
AIRLOCKD = BUILD / "src" / "broker" / "airlockd"


def run_airlock(*args, input=None, env=None, timeout=60, check=False, cwd=None):
    """Runs the built airlock with args; never through a shell."""
    full_env = dict(os.environ)
    full_env.pop("AIRLOCK_POLICY", None)
    if env:
        full_env.update(env)
    return subprocess.run([str(AIRLOCK), *map(str, args)], input=input, env=full_env,
                          capture_output=True, text=True, timeout=timeout, check=check,
                          cwd=cwd)


@pytest.fixture
def airlock():
    if not AIRLOCK.exists():
        pytest.fail(f"{AIRLOCK} is missing — build first (meson setup build && meson compile -C build)")
    return run_airlock


@pytest.fixture
def policy_file(tmp_path):
    """Writes a policy text to a file and returns its path."""
    def write(text, name="policy.yaml"):
        p = tmp_path / name
        p.write_text(text)
        return p
    return write
