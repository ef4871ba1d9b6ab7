"""The corosync lab itself (tests/lab): it comes up quorate with three
members, reproduces each incident variant with the corosync behaviour the
doctor builds on, and `down` leaves nothing behind — no namespaces, links,
mounts, processes or files, and the host's own /etc/corosync untouched.
"""
import hashlib
import os
import pathlib
import re
import subprocess

import pytest

from doctor_helpers import ADDR, MEMBERS, NODES, Lab, lab_fixture_name, require_lab, wait_for


def host_corosync_state():
    """Digest of the host's /etc/corosync (the lab must never touch it)."""
    h = hashlib.sha256()
    for p in sorted(pathlib.Path("/etc/corosync").rglob("*")):
        h.update(str(p).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def leftovers(lab):
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [l for l in netns.splitlines() if l.startswith(lab.name + "-")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [l for l in links.splitlines() if f"l-{lab.name}-" in l]
    found += [l for l in pathlib.Path("/proc/self/mountinfo").read_text().splitlines() if str(lab.dir) in l]
    if lab.dir.exists():
        found.append(str(lab.dir))
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(lab.dir).encode() in cmd or f"{lab.name}-".encode() + b"pve1" in cmd:
            found.append(f"pid {pid}: {cmd!r}")
    return found


@pytest.fixture(scope="module")
def lab():
    require_lab()
    lab = Lab(lab_fixture_name("l"))
    lab.down()
    before = host_corosync_state()
    try:
        out = lab.up()
        assert "quorate with 3 members" in out.stdout
        yield lab
    finally:
        lab.down()
    assert leftovers(lab) == []
    assert host_corosync_state() == before


def quorum(lab, node):
    return lab.enter(node, "corosync-quorumtool", "-s").stdout


def test_up_is_quorate_with_three(lab):
    for m in MEMBERS:
        q = quorum(lab, m)
        assert re.search(r"^Quorate:\s+Yes", q, re.M), q
        assert re.search(r"^Total votes:\s+3$", q, re.M), q
    st = lab.run("status").stdout
    assert st.count("corosync running") == 3 and "== xenon" in st


def test_nodes_are_isolated(lab):
    # Each node has its own hostname, address, /etc/corosync, /run and /dev/shm.
    for n in NODES:
        assert lab.enter(n, "hostname").stdout.strip() == n
        addrs = lab.enter(n, "ip", "-o", "-4", "addr").stdout
        assert ADDR[n] in addrs and not [a for a in ADDR.values() if a != ADDR[n] and a in addrs]
    assert lab.enter("xenon", "ls", "/etc/corosync").stdout.split() == ["uidgid.d"]
    assert "authkey" in lab.enter("pve1", "ls", "/etc/corosync").stdout
    assert lab.enter("xenon", "cat", "/run/corosync.pid").returncode != 0
    assert lab.enter("pve1", "cat", "/run/corosync.pid").returncode == 0
    # A node sees only its own processes.
    ps = lab.enter("xenon", "ps", "-e", "-o", "comm=").stdout.split()
    assert "corosync" not in ps
    # The lab reaches nothing outside it: no default route, only the lab subnet.
    routes = lab.enter("pve1", "ip", "-4", "route").stdout
    assert "default" not in routes and "198.51.100.0/24" in routes


def _new_member_log(lab, marks):
    return {m: lab.log(m)[marks[m]:] for m in MEMBERS}


def _marks(lab):
    return {m: len(lab.log(m)) for m in MEMBERS}


def test_variant_fourth_node_is_silent_on_members(lab):
    """The issue's central observation: with the right key, members notice nothing."""
    marks = _marks(lab)
    lab.incident("fourth-node")
    try:
        assert wait_for(lambda: "Expected votes:   4" in quorum(lab, "xenon"), 60)
        q = quorum(lab, "xenon")
        assert re.search(r"^Quorate:\s+No", q, re.M)
        links = lab.enter("xenon", "corosync-cfgtool", "-s").stdout
        assert links.count("disconnected") == 3
        for m in MEMBERS:
            mq = quorum(lab, m)
            assert re.search(r"^Total votes:\s+3$", mq, re.M) and re.search(r"^Quorate:\s+Yes", mq, re.M)
        new = _new_member_log(lab, marks)
        assert all(ADDR["xenon"] not in text for text in new.values()), new
    finally:
        lab.incident("reset")


def test_variant_same_config_exits(lab):
    lab.incident("same-config")
    try:
        assert wait_for(lambda: "No valid name found for local host" in lab.log("xenon"), 60)
        assert lab.enter("xenon", "sh", "-c", "pidof corosync").returncode != 0
        # The key is still there.
        assert (lab.node_root("xenon") / "etc/corosync/authkey").exists()
    finally:
        lab.incident("reset")


def test_variant_reused_nodeid_rejected(lab):
    marks = _marks(lab)
    lab.incident("reused-nodeid")
    try:
        assert wait_for(lambda: f"Packet rejected from {ADDR['xenon']}" in _new_member_log(lab, marks)["pve1"], 60)
    finally:
        lab.incident("reset")


def test_variant_wrong_key_undecryptable(lab):
    marks = _marks(lab)
    lab.incident("wrong-key")
    try:
        def seen():
            new = _new_member_log(lab, marks)
            return all(f"Unable to decrypt packet from {ADDR['xenon']}" in new[m] and "Digest does not match" in new[m]
                       for m in MEMBERS)
        assert wait_for(seen, 60)
    finally:
        lab.incident("reset")


def test_variant_own_config_alone(lab):
    lab.incident("own-config")
    try:
        assert wait_for(lambda: re.search(r"^Quorate:\s+Yes", quorum(lab, "xenon"), re.M) is not None, 60)
        assert "Expected votes:   1" in quorum(lab, "xenon")
    finally:
        lab.incident("reset")


def test_reset_removes_everything_from_xenon(lab):
    lab.incident("fourth-node")
    lab.incident("reset")
    assert lab.enter("xenon", "ls", "/etc/corosync").stdout.split() == ["uidgid.d"]
    assert lab.enter("xenon", "sh", "-c", "pidof corosync").returncode != 0
    assert "corosync" not in lab.enter("xenon", "ls", "/etc/systemd/system/multi-user.target.wants").stdout
