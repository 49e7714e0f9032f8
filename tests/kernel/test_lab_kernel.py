# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's self-test: the running kernel does, feature by feature, what lab/kernel.config promises.

Runs in the lab (lab/run), on whichever kernel lab/run chose. Each test builds its own namespaces and checks an
outcome that only a working feature gives: a link of the kind asked for, a packet across, an address rewritten,
an MSS clamped, ESP on the wire and no GRE in clear.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from support.lab import ip_json, ping, sh

pytestmark = pytest.mark.gre


def veth(a, b, a_addr, b_addr, a_name="up0", b_name="up0"):
    """A veth pair from namespace A to namespace B, addressed and up."""
    sh(a, "ip link add %s type veth peer name %s netns %s" % (a_name, b_name, b))
    for netns, name, addr in ((a, a_name, a_addr), (b, b_name, b_addr)):
        sh(netns, "ip addr add %s dev %s && ip link set %s up" % (addr, name, name))


@pytest.fixture
def routed(netns_factory):
    """client (10.1.0.2) -- router (10.1.0.1 | 10.2.0.1) -- server (10.2.0.2), the router forwarding."""
    client, router, server = netns_factory("cli"), netns_factory("rtr"), netns_factory("srv")
    veth(client, router, "10.1.0.2/24", "10.1.0.1/24", "up0", "in0")
    veth(router, server, "10.2.0.1/24", "10.2.0.2/24", "out0", "up0")
    sh(client, "ip route add default via 10.1.0.1")
    sh(server, "ip route add 10.1.0.0/24 via 10.2.0.1")
    sh(router, "sysctl -qw net.ipv4.ip_forward=1")
    return client, router, server


SERVER = r"""
import json, socket
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 8080))
srv.listen(1)
srv.settimeout(20)
print("ready", flush=True)
conn, peer = srv.accept()
conn.recv(16)
print(json.dumps({"peer": peer[0], "mss": conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)}), flush=True)
"""

CLIENT = r"""
import socket
sock = socket.create_connection(("10.2.0.2", 8080), timeout=10)
sock.sendall(b"hello")
sock.close()
"""


def tcp_across(client, server):
    """One TCP connection from CLIENT to SERVER:8080; returns what the server saw: the peer's address, its MSS."""
    listener = subprocess.Popen(["ip", "netns", "exec", server, sys.executable, "-c", SERVER],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready", listener.stderr.read()
        subprocess.run(["ip", "netns", "exec", client, sys.executable, "-c", CLIENT], check=True, capture_output=True)
        out, err = listener.communicate(timeout=30)
        assert listener.returncode == 0, err
        return json.loads(out)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


@pytest.mark.parametrize("kind,args", [
    ("gre", "local 192.0.2.1 remote 192.0.2.2 key 42"),
    ("gretap", "local 192.0.2.1 remote 192.0.2.2"),
    ("ip6gre", "local 2001:db8::1 remote 2001:db8::2"),
    ("ip6gretap", "local 2001:db8::1 remote 2001:db8::2"),
    ("ipip", "local 192.0.2.1 remote 192.0.2.2"),
    ("ip6tnl", "local 2001:db8::1 remote 2001:db8::2"),
    ("veth", "peer name k1"),
    ("bridge", ""),
    ("dummy", ""),
])
def test_link_kinds(netns, kind, args):
    sh(netns, "ip link add k0 type %s %s" % (kind, args))
    (link,) = ip_json(netns, "-d", "link", "show", "dev", "k0")
    assert link["linkinfo"]["info_kind"] == kind


def test_gre_and_ip6gre_carry_pings(netns_factory):
    a, b = netns_factory("ga"), netns_factory("gb")
    veth(a, b, "192.0.2.1/24", "192.0.2.2/24")
    sh(a, "ip addr add 2001:db8::1/64 dev up0 nodad")
    sh(b, "ip addr add 2001:db8::2/64 dev up0 nodad")
    for netns, local, remote, local6, remote6, addr, addr6 in (
            (a, "192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2", "10.99.0.1/30", "fd00:99::1/64"),
            (b, "192.0.2.2", "192.0.2.1", "2001:db8::2", "2001:db8::1", "10.99.0.2/30", "fd00:99::2/64")):
        sh(netns, "ip link add gre1 type gre local %s remote %s key 42 ttl 64 && ip addr add %s dev gre1 && "
                  "ip link set gre1 up" % (local, remote, addr))
        sh(netns, "ip link add gre6 type ip6gre local %s remote %s && ip addr add %s dev gre6 nodad && "
                  "ip link set gre6 up" % (local6, remote6, addr6))
    assert ping(a, "10.99.0.2", count=2)
    assert ping(a, "fd00:99::2", count=2)
    (stats,) = ip_json(b, "-s", "link", "show", "dev", "gre1")
    assert stats["stats64"]["rx"]["packets"] >= 2


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_iptables_masquerade_and_tcpmss(routed, backend):
    client, router, server = routed
    before = tcp_across(client, server)
    assert before["peer"] == "10.1.0.2" and before["mss"] > 1000, before
    sh(router, "printf '%%s\\n' '*nat' '-A POSTROUTING -o out0 -j MASQUERADE' 'COMMIT' '*mangle' "
               "'-A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1000' 'COMMIT' "
               "| iptables-%s-restore --noflush" % backend)
    after = tcp_across(client, server)
    assert after["peer"] == "10.2.0.1", "MASQUERADE did not rewrite the source: %s" % after
    assert after["mss"] <= 1000, "TCPMSS did not clamp the SYN's MSS: %s" % after


def test_nft_inet_nat(routed):
    client, router, server = routed
    sh(router, "nft add table inet lab && "
               "nft 'add chain inet lab post { type nat hook postrouting priority srcnat; }' && "
               "nft add rule inet lab post oifname out0 masquerade")
    assert tcp_across(client, server)["peer"] == "10.2.0.1"


def test_multipath_route(netns):
    sh(netns, "ip link add m0 type dummy && ip link add m1 type dummy && ip link set m0 up && ip link set m1 up && "
              "ip addr add 192.0.2.1/24 dev m0 && ip addr add 198.51.100.1/24 dev m1")
    sh(netns, "ip route add 203.0.113.0/24 nexthop via 192.0.2.9 dev m0 nexthop via 198.51.100.9 dev m1")
    (route,) = ip_json(netns, "route", "show", "203.0.113.0/24")
    assert sorted(hop["gateway"] for hop in route["nexthops"]) == ["192.0.2.9", "198.51.100.9"]


def test_policy_routing(netns):
    sh(netns, "ip link add p0 type dummy && ip link set p0 up && ip addr add 192.0.2.1/24 dev p0")
    sh(netns, "ip rule add from 192.0.2.1 table 100 && ip route add default via 192.0.2.9 table 100")
    assert sh(netns, "ip route get 203.0.113.7", check=False).returncode != 0  # the main table has no way there
    (route,) = ip_json(netns, "route", "get", "203.0.113.7", "from", "192.0.2.1")
    assert route["gateway"] == "192.0.2.9"


ESP_KEY = "0x" + "42" * 36  # AES-256 key and 4 bytes of salt, as rfc4106(gcm(aes)) takes them
ESP_KEY_CBC, ESP_KEY_HMAC = "0x" + "17" * 32, "0x" + "23" * 32


def esp_transport(netns, local, remote, aead):
    """SAs both ways and a policy that requires ESP for GRE between LOCAL and REMOTE (as strongSwan sets them up)."""
    for src, dst, spi in ((local, remote, "0x1000"), (remote, local, "0x2000")) if local < remote else (
            (local, remote, "0x2000"), (remote, local, "0x1000")):
        algo = ("aead 'rfc4106(gcm(aes))' %s 128" % ESP_KEY if aead else
                "enc 'cbc(aes)' %s auth-trunc 'hmac(sha256)' %s 128" % (ESP_KEY_CBC, ESP_KEY_HMAC))
        sh(netns, "ip xfrm state add src %s dst %s proto esp spi %s reqid 7 mode transport %s" % (src, dst, spi, algo))
    sh(netns, "ip xfrm policy add src %s dst %s proto gre dir out tmpl src %s dst %s proto esp reqid 7 mode transport"
       % (local, remote, local, remote))
    sh(netns, "ip xfrm policy add src %s dst %s proto gre dir in tmpl src %s dst %s proto esp reqid 7 mode transport"
       % (remote, local, remote, local))


def wire_counts(netns):
    """Packets of IP protocol 47 (GRE) and 50 (ESP) that the path between the sites forwarded."""
    out = sh(netns, "iptables-nft -w -L FORWARD -n -v -x").stdout
    counts = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] in ("47", "50", "gre", "esp"):
            counts[{"47": "gre", "50": "esp"}.get(fields[3], fields[3])] = int(fields[0])
    return counts


@pytest.mark.parametrize("aead", [True, False], ids=["gcm-aes", "cbc-aes-hmac-sha256"])
def test_esp_transport_sa_carries_gre(netns_factory, aead):
    """site_a -- path -- site_b: GRE between the sites inside ESP; the path sees ESP only, never GRE in clear."""
    a, path, b = netns_factory("ea"), netns_factory("ep"), netns_factory("eb")
    veth(a, path, "192.0.2.1/24", "192.0.2.254/24", "up0", "pa")
    veth(path, b, "198.51.100.254/24", "198.51.100.1/24", "pb", "up0")
    sh(a, "ip route add 198.51.100.0/24 via 192.0.2.254")
    sh(b, "ip route add 192.0.2.0/24 via 198.51.100.254")
    sh(path, "sysctl -qw net.ipv4.ip_forward=1 && iptables-nft -w -A FORWARD -p gre -j ACCEPT && "
       "iptables-nft -w -A FORWARD -p esp -j ACCEPT")
    for netns, local, remote, addr in ((a, "192.0.2.1", "198.51.100.1", "10.99.0.1/30"),
                                       (b, "198.51.100.1", "192.0.2.1", "10.99.0.2/30")):
        esp_transport(netns, local, remote, aead)
        sh(netns, "ip link add gre1 type gre local %s remote %s ttl 64 && ip addr add %s dev gre1 && "
                  "ip link set gre1 up" % (local, remote, addr))
    assert ping(a, "10.99.0.2", count=3), "no ping through GRE inside ESP"
    counts = wire_counts(path)
    assert counts["esp"] >= 6 and counts["gre"] == 0, counts
    states = sh(a, "ip -s xfrm state").stdout
    packets = [int(n) for n in re.findall(r"\b(\d+)\(packets\)", states)]  # each SA's current count (limits are INF)
    assert states.count("mode transport") == 2 and len(packets) == 2 and min(packets) >= 3, states

    # No clear-text fallback: without site_a's SAs its policy holds GRE back; nothing crosses in clear.
    sh(a, "ip xfrm state flush")
    assert not ping(a, "10.99.0.2", count=2, wait=1)
    time.sleep(0.2)
    assert wire_counts(path)["gre"] == 0
