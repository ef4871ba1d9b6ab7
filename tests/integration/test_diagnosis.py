"""The sandbox is for diagnosis: the real tools an agent uses work inside it.

Each test runs the tool outside and inside `airlock run` and checks that
inside it exits as it does outside and shows what a diagnosis needs.
"""
import os
import pathlib
import shutil
import socket
import subprocess

import pytest

from escape_helpers import Listener, describe, expect_ran, lab, outside  # noqa: F401


def test_ps(lab):
    r = lab.inside("ps", "-eo", "pid,user,comm")
    expect_ran(r, "ps inside")
    assert "ps" in r.stdout.split(), describe(r)
    r = lab.sh_inside("sleep 5 & p=$!; i=0; while [ \"$(cat /proc/$p/comm)\" != sleep ] && [ $i -lt 500 ]; "
                      "do i=$((i+1)); done; ps -o pid,comm; kill $p")
    assert "sleep" in r.stdout, describe(r)


def test_top_batch(lab):
    r = lab.inside("top", "-b", "-n", "1")
    expect_ran(r, "top -b inside")
    assert "load average" in r.stdout, describe(r)


@pytest.fixture
def host_listener():
    l = Listener(socket.AF_INET, ("127.0.0.1", 0))
    yield l
    l.close()


def test_ss_sees_the_hosts_listeners_in_host_mode(lab, host_listener):
    port = f":{host_listener.port}"
    assert port in outside("ss", "-ltn").stdout
    r = lab.inside("ss", "-ltn", profile="hostnet")
    expect_ran(r, "ss inside (host mode)")
    assert port in r.stdout, f"ss inside host mode should list the host's listener {port}:{describe(r)}"


def test_ss_in_the_default_network_mode(lab):
    r = lab.inside("ss", "-a")
    expect_ran(r, "ss inside (--net none)")
    assert "State" in r.stdout or "Netid" in r.stdout, describe(r)


def test_ip_addr(lab):
    r = lab.inside("ip", "addr")
    expect_ran(r, "ip addr inside")
    assert "127.0.0.1" in r.stdout, describe(r)
    # host mode shows the host's interfaces: at least lo's and the default route's addresses
    # (other tests on this machine add and remove veth pairs meanwhile, so not the exact set)
    route = outside("ip", "-4", "route", "show", "default").stdout.split()
    dev = route[route.index("dev") + 1] if "dev" in route else "lo"
    stable = [l.split()[3] for l in outside("ip", "-o", "-4", "addr").stdout.splitlines()
              if l.split()[1] in ("lo", dev)]
    r = lab.inside("ip", "-o", "-4", "addr", profile="hostnet")
    expect_ran(r, "ip addr inside (host mode)")
    inside = [l.split()[3] for l in r.stdout.splitlines()]
    assert stable and set(stable) <= set(inside), f"host addresses {stable} missing inside:{describe(r)}"


def test_ip_route_and_link(lab):
    for argv in (["ip", "route"], ["ip", "link"], ["ip", "-s", "link", "show", "lo"]):
        r = lab.inside(*argv, profile="hostnet")
        expect_ran(r, " ".join(argv))
    assert "default" in lab.inside("ip", "route", profile="hostnet").stdout or \
        "default" not in outside("ip", "route").stdout


@pytest.fixture(scope="module")
def test_journal(lab):
    """A real journal: systemd-journald run in a private mount namespace (no systemd here),
    fed with systemd-cat and logger, its file copied into a directory the agent can read."""
    journald = pathlib.Path("/lib/systemd/systemd-journald")
    if not journald.exists() or not shutil.which("systemd-cat"):
        pytest.skip("systemd-journald or systemd-cat is not installed")
    dest = lab.hostfile("journal")
    dest.mkdir()
    script = f"""
set -e
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/log
[ -d /var/log/journal ] && mount -t tmpfs tmpfs /var/log/journal
{journald} & j=$!
for i in $(seq 600); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
echo "corosync[1486]: link down on host xenon" | systemd-cat -t corosync-test -p err
echo "pvedaemon slow: waiting for quorum" | systemd-cat -t pvedaemon-test -p warning
# journald takes each stream in its own time: wait until both messages are in its file
for i in $(seq 600); do
  m=$(journalctl -q -D /run/log/journal -t corosync-test -t pvedaemon-test -o cat 2>/dev/null || true)
  case "$m" in *"link down on host xenon"*) case "$m" in *"waiting for quorum"*) break;; esac;; esac
  sleep 0.05
done
kill $j; wait $j || true
cp -r /run/log/journal/. {dest}/
chmod -R a+rX {dest}
"""
    out = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=180)
    files = list(dest.rglob("*.journal"))
    if out.returncode != 0 or not files:
        pytest.fail(f"could not make a test journal: {out.stderr}")
    yield dest, files[0]
    shutil.rmtree(dest, ignore_errors=True)


def test_journalctl_on_a_test_journal(lab, test_journal):
    d, f = test_journal
    out = outside("journalctl", "-D", d, "--no-pager", "-t", "corosync-test")
    assert "link down on host xenon" in out.stdout, describe(out)
    r = lab.inside("journalctl", "-D", d, "--no-pager", "-t", "corosync-test")
    expect_ran(r, "journalctl -D inside")
    assert "link down on host xenon" in r.stdout, describe(r)
    r = lab.inside("journalctl", "--file", f, "--no-pager", "-p", "warning", "-o", "json")
    expect_ran(r, "journalctl --file inside")
    assert "pvedaemon slow" in r.stdout and "corosync" in r.stdout, describe(r)


def test_systemctl_status_without_systemd(lab):
    """This machine has no systemd as PID 1: systemctl answers the same, normal way inside."""
    out = outside("systemctl", "status", "corosync")
    if "has not been booted with systemd" not in out.stderr:
        pytest.skip("systemd runs here; the host's status answer differs by unit")
    r = lab.inside("systemctl", "status", "corosync")
    assert r.returncode == out.returncode, describe(r)
    assert "has not been booted with systemd" in r.stderr, describe(r)


def test_cat_etc_files(lab):
    for path in ("/etc/hostname", "/etc/os-release", "/etc/passwd", "/etc/hosts", "/etc/fstab"):
        if not os.path.exists(path):
            continue
        r = lab.inside("cat", path)
        expect_ran(r, f"cat {path}")
        assert r.stdout == pathlib.Path(path).read_text(), f"{path} differs inside:{describe(r)}"


def test_grep_r_etc(lab):
    """grep -r over all of /etc works; secrets read as empty so the token is never found."""
    needle = pathlib.Path("/etc/passwd").read_text().splitlines()[0]
    # this lab's own token (another run's lab may have its own, unmasked by this policy)
    r = lab.inside("grep", "-rsF", "-e", needle, "-e", lab.token, "/etc", timeout=120)
    # 0, or 2 when some file is unreadable to the agent (e.g. /etc/sudoers): both still search
    assert r.returncode in (0, 2), describe(r)
    assert f"/etc/passwd:{needle}" in r.stdout, describe(r)
    assert lab.token not in r.stdout
    assert lab.token in outside("grep", "-rsF", lab.token, "/etc").stdout


def test_logs_and_system_state(lab):
    for argv in (["df", "-h"], ["free", "-m"], ["uptime"], ["findmnt"], ["ls", "-la", "/var/log"],
                 ["cat", "/proc/meminfo"], ["lsof", "-n", "-p", "1"], ["id"], ["uname", "-a"]):
        if not shutil.which(argv[0]):
            continue  # (lsof is optional here; the others are in every Debian)
        r = lab.inside(*argv)
        assert r.returncode in (0,), f"{argv} fails inside:{describe(r)}"
