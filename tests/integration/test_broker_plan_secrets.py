"""A dry run that reads a secret tells the agent that asked nothing of what it did.

The plan runs as root and may read a secret; everything else it does is the
command's choice and can carry the secret's bytes: file names, sizes, link
targets, its exit status, even the policy's reason (it names the file written).
So a request from a session gets only "its dry run reads a secret"; an approver
on the admin socket sees the whole plan. Shown both ways with a command that
names a file after the secret's bytes.
"""
import json
import os
import pathlib

import pytest

from broker_helpers import Broker, Raw, ensure_users, exec_raw, open_session, policy_text

SECRET = bytes(range(0xA0, 0xB0))  # 16 bytes, hex "a0a1...af"

# Nothing is allowed outright, so the request is planned; reading a secret is denied.
RULES = """\
  - effect: reads-secret
    action: deny
    reason: secrets never leave the host through an agent
  - match: [/bin/true]
    action: allow
"""


@pytest.fixture
def secret_broker(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the broker plans as root (namespaces, overlays): run as root")
    ensure_users()
    key = tmp_path / "cluster.key"
    key.write_bytes(SECRET)
    extra = f"secrets: [{key}]\n"
    b = Broker(tmp_path, policy_text(RULES, extra=extra)).start()
    yield b, key
    b.stop()


def test_a_plan_that_read_a_secret_is_withheld_from_the_agent(secret_broker, tmp_path):
    broker, key = secret_broker
    hexkey = SECRET.hex()
    cmd = ["sh", "-c", f'touch "/tmp/x-$(od -An -tx1 {key} | tr -d " \\n")"; exit 7']
    holder, sock, _ = open_session(broker)
    try:
        conn = Raw(sock)
        first, final, out = exec_raw(conn, cmd)
        conn.close()
    finally:
        holder.close()
    seen = json.dumps([first, final]) + out.decode(errors="replace")
    assert first.get("type") != "error", first
    assert hexkey not in seen, "the agent got the secret's bytes back from the dry run"
    req = final.get("request") or first.get("request")
    assert req.get("plan_withheld") is True, req
    assert "plan" not in req and req["state"] == "denied", req
    assert "reads a secret" in req["decision"]["reason"], req
    # the approver, on the admin socket, sees what the dry run did (the other side)
    full = broker.show(req["id"])
    assert hexkey in json.dumps(full["plan"]), "the approver must see the plan's effects"
    assert not pathlib.Path(f"/tmp/x-{hexkey}").exists(), "a plan must not change the host"
