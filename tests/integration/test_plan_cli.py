"""airlock plan on the command line: options, errors, exit codes, JSON, the
printed plan, determinism of the digest, timeouts, run-as user and host.
"""
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest

from conftest import AIRLOCK
from plan_helpers import (DEFAULT_POLICY_FILE, HostUnchanged, needs_root, plan, policy_with_inventory,
                          processes_matching)

WORK = pathlib.Path("/srv/airlock-plan-cli")


@pytest.fixture
def work():
    needs_root()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    (WORK / "app.conf").write_text("workers = 4\n")
    yield WORK
    shutil.rmtree(WORK, ignore_errors=True)


def run(*args, **kw):
    env = dict(os.environ)
    env.pop("AIRLOCK_POLICY", None)
    return subprocess.run([str(AIRLOCK), "plan", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120, **kw)


def test_help():
    r = run("--help")
    assert r.returncode == 0
    assert r.stdout.startswith("Usage: airlock plan")
    assert "--host H" in r.stdout and "Exit status" in r.stdout


@pytest.mark.parametrize("args, message", [
    ([], "no command given"),
    (["--timeout", "0", "--", "true"], "bad --timeout"),
    (["--timeout", "x", "--", "true"], "bad --timeout"),
    (["--cwd", "relative", "--", "true"], "not an absolute path"),
    (["--user", "no-such-user-here", "--", "true"], "unknown user"),
    (["--frobnicate", "--", "true"], "bad option"),
])
def test_usage_errors(args, message):
    needs_root()
    r = run(*args)
    assert r.returncode == 64, r.stderr
    assert message in r.stderr
    assert " — " in r.stderr  # says how to fix it


def test_unknown_host(tmp_path):
    needs_root()
    r = run("--policy", policy_with_inventory(tmp_path), "--host", "nowhere", "--", "uptime")
    assert r.returncode == 64
    assert "unknown host 'nowhere'" in r.stderr


def test_needs_root():
    needs_root()
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(AIRLOCK),
                        "plan", "--", "true"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 64
    assert "planning needs root" in r.stderr


def test_allowed_command_exits_0(work):
    code, p, d, _ = plan("uptime", expect=0)
    assert d["action"] == "allow"
    assert p["files"] == []
    assert p["complete"]
    assert "load average" in p["output"]


def test_change_needs_approval_exits_10(work):
    code, p, d, _ = plan("sed", "-i", "s/4/8/", work / "app.conf", expect=10)
    assert d["action"] == "approve"
    assert (work / "app.conf").read_text() == "workers = 4\n"


def test_exit_status_and_output(work):
    _, p, _, _ = plan("sh", "-c", "echo out; echo err >&2; exit 3")
    assert p["exit_status"] >> 8 == 3
    assert p["output"] == "out\nerr\n"
    assert not p["output_withheld"]


def test_output_is_cut(work):
    _, p, _, _ = plan("sh", "-c", "head -c 200000 /dev/zero | tr '\\0' a")
    assert p["output_truncated"]
    assert len(p["output"]) == 64 * 1024


def test_json_schema_and_digest(work):
    _, p1, _, _ = plan("sed", "-i", "s/4/8/", work / "app.conf")
    _, p2, _, _ = plan("sed", "-i", "s/4/8/", work / "app.conf")
    assert re.fullmatch(r"[0-9a-f]{64}", p1["digest"])
    assert p1["digest"] == p2["digest"], "the same plan twice must have the same digest"
    assert p1["duration_usec"] > 0
    for key in ("version", "argv", "envp", "cwd", "uid", "gid", "host", "complete",
                "fidelity_reasons", "exit_status", "timed_out", "output", "files", "secrets",
                "network", "execs", "signals", "contacts"):
        assert key in p1
    f = p1["files"][0]
    assert f["change"] == "modified" and f["type"] == "f"
    assert f["old_size"] == f["new_size"] == 12
    _, p3, _, _ = plan("sed", "-i", "s/4/9/", work / "app.conf")
    assert p3["digest"] != p1["digest"]


def test_timeout(work):
    t = time.monotonic()
    _, p, d, _ = plan("sh", "-c", "echo started; sleep 60; echo never", timeout=1)
    assert time.monotonic() - t < 30
    assert p["timed_out"]
    assert not p["complete"]
    assert any("timeout" in r for r in p["fidelity_reasons"])
    assert "never" not in p["output"]


def test_no_process_outlives_the_plan(work):
    marker = "300.918231"  # sleep takes fractions: a unique command line
    with HostUnchanged(work, marker=marker):
        _, p, _, _ = plan("sh", "-c", f"setsid sleep {marker} & nohup sleep {marker} >/dev/null & "
                          "echo spawned")
    assert "spawned" in p["output"]
    assert processes_matching(marker) == []


def test_run_as_user_and_cwd(work):
    (work / "sub").mkdir()
    os.chmod(work / "sub", 0o777)
    _, p, _, _ = plan("sh", "-c", "id -u; id -g; pwd; touch mine", user="nobody", cwd=work / "sub")
    lines = p["output"].splitlines()
    assert lines[:3] == ["65534", str(pwd_gid("nobody")), str(work / "sub")]
    f = {f["path"]: f for f in p["files"]}[str(work / "sub/mine")]
    assert f["new_uid"] == 65534
    assert not (work / "sub/mine").exists()


def pwd_gid(name):
    import pwd
    return pwd.getpwnam(name).pw_gid


def test_environment_is_passed(work):
    _, p, _, _ = plan("sh", "-c", "echo $AIRLOCK_PLAN_TEST_VAR", env={"AIRLOCK_PLAN_TEST_VAR": "v42"})
    assert p["output"] == "v42\n"
    assert "AIRLOCK_PLAN_TEST_VAR=v42" in p["envp"]


def test_printed_plan_escapes_file_names(work):
    r = run("--policy", DEFAULT_POLICY_FILE, "--", "sh", "-c", f"echo x > '{work}/evil\x1b[2Jname'")
    assert r.returncode == 10, r.stderr
    assert "\x1b" not in r.stdout
    assert "evil\\x1b[2Jname" in r.stdout
    assert "Fidelity: complete" in r.stdout
    assert "Decision: approve" in r.stdout


def test_inventory_names_resolve(work, tmp_path):
    _, p, _, _ = plan("getent", "hosts", "xenon", policy=policy_with_inventory(tmp_path))
    assert "198.51.100.82" in p["output"]
    assert p["files"] == []  # the snapshot's /etc/hosts is not an effect


def test_host_plans_the_connect_prefix(work, tmp_path):
    code, p, d, _ = plan("uptime", host="xenon", policy=policy_with_inventory(tmp_path))
    assert p["host"] == "xenon"
    assert not p["complete"]
    assert any("xenon" in r and "not observable" in r for r in p["fidelity_reasons"])
    assert any(n["host"] == "xenon" and n["port"] == 22 for n in p["network"])
    assert any(e["argv"][0] == "ssh" or e["path"].endswith("/ssh") for e in p["execs"])


def test_unix_socket_is_a_daemon_not_the_network(work):
    """glibc asks nscd for user names: a refused unix connect is a daemon contact, not a connection
    to a machine outside the inventory (which the default policy denies)."""
    code, p, d, _ = plan("id", "root", expect=0)
    assert d["action"] == "allow"
    assert not any(r["effect"].startswith("connects to") for r in d["effect_rules"])


def test_killing_airlock_ends_the_plan(work):
    """airlock plan killed mid-plan: the snapshot (processes, mounts) dies with it."""
    marker = "300.77123"
    with HostUnchanged(work, marker=marker):
        proc = subprocess.Popen([str(AIRLOCK), "plan", "--", "sh", "-c",
                                 f"echo x > {work}/f; sleep {marker}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not processes_matching(f"sleep {marker}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_matching(f"sleep {marker}"), "the planned command never started"
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        while processes_matching(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not (work / "f").exists()
