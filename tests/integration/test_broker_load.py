"""200 concurrent sessions (each its own session socket, as 200 sandboxed
agents would have) sending 50 allowed requests each: every one must succeed."""
import os

import pytest

from broker_helpers import BASE_RULES, Broker, ensure_users, policy_text
from broker_load import percentile, run_load


def test_200_sessions_50_requests_each_zero_errors(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("airlockd runs as root")
    ensure_users()
    b = Broker(tmp_path, policy_text(BASE_RULES)).start()
    try:
        lat, errors, elapsed = run_load(b, sessions=200, per_session=50)
        assert errors == []
        assert len(lat) == 200 * 50
        print(f"\n10000 requests in {elapsed:.1f} s; p50 {percentile(lat, 50) * 1000:.1f} ms, "
              f"p99 {percentile(lat, 99) * 1000:.1f} ms")
        # every request is on record, and the broker is still serving
        assert b.proc.poll() is None
        assert b.airlock("exec", "--", "echo", "after").stdout == "after\n"
    finally:
        b.stop()
