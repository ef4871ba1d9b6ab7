"""Kernel attack surface the agent never needs: rare socket families and line disciplines.

socket() of a family the kernel has as a module loads that module on demand
(net-pf-N), and TIOCSETD loads a line discipline (n_gsm, n_hdlc, ...) when
dev.tty.ldisc_autoload is on: code no agent uses, where kernel exploits start.
The seccomp filter refuses both with EPERM. Each test shows the call working
outside (as root) or, for a family this kernel lacks, failing outside with the
kernel's own EAFNOSUPPORT, and failing inside with the filter's EPERM.
"""
import json
import os
import subprocess

import pytest

from conftest import AIRLOCK

SCRIPT = r"""
import errno, fcntl, json, os, socket, struct, sys, termios
out = {}
for fam, typ in ((socket.AF_UNIX, socket.SOCK_STREAM), (socket.AF_INET, socket.SOCK_STREAM),
                 (socket.AF_NETLINK, socket.SOCK_RAW), (44, socket.SOCK_RAW), (38, socket.SOCK_SEQPACKET),
                 (9, socket.SOCK_DGRAM), (30, socket.SOCK_SEQPACKET), (21, socket.SOCK_SEQPACKET)):
    try:
        socket.socket(fam, typ).close(); out[str(fam)] = "OK"
    except OSError as e:
        out[str(fam)] = errno.errorcode[e.errno]
m, s = os.openpty()
try:
    fcntl.ioctl(s, termios.TIOCSETD, struct.pack("i", 0)); out["TIOCSETD"] = "OK"
except OSError as e:
    out["TIOCSETD"] = errno.errorcode[e.errno]
print(json.dumps(out))
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="compares with what root can do outside")


def outside():
    r = subprocess.run(["python3", "-c", SCRIPT], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def inside(tmp_path, net="none"):
    r = subprocess.run([str(AIRLOCK), "run", "--net", net, "--workspace", str(tmp_path), "--",
                        "python3", "-c", SCRIPT], capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "AIRLOCK_POLICY"})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("net", ["none", "host"])
def test_rare_socket_families(tmp_path, net):
    out, ins = outside(), inside(tmp_path, net)
    # the families an agent uses still work inside
    assert ins["1"] == "OK" and ins["16"] == "OK"
    if net == "host":
        assert ins["2"] == "OK"
    # AF_XDP (44): root makes one outside; inside the filter refuses it
    assert out["44"] == "OK", out
    assert ins["44"] == "EPERM", ins
    # AF_ALG, AF_X25, AF_TIPC, AF_RDS: whatever this kernel has (module or
    # not), inside the answer is the filter's
    for fam in ("38", "9", "30", "21"):
        assert out[fam] in ("OK", "EAFNOSUPPORT", "EPROTONOSUPPORT", "ESOCKTNOSUPPORT"), (fam, out)
        assert ins[fam] == "EPERM", (fam, ins)


def test_line_discipline_change(tmp_path):
    assert outside()["TIOCSETD"] == "OK"
    assert inside(tmp_path)["TIOCSETD"] == "EPERM"
