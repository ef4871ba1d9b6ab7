"""Escape corpus: the human's terminal.

The test plays the human: airlock run is started on a pseudo-terminal the test
owns (its master side is the human's screen and keyboard). Outside, a program
on that terminal can push keystrokes into it (TIOCSTI), change its modes, and
any program can write to it by path. Inside, the agent has a terminal of its
own, TIOCSTI and TIOCLINUX are refused, and the human's terminal is restored.
"""
import os
import pty
import select
import subprocess
import termios
import time

import pytest

from conftest import AIRLOCK
from escape_helpers import PROBE, describe, expect_denied, expect_ok, lab, result  # noqa: F401


class Terminal:
    """A pty pair: the test holds the master (the human), programs get the slave."""

    def __init__(self):
        self.master, self.slave = pty.openpty()
        self.path = os.ttyname(self.slave)

    def run(self, argv, env=None, timeout=30):
        """Runs argv with the slave as stdin/stdout/stderr; returns (exit status, screen text)."""
        p = subprocess.Popen([str(a) for a in argv], stdin=self.slave, stdout=self.slave,
                             stderr=self.slave, env=env, start_new_session=True)
        screen = self.drain_until(p, timeout)
        return p.returncode, screen

    def drain_until(self, p, timeout):
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.master], [], [], 0.05)
            if r:
                try:
                    out += os.read(self.master, 65536)
                except OSError:
                    break
            elif p.poll() is not None:
                # one last read for what is still buffered
                r, _, _ = select.select([self.master], [], [], 0.1)
                if not r:
                    break
        if p.poll() is None:
            p.kill()
            p.wait()
            raise AssertionError(f"{p.args} did not finish within {timeout}s; screen: {out!r}")
        return out.decode(errors="replace").replace("\r\n", "\n")

    def pending_input(self):
        """What is queued in the terminal's input (what the human's shell would read next)."""
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            return os.read(fd, 4096)
        except BlockingIOError:
            return b""
        finally:
            os.close(fd)

    def close(self):
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def term():
    t = Terminal()
    yield t
    t.close()


def airlock_run(lab, *argv, profile=None):
    cmd = [AIRLOCK, "run", "--workspace", lab.workspace]
    if profile:
        cmd += ["--profile", profile]
    return [*cmd, "--", *argv]


def env_for(lab):
    e = dict(os.environ)
    e["AIRLOCK_POLICY"] = str(lab.policy)
    e["TERM"] = "xterm"
    return e


def probe_line(screen):
    for line in screen.splitlines():
        if line.startswith(("OK", "ERR")):
            return line.strip()
    return None


def test_tiocsti_injects_keystrokes_outside_but_not_inside(lab, term):
    rc, screen = term.run([PROBE, "tiocsti", "0", "echo owned\n"])
    assert probe_line(screen) == "OK injected", screen
    assert b"echo owned" in term.pending_input(), "outside, TIOCSTI queues input for the human's shell"
    if os.environ.get("AIRLOCK_ESCAPE_OUTSIDE_ONLY") == "1":
        pytest.skip("outside half only")
    rc, screen = term.run(airlock_run(lab, lab.probe, "tiocsti", "0", "echo owned\n"), env=env_for(lab))
    assert probe_line(screen) and probe_line(screen).startswith("ERR EPERM"), \
        f"TIOCSTI inside must be refused; screen: {screen!r} (exit {rc})"
    assert b"owned" not in term.pending_input(), "keystrokes reached the human's terminal"


def test_tiocsti_with_high_bits_in_the_request(lab, term):
    """The kernel uses the low 32 bits of the ioctl request; a filter comparing 64 bits misses it."""
    high = str(0xdead)
    rc, screen = term.run([PROBE, "tiocsti", "0", "id\n", high])
    assert probe_line(screen) == "OK injected", screen
    assert b"id" in term.pending_input()
    if os.environ.get("AIRLOCK_ESCAPE_OUTSIDE_ONLY") == "1":
        pytest.skip("outside half only")
    rc, screen = term.run(airlock_run(lab, lab.probe, "tiocsti", "0", "id\n", high), env=env_for(lab))
    line = probe_line(screen)
    assert line and line.startswith("ERR EPERM"), f"TIOCSTI with high bits inside: {screen!r} (exit {rc})"
    assert b"id" not in term.pending_input()


def test_tioclinux(lab, term):
    """TIOCLINUX (console selection paste, the other keystroke injector): refused inside.
    Outside root uses it on a virtual console; on a pty the kernel answers ENOTTY, not EPERM."""
    if os.path.exists("/dev/tty1"):
        fd = os.open("/dev/tty1", os.O_RDONLY | os.O_NOCTTY)
        try:
            out = subprocess.run([PROBE, "tioclinux", str(fd)], pass_fds=(fd,), capture_output=True, text=True)
            assert out.stdout.startswith("OK"), out.stdout
        finally:
            os.close(fd)
    rc, screen = term.run([PROBE, "tioclinux", "0"])
    outside_errno = probe_line(screen)
    assert outside_errno and not outside_errno.startswith("ERR EPERM"), screen
    if os.environ.get("AIRLOCK_ESCAPE_OUTSIDE_ONLY") == "1":
        pytest.skip("outside half only")
    rc, screen = term.run(airlock_run(lab, lab.probe, "tioclinux", "0"), env=env_for(lab))
    line = probe_line(screen)
    assert line and line.startswith("ERR EPERM"), f"TIOCLINUX inside: {screen!r} (exit {rc})"


def test_agent_has_a_terminal_of_its_own(lab, term):
    st = os.fstat(term.slave)
    human = f"{st.st_dev} {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    rc, screen = term.run(["sh", "-c", "stat -L -c '%d %t:%T' /proc/self/fd/0"])
    assert screen.strip() == " ".join([human.split()[0], "%x:%x" % (os.major(st.st_rdev), os.minor(st.st_rdev))]), screen
    if os.environ.get("AIRLOCK_ESCAPE_OUTSIDE_ONLY") == "1":
        pytest.skip("outside half only")
    rc, screen = term.run(airlock_run(lab, "sh", "-c", "stat -L -c 'TTY %d %t:%T' /proc/self/fd/0 /proc/self/fd/1"),
                          env=env_for(lab))
    ttys = [l.split(" ", 1)[1] for l in screen.splitlines() if l.startswith("TTY ")]
    assert len(ttys) == 2, f"screen: {screen!r} (exit {rc})"
    ours = " ".join([human.split()[0], "%x:%x" % (os.major(st.st_rdev), os.minor(st.st_rdev))])
    assert ours not in ttys, f"the agent holds the human's terminal: {ttys}"


def drain(fd, quiet=0.2):
    """Everything readable from fd until it has been quiet for `quiet` seconds."""
    got = b""
    while True:
        r, _, _ = select.select([fd], [], [], quiet)
        if not r:
            return got
        got += os.read(fd, 4096)


def test_human_terminal_by_path(lab, term):
    """Writing to the human's pty by its /dev/pts path (write(1), wall)."""
    outside_marker = "OUTSIDE-" + lab.tag
    inside_marker = "INSIDE-" + lab.tag
    subprocess.run(["sh", "-c", f"echo {outside_marker} > {term.path}"], check=True)
    assert outside_marker.encode() in drain(term.master, 1.0), "outside, any root process writes to the pty"
    cp = lab.sh_inside(f"for t in /dev/pts/[0-9]* {term.path}; do echo {inside_marker} > $t 2>/dev/null; done; echo done")
    assert "done" in cp.stdout, describe(cp)
    assert inside_marker.encode() not in drain(term.master, 0.3), "the agent wrote onto the human's terminal"


def test_terminal_modes_are_restored(lab, term):
    before = termios.tcgetattr(term.slave)
    rc, _ = term.run(["stty", "raw", "-echo"])
    assert termios.tcgetattr(term.slave) != before, "outside, a program changes the terminal's modes"
    termios.tcsetattr(term.slave, termios.TCSANOW, before)
    if os.environ.get("AIRLOCK_ESCAPE_OUTSIDE_ONLY") == "1":
        pytest.skip("outside half only")
    rc, screen = term.run(airlock_run(lab, "sh", "-c", "stty raw -echo; stty -a | head -1"), env=env_for(lab))
    assert termios.tcgetattr(term.slave) == before, f"the human's terminal modes changed; screen {screen!r}"
