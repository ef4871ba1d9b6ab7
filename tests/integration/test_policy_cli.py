"""`airlock policy check | explain | show-default`, run as the built binary.

Every class of policy mistake must point at its exact line and column and say
how to fix it; the embedded default must mask the usual secrets and make
every mutating command need a human.
"""
import hashlib
import json
import os
import subprocess

import pytest

from conftest import AIRLOCK, ROOT, run_airlock

EXIT_USAGE = 64
EXIT_POLICY = 65

# (policy text, line, column, part of the message) — one per error class.
ERRORS = [
    ("foo: 1\n", 1, 1, "unknown key 'foo' in the policy"),
    ("secrets: []\nrules:\n  - {match: [ls], action: allow, hots: x}\n", 3, 34,
     "unknown key 'hots' in a rule — did you mean 'host'?"),
    ("secrets: /etc/shadow\n", 1, 10, "wrong type: secret must be a list"),
    ("hosts:\n  pve1: [10.0.0.1]\n", 2, 9, "wrong type: a host must be a mapping"),
    ("secrets:\n  - /etc/[abc\n", 2, 5, "bad glob '/etc/[abc'"),
    ("rules:\n  - {match: [\"{a,b\"], action: deny}\n", 2, 14, "bad glob '{a,b'"),
    ("secrets:\n  - etc/shadow\n", 2, 5, "is not an absolute path"),
    ("rules:\n  - action: deny\n    action: allow\n", 3, 5, "duplicate key 'action'"),
    ("hosts:\n  a: {address: x}\n  a: {address: y}\n", 3, 3, "duplicate key 'a'"),
    ("rules:\n  - {match: [ls], host: pve9, action: allow}\n", 2, 25,
     "unknown host 'pve9' in a rule"),
    ("rules:\n  - {environment: prod, action: allow}\n", 2, 19,
     "unknown environment 'prod' in a rule"),
    ("rules:\n  - {profile: web, action: allow}\n", 2, 15, "unknown profile 'web' in a rule"),
    ("rules:\n  - {effect: {network: {host: nowhere}}, action: deny}\n", 2, 31,
     "unknown host 'nowhere' in a network condition"),
    ("rules:\n  - {match: [ls], action: alow}\n", 2, 27, "bad action 'alow'"),
    ("default: maybe\n", 1, 10, "bad action 'maybe'"),
    ("rules:\n  - {match: [ls]}\n", 2, 5, "has no action"),
    ("rules:\n  - {action: approve, approvers: 0}\n", 2, 34, "bad approver count '0'"),
    ("rules:\n  - {action: approve, approvers: 99}\n", 2, 34, "bad approver count '99'"),
    ("rules:\n  - {action: deny, approvers: 2}\n", 2, 31, "only meaningful with action: approve"),
    ("profiles:\n  web: {ports: [22, 70000]}\n", 2, 21, "bad port '70000'"),
    ("rules:\n  - {effect: {network: {port: 0}}, action: deny}\n", 2, 31, "bad port '0'"),
    ("profiles:\n  web: {memory: 2X}\n", 2, 17, "bad size '2X'"),
    ("ttl: 15\n", 1, 6, "bad duration '15'"),
    ("ttl: 1w\n", 1, 6, "bad duration '1w'"),
    ("rules:\n  - {match: [], action: deny}\n", 2, 13, "empty argv pattern"),
    ("rules:\n  - {effect: eats-cake, action: deny}\n", 2, 14, "unknown effect 'eats-cake'"),
    ("profiles:\n  web: {net: wifi}\n", 2, 14, "bad network mode 'wifi'"),
    ("rules:\n  - {match: [a], action: allow}\n   foo: 1\n", 3, 4, "YAML syntax error"),
    ("rules: [\n", 2, 1, "YAML syntax error"),
    ("a: &x 1\nb: *x\n", 1, 4, "anchors"),
    ("", 1, 1, "the policy is empty"),
]


@pytest.mark.parametrize("text,line,column,needle", ERRORS,
                         ids=[e[3][:40] for e in ERRORS])
def test_error_points_at_line_and_column(airlock, policy_file, text, line, column, needle):
    path = policy_file(text)
    r = airlock("policy", "check", path)
    assert r.returncode == EXIT_POLICY, r.stderr
    assert r.stdout == ""
    lines = [l for l in r.stderr.splitlines() if l.startswith(f"{path}:")]
    hit = [l for l in lines if l.startswith(f"{path}:{line}:{column}: ") and needle in l]
    assert hit, f"no '{needle}' at {line}:{column} in:\n{r.stderr}"
    # what is wrong — how to fix it
    assert " — " in hit[0]
    assert r.stderr.rstrip().splitlines()[-1].startswith(f"airlock: policy: {path}: ")


def test_every_error_at_once_in_file_order(airlock, policy_file):
    path = policy_file("foo: 1\ndefault: maybe\nsecrets: [etc]\nttl: soon\n")
    r = airlock("policy", "check", path)
    assert r.returncode == EXIT_POLICY
    positions = [l.split(": ")[0] for l in r.stderr.splitlines() if l.startswith(str(path))]
    assert positions == [f"{path}:1:1", f"{path}:2:10", f"{path}:3:11", f"{path}:4:6"]
    assert "4 errors" in r.stderr


def test_check_json_errors(airlock, policy_file):
    path = policy_file("rules:\n  - {match: [ls], action: alow}\n")
    r = airlock("policy", "check", "--json", path)
    assert r.returncode == EXIT_POLICY
    j = json.loads(r.stdout)
    assert j["ok"] is False
    assert j["errors"] == [{"file": str(path), "line": 2, "column": 27,
                            "message": "bad action 'alow' — write allow, approve or deny"}]


def test_check_ok(airlock, policy_file):
    text = ("secrets: [/etc/shadow, ~/.aws]\n"
            "hosts: {pve1: {address: 10.0.0.1, environment: production}}\n"
            "profiles: {web: {net: host, ports: [443]}}\n"
            "rules:\n  - {match: [ls], action: allow}\n  - {match: [rm], action: deny}\n")
    path = policy_file(text)
    r = airlock("policy", "check", path)
    assert r.returncode == 0, r.stderr
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert r.stdout == (f"{path}: OK (2 rules, 2 secrets, 1 host, 2 profiles, "
                        f"digest {digest})\n")
    j = json.loads(airlock("policy", "check", "--json", path).stdout)
    assert j == {"file": str(path), "ok": True, "embedded": False, "rules": 2, "secrets": 2,
                 "hosts": 1, "profiles": 2, "digest": digest, "errors": []}


def test_check_uses_airlock_policy_env(airlock, policy_file):
    path = policy_file("default: deny\n")
    r = airlock("policy", "check", env={"AIRLOCK_POLICY": str(path)})
    assert r.returncode == 0
    assert r.stdout.startswith(f"{path}: OK (0 rules")


def run_in_private_etc(*args, policy_text=None):
    """Runs airlock in a private mount namespace where /etc/airlock is an empty
    tmpfs (or holds policy_text as policy.yaml), so the standard location can be
    tested without touching the host's /etc/airlock."""
    script = 'mkdir -p /etc/airlock 2>/dev/null; mount -t tmpfs airlock-test /etc/airlock || exit 99\n'
    if policy_text is not None:
        script += 'printf "%s" "$POLICY_TEXT" > /etc/airlock/policy.yaml\n'
    script += 'exec "$@"\n'
    env = dict(os.environ, POLICY_TEXT=policy_text or "")
    env.pop("AIRLOCK_POLICY", None)
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                        "sh", str(AIRLOCK), *map(str, args)],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 99, f"cannot set up the private /etc/airlock: {r.stderr}"
    return r


def test_check_embedded_default_when_no_file(airlock):
    r = run_in_private_etc("policy", "check")
    assert r.returncode == 0, r.stderr
    assert "no policy file at /etc/airlock/policy.yaml; checking the embedded default" in r.stderr
    assert r.stdout.startswith("<default>: OK (")
    j = json.loads(run_in_private_etc("policy", "check", "--json").stdout)
    assert j["embedded"] is True and j["ok"] is True
    # the other side: a policy at the standard location is the one checked
    r = run_in_private_etc("policy", "check", policy_text="default: deny\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("/etc/airlock/policy.yaml: OK (0 rules")
    # and an invalid one there is an error, never a fallback
    r = run_in_private_etc("policy", "explain", "--", "true", policy_text="default: nope\n")
    assert r.returncode == EXIT_POLICY
    assert "/etc/airlock/policy.yaml:1:10: bad action 'nope'" in r.stderr


def test_embedded_flag(airlock, policy_file):
    r = airlock("policy", "check", "--embedded")
    assert r.returncode == 0
    assert r.stdout.startswith("<default>: OK (")
    assert "checking the embedded default" not in r.stderr
    path = policy_file("default: deny\n")
    d = json.loads(airlock("policy", "explain", "--json", "--embedded", "--", "reboot",
                           env={"AIRLOCK_POLICY": str(path)}).stdout)
    assert d["policy"] == "<default>" and d["action"] == "approve"
    assert airlock("policy", "check", "--embedded", path).returncode == EXIT_USAGE
    assert airlock("policy", "explain", "--embedded", "--policy", path, "--",
                   "true").returncode == EXIT_USAGE


def test_check_missing_file(airlock, tmp_path):
    r = airlock("policy", "check", tmp_path / "nope.yaml")
    assert r.returncode == EXIT_POLICY
    assert f"{tmp_path}/nope.yaml: cannot open: No such file or directory — " in r.stderr


def test_check_refuses_huge_file(airlock, tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("#" * (1024 * 1024 + 1))
    r = airlock("policy", "check", big)
    assert r.returncode == EXIT_POLICY
    assert "larger than 1048576 bytes" in r.stderr


def test_check_refuses_directory(airlock, tmp_path):
    r = airlock("policy", "check", tmp_path)
    assert r.returncode == EXIT_POLICY
    assert "not a regular file" in r.stderr


def test_control_characters_are_escaped(airlock, policy_file):
    path = policy_file('default: "\\e[31mred"\n')
    r = airlock("policy", "check", path)
    assert r.returncode == EXIT_POLICY
    assert "\x1b" not in r.stderr
    assert "\\x1b[31mred" in r.stderr


def test_show_default_is_data_policy_yaml(airlock):
    r = airlock("policy", "show-default")
    assert r.returncode == 0
    assert r.stdout == (ROOT / "data" / "policy.yaml").read_text()


def test_embedded_default_masks_the_usual_secrets(airlock, tmp_path):
    path = tmp_path / "default.yaml"
    path.write_text(airlock("policy", "show-default").stdout)
    r = airlock("policy", "check", path)
    assert r.returncode == 0, r.stderr
    text = path.read_text()
    for s in ["/etc/corosync/authkey", "/etc/pve/priv/**", "/etc/pve/local/*.key",
              "/etc/pve/nodes/*/*.key", "/var/lib/pve-cluster/config.db",
              "/etc/ssh/ssh_host_*_key", "/etc/shadow", "/etc/gshadow", "~/.ssh/id_*",
              "~/.ssh/*_key", "~/.aws", "~/.kube/config", "~/.docker/config.json", "~/.gnupg",
              "~/.netrc", "~/.pgpass", "/etc/ceph/*.keyring"]:
        assert f"  - {s}" in text, s


def explain(airlock, *args, policy=None, env=None):
    a = ["policy", "explain", "--json"]
    if policy:
        a += ["--policy", policy]
    r = airlock(*a, *args, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def default_policy(airlock, tmp_path):
    path = tmp_path / "default.yaml"
    path.write_text(airlock("policy", "show-default").stdout)
    return path


@pytest.mark.parametrize("cmd", [
    ["systemctl", "restart", "corosync"],
    ["cp", "/etc/corosync/authkey", "/srv/share/k"],
    ["scp", "/etc/corosync/authkey", "root@10.140.3.82:/etc/corosync/"],
    ["rm", "-rf", "/var/lib/pve-cluster"],
    ["apt-get", "install", "-y", "corosync"],
    ["journalctl", "--vacuum-time=1s"],
    ["ip", "link", "set", "eth0", "down"],
    ["cat", "/etc/corosync/authkey"],
])
def test_default_mutating_needs_one_approval(airlock, tmp_path, cmd):
    d = explain(airlock, "--", *cmd, policy=default_policy(airlock, tmp_path))
    assert (d["action"], d["approvers"]) == ("approve", 1)


@pytest.mark.parametrize("cmd", [
    ["systemctl", "status", "corosync"],
    ["journalctl", "-u", "corosync", "-b"],
    ["pvecm", "status"],
    ["corosync-quorumtool", "-s"],
    ["corosync-cfgtool", "-s"],
    ["ip", "addr", "show"],
    ["ss", "-tlnp"],
    ["ps", "aux"],
    ["cat", "/etc/corosync/corosync.conf"],
])
def test_default_diagnostics_allowed(airlock, tmp_path, cmd):
    d = explain(airlock, "--", *cmd, policy=default_policy(airlock, tmp_path))
    assert (d["action"], d["approvers"]) == ("allow", 0)
    assert d["rule"] is not None


def test_explain_text_and_verbose(airlock, policy_file):
    path = policy_file("rules:\n"
                       "  - {match: [ls], action: allow, reason: listing}\n"
                       "  - {match: [rm, \"**\"], agent: \"claude*\", action: deny, reason: no rm}\n")
    r = airlock("policy", "explain", "--policy", path, "--agent", "claude-code", "--",
                "rm", "-rf", "x")
    assert r.returncode == 0
    assert f"decided:   rule 2 at {path}:3:5\n" in r.stdout
    assert "decision:  deny\n" in r.stdout
    assert f"reason:    rule 2 ({path}:3:5): deny — no rm\n" in r.stdout
    assert "skipped:" not in r.stdout
    r = airlock("policy", "explain", "-v", "--policy", path, "--", "rm", "-rf", "x")
    assert f"skipped:   rule 1 at {path}:2:5: the command does not match its argv pattern" in r.stdout
    assert f"skipped:   rule 2 at {path}:3:5: the agent (none: a human) is not one of its agents" in r.stdout
    assert "decided:   the default (no rule matched)" in r.stdout
    assert "decision:  approve (1 approval needed)" in r.stdout


def test_explain_json(airlock, policy_file):
    path = policy_file("hosts: {pve1: {address: 10.0.0.1, environment: production}}\n"
                       "approvals: {production: 2}\n"
                       "rules:\n  - {match: [ls], action: allow}\n")
    d = explain(airlock, "--host", "pve1", "--", "reboot", policy=path)
    assert d["action"] == "approve" and d["approvers"] == 2
    assert d["rule"] is None
    assert d["host"] == "pve1" and d["command"] == "reboot"
    assert d["skipped"] == [{"rule": 1, "line": 4, "column": 5,
                             "why": "the command does not match its argv pattern"}]
    assert d["reason"] == ("no rule matched; the default is approve; 2 approvals needed "
                           "(environment production)")


def test_explain_env_policy_and_errors(airlock, policy_file):
    path = policy_file("default: deny\n")
    d = explain(airlock, "--", "true", env={"AIRLOCK_POLICY": str(path)})
    assert d["action"] == "deny" and d["policy"] == str(path)
    bad = policy_file("default: nope\n", name="bad.yaml")
    r = airlock("policy", "explain", "--policy", bad, "--", "true")
    assert r.returncode == EXIT_POLICY
    assert f"{bad}:1:10: bad action 'nope'" in r.stderr
    r = airlock("policy", "explain", "--policy", path)
    assert r.returncode == EXIT_USAGE
    assert "explain needs a command" in r.stderr


def test_usage_errors(airlock):
    r = airlock("policy")
    assert r.returncode == EXIT_USAGE
    assert "airlock: policy: missing action — " in r.stderr
    r = airlock("policy", "frobnicate")
    assert r.returncode == EXIT_USAGE
    assert "unknown action 'frobnicate'" in r.stderr
    r = airlock("policy", "check", "a", "b")
    assert r.returncode == EXIT_USAGE
    r = airlock("policy", "show-default", "x")
    assert r.returncode == EXIT_USAGE
    r = airlock("policy", "check", "--bogus")
    assert r.returncode == EXIT_USAGE


def test_help(airlock):
    for args in (["help", "policy"], ["policy", "--help"]):
        r = airlock(*args)
        assert r.returncode == 0
        assert r.stdout.startswith("Usage: airlock policy check [--json] [--embedded | FILE]\n")
        for word in ("explain", "show-default", "--host", "--agent", "--verbose", "--json",
                     "AIRLOCK_POLICY", "airlock-policy(5)"):
            assert word in r.stdout
    r = airlock("--help")
    assert "policy     check a policy file" in r.stdout


def test_install_script_never_overwrites(tmp_path):
    script = ROOT / "data" / "install-policy.sh"
    example = ROOT / "data" / "policy.yaml"
    env = dict(os.environ, DESTDIR=str(tmp_path))
    subprocess.run([script, example, "/etc/airlock"], env=env, check=True, capture_output=True)
    dest = tmp_path / "etc" / "airlock" / "policy.yaml"
    assert dest.read_text() == example.read_text()
    dest.write_text("# the admin's own policy\n")
    r = subprocess.run([script, example, "/etc/airlock"], env=env, check=True,
                       capture_output=True, text=True)
    assert "keeping the existing" in r.stdout
    assert dest.read_text() == "# the admin's own policy\n"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["policy.yaml"]


def man_block(section):
    """The first literal block after a section heading of airlock-policy(5)."""
    text = (ROOT / "man" / "airlock-policy.5.scd").read_text()
    start = text.index("```\n", text.index(f"# {section}\n")) + 4
    return text[start:text.index("```", start)]


@pytest.mark.parametrize("section", ["A FIRST POLICY", "THE INCIDENT, AS A POLICY"])
def test_man_page_examples_are_valid(airlock, policy_file, section):
    path = policy_file(man_block(section))
    r = airlock("policy", "check", path)
    assert r.returncode == 0, r.stderr


def test_man_page_incident_explain_output(airlock, policy_file):
    """The explain output shown in airlock-policy(5) is what airlock prints."""
    path = policy_file(man_block("THE INCIDENT, AS A POLICY"))
    text = (ROOT / "man" / "airlock-policy.5.scd").read_text()
    i = text.index("$ airlock policy explain --host xenon")
    block = text[i:text.index("```", i)].splitlines()
    r = airlock("policy", "explain", "--policy", path, "--host", "xenon", "--",
                "systemctl", "start", "corosync")
    for line in block[1:]:
        assert line.replace("/etc/airlock/policy.yaml", str(path)) in r.stdout


def test_explain_effects(airlock, policy_file):
    path = policy_file("hosts: {xenon: {address: 10.140.3.82, environment: production}}\n"
                       "rules:\n"
                       "  - {effect: reads-secret, action: deny, reason: secret}\n"
                       "  - {effect: {network: {host: xenon, port: 22}}, action: deny}\n"
                       "  - {match: [scp, \"**\"], action: allow}\n")
    cmd = ["--", "scp", "/etc/corosync/authkey", "root@10.140.3.82:/etc/corosync/"]
    assert explain(airlock, *cmd, policy=path)["action"] == "allow"
    assert explain(airlock, "--planned", *cmd, policy=path)["action"] == "allow"
    d = explain(airlock, "--effect", "reads-secret=/etc/corosync/authkey", *cmd, policy=path)
    assert d["action"] == "deny"
    assert d["reason"].endswith("deny — secret (the plan reads secret /etc/corosync/authkey)")
    # an address is resolved to its inventory host
    d = explain(airlock, "--effect", "connects=10.140.3.82:22", *cmd, policy=path)
    assert d["rule"]["index"] == 2
    assert "connects to xenon 10.140.3.82:22" in d["reason"]
    d = explain(airlock, "--effect", "connects=xenon:23", *cmd, policy=path)
    assert d["rule"]["index"] == 3


@pytest.mark.parametrize("effect", ["reads-secret", "bogus=/x", "writes=", "connects=xenon:0",
                                    "connects=xenon:http"])
def test_explain_bad_effect(airlock, policy_file, effect):
    path = policy_file("hosts: {xenon: {address: 10.140.3.82}}\n")
    r = airlock("policy", "explain", "--policy", path, "--effect", effect, "--", "true")
    assert r.returncode == EXIT_USAGE
    assert "airlock: policy: bad --effect" in r.stderr


def test_man_page_effect_example(airlock):
    """The --effect example of airlock-policy(5) is what airlock prints."""
    text = (ROOT / "man" / "airlock-policy.5.scd").read_text()
    i = text.index("$ airlock policy explain --effect")
    block = text[i:text.index("```", i)]
    cmd, shown = block.split("\ndecision:", 1)
    args = cmd.replace("\\\n", " ").split()[2:]
    r = run_in_private_etc(*args)
    assert r.returncode == 0, r.stderr
    got = " ".join(r.stdout[r.stdout.index("decision:"):].split())
    assert got == " ".join(("decision:" + shown).split())


@pytest.mark.parametrize("text,line,column,needle", [
    ("approvers: {users: [alice]}\nrules:\n  - {action: approve, approvers: 2}\n", 3, 34,
     "2 approvals can never be given: approvers lists only 1 user"),
    ("secrets:\n  - \"/var/*/ceph/**/keyring\"\n", 2, 5, "wildcard before '**'"),
])
def test_more_error_classes(airlock, policy_file, text, line, column, needle):
    path = policy_file(text)
    r = airlock("policy", "check", path)
    assert r.returncode == EXIT_POLICY
    assert any(l.startswith(f"{path}:{line}:{column}: ") and needle in l
               for l in r.stderr.splitlines()), r.stderr
