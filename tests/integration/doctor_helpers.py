"""The corosync lab (tests/lab) driven from pytest, for the doctor's tests.

Each test module gets its own lab (a name of its own, so two builds' test
runs cannot collide) and takes it down at the end, whatever happened.
"""
import os
import pathlib
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAB_BIN = ROOT / "tests" / "lab"
MEMBERS = ("pve1", "pve2", "pve8")
NODES = MEMBERS + ("xenon",)
ADDR = {"pve1": "198.51.100.10", "pve2": "198.51.100.20", "pve8": "198.51.100.80", "xenon": "198.51.100.82"}
VARIANTS = ("own-config", "same-config", "fourth-node", "reused-nodeid", "wrong-key")


def lab_available():
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the corosync lab needs root (network namespaces, mounts)"
    for tool in ("/usr/sbin/corosync", "/usr/sbin/corosync-keygen", "/usr/bin/nsenter", "/usr/bin/unshare"):
        if not os.path.exists(tool):
            return f"{tool} is missing (apt-get install corosync util-linux)"
    return None


class Lab:
    def __init__(self, name):
        self.name = name
        self.dir = pathlib.Path("/run/airlock-lab") / name
        self.env = dict(os.environ, AIRLOCK_LAB_NAME=name)
        self.env.pop("AIRLOCK_LAB_DIR", None)

    def run(self, script, *args, timeout=60, check=True):
        p = subprocess.run([str(LAB_BIN / script), *args], env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"lab {script} {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def up(self):
        return self.run("up")

    def down(self):
        return self.run("down", check=False)

    def incident(self, variant):
        return self.run("incident", variant)

    def enter(self, node, *cmd, timeout=30):
        return subprocess.run([str(LAB_BIN / "enter"), node, *cmd], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def node_root(self, node):
        return self.dir / "nodes" / node / "root"

    def log(self, node):
        p = self.node_root(node) / "var/log/corosync/corosync.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def key(self):
        return (self.node_root("pve1") / "etc/corosync/authkey").read_bytes()

    def policy(self, path):
        """Writes an inventory whose hosts are reached through tests/lab/enter."""
        enter = LAB_BIN / "enter"
        # The lab's nodes share the host's /etc apart from corosync's own
        # directories, so the tests watch only the cluster's secrets (a change
        # to the host's /etc/shadow by something else must not flake them).
        lines = ["secrets:", "  - /etc/corosync/authkey*", "  - /etc/pve/priv/**", "hosts:"]
        for n in NODES:
            cluster = ", cluster: pve" if n in MEMBERS else ""
            lines.append(f"  {n}: {{address: {ADDR[n]}, environment: test{cluster}, "
                         f"connect: [/usr/bin/env, AIRLOCK_LAB_NAME={self.name}, {enter}, {n}]}}")
        path.write_text("\n".join(lines) + "\n")
        return path


def lab_fixture_name(prefix):
    return f"{prefix}{os.getpid() % 100000}"


def wait_for(pred, timeout=20.0, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def require_lab():
    why = lab_available()
    if why:
        pytest.skip(why)
