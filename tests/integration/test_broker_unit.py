"""airlockd.service passes systemd-analyze verify, and airlockd does what the
unit expects of it: Type=notify (READY=1 on a notify socket), foreground,
stops on SIGTERM, reloads on SIGHUP (ExecReload)."""
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile

import pytest

from broker_helpers import BASE_RULES, policy_text
from conftest import AIRLOCK, AIRLOCKD, ROOT

UNIT = ROOT / "data" / "airlockd.service"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_unit_verifies(tmp_path):
    # the unit names /usr/sbin/airlockd (where it is installed); verify it
    # against the built binary, without requiring the man pages installed
    text = UNIT.read_text()
    assert "ExecStart=/usr/sbin/airlockd\n" in text
    unit = tmp_path / "airlockd.service"
    unit.write_text(text.replace("ExecStart=/usr/sbin/airlockd", f"ExecStart={AIRLOCKD}"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Type=notify" in text and "ExecReload=/bin/kill -HUP $MAINPID" in text


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_pool_unit_verifies(tmp_path):
    """airlock-pool@.service: verified as systemd would load an instance of it; stopping it
    signals only the pool (a taken sandbox belongs to its airlock run)."""
    text = (ROOT / "data" / "airlock-pool@.service").read_text()
    assert "ExecStart=/usr/bin/airlock pool $AIRLOCK_POOL_OPTIONS\n" in text
    assert "KillMode=process\n" in text
    conf = tmp_path / "demo.conf"
    conf.write_text("AIRLOCK_POOL_OPTIONS=--workspace /srv --size 1\n")
    unit = tmp_path / "airlock-pool@demo.service"
    unit.write_text(text.replace("ExecStart=/usr/bin/airlock", f"ExecStart={AIRLOCK}")
                    .replace("/etc/airlock/pool/%i.conf", str(conf)))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    # the other side: verify does report a mistake in this unit
    bad = tmp_path / "airlock-pool@bad.service"
    bad.write_text(unit.read_text().replace("Type=simple", "Type=bogus"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(bad)],
                       capture_output=True, text=True)
    assert "bogus" in r.stderr, r.stderr


def test_ready_notification(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("airlockd runs as root")
    pol = tmp_path / "p.yaml"
    pol.write_text(policy_text(BASE_RULES))
    rt = pathlib.Path(tempfile.mkdtemp(prefix="airlock-rt-"))
    ns = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(ns))
    s.settimeout(10)
    p = subprocess.Popen([str(AIRLOCKD), "--config", str(pol), "--state-dir",
                          str(tmp_path / "st"), "--runtime-dir", str(rt)],
                         env=dict(os.environ, NOTIFY_SOCKET=str(ns)),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        msg = s.recv(4096).decode()
        assert "READY=1" in msg
        assert (rt / "admin.sock").exists()  # ready means listening
        p.terminate()
        assert p.wait(10) == 0
        assert not (rt / "admin.sock").exists()
    finally:
        if p.poll() is None:
            p.kill()
        shutil.rmtree(rt, ignore_errors=True)
