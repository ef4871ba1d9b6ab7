"""airlockd never forks a plan from its threads: a plan runs in a new image of
airlockd (`airlockd --plan-helper`, started with posix_spawn) that holds none of
the broker's memory or descriptors and is handed the exact policy the request
was judged by (src/plan/isolated.c). A fork of the threaded broker would carry
every lock another thread held at that instant; under AddressSanitizer a plan
hung for ever in its first malloc that way."""
import hashlib
import json
import os
import subprocess
import tempfile

import pytest

from broker_helpers import BASE_RULES, EX_TIMEOUT, Broker, ensure_users, policy_text
from conftest import AIRLOCKD


def need_root():
    if os.geteuid() != 0:
        pytest.skip("the broker plans as root (namespaces, overlays): run as root")


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split()[1]
    raise KeyError(field)


def fd_targets(pid):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return out


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


def test_a_plan_runs_in_a_fresh_image_without_the_brokers_files(tmp_path):
    need_root()
    ensure_users()
    rules = "  - match: [sleep, \"**\"]\n    action: approve\n" + BASE_RULES
    b = Broker(tmp_path, policy_text(rules)).start()
    slow = "sleep 3603"
    try:
        p = b.popen("exec", "--wait", "0", "--", *slow.split())
        from test_broker_plan import planned_commands
        pid = int(planned_commands(slow, 1)[0])
        chain = []
        while pid > 1 and pid != b.proc.pid:
            chain.append(pid)
            pid = int(status(pid, "PPid"))
        assert pid == b.proc.pid, f"the planned command is not the broker's: {chain}"
        helper = chain[-1]  # the broker's own child on the way to the command
        broker_files = [t for t in fd_targets(b.proc.pid) if t.startswith(str(b.state))]
        assert broker_files, "the broker holds its database and audit log open"
        assert int(status(b.proc.pid, "Threads")) > 1, "the broker has threads"
        # the other side: the helper is a new image (it forked the plan's processes before
        # it started its supervisor thread), and holds none of those files
        assert cmdline(helper)[1:] == ["--plan-helper"], cmdline(helper)
        assert os.path.samefile(f"/proc/{helper}/exe", AIRLOCKD)
        leaked = [t for t in fd_targets(helper)
                  if t.startswith(str(b.state)) or t.startswith(str(b.runtime))]
        assert not leaked, f"the plan helper holds the broker's files: {leaked}"
        subprocess.run(["pkill", "-KILL", "-fx", slow], check=False)
        p.communicate(timeout=60)
        assert p.returncode == EX_TIMEOUT, "planned, then pending"
    finally:
        subprocess.run(["pkill", "-KILL", "-fx", slow], check=False)
        b.stop()


def run_helper(options, policy):
    """Starts `airlockd --plan-helper` by hand with options on fd 0 and the policy text on
    fd 3; returns (exit status, answer)."""
    with tempfile.TemporaryFile() as opt, tempfile.TemporaryFile() as pol:
        opt.write(json.dumps(options).encode())
        opt.seek(0)
        pol.write(policy.encode())
        pol.seek(0)
        # exec: the helper's parent is this process
        r = subprocess.run(["bash", "-c", 'exec "$0" --plan-helper 3<&"$1"', str(AIRLOCKD),
                            str(pol.fileno())], stdin=opt, capture_output=True,
                           pass_fds=(pol.fileno(),), timeout=120)
    return r.returncode, r.stdout, r.stderr


def options(policy, **kw):
    o = {"version": 1, "parent": os.getpid(), "argv": ["sh", "-c", "echo planned > /tmp/x"],
         "envp": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "cwd": "/", "uid": 0, "gid": 0,
         "timeout_usec": 0, "output_max": 0, "diff_max": 0, "tmpfs_max": 0,
         "policy_name": "test", "policy_sha256": hashlib.sha256(policy.encode()).hexdigest()}
    o.update(kw)
    return o


def test_the_helper_plans_with_the_policy_it_was_handed_and_no_other():
    need_root()
    policy = policy_text(BASE_RULES)
    code, out, err = run_helper(options(policy), policy)
    assert code == 0, err
    plan = json.loads(out)["plan"]
    assert plan["argv"] == ["sh", "-c", "echo planned > /tmp/x"]
    assert any(f["path"] == "/tmp/x" for f in plan["files"]), plan["files"]
    # the same options with a policy whose digest is not the one the request was judged by
    code, out, err = run_helper(options(policy), policy + "# edited meanwhile\n")
    assert code == 0, err
    ans = json.loads(out)
    assert "plan" not in ans and "other than the request's" in ans["error"], ans


def test_the_helper_refuses_to_run_by_hand_or_on_unreadable_options():
    r = subprocess.run([str(AIRLOCKD), "--plan-helper"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 64 and "not run by hand" in r.stderr, (r.returncode, r.stderr)
    if os.geteuid() != 0:
        return
    policy = policy_text(BASE_RULES)
    code, out, err = run_helper({"version": 2}, policy)
    assert code == 0 and "disagree" in json.loads(out)["error"], (out, err)
    # a helper whose parent is not the one named in its options does nothing
    code, out, err = run_helper(options(policy, parent=1), policy)
    assert code == 1 and out == b"", (code, out, err)
