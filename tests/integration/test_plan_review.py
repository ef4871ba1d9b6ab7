"""Plan fixes from review, each shown both ways.

- A file that replaces a symlink (or any other kind of file) is new content:
  diffed and scanned for secrets like a created file.
- A secret that is a symlink (/etc/letsencrypt/live/X/privkey.pem) is
  fingerprinted through the link: a copy is found.
(What a dry run that read a secret did is withheld from the agent that asked
by the broker, test_broker_plan_secrets.py; approvers see the whole plan.)
"""
import os
import shutil

import pytest

from plan_helpers import plan

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="airlock plan needs root")

KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n" \
      "airlock-review-test-secret-bytes-0123456789abcdef\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def site(tmp_path):
    """A directory outside /tmp (the plan's own /tmp is the host's): a real key file and a
    symlink to it named like certbot's; the policy lists the symlink's path only."""
    d = f"/srv/airlock-review-{os.getpid()}"
    os.makedirs(f"{d}/archive")
    os.makedirs(f"{d}/live")
    with open(f"{d}/archive/privkey1.pem", "w") as f:
        f.write(KEY)
    os.symlink(f"{d}/archive/privkey1.pem", f"{d}/live/privkey.pem")
    os.symlink("/etc/hostname", f"{d}/link")
    with open(f"{d}/plain", "w") as f:
        f.write("one\n")
    pol = tmp_path / "policy.yaml"
    pol.write_text(f"version: 1\nsecrets: [\"{d}/live/*.pem\"]\n")
    yield d, pol
    shutil.rmtree(d)


def file_effect(p, path):
    return next(f for f in p["files"] if f["path"] == path)


def test_a_file_replacing_a_symlink_is_new_content(site):
    d, pol = site
    _, p, _, _ = plan("sh", "-c", f"rm {d}/link; printf 'first\\nsecond\\n' > {d}/link", policy=pol)
    f = file_effect(p, f"{d}/link")
    assert "+first" in (f.get("diff") or ""), f
    # the same kind (a file rewritten in place) diffs as before
    _, p, _, _ = plan("sh", "-c", f"printf 'third\\n' >> {d}/plain", policy=pol)
    assert "+third" in (file_effect(p, f"{d}/plain").get("diff") or "")


def test_a_symlinked_secret_is_recognised_when_copied(site):
    d, pol = site
    # the plan reads the secret through its link and writes it over another kind of file
    _, p, _, _ = plan("sh", "-c", f"rm {d}/link; cat {d}/live/privkey.pem > {d}/link", policy=pol)
    f = file_effect(p, f"{d}/link")
    assert f.get("secret_content") == f"{d}/live/privkey.pem", f
    assert not f.get("diff"), f
    # a copy of a file that is no secret is not flagged (the other side)
    _, p, _, _ = plan("sh", "-c", f"cp /etc/hostname {d}/copy", policy=pol)
    assert not file_effect(p, f"{d}/copy").get("secret_content")
