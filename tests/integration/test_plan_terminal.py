"""The planned command never reaches the terminal `airlock plan` runs on.

It runs in a session of its own without a controlling terminal, and the
snapshot's /dev has no tty node: no TIOCSTI into the admin's shell, no reading
what they type. Shown both ways: the same command started directly on the
terminal opens /dev/tty; planned, it cannot.
"""
import fcntl
import os
import select
import subprocess
import termios

import pytest

from conftest import AIRLOCK

# The results are computed, so that the command line echoed in the plan never matches.
PROBE = ("if (exec 3</dev/tty && [ -t 3 ]) 2>/dev/null; then echo TTY-$((40+2)); "
         "else echo TTY-$((40+3)); fi")
OPENED, REFUSED = "TTY-42", "TTY-43"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="airlock plan needs root")


def on_a_terminal(argv):
    """Runs argv with a new pty as its controlling terminal; returns what it printed."""
    master, slave = os.openpty()

    def take_tty():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                         preexec_fn=take_tty, env={k: v for k, v in os.environ.items()
                                                   if k != "AIRLOCK_POLICY"})
    os.close(slave)
    out = b""
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side has closed
            break
        if not chunk:
            break
        out += chunk
    p.wait(timeout=60)
    os.close(master)
    return out.decode(errors="replace")


def test_planned_command_cannot_open_the_terminal():
    outside = on_a_terminal(["sh", "-c", PROBE])
    assert OPENED in outside, outside
    inside = on_a_terminal([str(AIRLOCK), "plan", "--", "sh", "-c", PROBE])
    assert REFUSED in inside, inside
    assert OPENED not in inside, inside
