"""The concurrent load both the load test and bench/broker drive: N sessions,
each an agent sending M allowed requests one after another on its own session
socket, all sessions at once. Returns the per-request latencies and every
error seen (a wrong reply, a wrong exit status, a connection problem)."""
import threading
import time

from broker_helpers import Raw, exec_raw, open_session


def run_load(broker, sessions=200, per_session=50, argv=("/bin/true",)):
    holders = []
    sockets = []
    for i in range(sessions):
        h, sock, _ = open_session(broker, agent=f"load-{i}")
        holders.append(h)
        sockets.append(sock)
    latencies = []
    errors = []
    lock = threading.Lock()
    start = threading.Barrier(sessions)

    def agent(sock):
        mine = []
        try:
            c = Raw(sock)
            start.wait()
            for _ in range(per_session):
                t0 = time.perf_counter()
                first, final, _ = exec_raw(c, list(argv))
                mine.append(time.perf_counter() - t0)
                if final.get("type") != "done" or final["request"]["state"] != "succeeded" \
                        or final["request"].get("exit_status") != 0:
                    with lock:
                        errors.append(final)
            c.close()
        except Exception as e:  # noqa: BLE001 - every failure counts as an error
            with lock:
                errors.append(repr(e))
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=agent, args=(s,)) for s in sockets]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for h in holders:
        h.close()
    return latencies, errors, elapsed


def percentile(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100 * (len(v) - 1)))))
    return v[k]
