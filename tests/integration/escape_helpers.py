"""Helpers for the escape corpus (tests/integration/test_escape_*.py).

Every escape test shows both sides of one technique:
  * outside: the same attempt, run directly on the host as root, works (or the
    target demonstrably exists: the secret is readable, the socket listens);
  * inside: run under `airlock run`, it fails with the expected error.

The attempts are made by tests/probe/airlock-probe (one multi-call C program:
`airlock-probe TECHNIQUE ARGS` prints "OK ..." or "ERR ENAME ...") or by the
real tools an attacker would use. An inside run whose probe never ran (airlock
refused to start, the probe was not found) is a test failure, never a pass:
expect_denied() insists on seeing the probe's own answer.

The `lab` fixture (one per test module) creates real secrets on the host, a
policy listing them (passed with AIRLOCK_POLICY), a workspace, and removes all
of it afterwards.
"""
import contextlib
import os
import pathlib
import re
import secrets as pysecrets
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import AIRLOCK, BUILD

PROBE = BUILD / "tests" / "probe" / "airlock-probe"

# The limits the corpus's policy sets, so that the resource tests know them.
PIDS_MAX = 64
MEMORY_MAX_MIB = 256
# Ports the host-network profile allows (the defaults).
ALLOWED_PORTS = (443, 53)


def need_tools(*names):
    """Skips (saying which package) when a real tool a test drives is not installed."""
    missing = [n for n in names if not shutil.which(n)]
    if missing:
        pytest.skip(f"not installed here: {', '.join(missing)} (Debian: openssh-client, libcap2-bin, "
                    "lsof, git, systemd) — dev/packages should list it")


def known_weakness(finding, what):
    """Marks a technique that still gets through the sandbox on main.

    strict: the day the sandbox stops it, the test XPASSes and fails, so the
    marker cannot outlive the weakness unnoticed. The finding (FNN) is the
    escape engineer's report to the sandbox engineer, with the details.
    """
    return pytest.mark.xfail(strict=True, reason=f"known sandbox weakness {finding}: {what}")


RESULT_RE = re.compile(r"^(OK|ERR)(?: (\S+))?(.*)$", re.M)


class Lab:
    """Secrets, policy and workspace for one test module; see lab()."""

    def __init__(self):
        self.tag = "airlock-escape-" + pysecrets.token_hex(4)
        # the token is the content of every secret: it must never appear inside
        self.token = "AIRLOCK-SECRET-" + pysecrets.token_hex(16)
        self.etc_dir = pathlib.Path("/etc") / self.tag
        self.srv_dir = pathlib.Path("/srv") / self.tag
        self.secret_file = self.etc_dir / "authkey"
        self.secret_dir = self.srv_dir / "secretdir"
        self.secret_dir_file = self.secret_dir / "cluster.key"
        self.ssh_key = pathlib.Path("/root/.ssh") / f"id_{self.tag.replace('-', '_')}"
        self.workspace = self.srv_dir / "workspace"
        self.policy = self.srv_dir / "policy.yaml"
        # the probe, copied where every sandbox sees it: the build directory may be under
        # /tmp, which is a private tmpfs inside
        self.probe = self.srv_dir / "bin" / "airlock-probe"
        self._ssh_dir_created = False
        self.airlock = AIRLOCK

    def setup(self):
        self.etc_dir.mkdir(mode=0o755)
        self.srv_dir.mkdir(mode=0o755)
        self.secret_file.write_text(self.token + "\n")
        self.secret_file.chmod(0o644)  # readable to all outside: only the mask protects it
        self.secret_dir.mkdir(mode=0o755)
        self.secret_dir_file.write_text(self.token + "\n")
        self.secret_dir_file.chmod(0o644)
        self.probe.parent.mkdir(mode=0o755)
        shutil.copy(PROBE, self.probe)
        os.chmod(self.probe, 0o755)
        self.workspace.mkdir(mode=0o777)
        self.workspace.chmod(0o777)
        self.policy.write_text(f"""\
version: 1
secrets:
  - /etc/shadow
  - /etc/gshadow
  - {self.secret_file}
  - {self.secret_dir}
  - {self.etc_dir}/late.key
  - {self.etc_dir}/*.pem
  - {self.srv_dir}/deep/conf/app.key
  - ~/.ssh/id_*
protect: [.git/hooks, .git/config, .bashrc, .profile]
profiles:
  default: {{net: none, pids: {PIDS_MAX}, memory: {MEMORY_MAX_MIB}M}}
  hostnet: {{net: host, ports: [{ALLOWED_PORTS[0]}, {ALLOWED_PORTS[1]}], pids: {PIDS_MAX}, memory: {MEMORY_MAX_MIB}M}}
default: approve
""")
        return self

    @contextlib.contextmanager
    def ssh_key_present(self):
        """root's ~/.ssh/id_* key with the token, for the tests that need it (only those:
        every launch has to mask it, so a problem there shows in these tests alone)."""
        ssh_dir = self.ssh_key.parent
        if not ssh_dir.exists():
            ssh_dir.mkdir(mode=0o700)
            self._ssh_dir_created = True
        self.ssh_key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n" + self.token +
                                "\n-----END OPENSSH PRIVATE KEY-----\n")
        self.ssh_key.chmod(0o600)
        try:
            yield self.ssh_key
        finally:
            self.ssh_key.unlink(missing_ok=True)

    def cleanup(self):
        for d in (self.etc_dir, self.srv_dir):
            shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.ssh_key.unlink()
        if self._ssh_dir_created:
            with contextlib.suppress(OSError):
                self.ssh_key.parent.rmdir()

    def hostfile(self, name):
        """A path in this lab's host directory (/srv/airlock-escape-*), outside any mask."""
        return self.srv_dir / name

    def ws(self, name=""):
        return self.workspace / name if name else self.workspace

    # --- running things -------------------------------------------------

    def inside(self, *argv, profile=None, net=None, workspace=None, extra=(), env=None,
               pass_fds=(), stdin=subprocess.DEVNULL, timeout=60, cwd=None, policy=True):
        """Runs argv under `airlock run` with this lab's policy; returns CompletedProcess."""
        if os.environ.get("AIRLOCK_ESCAPE_OUTSIDE_ONLY") == "1":
            # development aid: checks only the outside half of every proof
            pytest.skip("AIRLOCK_ESCAPE_OUTSIDE_ONLY=1: the outside half passed; inside not run")
        cmd = [str(AIRLOCK), "run", "--workspace", str(workspace or self.workspace)]
        if profile:
            cmd += ["--profile", profile]
        if net:
            cmd += ["--net", net]
        cmd += [*map(str, extra), "--", *map(str, argv)]
        full_env = dict(os.environ)
        full_env.pop("AIRLOCK_POLICY", None)
        if policy:
            full_env["AIRLOCK_POLICY"] = str(self.policy)
        if env:
            full_env.update(env)
        cp = subprocess.run(cmd, env=full_env, stdin=stdin, capture_output=True, text=True,
                            errors="replace", timeout=timeout, pass_fds=pass_fds,
                            cwd=cwd or self.workspace)
        cp.stdout = cp.stdout.replace("\r\n", "\n")
        cp.stderr = cp.stderr.replace("\r\n", "\n")
        if self.token in cp.stdout or self.token in cp.stderr:
            pytest.fail(f"SECRET LEAKED inside the sandbox: {describe(cp)}")
        return cp

    def start_inside(self, *argv, profile=None, workspace=None, extra=()):
        """Starts argv under `airlock run` without waiting: returns the Popen (text pipes)."""
        if os.environ.get("AIRLOCK_ESCAPE_OUTSIDE_ONLY") == "1":
            pytest.skip("AIRLOCK_ESCAPE_OUTSIDE_ONLY=1: the outside half passed; inside not run")
        cmd = [str(AIRLOCK), "run", "--workspace", str(workspace or self.workspace)]
        if profile:
            cmd += ["--profile", profile]
        cmd += [*map(str, extra), "--", *map(str, argv)]
        env = dict(os.environ, AIRLOCK_POLICY=str(self.policy))
        return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace",
                                cwd=self.workspace, start_new_session=True)

    def finish(self, p, timeout=30):
        """Waits for a start_inside() process; returns a CompletedProcess like inside()."""
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        cp = subprocess.CompletedProcess(p.args, p.returncode, out.replace("\r\n", "\n"),
                                         err.replace("\r\n", "\n"))
        if self.token in cp.stdout or self.token in cp.stderr:
            pytest.fail(f"SECRET LEAKED inside the sandbox: {describe(cp)}")
        return cp

    def wait_for_go(self, then):
        """A shell script for inside: wait until the test creates ws/go, then run `then`."""
        go = self.ws("go")
        return (f"echo waiting; i=0; while [ ! -e {go} ] && [ $i -lt 12000 ]; do sleep 0.05; i=$((i+1)); done; "
                f"{then}")

    def probe_inside(self, *args, **kw):
        return self.inside(self.probe, *args, **kw)

    def sh_inside(self, script, **kw):
        return self.inside("/bin/sh", "-c", script, **kw)


def outside(*argv, env=None, pass_fds=(), timeout=60, input=None, cwd=None, user=None):
    """Runs argv directly on the host (as root, or as USER through setpriv)."""
    argv = [str(a) for a in argv]
    if user:
        import pwd
        pw = pwd.getpwnam(user)
        argv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
                "--inh-caps=-all", *argv]
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(argv, env=full_env, pass_fds=pass_fds, capture_output=True,
                          text=True, errors="replace", timeout=timeout, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL, cwd=cwd)


def probe_outside(*args, **kw):
    return outside(PROBE, *args, **kw)


def describe(cp):
    return (f"\n  command: {cp.args!r}\n  exit status: {cp.returncode}"
            f"\n  stdout: {cp.stdout[-2000:]!r}\n  stderr: {cp.stderr[-2000:]!r}")


def result(cp):
    """The probe's answer as (status, errno-or-first-word, rest), or None if it never ran."""
    m = RESULT_RE.search(cp.stdout)
    if not m:
        return None
    return m.group(1), m.group(2) or "", (m.group(3) or "").strip()


def expect_ok(cp, what="the attempt outside the sandbox"):
    """Asserts the probe ran and succeeded; returns the detail after OK."""
    r = result(cp)
    assert r is not None and r[0] == "OK", f"{what} should succeed (the other side of the proof):{describe(cp)}"
    return (r[1] + " " + r[2]).strip()


def expect_denied(cp, *errnos, what="the attempt inside the sandbox"):
    """Asserts the probe ran inside and failed with one of errnos; returns the errno name."""
    r = result(cp)
    if r is None:
        pytest.fail(f"{what}: the probe never answered (did airlock run start it?):{describe(cp)}")
    assert r[0] == "ERR", f"{what} must fail, but it succeeded:{describe(cp)}"
    assert r[1] in errnos, f"{what} failed with {r[1]}, expected one of {errnos}:{describe(cp)}"
    return r[1]


def expect_empty_or_denied(cp, *errnos, what="reading the secret inside the sandbox"):
    """For masked files: an empty read ("OK 0") or one of errnos."""
    r = result(cp)
    if r is None:
        pytest.fail(f"{what}: the probe never answered (did airlock run start it?):{describe(cp)}")
    if r[0] == "OK":
        assert r[1] == "0", f"{what} must read nothing, but read {r[1]} bytes:{describe(cp)}"
        return "empty"
    assert r[1] in errnos, f"{what} failed with {r[1]}, expected an empty read or one of {errnos}:{describe(cp)}"
    return r[1]


def expect_ran(cp, what="the command inside the sandbox"):
    """Asserts airlock run started the command and it exited 0."""
    assert cp.returncode == 0, f"{what} should have run and exited 0:{describe(cp)}"


# --- host-side targets ------------------------------------------------------


class Listener:
    """A real listening socket on the host that greets each client with a line."""

    def __init__(self, family, address, greeting=b"hello-from-host\n", kind=socket.SOCK_STREAM):
        self.sock = socket.socket(family, kind)
        if family != socket.AF_UNIX:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(address)
        self.address = self.sock.getsockname()
        self.greeting = greeting
        self.received = []
        self._stop = False
        if kind == socket.SOCK_STREAM:
            self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._serve, args=(kind,), daemon=True)
        self.thread.start()

    def _serve(self, kind):
        while not self._stop:
            try:
                if kind == socket.SOCK_STREAM:
                    c, _ = self.sock.accept()
                    with c:
                        c.sendall(self.greeting)
                        self.received.append(b"connect")
                else:
                    data, _ = self.sock.recvfrom(2048)
                    self.received.append(data)
            except (socket.timeout, OSError):
                continue

    @property
    def port(self):
        return self.address[1]

    def wait_received(self, timeout=20):
        """For the positive side: True as soon as something arrived (the serving thread
        may be slow to run on a loaded machine), False after timeout."""
        deadline = time.monotonic() + timeout
        while not self.received and time.monotonic() < deadline:
            time.sleep(0.02)
        return bool(self.received)

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()


@contextlib.contextmanager
def unix_listener(path):
    """A listening unix socket at path (parent directories created and removed)."""
    path = pathlib.Path(path)
    created = []
    parent = path.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    for d in reversed(created):
        d.mkdir(mode=0o755)
    l = Listener(socket.AF_UNIX, str(path))
    os.chmod(path, 0o777)  # connectable by the agent's uid too: only the sandbox must stop it
    try:
        yield l
    finally:
        l.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        for d in created:
            with contextlib.suppress(OSError):
                d.rmdir()


@contextlib.contextmanager
def host_process(*argv, env=None):
    """Starts a process on the host; kills exactly it (and waits) afterwards."""
    p = subprocess.Popen([str(a) for a in argv], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(5)


def pids_with_cmdline(marker):
    """Host pids whose command line contains marker."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(d))
        except OSError:
            continue
    return found


def kill_pids(pids):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_gone(marker, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = pids_with_cmdline(marker)
        if not left:
            return []
        time.sleep(0.05)
    return pids_with_cmdline(marker)


@pytest.fixture(scope="module")
def lab():
    if not AIRLOCK.exists():
        pytest.fail(f"{AIRLOCK} is missing — build first (meson setup build && meson compile -C build)")
    if not PROBE.exists():
        pytest.fail(f"{PROBE} is missing — build first (it is built by tests/probe/meson.build)")
    if os.geteuid() != 0:
        pytest.fail("the escape corpus runs as root: it shows each attack working outside the sandbox")
    lab = Lab().setup()
    try:
        yield lab
    finally:
        lab.cleanup()


def free_test_subnet():
    """A /30 in 198.51.100.0/24 that no route of the host uses yet (other tests make their own)."""
    used = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                          text=True).stdout + subprocess.run(["ip", "-4", "addr"], capture_output=True,
                                                              text=True).stdout
    for _ in range(64):
        base = 4 * (40 + pysecrets.randbelow(22))  # 160..244
        if f"198.51.100.{base}/30" not in used and f"198.51.100.{base + 1}" not in used \
                and f"198.51.100.{base + 2}" not in used:
            return f"198.51.100.{base + 1}", f"198.51.100.{base + 2}"
    raise RuntimeError("no free /30 in 198.51.100.0/24 for the test network")


@pytest.fixture(scope="module")
def testnet():
    """A network namespace joined to the host by a veth pair, on a /30 of 198.51.100.0/24.

    Its peer runs PEER_SERVER: TCP listeners on the given ports (greeting
    "hello-from-peer") and a UDP receiver on 5405 (corosync's port) whose
    datagrams appear on the server's stdout.
    """
    name = "airlock-esc-" + pysecrets.token_hex(3)
    veth = "alesc" + pysecrets.token_hex(3)
    host_addr, peer_addr = free_test_subnet()

    def ip(*a, check=True):
        return subprocess.run(["ip", *a], capture_output=True, text=True, check=check)
    ip("netns", "add", name)
    procs = []
    try:
        ip("link", "add", veth, "type", "veth", "peer", "name", veth + "p")
        ip("link", "set", veth + "p", "netns", name)
        ip("addr", "add", f"{host_addr}/30", "dev", veth)
        ip("link", "set", veth, "up")
        ip("-n", name, "addr", "add", f"{peer_addr}/30", "dev", veth + "p")
        ip("-n", name, "link", "set", veth + "p", "up")
        ip("-n", name, "link", "set", "lo", "up")

        class Net:
            netns = name
            host = host_addr
            peer = peer_addr
            server = None

            @staticmethod
            def start(argv):
                p = subprocess.Popen(["ip", "netns", "exec", name, *map(str, argv)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
                procs.append(p)
                return p

        server = Net.start(["/usr/bin/python3", "-c", PEER_SERVER, "443", "53", "8080", "22"])
        line = server.stdout.readline()
        assert line.strip() == "ready", "the test network's peer server did not start"
        Net.server = server
        yield Net
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(5)
        ip("link", "del", veth, check=False)
        ip("netns", "del", name, check=False)


PEER_SERVER = r"""
import socket, sys, select
socks = []
for port in map(int, sys.argv[1:]):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(8); socks.append(s)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5405))
print("ready", flush=True)
while True:
    r, _, _ = select.select(socks + [u], [], [])
    for s in r:
        if s is u:
            data, _ = u.recvfrom(2048); print("udp", data.decode(errors="replace"), flush=True)
        else:
            c, _ = s.accept(); c.sendall(b"hello-from-peer\n"); c.close()
"""
