"""Escape corpus: kernel interfaces an attacker uses for privilege escalation or to
reach the host: io_uring, bpf, perf, userfaultfd, modules, kexec, dangerous devices.

Outside, root makes each call successfully (or, where this kernel lacks the
feature, the call answers ENOSYS/EINVAL past its permission check); inside,
the seccomp filter answers first, with EPERM.
"""
import os

import pytest

from escape_helpers import (describe, expect_denied, expect_ok, lab,  # noqa: F401
                            probe_outside, result)

SECCOMP = ("EPERM", "ENOSYS", "EACCES")


@pytest.mark.parametrize("technique", ["io-uring", "bpf", "perf", "userfaultfd", "keyctl-session", "acct"])
def test_syscall_blocked(lab, technique):
    """Each works for root outside (perf and userfaultfd even unprivileged); inside: refused."""
    expect_ok(probe_outside(technique))
    expect_denied(lab.probe_inside(technique), *SECCOMP)


def blocked_or_unavailable(lab, args, what):
    """For calls this kernel lacks (ENOSYS outside): inside must answer the seccomp filter's EPERM,
    which proves the filter stops the call before the kernel looks at it."""
    out = probe_outside(*args)
    r = result(out)
    assert r is not None and r[0] == "ERR", describe(out)
    inside = lab.probe_inside(*args)
    if r[1] == "ENOSYS":
        got = expect_denied(inside, *SECCOMP)
        if got == "ENOSYS":
            pytest.skip(f"this kernel has no {what} (ENOSYS outside) and the filter answers ENOSYS "
                        "too: nothing to tell apart here")
    else:
        # the kernel answered past its permission check outside (EINVAL/ENOEXEC...)
        expect_denied(inside, "EPERM")


def test_init_module(lab):
    blocked_or_unavailable(lab, ["init-module"], "module support")


def test_finit_module(lab):
    blocked_or_unavailable(lab, ["finit-module", "/dev/null"], "module support")


def test_kexec_load(lab):
    blocked_or_unavailable(lab, ["kexec"], "kexec")


def test_request_key_upcall(lab):
    """request_key with callout info makes the kernel run /sbin/request-key as root on the host
    (ENOENT outside: the kernel tried, the helper is not installed here)."""
    blocked_or_unavailable(lab, ["request-key", "airlock-escape-nokey"], "request_key")


def test_swapoff(lab):
    blocked_or_unavailable(lab, ["swapoff", "/nonexistent-swap"], "swap support")


def test_ioperm(lab):
    blocked_or_unavailable(lab, ["ioperm"], "I/O port access (CONFIG_X86_IOPL_IOPERM)")


def test_userfaultfd_device(lab):
    """/dev/userfaultfd hands out userfaultfds without the syscall (the filter never sees it)."""
    if not os.path.exists("/dev/userfaultfd"):
        pytest.skip("no /dev/userfaultfd on this machine")
    os.close(os.open("/dev/userfaultfd", os.O_RDWR))  # root opens it outside
    expect_denied(lab.probe_inside("read", "/dev/userfaultfd"), "ENOENT", "EACCES", "EPERM")


DANGEROUS_DEVICES = [
    "/dev/kvm",            # run guests, a large attack surface
    "/dev/vsock",          # talk to the hypervisor
    "/dev/fuse",           # a filesystem server: deadlocks the host's readers
    "/dev/loop-control",   # attach images as block devices
    "/dev/loop0",
    "/dev/btrfs-control",
    "/dev/zram0",
    "/dev/cpu/0/cpuid",
    "/dev/cpu/0/msr",      # model-specific registers: write and own the CPU
    "/dev/console",        # the host's console
    "/dev/tty0",           # the host's virtual terminals
    "/dev/tty1",
    "/dev/ttyS0",          # the serial console
    "/dev/vcs",            # screen contents of the virtual terminals
    "/dev/vcsa1",
    "/dev/hwrng",
    "/dev/cpu_dma_latency",
    "/dev/snapshot",
    "/dev/nvram",
    "/dev/autofs",
]


@pytest.mark.parametrize("dev", [d for d in DANGEROUS_DEVICES if os.path.exists(d)])
def test_dangerous_device_is_absent(lab, dev):
    """Each of these exists on the host (the target); the sandbox's /dev is minimal."""
    expect_denied(lab.probe_inside("read", dev), "ENOENT")


def test_dev_is_minimal(lab):
    allowed = {"null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "fd",
               "stdin", "stdout", "stderr", "console", "mqueue", "core"}
    r = lab.inside("ls", "-A", "/dev")
    assert r.returncode == 0, describe(r)
    extra = set(r.stdout.split()) - allowed
    host = set(os.listdir("/dev")) - allowed
    assert host, "the host's /dev has more than the minimal set (the target exists)"
    # /dev/console inside is acceptable only as the agent's own pty (bwrap does the same)
    assert not extra, f"unexpected device nodes inside: {sorted(extra)}{describe(r)}"


def test_debugfs_tracefs_and_securityfs(lab):
    """Mounting kernel-internal filesystems inside (outside these mounts work for root)."""
    r = lab.sh_inside("mkdir -p /tmp/m; for t in debugfs tracefs securityfs bpf configfs; do "
                      "mount -t $t none /tmp/m 2>/dev/null && echo MOUNTED $t && umount /tmp/m; done; "
                      "ls /sys/kernel/debug 2>/dev/null | head -1; echo done")
    assert "done" in r.stdout, describe(r)
    assert "MOUNTED" not in r.stdout, describe(r)
