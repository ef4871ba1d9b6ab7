"""Escape corpus: reading a secret the policy masks, every way an attacker would try.

Each test shows the secret (a random token in a file the lab creates and the
policy lists) readable outside, and unreadable inside: the masked file reads
as empty (or the path is absent or refused). Lab.inside() also fails any test
whose inside output contains the token, whatever the probe said.
"""
import os
import pathlib
import pwd
import shutil
import socket
import stat
import struct
import subprocess
import time

import pytest

from escape_helpers import (need_tools, PROBE, describe, expect_denied, expect_empty_or_denied,
                            expect_ok, expect_ran, host_process, lab, outside,  # noqa: F401
                            probe_outside, result)

MASK_ERRNOS = ("ENOENT", "EACCES", "EPERM")


def test_direct_read_of_a_policy_secret(lab):
    out = probe_outside("read", lab.secret_file)
    assert lab.token in expect_ok(out)
    expect_empty_or_denied(lab.probe_inside("read", lab.secret_file), *MASK_ERRNOS)


def test_secret_read_with_cat_and_grep(lab):
    """The tools an agent really uses, not just the probe."""
    assert lab.token in outside("cat", lab.secret_file).stdout
    r = lab.sh_inside(f"cat {lab.secret_file}; echo rc=$?; grep -r {lab.token} {lab.etc_dir} {lab.secret_dir}; echo grep=$?")
    assert "rc=" in r.stdout, describe(r)
    assert "grep=0" not in r.stdout and "grep=" in r.stdout, f"grep must find no secret inside:{describe(r)}"


def test_etc_shadow_is_masked(lab):
    out = probe_outside("read", "/etc/shadow")
    assert "root:" in expect_ok(out)
    inside = lab.probe_inside("read", "/etc/shadow")
    expect_empty_or_denied(inside, *MASK_ERRNOS)
    assert "root:" not in inside.stdout


def test_etc_shadow_is_masked_by_the_default_policy(lab):
    """Without AIRLOCK_POLICY, airlock uses its standard policy (or the embedded default)."""
    inside = lab.probe_inside("read", "/etc/shadow", policy=False)
    expect_empty_or_denied(inside, *MASK_ERRNOS)
    assert "root:" not in inside.stdout


def test_secret_directory_is_empty(lab):
    assert lab.token in expect_ok(probe_outside("read", lab.secret_dir_file))
    assert os.listdir(lab.secret_dir) == ["cluster.key"]
    expect_empty_or_denied(lab.probe_inside("read", lab.secret_dir_file), *MASK_ERRNOS)
    r = lab.sh_inside(f"ls -A {lab.secret_dir} | wc -l")
    assert r.stdout.strip().splitlines()[-1:] == ["0"], f"a masked directory must look empty inside:{describe(r)}"


def test_ssh_private_key_is_masked(lab):
    """~/.ssh/id_* of every user: the key the incident's agent would have used (root's here:
    /root is 0700, so the agent's uid is a second wall; the launch must still work)."""
    with lab.ssh_key_present():
        assert lab.token in expect_ok(probe_outside("read", lab.ssh_key))
        expect_empty_or_denied(lab.probe_inside("read", lab.ssh_key), *MASK_ERRNOS)


def test_symlink_created_inside_to_the_secret(lab):
    link = lab.ws("link-made-inside")
    r = lab.sh_inside(f"ln -s {lab.secret_file} {link} && {lab.probe} read {link}")
    expect_empty_or_denied(r, *MASK_ERRNOS)


def test_symlink_planted_in_the_workspace_before_launch(lab):
    link = lab.ws("planted-link")
    os.symlink(lab.secret_file, link)
    try:
        assert lab.token in expect_ok(probe_outside("read", link))
        expect_empty_or_denied(lab.probe_inside("read", link), *MASK_ERRNOS)
    finally:
        link.unlink()


def test_hardlink_to_the_secret_made_inside(lab):
    """link(2) of the secret into the writable workspace (same ext4 filesystem on the host)."""
    target = lab.ws("hardlink-made-inside")
    r = lab.sh_inside(f"ln {lab.secret_file} {target}; {lab.probe} read {target}")
    try:
        expect_empty_or_denied(r, *MASK_ERRNOS)
        if target.exists():
            assert lab.token not in target.read_text(), "the hardlink made inside exposes the secret on the host"
    finally:
        if target.exists():
            target.unlink()


def test_hardlink_to_the_secret_that_already_exists_elsewhere(lab):
    """An attacker does not need to make a link: any second name of the inode will do.

    A secret with a second hard link outside the policy's paths cannot be
    masked by path; airlock must refuse to start (say why) or mask it anyway.
    """
    other = lab.hostfile("innocent-notes.txt")
    os.link(lab.secret_file, other)
    try:
        assert lab.token in expect_ok(probe_outside("read", other))
        r = lab.probe_inside("read", other)
        if result(r) is None:
            assert r.returncode != 0 and "link" in r.stderr.lower(), \
                f"airlock may refuse to start, but must say the secret has another link:{describe(r)}"
        else:
            expect_empty_or_denied(r, *MASK_ERRNOS)
    finally:
        other.unlink()


def test_proc_self_root(lab):
    path = f"/proc/self/root{lab.secret_file}"
    assert lab.token in expect_ok(probe_outside("read", path))
    expect_empty_or_denied(lab.probe_inside("read", path), *MASK_ERRNOS)


def test_proc_pid_root_of_a_sibling_inside(lab):
    r = lab.sh_inside(f"sleep 30 & pid=$!; {lab.probe} read /proc/$pid/root{lab.secret_file}; kill $pid")
    expect_empty_or_denied(r, *MASK_ERRNOS)


def host_init_pid():
    """The lowest pid whose root this test can read outside: the host's init as seen from here."""
    for d in sorted((int(d) for d in os.listdir("/proc") if d.isdigit())):
        try:
            os.stat(f"/proc/{d}/root/")
            return d
        except OSError:
            continue
    return None


def test_proc_1_root_of_the_host(lab):
    """Outside, a low pid's /proc/PID/root is the host's root; inside pid 1 (and every low pid)
    must be the sandbox's own."""
    pid = host_init_pid()
    assert lab.token in expect_ok(probe_outside("read", f"/proc/{pid}/root{lab.secret_file}"))
    expect_empty_or_denied(lab.probe_inside("read", f"/proc/1/root{lab.secret_file}"), *MASK_ERRNOS)
    r = lab.probe_inside("read", f"/proc/{pid}/root{lab.secret_file}")
    expect_empty_or_denied(r, *MASK_ERRNOS, "ESRCH")


def test_proc_pid_root_of_a_host_process(lab):
    with host_process("sleep", "60") as p:
        path = f"/proc/{p.pid}/root{lab.secret_file}"
        assert lab.token in expect_ok(probe_outside("read", path))
        expect_empty_or_denied(lab.probe_inside("read", path), *MASK_ERRNOS, "ESRCH")


def test_open_by_handle_at(lab):
    """The "shocker" attack: open a file by its handle on the root mount, bypassing paths."""
    handle = expect_ok(probe_outside("handle-get", lab.secret_file))
    htype, hexbytes = handle.split()[:2]
    assert lab.token in expect_ok(probe_outside("handle-open", "/", htype, hexbytes))
    expect_denied(lab.probe_inside("handle-open", "/", htype, hexbytes), "EPERM", "EACCES")


def root_block_device():
    """The device node of the root filesystem (e.g. /dev/vda) and its numbers."""
    rdev = os.stat("/").st_dev
    for name in sorted(os.listdir("/dev")):
        path = "/dev/" + name
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISBLK(st.st_mode) and st.st_rdev == rdev:
            return path, rdev
    return None, rdev


def test_raw_block_device_of_the_root_filesystem(lab):
    dev, _ = root_block_device()
    if not dev:
        pytest.skip("the root filesystem has no block device node in /dev here")
    # Outside the node is there; root reads it unless this machine's own outer confinement
    # refuses raw disk access (then the node's existence is the target).
    out = probe_outside("read", dev)
    if result(out)[0] == "OK":
        assert expect_ok(out).startswith("4096")
    else:
        assert result(out)[1] == "EPERM", describe(out)
    # inside: a minimal /dev has no disks at all
    expect_denied(lab.probe_inside("read", dev), "ENOENT")


def test_mknod_of_the_root_block_device(lab):
    """Making our own node for the disk: mknod must be refused inside."""
    _, rdev = root_block_device()
    maj, mnr = str(os.major(rdev)), str(os.minor(rdev))
    expect_ok(probe_outside("mknod", lab.hostfile("blk-outside"), "b", maj, mnr))
    for where in (lab.ws("blk-inside"), "/tmp/blk-inside", "/dev/shm/blk-inside"):
        expect_denied(lab.probe_inside("mknod-read", where, "b", maj, mnr), "EPERM", "EACCES", "EROFS")


def test_keyring_of_the_host(lab):
    """A secret in root's user keyring (where tools like cifs or ecryptfs keep keys)."""
    desc = lab.tag + "-key"
    key_id = expect_ok(probe_outside("keyctl-add", desc, lab.token)).split()[0]
    try:
        assert lab.token in expect_ok(probe_outside("keyctl-read", desc))
        expect_denied(lab.probe_inside("keyctl-read", desc), "EPERM", "ENOKEY", "EACCES", "ENOSYS")
        expect_denied(lab.probe_inside("keyctl-session"), "EPERM", "ENOSYS")
    finally:
        probe_outside("keyctl-unlink", key_id)


def test_kernel_memory_devices(lab):
    """/dev/mem, /dev/kmem, /dev/port, /proc/kcore: whatever the host has, the sandbox has none,
    and it cannot make a /dev/mem node of its own (outside, root can)."""
    present = [p for p in ("/dev/mem", "/dev/kmem", "/dev/port", "/proc/kcore") if os.path.exists(p)]
    for p in present:
        expect_ok(probe_outside("read", p))
        expect_denied(lab.probe_inside("read", p), "ENOENT", "EACCES", "EPERM")
    expect_ok(probe_outside("mknod", lab.hostfile("mem-outside"), "c", "1", "1"))
    expect_denied(lab.probe_inside("mknod-read", lab.ws("mem"), "c", "1", "1"), "EPERM", "EACCES")


def test_kmsg(lab):
    """The kernel log can hold secrets (command lines, addresses)."""
    assert os.path.exists("/dev/kmsg")
    expect_ok(probe_outside("read", "/dev/kmsg"))
    expect_denied(lab.probe_inside("read", "/dev/kmsg"), "ENOENT", "EACCES", "EPERM")
    expect_ok(probe_outside("syslog"))
    expect_denied(lab.probe_inside("syslog"), "EPERM", "ENOSYS")


def test_kallsyms_addresses(lab):
    """Kernel addresses defeat KASLR; root outside sees them, the agent must not."""
    def nonzero_addresses(text):
        return sum(1 for line in text.splitlines()[:200] if line.split()[:1] and int(line.split()[0], 16))
    assert nonzero_addresses(open("/proc/kallsyms").read(20000)) > 0
    r = lab.sh_inside("head -n 200 /proc/kallsyms")
    expect_ran(r)
    assert nonzero_addresses(r.stdout) == 0, f"kernel addresses visible inside:{describe(r)}"


def test_ssh_agent_is_unreachable(lab, tmp_path):
    """ssh-agent with a socket in /tmp; SSH_AUTH_SOCK set when airlock run starts."""
    need_tools("ssh-agent", "ssh-add")
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        def listening():  # bound and listening: a connection is accepted
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                return c.connect_ex(str(sock)) == 0
        deadline = time.monotonic() + 30
        while not listening() and agent.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sock.exists(), f"ssh-agent made no socket (exit status {agent.poll()})"
        os.chmod(tmp_path, 0o755)
        os.chmod(sock, 0o777)
        env = {"SSH_AUTH_SOCK": str(sock)}
        # ssh-add -l: 1 = connected, no identities; 2 = cannot reach an agent
        assert outside("ssh-add", "-l", env=env).returncode == 1
        r = lab.sh_inside('echo "sock=${SSH_AUTH_SOCK:-unset}"; ssh-add -l; echo rc=$?; '
                          f'SSH_AUTH_SOCK={sock} ssh-add -l; echo rc=$?', env=env)
        assert "sock=unset" in r.stdout, f"SSH_AUTH_SOCK reached the agent:{describe(r)}"
        assert r.stdout.count("rc=2") == 2, f"the ssh agent is reachable inside:{describe(r)}"
    finally:
        agent.kill()
        agent.wait(5)


def test_ssh_with_the_users_key(lab):
    """ssh -i with a masked key: the key file is empty inside, so ssh cannot load it."""
    need_tools("ssh-keygen")
    with lab.ssh_key_present():
        r = lab.sh_inside(f"ssh-keygen -y -f {lab.ssh_key} </dev/null; echo rc=$?")
    assert "rc=" in r.stdout, f"the shell never ran inside (did airlock refuse to start?):{describe(r)}"
    assert "rc=0" not in r.stdout, f"the private key loaded inside:{describe(r)}"
    assert "ssh-" not in r.stdout


def test_environment_secrets_do_not_arrive(lab):
    env = {"SSH_AUTH_SOCK": "/tmp/ssh-x/agent.1", "AWS_SECRET_ACCESS_KEY": lab.token[:30] + "aws",
           "AWS_ACCESS_KEY_ID": "AKIAESCAPETEST", "GITHUB_TOKEN": "ghp_" + lab.token[-20:],
           "ANTHROPIC_API_KEY": "sk-ant-" + lab.token[-16:], "VAULT_TOKEN": "hvs.escape",
           "KRB5CCNAME": "FILE:/tmp/krb5cc_0", "LD_PRELOAD": "/tmp/evil.so"}
    out = outside("env", env=env).stdout
    for k in env:
        assert f"{k}=" in out
    r = lab.inside("env", env=env)
    expect_ran(r)
    leaked = [k for k in env if f"{k}=" in r.stdout]
    assert not leaked, f"environment variables leaked into the sandbox: {leaked}{describe(r)}"


def test_environ_of_a_host_process(lab):
    env = dict(os.environ, AIRLOCK_ESCAPE_TOKEN=lab.token)
    with host_process("sleep", "60", env=env) as p:
        path = f"/proc/{p.pid}/environ"
        assert lab.token in expect_ok(probe_outside("read", path)) or \
            lab.token in open(path).read()
        r = lab.probe_inside("read", path)
        expect_empty_or_denied(r, "ENOENT", "EACCES", "EPERM", "ESRCH")


def test_inherited_file_descriptor_to_the_secret(lab):
    fd = os.open(lab.secret_file, os.O_RDONLY)  # inheritable once passed
    try:
        assert lab.token in expect_ok(probe_outside("fd-read", str(fd), pass_fds=(fd,)))
        expect_denied(lab.probe_inside("fd-read", str(fd), pass_fds=(fd,)), "EBADF")
    finally:
        os.close(fd)


def test_inherited_directory_fd_of_the_host_root(lab):
    """An fd to the host's / would let openat() walk around every mask."""
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    rel = str(lab.secret_file).lstrip("/")
    try:
        assert lab.token in expect_ok(probe_outside("openat-fd", str(fd), rel, pass_fds=(fd,)))
        expect_denied(lab.probe_inside("openat-fd", str(fd), rel, pass_fds=(fd,)), "EBADF")
    finally:
        os.close(fd)


def test_working_directory_inside_the_secret_directory(lab):
    """Started from within a masked directory, "." must not still be the host's directory."""
    assert lab.token in expect_ok(probe_outside("read", "cluster.key", cwd=lab.secret_dir))
    r = lab.inside(lab.probe, "read", "cluster.key", cwd=lab.secret_dir)
    if result(r) is None:
        assert r.returncode != 0, describe(r)  # refusing to start from there is fine
    else:
        expect_empty_or_denied(r, *MASK_ERRNOS)


def test_workspace_over_the_secrets_directory(lab):
    """--workspace (writable) on the directory that holds a secret must not unmask it."""
    assert lab.token in expect_ok(probe_outside("read", lab.secret_file))
    r = lab.probe_inside("read", lab.secret_file, workspace=lab.etc_dir)
    if result(r) is None:
        assert r.returncode != 0, describe(r)
    else:
        expect_empty_or_denied(r, *MASK_ERRNOS)


def test_rw_path_that_is_a_secret(lab):
    """--rw of the secret itself: refused, or the file stays masked."""
    r = lab.probe_inside("read", lab.secret_file, extra=["--rw", lab.secret_file])
    if result(r) is None:
        assert r.returncode != 0, describe(r)
    else:
        expect_empty_or_denied(r, *MASK_ERRNOS)


def test_ro_path_that_is_a_secret_directory(lab):
    r = lab.probe_inside("read", lab.secret_dir_file, extra=["--ro", lab.secret_dir])
    if result(r) is None:
        assert r.returncode != 0, describe(r)
    else:
        expect_empty_or_denied(r, *MASK_ERRNOS)


def wait_started(p):
    """Reads the inside script's "waiting" line: the sandbox is up and its masks are in place."""
    line = p.stdout.readline()
    assert "waiting" in line, f"the sandbox did not start: {line!r} {p.stderr.read() if p.poll() is not None else ''}"


def ended_or_masked(r, secret_paths, n_reads):
    """After a secret appeared on the host mid-session: either every read inside was empty or
    refused, or airlock ended the session (failing closed) and said which secret appeared."""
    lines = [l for l in r.stdout.splitlines() if l.startswith(("OK", "ERR"))]
    if len(lines) < n_reads:
        assert r.returncode != 0 and any(str(s) in r.stderr for s in secret_paths), \
            f"the inside reads did not happen, yet airlock did not say it ended the session:{describe(r)}"
        return "ended"
    for line in lines:
        assert line.startswith(("OK 0 ", "ERR ENOENT", "ERR EACCES", "ERR EPERM")) or line == "OK 0", \
            f"a secret that appeared after launch is readable inside: {line}{describe(r)}"
    return "masked"


def test_secret_created_after_launch(lab):
    """A secret that does not exist when the sandbox starts (corosync-keygen runs later, a user
    makes a new key): it must not become readable inside a running sandbox."""
    # both listed in the lab's policy (a literal name and a glob), neither exists at launch;
    # the directory and files are world-readable: only the sandbox can stop the agent
    late = lab.etc_dir / "late.key"
    late_glob = lab.etc_dir / "server.pem"
    late_in_dir = lab.secret_dir / "late.key"
    p = lab.start_inside("/bin/sh", "-c", lab.wait_for_go(
        f"{lab.probe} read {late}; {lab.probe} read {late_glob}; {lab.probe} read {late_in_dir}"))
    try:
        wait_started(p)
        for f in (late, late_glob, late_in_dir):
            f.write_text(lab.token + "\n")
            f.chmod(0o644)
        assert lab.token in expect_ok(probe_outside("read", late))
        # the agent reads a second later: this checks the wall, not the race (that is
        # test_secret_renamed_into_place_while_the_agent_polls)
        time.sleep(1)
        lab.ws("go").touch()
        ended_or_masked(lab.finish(p), (late, late_glob, late_in_dir), 3)
    finally:
        if p.poll() is None:
            p.kill()
        for f in (late, late_glob, late_in_dir, lab.ws("go")):
            f.unlink(missing_ok=True)


def test_secret_replaced_by_rename_after_launch(lab):
    """Key rotation the usual way (write a new file, rename it over the old one): a mask
    mounted on the old file must not leave the new one readable."""
    p = lab.start_inside("/bin/sh", "-c", lab.wait_for_go(f"{lab.probe} read {lab.secret_file}"))
    try:
        wait_started(p)
        new = lab.etc_dir / "authkey.new"
        new.write_text(lab.token + "-rotated\n")
        os.rename(new, lab.secret_file)
        assert lab.token in expect_ok(probe_outside("read", lab.secret_file))
        time.sleep(1)  # the wall, not the race (see the polling test below)
        lab.ws("go").touch()
        ended_or_masked(lab.finish(p), (lab.secret_file,), 1)
    finally:
        if p.poll() is None:
            p.kill()
        lab.ws("go").unlink(missing_ok=True)


def rename_into_place(path, text):
    """What key rotation and config tools do: write a new file beside, then rename it over."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.rename(tmp, path)


def race_a_polling_agent(lab, target, put_in_place, remove, attempts, what, extra=()):
    """The attacker does not wait politely: inside, the probe opens target in a tight loop and
    copies what it reads into the workspace, which outlives the session; outside,
    put_in_place() makes the key appear at once. One copy of the key in the workspace, in any
    attempt, is a leak."""
    loot = lab.ws("loot")
    try:
        for attempt in range(attempts):
            p = lab.start_inside(lab.probe, "poll-copy", target, loot, "2", extra=extra)
            try:
                assert "polling" in p.stdout.readline(), "the sandbox did not start"
                put_in_place()
                p.wait(20)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            assert not (loot.exists() and lab.token in loot.read_text()), \
                f"attempt {attempt + 1}: {what}"
            remove()
    finally:
        remove()
        loot.unlink(missing_ok=True)


def test_secret_renamed_into_place_while_the_agent_polls(lab):
    """The attacker does not wait politely: it opens the secret's name in a tight loop and copies
    what it reads into the workspace, which outlives the session. A rename puts the whole key in
    place at once, so ending the session afterwards comes too late. Up to 30 rotations; one
    copy in the workspace is a leak."""
    late = lab.etc_dir / "late.key"
    race_a_polling_agent(lab, late, lambda: rename_into_place(late, lab.token + "\n"),
                         lambda: late.unlink(missing_ok=True), 30,
                         "the agent copied a secret renamed into place into the workspace")


def test_open_guard_refuses_only_secrets_and_never_the_host(lab):
    """The other side of the open guard: a configuration file renamed into the same directory
    during the session reads normally inside, and host processes read both it and a new key
    at once while the sandbox runs (the guard marks only the sandbox's own mounts)."""
    conf = lab.etc_dir / "fresh.conf"
    late = lab.etc_dir / "late.key"
    p = lab.start_inside("/bin/sh", "-c", lab.wait_for_go(
        f"cat {conf}; echo cat=$?; {lab.probe} read {late}"))
    try:
        wait_started(p)
        rename_into_place(conf, "fresh-config-line\n")
        rename_into_place(late, lab.token + "\n")
        host = outside("cat", conf, late, timeout=10)
        assert host.returncode == 0 and "fresh-config-line" in host.stdout and lab.token in host.stdout, \
            f"a host process must read the region's files as before:{describe(host)}"
        lab.ws("go").touch()
        r = lab.finish(p)
        assert "fresh-config-line" in r.stdout and "cat=0" in r.stdout, \
            f"an ordinary file that appeared during the session must read inside:{describe(r)}"
        ended_or_masked(r, (late,), 1)
    finally:
        if p.poll() is None:
            p.kill()
        conf.unlink(missing_ok=True)
        late.unlink(missing_ok=True)
        lab.ws("go").unlink(missing_ok=True)


FAN_OPEN_PERM = 0x10000


def remembered_inodes(session):
    """The inodes the open guard of the `airlock run` whose session id is `session` remembers:
    its fanotify group's inode marks whose ignore mask holds FAN_OPEN_PERM (from the
    session helper's /proc/PID/fdinfo). Fails the test if no such group is found."""
    found, groups = set(), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[3]) != session:
                    continue
            fds = os.listdir(f"/proc/{pid}/fd")
        except (OSError, ValueError, IndexError):
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:[fanotify]":
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    info = f.read()
            except OSError:
                continue
            groups += 1
            for line in info.splitlines():
                fields = dict(kv.split(":", 1) for kv in line.split()[1:] if ":" in kv)
                if line.startswith("fanotify ino:") and \
                        int(fields.get("ignored_mask", "0"), 16) & FAN_OPEN_PERM:
                    found.add(int(fields["ino"], 16))
    assert groups, f"no open guard (fanotify group) found in session {session}"
    return found


def in_two_steps(lab, first, then):
    """An inside script: once ws/go exists, run `first` and make ws/step1; once ws/go2 exists,
    run `then`. Returns (script, step1, go2)."""
    step1, go2 = lab.ws("step1"), lab.ws("go2")
    return (lab.wait_for_go(
        f"{first}; touch {step1}; "
        f"i=0; while [ ! -e {go2} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; {then}"),
        step1, go2)


def wait_for_file(path, p, timeout=20):
    """Waits until the agent (start_inside() process p) has made path in the workspace."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert p.poll() is None, f"the sandbox ended early: {p.stdout.read()} {p.stderr.read()}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_remembered_file_is_asked_about_again_once_it_changes(lab):
    """The open guard remembers a file the agent has opened (an ignore mark on its inode) so
    that the next opens of it do not wait for the helper. Remembering must not outlive a
    change: a key written into a file the agent read earlier, then renamed into a secret's
    place, is refused. The home is made during the session, so no mask and no watch cover
    it: only the guard stands there. Outside, the key reads."""
    if not pathlib.Path("/home").is_dir():
        pytest.skip("this machine has no /home")
    home = pathlib.Path("/home") / (lab.tag + "-mem")
    notes = home / ".ssh" / "notes.txt"
    key = home / ".ssh" / "id_ed25519"
    script, read1, go2 = in_two_steps(lab, f"cat {notes}; cat {notes} >/dev/null",
                                      f"{lab.probe} read {key}")
    p = lab.start_inside("/bin/sh", "-c", script)
    try:
        wait_started(p)
        notes.parent.mkdir(parents=True, mode=0o755)
        home.chmod(0o755)
        notes.write_text("plain notes\n")
        notes.chmod(0o644)
        lab.ws("go").touch()
        wait_for_file(read1, p)
        ino = notes.stat().st_ino
        assert ino in remembered_inodes(p.pid), \
            "the agent opened a file everyone reads in a guarded directory: the guard remembers it"
        with open(notes, "w") as f:  # the key written into the same file: its inode changes content
            f.write(lab.token + "\n")
        os.rename(notes, key)
        assert ino not in remembered_inodes(p.pid), "a write must clear the remembered file"
        assert lab.token in expect_ok(probe_outside("read", key))
        go2.touch()
        r = lab.finish(p)
        assert "plain notes" in r.stdout, f"the file read before its change:{describe(r)}"
        expect_denied(r, "EPERM")
    finally:
        if p.poll() is None:
            p.kill()
        shutil.rmtree(home, ignore_errors=True)
        for f in (lab.ws("go"), read1, go2):
            f.unlink(missing_ok=True)


def posix_acl(*entries):
    """A system.posix_acl_access value: (tag, perm, id) entries after the version header."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def test_open_guard_remembers_only_files_everyone_reads(lab):
    """A file is remembered only while everyone may read it, so that an open it lets through
    could have been made anyway: a file only its owner (here the agent) reads, and one whose
    ACL names a user, are asked about at every open; a 0644 file beside them is remembered.
    And when a remembered file becomes a secret (renamed, unchanged, to a watched secret's
    name), the watcher masks it and forgets it: its other name is refused from then on."""
    agent = pwd.getpwnam("airlock-agent")
    everyone = lab.etc_dir / "everyone.conf"
    own = lab.etc_dir / "agent-only.conf"
    acl = lab.etc_dir / "acl.conf"
    plain = lab.etc_dir / "plain.conf"
    late, alias = lab.etc_dir / "late.key", lab.etc_dir / "alias.conf"
    for f in (everyone, own, acl, plain):
        f.write_text("conf\n")
        f.chmod(0o644)
    os.chown(own, agent.pw_uid, agent.pw_gid)
    own.chmod(0o600)
    nobody = pwd.getpwnam("nobody").pw_uid
    try:
        os.setxattr(acl, "system.posix_acl_access",
                    posix_acl((0x01, 6, 0xffffffff), (0x02, 4, nobody), (0x04, 4, 0xffffffff),
                              (0x10, 4, 0xffffffff), (0x20, 4, 0xffffffff)))
    except OSError as e:
        pytest.skip(f"this file system takes no POSIX ACL: {e}")
    script, read1, go2 = in_two_steps(lab, f"cat {everyone} {own} {acl} {plain} >/dev/null; "
                                      "echo cat=$?", f"{lab.probe} read {alias}")
    p = lab.start_inside("/bin/sh", "-c", script)
    try:
        wait_started(p)
        lab.ws("go").touch()
        wait_for_file(read1, p)
        remembered = remembered_inodes(p.pid)
        assert everyone.stat().st_ino in remembered and plain.stat().st_ino in remembered
        assert own.stat().st_ino not in remembered, "a file only the agent reads is not remembered"
        assert acl.stat().st_ino not in remembered, "a file with an ACL is not remembered"
        os.link(plain, alias)
        os.rename(plain, late)  # unchanged; the watcher masks the new secret
        deadline = time.monotonic() + 10
        while late.stat().st_ino in remembered_inodes(p.pid):
            assert time.monotonic() < deadline, "the watcher did not forget the new secret's file"
            time.sleep(0.05)
        assert "conf" in expect_ok(probe_outside("read", alias))
        go2.touch()
        r = lab.finish(p)
        assert "cat=0" in r.stdout, f"the agent reads all four files:{describe(r)}"
        expect_denied(r, "EPERM")
    finally:
        if p.poll() is None:
            p.kill()
        for f in (everyone, own, acl, plain, late, alias, lab.ws("go"), read1, go2):
            f.unlink(missing_ok=True)


def test_hard_link_to_a_secret_made_during_the_session(lab):
    """A launch refuses a secret with a second name; during the session the host can still make
    one (a backup's `cp -al /etc`, rsnapshot). Under an innocent name no glob matches, the open
    guard still refuses it: it knows the secrets' files by inode."""
    alias = lab.etc_dir / "innocent.txt"
    # and a file beneath a masked secret directory, linked out of it
    alias2 = lab.etc_dir / "innocent2.txt"
    p = lab.start_inside("/bin/sh", "-c", lab.wait_for_go(
        f"{lab.probe} read {alias}; {lab.probe} reopen {alias}; {lab.probe} read {alias2}; "
        "cat /etc/hostname >/dev/null; echo host=$?"))
    try:
        wait_started(p)
        os.link(lab.secret_file, alias)
        os.link(lab.secret_dir_file, alias2)
        assert lab.token in expect_ok(probe_outside("read", alias)), "outside, the new name reads the key"
        assert lab.token in expect_ok(probe_outside("reopen", alias)), "and so does an O_PATH reopen"
        assert lab.token in expect_ok(probe_outside("read", alias2))
        lab.ws("go").touch()
        r = lab.finish(p)
        assert "host=0" in r.stdout, f"ordinary files must still read:{describe(r)}"
        lines = [l for l in r.stdout.splitlines() if l.startswith(("OK", "ERR"))]
        assert len(lines) == 3 and all(l.startswith("ERR EPERM") for l in lines), \
            f"the new names must be refused, opened directly or through an O_PATH handle:{describe(r)}"
    finally:
        if p.poll() is None:
            p.kill()
        alias.unlink(missing_ok=True)
        alias2.unlink(missing_ok=True)
        lab.ws("go").unlink(missing_ok=True)


def test_key_in_a_home_made_during_the_session(lab):
    """`useradd -m` while the agent runs, then a key in the new home: that home was in no list
    when the sandbox started (no mask, no watch). The open guard judges "~/.ssh/id_*" beneath
    any directory and /home is guarded, so the key is refused inside; outside it reads."""
    if not pathlib.Path("/home").is_dir():
        pytest.skip("this machine has no /home")
    home = pathlib.Path("/home") / (lab.tag + "-new")
    key = home / ".ssh" / "id_ed25519"
    p = lab.start_inside("/bin/sh", "-c", lab.wait_for_go(f"{lab.probe} read {key}"))
    try:
        wait_started(p)
        key.parent.mkdir(parents=True, mode=0o755)
        home.chmod(0o755)
        key.write_text(lab.token + "\n")
        key.chmod(0o644)
        assert lab.token in expect_ok(probe_outside("read", key))
        lab.ws("go").touch()
        r = lab.finish(p)
        expect_denied(r, "EPERM")
    finally:
        if p.poll() is None:
            p.kill()
        shutil.rmtree(home, ignore_errors=True)
        lab.ws("go").unlink(missing_ok=True)


def test_home_behind_a_symlink(lab):
    """Homes moved to a bigger disk leave /home/u as a symlink. Such a home is known by its real
    path: it cannot be the workspace, and a key that appears in it during the session is
    refused (before, its watch failed on the symlink and the guard skipped it)."""
    real = pathlib.Path("/opt") / (lab.tag + "-realhome")
    link = pathlib.Path("/home") / (lab.tag + "-ln")
    user = "alh" + lab.tag[-8:]
    key = link / ".ssh" / "id_ed25519"
    real.mkdir(parents=True, mode=0o755)
    link.symlink_to(real)
    subprocess.run(["useradd", "-M", "-d", str(link), "-s", "/usr/sbin/nologin", user], check=True,
                   capture_output=True)
    try:
        p = lab.start_inside("/bin/sh", "-c", lab.wait_for_go(f"{lab.probe} read {key}"))
        try:
            wait_started(p)
            (real / ".ssh").mkdir(mode=0o755)
            (real / ".ssh" / "id_ed25519").write_text(lab.token + "\n")
            (real / ".ssh" / "id_ed25519").chmod(0o644)
            assert lab.token in expect_ok(probe_outside("read", key))
            lab.ws("go").touch()
            ended_or_masked(lab.finish(p), (real, key), 1)
        finally:
            if p.poll() is None:
                p.kill()
            lab.ws("go").unlink(missing_ok=True)
        # (the link itself is refused as a path through a symlink; the real path, as a home)
        r = lab.inside("/bin/true", workspace=real)
        assert r.returncode == 64 and "is a home directory" in r.stderr, describe(r)
    finally:
        subprocess.run(["userdel", user], capture_output=True)
        link.unlink(missing_ok=True)
        shutil.rmtree(real, ignore_errors=True)


def test_secret_renamed_into_a_read_only_bind_while_the_agent_polls(lab):
    """--ro binds a host directory over its own place: the open guard's mark then sits on that
    bind, so a key renamed into it is refused just the same."""
    late = lab.etc_dir / "late.key"
    race_a_polling_agent(lab, late, lambda: rename_into_place(late, lab.token + "\n"),
                         lambda: late.unlink(missing_ok=True), 5,
                         "the agent copied a key renamed into a --ro bind",
                         extra=["--ro", lab.etc_dir])


def test_secret_directory_renamed_into_place_while_the_agent_polls(lab):
    """The directory on the way to a secret does not exist at launch; a whole tree with the key
    in it is renamed into place at once (`mv staged deep`). The watcher ends the session when
    it sees the directory, but a polling agent is faster: only refusing the open holds."""
    deep = lab.srv_dir / "deep"
    staged = lab.srv_dir / "staged"
    key = deep / "conf" / "app.key"

    def put_in_place():
        (staged / "conf").mkdir(parents=True)
        (staged / "conf" / "app.key").write_text(lab.token + "\n")
        (staged / "conf" / "app.key").chmod(0o644)
        os.rename(staged, deep)
        assert lab.token in key.read_text(), "outside, the key is in place and readable"

    def remove():
        shutil.rmtree(deep, ignore_errors=True)
        shutil.rmtree(staged, ignore_errors=True)

    race_a_polling_agent(lab, key, put_in_place, remove, 10,
                         "the agent copied a key from a directory renamed into place")


def test_secret_directory_replaced_after_launch(lab):
    """Configuration tools replace whole directories (mv conf conf.old; mkdir conf; write):
    the mask sits on the old file and the watch on the old directory, so the new key in the
    new directory is neither masked nor noticed."""
    old = lab.etc_dir.with_name(lab.etc_dir.name + ".old")
    p = lab.start_inside("/bin/sh", "-c", lab.wait_for_go(f"{lab.probe} read {lab.secret_file}"))
    try:
        wait_started(p)
        os.rename(lab.etc_dir, old)
        lab.etc_dir.mkdir(mode=0o755)
        lab.secret_file.write_text(lab.token + "-new\n")
        lab.secret_file.chmod(0o644)
        assert lab.token in expect_ok(probe_outside("read", lab.secret_file))
        time.sleep(1)
        lab.ws("go").touch()
        ended_or_masked(lab.finish(p), (lab.secret_file, lab.etc_dir), 1)
    finally:
        if p.poll() is None:
            p.kill()
        lab.ws("go").unlink(missing_ok=True)
        shutil.rmtree(old, ignore_errors=True)


def test_secret_ancestor_directory_replaced_after_launch(lab):
    """Like the directory swap, one level higher: `mv deep deep.old; mkdir -p deep/conf` and a
    new key. Watching the secret's own directory is not enough; every ancestor can move."""
    deep = lab.srv_dir / "deep"
    key = deep / "conf" / "app.key"
    key.parent.mkdir(parents=True)
    key.write_text("old\n")
    key.chmod(0o644)
    old = lab.srv_dir / "deep.old"
    p = lab.start_inside("/bin/sh", "-c", lab.wait_for_go(f"{lab.probe} read {key}"))
    try:
        wait_started(p)
        os.rename(deep, old)
        key.parent.mkdir(parents=True)
        key.write_text(lab.token + "-ancestor\n")
        key.chmod(0o644)
        assert lab.token in expect_ok(probe_outside("read", key))
        time.sleep(1)
        lab.ws("go").touch()
        ended_or_masked(lab.finish(p), (key, deep), 1)
    finally:
        if p.poll() is None:
            p.kill()
        lab.ws("go").unlink(missing_ok=True)
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(deep, ignore_errors=True)


def test_secret_through_another_mount_of_the_same_filesystem(lab):
    """The host shows the secret's filesystem at a second place (a bind mount, as container
    hosts and backup tools make): masking by path alone leaves that copy open."""
    alias = lab.hostfile("etc-alias")
    alias.mkdir()
    subprocess.run(["mount", "--bind", str(lab.etc_dir), str(alias)], check=True)
    try:
        assert lab.token in expect_ok(probe_outside("read", alias / "authkey"))
        r = lab.probe_inside("read", alias / "authkey")
        if result(r) is None:
            assert r.returncode != 0 and r.stderr, describe(r)  # refusing to start is fine
        else:
            expect_empty_or_denied(r, *MASK_ERRNOS)
    finally:
        subprocess.run(["umount", "-l", str(alias)])
        alias.rmdir()


def test_incident_key_with_the_default_policy(lab):
    """The issue's "done when": `airlock run --agent demo` with the standard policy (the
    embedded default, or /etc/airlock/policy.yaml where installed), reading
    /etc/corosync/authkey. The key is made world-readable here so that only the mask stands
    between the agent and it (a real key is 0400: the agent's uid is a second wall)."""
    key = pathlib.Path("/etc/corosync/authkey")
    if not key.parent.is_dir():
        pytest.skip("corosync is not installed (no /etc/corosync)")
    standard = pathlib.Path("/etc/airlock/policy.yaml")
    if standard.exists() and str(key) not in standard.read_text():
        pytest.skip(f"{standard} (this machine's standard policy) does not list {key}")
    created = not key.exists()
    if created:
        key.write_text(lab.token + "\n")
        key.chmod(0o644)
    try:
        content = key.read_bytes()
        assert content, "the key exists outside and is readable"
        r = lab.inside(lab.probe, "read", key, policy=False, extra=["--agent", "demo"])
        expect_empty_or_denied(r, *MASK_ERRNOS)
        assert content.decode(errors="replace").strip()[:40] not in r.stdout
        r = lab.sh_inside(f"cat {key} | od -c | head -3; cp {key} /tmp/k && wc -c < /tmp/k",
                          policy=False, extra=["--agent", "demo"])
        assert r.stdout.strip().splitlines()[-1:] in (["0"], []), describe(r)
    finally:
        if created:
            key.unlink(missing_ok=True)


def test_started_by_an_ordinary_user_their_own_secret(lab):
    """Started by an ordinary user, the agent keeps that user's uid: the user's own secrets are
    readable to that uid outside, so here the mask is the only wall."""
    import pwd
    nobody = pwd.getpwnam("nobody")
    home = lab.hostfile("nobody-home")
    ws = lab.hostfile("nobody-ws")
    for d in (home, ws):
        d.mkdir(mode=0o700)
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
    key = home / "id_ed25519"
    key.write_text(lab.token + "\n")
    os.chown(key, nobody.pw_uid, nobody.pw_gid)
    key.chmod(0o600)
    policy = lab.hostfile("nobody-policy.yaml")
    policy.write_text(f"version: 1\nsecrets:\n  - {key}\n")
    policy.chmod(0o644)
    out = outside(PROBE, "read", key, user="nobody")
    assert lab.token in expect_ok(out)
    r = outside(str(lab.airlock), "run", "--workspace", ws, "--", lab.probe, "read", key, user="nobody",
                env={"AIRLOCK_POLICY": str(policy), "HOME": str(home)}, cwd=ws)
    assert lab.token not in r.stdout + r.stderr, f"SECRET LEAKED inside the sandbox:{describe(r)}"
    expect_empty_or_denied(r, *MASK_ERRNOS)
    r = outside(str(lab.airlock), "run", "--workspace", ws, "--", lab.probe, "ids", user="nobody",
                env={"AIRLOCK_POLICY": str(policy), "HOME": str(home)}, cwd=ws)
    assert f"uid={nobody.pw_uid} " in expect_ok(r, what="the agent's ids inside"), describe(r)
