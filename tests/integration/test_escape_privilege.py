"""Escape corpus: gaining privilege inside the sandbox.

Outside, each step works for root (setuid binaries and file capabilities are
shown working for an unprivileged user, `nobody`, through setpriv; mount
calls run in a private mount namespace of their own so the host is untouched).
Inside, every one fails: no uid 0, no capability, no_new_privs, seccomp.
"""
import contextlib
import os
import shutil
import subprocess

import pytest

from escape_helpers import (need_tools, PROBE, describe, expect_denied, expect_ok, expect_ran, testnet,  # noqa: F401
                            host_process, lab, outside, probe_outside, result)

MOUNT_ERRNOS = ("EPERM", "EACCES", "ENOSYS")


def in_private_mountns(*argv):
    """Runs argv as root in a new private mount namespace: mount calls cannot touch the host."""
    return outside("unshare", "-m", "--propagation", "private", *argv)


def status_fields(text):
    fields = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip()] = v.strip()
    return fields


def test_agent_is_not_uid_0_and_holds_no_capability(lab):
    out = status_fields(open("/proc/self/status").read())
    assert out["Uid"].split()[1] == "0" and int(out["CapEff"], 16) != 0
    r = lab.inside("cat", "/proc/self/status")
    expect_ran(r)
    f = status_fields(r.stdout)
    assert f["Uid"].split()[:2] != ["0", "0"], f"the agent runs as uid 0 inside:{describe(r)}"
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(f[cap], 16) == 0, f"{cap} is not empty inside:{describe(r)}"
    assert f["NoNewPrivs"] == "1", describe(r)
    assert f["Seccomp"] == "2", describe(r)


def test_setuid_to_root(lab):
    assert expect_ok(probe_outside("setuid0")).startswith("uid 0")
    # EINVAL: uid 0 is not even mapped in the sandbox's user namespace
    expect_denied(lab.probe_inside("setuid0"), "EPERM", "EINVAL")


@pytest.fixture
def suid_probe(lab):
    """A setuid-root copy of the probe on the host tree (not a nosuid mount)."""
    path = lab.hostfile("suid-probe")
    shutil.copy(PROBE, path)
    os.chown(path, 0, 0)
    os.chmod(path, 0o4755)
    yield path
    path.unlink()


def test_own_setuid_root_binary(lab, suid_probe):
    """The bit works outside (nobody gets euid 0) and gives nothing inside (no_new_privs)."""
    out = outside(suid_probe, "ids", user="nobody")
    assert "euid=0" in expect_ok(out), describe(out)
    r = lab.inside(suid_probe, "ids")
    assert "euid=0" not in expect_ok(r, what="running the setuid probe inside"), describe(r)


def test_sudo(lab):
    need_tools("sudo")
    out = outside("sudo", "-n", "id", "-u")
    assert out.returncode == 0 and out.stdout.strip() == "0", describe(out)
    r = lab.sh_inside("sudo -n id -u; echo rc=$?")
    assert "rc=0" not in r.stdout and "rc=" in r.stdout, f"sudo worked inside:{describe(r)}"


def test_su(lab):
    need_tools("su")
    out = outside("su", "-c", "id -u", "root")
    assert out.returncode == 0 and out.stdout.strip() == "0", describe(out)
    r = lab.sh_inside("su -c 'id -u' root </dev/null; echo rc=$?")
    assert "rc=0" not in r.stdout and "rc=" in r.stdout, f"su worked inside:{describe(r)}"


def test_setuid_mount_binary(lab):
    """/usr/bin/mount is setuid root; user mounts from fstab or any mount must fail inside."""
    assert os.stat("/usr/bin/mount").st_mode & 0o4000
    out = in_private_mountns("mount", "-t", "tmpfs", "none", "/mnt")
    assert out.returncode == 0, describe(out)
    r = lab.sh_inside("mount -t tmpfs none /mnt; echo rc=$?; umount /mnt 2>/dev/null")
    assert "rc=0" not in r.stdout and "rc=" in r.stdout, describe(r)


def test_every_setuid_binary_keeps_the_agents_uid(lab):
    """Each setuid/setgid program on the host, run inside, runs with the agent's ids."""
    found = subprocess.run(["find", "/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/lib", "-xdev",
                            "-type", "f", "(", "-perm", "-4000", "-o", "-perm", "-2000", ")"],
                           capture_output=True, text=True).stdout.split()
    assert found, "the host has setuid binaries (the target exists)"
    # exec each one with a harmless argument and read its ids from /proc while it runs is racy;
    # instead check the kernel's answer: with no_new_privs the bits are ignored on execve.
    r = lab.sh_inside("for f in " + " ".join(found) + "; do [ -u $f ] && echo suid $f; done; "
                      "grep NoNewPrivs /proc/self/status")
    assert "NoNewPrivs:\t1" in r.stdout, f"without no_new_privs the setuid bits work:{describe(r)}"


@pytest.fixture
def cap_probe(lab):
    """A copy of the probe with file capabilities (like ping's cap_net_raw)."""
    need_tools("setcap")
    path = lab.hostfile("cap-probe")
    shutil.copy(PROBE, path)
    os.chmod(path, 0o755)
    subprocess.run(["setcap", "cap_dac_override,cap_net_raw+ep", str(path)], check=True)
    yield path
    path.unlink()


def test_file_capabilities(lab, cap_probe):
    secret = lab.hostfile("root-only")
    secret.write_text("root-only\n")
    secret.chmod(0o600)
    assert result(outside(PROBE, "read", secret, user="nobody"))[1] == "EACCES"
    assert "root-only" in expect_ok(outside(cap_probe, "read", secret, user="nobody"))
    expect_ok(outside(cap_probe, "socket", "2", "3", "1", user="nobody"))  # raw ICMP
    expect_denied(lab.inside(cap_probe, "read", secret), "EACCES")
    expect_denied(lab.inside(cap_probe, "socket", "2", "3", "1"), "EPERM", "EACCES")


def test_nested_user_namespace(lab):
    expect_ok(probe_outside("unshare", "user"))
    expect_denied(lab.probe_inside("unshare", "user"), "EPERM", "ENOSPC", "EINVAL")
    r = lab.sh_inside("unshare -Ur id -u; echo rc=$?")
    assert "rc=0" not in r.stdout and "rc=" in r.stdout, describe(r)


def test_clone3_into_a_new_user_namespace(lab):
    """clone3 passes its flags in memory, where seccomp cannot look: it must be refused whole."""
    expect_ok(probe_outside("clone3-userns"))
    expect_denied(lab.probe_inside("clone3-userns"), "EPERM", "ENOSYS", "ENOSPC")


def test_clone_into_a_new_user_namespace(lab):
    """The classic clone(2) with CLONE_NEWUSER (a filter on unshare alone misses it)."""
    expect_ok(probe_outside("clone-userns"))
    expect_denied(lab.probe_inside("clone-userns"), "EPERM", "ENOSPC", "EINVAL")


def test_unshare_other_namespaces(lab):
    for ns in ("mnt", "net", "pid", "ipc", "uts", "cgroup", "time"):
        expect_ok(probe_outside("unshare", ns))
        expect_denied(lab.probe_inside("unshare", ns), "EPERM", "ENOSPC", "EINVAL")


def test_nested_user_namespace_then_umount_the_mask(lab):
    """unshare -Ur then umount: a privileged process can take a mask away; the agent cannot."""
    copy = lab.hostfile("masked-copy")
    copy.write_text(lab.token + "\n")
    script = f"mount --bind /dev/null {copy} && cat {copy} && umount {copy} && cat {copy}"
    out = in_private_mountns("sh", "-c", script)
    assert out.returncode == 0 and lab.token in out.stdout, describe(out)
    r = lab.probe_inside("userns-umount", lab.secret_file)
    expect_denied(r, "EPERM", "ENOSPC", "EINVAL")
    expect_denied(lab.probe_inside("umount", lab.secret_file), "EPERM")
    r = lab.sh_inside(f"unshare -Urm sh -c 'umount {lab.secret_file}; cat {lab.secret_file}'; echo rc=$?")
    assert "rc=" in r.stdout, describe(r)


def test_mount_old_api(lab):
    assert expect_ok(in_private_mountns(PROBE, "mount-tmpfs", "/mnt"))
    expect_denied(lab.probe_inside("mount-tmpfs", "/mnt"), *MOUNT_ERRNOS)
    expect_denied(lab.probe_inside("mount-tmpfs", lab.ws()), *MOUNT_ERRNOS)
    expect_denied(lab.probe_inside("mount-bind", lab.ws(), lab.secret_file), *MOUNT_ERRNOS)


def test_umount_a_mask(lab):
    copy = lab.hostfile("masked")
    copy.write_text("x\n")
    out = in_private_mountns("sh", "-c", f"mount --bind /dev/null {copy} && {PROBE} umount {copy}")
    assert "OK" in out.stdout, describe(out)
    expect_denied(lab.probe_inside("umount", lab.secret_file), *MOUNT_ERRNOS, "EINVAL")


def test_new_mount_api_fsopen_fsmount(lab):
    expect_ok(probe_outside("fsmount"))
    expect_denied(lab.probe_inside("fsmount"), *MOUNT_ERRNOS)


def test_new_mount_api_fspick(lab):
    expect_ok(probe_outside("fspick", "/"))
    expect_denied(lab.probe_inside("fspick", "/"), *MOUNT_ERRNOS)


def test_new_mount_api_open_tree(lab):
    expect_ok(probe_outside("open-tree", "/"))
    expect_denied(lab.probe_inside("open-tree", "/"), *MOUNT_ERRNOS)


def test_new_mount_api_open_tree_attr(lab):
    """open_tree_attr (Linux 6.15, syscall 467) is newer than libseccomp 2.5's table: a filter
    must name it by number (or refuse unknown system calls)."""
    out = probe_outside("open-tree-attr", "/")
    if result(out)[0] != "OK":
        pytest.skip(f"this kernel has no open_tree_attr ({result(out)[1]})")
    expect_denied(lab.probe_inside("open-tree-attr", "/"), *MOUNT_ERRNOS)


def test_new_mount_api_move_mount(lab):
    expect_ok(in_private_mountns(PROBE, "move-mount", "/etc", "/mnt"))
    expect_denied(lab.probe_inside("move-mount", "/etc", lab.ws()), *MOUNT_ERRNOS)


def test_mount_setattr_clears_read_only(lab):
    out = in_private_mountns("sh", "-c", f"mount --bind -o ro /mnt /mnt && {PROBE} mount-setattr /mnt")
    assert "OK" in out.stdout, describe(out)
    expect_denied(lab.probe_inside("mount-setattr", "/"), *MOUNT_ERRNOS)


def test_pivot_root(lab):
    out = in_private_mountns("sh", "-c", f"mount --bind /mnt /mnt && mkdir -p /mnt/old && "
                             f"{PROBE} pivot-root /mnt /mnt/old; rmdir /mnt/old 2>/dev/null; true")
    # pivot_root in a namespace sharing / with the host: EINVAL is the kernel past the permission check
    assert "OK" in out.stdout or "ERR EINVAL" in out.stdout, describe(out)
    expect_denied(lab.probe_inside("pivot-root", lab.ws(), lab.ws()), "EPERM", "ENOSYS")


def test_chroot(lab):
    expect_ok(probe_outside("chroot", "/"))
    expect_denied(lab.probe_inside("chroot", lab.ws()), "EPERM")


def test_setns_into_pid_1s_namespaces(lab):
    with host_process("sleep", "60") as p:
        expect_ok(probe_outside("setns", f"/proc/{p.pid}/ns/mnt"))
        for ns in ("mnt", "user", "net", "pid"):
            expect_denied(lab.probe_inside("setns", f"/proc/{p.pid}/ns/{ns}"), "ENOENT", "EPERM", "EACCES")
            expect_denied(lab.probe_inside("setns", f"/proc/1/ns/{ns}"), "EPERM", "EACCES", "EINVAL")


def test_ptrace_a_sibling_inside(lab):
    with host_process("sleep", "60") as p:
        expect_ok(probe_outside("ptrace-attach", str(p.pid)))
        expect_ok(probe_outside("ptrace-seize", str(p.pid)))
    r = lab.sh_inside(f"sleep 30 & p=$!; {lab.probe} ptrace-attach $p; {lab.probe} ptrace-seize $p; kill $p")
    lines = [l for l in r.stdout.splitlines() if l.startswith(("OK", "ERR"))]
    assert len(lines) == 2, describe(r)
    assert all(l.startswith("ERR EPERM") for l in lines), f"ptrace worked inside:{describe(r)}"


def test_ptrace_a_host_process(lab):
    with host_process("sleep", "60") as p:
        expect_ok(probe_outside("ptrace-attach", str(p.pid)))
        expect_denied(lab.probe_inside("ptrace-attach", str(p.pid)), "EPERM", "ESRCH")
        assert p.poll() is None


def test_process_vm_readv(lab):
    with host_process("sleep", "60") as p:
        expect_ok(probe_outside("vm-read", str(p.pid)))
        expect_denied(lab.probe_inside("vm-read", str(p.pid)), "EPERM", "ESRCH")
    r = lab.sh_inside(f"sleep 30 & p=$!; {lab.probe} vm-read $p; kill $p")
    expect_denied(r, "EPERM")


def test_no_less_confined_process_can_be_hijacked(lab):
    """Code injection through /proc/PID/mem (no ptrace call needed) or fd theft with
    pidfd_getfd: whatever the agent can open that way must be as confined as itself.
    Outside, root opens a host process's memory for writing."""
    with host_process("sleep", "60") as p:
        expect_ok(probe_outside("proc-mem", str(p.pid)))
    r = lab.sh_inside(
        f"sleep 30 & s=$!; for d in /proc/[0-9]*; do p=${{d#/proc/}}; "
        f"echo \"PID $p $(grep -E '^(CapEff|NoNewPrivs|Seccomp):' $d/status 2>/dev/null | tr -s '\\t\\n' '  ') "
        f"MEM=$({lab.probe} proc-mem $p | cut -c1-9) FD=$({lab.probe} pidfd-getfd $p 0 | cut -c1-9)\"; done; kill $s")
    expect_ran(r)
    lines = [l for l in r.stdout.splitlines() if l.startswith("PID ")]
    assert len(lines) >= 2, describe(r)
    for line in lines:
        if "MEM=OK" in line or "FD=OK" in line:
            confined = "CapEff: 0000000000000000" in line and "NoNewPrivs: 1" in line and "Seccomp: 2" in line
            assert confined, f"a less confined process can be hijacked from inside: {line}{describe(r)}"


def test_kill_a_host_process(lab):
    with host_process("sleep", "60") as p:
        expect_denied(lab.probe_inside("kill", str(p.pid), "9"), "ESRCH", "EPERM")
        r = lab.sh_inside(f"kill -9 {p.pid}; echo rc=$?")
        assert "rc=" in r.stdout and "rc=0" not in r.stdout, describe(r)
        assert p.poll() is None, "a host process was killed from inside"
    with host_process("sleep", "60") as p:
        expect_ok(probe_outside("kill", str(p.pid), "0"))


def test_hostname_change_does_not_reach_the_host(lab):
    before = open("/proc/sys/kernel/hostname").read()
    r = lab.sh_inside(f"{lab.probe} sethostname {lab.tag}; hostname")
    after = open("/proc/sys/kernel/hostname").read()
    if after != before:
        open("/proc/sys/kernel/hostname", "w").write(before)
    assert after == before, f"the host's name changed:{describe(r)}"
    assert result(r) is not None, describe(r)


def test_oom_score_adj_cannot_be_lowered(lab):
    """An agent making itself the last thing the OOM killer takes."""
    with host_process("sleep", "60") as p:
        path = f"/proc/{p.pid}/oom_score_adj"
        out = probe_outside("writeval", path, "-1000")
        if result(out)[0] != "OK":
            # this machine's root lacks CAP_SYS_RESOURCE (its own outer confinement): the
            # target still exists and is writable upwards
            assert not int(status_fields(open("/proc/self/status").read())["CapEff"], 16) & (1 << 24)
            expect_ok(probe_outside("writeval", path, "500"))
    expect_denied(lab.probe_inside("writeval", "/proc/self/oom_score_adj", "-1000"), "EACCES", "EPERM", "EROFS")


def test_core_dump_limit(lab):
    """RLIMIT_CORE is 0 and cannot be raised: no core reaches the host's core_pattern handler."""
    expect_ok(probe_outside("rlimit-core"))
    expect_denied(lab.probe_inside("rlimit-core"), "EPERM")
    r = lab.sh_inside("ulimit -Hc")
    assert r.stdout.strip().splitlines()[-1:] == ["0"], describe(r)


def test_personality(lab):
    expect_ok(probe_outside("personality"))
    expect_denied(lab.probe_inside("personality"), "EPERM", "EINVAL")


def test_i386_system_calls(lab):
    """int 0x80 reaches the 32-bit syscall table; a filter written for x86-64 does not see it."""
    out = probe_outside("int80")
    if result(out) is None:
        pytest.skip(f"int 0x80 does not work on this kernel (no IA32 emulation):{describe(out)}")
    expect_ok(out)
    r = lab.probe_inside("int80")
    assert result(r) is None or result(r)[0] == "ERR", f"an i386 system call ran inside:{describe(r)}"
    assert r.returncode != 0, describe(r)


def test_x32_system_calls(lab):
    out = probe_outside("x32")
    r = lab.probe_inside("x32")
    assert result(r) is None or result(r)[0] == "ERR", f"an x32 system call ran inside:{describe(r)}"
    if result(out)[0] != "OK":
        pytest.skip(f"this kernel has no x32 ABI (outside: {result(out)[1]}); checked it fails inside too")


def test_settimeofday(lab):
    """The clock is not namespaced: setting it changes the host (outside: a no-op call)."""
    expect_ok(probe_outside("settime"))
    expect_denied(lab.probe_inside("settime"), "EPERM")


def test_reboot(lab):
    """reboot(2) with a wrong magic number: EINVAL means the kernel let root past CAP_SYS_BOOT."""
    expect_denied(probe_outside("reboot"), "EINVAL", what="reboot outside (a wrong magic: harmless)")
    expect_denied(lab.probe_inside("reboot"), "EPERM")


def test_nested_airlock_for_a_weaker_profile(lab, testnet):
    """The agent runs airlock itself, asking for the host network: a new sandbox needs new
    namespaces, which the agent cannot make (outside, the same command reaches the peer)."""
    out = outside(lab.airlock, "run", "--workspace", lab.ws(), "--profile", "hostnet", "--", PROBE,
                  "tcp-connect", testnet.peer, "443", env={"AIRLOCK_POLICY": str(lab.policy)})
    assert "hello-from-peer" in expect_ok(out)
    inner = lab.srv_dir / "bin" / "airlock"  # the build may be under /tmp, hidden inside
    shutil.copy(lab.airlock, inner)
    r = lab.sh_inside(f"AIRLOCK_POLICY={lab.policy} {inner} run --workspace {lab.ws()} --profile hostnet "
                      f"-- {lab.probe} tcp-connect {testnet.peer} 443; echo rc=$?")
    assert "rc=" in r.stdout, describe(r)
    assert "rc=127" not in r.stdout, f"the inner airlock did not even run:{describe(r)}"
    assert "hello-from-peer" not in r.stdout and "rc=0" not in r.stdout, f"a nested airlock got out:{describe(r)}"
