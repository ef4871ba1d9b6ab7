"""Helpers for the airlock plan tests: running a plan, a test policy with an
inventory, and proof that the host did not change (tree digests, mounts,
processes).
"""
import hashlib
import json
import os
import pathlib
import subprocess

import pytest

from conftest import AIRLOCK, ROOT

DEFAULT_POLICY_FILE = ROOT / "data" / "policy.yaml"
DEFAULT_POLICY = DEFAULT_POLICY_FILE.read_text()
XENON = "198.51.100.82"
INVENTORY = f"""hosts:
  pve1:  {{address: 198.51.100.10, environment: production, cluster: pve}}
  xenon: {{address: {XENON}, environment: production}}
"""


def needs_root():
    if os.geteuid() != 0:
        pytest.skip("airlock plan needs root (namespaces, overlays)")


def policy_with_inventory(tmp_path):
    """The embedded default policy, with xenon and pve1 in the inventory."""
    text = DEFAULT_POLICY.replace("hosts: {}\n", INVENTORY)
    assert text != DEFAULT_POLICY
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return p


def plan(*cmd, policy=None, host=None, user=None, cwd=None, timeout=None, env=None, expect=None,
         run_timeout=180):
    """Runs airlock plan --json; returns (exit code, plan, decision, stderr)."""
    # the embedded default's source unless told otherwise: whatever /etc/airlock holds on this
    # machine does not change the expectations
    args = [str(AIRLOCK), "plan", "--json", "--policy", str(policy or DEFAULT_POLICY_FILE)]
    if host:
        args += ["--host", host]
    if user:
        args += ["--user", user]
    if cwd:
        args += ["--cwd", str(cwd)]
    if timeout:
        args += ["--timeout", str(timeout)]
    full_env = dict(os.environ)
    full_env.pop("AIRLOCK_POLICY", None)
    if env:
        full_env.update(env)
    r = subprocess.run(args + ["--", *map(str, cmd)], capture_output=True, text=True, env=full_env,
                       timeout=run_timeout)
    if r.returncode not in (0, 10, 77):
        raise AssertionError(f"airlock plan failed ({r.returncode}): {r.stderr}")
    out = json.loads(r.stdout)
    if expect is not None:
        assert r.returncode == expect, (r.returncode, out["decision"], r.stderr)
    return r.returncode, out["plan"], out["decision"], r.stderr


def effects(p):
    """The file effects as a set of (change, path)."""
    return {(f["change"], f["path"]) for f in p["files"]}


def tree_digest(*paths):
    """A digest of everything under paths: names, types, modes, owners, sizes, mtimes, content,
    link targets. Missing paths count too."""
    h = hashlib.sha256()
    for top in paths:
        top = pathlib.Path(top)
        if not top.exists() and not top.is_symlink():
            h.update(f"missing {top}\n".encode())
            continue
        entries = [top] + sorted(top.rglob("*")) if top.is_dir() and not top.is_symlink() else [top]
        for p in entries:
            st = p.lstat()
            h.update(f"{p} {st.st_mode:o} {st.st_uid} {st.st_gid} {st.st_size} {st.st_mtime_ns}\n".encode())
            if p.is_symlink():
                h.update(os.readlink(p).encode())
            elif p.is_file() and st.st_size < 4 * 1024 * 1024:
                h.update(p.read_bytes())
    return h.hexdigest()


def mounts():
    """This mount namespace's mounts (the host's), without ids that other tests' mounts shift."""
    lines = pathlib.Path("/proc/self/mountinfo").read_text().splitlines()
    return sorted(" ".join(l.split()[3:]) for l in lines)


def processes_matching(marker):
    """Pids of live processes whose command line holds marker."""
    found = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(d.name))
    return found


class HostUnchanged:
    """Context manager: the given trees, the mount table, and (by marker) the processes are the
    same after the block as before."""

    def __init__(self, *paths, marker=None):
        self.paths = paths
        self.marker = marker

    def __enter__(self):
        self.digest = tree_digest(*self.paths)
        self.mounts = mounts()
        return self

    def __exit__(self, *exc):
        if exc[0]:
            return False
        assert tree_digest(*self.paths) == self.digest, f"the host changed under {self.paths}"
        # other tests on this machine mount things meanwhile: look for what a plan mounts
        # (overlays, the stage on /tmp, proc, devpts, mqueue)
        new = [m for m in mounts() if m not in self.mounts]
        ours = [m for m in new if " overlay " in m or m.split()[1].startswith("/tmp")
                or " - proc " in m or " - devpts " in m or " - mqueue " in m]
        assert not ours, f"mounts left behind: {ours}"
        if self.marker:
            assert processes_matching(self.marker) == [], f"processes left: {self.marker}"
        return False
