"""Issue 4's "done when", end to end with the shipped default policy: an agent
in the sandbox asks to restart a service; the human sees who asks, what
exactly and why, approves from another terminal; the agent receives the
command's output and exit status."""
import json
import os
import subprocess
import time

import pytest

from broker_helpers import Broker
from conftest import AIRLOCK


def test_agent_asks_human_approves_agent_gets_the_result(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("airlockd and airlock run as root, as in the README")
    default = subprocess.run([str(AIRLOCK), "policy", "show-default"], capture_output=True,
                             text=True, check=True).stdout
    b = Broker(tmp_path, default, runtime_base="/run").start()
    try:
        env = b.env()
        env["AIRLOCK_POLICY"] = str(b.policy)
        agent = subprocess.Popen(
            [str(AIRLOCK), "run", "--agent", "demo", "--", "sh", "-c",
             f"{AIRLOCK} exec --wait 120 --why 'nginx serves a stale certificate; a restart "
             "reloads it' -- systemctl restart nginx; echo agent-got=$?"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/tmp")
        # another terminal: the human lists and looks
        deadline = time.time() + 30
        while True:
            lst = json.loads(b.airlock("requests", "--json").stdout)
            if lst:
                break
            assert time.time() < deadline, agent.stderr
            time.sleep(0.1)
        rid = lst[0]["id"]
        table = b.airlock("requests").stdout
        assert "agent demo" in table and "systemctl restart nginx" in table
        shown = b.airlock("show", rid).stdout
        facts, words = shown.split("own words")
        assert "agent 'demo'" in facts and "started by root" in facts
        assert "Command:   systemctl restart nginx" in facts
        assert "Runs as:   root" in facts and "approve" in facts
        assert "nginx serves a stale certificate; a restart reloads it" in words
        assert agent.poll() is None  # the agent is waiting, nothing ran
        r = b.airlock("approve", "--why", "go ahead", rid)
        assert r.returncode == 0, r.stderr
        out, err = agent.communicate(timeout=120)
        # what the same command does when root runs it directly, outside
        direct = subprocess.run(["systemctl", "restart", "nginx"], capture_output=True,
                                text=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        assert f"agent-got={direct.returncode}" in out, (out, err)
        assert direct.stderr.strip().splitlines()[0] in err
        st = b.show(rid)
        assert st["exit_status"] == direct.returncode
        assert st["verdicts"][0]["user"] == "root" and st["verdicts"][0]["why"] == "go ahead"
    finally:
        b.stop()
