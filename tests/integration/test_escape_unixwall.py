"""Escape corpus: the unix socket wall (issue 3; findings F3, F15, F20, F21).

A pathname unix socket is reachable through a read-only mount and from any
network namespace, and Landlock has no right for it: so every connect(2) of
the agent goes through a supervisor (seccomp user notification) that connects
only to the session socket and, with --net none, to sockets bound inside the
sandbox; datagram unix sockets, which sendto(2) anywhere, are not created at
all. Each route around that wall is tried here against a real host daemon
(works outside, fails inside), and what must keep working is shown working.
"""
import os
import pathlib
import socket
import subprocess
import time

import pytest

from escape_helpers import (PROBE, Listener, describe, expect_denied, expect_ok, lab,  # noqa: F401
                            probe_outside, result, testnet, unix_listener)

UNREACHABLE = ("ENOENT", "ECONNREFUSED", "EACCES", "EPERM")
HOST = "hostnet"


def ppid_of(pid):
    st = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(st.split("PPid:")[1].split()[0])


def wall_of(airlock_pid, timeout=10):
    """The host pid of the connect supervisor of the sandbox that airlock_pid runs."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if (pathlib.Path(f"/proc/{pid}/comm").read_text().strip() == "airlock-wall"
                        and ppid_of(ppid_of(pid)) == airlock_pid):
                    return int(pid)
            except (OSError, IndexError, ValueError):
                continue
        time.sleep(0.05)
    raise AssertionError("no airlock-wall supervisor found for this sandbox")


@pytest.fixture
def daemon(lab):
    """A host daemon's socket outside /run (where no mount hides it), mode 0777."""
    path = pathlib.Path("/var/lib") / (lab.tag + "-wall") / "d.sock"
    with unix_listener(path) as l:
        yield path, l


@pytest.fixture
def dgram_daemon(lab):
    d = pathlib.Path("/var/lib") / (lab.tag + "-wdgram")
    d.mkdir()
    path = d / "cmd.sock"
    l = Listener(socket.AF_UNIX, str(path), kind=socket.SOCK_DGRAM)
    os.chmod(path, 0o777)
    try:
        yield path, l
    finally:
        l.close()
        path.unlink(missing_ok=True)
        d.rmdir()


def received_after(l, seconds=0.3):
    time.sleep(seconds)
    got = list(l.received)
    l.received.clear()
    return got


@pytest.mark.parametrize("profile", [None, HOST])
def test_daemon_socket_outside_run_both_network_modes(lab, daemon, profile):
    path, _ = daemon
    assert "hello-from-host" in expect_ok(probe_outside("unix-connect", path))
    assert expect_denied(lab.probe_inside("unix-connect", path, profile=profile), *UNREACHABLE) == "EACCES"


@pytest.mark.parametrize("technique", ["unix-socketpair-sendto", "unix-raw-sendto", "unix-sendto"])
def test_datagram_routes_to_a_host_command_socket(lab, dgram_daemon, technique):
    """Every way to get a datagram unix socket that sendto(2)s by path: socket(SOCK_DGRAM),
    socket(SOCK_RAW) (af_unix.c makes it a datagram socket), socketpair(SOCK_DGRAM)."""
    path, l = dgram_daemon
    expect_ok(probe_outside(technique, path))
    assert l.wait_received(), "outside, the daemon got the datagram"
    l.received.clear()
    expect_denied(lab.probe_inside(technique, path), "EACCES")
    expect_denied(lab.probe_inside(technique, path, profile=HOST), "EACCES")
    assert not received_after(l), "a datagram from inside reached the host daemon"


@pytest.mark.parametrize("kind", ["stream", "seqpacket"])
def test_sendmsg_with_an_address_on_a_connection_socket(lab, dgram_daemon, kind):
    """The wall relies on af_unix.c ignoring (seqpacket) or refusing (stream) msg_name on
    connection sockets: so only connect(2) can reach a path. Shown against a datagram
    daemon: if the kernel ever delivered it, this fails outside first."""
    path, l = dgram_daemon
    out = probe_outside("unix-sendmsg-name", kind, path)
    assert result(out)[0] == "ERR" and result(out)[1] in ("EOPNOTSUPP", "ENOTCONN"), describe(out)
    expect_denied(lab.probe_inside("unix-sendmsg-name", kind, path), "EOPNOTSUPP", "ENOTCONN")
    assert not received_after(l)


def test_connect_through_proc_self_fd(lab, daemon):
    """An O_PATH fd of the socket and connect("/proc/self/fd/N"): resolved by the supervisor
    it would be the supervisor's own fd table, so magic links are refused."""
    path, _ = daemon
    assert "hello-from-host" in expect_ok(probe_outside("unix-connect-procfd", path))
    expect_denied(lab.probe_inside("unix-connect-procfd", path), "ELOOP")


def test_connect_by_relative_path(lab, daemon):
    path, _ = daemon
    assert "hello-from-host" in expect_ok(probe_outside("unix-connect-relative", path.parent, path.name))
    expect_denied(lab.probe_inside("unix-connect-relative", path.parent, path.name), "EACCES")


def test_symlink_in_the_workspace_to_a_host_socket(lab, daemon):
    path, _ = daemon
    link = lab.ws("daemon-link.sock")
    link.symlink_to(path)
    try:
        assert "hello-from-host" in expect_ok(probe_outside("unix-connect", link))
        expect_denied(lab.probe_inside("unix-connect", link), "EACCES")
    finally:
        link.unlink()


def test_hard_link_in_the_workspace_to_a_host_socket(lab):
    """A second name for a daemon's socket inode, on the workspace's file system. (The daemon's
    socket is under /tmp, which the launch-time socket masking skips: elsewhere a listening
    socket with two names makes every launch on the machine refuse to start, concurrent test
    runs included.)"""
    d = pathlib.Path("/tmp") / (lab.tag + "-hl")
    path = d / "d.sock"
    link = lab.ws("hard.sock")
    with unix_listener(path):
        try:
            os.link(path, link)
        except OSError as e:
            pytest.skip(f"/tmp and the workspace are on different file systems here: {e}")
        try:
            assert "hello-from-host" in expect_ok(probe_outside("unix-connect", link))
            expect_denied(lab.probe_inside("unix-connect", link), "EACCES")
        finally:
            link.unlink()


def test_address_rewritten_by_another_thread_during_connect(lab, daemon):
    """TOCTOU on the address: one thread connects to its own listener while another rewrites
    the sockaddr to the host daemon's path. The supervisor connects with its own copy of the
    address, never the agent's memory, so no round may reach the daemon."""
    path, _ = daemon
    own_out = f"/tmp/{lab.tag}-own.sock"
    try:
        assert "reached the target" in expect_ok(probe_outside("unix-connect-flip", own_out, path, 2000))
    finally:
        pathlib.Path(own_out).unlink(missing_ok=True)
    r = lab.probe_inside("unix-connect-flip", "/tmp/own.sock", path, 2000)
    expect_denied(r, "EACCES", "ENOENT")  # ENOENT: an address read half-rewritten
    assert "own 0 " not in r.stdout, f"the agent's own listener was never reached:{describe(r)}"


def test_symlink_flipped_during_connect(lab, daemon):
    """TOCTOU on the path: a symlink flipped between the agent's own socket and the daemon's.
    The supervisor connects to the inode it checked (through its O_PATH fd), not the name."""
    path, _ = daemon
    d = lab.hostfile("flip-out")
    d.mkdir()
    assert "reached the target" in expect_ok(
        probe_outside("unix-connect-symlink-flip", d / "l.sock", d / "own.sock", path, 2000))
    r = lab.probe_inside("unix-connect-symlink-flip", lab.ws("l.sock"), lab.ws("own.sock"), path, 2000)
    expect_denied(r, "EACCES", "ENOENT")
    assert "own 0 " not in r.stdout, f"the agent's own listener was never reached:{describe(r)}"


def test_agent_cannot_install_a_connect_listener_of_its_own(lab):
    """A notification listener of the agent's own would take the connects before ours (the
    newest filter's USER_NOTIF wins): the kernel allows one listener per filter chain."""
    expect_ok(probe_outside("seccomp-listener"))
    expect_denied(lab.probe_inside("seccomp-listener"), "EBUSY")


def test_agents_own_unix_sockets_still_work(lab):
    """--net none: a server the agent starts (in /tmp, or in the workspace) is its own."""
    for path in ("/tmp/own.sock", str(lab.ws("own.sock"))):
        r = lab.probe_inside("unix-own", path)
        assert "own" in expect_ok(r, "the agent's own unix server inside"), describe(r)


def test_connects_under_a_storm_of_signals(lab):
    """The Go runtime interrupts its threads with signals all the time (SIGURG preemption). A
    connect that the supervisor has made must not fail because a signal arrived while the agent
    waited for the answer: the restarted call found the socket already connected (EISCONN, a
    quarter to a half of them before the fix). 2000 connects under a 50 us interval timer
    (SA_RESTART) to a server of the agent's own all work, inside as outside."""
    out = probe_outside("unix-own-signals", lab.hostfile("signals.sock"), "2000")
    assert "none failed" in expect_ok(out)
    for path in ("/tmp/signals.sock", str(lab.ws("signals.sock"))):
        r = lab.probe_inside("unix-own-signals", path, "2000")
        assert "none failed" in expect_ok(r, "connects interrupted by signals inside"), describe(r)


def test_agents_own_unix_sockets_on_the_host_network(lab, daemon):
    """--net host shares the host's network namespace, so the agent's own sockets are told from
    a daemon's by their file system: the sandbox's own tmpfs (/tmp, /run, ...) hold only sockets
    bound from inside. One in the workspace (a host file system) is refused (documented), and a
    host daemon's stays refused."""
    r = lab.probe_inside("unix-own", "/tmp/own.sock", profile=HOST)
    assert "own" in expect_ok(r, "the agent's own unix server in /tmp inside"), describe(r)
    expect_denied(lab.probe_inside("unix-own", lab.ws("own.sock"), profile=HOST), "EACCES")
    path, _ = daemon
    expect_denied(lab.probe_inside("unix-connect", path, profile=HOST), "EACCES")


def test_abstract_socket_of_a_host_daemon_on_the_host_network(lab):
    name = lab.tag + "-wall-abstract"
    l = Listener(socket.AF_UNIX, "\0" + name)
    try:
        assert "hello-from-host" in expect_ok(probe_outside("abstract-connect", name))
        expect_denied(lab.probe_inside("abstract-connect", name, profile=HOST), "EPERM")
    finally:
        l.close()


ASYNC_CLIENT = r"""
import asyncio, socket
async def handle(r, w):
    w.write(b"pong\n"); await w.drain(); w.close()
async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    print("reply", (await r.readline()).decode().strip())
    path = "/tmp/own-async.sock"
    usrv = await asyncio.start_unix_server(handle, path)
    r, w = await asyncio.wait_for(asyncio.open_unix_connection(path), 5)
    print("unix", (await r.readline()).decode().strip())
asyncio.run(main())
"""


def test_nonblocking_loopback_and_unix_connects_inside(lab):
    """asyncio connects non-blocking (EINPROGRESS, then poll): through the supervisor too."""
    r = lab.inside("/usr/bin/python3", "-c", ASYNC_CLIENT)
    assert r.returncode == 0 and "reply pong" in r.stdout and "unix pong" in r.stdout, describe(r)


def test_blocking_connect_does_not_stall_the_others(lab):
    """A blocking connect that waits (a listener whose backlog is full) holds only itself:
    another connect of the agent meanwhile is answered at once."""
    script = r"""
import socket, threading, time
l = socket.socket(socket.AF_UNIX); l.bind("/tmp/full.sock"); l.listen(0)
fill = []
for _ in range(3):  # fill the backlog (blocking connects would now wait)
    s = socket.socket(socket.AF_UNIX); s.setblocking(False)
    try: s.connect("/tmp/full.sock")
    except BlockingIOError: pass
    fill.append(s)
stuck = socket.socket(socket.AF_UNIX); stuck.settimeout(None)
threading.Thread(target=lambda: stuck.connect("/tmp/full.sock"), daemon=True).start()
time.sleep(0.3)
o = socket.socket(socket.AF_UNIX); o.bind("/tmp/other.sock"); o.listen(4)
t0 = time.monotonic(); c = socket.socket(socket.AF_UNIX); c.connect("/tmp/other.sock")
print("other connected in %.3f s" % (time.monotonic() - t0))
"""
    r = lab.inside("/usr/bin/python3", "-c", script)
    assert r.returncode == 0 and "other connected" in r.stdout, describe(r)
    took = float(r.stdout.split("other connected in ")[1].split()[0])
    assert took < 5, f"the second connect waited for the first:{describe(r)}"


def test_killing_the_supervisor_fails_closed(lab, daemon):
    """If the supervisor is gone, the kernel answers every connect with ENOSYS. The agent cannot
    signal it (Landlock's signal scope); here it is killed from outside the sandbox."""
    path, _ = daemon
    p = lab.start_inside("/bin/sh", "-c", lab.wait_for_go(f"{lab.probe} unix-connect {path}; "
                                                          f"{lab.probe} unix-own /tmp/o.sock"))
    try:
        assert "waiting" in p.stdout.readline(), "the sandbox did not start"
        wall = wall_of(p.pid)
        os.kill(wall, 9)
        lab.ws("go").touch()
        r = lab.finish(p)
        errs = [line for line in r.stdout.splitlines() if line.startswith("ERR")]
        assert len(errs) == 2 and all(" ENOSYS " in e for e in errs), describe(r)
    finally:
        if p.poll() is None:
            p.kill()
        lab.ws("go").unlink(missing_ok=True)


def test_self_check_probes_are_answered_by_the_wall(lab):
    """The self-check's two probes, as the agent sees them: a datagram unix socket is refused,
    and a connect to "/" (no socket) is answered EACCES by the supervisor where the kernel
    alone answers ECONNREFUSED."""
    out = probe_outside("socket", "1", "2", "0")
    expect_ok(out)
    expect_denied(lab.probe_inside("socket", "1", "2", "0"), "EACCES")
    out = probe_outside("unix-connect", "/")
    assert result(out)[:2] == ("ERR", "ECONNREFUSED"), describe(out)
    expect_denied(lab.probe_inside("unix-connect", "/"), "EACCES")


def test_an_undumpable_agent_process_is_still_checked(lab, daemon):
    """A process that made itself undumpable (prctl PR_SET_DUMPABLE 0, as some security tools
    do) is looked at by the supervisor all the same (its CAP_SYS_PTRACE of the sandbox's user
    namespace covers memory of that namespace): its own socket connects, a host daemon's is
    refused, neither hangs nor goes through unchecked. Outside, both connect. (A process whose
    memory the supervisor may not read fails closed: test_sandbox_yama.py.)"""
    path, _ = daemon
    script = r"""
import ctypes, socket, sys
l = socket.socket(socket.AF_UNIX); l.bind(sys.argv[1]); l.listen(1)
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
for target in sys.argv[1:]:
    c = socket.socket(socket.AF_UNIX)
    try:
        c.connect(target); print("connected")
    except OSError as e:
        print("refused", e.errno)
"""
    out_path = lab.hostfile("undumpable.sock")
    r = subprocess.run(["/usr/bin/python3", "-c", script, str(out_path), str(path)],
                       capture_output=True, text=True)
    assert r.stdout.split("\n")[:2] == ["connected", "connected"], describe(r)
    r = lab.inside("/usr/bin/python3", "-c", script, "/tmp/undumpable.sock", str(path))
    assert r.stdout.split("\n")[:2] == ["connected", "refused 13"], describe(r)  # EACCES


FLAGS = 0o4000 | 0o2000000  # SOCK_NONBLOCK | SOCK_CLOEXEC: a filter comparing the type exactly misses these


@pytest.mark.parametrize("call", ["socket", "socketpair"])
@pytest.mark.parametrize("flags", [0, FLAGS])
def test_unix_socket_types(lab, call, flags):
    """Only stream and seqpacket unix sockets exist inside, whatever flags ride on the type:
    datagram (2) and raw (3, a datagram socket in af_unix.c) are refused with EACCES; every
    other type is refused by the kernel anyway. Outside, datagram and raw are created."""
    script = (f"import socket\n"
              f"for t in range(16):\n"
              f"    try:\n"
              f"        s = socket.{call}(socket.AF_UNIX, t | {flags})\n"
              f"        print(t, 'OK')\n"
              f"    except OSError as e:\n"
              f"        print(t, e.errno)\n")
    out = subprocess.run(["/usr/bin/python3", "-c", script], capture_output=True, text=True)
    got_out = dict(line.split() for line in out.stdout.splitlines())
    assert got_out["1"] == got_out["5"] == got_out["2"] == got_out["3"] == "OK", describe(out)
    r = lab.inside("/usr/bin/python3", "-c", script)
    got = dict(line.split() for line in r.stdout.splitlines())
    assert len(got) == 16, describe(r)
    assert got["1"] == got["5"] == "OK", describe(r)
    assert got["2"] == got["3"] == "13", describe(r)  # EACCES
    assert all(v != "OK" for t, v in got.items() if t not in ("1", "5")), describe(r)


def test_agent_cannot_signal_or_read_the_supervisor(lab):
    """The supervisor runs with the agent's uid, in its namespaces: Landlock's signal scope (it is
    outside the agent's domain) and its undumpable memory keep the agent off it. Outside, the
    supervisor is there, signalable and readable; inside, kill and /proc/PID/environ are refused,
    and the wall
    still answers afterwards."""
    find = ("for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = airlock-wall ] && "
            "echo ${p#/proc/}; done")
    script = (f"w=$({find}); echo wall=$w; {lab.probe} kill $w 9; {lab.probe} kill $w 0; "
              f"{lab.probe} read /proc/$w/environ; {lab.probe} unix-connect /")
    r = lab.sh_inside(script)
    lines = r.stdout.splitlines()
    assert lines and lines[0].startswith("wall=") and lines[0] != "wall=", describe(r)
    assert lines[1].startswith("ERR EPERM") and lines[2].startswith("ERR EPERM"), describe(r)
    assert lines[3].startswith("ERR EACCES"), describe(r)  # ptrace-read access: undumpable
    assert lines[4].startswith("ERR EACCES"), describe(r)  # the supervisor still answers
    # the other side: a supervisor process exists and is signalable from outside
    p = lab.start_inside("/bin/sh", "-c", lab.wait_for_go("true"))
    try:
        assert "waiting" in p.stdout.readline(), "the sandbox did not start"
        wall = wall_of(p.pid)
        expect_ok(probe_outside("kill", wall, 0))
        expect_ok(probe_outside("read", f"/proc/{wall}/environ"))
    finally:
        lab.ws("go").touch()
        lab.finish(p)
        lab.ws("go").unlink(missing_ok=True)


NONBLOCKING_TCP = r"""
import errno, select, socket, sys
for port in sys.argv[2:]:
    s = socket.socket(); s.setblocking(False)
    e = s.connect_ex((sys.argv[1], int(port)))
    if e == errno.EINPROGRESS:
        select.select([], [s], [], 5)
        e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if e:
        print(port, "ERR", errno.errorcode.get(e, e))
        continue
    s.setblocking(True); s.settimeout(5)
    print(port, "OK", s.recv(64).decode().strip())
"""


def test_host_nonblocking_connects_follow_the_port_allowlist(lab, testnet):
    """--net host: the supervisor connects the agent's socket itself, so the Landlock port rule
    (which applies to the agent, not to it) is enforced by the supervisor too — for a
    non-blocking connect (EINPROGRESS, then poll) as for a blocking one."""
    out = subprocess.run(["/usr/bin/python3", "-c", NONBLOCKING_TCP, testnet.peer, "443", "8080"],
                         capture_output=True, text=True, timeout=30)
    assert "443 OK hello-from-peer" in out.stdout and "8080 OK hello-from-peer" in out.stdout, describe(out)
    r = lab.inside("/usr/bin/python3", "-c", NONBLOCKING_TCP, testnet.peer, "443", "8080", profile=HOST)
    assert "443 OK hello-from-peer" in r.stdout, describe(r)
    assert "8080 ERR EACCES" in r.stdout, describe(r)
