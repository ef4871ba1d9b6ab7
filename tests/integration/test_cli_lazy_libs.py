"""The airlock command loads libyaml and libsodium at first use (src/cli/lazy-libs.c),
not at every start: `airlock exec` runs for every request an agent makes. Shown both
ways: the binary does not name them as NEEDED while airlockd does, the commands that
use them still work (policy check parses YAML, log verify and plan hash), and where a
library cannot be loaded the command says which package to install."""
import subprocess

from conftest import AIRLOCK, AIRLOCKD, ROOT

LAZY = ("libyaml-0.so", "libsodium.so")


def needed(binary):
    out = subprocess.run(["objdump", "-p", str(binary)], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[1] for line in out.splitlines() if line.strip().startswith("NEEDED")]


def test_airlock_does_not_link_yaml_or_sodium():
    n = needed(AIRLOCK)
    assert "libc.so.6" in n and "libjansson.so.4" in n, n
    assert not [x for x in n if x.startswith(LAZY)], n
    # the broker links them as usual (so the check above can tell)
    assert [x for x in needed(AIRLOCKD) if x.startswith(LAZY)], needed(AIRLOCKD)


def test_yaml_loaded_on_use(airlock):
    r = airlock("policy", "check", ROOT / "data" / "policy.yaml")
    assert r.returncode == 0, r.stderr
    assert "OK (" in r.stdout


def test_sodium_loaded_on_use(airlock, tmp_path):
    # policy check reports the policy's digest: a sha256 through libsodium
    r = airlock("policy", "check", "--json", ROOT / "data" / "policy.yaml")
    assert r.returncode == 0, r.stderr
    assert len(__import__("json").loads(r.stdout)["digest"]) == 64


def test_unloadable_library_names_the_package(airlock, tmp_path):
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "libyaml-0.so.2").write_bytes(b"not an ELF object\n")
    r = airlock("policy", "check", ROOT / "data" / "policy.yaml",
                env={"LD_LIBRARY_PATH": str(libs)})
    assert r.returncode == 70, r.stdout + r.stderr
    assert r.stderr.startswith("airlock: cannot load libyaml-0.so.2 (")
    assert "apt-get install libyaml-0-2" in r.stderr
    # a command that needs neither library is unaffected
    r = airlock("--version", env={"LD_LIBRARY_PATH": str(libs)})
    assert r.returncode == 0, r.stderr
