"""The airlock command's contract: help, version, errors in one form, exit codes."""
import re

from conftest import run_airlock

EX_USAGE = 64


def test_version(airlock):
    r = airlock("--version")
    assert r.returncode == 0
    assert re.fullmatch(r"airlock \d+\.\d+\.\d+\n", r.stdout)
    assert airlock("version").stdout == r.stdout


def test_help_lists_subcommands(airlock):
    r = airlock("--help")
    assert r.returncode == 0
    for sub in ("run", "policy", "log", "doctor", "help", "version"):
        assert re.search(rf"^  {sub}\s+\S", r.stdout, re.M), sub
    assert "airlock(1)" in r.stdout


def test_help_subcommand_equals_dash_dash_help(airlock):
    for sub in ("run", "policy", "log", "doctor", "version", "help"):
        a = airlock("help", sub)
        b = airlock(sub, "--help")
        assert a.returncode == 0 and b.returncode == 0, sub
        assert a.stdout == b.stdout and a.stdout.startswith("Usage: airlock " + sub)


def test_no_arguments_is_usage_error(airlock):
    r = airlock()
    assert r.returncode == EX_USAGE
    assert "Usage: airlock" in r.stderr


def test_unknown_subcommand(airlock):
    r = airlock("frobnicate")
    assert r.returncode == EX_USAGE
    assert r.stderr == "airlock: frobnicate: unknown subcommand — run 'airlock --help' for the list\n"


def test_unknown_global_option(airlock):
    r = airlock("--frob")
    assert r.returncode == EX_USAGE
    assert r.stderr.startswith("airlock: airlock: unknown option '--frob'")


def test_help_unknown_topic(airlock):
    r = airlock("help", "nope")
    assert r.returncode == EX_USAGE
    assert r.stderr.startswith("airlock: help: unknown subcommand 'nope' — ")


def test_errors_have_one_form(airlock):
    """Every error line is 'airlock: SUB: what — how'."""
    for args in (["frobnicate"], ["help", "x"], ["version", "extra"]):
        r = airlock(*args)
        assert r.returncode == EX_USAGE
        lines = r.stderr.splitlines()
        assert len(lines) == 1, r.stderr
        assert re.fullmatch(r"airlock: [\w-]+: .+ — .+", lines[0]), lines[0]
