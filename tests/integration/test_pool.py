"""Warm sandboxes: `airlock pool` builds sandboxes ahead, `airlock run` takes one.

A warm sandbox must be exactly as confining as a cold one, single use, and
taken only by its own uid; a client that dies takes its agent with it; a
changed policy is never served from a sandbox built under the old one; and a
stopped pool leaves nothing behind. Each security claim is shown on both
sides: the secret readable, the write working, the peer answering outside;
refused inside a sandbox that was really taken warm ("pool: taken" in
AIRLOCK_DEBUG_TIMING's output, which every warm run here insists on).

Each test has its own pool directory (AIRLOCK_POOL_DIR), its own workspace
and its own pool; every wait is a loop with a deadline (2 busy cores, and the
sanitizer build is several times slower).
"""
import contextlib
import json
import os
import pathlib
import pwd
import re
import secrets as pysecrets
import select
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from broker_helpers import BASE_RULES, Broker, ensure_users, policy_text
from conftest import AIRLOCK
from escape_helpers import (describe, expect_denied, expect_empty_or_denied, expect_ok,  # noqa: F401
                            kill_pids, lab, outside, pids_with_cmdline, probe_outside, result,
                            testnet, wait_gone)
from test_escape_terminal import Terminal, term  # noqa: F401

WARM = "pool: taken"          # the client's AIRLOCK_DEBUG_TIMING line when it took a warm sandbox
BUILT = "built entry"         # the pool's log line when an entry is ready
TAKEN = "taken by"            # the pool's log line when it hands an entry to a client
EXPIRED = "expired after"     # the pool's log line when an unused entry is rebuilt (--max-age)
WRITE_ERRNOS = ("EROFS", "EACCES", "EPERM")
MASK_ERRNOS = ("ENOENT", "EACCES", "EPERM")
OTHER_UID = 1001
# the client as run inside the sandbox (LeakSanitizer cannot work there; see test_broker_sandbox)
A = f"env ASAN_OPTIONS=detect_leaks=0 {AIRLOCK}"


def deadline_loop(timeout, what, check, pool=None):
    """Calls check() until it returns something true; fails saying what it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            extra = f"\n  pool log:\n{pool.text()}" if pool else ""
            pytest.fail(f"waited {timeout} s for {what}{extra}")
        time.sleep(0.02)


class Pool:
    """A real `airlock pool` for one workspace, logging to a file."""

    def __init__(self, workspace, policy, size=2, extra=(), env=None, pool_dir=None):
        self.base = pathlib.Path(tempfile.mkdtemp(prefix="alpool-"))  # short: sun_path is 108 bytes
        self.dir = pool_dir or self.base / "pool"  # the server creates it (0700)
        self.log = self.base / "pool.log"
        self.workspace = pathlib.Path(workspace)
        self.policy = policy
        self.size = size
        self.extra = [str(a) for a in extra]
        self.env_extra = dict(env or {})
        self.proc = None

    def start(self):
        e = dict(os.environ)
        for k in ("AIRLOCK_SESSION_SOCKET", "AIRLOCK_DEBUG_TIMING"):
            e.pop(k, None)
        e["AIRLOCK_POOL_DIR"] = str(self.dir)
        e["AIRLOCK_POLICY"] = str(self.policy)
        e.update(self.env_extra)
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(
            [str(AIRLOCK), "pool", "--workspace", str(self.workspace), "--size", str(self.size),
             *self.extra],
            env=e, stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT,
            cwd=self.workspace, start_new_session=True)
        self.wait_ready(self.size)
        return self

    def text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def count(self, what):
        return self.text().count(what)

    def ready(self):
        """Entries built and not yet handed to a client."""
        t = self.text()
        return (t.count(BUILT) - t.count(TAKEN) - t.count("failed while it waited") -
                t.count(EXPIRED))

    def socket(self):
        socks = sorted(self.dir.glob("*.sock")) if self.dir.is_dir() else []
        return socks[0] if len(socks) == 1 else None

    def wait_ready(self, n=1, timeout=90):
        def check():
            if self.proc.poll() is not None:
                pytest.fail(f"airlock pool exited with {self.proc.returncode}:\n{self.text()}")
            return self.ready() >= n and self.socket() is not None
        deadline_loop(timeout, f"{n} ready entr{'y' if n == 1 else 'ies'} in the pool", check, self)

    def client_env(self, extra=None):
        return {"AIRLOCK_POOL_DIR": str(self.dir), "AIRLOCK_DEBUG_TIMING": "1", **(extra or {})}

    def entry_pids(self):
        return [int(p) for p in re.findall(BUILT + r" \(pid (\d+)", self.text())]

    def stop(self, timeout=60):
        """SIGTERM; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pytest.fail(f"airlock pool did not stop within {timeout} s of SIGTERM:\n{self.text()}")
        return self.proc.returncode

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.logf.close()
        # whatever an entry left (a failed test): its command line is the pool's, with the workspace
        kill_pids(p for p in pids_with_cmdline(str(self.workspace)) if p != os.getpid())
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def workspace(lab):
    """A workspace of this test's own (the pool's key and command line carry its path)."""
    ws = lab.hostfile("ws-" + pysecrets.token_hex(4))
    ws.mkdir(mode=0o777)
    ws.chmod(0o777)
    yield ws
    shutil.rmtree(ws, ignore_errors=True)


@pytest.fixture
def pools():
    """Starts pools; stops and removes every one afterwards."""
    started = []

    def start(workspace, policy, **kw):
        if not AIRLOCK.exists():
            pytest.fail(f"{AIRLOCK} is missing — build first")
        p = Pool(workspace, policy, **kw)
        started.append(p)
        return p.start()
    yield start
    for p in started:
        p.cleanup()


@pytest.fixture
def pool(lab, workspace, pools):
    return pools(workspace, lab.policy, size=2)


def proc_state(pid):
    """(state letter, parent pid) of pid from /proc, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None
    return state, int(ppid)


def alive(pid):
    """pid is a process that has not exited (a zombie waiting for init to reap it has)."""
    st = proc_state(pid)
    return st is not None and st[0] != "Z"


def zombies_of(parents):
    """Exited, unreaped children of any of the pids in parents, as "pid of ppid" strings."""
    found = []
    for d in filter(str.isdigit, os.listdir("/proc")):
        st = proc_state(d)
        if st and st[0] == "Z" and st[1] in parents:
            found.append(f"{d} of {st[1]}")
    return found


def client_cmd(workspace, argv, extra=()):
    return [str(AIRLOCK), "run", "--workspace", str(workspace), *map(str, extra), "--",
            *map(str, argv)]


def client_environ(pool, policy, env=None):
    e = dict(os.environ)
    for k in ("AIRLOCK_SESSION_SOCKET", "AIRLOCK_DEBUG_TIMING", "AIRLOCK_POOL_DIR"):
        e.pop(k, None)
    e["AIRLOCK_POLICY"] = str(policy)
    e.update(pool.client_env())
    e.update(env or {})
    return e


def run(lab, pool, *argv, input=None, extra=(), env=None, workspace=None, policy=None,
        timeout=60):
    """`airlock run` with the pool's directory in its environment (warm or cold: not checked)."""
    ws = workspace or pool.workspace
    cp = subprocess.run(client_cmd(ws, argv, extra), env=client_environ(pool, policy or pool.policy, env),
                        input=input, stdin=subprocess.DEVNULL if input is None else None,
                        capture_output=True, text=True, errors="replace", timeout=timeout, cwd=ws)
    if lab.token in cp.stdout or lab.token in cp.stderr:
        pytest.fail(f"SECRET LEAKED inside the sandbox: {describe(cp)}")
    return cp


def warm(lab, pool, *argv, **kw):
    """Waits for a ready entry, runs argv, insists that it ran in a warm sandbox."""
    pool.wait_ready(1)
    cp = run(lab, pool, *argv, **kw)
    assert WARM in cp.stderr, f"expected a warm sandbox (AIRLOCK_DEBUG_TIMING: '{WARM}'):" \
        f"{describe(cp)}\n  pool log:\n{pool.text()}"
    return cp


def warm_probe(lab, pool, *args, **kw):
    return warm(lab, pool, lab.probe, *args, **kw)


def cold(lab, pool, *argv, **kw):
    cp = run(lab, pool, *argv, **kw)
    assert WARM not in cp.stderr, f"expected a cold run, but it took a warm sandbox:{describe(cp)}"
    return cp


class Output:
    """Reads a Popen's stdout and stderr (binary pipes) without blocking, with deadlines."""

    def __init__(self, p):
        self.p = p
        self.buf = {p.stdout.fileno(): b"", p.stderr.fileno(): b""}
        self.open = set(self.buf)

    def pump(self, wait=0.05):
        if not self.open:
            time.sleep(wait)
            return
        r, _, _ = select.select(list(self.open), [], [], wait)
        for fd in r:
            chunk = os.read(fd, 65536)
            if chunk:
                self.buf[fd] += chunk
            else:
                self.open.discard(fd)

    @property
    def stdout(self):
        return self.buf[self.p.stdout.fileno()].decode(errors="replace")

    @property
    def stderr(self):
        return self.buf[self.p.stderr.fileno()].decode(errors="replace")

    def wait_for(self, what, timeout=60, stream="stdout"):
        deadline = time.monotonic() + timeout
        while what not in getattr(self, stream):
            if time.monotonic() > deadline or (self.p.poll() is not None and not self.open):
                pytest.fail(f"waited for {what!r} on {stream}; exit {self.p.poll()}\n"
                            f"  stdout: {self.stdout!r}\n  stderr: {self.stderr!r}")
            self.pump()

    def finish(self, timeout=60):
        deadline = time.monotonic() + timeout
        while self.open or self.p.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"airlock run did not end within {timeout} s\n"
                            f"  stdout: {self.stdout!r}\n  stderr: {self.stderr!r}")
            self.pump()
        return self.p.returncode


def start_client(pool, argv, extra=()):
    p = subprocess.Popen(client_cmd(pool.workspace, argv, extra),
                         env=client_environ(pool, pool.policy), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=pool.workspace,
                         start_new_session=True)
    return p, Output(p)


# --- (1) a warm run behaves like a run ------------------------------------------------


def test_warm_run_gives_status_stdout_stderr_and_the_clients_environment(lab, pool):
    taken = pool.count(TAKEN)
    r = warm(lab, pool, "sh", "-c", "echo out-$((6*7)); echo err-on-stderr >&2; "
             "echo tz=$TZ; echo token=${FOO_TOKEN-unset}; echo agent=$AIRLOCK_AGENT; exit 7",
             env={"TZ": "Pacific/Auckland", "FOO_TOKEN": "xyz"})
    assert r.returncode == 7, describe(r)
    assert "out-42\n" in r.stdout and "err-on-stderr" in r.stderr, describe(r)
    # the client's environment (not the pool's), through the usual allowlist
    assert "tz=Pacific/Auckland" in r.stdout and "token=unset" in r.stdout, describe(r)
    assert "agent=agent" in r.stdout, describe(r)
    deadline_loop(30, "the pool's 'taken by' line", lambda: pool.count(TAKEN) == taken + 1, pool)


def test_warm_run_reads_stdin_from_a_pipe(lab, pool):
    data = "".join(f"line {i} {pysecrets.token_hex(8)}\n" for i in range(2000))
    r = warm(lab, pool, "sh", "-c", "cat; echo end", input=data)
    assert r.returncode == 0, describe(r)
    assert r.stdout == data + "end\n", f"stdin did not arrive whole:{describe(r)}"


def test_sigterm_to_the_client_reaches_the_warm_agent(lab, pool):
    pool.wait_ready(1)
    p, out = start_client(pool, ["sh", "-c", "trap 'echo got-term; exit 3' TERM; echo ready; "
                                 "i=0; while [ $i -lt 6000 ]; do sleep 0.1; i=$((i+1)); done"])
    try:
        out.wait_for("ready")
        out.wait_for(WARM, stream="stderr")
        p.send_signal(signal.SIGTERM)
        rc = out.finish()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 3 and "got-term" in out.stdout, f"exit {rc}, stdout {out.stdout!r}, stderr {out.stderr!r}"


def test_each_warm_sandbox_is_used_once(lab, pool):
    """Two warm runs: each its own session id and its own /tmp (what one leaves, the next
    does not see)."""
    first = warm(lab, pool, "sh", "-c", "echo id=$AIRLOCK_SESSION_ID; echo x > /tmp/left-behind; "
                 "test -e /tmp/left-behind && echo wrote")
    second = warm(lab, pool, "sh", "-c", "echo id=$AIRLOCK_SESSION_ID; "
                  "if test -e /tmp/left-behind; then echo found; else echo clean; fi")
    assert "wrote" in first.stdout, describe(first)
    assert "clean" in second.stdout, f"the second warm run saw the first's /tmp:{describe(second)}"
    ids = [re.search(r"id=(\S+)", r.stdout).group(1) for r in (first, second)]
    assert ids[0] != ids[1], f"two warm runs had the same session id {ids[0]}"


# --- (2) a warm sandbox confines like a cold one ----------------------------------------


def test_warm_secret_is_masked(lab, pool):
    assert lab.token in expect_ok(probe_outside("read", lab.secret_file))
    expect_empty_or_denied(warm_probe(lab, pool, "read", lab.secret_file), *MASK_ERRNOS)
    r = warm(lab, pool, "cat", lab.secret_dir_file)
    assert lab.token not in r.stdout, describe(r)


def test_warm_write_outside_the_workspace_fails_and_inside_works(lab, pool, workspace):
    target = pathlib.Path("/etc") / f"{lab.tag}-pool-created"
    try:
        expect_ok(probe_outside("write", target))
        target.unlink()
        expect_denied(warm_probe(lab, pool, "write", target), *WRITE_ERRNOS)
        assert not target.exists(), f"{target} appeared on the host"
    finally:
        target.unlink(missing_ok=True)
    inws = workspace / "made-in-a-warm-sandbox"
    expect_ok(warm_probe(lab, pool, "write", inws), "writing the workspace inside")
    assert inws.exists(), "the workspace write did not reach the host"


def test_warm_agent_is_not_root(lab, pool):
    assert outside("id", "-u").stdout.strip() == "0"
    r = warm(lab, pool, "id", "-u")
    assert r.returncode == 0, describe(r)
    uid = int(r.stdout.strip())
    assert uid != 0 and uid == pwd.getpwnam("airlock-agent").pw_uid, describe(r)


def test_warm_sandbox_has_no_network(lab, pool, testnet):
    assert "hello-from-peer" in expect_ok(probe_outside("tcp-connect", testnet.peer, "443"))
    expect_denied(warm_probe(lab, pool, "tcp-connect", testnet.peer, "443"), "ENETUNREACH",
                  "EHOSTUNREACH", "EACCES", "EPERM")


# --- (3) only the same configuration is served warm -------------------------------------


def test_another_configuration_runs_cold(lab, pool):
    other = lab.hostfile("other-ws-" + pysecrets.token_hex(4))
    other.mkdir(mode=0o777)
    try:
        r = warm(lab, pool, "echo", "same")
        assert r.returncode == 0 and r.stdout == "same\n", describe(r)
        pool.wait_ready(1)
        taken = pool.count(TAKEN)
        for kw in ({"workspace": other}, {"extra": ("--no-pool",)},
                   {"extra": ("--agent", "other")}):
            r = cold(lab, pool, "echo", "cold", **kw)
            assert r.returncode == 0 and r.stdout == "cold\n", f"{kw}:{describe(r)}"
        assert pool.count(TAKEN) == taken, f"a cold run took an entry:\n{pool.text()}"
    finally:
        shutil.rmtree(other, ignore_errors=True)


# --- (4) only the pool's own uid may take ----------------------------------------------

PEER = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect-failed", e.errno); sys.exit()
print("connected", flush=True)
s.settimeout(30)
try:
    d = s.recv(100)
except ConnectionResetError:
    d = b""
except socket.timeout:
    print("no-answer"); sys.exit()
print("closed" if not d else "reply " + d.decode(errors="replace"))
"""


def test_another_uid_cannot_take_a_sandbox(lab, pool):
    sock = pool.socket()
    as_other = ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups"]
    # the pool directory is 0700: another uid cannot even reach the socket
    r = subprocess.run([*as_other, "/usr/bin/python3", "-c", PEER, str(sock)], capture_output=True,
                       text=True, timeout=60)
    assert r.stdout.strip() == "connect-failed 13", f"{r.stdout!r} {r.stderr!r}"
    # with CAP_DAC_OVERRIDE it reaches the socket: the server itself refuses the uid
    taken = pool.count(TAKEN)
    r = subprocess.run([*as_other, "--inh-caps=+dac_override", "--ambient-caps=+dac_override",
                        "/usr/bin/python3", "-c", PEER, str(sock)], capture_output=True, text=True,
                       timeout=60)
    assert r.stdout.split() == ["connected", "closed"], \
        f"uid {OTHER_UID} must be disconnected without an answer: {r.stdout!r} {r.stderr!r}"
    deadline_loop(30, f"the pool's log of the refused uid {OTHER_UID}",
                  lambda: re.search(rf"refused client.*{OTHER_UID}", pool.text()), pool)
    assert pool.count(TAKEN) == taken, f"the refused client took an entry:\n{pool.text()}"
    # the pool's own uid takes one
    r = warm(lab, pool, "echo", "root-took-it")
    assert r.stdout == "root-took-it\n", describe(r)


# --- (5) the client's death ends the agent -----------------------------------------------


def test_killing_the_client_ends_the_agent(lab, pool):
    marker = f"3600.{pysecrets.randbelow(10**8):08d}"
    pool.wait_ready(1)
    p, out = start_client(pool, ["sh", "-c", f"sleep {marker} & echo started; wait"])
    try:
        out.wait_for("started")
        out.wait_for(WARM, stream="stderr")
        agents = [pid for pid in pids_with_cmdline(marker) if pid != p.pid]
        assert len(agents) >= 2, f"the agent's sh and sleep should be on the host: {agents}"
        p.kill()
        p.wait(30)
        left = wait_gone(marker, timeout=30)
        assert left == [], f"the agent's processes outlived the killed client: {left}\n{pool.text()}"
    finally:
        kill_pids(pids_with_cmdline(marker))
        if p.poll() is None:
            p.kill()
            p.wait()
    # the pool serves on
    assert warm(lab, pool, "echo", "next").stdout == "next\n"


# --- (6) a changed policy is never served from an old sandbox ----------------------------


def test_changed_policy_is_refused_as_stale_and_the_pool_rebuilds(lab, workspace, pools):
    policy = lab.hostfile(f"policy-{pysecrets.token_hex(4)}.yaml")
    policy.write_text(lab.policy.read_text())
    late = lab.hostfile(f"late-{pysecrets.token_hex(4)}.key")
    content = "soon-a-secret-" + pysecrets.token_hex(8)
    late.write_text(content + "\n")
    late.chmod(0o644)
    try:
        pool = pools(workspace, policy, size=1)
        # built under the old policy, where the file is no secret: readable
        r = warm_probe(lab, pool, "read", late)
        assert content in expect_ok(r, "reading a file the old policy does not list"), describe(r)
        pool.wait_ready(1)  # the replacement, built under the old policy too
        text = policy.read_text()
        assert "secrets:\n" in text
        policy.write_text(text.replace("secrets:\n", f"secrets:\n  - {late}\n", 1))
        # that entry is stale: offered, refused, and the run goes cold under the new policy
        taken = pool.count(TAKEN)
        r = cold(lab, pool, lab.probe, "read", late)
        assert re.search(r"pool: not used \(.*policy", r.stderr), \
            f"the client should say the pool's sandbox was refused for the policy:{describe(r)}"
        assert pool.count(TAKEN) == taken + 1, pool.text()
        expect_empty_or_denied(r, *MASK_ERRNOS, what="reading the new secret after the policy changed")
        assert content not in r.stdout, describe(r)
        # the pool builds again, under the new policy: warm, and masked
        r = warm_probe(lab, pool, "read", late)
        expect_empty_or_denied(r, *MASK_ERRNOS, what="reading the new secret in a rebuilt entry")
        assert content not in r.stdout, describe(r)
    finally:
        late.unlink(missing_ok=True)
        policy.unlink(missing_ok=True)


# --- (7) stopping the pool -----------------------------------------------------------------


def test_stopping_the_pool_leaves_nothing_and_taken_sandboxes_run_on(lab, workspace, pools):
    assert os.listdir(workspace) == []
    pool = pools(workspace, lab.policy, size=2)
    # built ahead: the placeholders of the protect list are in the workspace already
    assert {".bashrc", ".profile"} <= set(os.listdir(workspace)), os.listdir(workspace)
    sock = pool.socket()
    go = workspace / "go"
    p, out = start_client(pool, ["sh", "-c", f"echo waiting; i=0; while [ ! -e {go} ] && "
                                 "[ $i -lt 12000 ]; do sleep 0.05; i=$((i+1)); done; echo ran-on"])
    try:
        out.wait_for("waiting")
        out.wait_for(WARM, stream="stderr")
        assert pool.stop() == 0, pool.text()
        assert not sock.exists(), f"the pool's socket {sock} is still there"
        # the taken sandbox runs on to its end
        go.touch()
        rc = out.finish()
        assert rc == 0 and "ran-on" in out.stdout, f"{rc} {out.stdout!r} {out.stderr!r}"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    left = wait_gone(str(workspace), timeout=30)
    assert left == [], f"airlock processes left after the pool stopped: {left}\n{pool.text()}"
    pids = pool.entry_pids()
    assert pids, pool.text()
    deadline_loop(30, f"the entries {pids} to end", lambda: not any(map(alive, pids)), pool)
    go.unlink()
    deadline_loop(30, "the placeholders to be removed",
                  lambda: os.listdir(workspace) == [] or None, pool)


def test_a_waiting_sandbox_that_cannot_stop_is_killed_and_the_pool_stops(lab, workspace, pools):
    """Stopping the pool closes each waiting sandbox's control socket and waits for its
    teardown. One that cannot answer (here SIGSTOPped; the other side: it is there, alive
    and stopped, when the pool is told to stop) is killed after 10 s, so the stop ends,
    and nothing of it is left running."""
    pool = pools(workspace, lab.policy, size=1)
    pids = pool.entry_pids()
    assert len(pids) == 1, pool.text()
    entry = pids[0]

    os.kill(entry, signal.SIGSTOP)
    try:
        deadline_loop(10, f"the entry {entry} to be stopped",
                      lambda: (proc_state(entry) or ("",))[0] == "T", pool)
        assert pool.stop(timeout=60) == 0, pool.text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(entry, signal.SIGCONT)
    assert f"a waiting sandbox (pid {entry}) did not stop within 10 s; killing it" in pool.text(), \
        pool.text()
    assert not alive(entry), f"the entry {entry} is still there"
    left = wait_gone(str(workspace), timeout=30)
    assert left == [], f"airlock processes left after the pool stopped: {left}\n{pool.text()}"


def test_a_killed_pool_leaves_a_stale_socket_that_the_next_pool_replaces(lab, workspace, pools):
    pool = pools(workspace, lab.policy, size=2)
    assert {".bashrc", ".profile"} <= set(os.listdir(workspace)), os.listdir(workspace)
    sock, pids = pool.socket(), pool.entry_pids()
    assert len(pids) == 2 and all(map(alive, pids)), (pids, pool.text())
    pool.proc.kill()
    pool.proc.wait(30)
    # its waiting sandboxes see the server gone and tear down, placeholders included
    deadline_loop(30, f"the entries {pids} of the killed pool to end",
                  lambda: not any(map(alive, pids)), pool)
    assert wait_gone(str(workspace), timeout=30) == []
    deadline_loop(30, "the placeholders to be removed", lambda: os.listdir(workspace) == [] or None,
                  pool)
    # the socket file stays; a run goes cold and works
    assert sock.exists()
    r = cold(lab, pool, "echo", "cold")
    assert r.returncode == 0 and r.stdout == "cold\n", describe(r)
    # the next pool replaces the stale socket and serves warm
    again = pools(workspace, lab.policy, size=1, pool_dir=pool.dir)
    assert "stale socket" in again.text(), again.text()
    r = warm(lab, again, "echo", "warm again")
    assert r.returncode == 0 and r.stdout == "warm again\n", describe(r)


# --- (8) a warm sandbox with the broker ---------------------------------------------------


def test_warm_sandbox_reaches_the_broker(lab, workspace, pools, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("airlockd and root-started sandboxes need root")
    ensure_users()
    broker = Broker(tmp_path, policy_text(BASE_RULES), runtime_base="/run").start()
    try:
        pool = pools(workspace, broker.policy, size=1, extra=("--agent", "claude"),
                     env={"AIRLOCK_SOCKET": str(broker.admin)})
        script = (f'test -e {broker.admin}; echo admin-exists=$?; '
                  'test -S "$AIRLOCK_SESSION_SOCKET" && echo session-socket; '
                  f'{A} exec -- echo hello from a warm sandbox; echo rc=$?')
        assert broker.admin.exists()
        r = warm(lab, pool, "sh", "-c", script, extra=("--agent", "claude"),
                 env={"AIRLOCK_SOCKET": str(broker.admin)})
        assert "admin-exists=1" in r.stdout, describe(r)
        assert "session-socket" in r.stdout, f"no session socket in the warm sandbox:{describe(r)}"
        assert "hello from a warm sandbox\nrc=0" in r.stdout, describe(r)
        reqs = json.loads(broker.airlock("requests", "--all", "--json").stdout)
        assert len(reqs) == 1, reqs
        who = broker.show(reqs[0]["id"])["requester"]
        assert who["kind"] == "agent" and who["agent"] == "claude", who
        # the session ends with the warm run
        deadline_loop(30, "the broker's session to end",
                      lambda: not list((broker.runtime / "sessions").iterdir()) and
                      any(e["event"] == "session_end" for e in broker.audit_events()), pool)
    finally:
        broker.stop()


def test_broker_started_after_the_pool(lab, workspace, pools, tmp_path):
    """airlockd started after the pool: the entries built before it have no clone of the
    sessions directory. A run with a session must still work (cold, or warm from a newer entry)."""
    if os.geteuid() != 0:
        pytest.skip("airlockd and root-started sandboxes need root")
    ensure_users()
    broker = Broker(tmp_path, policy_text(BASE_RULES), runtime_base="/run")
    try:
        pool = pools(workspace, broker.policy, size=1, env={"AIRLOCK_SOCKET": str(broker.admin)})
        broker.start()
        r = run(lab, pool, "sh", "-c", 'test -S "$AIRLOCK_SESSION_SOCKET" && echo session-socket; '
                f'{A} exec -- echo hello; echo rc=$?', env={"AIRLOCK_SOCKET": str(broker.admin)})
        assert r.returncode == 0 and "session-socket" in r.stdout and "hello\nrc=0" in r.stdout, \
            f"{describe(r)}\n  pool log:\n{pool.text()}"
        assert WARM not in r.stderr, f"the entry older than the sessions directory was used:{describe(r)}"
        # the entries built since serve warm, with the session
        r = warm(lab, pool, "sh", "-c", 'test -S "$AIRLOCK_SESSION_SOCKET" && echo session-socket; '
                 f'{A} exec -- echo hello; echo rc=$?', env={"AIRLOCK_SOCKET": str(broker.admin)})
        assert r.returncode == 0 and "session-socket" in r.stdout and "hello\nrc=0" in r.stdout, \
            describe(r)
    finally:
        broker.stop()


# --- the terminal ---------------------------------------------------------------------------


def test_warm_agent_gets_a_terminal_of_its_own(lab, pool, term):
    """The pty is made per take from the client's terminal: the agent never holds the human's,
    and TIOCSTI (keystrokes into the human's shell) is refused, as in a cold run."""
    rc, screen = term.run([lab.probe, "tiocsti", "0", "echo owned\n"])
    assert "OK injected" in screen, screen
    assert b"echo owned" in term.pending_input(), "outside, TIOCSTI queues input for the human's shell"
    st = os.fstat(term.slave)
    human = f"{st.st_dev} {os.major(st.st_rdev):x}:{os.minor(st.st_rdev):x}"
    pool.wait_ready(1)
    env = client_environ(pool, pool.policy, {"TERM": "xterm"})
    rc, screen = term.run(client_cmd(pool.workspace, [
        "sh", "-c", f"stat -L -c 'TTY %d %t:%T' /proc/self/fd/0 /proc/self/fd/1; "
                    f"{lab.probe} tiocsti 0 'echo owned\n'"]), env=env)
    assert WARM in screen, f"expected a warm sandbox; screen: {screen!r} (exit {rc})"
    ttys = [line.split(" ", 1)[1].strip() for line in screen.splitlines() if line.startswith("TTY ")]
    assert len(ttys) == 2 and human not in ttys, f"the agent's terminal: {ttys}, the human's: {human}"
    assert "ERR EPERM" in screen, f"TIOCSTI inside must be refused; screen: {screen!r} (exit {rc})"
    assert b"owned" not in term.pending_input(), "keystrokes reached the human's terminal"


# --- (9) the pool's own upkeep; the end of a session --------------------------------


def test_an_unused_warm_sandbox_is_rebuilt_after_max_age(lab, workspace, pools):
    """--max-age: a sandbox shows the host as it was when built; one unused that long is
    torn down (its placeholders with it) and built again, and the new one serves warm."""
    pool = pools(workspace, lab.policy, size=1, extra=("--max-age", "1"))
    first = pool.entry_pids()[0]
    deadline_loop(30, "the first entry's expiry", lambda: pool.count(EXPIRED) >= 1, pool)
    deadline_loop(30, "the first entry to be gone", lambda: not alive(first), pool)
    pool.wait_ready(1)
    assert pool.entry_pids()[-1] != first, pool.text()
    r = warm(lab, pool, "sh", "-c", "echo fresh")
    assert r.returncode == 0 and "fresh" in r.stdout, describe(r)
    r = outside(AIRLOCK, "pool", "--max-age", "0", env=pool.client_env())
    assert r.returncode == 64 and "--max-age" in r.stderr, describe(r)


def sched_policy(pid):
    """The scheduling policy of a host pid (0 SCHED_OTHER, 5 SCHED_IDLE)."""
    with open(f"/proc/{pid}/sched") as f:
        for line in f:
            if line.startswith("policy"):
                return int(line.split(":")[1])
    raise AssertionError(f"no policy line in /proc/{pid}/sched")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root builds at idle priority")
def test_refills_build_at_idle_priority_and_serve_at_the_normal_one(lab, pool):
    """The pool as root builds at idle priority (a refill takes only spare CPU time) and says
    so; a built entry waits, and its sandbox serves, at the normal priority: on a busy machine
    an idle-priority entry could take seconds to answer its client. Inside the warm sandbox,
    pid 1, the unix wall and the agent all run SCHED_OTHER."""
    entry = pool.entry_pids()[0]
    assert f"{BUILT} (pid {entry}, at idle priority)" in pool.text(), pool.text()
    assert sched_policy(entry) == 0, f"a waiting entry is not SCHED_OTHER:\n{pool.text()}"
    r = warm(lab, pool, "sh", "-c", "for p in /proc/[0-9]*; do "
             "grep -h '^policy' $p/sched 2>/dev/null; done")
    assert r.returncode == 0, describe(r)
    policies = [int(line.split(":")[1]) for line in r.stdout.splitlines() if ":" in line]
    assert len(policies) >= 3, f"pid 1, the unix wall and the agent, at least:{describe(r)}"
    assert set(policies) == {0}, f"something in the warm sandbox runs at idle priority:{describe(r)}"


@pytest.mark.parametrize("mode", ["warm", "cold"])
def test_when_airlock_run_returns_the_agents_processes_and_placeholders_are_gone(
        lab, pool, mode):
    """airlock run may return before the sandbox's namespaces are torn down, but never before
    everything the agent started is gone and the workspace is as it was. While the session
    runs, both are there (the other side). The cold run has a workspace of its own, without
    a pool (whose waiting sandboxes hold placeholders of their own there)."""
    pool.wait_ready(1)
    ws = pool.workspace
    if mode == "cold":
        ws = lab.hostfile("ws-cold-" + pysecrets.token_hex(4))
        ws.mkdir(mode=0o777)
        ws.chmod(0o777)
    before = sorted(os.listdir(ws))
    marker = f"3600.{pysecrets.token_hex(4)}"
    go = ws / "go"
    argv = ["sh", "-c", f"sleep {marker} & echo started; i=0; "
            "while [ ! -e go ] && [ $i -lt 12000 ]; do sleep 0.05; i=$((i+1)); done; exit 5"]
    p = subprocess.Popen(client_cmd(ws, argv), env=client_environ(pool, pool.policy),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=ws, start_new_session=True)
    out = Output(p)
    try:
        out.wait_for("started")
        assert pids_with_cmdline(marker), "the agent's background process is not running"
        # no finished helper (the idmapped workspace's user namespace) waits unreaped in ps
        # for the session's end: not in the client, nor in the pool and its entries (each
        # of them built: one still building may be between its helper's exit and the reap)
        pool.wait_ready(pool.size)
        owners = {p.pid} | set(pids_with_cmdline(str(pool.workspace)))
        zombies = zombies_of(owners)
        during = sorted(os.listdir(ws))
        if mode == "cold":
            assert during != before, f"no placeholder during the session: {during}"
        go.touch()
        rc = out.finish()
        left = pids_with_cmdline(marker)
        after = sorted(n for n in os.listdir(ws) if n != "go")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        kill_pids(pids_with_cmdline(marker))
        if mode == "cold":
            shutil.rmtree(ws, ignore_errors=True)
    assert rc == 5, f"exit {rc}, stderr {out.stderr!r}"
    assert (WARM in out.stderr) == (mode == "warm"), out.stderr
    assert not left, f"processes of the agent outlived airlock run: {left}"
    assert after == before, f"the workspace changed: {before} -> {after}"
    assert not zombies, f"unreaped children of airlock during the session: {zombies}"
