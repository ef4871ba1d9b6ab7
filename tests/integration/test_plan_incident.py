"""The incident (issue 6, Proof): four spellings of copying the corosync
authkey away are each planned as reading the secret (the first two also as
connecting to xenon:22) and denied by the default policy, and the host is
unchanged after every plan.
"""
import os
import pathlib
import shutil

import pytest

from plan_helpers import XENON, HostUnchanged, needs_root, plan, policy_with_inventory

AUTHKEY = pathlib.Path("/etc/corosync/authkey")
SHARE = pathlib.Path("/srv/share")


@pytest.fixture(scope="module")
def authkey():
    """The machine's authkey, or a fake one (128 random bytes, as corosync-keygen makes) that is
    removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("airlock plan needs root")
    created_key = not AUTHKEY.exists()
    created_dir = not AUTHKEY.parent.exists()
    created_share = not SHARE.exists()
    if created_key:
        AUTHKEY.parent.mkdir(parents=True, exist_ok=True)
        AUTHKEY.write_bytes(os.urandom(128))
        os.chmod(AUTHKEY, 0o400)
    SHARE.mkdir(parents=True, exist_ok=True)
    yield AUTHKEY
    if created_key:
        AUTHKEY.unlink()
    if created_dir:
        shutil.rmtree(AUTHKEY.parent)
    if created_share:
        shutil.rmtree(SHARE)


@pytest.fixture
def policy(tmp_path):
    return policy_with_inventory(tmp_path)


def reads_authkey(p):
    return any(s["path"] == str(AUTHKEY) for s in p["secrets"])


def connects_xenon_22(p):
    return any(n["host"] == "xenon" and n["address"] == XENON and n["port"] == 22 and n["blocked"]
               for n in p["network"])


def assert_denied_for_secret(d):
    assert d["action"] == "deny"
    assert "reads a secret" in d["reason"]
    assert f"reads secret {AUTHKEY}" in d["reason"]


def test_scp_to_xenon(authkey, policy):
    with HostUnchanged("/etc/corosync", SHARE, marker="scp /etc/corosync/authkey"):
        code, p, d, _ = plan("scp", str(AUTHKEY), "root@xenon:/etc/corosync/", policy=policy,
                             expect=77)
    assert reads_authkey(p)
    assert connects_xenon_22(p), p["network"]
    assert not p["complete"]
    assert p["output_withheld"]
    assert_denied_for_secret(d)


def test_cat_pipe_ssh(authkey, policy):
    with HostUnchanged("/etc/corosync", SHARE, marker="cat > /etc/corosync/authkey"):
        code, p, d, _ = plan("sh", "-c", f"cat {AUTHKEY} | ssh xenon 'cat > /etc/corosync/authkey'",
                             policy=policy, expect=77)
    assert reads_authkey(p)
    assert connects_xenon_22(p), p["network"]
    assert_denied_for_secret(d)
    assert any(e["argv"][:1] == ["ssh"] for e in p["execs"])


def test_cp_to_share(authkey, policy):
    with HostUnchanged("/etc/corosync", SHARE):
        code, p, d, _ = plan("cp", str(AUTHKEY), "/srv/share/k", policy=policy, expect=77)
    assert reads_authkey(p)
    files = {f["path"]: f for f in p["files"]}
    assert files["/srv/share/k"]["change"] == "created"
    assert files["/srv/share/k"]["secret_content"] == str(AUTHKEY)
    assert "diff" not in files["/srv/share/k"]
    assert p["complete"]
    assert_denied_for_secret(d)
    effects = {r["effect"] for r in d["effect_rules"]}
    assert any("secret's content to /srv/share/k" in e for e in effects), effects
    assert not pathlib.Path("/srv/share/k").exists()


def test_python_copy(authkey, policy):
    code = (f"import shutil; shutil.copyfile('{AUTHKEY}', '/srv/share/k2')")
    with HostUnchanged("/etc/corosync", SHARE):
        rc, p, d, _ = plan("python3", "-c", code, policy=policy, expect=77)
    assert reads_authkey(p)
    files = {f["path"]: f for f in p["files"]}
    assert files["/srv/share/k2"]["secret_content"] == str(AUTHKEY)
    assert_denied_for_secret(d)


def test_base64_copy_is_recognised(authkey, policy):
    """Another spelling: the key's bytes, base64-encoded into a file with another name."""
    with HostUnchanged("/etc/corosync", SHARE):
        rc, p, d, _ = plan("sh", "-c", f"base64 {AUTHKEY} > /srv/share/notes.txt", policy=policy,
                           expect=77)
    files = {f["path"]: f for f in p["files"]}
    assert files["/srv/share/notes.txt"]["secret_content"] == str(AUTHKEY)
    assert "diff" not in files["/srv/share/notes.txt"]


def test_printed_plan_names_what_matters(authkey, policy):
    """What the approver reads: the secret, xenon:22, the decision — escaped, in words."""
    import subprocess
    from conftest import AIRLOCK
    r = subprocess.run([str(AIRLOCK), "plan", "--policy", str(policy), "--", "scp", str(AUTHKEY),
                        "root@xenon:/etc/corosync/"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 77, r.stderr
    assert f"reads {AUTHKEY}" in r.stdout
    assert f"xenon ({XENON}) port 22" in r.stdout
    assert "Fidelity: PARTIAL" in r.stdout
    assert "Decision: deny" in r.stdout
    assert "Output: withheld" in r.stdout
