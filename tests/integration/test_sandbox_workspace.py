"""`airlock run` leaves the workspace exactly as it found it, at once.

Placeholders for missing protected names are created for the session and
removed before `airlock run` returns: a second launch right after the first
(or alongside it) must find the workspace as it was, and never race a
cleanup still running.
"""

import hashlib
import os
import pathlib
import subprocess
import time

import pytest

from conftest import AIRLOCK


@pytest.fixture
def ws(tmp_path):
    w = tmp_path / "ws"
    w.mkdir()
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        "profiles:\n"
        "  default: {net: none}\n"
        "protect:\n"
        "  - .git/hooks/**\n"
        "  - .git/config\n"
        "  - .bashrc\n"
        "  - .envrc\n"
        "  - .vscode/tasks.json\n"
    )
    # The agent user must be able to reach the workspace (pytest's tmp is 0700).
    for p in [tmp_path, *tmp_path.parents]:
        if str(p) in ("/", "/tmp"):
            continue
        os.chmod(p, os.stat(p).st_mode | 0o055)
    return {"ws": w, "policy": policy}


def launch(ws, *cmd):
    e = dict(os.environ)
    e.pop("AIRLOCK_POLICY", None)
    return subprocess.Popen([str(AIRLOCK), "run", "--policy", str(ws["policy"]), "--workspace",
                             str(ws["ws"]), "--", *cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=e)


def run(ws, *cmd):
    p = launch(ws, *cmd)
    out, err = p.communicate(timeout=60)
    return p.returncode, out, err


def listing(root: pathlib.Path):
    """Every entry below root, by lstat, with file contents and xattrs.

    Directory times are left out: creating and removing a placeholder
    changes its parent's mtime and ctime, which nothing can restore.
    """
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            entry = [st.st_mode, st.st_uid, st.st_gid, st.st_ino, st.st_nlink,
                     sorted(os.listxattr(path, follow_symlinks=False))]
            if not os.path.isdir(path) or os.path.islink(path):
                entry += [st.st_size, st.st_mtime_ns]
            if os.path.isfile(path) and not os.path.islink(path):
                entry.append(hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest())
            out[os.path.relpath(path, root)] = entry
    return out


def test_two_runs_back_to_back_in_a_fresh_workspace(ws):
    before = listing(ws["ws"])
    assert before == {}
    for _ in range(2):
        rc, _, err = run(ws, "/bin/true")
        assert rc == 0, err
        # Right when airlock returns: nothing left, nothing still being removed.
        assert listing(ws["ws"]) == before
    assert os.listdir(ws["ws"]) == []


def test_placeholders_exist_during_the_session_and_are_gone_on_return(ws):
    """The other side: the placeholders are really there while the agent runs."""
    rc, out, err = run(ws, "sh", "-c", "ls -A; ls -A .git")
    assert rc == 0, err
    assert set(out.split()) >= {".bashrc", ".envrc", ".git", ".vscode", "config", "hooks"}
    assert os.listdir(ws["ws"]) == []


def test_five_rapid_sequential_runs(ws):
    (ws["ws"] / "src").mkdir()
    (ws["ws"] / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    before = listing(ws["ws"])
    for i in range(5):
        rc, _, err = run(ws, "/bin/true")
        assert rc == 0, f"run {i}: {err}"
        assert listing(ws["ws"]) == before, f"after run {i}"


def test_two_concurrent_runs(ws):
    before = listing(ws["ws"])
    # The first still runs when the second starts and ends; both see the
    # protected names read-only, and the workspace is as before at the end.
    check = ("test -e .bashrc && ! (echo x >> .bashrc) 2>/dev/null && "
             "! mkdir .git/hooks/x 2>/dev/null && echo protected")
    a = launch(ws, "sh", "-c", f"{check}; sleep 1; {check}")
    assert a.stdout.readline() == "protected\n", a.stderr.read()
    b = launch(ws, "sh", "-c", check)
    out_b, err_b = b.communicate(timeout=60)
    out_a, err_a = a.communicate(timeout=60)
    assert b.returncode == 0, err_b
    assert a.returncode == 0, err_a
    assert out_b.split() == ["protected"]
    assert out_a.split() == ["protected"]  # the second check, after b has ended
    assert listing(ws["ws"]) == before


def test_existing_git_and_a_user_hook_stay_byte_identical(ws):
    hooks = ws["ws"] / ".git" / "hooks"
    hooks.mkdir(parents=True)
    hook = hooks / "pre-commit"
    hook.write_bytes(b"#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)
    (ws["ws"] / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    before = listing(ws["ws"])
    for _ in range(2):
        rc, out, err = run(ws, "sh", "-c", "cat .git/hooks/pre-commit; "
                                           "echo evil > .git/hooks/pre-commit || echo refused")
        assert rc == 0, err
        assert "exit 0" in out and "refused" in out
        assert listing(ws["ws"]) == before
    assert hook.read_bytes() == b"#!/bin/sh\nexit 0\n"


def test_a_killed_launchs_directories_on_the_way_are_removed(ws):
    """A placeholder directory (.git) left by a killed launch, with a missing
    name inside it (.git/config): adopted and removed; the human's file stays."""
    git = ws["ws"] / ".git"
    git.mkdir()
    os.setxattr(git, "user.airlock.placeholder", b"killed-launch")
    envrc = ws["ws"] / ".envrc"
    envrc.write_text("the human's\n")
    rc, _, err = run(ws, "/bin/true")
    assert rc == 0, err
    assert sorted(os.listdir(ws["ws"])) == [".envrc"]
    assert envrc.read_text() == "the human's\n"


def test_what_the_human_adds_during_the_session_stays(ws):
    """A placeholder directory that is not empty at the end is the human's now."""
    p = launch(ws, "sh", "-c", "echo up; exec sleep 30")
    line = p.stdout.readline()
    assert line == "up\n", p.stderr.read()
    (ws["ws"] / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    p.kill()  # airlock itself: its helper still cleans up what is airlock's
    p.wait(10)
    deadline = time.time() + 30
    while time.time() < deadline and (ws["ws"] / ".bashrc").exists():
        time.sleep(0.02)
    assert sorted(os.listdir(ws["ws"])) == [".git"]
    assert os.listdir(ws["ws"] / ".git") == ["HEAD"]
