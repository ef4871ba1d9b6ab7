"""Functional tests of `airlock run`: identity, exit status, signals,
environment, workspace, --ro/--rw, --explain, error lines, cleanup.

Each security claim is shown both ways: the thing works (or exists)
outside the sandbox and fails inside. The escape corpus (test_escape_*.py)
attacks the sandbox; these tests pin its ordinary behaviour.
"""
import os
import pathlib
import pwd
import shutil
import tempfile
import signal
import subprocess
import time

import pytest

from conftest import AIRLOCK

ROOT = os.geteuid() == 0


@pytest.fixture
def env(tmp_path):
    """A workspace, a secret outside it, and a policy naming the secret."""
    ws = tmp_path / "ws"
    ws.mkdir()
    # Secrets live outside /tmp: the sandbox's own /tmp would hide them anyway.
    secrets = pathlib.Path(tempfile.mkdtemp(prefix="airlock-sbx-test-", dir="/var/lib"))
    os.chmod(secrets, 0o755)
    key = secrets / "authkey"
    key.write_text("TOPSECRET\n")
    sdir = secrets / "private"
    sdir.mkdir()
    (sdir / "ca.key").write_text("CAKEY\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        "secrets:\n"
        f"  - {key}\n"
        f"  - {sdir}/**\n"
        "profiles:\n"
        "  default: {net: none}\n"
        "  web: {net: host, ports: [443]}\n"
        "protect:\n"
        "  - .git/hooks/**\n"
        "  - .bashrc\n"
    )
    # The agent user must be able to reach the test's files (pytest's tmp is 0700).
    for p in [tmp_path, *tmp_path.parents]:
        if str(p) in ("/", "/tmp"):
            continue
        os.chmod(p, os.stat(p).st_mode | 0o055)
    yield {"ws": ws, "key": key, "sdir": sdir, "policy": policy, "tmp": tmp_path,
           "secrets": secrets}
    shutil.rmtree(secrets, ignore_errors=True)


def run(env, *cmd, args=(), timeout=60, **kw):
    full = [str(AIRLOCK), "run", "--policy", str(env["policy"]),
            "--workspace", str(env["ws"]), *args, "--", *cmd]
    e = dict(os.environ)
    e.pop("AIRLOCK_POLICY", None)
    e.update(kw.pop("extra_env", {}))
    return subprocess.run(full, capture_output=True, text=True, timeout=timeout, env=e,
                          **kw)


def one_error_line(r):
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("airlock: run: "), lines[0]
    return lines[0]


# ---- identity -------------------------------------------------------------------------

def test_runs_the_command_and_passes_stdout(env):
    r = run(env, "echo", "hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\n"


@pytest.mark.skipif(not ROOT, reason="the agent user is used only when started by root")
def test_root_start_runs_as_the_agent_user_never_uid_0(env):
    agent = pwd.getpwnam("airlock-agent")
    r = run(env, "sh", "-c", "id -u; id -g; grep -E '^(Uid|Gid):' /proc/self/status")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == str(agent.pw_uid) and lines[0] != "0"
    # Seen from the host, the agent's process is not uid 0 either.
    marker = f"airlock-id-{os.getpid()}"
    p = subprocess.Popen([str(AIRLOCK), "run", "--policy", str(env["policy"]),
                          "--workspace", str(env["ws"]), "--", "bash", "-c",
                          f"exec -a {marker} sleep 30"])
    try:
        host_uids = set()
        deadline = time.time() + 10
        while time.time() < deadline and not host_uids:
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
                    st = pathlib.Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                if cmd.split(b"\0")[0] == marker.encode():
                    uid = [l for l in st.splitlines() if l.startswith("Uid:")][0].split()[1:]
                    host_uids.update(uid)
            time.sleep(0.05)
        assert host_uids, "the agent's sleep was not found from the host"
        assert "0" not in host_uids
        assert host_uids == {str(agent.pw_uid)}
    finally:
        p.terminate()
        p.wait(10)


def test_agent_name_and_session_id_are_exported(env):
    r = run(env, "sh", "-c", 'echo "$AIRLOCK_AGENT $AIRLOCK_SESSION_ID"',
            args=("--agent", "demo"))
    agent, sid = r.stdout.split()
    assert agent == "demo"
    assert len(sid) == 32 and all(c in "0123456789abcdef" for c in sid)
    r2 = run(env, "sh", "-c", 'echo "$AIRLOCK_SESSION_ID"')
    assert r2.stdout.strip() != sid  # a new session each time


def test_no_capabilities_no_new_privs_seccomp(env):
    r = run(env, "grep", "-E", "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):",
            "/proc/self/status")
    fields = dict(l.split(":\t") for l in r.stdout.splitlines())
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert fields[cap] == "0000000000000000", (cap, fields)
    assert fields["NoNewPrivs"] == "1" and fields["Seccomp"] == "2"
    # Outside, this test process has a bounding set (both sides shown).
    own = pathlib.Path("/proc/self/status").read_text()
    assert "CapBnd:\t0000000000000000" not in own


# ---- exit status and signals ----------------------------------------------------------

@pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
def test_exit_status_is_the_commands(env, code):
    assert run(env, "sh", "-c", f"exit {code}").returncode == code


def test_killed_by_a_signal_gives_128_plus_n(env):
    assert run(env, "sh", "-c", "kill -TERM $$").returncode == 128 + signal.SIGTERM
    assert run(env, "sh", "-c", "kill -KILL $$").returncode == 128 + signal.SIGKILL


def test_signals_are_forwarded(env):
    marker = env["ws"] / "got"
    p = subprocess.Popen([str(AIRLOCK), "run", "--policy", str(env["policy"]),
                          "--workspace", str(env["ws"]), "--", "sh", "-c",
                          f"trap 'echo usr1 >> {marker}' USR1; "
                          f"trap 'echo term >> {marker}; exit 7' TERM; "
                          f"echo ready >> {marker}; while :; do sleep 0.05; done"],
                         stderr=subprocess.PIPE, text=True)
    def wait_for(word):
        deadline = time.time() + 30
        while time.time() < deadline and not (marker.exists() and word in marker.read_text()):
            time.sleep(0.02)
        assert marker.exists() and word in marker.read_text().split(), (word, p.poll())

    try:
        wait_for("ready")
        p.send_signal(signal.SIGUSR1)
        wait_for("usr1")  # forwarded and handled before TERM is sent
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 7
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert marker.read_text().split() == ["ready", "usr1", "term"]


def test_command_not_found_is_one_line_and_127(env):
    r = run(env, "no-such-command-airlock")
    assert r.returncode == 127
    line = one_error_line(r)
    assert "no-such-command-airlock" in line


# ---- environment and fds --------------------------------------------------------------

def test_environment_is_reduced_to_the_allowlist(env):
    r = run(env, "env", extra_env={"SSH_AUTH_SOCK": "/tmp/agent.sock",
                                    "GITHUB_TOKEN": "ghp_x", "LANG": "C.UTF-8",
                                    "LC_TIME": "C", "TERM": "dumb"})
    names = {l.split("=", 1)[0] for l in r.stdout.splitlines()}
    assert "SSH_AUTH_SOCK" not in names and "GITHUB_TOKEN" not in names
    assert {"LANG", "LC_TIME", "TERM", "PATH", "HOME", "AIRLOCK_AGENT",
            "AIRLOCK_SESSION_ID"} <= names
    assert names <= {"LANG", "LC_TIME", "TERM", "PATH", "HOME", "AIRLOCK_AGENT",
                     "AIRLOCK_SESSION_ID", "TZ", "COLORTERM", "PWD", "SHLVL", "_"}, names


def test_fds_above_2_are_closed(env):
    rfd, wfd = os.pipe()
    os.set_inheritable(wfd, True)
    try:
        r = run(env, "sh", "-c", "ls /proc/self/fd", pass_fds=(wfd,))
    finally:
        os.close(rfd)
        os.close(wfd)
    fds = sorted(int(x) for x in r.stdout.split())
    assert fds[:3] == [0, 1, 2]
    assert str(wfd) not in r.stdout.split()[:3] and all(fd <= 3 for fd in fds), fds


def test_stdin_is_passed_through_when_not_a_terminal(env):
    r = run(env, "cat", input="from stdin\n")
    assert r.stdout == "from stdin\n"


# ---- filesystem -----------------------------------------------------------------------

def test_workspace_is_writable_and_files_belong_to_its_owner(env):
    r = run(env, "sh", "-c", "echo data > new.txt && pwd")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(env["ws"])
    f = env["ws"] / "new.txt"
    assert f.read_text() == "data\n"
    # On disk the file is the workspace owner's, not the agent's (idmapped).
    assert os.stat(f).st_uid == os.stat(env["ws"]).st_uid


def test_host_is_read_only_outside_the_workspace(env):
    outside = env["tmp"] / "outside.txt"
    outside.write_text("x")
    r = run(env, "sh", "-c", f"echo y > {outside}; echo y > /etc/airlock-test; "
                             "mkdir /usr/airlock-test; echo rc=$?")
    assert "rc=0" not in r.stdout and r.stdout.count("rc=") == 1
    assert outside.read_text() == "x"
    assert not os.path.exists("/etc/airlock-test") and not os.path.exists("/usr/airlock-test")


def test_setuid_bits_cannot_be_planted_in_the_workspace(env):
    r = run(env, "sh", "-c", "touch f && chmod 4755 f; echo rc=$?; stat -c %a f")
    assert "rc=1" in r.stdout
    assert (os.stat(env["ws"] / "f").st_mode & 0o6000) == 0
    # Outside, the same chmod works (the bit itself is a normal thing to set).
    g = env["ws"] / "g"
    g.touch()
    os.chmod(g, 0o4755)
    assert os.stat(g).st_mode & 0o4000


def test_secrets_read_as_empty(env):
    assert env["key"].read_text() == "TOPSECRET\n"
    r = run(env, "sh", "-c", f"cat {env['key']}; echo; ls -A {env['sdir']}; echo end")
    assert "TOPSECRET" not in r.stdout and "ca.key" not in r.stdout
    assert r.stdout.strip() == "end"


def test_tmp_and_run_are_private_and_empty(env, tmp_path):
    hostfile = pathlib.Path("/tmp") / f"airlock-sbx-test-{os.getpid()}"
    hostfile.write_text("host")
    try:
        r = run(env, "sh", "-c", f"ls -A /run; cat {hostfile} 2>&1; echo x > /tmp/mine && cat /tmp/mine")
        assert "host" not in r.stdout
        assert "No such file" in r.stdout
        assert r.stdout.strip().endswith("x")
    finally:
        hostfile.unlink()
    assert not (pathlib.Path("/tmp") / "mine").exists()


def test_minimal_dev(env):
    r = run(env, "sh", "-c", "ls /dev")
    names = set(r.stdout.split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm"} <= names
    assert not names & {"mem", "kmsg", "sda", "vda", "nvme0n1", "loop0", "port"}
    assert os.path.exists("/dev/kmsg")  # the host has it


def test_rw_and_ro_flags(env, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    os.chmod(extra, 0o777)
    r = run(env, "sh", "-c", f"echo a > {extra}/a; echo rc=$?", args=("--rw", str(extra)))
    assert "rc=0" in r.stdout and (extra / "a").read_text() == "a\n"
    sub = env["ws"] / "docs"
    sub.mkdir()
    r = run(env, "sh", "-c", f"echo b > {sub}/b; echo rc=$?", args=("--ro", str(sub)))
    assert "rc=0" not in r.stdout and "rc=" in r.stdout and not (sub / "b").exists()


def test_protected_workspace_files_are_read_only(env):
    hooks = env["ws"] / ".git" / "hooks"
    hooks.mkdir(parents=True)
    (env["ws"] / ".bashrc").write_text("# rc\n")
    r = run(env, "sh", "-c", "echo evil > .git/hooks/pre-commit; echo rc1=$?; "
                             "echo evil >> .bashrc; echo rc2=$?; "
                             "mv .git .git-old; echo rc3=$?; echo ok > normal; echo rc4=$?")
    assert "rc1=0" not in r.stdout and "rc2=0" not in r.stdout and "rc3=0" not in r.stdout
    assert "rc4=0" in r.stdout and "rc1=" in r.stdout
    assert not (hooks / "pre-commit").exists()
    assert (env["ws"] / ".bashrc").read_text() == "# rc\n"


def test_missing_protected_names_cannot_be_created_and_leave_nothing(env):
    assert sorted(os.listdir(env["ws"])) == []
    r = run(env, "sh", "-c", "echo x > .bashrc; echo rc1=$?; mkdir -p .git/hooks; "
                             "echo evil > .git/hooks/pre-commit; echo rc2=$?; ls -A")
    assert "rc1=0" not in r.stdout and "rc2=0" not in r.stdout and "rc1=" in r.stdout
    # The placeholders are removed before airlock returns.
    assert sorted(os.listdir(env["ws"])) == []
    # Outside, the same names can be created (the other side).
    (env["ws"] / ".bashrc").write_text("x")
    assert (env["ws"] / ".bashrc").exists()


def test_placeholders_are_removed_even_when_airlock_is_killed(env):
    p = subprocess.Popen([str(AIRLOCK), "run", "--policy", str(env["policy"]), "--workspace",
                          str(env["ws"]), "--", "sh", "-c", "echo up; exec sleep 30"],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "up\n"
    assert (env["ws"] / ".bashrc").exists()  # the placeholder, during the session
    p.kill()
    p.wait(10)
    deadline = time.time() + 30
    while time.time() < deadline and os.listdir(env["ws"]):
        time.sleep(0.02)
    assert os.listdir(env["ws"]) == []


def test_placeholders_left_by_a_killed_launch_are_removed_next_time(env):
    bashrc = env["ws"] / ".bashrc"
    bashrc.touch()
    os.setxattr(bashrc, "user.airlock.placeholder", b"1")  # as a killed launch leaves it
    (env["ws"] / ".envrc").write_text("the human's\n")  # not a placeholder: stays
    r = run(env, "true")
    assert r.returncode == 0, r.stderr
    assert not bashrc.exists()
    assert (env["ws"] / ".envrc").read_text() == "the human's\n"


def test_placeholders_never_follow_symlinks(env, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    os.symlink(target, env["ws"] / ".git")
    r = run(env, "true")
    assert r.returncode == 0, r.stderr
    assert os.listdir(target) == []  # no hooks/ created through the symlink


def test_workspace_through_a_symlink_is_refused(env, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(env["ws"])
    r = subprocess.run([str(AIRLOCK), "run", "--policy", str(env["policy"]),
                        "--workspace", str(link), "--", "true"], capture_output=True, text=True)
    assert r.returncode == 64
    assert "symlink" in one_error_line(r)


def test_home_or_root_as_workspace_is_refused(env):
    for ws in ("/", "/etc", "/root"):
        r = subprocess.run([str(AIRLOCK), "run", "--policy", str(env["policy"]),
                            "--workspace", ws, "--", "true"], capture_output=True, text=True)
        assert r.returncode == 64, (ws, r.stderr)
        one_error_line(r)


@pytest.mark.skipif(not ROOT, reason="creating a user with a home of its own needs root")
@pytest.mark.parametrize("entries", [0, 3000], ids=["small-home", "large-home"])
def test_home_secrets_are_masked_in_small_and_large_homes(env, entries):
    """"~/" secrets are looked up in each home from one listing of it when the
    home is small, by a glob per secret when it is large: masked either way,
    including below a directory (~/.config/...) and through a wildcard."""
    name = f"airlock-t-home{os.getpid() % 10000}"
    home = pathlib.Path(tempfile.mkdtemp(prefix="airlock-sbx-home-", dir="/var/lib"))
    os.chmod(home, 0o755)
    for i in range(entries):  # a home whose listing is too large to read in one go
        (home / f"f{i:05d}-{'x' * 40}").touch()
    (home / ".netrc-test").write_text("NETRC-SECRET\n")
    (home / ".config" / "tool").mkdir(parents=True)
    (home / ".config" / "tool" / "token").write_text("TOKEN-SECRET\n")
    (home / ".keys").mkdir()
    (home / ".keys" / "id_test").write_text("KEY-SECRET\n")
    for f in (home / ".netrc-test", home / ".config/tool/token", home / ".keys/id_test"):
        os.chmod(f, 0o644)
    for d in (home / ".config", home / ".config/tool", home / ".keys"):
        os.chmod(d, 0o755)
    policy = env["tmp"] / "home-policy.yaml"
    policy.write_text("version: 1\nsecrets:\n  - ~/.netrc-test\n  - ~/.config/tool/token\n"
                      "  - ~/.k*/id_*\n  - ~/.not-there/x\nprofiles:\n  default: {net: none}\n")
    subprocess.run(["useradd", "--system", "-M", "-d", str(home), "-s", "/usr/sbin/nologin",
                    name], check=True)
    try:
        if entries:
            assert home.stat().st_size > 16 * 1024  # really the large-directory path
        files = [home / ".netrc-test", home / ".config/tool/token", home / ".keys/id_test"]
        outside = subprocess.run(["cat", *map(str, files)], capture_output=True, text=True)
        assert outside.stdout.split() == ["NETRC-SECRET", "TOKEN-SECRET", "KEY-SECRET"]
        r = subprocess.run([str(AIRLOCK), "run", "--policy", str(policy), "--workspace",
                            str(env["ws"]), "--", "cat", *map(str, files)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "", r.stdout  # all three read as empty files
    finally:
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(home, ignore_errors=True)


# ---- network --------------------------------------------------------------------------

def test_net_none_has_only_loopback(env):
    r = run(env, "cat", "/proc/net/dev")
    ifaces = {l.split(":")[0].strip() for l in r.stdout.splitlines()[2:]}
    assert ifaces == {"lo"}
    host = {l.split(":")[0].strip() for l in pathlib.Path("/proc/net/dev").read_text().splitlines()[2:]}
    assert host - {"lo"}, "the host has more interfaces than loopback"


def test_net_host_refuses_udp(env):
    code = ("import socket\n"
            "try:\n socket.socket(socket.AF_INET, socket.SOCK_DGRAM); print('udp ok')\n"
            "except OSError as e: print('udp', e.errno)\n")
    r = run(env, "python3", "-c", code, args=("--profile", "web"))
    assert "udp 1" in r.stdout, r.stdout + r.stderr
    r = run(env, "python3", "-c", code)
    assert "udp ok" in r.stdout  # net none: its own namespace, UDP is harmless there


# ---- --explain ------------------------------------------------------------------------

def test_explain_prints_the_layers_and_starts_nothing(env):
    marker = env["ws"] / "ran"
    r = run(env, "touch", str(marker), args=("--explain",))
    assert r.returncode == 0, r.stderr
    for word in ("identity", "namespaces", "secrets", "landlock", "seccomp", "limits",
                 "not covered", str(env["key"])):
        assert word in r.stdout, word
    assert not marker.exists()


# ---- errors: one clear line, exit code, nothing started -------------------------------

def test_bad_flag(env):
    r = run(env, "true", args=("--no-such-flag",))
    assert r.returncode == 64
    one_error_line(r)


def test_no_command(env):
    r = subprocess.run([str(AIRLOCK), "run", "--policy", str(env["policy"])],
                       capture_output=True, text=True)
    assert r.returncode == 64
    assert "no command" in one_error_line(r)


def test_unknown_profile(env):
    r = run(env, "true", args=("--profile", "nope"))
    assert r.returncode == 64
    line = one_error_line(r)
    assert "nope" in line and "default" in line


def test_missing_workspace(env, tmp_path):
    r = subprocess.run([str(AIRLOCK), "run", "--policy", str(env["policy"]),
                        "--workspace", str(tmp_path / "missing"), "--", "true"],
                       capture_output=True, text=True)
    assert r.returncode == 64
    assert "missing" in one_error_line(r)


def test_bad_net_mode(env):
    r = run(env, "true", args=("--net", "bridge"))
    assert r.returncode == 64
    one_error_line(r)


def test_invalid_policy_gives_file_line_column_and_65(env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsecrets:\n  - /etc/x\nbogus: 1\n")
    marker = env["ws"] / "ran"
    r = subprocess.run([str(AIRLOCK), "run", "--policy", str(bad), "--workspace",
                        str(env["ws"]), "--", "touch", str(marker)],
                       capture_output=True, text=True)
    assert r.returncode == 65
    line = one_error_line(r)
    assert f"{bad}:4:1" in line
    assert not marker.exists()


def test_unmaskable_secret_refuses_to_start(env, tmp_path):
    other = tmp_path / "hardlink"
    os.link(env["key"], other)
    marker = env["ws"] / "ran"
    r = run(env, "touch", str(marker))
    assert r.returncode == 71
    line = one_error_line(r)
    assert str(env["key"]) in line and "hard link" in line
    assert not marker.exists()


# ---- lifetime: nothing left behind ----------------------------------------------------

def _pids_of(marker):
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                argv0 = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
                if argv0 == marker.encode():
                    out.append(int(pid))
            except OSError:
                pass
    return out


def test_background_processes_end_with_the_session(env):
    marker = f"airlock-bg-{os.getpid()}"
    r = run(env, "bash", "-c", f"(exec -a {marker} sleep 60) & setsid bash -c 'exec -a {marker} sleep 60' & sleep 0.2; exit 0")
    assert r.returncode == 0
    # Their end may lag airlock's by a moment; left running, they would live 60 s.
    deadline = time.time() + 30
    while time.time() < deadline and _pids_of(marker):
        time.sleep(0.05)
    assert _pids_of(marker) == []


def test_killing_airlock_ends_everything(env):
    marker = f"airlock-kill-{os.getpid()}"
    p = subprocess.Popen([str(AIRLOCK), "run", "--policy", str(env["policy"]),
                          "--workspace", str(env["ws"]), "--", "bash", "-c",
                          f"(exec -a {marker} sleep 60) & exec -a {marker} sleep 60"])
    deadline = time.time() + 30
    while time.time() < deadline and len(_pids_of(marker)) < 2:
        time.sleep(0.05)
    assert len(_pids_of(marker)) == 2
    p.kill()
    p.wait(10)
    deadline = time.time() + 30
    while time.time() < deadline and _pids_of(marker):
        time.sleep(0.05)
    assert _pids_of(marker) == []


@pytest.mark.skipif(not ROOT, reason="cgroups are made only when started by root")
def test_no_cgroup_or_mount_left_behind(env):
    before = pathlib.Path("/proc/self/mountinfo").read_text()
    r = run(env, "sh", "-c", "echo $AIRLOCK_SESSION_ID; cat /proc/self/cgroup")
    assert r.returncode == 0
    sid = r.stdout.split()[0]
    # Inside, the cgroup namespace is rooted at the session's cgroup.
    assert "pids:/\n" in r.stdout
    assert pathlib.Path("/proc/self/mountinfo").read_text() == before
    for ctrl in ("pids", "memory"):
        assert not pathlib.Path(f"/sys/fs/cgroup/{ctrl}/airlock/{sid}").exists()


@pytest.mark.skipif(not ROOT, reason="cgroups are made only when started by root")
def test_pids_limit_from_the_profile(env):
    env["policy"].write_text(env["policy"].read_text().replace(
        "  default: {net: none}\n", "  default: {net: none, pids: 20}\n"))
    code = ("import os, time\n"
            "n = 0\n"
            "for i in range(40):\n"
            "    try:\n"
            "        if os.fork() == 0:\n"
            "            time.sleep(3); os._exit(0)\n"
            "        n += 1\n"
            "    except OSError:\n"
            "        break\n"
            "print(n)\n")
    r = run(env, "python3", "-c", code)
    n = int(r.stdout.split()[-1])
    assert 5 < n < 20, r.stdout + r.stderr
    # The same program outside forks all 40 (the limit is the sandbox's).
    out = subprocess.run(["python3", "-c", code.replace("time.sleep(3)", "time.sleep(0.2)")],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "40"


# ---- unprivileged start ---------------------------------------------------------------

@pytest.mark.skipif(not ROOT, reason="needs root to switch to another user for the test")
def test_ordinary_user_keeps_its_uid(env, tmp_path):
    nobody = pwd.getpwnam("nobody")
    ws = tmp_path / "userws"
    ws.mkdir()
    os.chown(ws, nobody.pw_uid, nobody.pw_gid)
    os.chmod(env["policy"], 0o644)
    r = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                        "--clear-groups", "--reset-env", str(AIRLOCK), "run", "--policy",
                        str(env["policy"]), "--workspace", str(ws), "--allow-weaker", "--",
                        "sh", "-c", "id -u; echo hi > f; cat /etc/shadow | wc -c"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    uid, _, size = r.stdout.split("\n")[:3]
    assert uid == str(nobody.pw_uid)
    assert (ws / "f").read_text() == "hi\n"
    assert os.stat(ws / "f").st_uid == nobody.pw_uid


# ---- terminal -------------------------------------------------------------------------

def test_agent_gets_its_own_terminal_and_modes_are_restored(env):
    import pty
    import select
    import termios

    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    ours = os.stat(os.ttyname(slave)).st_rdev
    code = ("import os, sys\n"
            "st = os.fstat(0)\n"
            "print('TTY', os.isatty(0), os.isatty(1), os.major(st.st_rdev), os.minor(st.st_rdev))\n")
    p = subprocess.Popen([str(AIRLOCK), "run", "--policy", str(env["policy"]), "--workspace",
                          str(env["ws"]), "--", "python3", "-c", code],
                         stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    out = b""
    deadline = time.time() + 20
    while time.time() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            out += chunk
        if p.poll() is not None and not r:
            break
    assert p.wait(10) == 0, out
    line = [l for l in out.decode().splitlines() if l.startswith("TTY")][0].split()
    assert line[1:3] == ["True", "True"]
    inside = os.makedev(int(line[3]), int(line[4]))
    assert inside != ours  # a pty of its own, not the human's
    assert termios.tcgetattr(slave) == before  # raw mode undone
    os.close(master)
    os.close(slave)


def _start_then_wait_for_go(env, then):
    """Starts `then` in a session that first says "up" (the sandbox, its secret watcher and
    open guard are in place: the agent runs only after them) and then waits for ws/go,
    which the test creates once it has changed the host. Returns (process, go path)."""
    go = env["ws"] / "go"
    script = (f"echo up; i=0; while [ ! -e {go} ] && [ $i -lt 12000 ]; do sleep 0.05; "
              f"i=$((i+1)); done; {then}")
    p = subprocess.Popen([str(AIRLOCK), "run", "--policy", str(env["policy"]), "--workspace",
                          str(env["ws"]), "--", "sh", "-c", script],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if line != "up\n":
        p.kill()
        _, errs = p.communicate()
        pytest.fail(f"the session did not start: {line!r} {errs!r}")
    return p, go


def _finish(p, go, release=True):
    """release=False: the session must end by itself (the agent is still waiting for go)."""
    if release:
        go.touch()
    try:
        return p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _session_helper(airlock_pid):
    """The session helper: airlock's child that stays on the host (one pid namespace level,
    unlike pid 1) and is alive (unlike the reaped id-map helper)."""
    for child in pathlib.Path(f"/proc/{airlock_pid}/task/{airlock_pid}/children").read_text().split():
        status = pathlib.Path(f"/proc/{child}/status").read_text()
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if not fields["State"].startswith("Z") and len(fields["NSpid"].split()) == 1:
            return int(child)
    return None


def test_the_session_ends_when_its_helper_dies(env):
    """The session helper watches for new secrets and answers the open guard: without it a
    secret created later would show, and the guard's marks would allow every open. If it
    dies (a bug, the OOM killer, a root's stray kill), the session ends at once (71), with
    a message saying why. The same session, helper alive, runs to its end (exit 0)."""
    p, go = _start_then_wait_for_go(env, "echo agent-done")
    out, errs = _finish(p, go)
    assert p.returncode == 0 and "agent-done" in out, errs
    go.unlink()
    p, go = _start_then_wait_for_go(env, "echo agent-done")
    helper = _session_helper(p.pid)
    assert helper, "airlock run has a session helper"
    os.kill(helper, signal.SIGKILL)
    out, errs = _finish(p, go, release=False)
    assert p.returncode == 71, (out, errs)
    assert "agent-done" not in out
    assert "session helper" in errs and "stopped" in errs and "session was ended" in errs, errs
    # the helper would have removed the placeholders: airlock run does it instead
    assert os.listdir(env["ws"]) == [], os.listdir(env["ws"])


def test_secret_created_during_the_session_ends_it(env):
    new_secret = env["secrets"] / "later" / "authkey"
    env["policy"].write_text(env["policy"].read_text().replace(
        "secrets:\n", f"secrets:\n  - {new_secret}\n"))
    p, go = _start_then_wait_for_go(env, f"cat {new_secret}")
    new_secret.parent.mkdir()
    new_secret.write_text("LATE SECRET\n")
    out, errs = _finish(p, go, release=False)
    assert p.returncode == 71
    assert "LATE SECRET" not in out
    assert "appeared" in errs and str(new_secret.parent) in errs


def test_secret_created_in_an_existing_directory_is_masked(env):
    late = env["secrets"] / "late.key"
    env["policy"].write_text(env["policy"].read_text().replace(
        "secrets:\n", f"secrets:\n  - {env['secrets']}/*.key\n"))
    p, go = _start_then_wait_for_go(env, f"echo \"[$(cat {late})]\"")
    late.write_text("LATE\n")
    out, errs = _finish(p, go)
    assert p.returncode == 0, errs
    assert out.strip() == "[]"
    # /var/lib is guarded (started by root): the agent could not have opened it before the mask
    assert "WARNING" in errs and "open guard refused the agent every open" in errs, errs
    assert late.read_text() == "LATE\n"


def test_secret_replaced_by_rename_is_masked_too(env):
    p, go = _start_then_wait_for_go(env, f"echo \"[$(cat {env['key']})]\"")
    tmp = env["secrets"] / "authkey.new"
    tmp.write_text("ROTATED\n")
    os.rename(tmp, env["key"])
    out, errs = _finish(p, go)
    assert p.returncode == 0, errs
    assert out.strip() == "[]"
    assert "WARNING" in errs and "open guard refused the agent every open" in errs, errs
    # Outside, the rotated key is there to read (the other side of the claim).
    assert env["key"].read_text() == "ROTATED\n"


def test_listening_unix_sockets_outside_run_are_unreachable(env):
    import socket
    path = env["secrets"] / "daemon.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    os.chmod(path, 0o777)
    s.listen()
    try:
        c = socket.socket(socket.AF_UNIX)
        c.connect(str(path))  # outside: reachable
        c.close()
        code = (f"import socket\ns = socket.socket(socket.AF_UNIX)\n"
                f"try:\n s.connect({str(path)!r}); print('connected')\n"
                f"except OSError as e: print('refused', e.errno)\n")
        r = run(env, "python3", "-c", code)
        assert "refused" in r.stdout, r.stdout + r.stderr
    finally:
        s.close()


def test_secret_directory_replaced_during_the_session_ends_it(env):
    d = env["secrets"] / "confdir"
    d.mkdir()
    (d / "authkey").write_text("OLD\n")
    env["policy"].write_text(env["policy"].read_text().replace(
        "secrets:\n", f"secrets:\n  - {d}/authkey\n"))
    p, go = _start_then_wait_for_go(env, f"cat {d}/authkey")
    os.rename(d, env["secrets"] / "confdir.old")
    d.mkdir()
    (d / "authkey").write_text("NEWKEY\n")
    out, errs = _finish(p, go, release=False)
    assert p.returncode == 71 and "NEWKEY" not in out
    assert str(d) in errs


def test_gitdir_file_of_a_worktree_is_read_only(env):
    gitfile = env["ws"] / ".git"
    gitfile.write_text("gitdir: /somewhere/else\n")
    r = run(env, "sh", "-c", "echo 'gitdir: .fakegit' > .git; echo rc=$?")
    assert "rc=0" not in r.stdout and "rc=" in r.stdout
    assert gitfile.read_text() == "gitdir: /somewhere/else\n"


def test_fifos_work_but_devices_and_setid_files_cannot_be_made(env):
    code = ("import os, stat\n"
            "os.mkfifo('/tmp/fifo'); print('fifo', stat.S_ISFIFO(os.stat('/tmp/fifo').st_mode))\n"
            "for name, mode, dev in (('suid', stat.S_IFREG | 0o4755, 0),\n"
            "                        ('null', stat.S_IFCHR | 0o666, os.makedev(1, 3))):\n"
            "    try:\n"
            "        os.mknod(name, mode, dev); print(name, 'made')\n"
            "    except OSError as e:\n"
            "        print(name, 'refused', e.errno)\n")
    r = run(env, "python3", "-c", code)
    assert "fifo True" in r.stdout, r.stdout + r.stderr
    assert "suid refused" in r.stdout and "null refused" in r.stdout
    assert not (env["ws"] / "suid").exists() and not (env["ws"] / "null").exists()


def test_back_to_back_and_overlapping_sessions_keep_placeholders_protected(env):
    for _ in range(15):  # a new session while the last one's helper is cleaning up
        r = run(env, "true")
        assert r.returncode == 0, r.stderr
    a = subprocess.Popen([str(AIRLOCK), "run", "--policy", str(env["policy"]), "--workspace",
                          str(env["ws"]), "--", "sh", "-c", "echo up; sleep 1"],
                         stdout=subprocess.PIPE, text=True)
    assert a.stdout.readline() == "up\n"
    b = subprocess.Popen([str(AIRLOCK), "run", "--policy", str(env["policy"]), "--workspace",
                          str(env["ws"]), "--", "sh", "-c",
                          "echo up; sleep 2; echo evil > .bashrc; echo rc=$?"],
                         stdout=subprocess.PIPE, text=True)
    assert b.stdout.readline() == "up\n"
    assert a.wait(10) == 0  # A ends while B runs: B's placeholders must stay
    out, _ = b.communicate(timeout=20)
    assert "rc=0" not in out and "rc=" in out
    deadline = time.time() + 30
    while time.time() < deadline and os.listdir(env["ws"]):
        time.sleep(0.02)
    assert os.listdir(env["ws"]) == []


@pytest.mark.skipif(not ROOT, reason="reading other namespaces' socket tables needs root")
def test_sockets_of_other_network_namespaces_are_unreachable(env):
    path = env["secrets"] / "container.sock"
    listener = subprocess.Popen(
        ["unshare", "--net", "python3", "-c",
         "import socket, os, sys, time\n"
         "s = socket.socket(socket.AF_UNIX)\n"
         f"s.bind({str(path)!r}); os.chmod({str(path)!r}, 0o777); s.listen()\n"
         "print('up', flush=True); time.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline() == "up\n"
        import socket
        c = socket.socket(socket.AF_UNIX)
        c.connect(str(path))  # outside, from another namespace: reachable by path
        c.close()
        code = (f"import socket\ns = socket.socket(socket.AF_UNIX)\n"
                f"try:\n s.connect({str(path)!r}); print('connected')\n"
                f"except OSError as e: print('refused', e.errno)\n")
        r = run(env, "python3", "-c", code)
        assert "refused" in r.stdout, r.stdout + r.stderr
    finally:
        listener.kill()
        listener.wait()
