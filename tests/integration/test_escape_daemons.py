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


@known_weakness("F3", "a read-only mount does not stop connect(2) to a unix socket outside /run")
def test_daemon_socket_outside_run(lab):
    """Daemons also listen under /var/lib (LXD, incus, snapd, postfix): a read-only mount does
    not stop connect(2) to a socket, so the sandbox needs another wall there."""
    d = pathlib.Path("/var/lib") / lab.tag
    path = d / "daemon.sock"
    with unix_listener(path):
        assert "hello-from-host" in expect_ok(probe_outside("unix-connect", path))
        expect_denied(lab.probe_inside("unix-connect", path), *UNREACHABLE)


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
