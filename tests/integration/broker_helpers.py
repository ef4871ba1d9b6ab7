"""Helpers for the broker's integration tests: a real airlockd in a temporary
directory, the real airlock client run as chosen users, and a raw protocol
client for messages the airlock command would never send."""
import json
import os
import pathlib
import pwd
import signal
import socket
import struct
import subprocess
import shutil
import tempfile
import time

from conftest import AIRLOCK, AIRLOCKD

APPROVERS = ("airlock-t-alice", "airlock-t-bob")
OUTSIDER = "airlock-t-eve"

EX_USAGE = 64
EX_UNAVAILABLE = 69
EX_TIMEOUT = 75
EX_DENIED = 77


def ensure_users():
    """Test users: two approvers and one non-approver (created once, no home)."""
    for u in (*APPROVERS, OUTSIDER):
        try:
            pwd.getpwnam(u)
        except KeyError:
            subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", u], check=True)


def policy_text(rules, approvers=APPROVERS, extra=""):
    """A small policy: the given rules (YAML list items), approvers, default approve."""
    users = ", ".join(approvers)
    return (f"version: 1\napprovers: {{users: [{users}]}}\n{extra}rules:\n{rules}\n"
            "default: approve\n")


BASE_RULES = """\
  - match: [echo, "**"]
    action: allow
    reason: echo changes nothing
  - match: [/bin/true]
    action: allow
  - match: [sh, -c, "**"]
    action: allow
    reason: test shell
  - match: [touch, "**"]
    action: approve
    reason: creates files
  - match: [tee, "**"]
    action: approve
    approvers: 2
    reason: writes files; two people must agree
  - match: [rm, "**"]
    action: deny
    reason: deleting is never done through the broker here
"""


class Broker:
    """A real airlockd with its own state and runtime directories."""

    def __init__(self, tmp_path, policy, extra_args=(), runtime_base=None):
        self.dir = pathlib.Path(tmp_path)
        self.policy = self.dir / "policy.yaml"
        self.policy.write_text(policy)
        self.state = self.dir / "state"
        # the runtime directory must be reachable by the test users (pytest's
        # tmp_path is under a 0700 directory)
        self.runtime = pathlib.Path(tempfile.mkdtemp(prefix="airlock-rt-", dir=runtime_base))
        os.chmod(self.runtime, 0o755)
        self.admin = self.runtime / "admin.sock"
        self.log = self.dir / "airlockd.log"
        self.extra_args = list(extra_args)
        self.proc = None

    def start(self, wait=True):
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen(
            [str(AIRLOCKD), "--config", str(self.policy), "--state-dir", str(self.state),
             "--runtime-dir", str(self.runtime), *self.extra_args],
            stdout=self.logf, stderr=subprocess.STDOUT)
        if wait:
            deadline = time.time() + 30
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"airlockd exited: {self.log.read_text()}")
                if self.admin.exists():
                    try:
                        with socket.socket(socket.AF_UNIX) as s:
                            s.connect(str(self.admin))
                        return self
                    except OSError:
                        pass
                time.sleep(0.02)
            raise AssertionError("airlockd did not start: " + self.log.read_text())
        return self

    def stop(self):
        self._stop()
        shutil.rmtree(self.runtime, ignore_errors=True)

    def _stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def _reloads(self):
        text = self.log.read_text() if self.log.exists() else ""
        return text.count("reloaded the policy") + text.count("kept the previous policy")

    def hup(self, timeout=30):
        """SIGHUP, then waits until the broker has said whether it reloaded the policy."""
        before = self._reloads()
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + timeout
        while self._reloads() == before:
            assert time.time() < deadline, "airlockd did not answer SIGHUP"
            time.sleep(0.02)

    def env(self):
        e = dict(os.environ)
        e["AIRLOCK_SOCKET"] = str(self.admin)
        e.pop("AIRLOCK_SESSION_SOCKET", None)
        return e

    def airlock(self, *args, user=None, env=None, timeout=60, input=None, cwd=None,
                prefix=()):
        """Runs the real airlock client, as user (via setpriv) when given."""
        e = self.env()
        if env:
            e.update(env)
        cmd = [str(AIRLOCK), *map(str, args)]
        if user:
            cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
        cmd = [*prefix, *cmd]
        return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=timeout,
                              input=input, cwd=cwd or "/")

    def popen(self, *args, user=None, env=None):
        e = self.env()
        if env:
            e.update(env)
        cmd = [str(AIRLOCK), *map(str, args)]
        if user:
            cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
        return subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd="/")

    def show(self, rid):
        r = self.airlock("show", "--json", rid)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def wait_state(self, rid, states, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.show(rid)["state"]
            if st in states:
                return st
            time.sleep(0.05)
        raise AssertionError(f"request {rid} is {st}, expected one of {states}")

    def audit_events(self):
        """The audit log's records (airlock-log(5)), oldest first."""
        p = self.state / "audit.log"
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


class Raw:
    """A raw protocol connection: length-prefixed JSON, or any bytes at all."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(30)
        self.s.connect(str(path))

    def close(self):
        self.s.close()

    def send_bytes(self, b):
        self.s.sendall(b)

    def send(self, obj):
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.s.sendall(struct.pack(">I", len(body)) + body)

    def recv(self):
        hdr = self._exact(4)
        if hdr is None:
            return None
        (n,) = struct.unpack(">I", hdr)
        body = self._exact(n)
        return json.loads(body)

    def call(self, obj):
        self.send(obj)
        return self.recv()

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                return None if not buf else buf
            buf += chunk
        return buf


def open_session(broker, agent="test-agent", workspace="/tmp", profile="default"):
    """Opens a session over the admin socket; returns (holder connection, socket path, id)."""
    c = Raw(broker.admin)
    m = c.call({"type": "open-session", "agent": agent, "workspace": workspace,
                "profile": profile})
    assert m["type"] == "session", m
    return c, m["socket"], m["session"]


def exec_raw(conn, argv, wait_ms=0, why=None, cwd="/"):
    """Sends exec; returns (first request snapshot, final message, stdout bytes)."""
    import base64
    req = {"type": "exec", "argv": argv, "cwd": cwd, "wait_ms": wait_ms}
    if why is not None:
        req["why"] = why
    conn.send(req)
    first = conn.recv()
    if first["type"] == "error":
        return first, first, b""
    out = b""
    while True:
        m = conn.recv()
        if m["type"] == "output":
            if m["stream"] == "stdout":
                out += base64.b64decode(m["data"])
            continue
        return first, m, out
