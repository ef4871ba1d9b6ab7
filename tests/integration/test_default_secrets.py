"""Every secret class of the embedded default policy is masked in `airlock run`.

For each path class the default policy names (data/policy.yaml), a file is
put there if the machine has none, readable by everyone so that only the mask
can stop the agent. It reads back outside; inside it is empty. The files this
test created are removed again.
"""
import os
import pathlib
import subprocess

import pytest

from conftest import AIRLOCK, ROOT

TOKEN = "airlock-default-secret-token"

# (path to create if absent, why it is secret). One per class added to the
# default beyond the classes the escape corpus already covers.
CASES = [
    ("/etc/libvirt/secrets/airlock-test.base64", "libvirt's stored secret"),
    ("/etc/NetworkManager/system-connections/airlock-test.nmconnection", "a Wi-Fi password"),
    ("/etc/ipsec.secrets", "IPsec pre-shared keys"),
    ("/etc/ppp/chap-secrets", "PPP passwords"),
    ("/etc/postfix/sasl_passwd", "the mail relay's password"),
    ("/etc/mysql/debian.cnf", "the MySQL maintenance password"),
    ("/var/backups/shadow.bak", "Debian's backup of /etc/shadow"),
]


@pytest.fixture
def planted(request):
    """Creates path (and missing parents) unless it exists; yields whether the
    test may write its own token there; removes what it made."""
    made = []

    def plant(path):
        p = pathlib.Path(path)
        if p.exists():
            return False
        missing = []
        d = p.parent
        while not d.exists():
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            d.mkdir(mode=0o755)
            made.append(d)
        p.write_text(TOKEN + "\n")
        os.chmod(p, 0o644)
        made.append(p)
        return True

    yield plant
    for p in reversed(made):
        if p.is_dir():
            p.rmdir()
        else:
            p.unlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="plants files under /etc: needs root")
@pytest.mark.parametrize("path,what", CASES, ids=[c[0] for c in CASES])
def test_default_policy_masks(path, what, planted, tmp_path):
    ours = planted(path)
    if ours:
        assert pathlib.Path(path).read_text().strip() == TOKEN  # outside: readable
    env = dict(os.environ, AIRLOCK_POLICY=str(ROOT / "data" / "policy.yaml"))
    r = subprocess.run([str(AIRLOCK), "run", "--workspace", str(tmp_path), "--", "/bin/cat", path],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode in (0, 1), f"airlock run failed to start: {r.stderr}"
    assert TOKEN not in r.stdout, f"{path} ({what}) is readable inside the sandbox"
    if ours:
        assert r.stdout.strip() == "", f"{path} ({what}) should read as empty inside: {r.stdout!r} {r.stderr!r}"
