"""The planned command's processes and memory are bounded (cgroup v1 pids and memory).

The broker plans an agent's request before anyone approves it, as root of a user
namespace (RLIMIT_NPROC does not hold uid 0): a fork bomb must not take the host's
pids. Shown both ways: the same 2500 background processes start outside; planned,
the command stops at the plan's pids.max, and the plan still ends, leaving nothing.
"""
import os
import pathlib
import subprocess

import pytest

from conftest import AIRLOCK
from plan_helpers import plan

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="airlock plan needs root"),
    pytest.mark.skipif(not pathlib.Path("/sys/fs/cgroup/pids/cgroup.procs").exists(),
                       reason="no cgroup v1 pids controller on this host"),
]

SPAWN = ("i=0; p=; while [ $i -lt 2500 ]; do sleep 600 & p=\"$p $!\"; i=$((i+1)); done "
         "2>/dev/null; echo SPAWNED-$((2000+500)); kill $p 2>/dev/null; exit 0")


def test_fork_bomb_is_bounded_in_the_plan(tmp_path):
    outside = subprocess.run(["sh", "-c", SPAWN], capture_output=True, text=True, timeout=120)
    assert "SPAWNED-2500" in outside.stdout, outside.stderr
    # the sleeps outlive the loop however slow the machine: only pids.max stops it
    _, p, _, _ = plan("sh", "-c", SPAWN, timeout=120)
    assert "SPAWNED-2500" not in (p.get("output") or ""), p.get("output")
    assert not p["timed_out"] and p["exit_status"] != 0, \
        "the shell itself must have hit the limit (it cannot fork, and gives up)"
    left = [d for d in os.listdir("/sys/fs/cgroup/pids/airlock") if d.startswith("plan-")]
    assert not left, f"plan cgroups left behind: {left}"


def test_the_plan_runs_in_its_own_limited_cgroup():
    script = ('g=$(grep ":pids:" /proc/self/cgroup | cut -d: -f3); '
              'echo "GROUP=$g MAX=$(cat /sys/fs/cgroup/pids$g/pids.max)"')
    _, p, _, _ = plan("sh", "-c", script)
    out = p.get("output") or ""
    assert "GROUP=/airlock/plan-" in out and "MAX=2048" in out, out
    # outside, this test's own cgroup is not the plan's
    mine = open("/proc/self/cgroup").read()
    assert "/airlock/plan-" not in mine


def test_no_plan_where_nothing_would_bound_it(tmp_path):
    """Without the v1 pids and memory controllers (a host with cgroup v2 only, made here with a
    mount namespace in which they are unmounted) a planned fork bomb would be unbounded: the
    plan is refused, saying why, and the command does not run. With them (above) it runs."""
    marker = tmp_path / "ran"
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        "umount /sys/fs/cgroup/pids /sys/fs/cgroup/memory && "
                        f"exec {AIRLOCK} plan -- touch {marker}"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 71, (r.returncode, r.stdout, r.stderr)
    assert "no cgroup v1 pids controller" in r.stderr and "no plan is made" in r.stderr, r.stderr
    assert "Plan of" not in r.stdout and not marker.exists(), r.stdout
    # the same plan with the controllers: it runs (in the snapshot: the file stays absent here)
    _, p, _, _ = plan("touch", str(marker))
    assert p["exit_status"] == 0 and not marker.exists(), p
