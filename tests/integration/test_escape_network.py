"""Escape corpus: reaching another host or a host service over the network.

The targets are real: a listener on the host's loopback, and a peer in a
network namespace of our own on 198.51.100.0/24 (TCP 22, 53, 443, 8080 and
UDP 5405, corosync's port). Outside every one answers. Inside:
  --net none (the default): only the sandbox's own loopback exists;
  host mode (profile "hostnet", ports 443 and 53): TCP connects only to those
  ports (Landlock), no UDP, raw or packet sockets (seccomp).
"""
import select
import socket
import time

import pytest

from escape_helpers import (ALLOWED_PORTS, Listener, describe, expect_denied, expect_ok,  # noqa: F401
                            lab, outside, probe_outside, result, testnet)

HOST = "hostnet"
NET_BLOCKED = ("EACCES", "EPERM")


@pytest.fixture
def loopback_listener():
    l = Listener(socket.AF_INET, ("127.0.0.1", 0))
    yield l
    l.close()


@pytest.fixture
def loopback6_listener():
    l = Listener(socket.AF_INET6, ("::1", 0))
    yield l
    l.close()


def udp_received(server, timeout=20.0):
    """The first line the peer server printed for a UDP datagram within timeout (it returns
    at once when one arrives: the negative checks pass a short timeout)."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([server.stdout], [], [], 0.1)
        if r:
            line = server.stdout.readline()
            if line.startswith("udp "):
                got.append(line.strip())
                break
    return got


# --- --net none ---------------------------------------------------------------


def test_none_host_loopback_tcp_service(lab, loopback_listener):
    port = str(loopback_listener.port)
    assert "hello-from-host" in expect_ok(probe_outside("tcp-connect", "127.0.0.1", port))
    expect_denied(lab.probe_inside("tcp-connect", "127.0.0.1", port), "ECONNREFUSED", *NET_BLOCKED)


def test_none_host_loopback_ipv6_service(lab, loopback6_listener):
    port = str(loopback6_listener.port)
    assert "hello-from-host" in expect_ok(probe_outside("tcp-connect", "::1", port))
    expect_denied(lab.probe_inside("tcp-connect", "::1", port), "ECONNREFUSED", "ENETUNREACH",
                  "EADDRNOTAVAIL", *NET_BLOCKED)


def test_none_another_host(lab, testnet):
    assert "hello-from-peer" in expect_ok(probe_outside("tcp-connect", testnet.peer, "443"))
    expect_denied(lab.probe_inside("tcp-connect", testnet.peer, "443"), "ENETUNREACH", "EHOSTUNREACH",
                  *NET_BLOCKED)


def test_none_udp_to_another_host(lab, testnet):
    expect_ok(probe_outside("udp-send", testnet.peer, "5405"))
    assert udp_received(testnet.server), "the peer received the datagram sent outside"
    expect_denied(lab.probe_inside("udp-send", testnet.peer, "5405"), "ENETUNREACH", *NET_BLOCKED)
    assert not udp_received(testnet.server, 0.5)


def test_none_only_loopback_exists(lab):
    r = lab.inside("ip", "-o", "link")
    assert r.returncode == 0, describe(r)
    links = [l.split(":")[1].strip() for l in r.stdout.splitlines() if ":" in l]
    assert links == ["lo"], f"interfaces inside --net none: {links}{describe(r)}"
    assert len(outside("ip", "-o", "link").stdout.splitlines()) > 1, "the host has more than lo"


# --- host mode: the port allowlist ----------------------------------------------


def test_host_allowed_port_connects(lab, testnet):
    """The control: host mode really is the host's network, and 443 is allowed."""
    r = lab.probe_inside("tcp-connect", testnet.peer, "443", profile=HOST)
    assert "hello-from-peer" in expect_ok(r, what="an allowed port inside host mode")


def test_host_port_outside_the_allowlist(lab, testnet):
    for port in ("8080", "22"):
        assert "hello-from-peer" in expect_ok(probe_outside("tcp-connect", testnet.peer, port))
        expect_denied(lab.probe_inside("tcp-connect", testnet.peer, port, profile=HOST), *NET_BLOCKED)


def test_host_net_flag_without_a_profile(lab, testnet):
    """--net host with the default profile: its allowlist applies (8080 is in none)."""
    r = lab.probe_inside("tcp-connect", testnet.peer, "8080", net="host")
    if result(r) is None:
        assert r.returncode != 0, describe(r)  # refusing host mode for this profile is fine
    else:
        expect_denied(r, *NET_BLOCKED)


def test_host_loopback_service_outside_the_allowlist(lab, loopback_listener):
    port = str(loopback_listener.port)
    assert "hello-from-host" in expect_ok(probe_outside("tcp-connect", "127.0.0.1", port))
    expect_denied(lab.probe_inside("tcp-connect", "127.0.0.1", port, profile=HOST), *NET_BLOCKED)
    # the same service through an IPv4-mapped IPv6 address
    expect_denied(lab.probe_inside("tcp-connect", "::ffff:127.0.0.1", port, profile=HOST), *NET_BLOCKED,
                  "ENETUNREACH", "ECONNREFUSED")


def test_host_ipv6_loopback_outside_the_allowlist(lab, loopback6_listener):
    port = str(loopback6_listener.port)
    assert "hello-from-host" in expect_ok(probe_outside("tcp-connect", "::1", port))
    expect_denied(lab.probe_inside("tcp-connect", "::1", port, profile=HOST), *NET_BLOCKED)


def test_host_mptcp_outside_the_allowlist(lab, testnet):
    """Multipath TCP is IPPROTO_MPTCP, not IPPROTO_TCP: a port filter for TCP alone misses it."""
    out = probe_outside("mptcp-connect", testnet.peer, "8080")
    if result(out)[0] != "OK":
        pytest.skip(f"MPTCP is not available on this kernel:{describe(out)}")
    expect_denied(lab.probe_inside("mptcp-connect", testnet.peer, "8080", profile=HOST), *NET_BLOCKED,
                  "EPROTONOSUPPORT", "EAFNOSUPPORT")


def test_host_tcp_fast_open_outside_the_allowlist(lab, testnet):
    """sendto(MSG_FASTOPEN) connects without calling connect()."""
    assert "hello-from-peer" in expect_ok(probe_outside("tfo-connect", testnet.peer, "8080"))
    expect_denied(lab.probe_inside("tfo-connect", testnet.peer, "8080", profile=HOST), *NET_BLOCKED,
                  "EOPNOTSUPP")


def test_host_listen_on_a_port(lab):
    """Starting a network daemon on the host's network (the incident's second step)."""
    script = ("import socket,sys\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
              "try:\n s.bind(('0.0.0.0',5405)); s.listen(); print('OK listening')\n"
              "except OSError as e: print('ERR', e.errno)\n")
    out = outside("python3", "-c", script)
    assert "OK listening" in out.stdout, describe(out)
    r = lab.inside("/usr/bin/python3", "-c", script, profile=HOST)
    assert "ERR" in r.stdout and "OK" not in r.stdout, f"the agent listens on the host's network:{describe(r)}"


# --- host mode: UDP, raw, packet and other families -----------------------------


def test_host_udp(lab, testnet):
    expect_ok(probe_outside("udp-send", testnet.peer, "5405"))
    assert udp_received(testnet.server)
    expect_denied(lab.probe_inside("udp-send", testnet.peer, "5405", profile=HOST), *NET_BLOCKED,
                  "EAFNOSUPPORT", "EPROTONOSUPPORT")
    assert not udp_received(testnet.server, 0.5), "a datagram from inside arrived"


def test_host_udp_with_socket_type_flags(lab, testnet):
    """SOCK_DGRAM|SOCK_NONBLOCK|SOCK_CLOEXEC: a filter comparing the type exactly misses this."""
    flags = str(0o4000 | 0o2000000)
    expect_ok(probe_outside("udp-send", testnet.peer, "5405", flags))
    assert udp_received(testnet.server)
    expect_denied(lab.probe_inside("udp-send", testnet.peer, "5405", flags, profile=HOST), *NET_BLOCKED,
                  "EAFNOSUPPORT", "EPROTONOSUPPORT")
    assert not udp_received(testnet.server, 0.5), "a datagram from inside arrived"


def test_host_udp_ipv6(lab):
    l = Listener(socket.AF_INET6, ("::1", 0), kind=socket.SOCK_DGRAM)
    try:
        expect_ok(probe_outside("udp-send", "::1", str(l.port)))
        assert l.wait_received(), "the datagram sent outside arrived"
        l.received.clear()
        expect_denied(lab.probe_inside("udp-send", "::1", str(l.port), profile=HOST), *NET_BLOCKED,
                      "EAFNOSUPPORT", "EPROTONOSUPPORT")
        time.sleep(0.3)
        assert not l.received
    finally:
        l.close()


# (family, type, protocol) as numbers: what an attacker passes to socket(2)
SOCKETS = {
    "raw-icmp": ("2", "3", "1"),         # AF_INET SOCK_RAW IPPROTO_ICMP (ping, crafted packets)
    "raw-ipv6": ("10", "3", "58"),       # AF_INET6 SOCK_RAW IPPROTO_ICMPV6
    "packet": ("17", "3", "0"),          # AF_PACKET SOCK_RAW: sniff and inject frames
    "packet-dgram": ("17", "2", "0"),    # AF_PACKET SOCK_DGRAM
    "ping-dgram": ("2", "2", "1"),       # AF_INET SOCK_DGRAM IPPROTO_ICMP ("unprivileged ping")
    "udplite": ("2", "2", "136"),        # AF_INET SOCK_DGRAM IPPROTO_UDPLITE
    "vsock": ("40", "1", "0"),           # AF_VSOCK: the hypervisor, another host
    "sctp": ("2", "1", "132"),           # SCTP stream: not TCP, so not in a TCP port filter
}


@pytest.mark.parametrize("name", list(SOCKETS))
def test_host_socket_families(lab, name):
    fam, typ, proto = SOCKETS[name]
    out = probe_outside("socket", fam, typ, proto)
    if result(out)[0] != "OK":
        pytest.skip(f"this kernel cannot make a {name} socket even for root ({result(out)[1]})")
    expect_denied(lab.probe_inside("socket", fam, typ, proto, profile=HOST), *NET_BLOCKED,
                  "EAFNOSUPPORT", "EPROTONOSUPPORT", "ESOCKTNOSUPPORT", "EINVAL")


def test_host_network_configuration(lab):
    """Changing the host's interfaces: `ip link set lo up` is a no-op that needs CAP_NET_ADMIN."""
    out = outside("ip", "link", "set", "lo", "up")
    assert out.returncode == 0, describe(out)
    r = lab.sh_inside("ip link set lo up; echo rc=$?; ip addr add 198.51.100.254/32 dev lo; echo rc=$?",
                      profile=HOST)
    leaked = "198.51.100.254" in outside("ip", "addr", "show", "lo").stdout
    if leaked:
        outside("ip", "addr", "del", "198.51.100.254/32", "dev", "lo")
    assert r.stdout.count("rc=") == 2 and "rc=0" not in r.stdout, describe(r)
    assert not leaked, "an address was added to the host's loopback from inside"
