"""Everyday admin commands and the effects their plans must show (issue 6,
Proof: golden tests), each with the host unchanged afterwards.
"""
import os
import pathlib
import shutil
import subprocess

import pytest

from plan_helpers import HostUnchanged, effects, needs_root, plan

WORK = pathlib.Path("/srv/airlock-plan-golden")


@pytest.fixture
def work():
    needs_root()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    (WORK / "app.conf").write_text("listen = 127.0.0.1\nworkers = 4\nlog = info\n")
    for name in ("a.conf", "b.conf", "c.conf"):
        (WORK / name).write_text(f"# {name}\nvalue = old\n")
    tree = WORK / "olddir"
    (tree / "sub").mkdir(parents=True)
    (tree / "one").write_text("1\n")
    (tree / "sub" / "two").write_text("2\n")
    src = WORK / "src"
    (src / "pkg" / "bin").mkdir(parents=True)
    (src / "pkg" / "README").write_text("read me\n")
    (src / "pkg" / "bin" / "tool").write_bytes(b"\x7fELF\x00\x01binary")
    subprocess.run(["tar", "-cf", str(WORK / "pkg.tar"), "-C", str(src), "pkg"], check=True)
    shutil.rmtree(src)
    (WORK / "out").mkdir()
    yield WORK
    shutil.rmtree(WORK, ignore_errors=True)


def test_sed_in_place(work):
    with HostUnchanged(work):
        _, p, _, _ = plan("sed", "-i", "s/workers = 4/workers = 8/", work / "app.conf")
    assert effects(p) == {("modified", str(work / "app.conf"))}
    f = p["files"][0]
    assert f["content_changed"] and not f["mode_changed"] and not f["owner_changed"]
    assert "-workers = 4\n+workers = 8\n" in f["diff"]
    assert f["diff"].startswith(f"--- a{work}/app.conf\n+++ b{work}/app.conf\n")
    assert p["complete"]
    assert p["exit_status"] == 0


def test_apt_get_simulate(work):
    needs_root()
    if not shutil.which("apt-get"):
        pytest.skip("apt-get is missing")
    with HostUnchanged("/var/lib/dpkg", "/var/log/apt", "/etc/apt"):
        _, p, _, _ = plan("apt-get", "install", "-s", "hello", timeout=120)
    # a simulation installs nothing: at most apt's own logs and caches change
    for change, path in effects(p):
        assert path.startswith(("/var/log/apt/", "/var/cache/apt/")), (change, path)
    assert not any(path.startswith(("/usr/", "/var/lib/dpkg/")) for _, path in effects(p))
    assert "Inst hello" in (p["output"] or "")


def test_useradd(work):
    with HostUnchanged("/etc/passwd", "/etc/group", "/etc/shadow", "/home/airlockplanuser"):
        code, p, d, _ = plan("useradd", "-m", "airlockplanuser", expect=77)
    e = effects(p)
    for f in ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"):
        assert ("modified", f) in e
    assert ("created", "/home/airlockplanuser") in e
    assert ("created", "/home/airlockplanuser/.profile") in e
    for _, path in e:
        assert path.startswith(("/etc/", "/home/airlockplanuser")), path
    files = {f["path"]: f for f in p["files"]}
    assert "airlockplanuser:x:" in files["/etc/passwd"]["diff"]
    assert "diff" not in files["/etc/shadow"]  # a secret is never shown
    # useradd reads /etc/shadow: the default policy denies that for an agent
    assert any(s["path"] == "/etc/shadow" for s in p["secrets"])
    assert d["action"] == "deny"
    assert subprocess.run(["id", "airlockplanuser"], capture_output=True).returncode != 0


def test_systemctl_restart(work):
    needs_root()
    if not shutil.which("systemctl"):
        pytest.skip("systemctl is missing")
    _, p, d, _ = plan("systemctl", "restart", "corosync")
    assert effects(p) == set()
    c = [c for c in p["contacts"] if "corosync" in c["daemon"]]
    assert c, p["contacts"]
    assert c[0]["meaning"] == "restarts corosync.service"
    assert d["action"] == "approve"


def test_rm_rf_directory(work):
    with HostUnchanged(work):
        _, p, _, _ = plan("rm", "-rf", work / "olddir")
    assert effects(p) == {("deleted", str(work / "olddir")),
                          ("deleted", str(work / "olddir/one")),
                          ("deleted", str(work / "olddir/sub")),
                          ("deleted", str(work / "olddir/sub/two"))}
    assert p["complete"]


def test_tar_extract(work):
    with HostUnchanged(work):
        _, p, _, _ = plan("tar", "-xf", work / "pkg.tar", "-C", work / "out")
    assert effects(p) == {("created", str(work / "out/pkg")),
                          ("created", str(work / "out/pkg/README")),
                          ("created", str(work / "out/pkg/bin")),
                          ("created", str(work / "out/pkg/bin/tool"))}
    files = {f["path"]: f for f in p["files"]}
    assert files[str(work / "out/pkg/README")]["diff"].endswith("+read me\n")
    assert files[str(work / "out/pkg/bin/tool")]["summary"].startswith("binary")
    assert files[str(work / "out/pkg/bin")]["type"] == "d"


def test_script_editing_three_files(work):
    script = work / "edit.sh"
    script.write_text("#!/bin/sh\nset -e\nfor f in a b c; do\n"
                      f"  sed -i 's/value = old/value = new/' {work}/$f.conf\ndone\n"
                      f"chmod 600 {work}/c.conf\n")
    script.chmod(0o755)
    with HostUnchanged(work):
        _, p, _, _ = plan(script)
    assert effects(p) == {("modified", str(work / f"{n}.conf")) for n in "abc"}
    files = {f["path"]: f for f in p["files"]}
    for n in "abc":
        assert "-value = old\n+value = new\n" in files[str(work / f"{n}.conf")]["diff"]
    assert files[str(work / "c.conf")]["mode_changed"]
    assert files[str(work / "c.conf")]["new_mode"] & 0o777 == 0o600
    assert not files[str(work / "a.conf")]["mode_changed"]


def test_rename_is_one_effect(work):
    with HostUnchanged(work):
        _, p, _, _ = plan("mv", work / "app.conf", work / "app.conf.bak")
    assert effects(p) == {("renamed", str(work / "app.conf.bak"))}
    assert p["files"][0]["renamed_from"] == str(work / "app.conf")


def test_file_heavy_plan_leaves_nothing(work):
    """A larger command: thousands of files copied, all listed, nothing left on the host."""
    with HostUnchanged(work, "/tmp/airlock-plan-copy"):
        _, p, _, _ = plan("cp", "-a", "/usr/share/doc", "/tmp/airlock-plan-copy", timeout=120)
    created = [f for f in p["files"] if f["change"] == "created"]
    n = sum(1 for _ in pathlib.Path("/usr/share/doc").rglob("*")) + 1
    assert len(created) == n
    assert not pathlib.Path("/tmp/airlock-plan-copy").exists()
