"""Escape corpus: talking to a privileged daemon of the host.

A daemon that runs as root and takes orders over a socket (systemd, D-Bus,
docker, airlock's own broker admin socket) is a way around every other wall.
Each test starts a real listener on the host at the daemon's path (or uses the
real one if it exists), shows that it answers outside, and that inside it is
unreachable. Also: the abstract unix namespace, sockets outside /run, and the
System V / POSIX shared memory of host processes.
"""
import contextlib
import os
import pathlib
import socket
import subprocess
import time

import pytest

from escape_helpers import (known_weakness, PROBE, Listener, describe, expect_denied, expect_ok, lab,  # noqa: F401
                            probe_outside, result, unix_listener)

UNREACHABLE = ("ENOENT", "ECONNREFUSED", "EACCES", "EPERM")


@contextlib.contextmanager
def daemon_socket(path):
    """A listener at path: the real daemon's socket if one listens there, else a stand-in."""
    p = pathlib.Path(path)
    if p.exists():
        out = probe_outside("unix-connect", path)
        if result(out) and result(out)[0] == "OK":
            yield None  # the real daemon answers: use it, touch nothing
            return
        pytest.skip(f"{path} exists but does not answer; not replacing someone else's file")
    with unix_listener(path) as l:
        yield l


DAEMON_SOCKETS = {
    "dbus-system-bus": "/run/dbus/system_bus_socket",
    "systemd-private": "/run/systemd/private",
    "systemd-notify": "/run/systemd/notify",
    "systemd-journal": "/run/systemd/journal/stdout",
    "docker": "/run/docker.sock",
    "containerd": "/run/containerd/containerd.sock",
    "libvirt": "/run/libvirt/libvirt-sock",
    "airlock-admin": "/run/airlock/admin.sock",
    "airlock-other-session": "/run/airlock/sessions/escape-other-agent.sock",  # another agent's identity
    "var-run-docker": "/var/run/docker.sock",
    "user-dbus": "/run/user/0/bus",
}


@pytest.mark.parametrize("name", list(DAEMON_SOCKETS))
def test_daemon_socket_under_run(lab, name):
    path = DAEMON_SOCKETS[name]
    with daemon_socket(path):
        expect_ok(probe_outside("unix-connect", path))
        expect_denied(lab.probe_inside("unix-connect", path), *UNREACHABLE)
        expect_denied(lab.probe_inside("unix-connect", path, profile="hostnet"), *UNREACHABLE)


def test_daemon_socket_outside_run(lab):
    """Daemons also listen under /var/lib (LXD, incus, snapd, postfix): a read-only mount does
    not stop connect(2) to a socket, so the sandbox needs another wall there."""
    d = pathlib.Path("/var/lib") / lab.tag
    path = d / "daemon.sock"
    with unix_listener(path):
        assert "hello-from-host" in expect_ok(probe_outside("unix-connect", path))
        expect_denied(lab.probe_inside("unix-connect", path), *UNREACHABLE)


LISTENER = r"""
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); s.listen(4)
print("ready", flush=True)
s.settimeout(20)
try:
    while True:
        c, _ = s.accept(); c.sendall(b"hello-from-host\n"); c.close()
except OSError:
    pass
"""


def start_listener(path, netns=False):
    """A unix-socket daemon in its own process (in a new network namespace if netns)."""
    argv = ["/usr/bin/python3", "-c", LISTENER, str(path)]
    if netns:
        argv = ["unshare", "--net", *argv]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert p.stdout.readline().strip() == "ready", "the test daemon did not start"
    return p


def test_daemon_socket_of_another_network_namespace(lab):
    """A daemon in another network namespace (a container) whose socket is on the host's
    file system: the host's /proc/net/unix does not list it, yet connect(2) by path works."""
    d = pathlib.Path("/var/lib") / (lab.tag + "-ct")
    d.mkdir()
    path = d / "container.sock"
    p = start_listener(path, netns=True)
    try:
        assert "hello-from-host" in expect_ok(probe_outside("unix-connect", path))
        expect_denied(lab.probe_inside("unix-connect", path), *UNREACHABLE)
    finally:
        p.kill()
        p.wait()
        subprocess.run(["rm", "-rf", str(d)])


def test_daemon_socket_of_a_container_with_its_own_mounts(lab):
    """A container has its own network *and* mount namespace: its /proc/net/unix names the
    socket by the container's path (/mnt/d.sock), while on the host it is
    /var/lib/.../root/d.sock — masking by the listed path misses it."""
    root = pathlib.Path("/var/lib") / (lab.tag + "-ctroot")
    root.mkdir()
    host_path = root / "d.sock"
    script = f"mount --bind {root} /mnt && exec /usr/bin/python3 -c '{LISTENER}' /mnt/d.sock"
    p = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert p.stdout.readline().strip() == "ready", "the container's daemon did not start"
        assert "hello-from-host" in expect_ok(probe_outside("unix-connect", host_path))
        expect_denied(lab.probe_inside("unix-connect", host_path), *UNREACHABLE)
    finally:
        p.kill()
        p.wait()
        subprocess.run(["rm", "-rf", str(root)])


def test_daemon_started_after_launch(lab):
    """A daemon that starts listening while the sandbox runs (a service restart)."""
    d = pathlib.Path("/var/lib") / (lab.tag + "-late")
    d.mkdir()
    path = d / "late.sock"
    p = lab.start_inside("/bin/sh", "-c", lab.wait_for_go(f"{lab.probe} unix-connect {path}"))
    daemon = None
    try:
        assert "waiting" in p.stdout.readline(), "the sandbox did not start"
        daemon = start_listener(path)
        assert "hello-from-host" in expect_ok(probe_outside("unix-connect", path))
        lab.ws("go").touch()
        expect_denied(lab.finish(p), *UNREACHABLE)
    finally:
        if p.poll() is None:
            p.kill()
        if daemon:
            daemon.kill()
            daemon.wait()
        lab.ws("go").unlink(missing_ok=True)
        subprocess.run(["rm", "-rf", str(d)])


def test_datagram_command_socket_outside_run(lab):
    """Some daemons take commands on a SOCK_DGRAM unix socket (no listen(2), so it is not
    marked listening in /proc/net/unix): sendto(2) by path reaches them like connect does."""
    d = pathlib.Path("/var/lib") / (lab.tag + "-dgram")
    d.mkdir()
    path = d / "cmd.sock"
    l = Listener(socket.AF_UNIX, str(path), kind=socket.SOCK_DGRAM)
    os.chmod(path, 0o777)
    try:
        expect_ok(probe_outside("unix-sendto", path))
        assert l.wait_received(), "outside, the daemon got the datagram"
        l.received.clear()
        expect_denied(lab.probe_inside("unix-sendto", path), *UNREACHABLE)
        time.sleep(0.3)
        assert not l.received, "a datagram from inside reached the host daemon"
    finally:
        l.close()
        subprocess.run(["rm", "-rf", str(d)])


def test_daemon_socket_in_a_secret_directory(lab):
    """A socket inside a masked directory (the mask must hide it like any other file)."""
    path = lab.secret_dir / "ctl.sock"
    with unix_listener(path):
        expect_ok(probe_outside("unix-connect", path))
        expect_denied(lab.probe_inside("unix-connect", path), *UNREACHABLE)


def test_abstract_unix_socket_of_a_host_daemon(lab):
    """Abstract sockets have no file: only a network namespace or Landlock's scope hides them."""
    name = lab.tag + "-abstract"
    l = Listener(socket.AF_UNIX, "\0" + name)
    try:
        assert "hello-from-host" in expect_ok(probe_outside("abstract-connect", name))
        expect_denied(lab.probe_inside("abstract-connect", name), "ECONNREFUSED", "EPERM")
        expect_denied(lab.probe_inside("abstract-connect", name, profile="hostnet"), "ECONNREFUSED", "EPERM")
    finally:
        l.close()


def test_sysv_shared_memory_of_the_host(lab):
    key = str(0x41000000 + int(lab.tag[-4:], 16))
    expect_ok(probe_outside("shm-create", key, lab.token))
    try:
        assert lab.token in expect_ok(probe_outside("shm-read", key))
        expect_denied(lab.probe_inside("shm-read", key), "ENOENT", "EACCES", "EPERM")
    finally:
        probe_outside("shm-rm", key)


def test_posix_shared_memory_of_the_host(lab):
    path = pathlib.Path("/dev/shm") / (lab.tag + "-shm")
    path.write_text(lab.token)
    path.chmod(0o644)
    try:
        assert lab.token in expect_ok(probe_outside("read", path))
        expect_denied(lab.probe_inside("read", path), "ENOENT")
    finally:
        path.unlink()


def test_session_socket_is_the_only_airlock_socket(lab):
    """Inside, /run/airlock holds at most the session socket: never the admin socket."""
    r = lab.sh_inside("ls -A /run/airlock 2>/dev/null; echo done")
    assert "done" in r.stdout, describe(r)
    entries = set(r.stdout.split()) - {"done"}
    assert entries <= {"session.sock"}, f"unexpected airlock sockets inside: {entries}{describe(r)}"
