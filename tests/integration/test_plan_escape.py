"""The snapshot holds a hostile command: each attempt to reach the host from
inside a plan fails, and (to prove the attempt means something) the same
operation works outside. The command runs as uid 0 of a user namespace
that maps every id to itself, so file permissions alone would let it write
root's kernel interfaces: they must be read-only and locked.
"""
import os
import pathlib
import subprocess
import time

import pytest

from plan_helpers import HostUnchanged, needs_root, plan


def out(*cmd, **kw):
    _, p, _, _ = plan(*cmd, **kw)
    return p["output"] or ""


@pytest.fixture(autouse=True)
def root():
    needs_root()


def test_sysctl_is_read_only():
    swappiness = pathlib.Path("/proc/sys/vm/swappiness").read_text().strip()
    script = f"echo {swappiness} > /proc/sys/vm/swappiness && echo WROTE || echo REFUSED"
    assert "REFUSED" in out("sh", "-c", script)
    # outside the same write (of the value it already has) works
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert "WROTE" in r.stdout


def test_sysfs_is_read_only():
    thp = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not thp.exists():
        pytest.skip("no transparent_hugepage/enabled on this kernel")
    current = thp.read_text().split("[")[1].split("]")[0]
    script = f"echo {current} > {thp} && echo WROTE || echo REFUSED"
    assert "REFUSED" in out("sh", "-c", script)
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert "WROTE" in r.stdout


def test_mounts_are_locked():
    script = ("mount -o remount,rw /proc && echo REMOUNTED; "
              "umount -l /proc && echo UNMOUNTED; "
              "umount -l /run/netns 2>/dev/null; umount -l / && echo ROOT_UNMOUNTED; "
              "mount -o remount,rw /sys && echo SYS_REMOUNTED; echo done")
    with HostUnchanged():
        o = out("sh", "-c", script)
    assert "done" in o
    for word in ("REMOUNTED", "UNMOUNTED", "ROOT_UNMOUNTED", "SYS_REMOUNTED"):
        assert word not in o.replace("done", ""), o
    # outside, in a private mount namespace, root may do all of this
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "mount -o remount,ro /proc && mount -o remount,rw /proc && echo REMOUNTED"],
                       capture_output=True, text=True)
    assert "REMOUNTED" in r.stdout, r.stderr


def test_fresh_proc_is_read_only_too():
    """A new user and pid namespace may mount its own proc: the kernel forces it read-only because
    the snapshot's /proc is locked read-only."""
    o = out("python3", "-c", FRESH_PROC)
    assert "MOUNTED" in o or "MOUNT_REFUSED" in o, o
    assert "REFUSED" in o and "WROTE" not in o, o
    # outside, a fresh proc in a new pid namespace is writable for root
    r = subprocess.run(["unshare", "-m", "-p", "-f", "--propagation", "private", "python3", "-c",
                        FRESH_PROC.replace("CLONE_NEWUSER | ", "")], capture_output=True, text=True)
    assert "MOUNTED" in r.stdout and "WROTE" in r.stdout, (r.stdout, r.stderr)


# Mounts a new proc from a new user, mount and pid namespace (system calls, not mount(8), which
# refuses an unmapped uid by itself) and writes a harmless sysctl through it.
FRESH_PROC = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID = 0x10000000, 0x20000, 0x20000000
if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID) != 0:
    print("UNSHARE_REFUSED", os.strerror(ctypes.get_errno()))
pid = os.fork()
if pid == 0:
    libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None)  # MS_REC | MS_PRIVATE
    if libc.mount(b"proc", b"/proc", b"proc", 0, None) == 0:
        print("MOUNTED")
    else:
        print("MOUNT_REFUSED", os.strerror(ctypes.get_errno()))
    try:
        with open("/proc/sys/vm/stat_interval", "r+") as f:
            v = f.read()
            f.seek(0)
            f.write(v)
        print("WROTE")
    except OSError as e:
        print("REFUSED", e)
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_builder_is_out_of_reach():
    """pid 1 of the snapshot holds fds of the host's filesystems: not dumpable, nested user
    namespace, so neither its root, its fds nor its memory are reachable."""
    script = ("ls /proc/1/root/ >/dev/null 2>&1 && echo ROOT; "
              "for f in /proc/1/fd/*; do cat $f >/dev/null 2>&1 && echo FD; ls $f/ >/dev/null 2>&1 && echo FD; done; "
              "cat /proc/1/environ >/dev/null 2>&1 && echo ENV; "
              "cat /proc/1/mem >/dev/null 2>&1 && echo MEM; echo done")
    o = out("sh", "-c", script)
    assert o.strip().endswith("done")
    for word in ("ROOT", "FD", "ENV", "MEM"):
        assert word not in o.replace("done", ""), o
    # outside, root reads another process's root directory
    assert os.listdir(f"/proc/{os.getppid()}/root/")


def test_host_processes_are_out_of_reach():
    sleeper = subprocess.Popen(["sleep", "300.4242"])
    try:
        o = out("sh", "-c", f"kill -9 {sleeper.pid} && echo KILLED; ps -e | wc -l")
        assert "KILLED" not in o
        assert int(o.split()[-1]) < 10  # the pid namespace shows only the plan's processes
        time.sleep(0.2)
        assert sleeper.poll() is None, "the plan killed a host process"
    finally:
        sleeper.kill()  # outside, the same kill works
        assert sleeper.wait(timeout=10) == -9


def test_devices_are_not_there():
    o = out("sh", "-c", "ls /dev; mknod /tmp/disk b 254 0 && echo MKNOD; "
                        "head -c1 /dev/vda >/dev/null 2>&1 && echo DISK; echo done")
    assert "MKNOD" not in o and "DISK" not in o
    assert "null" in o and "vda" not in o


def test_no_network_but_loopback():
    o = out("sh", "-c", "ip -o link | cut -d: -f2; cat /proc/net/route | wc -l")
    names = [w.strip() for w in o.splitlines()[:-1]]
    assert names == ["lo"], o
