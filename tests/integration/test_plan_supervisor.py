"""The plan supervisor (src/plan/supervisor.c) on real commands, through its
driver: tests/unit/plan/test-supervisor run MODE POLICY [--root DIR] -- CMD
supervises CMD as plan_run() (refuse) or the broker's recorder (record) do and
prints what was recorded as JSON.

Every refusal is shown both ways: the same attempt succeeds without the
supervisor (the target exists and answers), and fails under it, recorded.
Needs root (seccomp listener handover with pidfd_getfd, fanotify, network
namespaces, overlay mounts).
"""
import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("AIRLOCK_BUILD", ROOT / "build"))
DRIVER = pathlib.Path(os.environ.get("AIRLOCK_PLAN_SUP_DRIVER",
                                     BUILD / "tests" / "unit" / "plan" / "test-supervisor"))
PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="the supervisor needs root (fanotify, pidfd_getfd)")


@pytest.fixture(scope="module", autouse=True)
def driver_built():
    if not DRIVER.exists():
        pytest.fail(f"{DRIVER} is missing — build first (meson compile -C {BUILD})")


def supervise(mode, policy, cmd, root=None, wrap=(), timeout=120, linger=0):
    """Runs cmd under the supervisor; returns (recorded JSON, stderr)."""
    args = [*wrap, str(DRIVER), "run", mode, str(policy)]
    if root:
        args += ["--root", str(root)]
    if linger:
        args += ["--linger", str(linger)]
    p = subprocess.run([*args, "--", *cmd], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"driver failed: {p.stderr}"
    return json.loads(p.stdout), p.stderr


def exit_code(rec):
    st = rec["exit_status"]
    assert st & 0x7F == 0, f"killed by signal {st & 0x7F}"
    return (st >> 8) & 0xFF


@pytest.fixture
def shadow_policy(tmp_path):
    p = tmp_path / "policy.yaml"
    p.write_text(textwrap.dedent("""\
        version: 1
        secrets: [/etc/shadow]
        hosts:
          xenon: {address: 198.51.100.5, environment: production}
        """))
    return p


# ---- record mode: what an approved execution did ----

def test_record_write_secret_and_execs(shadow_policy, tmp_path):
    out = tmp_path / "f"
    rec, _ = supervise("record", shadow_policy,
                       ["sh", "-c", f"echo x > {out}; cat /etc/shadow > /dev/null; exec true"])
    assert exit_code(rec) == 0
    assert out.read_text() == "x\n"  # nothing was refused: the write happened
    files = [(f["change"], f["path"]) for f in rec["files"]]
    assert ("created", str(out)) in files
    assert not any(p == "/dev/null" for _, p in files)  # a device is no file effect
    assert {"path": "/etc/shadow", "program": "/usr/bin/cat", "write": False} in rec["secrets"]
    execs = [e["argv"] for e in rec["execs"]]
    assert execs[0][:2] == ["sh", "-c"]
    assert ["cat", "/etc/shadow"] in execs
    assert ["true"] in execs
    # execvp's misses along PATH are not execs: each program appears once
    assert [e["path"] for e in rec["execs"]].count("/usr/bin/true") == 1
    assert len(execs) == 3
    assert rec["complete"] is True


def test_record_secret_under_another_name(shadow_policy, tmp_path):
    # a hard link on the same filesystem as /etc/shadow, and /proc/self/root/...
    link = pathlib.Path("/root") / f".airlock-test-hl-{uuid.uuid4().hex[:8]}"
    os.link("/etc/shadow", link)
    try:
        rec, _ = supervise("record", shadow_policy, ["cat", str(link)])
        assert exit_code(rec) == 0
        assert [s["path"] for s in rec["secrets"]] == ["/etc/shadow"]
        rec, _ = supervise("record", shadow_policy, ["cat", "/proc/self/root/etc/shadow"])
        assert [s["path"] for s in rec["secrets"]] == ["/etc/shadow"]
    finally:
        link.unlink()
    # and a file that is not a secret is not reported
    rec, _ = supervise("record", shadow_policy, ["cat", "/etc/passwd"])
    assert rec["secrets"] == []


def test_record_file_calls(shadow_policy, tmp_path):
    d = tmp_path / "w"
    d.mkdir()
    (d / "old").write_text("1")
    (d / "gone").write_text("1")
    script = (f"cd {d} && mkdir sub && echo a > sub/new && mv old renamed && rm gone && "
              f"chmod 600 renamed && ln -s renamed sym && truncate -s 0 renamed")
    rec, _ = supervise("record", shadow_policy, ["sh", "-c", script])
    assert exit_code(rec) == 0
    got = {(f["change"], f["path"], f["renamed_from"]) for f in rec["files"]}
    assert ("created", f"{d}/sub", None) in got
    assert ("created", f"{d}/sub/new", None) in got
    assert ("renamed", f"{d}/renamed", f"{d}/old") in got
    assert ("deleted", f"{d}/gone", None) in got
    assert ("created", f"{d}/sym", None) in got
    mods = [f for f in rec["files"] if f["change"] == "modified" and f["path"] == f"{d}/renamed"]
    assert any(f["mode_changed"] for f in mods)
    assert any(f["content_changed"] for f in mods)


# ---- refuse mode: what would leave the snapshot ----

@pytest.fixture
def netns():
    """A network namespace with 198.51.100.5 on its loopback and a listener on :22."""
    name = f"plsup-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", "198.51.100.5/32", "dev", "lo"],
                       check=True)
        server = subprocess.Popen(
            ["ip", "netns", "exec", name, PYTHON, "-c", textwrap.dedent("""\
                import socket, sys
                s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("198.51.100.5", 22)); s.listen(64)
                print("ready", flush=True)
                while True:
                    c, _ = s.accept(); c.sendall(b"SSH-2.0-test\\r\\n"); c.close()
                """)], stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"
        yield name
        server.kill()
        server.wait()
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


CONNECT_INET = textwrap.dedent("""\
    import socket, sys
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(("198.51.100.5", 22))
        print("connected", s.recv(64).decode().strip())
    except OSError as e:
        print("refused", e.errno)
    """)


def test_refuse_connect_to_inventory_host(shadow_policy, netns):
    # outside the supervisor the host answers
    p = subprocess.run(["ip", "netns", "exec", netns, PYTHON, "-c", CONNECT_INET],
                       capture_output=True, text=True, timeout=30)
    assert p.stdout.strip() == "connected SSH-2.0-test"
    # under it the same connect is refused and recorded as intent
    rec, _ = supervise("refuse", shadow_policy, [PYTHON, "-c", CONNECT_INET],
                       wrap=["ip", "netns", "exec", netns])
    assert exit_code(rec) == 0
    net = [n for n in rec["net"] if n["kind"] == "connect"]
    assert len(net) == 1
    n = net[0]
    assert (n["address"], n["port"], n["host"], n["environment"], n["blocked"]) == \
        ("198.51.100.5", 22, "xenon", "production", True)
    assert n["socktype"] == socket.SOCK_STREAM
    assert rec["complete"] is False
    assert "attempted to connect to xenon:22 (198.51.100.5)" in rec["fidelity_reasons"]


def unix_server(path, stop):
    """Accepts on a unix socket until stop is set; returns the list of accepted counts."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(128)
    srv.settimeout(0.2)
    accepted = [0]

    def loop():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            accepted[0] += 1
            c.close()
        srv.close()
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return accepted, t


CONNECT_UNIX = textwrap.dedent("""\
    import socket, sys
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sys.argv[1])
        print("connected")
    except OSError as e:
        print("refused", e.errno)
    """)


def test_refuse_unix_connect_to_listening_socket(shadow_policy, tmp_path):
    path = tmp_path / "daemon.sock"
    stop = threading.Event()
    accepted, t = unix_server(path, stop)
    try:
        p = subprocess.run([PYTHON, "-c", CONNECT_UNIX, str(path)], capture_output=True,
                           text=True, timeout=30)
        assert p.stdout.strip() == "connected"
        for _ in range(100):  # the daemon accepted it
            if accepted[0] >= 1:
                break
            time.sleep(0.05)
        before = accepted[0]
        rec, _ = supervise("refuse", shadow_policy, [PYTHON, "-c", CONNECT_UNIX, str(path)])
        assert exit_code(rec) == 0
        unix = [n for n in rec["net"] if n["family"] == socket.AF_UNIX]
        assert [(n["address"], n["blocked"]) for n in unix] == [(str(path), True)]
        assert f"attempted to connect to {path}" in rec["fidelity_reasons"]
        stop.set()
        t.join()
        assert accepted[0] == before  # the daemon never saw the supervised attempt
        assert before >= 1
    finally:
        stop.set()


def test_racing_the_sockaddr_gets_no_refused_connect_through(shadow_policy, tmp_path):
    path = tmp_path / "d.sock"
    stop = threading.Event()
    accepted, t = unix_server(path, stop)
    try:
        # the driver's race mode: a thread flips the shared sockaddr between a decoy and the
        # daemon's path while the other connects. Outside, the kernel often reads the daemon's.
        race = [str(DRIVER), "race", str(path), "3000"]
        outside = 0
        for _ in range(10):  # the flipper needs the other core now and then
            p = subprocess.run(race, capture_output=True, text=True, timeout=120)
            outside += int(p.stdout.strip())
            if outside > 0:
                break
        assert outside > 0, p.stderr
        for _ in range(100):  # let the daemon catch up with its backlog
            if accepted[0] >= outside:
                break
            time.sleep(0.05)
        before = accepted[0]
        assert before >= outside
        rec, err = supervise("refuse", shadow_policy, race)
        assert exit_code(rec) == 0
        assert err.strip().splitlines()[-1] == "0"  # the racer's own count, on stderr
        # inside: not one connect got through, whatever address the supervisor read
        stop.set()
        t.join()
        assert accepted[0] == before
        assert rec["complete"] is False
        assert all(n["blocked"] for n in rec["net"])
    finally:
        stop.set()


def test_refuse_dns_is_an_addressed_send(shadow_policy):
    code = textwrap.dedent("""\
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.sendto(b"query", ("198.51.100.53", 53))
            print("sent")
        except OSError as e:
            print("refused", e.errno)
        """)
    rec, _ = supervise("refuse", shadow_policy, [PYTHON, "-c", code])
    sends = [n for n in rec["net"] if n["kind"] == "send"]
    assert [(n["address"], n["port"], n["socktype"]) for n in sends] == \
        [("198.51.100.53", 53, socket.SOCK_DGRAM)]
    assert "attempted to send to 198.51.100.53:53 (outside the inventory)" in \
        rec["fidelity_reasons"]


def test_refuse_exec_meaning_and_signals(shadow_policy, tmp_path):
    # a fake systemctl: the exec is what the supervisor reads, not what it does
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "systemctl"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    rec, _ = supervise("refuse", shadow_policy,
                       ["sh", "-c", f"{fake} restart corosync pve-cluster; "
                                    "sleep 30 & kill -TERM $!; wait; exit 0"])
    assert exit_code(rec) == 0
    contacts = {(c["daemon"], c["meaning"]) for c in rec["contacts"]}
    assert ("corosync.service", "restarts corosync.service") in contacts
    assert ("pve-cluster.service", "restarts pve-cluster.service") in contacts
    assert any(r.startswith("would contact corosync.service") for r in rec["fidelity_reasons"])
    sigs = [(s["sig"], s["blocked"]) for s in rec["signals"]]
    assert (15, False) in sigs  # in-namespace signals run (and are recorded)


def test_refuse_secret_through_overlay(tmp_path):
    """Marks placed through the snapshot's root (an overlay) see opens through it, also
    under a hard link made inside it; the lower file itself is another inode."""
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for d in (lower / "s", upper, work, merged):
        d.mkdir(parents=True)
    (lower / "s" / "key").write_bytes(os.urandom(64))
    pol = tmp_path / "p.yaml"
    pol.write_text("version: 1\nsecrets: [/s/key]\n")
    script = (f"mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} "
              f"{merged} && exec \"$@\"")

    def run(cmd):
        # a private mount namespace for the overlay; the command in its own pid namespace
        # (refuse mode watches the snapshot's processes, never the supervisor's)
        rec, _ = supervise("refuse", pol, ["unshare", "-p", "-f", "sh", "-c", cmd],
                           root=merged, wrap=["unshare", "-m", "sh", "-c", script, "sh"])
        assert exit_code(rec) == 0
        return rec

    rec = run(f"cat {merged}/s/key > /dev/null")
    assert [s["path"] for s in rec["secrets"]] == ["/s/key"]
    rec = run(f"ln {merged}/s/key {merged}/hl && cat {merged}/hl > /dev/null")
    assert [s["path"] for s in rec["secrets"]] == ["/s/key"]
    rec = run(f"cat {lower}/s/key > /dev/null; cat /etc/hostname > /dev/null")
    assert rec["secrets"] == []


def test_record_secret_directory(tmp_path):
    """A secret directory: opens of files in it and in its subdirectories are recorded,
    by the file's own path."""
    d = tmp_path / "keys"
    (d / "sub").mkdir(parents=True)
    (d / "a.key").write_text("a")
    (d / "sub" / "b.key").write_text("b")
    pol = tmp_path / "p.yaml"
    pol.write_text(f"version: 1\nsecrets: [{d}]\n")
    rec, _ = supervise("record", pol, ["sh", "-c", f"cat {d}/sub/b.key {d}/a.key > /dev/null"])
    assert sorted(s["path"] for s in rec["secrets"]) == [f"{d}/a.key", f"{d}/sub/b.key"]
    rec, _ = supervise("record", pol, ["ls", "-R", str(d)])
    assert rec["secrets"] == []  # listing names is no read


UNIX_TYPES = r"""
import errno, socket, sys
for t in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW, socket.SOCK_SEQPACKET):
    for how in ("socket", "socketpair"):
        try:
            if how == "socket":
                socket.socket(socket.AF_UNIX, t).close()
            else:
                [x.close() for x in socket.socketpair(socket.AF_UNIX, t)]
            r = "OK"
        except OSError as e:
            r = errno.errorcode[e.errno]
        print(f"unix {int(t)} {how} {r}", file=sys.stderr)
"""


def test_refuse_unix_datagram_sockets_of_any_spelling(shadow_policy):
    """A unix datagram socket sends to any path, so the snapshot refuses it, SOCK_RAW
    included (af_unix.c turns it into a datagram socket). Outside they all work."""
    out = subprocess.run([PYTHON, "-c", UNIX_TYPES], capture_output=True, text=True).stderr
    assert out.count(" OK") == 8, out
    rec, err = supervise("refuse", shadow_policy, [PYTHON, "-c", UNIX_TYPES])
    assert exit_code(rec) == 0
    for how in ("socket", "socketpair"):
        assert f"unix 1 {how} OK" in err and f"unix 5 {how} OK" in err, err
        assert f"unix 2 {how} EACCES" in err and f"unix 3 {how} EACCES" in err, err


def test_record_leaves_a_started_daemon_working(shadow_policy, tmp_path):
    """A descendant that outlives the command keeps the filter for life: the recorder
    hands its results over after a grace period, says so, and passes the listener to a
    continuer process. The descendant keeps working after the recorder (the broker) has
    exited; without the continuer its exec would fail with ENOSYS and write nothing."""
    marker, go = tmp_path / "later", tmp_path / "go"
    # the descendant waits for the test (not for a fixed time), so it outlives the
    # recorder's grace period however slow the machine is
    rec, _ = supervise("record", shadow_policy,
                       ["sh", "-c", f"(i=0; while [ ! -e {go} ] && [ $i -lt 1200 ]; do sleep 0.05; "
                                    f"i=$((i+1)); done; /bin/echo done > {marker}) "
                                    "> /dev/null 2>&1 &"])
    go.touch()
    assert exit_code(rec) == 0
    assert rec["complete"] is False
    assert any("still running" in r for r in rec["fidelity_reasons"])
    serving = _continuers()
    assert serving, "no continuer serves the process the command left running"
    # the driver has exited by now, like a broker that restarts
    for _ in range(600):
        if marker.exists() and marker.read_text() == "done\n":
            break
        time.sleep(0.1)
    assert marker.read_text() == "done\n"
    # what it did after the hand-over is not in the results
    assert not any(e["argv"][0] == "/bin/echo" for e in rec["execs"])
    # and the continuer is gone once the descendant is
    for _ in range(300):
        if not set(serving) & set(_continuers()):
            break
        time.sleep(0.1)
    assert not set(serving) & set(_continuers())


def test_record_survives_the_broker_dying_mid_command(shadow_policy, tmp_path):
    """The recorder (the broker) is killed with SIGKILL while the approved command runs:
    the command's later execs, connects and writes carry on (the continuer answers them)
    instead of failing with ENOSYS halfway through."""
    marker, started, go = tmp_path / "after", tmp_path / "started", tmp_path / "go"
    # the command's exec of echo comes after the recorder's death however slow the machine:
    # it waits for the test's go, which comes after the kill
    p = subprocess.Popen([str(DRIVER), "run", "record", str(shadow_policy), "--", "sh", "-c",
                          f"touch {started}; i=0; while [ ! -e {go} ] && [ $i -lt 1200 ]; do "
                          f"sleep 0.05; i=$((i+1)); done; /bin/echo done > {marker}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        if started.exists():
            break
        time.sleep(0.05)
    assert started.exists(), "the recorded command never started"
    p.kill()
    p.wait()
    go.touch()
    for _ in range(300):
        if marker.exists() and marker.read_text() == "done\n":
            break
        time.sleep(0.1)
    assert marker.exists() and marker.read_text() == "done\n", \
        "the command broke when its recorder died (its exec got ENOSYS)"


def test_record_without_leftovers_leaves_no_continuer(shadow_policy, tmp_path):
    """A command that leaves nothing running: its continuer exits with it."""
    before = set(_continuers())
    rec, _ = supervise("record", shadow_policy, ["sh", "-c", "true"])
    assert exit_code(rec) == 0 and rec["complete"] is True
    for _ in range(300):
        if not set(_continuers()) - before:
            break
        time.sleep(0.1)
    assert not set(_continuers()) - before


def _continuers():
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if open(f"/proc/{d}/comm").read().strip() == "airlock-contd":
                    out.append(int(d))
            except OSError:
                pass
    return out


def test_unix_connect_to_no_socket_is_no_effect(shadow_policy, tmp_path):
    """A connect to a socket path that does not exist fails for real too: nothing is
    recorded and the plan stays complete (id(1) tries nscd on every host without it)."""
    missing = tmp_path / "no-such.sock"
    for mode in ("refuse", "record"):
        rec, err = supervise(mode, shadow_policy, [PYTHON, "-c", CONNECT_UNIX, str(missing)])
        assert exit_code(rec) == 0
        assert f"refused {2}" in err  # ENOENT, as without the supervisor
        assert rec["net"] == [] and rec["contacts"] == []
        assert rec["complete"] is True


def test_refuse_secret_without_overlay_counts_only_the_snapshot(tmp_path):
    """A secret the snapshot would show without an overlay is the host's own inode: host
    processes (our pid namespace) opening it are not the command; a process in another pid
    namespace (the snapshot's) is."""
    key = tmp_path / "k"
    key.write_text("secret\n")
    pol = tmp_path / "p.yaml"
    pol.write_text(f"version: 1\nsecrets: [{key}]\n")
    rec, _ = supervise("refuse", pol, ["cat", str(key)])
    assert rec["secrets"] == []
    rec, _ = supervise("refuse", pol, ["unshare", "-p", "-f", "cat", str(key)])
    assert [s["path"] for s in rec["secrets"]] == [str(key)]


def test_refuse_netlink_is_the_namespace_own(shadow_policy):
    """Netlink (ip, ss, glibc's getaddrinfo) talks to the kernel of the command's own network
    namespace: it works under refuse mode and is no effect. Its connect() is done by the
    supervisor on its own copy of the socket, never let run."""
    code = textwrap.dedent("""\
        import socket
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        s.connect((0, 0))
        print("netlink connected")
        """)
    rec, err = supervise("refuse", shadow_policy,
                         ["sh", "-c", f"ss -tln && ip route show && {PYTHON} -c '{code}'"])
    assert exit_code(rec) == 0, err
    assert "netlink connected" in err
    assert rec["net"] == []
    assert rec["complete"] is True
