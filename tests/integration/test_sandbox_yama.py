"""The unix socket wall under the Yama LSM (issue 3).

The wall's supervisor reads every connect's address with process_vm_readv and
takes the socket with pidfd_getfd: both need ptrace attach access to the
agent, which Yama at ptrace_scope 1 (Ubuntu's and Proxmox VE's kernels) gives
only to an ancestor or to a holder of CAP_SYS_PTRACE in the agent's user
namespace, and at ptrace_scope 2 only to the latter. So the supervisor keeps
exactly that capability, in the sandbox's user namespace, and nothing else.

This machine's kernel has no Yama: what is shown here is what the capability
gives and does not give (the supervisor's sets, the agent kept off it, the
supervisor's connects held to the agent's file permissions, a process it may
not look at failing closed) and how the launch reads ptrace_scope (3 refused
with one clear line; 0-2 run), with the value provided through a FIFO mounted
over /proc/sys/kernel in a mount namespace of the test's own. On a kernel with
Yama (CI on an Ubuntu kernel) every test here runs against the real thing as
well: the supervisor then needs its capability for every connect. Here, the
closest evidence that the capability answers the very check Yama makes
(ns_capable(the agent's user namespace, CAP_SYS_PTRACE)) is that an agent
process that made itself undumpable is read by the supervisor, which takes
the same capability check in the same namespace
(test_escape_unixwall.py::test_an_undumpable_agent_process_is_still_checked).
"""
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

from escape_helpers import (AIRLOCK, describe, expect_denied, expect_ok, lab,  # noqa: F401
                            probe_outside, result)
from test_escape_unixwall import wall_of

CAP_SYS_PTRACE = 1 << 19
FIND_WALL = ("w=; for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = airlock-wall ] && "
             "w=${p#/proc/}; done; ")


def caps(status_text):
    """The capability sets and NoNewPrivs of a /proc/PID/status text, as ints."""
    out = {}
    for line in status_text.splitlines():
        key, _, value = line.partition(":")
        if key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            out[key] = int(value.strip(), 16)
        elif key in ("NoNewPrivs", "Seccomp"):
            out[key] = int(value.strip())
        elif key == "Uid":
            out[key] = value.split()
    return out


def test_supervisor_holds_cap_sys_ptrace_alone_the_agent_nothing(lab):
    """Seen from inside: the supervisor's permitted, effective and bounding sets are exactly
    CAP_SYS_PTRACE, inheritable and ambient empty, no_new_privs set, the agent's uid; the
    agent's every set is empty. Seen from the host: the same numbers for the same process."""
    script = (FIND_WALL + "echo \"== wall $w\"; cat /proc/$w/status; echo \"== agent\"; "
              "cat /proc/self/status")
    r = lab.sh_inside(script)
    parts = r.stdout.split("== agent")
    assert len(parts) == 2 and "== wall " in parts[0] and "== wall \n" not in parts[0], describe(r)
    wall, agent = caps(parts[0]), caps(parts[1])
    assert wall["CapPrm"] == wall["CapEff"] == wall["CapBnd"] == CAP_SYS_PTRACE, describe(r)
    assert wall["CapInh"] == wall["CapAmb"] == 0, describe(r)
    assert wall["NoNewPrivs"] == 1, describe(r)
    assert agent["CapPrm"] == agent["CapEff"] == agent["CapBnd"] == 0, describe(r)
    assert agent["CapInh"] == agent["CapAmb"] == 0, describe(r)
    assert agent["NoNewPrivs"] == 1 and agent["Seccomp"] == 2, describe(r)
    assert wall["Uid"] == agent["Uid"] and agent["Uid"][0] != "0", describe(r)

    # from the host: the process airlock started, not a look-alike
    p = lab.start_inside("/bin/sh", "-c", lab.wait_for_go("true"))
    try:
        assert "waiting" in p.stdout.readline(), "the sandbox did not start"
        host = caps(pathlib.Path(f"/proc/{wall_of(p.pid)}/status").read_text())
        assert host["CapPrm"] == host["CapEff"] == host["CapBnd"] == CAP_SYS_PTRACE, host
        assert host["CapInh"] == host["CapAmb"] == 0 and host["NoNewPrivs"] == 1, host
    finally:
        lab.ws("go").touch()
        lab.finish(p)
        lab.ws("go").unlink(missing_ok=True)


def test_agent_cannot_ptrace_read_or_signal_the_supervisor(lab):
    """Inside, every way to the supervisor is refused — ptrace attach, process_vm_readv,
    pidfd_getfd (seccomp), opening /proc/PID/mem and reading environ (its memory is undumpable and its
    capabilities are no subset of the agent's), kill (Landlock's signal scope) — and the wall
    still answers afterwards. The other side: inside, the same /proc and kill routes work on
    a process of the agent's own; outside, root attaches to, reads and signals the
    supervisor."""
    p = lab.probe
    script = (FIND_WALL + "sleep 30 & c=$!; echo wall=$w child=$c; "
              f"{p} ptrace-attach $w; {p} ptrace-seize $w; {p} vm-read $w; {p} pidfd-getfd $w 0; "
              f"{p} read /proc/$w/mem; {p} read /proc/$w/environ; {p} kill $w 0; {p} kill $w 9; "
              f"{p} unix-connect /; "
              f"{p} read /proc/$c/mem; {p} read /proc/$c/environ; {p} kill $c 9")
    r = lab.sh_inside(script)
    lines = r.stdout.splitlines()
    assert lines and lines[0].startswith("wall=") and "wall= " not in lines[0], describe(r)
    got = [line.split()[:2] for line in lines[1:]]
    assert len(got) == 12, describe(r)
    assert got[0] == ["ERR", "EPERM"] and got[1] == ["ERR", "EPERM"], describe(r)  # seccomp
    assert got[2] == ["ERR", "EPERM"] and got[3] == ["ERR", "EPERM"], describe(r)  # seccomp
    assert got[4] == ["ERR", "EACCES"] and got[5] == ["ERR", "EACCES"], describe(r)
    assert got[6] == ["ERR", "EPERM"] and got[7] == ["ERR", "EPERM"], describe(r)  # Landlock
    assert got[8] == ["ERR", "EACCES"], describe(r)  # the supervisor is alive and answers
    # the agent's own child: /proc/PID/mem opens (reading offset 0, unmapped, fails), environ
    # reads, kill signals
    assert lines[10].split()[:3] in (["ERR", "EIO", "read"], ["OK"]), describe(r)
    assert [g[0] for g in got[10:]] == ["OK", "OK"], describe(r)

    sp = lab.start_inside("/bin/sh", "-c", lab.wait_for_go("true"))
    try:
        assert "waiting" in sp.stdout.readline(), "the sandbox did not start"
        wall = wall_of(sp.pid)
        expect_ok(probe_outside("ptrace-attach", wall))
        expect_ok(probe_outside("proc-mem", wall))
        expect_ok(probe_outside("read", f"/proc/{wall}/environ"))
        expect_ok(probe_outside("kill", wall, 0))
    finally:
        lab.ws("go").touch()
        lab.finish(sp)
        lab.ws("go").unlink(missing_ok=True)


def test_supervisor_connects_with_the_agents_file_permissions_only(lab):
    """CAP_SYS_PTRACE bypasses no file permission: a socket of the agent's own that the agent
    made unwritable (mode 0) is refused even though the supervisor connects it, and the same
    socket connects once writable again."""
    script = r"""
import os, socket
l = socket.socket(socket.AF_UNIX); l.bind("/tmp/perm.sock"); l.listen(4)
for mode in (0o000, 0o777):
    os.chmod("/tmp/perm.sock", mode)
    c = socket.socket(socket.AF_UNIX)
    try:
        c.connect("/tmp/perm.sock"); print(oct(mode), "connected")
    except OSError as e:
        print(oct(mode), "refused", e.errno)
"""
    r = lab.inside("/usr/bin/python3", "-c", script)
    assert r.stdout.splitlines() == ["0o0 refused 13", "0o777 connected"], describe(r)


def test_process_the_supervisor_may_not_look_at_fails_closed(lab):
    """A program the agent may execute but not read (mode 0711, owned by host root, whom the
    sandbox does not map) runs with memory of the host's user namespace: the supervisor's
    capability of the sandbox's does not reach it, so its connects — even to its own socket —
    fail with EPERM, at once, never unchecked. The same binary readable (0755) connects inside,
    and the 0711 one connects outside."""
    d = lab.hostfile("xonly")
    d.mkdir(mode=0o755)
    xonly, readable = d / "probe-0711", d / "probe-0755"
    shutil.copy(lab.probe, xonly)
    shutil.copy(lab.probe, readable)
    os.chown(xonly, 0, 0)
    os.chmod(xonly, 0o711)
    os.chmod(readable, 0o755)
    out_sock = lab.hostfile("xonly-out.sock")
    expect_ok(subprocess.run([xonly, "unix-own", out_sock], capture_output=True, text=True))
    r = lab.inside("/bin/sh", "-c", f"{xonly} unix-own /tmp/x.sock; {readable} unix-own /tmp/r.sock")
    got = [line.split()[:2] for line in r.stdout.splitlines()]
    assert got[0] == ["ERR", "EPERM"], describe(r)
    assert got[1][0] == "OK", describe(r)


# --- kernel.yama.ptrace_scope, as the launch reads it -----------------------------------

# The value comes through a FIFO on a tmpfs over /proc/sys/kernel (every real entry bound back):
# once airlock has opened it, the overmount is taken away again before the value is written, so
# the sandbox's own /proc mount, which the kernel allows only where no part of /proc is hidden,
# works as on a host whose kernel has Yama.
FAKE_YAMA = r"""
set -e
orig="$1"; scope="$2"; shift 2
mount --bind /proc/sys/kernel "$orig"
mount -t tmpfs -o mode=0755 airlock-test-yama /proc/sys/kernel
for e in "$orig"/*; do
    n="${e##*/}"
    [ "$n" != yama ] || continue
    if [ -d "$e" ]; then mkdir "/proc/sys/kernel/$n"; else : > "/proc/sys/kernel/$n"; fi
    mount --bind "$e" "/proc/sys/kernel/$n"
done
mkdir /proc/sys/kernel/yama
mkfifo -m 0644 /proc/sys/kernel/yama/ptrace_scope
"$@" &
exec 3> /proc/sys/kernel/yama/ptrace_scope
umount -l /proc/sys/kernel
umount -l "$orig"
printf '%s\n' "$scope" >&3
exec 3>&-
wait $!
"""


def run_with_yama(lab, tmp_path, scope, *argv):
    """airlock run ... argv, in a mount namespace where airlock reads SCOPE from
    /proc/sys/kernel/yama/ptrace_scope (see FAKE_YAMA)."""
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is needed to fake Yama's sysctl")
    orig = tempfile.mkdtemp(dir=tmp_path)
    env = dict(os.environ, AIRLOCK_POLICY=str(lab.policy))
    cmd = ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", FAKE_YAMA, "fake-yama",
           str(orig), scope, str(AIRLOCK), "run", "--workspace", str(lab.workspace), "--",
           *map(str, argv)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60,
                          cwd=lab.workspace, stdin=subprocess.DEVNULL)


def test_ptrace_scope_3_refuses_the_launch_with_one_clear_line(lab, tmp_path):
    """ptrace_scope 3 forbids every attach (until reboot): the wall cannot work, so nothing
    starts, and the one error line names the sysctl and what to do. The other side: the same
    faked file reading 0, 1 or 2 starts the sandbox, and the wall answers its probe."""
    marker = lab.ws("started-under-3")
    r = run_with_yama(lab, tmp_path, "3", "/usr/bin/touch", marker)
    assert r.returncode != 0 and not marker.exists(), describe(r)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, describe(r)
    assert "kernel.yama.ptrace_scope is 3" in lines[0] and "unix socket" in lines[0], describe(r)
    assert "set kernel.yama.ptrace_scope to 1 or 2" in lines[0], describe(r)
    for scope in ("0", "1", "2"):
        r = run_with_yama(lab, tmp_path, scope, lab.probe, "unix-connect", "/")
        assert result(r) is not None and result(r)[:2] == ("ERR", "EACCES"), describe(r)


def test_unreadable_ptrace_scope_refuses_the_launch(lab, tmp_path):
    """A ptrace_scope that is not 0-3 is not guessed at: the launch is refused and says which
    file it could not read."""
    r = run_with_yama(lab, tmp_path, "7", "/bin/true")
    assert r.returncode != 0, describe(r)
    assert "/proc/sys/kernel/yama/ptrace_scope" in r.stderr, describe(r)


def test_the_real_ptrace_scope_launches(lab):
    """Whatever this kernel has — no Yama (/proc/sys/kernel/yama absent, as on the development
    VM), or Yama at 0, 1 or 2 (Debian's, Ubuntu's kernels) — the launch starts and the wall
    answers; at 3 it is refused with the line tested above."""
    scope = pathlib.Path("/proc/sys/kernel/yama/ptrace_scope")
    if scope.exists() and scope.read_text().strip() == "3":
        r = lab.probe_inside("unix-connect", "/")
        assert "kernel.yama.ptrace_scope is 3" in r.stderr, describe(r)
        return
    expect_denied(lab.probe_inside("unix-connect", "/"), "EACCES")
