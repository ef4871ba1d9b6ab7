"""Escape corpus: resources and lifetime.

The agent cannot exhaust the host (pids and memory limits from the profile:
the corpus's policy sets pids 64 and memory 256M) and cannot outlive its
session: when `airlock run` ends, or is killed, everything it started ends.
Outside, the same programs fork past the limit, allocate past it, and leave
daemons running (which the tests then kill: only pids they started).
"""
import os
import signal
import subprocess
import time

import pytest

from conftest import AIRLOCK
from escape_helpers import (MEMORY_MAX_MIB, PIDS_MAX, PROBE, describe, expect_ok, kill_pids,  # noqa: F401
                            lab, outside, pids_with_cmdline, probe_outside, result, wait_gone)


def test_fork_bomb_is_contained_by_the_pids_limit(lab):
    n = PIDS_MAX * 3
    assert expect_ok(probe_outside("forkbomb", str(n))) == f"forked={n}"
    r = lab.probe_inside("forkbomb", "5000")
    res = result(r)
    assert res is not None, f"the fork bomb probe never answered:{describe(r)}"
    assert res[0] == "ERR" and res[1] == "EAGAIN", f"the fork bomb was not stopped:{describe(r)}"
    forked = int(res[2].split("=")[1])
    assert forked < PIDS_MAX, f"forked {forked} processes, over the profile's pids limit {PIDS_MAX}"


def test_memory_exhaustion_is_contained(lab):
    expect_ok(probe_outside("mem", str(MEMORY_MAX_MIB * 2)))
    r = lab.probe_inside("mem", str(MEMORY_MAX_MIB * 4), timeout=120)
    res = result(r)
    # killed by the OOM killer (no answer, a signal exit) or refused (ENOMEM)
    assert res is None or res[0] == "ERR", f"allocated {MEMORY_MAX_MIB * 4} MiB inside:{describe(r)}"
    assert r.returncode != 0, describe(r)


def test_tmpfs_cannot_hold_more_than_the_memory_limit(lab):
    """Files in the sandbox's /tmp are memory too: writing past the limit fails or is killed."""
    mib = MEMORY_MAX_MIB * 2
    r = lab.sh_inside(f"dd if=/dev/zero of=/tmp/fill bs=1M count={mib} 2>&1; echo rc=$?; "
                      f"du -sm /tmp/fill", timeout=120)
    if "rc=0" in r.stdout:
        size = [l.split()[0] for l in r.stdout.splitlines() if l.endswith("/tmp/fill")]
        assert size and int(size[0]) < mib, f"{mib} MiB landed in the sandbox's /tmp:{describe(r)}"


def test_daemon_does_not_survive_the_session(lab):
    """setsid nohup sleep &: the incident's "started a daemon"."""
    marker_out = f"86{os.getpid() % 1000:03d}1.25"
    # outside: it survives its parent (the control); then we kill it
    subprocess.run(["sh", "-c", f"setsid nohup sleep {marker_out} >/dev/null 2>&1 &"], check=True)
    deadline = time.monotonic() + 10  # the background child may not have exec'd sleep yet
    while not (left := pids_with_cmdline(f"sleep\0{marker_out}")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left, "outside, setsid nohup sleep outlives its shell"
    kill_pids(left)
    marker = f"86{os.getpid() % 1000:03d}2.75"
    r = lab.sh_inside(f"setsid nohup sleep {marker} >/dev/null 2>&1 & echo started")
    assert "started" in r.stdout, describe(r)
    left = wait_gone(f"sleep\0{marker}", timeout=30)
    kill_pids(left)
    assert not left, f"processes outlived airlock run: {left}"


def test_double_forked_daemon_ignoring_signals(lab):
    """A proper daemon: double fork, setsid, SIGTERM and SIGHUP ignored."""
    marker = f"86{os.getpid() % 1000:03d}3.5"
    script = ("import os,signal,time\n"
              "if os.fork(): os._exit(0)\n"
              "os.setsid()\n"
              "if os.fork(): os._exit(0)\n"
              "signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
              f"os.execvp('sleep', ['sleep', '{marker}'])\n")
    r = lab.inside("/usr/bin/python3", "-c", script)
    left = wait_gone(f"sleep\0{marker}", timeout=30)
    kill_pids(left)
    assert not left, f"a daemon outlived airlock run: {left}{describe(r)}"


def test_killing_airlock_kills_the_agent(lab):
    """If airlock itself dies (SIGKILL: no chance to clean up), the agent's tree dies with it."""
    marker = f"86{os.getpid() % 1000:03d}4.5"
    env = dict(os.environ, AIRLOCK_POLICY=str(lab.policy))
    p = subprocess.Popen([str(AIRLOCK), "run", "--workspace", str(lab.workspace), "--", "sh", "-c",
                          f"sleep {marker} & setsid sleep {marker} & wait"],
                         env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(pids_with_cmdline(f"sleep\0{marker}")) < 2:
            if p.poll() is not None:
                pytest.fail(f"airlock run exited early ({p.returncode}): {p.stderr.read()}")
            time.sleep(0.05)
        assert len(pids_with_cmdline(f"sleep\0{marker}")) == 2, "the agent's sleeps started"
        p.send_signal(signal.SIGKILL)
        p.wait(5)
        left = wait_gone(f"sleep\0{marker}", timeout=30)
        kill_pids(left)
        assert not left, f"the agent's processes outlived a killed airlock: {left}"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        kill_pids(pids_with_cmdline(f"sleep\0{marker}"))


def test_exit_status_of_a_signalled_agent(lab):
    """Not an escape but the lifetime contract: the status is the command's (signal -> 128+n)."""
    r = lab.sh_inside("kill -TERM $$")
    assert r.returncode in (128 + 15, -15), describe(r)


def without_v1_cgroups(lab, *run_args, script):
    """`airlock run RUN_ARGS -- sh -c SCRIPT` as root in a mount namespace of its own where the
    v1 pids and memory hierarchies are unmounted: what a host with cgroup v2 only looks like
    to airlock (the test cannot give the v2 tree those controllers: v1 holds them here)."""
    run = " ".join([str(AIRLOCK), "run", "--no-pool", "--workspace", str(lab.workspace),
                    *run_args, "--", "sh", "-c", "'" + script + "'"])
    return outside("unshare", "--mount", "--propagation", "private", "sh", "-c",
                   f"umount /sys/fs/cgroup/pids /sys/fs/cgroup/memory && exec {run}",
                   env={"AIRLOCK_POLICY": str(lab.policy)}, cwd=lab.workspace, timeout=120)


def test_root_on_a_host_without_v1_cgroups(lab):
    """Started by root where the v1 pids and memory controllers are missing (cgroup v2 only):
    the launch is refused, saying what is missing and what --allow-weaker does, and nothing
    runs. With --allow-weaker the limits are those of an ordinary user's sandbox, and they
    hold: RLIMIT_NPROC stops a fork bomb under the profile's pids, RLIMIT_AS is the memory
    limit, and each of the sandbox's tmpfs holds at most the memory limit (no cgroup counts
    its pages), while outside the same amount is written. With the controllers (every other
    test) the same launch needs no flag."""
    script = "echo ran"
    with_cg = lab.inside("sh", "-c", script)
    assert with_cg.returncode == 0 and "ran" in with_cg.stdout, describe(with_cg)
    r = without_v1_cgroups(lab, script=script)
    assert r.returncode == 71 and "ran" not in r.stdout, describe(r)
    assert "no cgroup v1 pids and memory controllers" in r.stderr and "--allow-weaker" in r.stderr, \
        describe(r)

    mib = MEMORY_MAX_MIB * 2
    big = lab.hostfile("fill")
    try:
        out = outside("dd", "if=/dev/zero", f"of={big}", "bs=1M", f"count={mib}")
        assert out.returncode == 0 and big.stat().st_size == mib << 20, describe(out)
    finally:
        big.unlink(missing_ok=True)
    r = without_v1_cgroups(lab, "--allow-weaker", script=(
        "grep -E \"^Max (processes|address space)\" /proc/self/limits; "
        f"{lab.probe} forkbomb 5000; "
        f"dd if=/dev/zero of=/tmp/fill bs=1M count={mib} 2>/dev/null; echo dd=$?; "
        "du -sm /tmp/fill"))
    assert r.returncode == 0, describe(r)
    lines = r.stdout.splitlines()
    limits = {l.split()[1]: l.split()[-3] for l in lines if l.startswith("Max ")}
    assert limits.get("processes") == str(PIDS_MAX), f"RLIMIT_NPROC:{describe(r)}"
    assert limits.get("address") == str(MEMORY_MAX_MIB << 20), f"RLIMIT_AS:{describe(r)}"
    bomb = [l.split() for l in lines if l.startswith(("OK", "ERR"))]
    assert bomb and bomb[0][:2] == ["ERR", "EAGAIN"] and \
        int(bomb[0][2].split("=")[1]) < PIDS_MAX, f"the fork bomb was not stopped:{describe(r)}"
    assert "dd=1" in r.stdout, f"{mib} MiB fitted in the sandbox's /tmp:{describe(r)}"
    size = [l.split()[0] for l in lines if l.endswith("/tmp/fill")]
    assert size and int(size[0]) <= MEMORY_MAX_MIB, describe(r)
