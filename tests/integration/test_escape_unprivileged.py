"""Escape corpus: `airlock run` started by an ordinary user (here `nobody`).

The agent keeps the user's uid, so the uid is no wall: the user's own files,
processes and sockets are all the user's. Outside, the same user reaches each
target; inside, the sandbox must stop it. (Started by root the agent runs as
a separate uid; the other test files cover that case.)
"""
import os
import pwd
import socket
import subprocess
import time

import pytest

from escape_helpers import (PROBE, Listener, describe, expect_denied, expect_empty_or_denied,  # noqa: F401
                            expect_ok, lab, outside, result)


@pytest.fixture(scope="module")
def user(lab):
    """nobody's home, workspace and policy; run(argv) runs airlock run as nobody."""
    pw = pwd.getpwnam("nobody")
    home = lab.hostfile("user-home")
    ws = lab.hostfile("user-ws")
    for d in (home, ws):
        d.mkdir(mode=0o700)
        os.chown(d, pw.pw_uid, pw.pw_gid)
    key = home / "id_ed25519"
    key.write_text(lab.token + "\n")
    os.chown(key, pw.pw_uid, pw.pw_gid)
    key.chmod(0o600)
    policy = lab.hostfile("user-policy.yaml")
    policy.write_text(f"version: 1\nsecrets:\n  - {key}\n")
    policy.chmod(0o644)

    class User:
        uid = pw.pw_uid
        secret = key
        workspace = ws

        @staticmethod
        def outside(*argv):
            return outside(*argv, user="nobody", cwd=ws)

        @staticmethod
        def inside(*argv):
            # the probe from the lab's directory: the build may be under /tmp, hidden inside
            argv = [lab.probe if a == PROBE else a for a in argv]
            r = outside(lab.airlock, "run", "--workspace", ws, "--", *argv, user="nobody", cwd=ws,
                        env={"AIRLOCK_POLICY": str(policy), "HOME": str(home)})
            if lab.token in r.stdout + r.stderr:
                pytest.fail(f"SECRET LEAKED inside the sandbox:{describe(r)}")
            return r
    return User


def test_runs_as_the_user(user):
    r = user.inside(PROBE, "ids")
    assert f"uid={user.uid} " in expect_ok(r, what="the agent's ids"), describe(r)


def test_the_users_own_secret(lab, user):
    assert lab.token in expect_ok(user.outside(PROBE, "read", user.secret))
    expect_empty_or_denied(user.inside(PROBE, "read", user.secret), "ENOENT", "EACCES", "EPERM")


def test_the_users_other_processes(user):
    """Signals and ptrace against the user's own processes outside the sandbox (an editor, a
    shell): same uid, so only the pid namespace and Landlock's signal scope stand in the way."""
    p = subprocess.Popen(["setpriv", f"--reuid={user.uid}", f"--regid={user.uid}", "--clear-groups",
                          "sleep", "60"])
    try:
        # wait until setpriv has become the user and exec'd sleep (before that it is root's)
        for _ in range(500):
            try:
                if open(f"/proc/{p.pid}/comm").read().strip() == "sleep":
                    break
            except OSError:
                pass
            time.sleep(0.01)
        expect_ok(user.outside(PROBE, "kill", str(p.pid), "0"))
        expect_ok(user.outside(PROBE, "ptrace-attach", str(p.pid)))
        expect_denied(user.inside(PROBE, "kill", str(p.pid), "9"), "ESRCH", "EPERM")
        expect_denied(user.inside(PROBE, "ptrace-attach", str(p.pid)), "ESRCH", "EPERM")
        expect_denied(user.inside(PROBE, "read", f"/proc/{p.pid}/environ"), "ENOENT", "EACCES", "ESRCH")
        assert p.poll() is None, "the user's process was killed from inside"
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("technique", [
    ["unshare", "user"], ["clone-userns"], ["clone3-userns"], ["mount-tmpfs", "/tmp"], ["fsmount"],
    ["open-tree", "/"], ["bpf"], ["io-uring"], ["perf"], ["userfaultfd"], ["keyctl-session"],
    ["personality"], ["settime"],
])
def test_kernel_interfaces(user, technique):
    """What the user may do outside (an unprivileged user namespace, perf on itself, a key ring,
    io_uring...) the agent may not."""
    out = user.outside(PROBE, *technique)
    r = result(out)
    inside = user.inside(PROBE, *technique)
    # outside the user may or may not (mount needs a namespace); inside: always refused
    assert r is not None, describe(out)
    expect_denied(inside, "EPERM", "ENOSYS", "EACCES", "EINVAL", "ENOSPC")


def test_the_users_loopback_service(user):
    l = Listener(socket.AF_INET, ("127.0.0.1", 0))
    try:
        assert "hello-from-host" in expect_ok(user.outside(PROBE, "tcp-connect", "127.0.0.1", str(l.port)))
        expect_denied(user.inside(PROBE, "tcp-connect", "127.0.0.1", str(l.port)), "ECONNREFUSED", "EACCES")
    finally:
        l.close()


def test_the_users_abstract_socket(lab, user):
    name = lab.tag + "-user-abstract"
    l = Listener(socket.AF_UNIX, "\0" + name)
    try:
        expect_ok(user.outside(PROBE, "abstract-connect", name))
        expect_denied(user.inside(PROBE, "abstract-connect", name), "ECONNREFUSED", "EPERM")
    finally:
        l.close()


def test_the_users_files_outside_the_workspace(lab, user):
    """The user's own home is writable to the user outside; inside only the workspace is."""
    home = user.secret.parent
    target = home / "written"
    expect_ok(user.outside(PROBE, "write", target))
    target.unlink()
    expect_denied(user.inside(PROBE, "write", target), "EROFS", "EACCES", "EPERM")
    assert not target.exists()
    expect_ok(user.inside(PROBE, "write", user.workspace / "ok"), what="writing the workspace")


def test_the_sandbox_tmpfs_hold_at_most_the_memory_limit(user):
    """No memory cgroup counts an ordinary user's tmpfs pages, so each writable tmpfs of the
    sandbox (/tmp, /run, /var/tmp, /dev/shm) is mounted with the memory limit as its size (the
    default profile's 4 GiB), where the kernel's default is half the machine's RAM (the host's
    /dev/shm here). test_escape_resources fills one past the limit (root, --allow-weaker)."""
    r = user.inside("sh", "-c", "grep -E ' /(tmp|run|var/tmp|dev/shm) tmpfs rw' /proc/self/mounts")
    mounts = r.stdout.splitlines()
    assert len(mounts) >= 3 and all(",size=4194304k," in m for m in mounts), describe(r)
    with open("/proc/meminfo") as f:
        ram_kib = int(f.readline().split()[1])
    if ram_kib // 2 > 4194304:
        host = outside("findmnt", "-no", "OPTIONS", "/dev/shm")
        assert "size=4194304k" not in host.stdout, describe(host)
