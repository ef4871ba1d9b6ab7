"""Crash test: the writer is SIGKILLed at random moments during heavy
appends from many threads, 200 times. Every record it acknowledged (printed
after audit_append() returned, i.e. after fdatasync) must be in the file
with the content it wrote; the log must verify (at worst with a torn last
line or an unsealed tail, each reported as such); and after a clean restart
the whole log verifies with the key, torn writes recorded as evidence.

A SIGKILL seldom lands inside write() itself, so in every third run the
test also cuts the file inside its last line, as a power cut during the
write would, when that line is a record nobody was told about (not
acknowledged, not a seal, whose key may already have moved on)."""
import json
import os
import random
import signal
import subprocess
import time

from audit_helpers import WRITER, records, setup_keys, verify, write

RUNS = 200


def test_sigkill_during_appends(tmp_path):
    state = tmp_path / "state"
    vkey = setup_keys(state)
    log = state / "audit.log"
    seed = int(os.environ.get("AIRLOCK_CRASH_SEED", "20261128"))
    rng = random.Random(seed)
    torn_seen = acked_total = cuts = 0
    for run in range(RUNS):
        start = log.stat().st_size if log.exists() else 0
        p = subprocess.Popen([str(WRITER), "--state-dir", str(state), "--threads", "16",
                              "--records", "0", "--seal-every", "25"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if run % 3 == 2:
            # A run that may simulate a torn write needs a record of its own to cut: the
            # random moment counts from the writer's first append, not from its start
            # (which a slow build may not finish within the window). The other runs keep
            # counting from the start, so kills before the first record stay covered.
            deadline = time.time() + 30
            while (p.poll() is None and time.time() < deadline and
                   (log.stat().st_size if log.exists() else 0) <= start):
                time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.03))
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate()
        assert p.returncode == -signal.SIGKILL, (run, seed, err)
        acks = [l.split() for l in out.decode().splitlines() if l.startswith("ack ")]
        acked_total += len(acks)
        if not log.exists():  # killed before it created the log
            assert not acks, (run, seed)
            continue
        data = log.read_bytes()
        acked = {int(a[1]) for a in acks}
        if run % 3 == 2 and data.endswith(b"\n"):
            last_start = data.rfind(b"\n", 0, len(data) - 1) + 1
            last = json.loads(data[last_start:])
            if last["seq"] not in acked and last["event"] != "seal" and last_start >= start:
                cut = last_start + rng.randrange(1, len(data) - last_start - 1)
                os.truncate(log, cut)
                data = data[:cut]
                cuts += 1
        recs = records(data[start:])
        for _, seq, t, i in acks:
            rec = recs.get(int(seq))
            assert rec is not None, f"run {run} (seed {seed}): acknowledged seq {seq} is not in the log"
            assert rec["details"]["t"] == int(t) and rec["details"]["i"] == int(i), (run, seed, seq)
        v = verify(log, "--key", vkey)
        # Killed before the first record: an empty log, and nothing was acknowledged.
        assert v["problem"] in ("ok", "torn", "unsealed-tail") or (
            v["problem"] == "empty" and not acks), (run, seed, v)
        if data and not data.endswith(b"\n"):
            assert v["problem"] == "torn" and v["torn_tail"], (run, seed, v)
            torn_seen += 1
    # A clean start after the last crash records any torn tail, then closes.
    write(state, "--records", "1", "--threads", "1")
    v = verify(log, "--key", vkey)
    assert v["ok"] and v["closed"], v
    assert v["torn_recorded"] >= min(torn_seen, 1), (torn_seen, v)
    assert cuts > 0 and torn_seen >= cuts
    print(f"{RUNS} kills ({cuts} with a simulated torn write), {acked_total} acknowledged records, {torn_seen} torn tails, "
          f"{v['torn_recorded']} recorded, {v['records']} records, {v['seals']} seals")
