"""airlock doctor loads corosync's client libraries and libpcap at first use
(dlopen), not at start: the airlock command must not carry them on every
`airlock run` / `airlock exec`. Shown both ways: the command does not link
them, and where they cannot be loaded the doctor says which library and which
package to install, marks those facts unavailable and still reports the rest
(the lab's healthy run in test_doctor_lab.py shows the facts when they load).
"""
import json
import subprocess
import time

import pytest

from conftest import AIRLOCK
from doctor_helpers import Lab, MEMBERS, lab_fixture_name, require_lab

LAZY = ("libcmap.so", "libquorum.so", "libvotequorum.so", "libcfg.so", "libpcap.so",
        "libcrypto.so", "libsystemd.so")


def test_airlock_does_not_link_lazy_libraries():
    needed = subprocess.run(["objdump", "-p", str(AIRLOCK)], capture_output=True, text=True,
                            check=True).stdout
    needed = [line.split()[1] for line in needed.splitlines() if line.strip().startswith("NEEDED")]
    assert needed, "objdump shows no NEEDED entries: the check would prove nothing"
    assert "libc.so.6" in needed
    assert not [n for n in needed if n.startswith(LAZY)], needed


@pytest.fixture(scope="module")
def lab():
    require_lab()
    lab = Lab(lab_fixture_name("l"))
    lab.down()
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


def test_missing_libraries_reported_not_fatal(lab, airlock, tmp_path):
    # Unloadable stand-ins found first through LD_LIBRARY_PATH (env and
    # nsenter pass it to the airlock inside each node; /tmp is shared).
    libs = tmp_path / "libs"
    libs.mkdir()
    for name in ("libcmap.so.4", "libpcap.so.0.8"):
        (libs / name).write_bytes(b"not an ELF object\n")
    policy = lab.policy(tmp_path / "policy.yaml")
    p = airlock("doctor", "--policy", policy, "--remote-airlock", AIRLOCK, "--json", "--capture", "1",
                timeout=120, env={"AIRLOCK_POLICY": str(policy), "LD_LIBRARY_PATH": str(libs)})
    assert p.returncode in (0, 1), p.stdout + p.stderr
    out = json.loads(p.stdout)
    for m in MEMBERS:
        facts = out["hosts"][m]["facts"]
        c = facts["corosync"]
        assert c["running"] is True  # the rest of the facts stand
        assert "runtime" not in c
        assert c["runtime_error"].startswith(
            "corosync's client libraries are not installed (libcmap.so.4: "), c["runtime_error"]
        assert "apt-get install libcmap4 libquorum5 libvotequorum8 libcfg7" in c["runtime_error"]
        assert facts["capture"]["error"].startswith("libpcap is not installed (libpcap.so.0.8: ")
        assert "apt-get install libpcap0.8" in facts["capture"]["error"]
    # The findings say the runtime view is unavailable, and why.
    evidence = " ".join(e for f in out["findings"] for e in f.get("evidence", []))
    assert "libcmap4" in evidence, out["findings"]
