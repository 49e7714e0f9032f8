# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.gre.tunnel_firewall against the kernel's own iptables, in namespaces the tests make."""

from __future__ import annotations


import subprocess

import pytest

from support.lab import ping, run_module, run_module_direct, sh

pytestmark = pytest.mark.lab

# both backends, on the host and in the lab (that both run is asserted in test_nat_masquerade.py)
BACKENDS = ("legacy", "nft")


def save(netns, backend):
    out = sh(netns, "iptables-%s-save" % backend).stdout
    return [line for line in out.splitlines() if line.startswith(("-A", ":", "*"))]


def rules(netns, backend, table, chain):
    out = sh(netns, "iptables-%s -t %s -S %s" % (backend, table, chain)).stdout
    return out.splitlines()[1:]  # the first line declares the chain (-P or -N)


HOWTO = {"tunnel": "gre-router_b", "peer_underlay": "172.19.1.2", "local_networks": ["10.10.1.0/24"],
         "peer_networks": ["20.10.1.0/24"]}


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def test_creates_rules_ahead_of_foreign_rules_then_no_change(netns, backend):
    ipt = "iptables-%s" % backend
    sh(netns, "%s -A INPUT -j REJECT && %s -P FORWARD DROP && %s -A FORWARD -j REJECT && "
              "%s -t mangle -A FORWARD -j ACCEPT" % (ipt, ipt, ipt, ipt))
    result = run_module_direct(netns, "tunnel_firewall", dict(HOWTO, backend=backend))
    assert result["changed"] is True, result
    assert result["backend"] == backend
    inp = rules(netns, backend, "filter", "INPUT")
    assert inp[0] == '-A INPUT -m comment --comment "overlay.gre gre-router_b" -j OGRE-IN-gre-router_b'
    assert inp[1] == "-A INPUT -j REJECT --reject-with icmp-port-unreachable"
    assert inp[-1].replace('"', "") == "-A INPUT -m comment --comment overlay.gre -j OGRE-GRE-DROP"
    assert rules(netns, backend, "filter", "OGRE-IN-gre-router_b") == [
        '-A OGRE-IN-gre-router_b -s 172.19.1.2/32 -p gre -m comment --comment "overlay.gre gre-router_b" -j ACCEPT']
    assert rules(netns, backend, "filter", "OGRE-GRE-DROP") == [
        '-A OGRE-GRE-DROP -p gre -m comment --comment "overlay.gre: GRE from any other address" -j DROP']
    assert rules(netns, backend, "filter", "OGRE-FWD-gre-router_b") == [
        '-A OGRE-FWD-gre-router_b -s 10.10.1.0/24 -d 20.10.1.0/24 -o gre-router_b -m comment --comment "overlay.gre gre-router_b" -j ACCEPT',
        '-A OGRE-FWD-gre-router_b -s 20.10.1.0/24 -d 10.10.1.0/24 -i gre-router_b -m comment --comment "overlay.gre gre-router_b" -j ACCEPT']
    assert rules(netns, backend, "mangle", "OGRE-MSS-gre-router_b") == [
        '-A OGRE-MSS-gre-router_b -o gre-router_b -p tcp -m tcp --tcp-flags SYN,RST SYN -m comment --comment "overlay.gre gre-router_b" '
        '-j TCPMSS --clamp-mss-to-pmtu']
    assert rules(netns, backend, "filter", "FORWARD")[1] == "-A FORWARD -j REJECT --reject-with icmp-port-unreachable"
    before = save(netns, backend)
    again = run_module_direct(netns, "tunnel_firewall", dict(HOWTO, backend=backend))
    assert again["changed"] is False and again["added"] == [] and again["removed"] == []
    assert save(netns, backend) == before


def test_check_mode_changes_nothing_and_diff_shows_the_rules(netns, backend):
    before = save(netns, backend)
    result = run_module_direct(netns, "tunnel_firewall", dict(HOWTO, backend=backend), check=True, diff=True)
    assert result["changed"] is True
    assert save(netns, backend) == before
    assert result["diff"]["before"] == ""
    assert "-A OGRE-IN-gre-router_b -s 172.19.1.2/32 -p gre" in result["diff"]["after"]
    assert any("TCPMSS --clamp-mss-to-pmtu" in line for line in result["added"])


def test_fixed_mss_both_ways_then_back_to_pmtu(netns, backend):
    run_module_direct(netns, "tunnel_firewall", dict(HOWTO, backend=backend))
    result = run_module_direct(netns, "tunnel_firewall", dict(HOWTO, backend=backend, mss_clamp=1436))
    assert result["changed"] is True
    mss = rules(netns, backend, "mangle", "OGRE-MSS-gre-router_b")
    assert [line.split(" -m comment")[0] for line in mss] == [
        "-A OGRE-MSS-gre-router_b -o gre-router_b -p tcp -m tcp --tcp-flags SYN,RST SYN",
        "-A OGRE-MSS-gre-router_b -i gre-router_b -p tcp -m tcp --tcp-flags SYN,RST SYN"]
    assert all(line.endswith("-j TCPMSS --set-mss 1436") for line in mss)
    result = run_module_direct(netns, "tunnel_firewall", dict(HOWTO, backend=backend, mss_clamp=False))
    assert result["changed"] is True
    assert "OGRE-MSS-gre-router_b" not in sh(netns, "iptables-%s-save -t mangle" % backend).stdout


def test_absent_removes_only_its_own_and_keeps_the_drop_for_other_tunnels(netns, backend):
    ipt = "iptables-%s" % backend
    sh(netns, "%s -A INPUT -s 192.0.2.1 -j ACCEPT && %s -A FORWARD -s 192.0.2.2 -j ACCEPT" % (ipt, ipt))
    foreign = [line for line in save(netns, backend) if "192.0.2." in line]
    run_module_direct(netns, "tunnel_firewall", dict(HOWTO, backend=backend))
    run_module_direct(netns, "tunnel_firewall", dict(tunnel="gre-other", peer_underlay="172.19.1.9", backend=backend))
    result = run_module_direct(netns, "tunnel_firewall", dict(tunnel="gre-router_b", state="absent", backend=backend))
    assert result["changed"] is True
    text = sh(netns, "%s-save" % ipt).stdout
    assert "gre-router_b" not in text
    assert "OGRE-IN-gre-other" in text and "OGRE-GRE-DROP" in text
    assert [line for line in save(netns, backend) if "192.0.2." in line] == foreign
    run_module_direct(netns, "tunnel_firewall", dict(tunnel="gre-other", state="absent", backend=backend))
    text = sh(netns, "%s-save" % ipt).stdout
    assert "OGRE" not in text and "overlay.gre" not in text
    assert [line for line in save(netns, backend) if "192.0.2." in line] == foreign
    again = run_module_direct(netns, "tunnel_firewall", dict(tunnel="gre-other", state="absent", backend=backend))
    assert again["changed"] is False


@pytest.mark.parametrize("option,value,message", [
    ("tunnel", "a/b", "tunnel: 'a/b' is not a valid interface name"),
    ("tunnel", "sixteen-chars-xx", "tunnel: 'sixteen-chars-xx' is not a valid interface name"),
    ("local_networks", ["10.10.1.1/24"], "local_networks: '10.10.1.1/24' is not a network in CIDR form"),
    ("peer_networks", ["300.1.1.0/24"], "peer_networks: '300.1.1.0/24' is not a network in CIDR form"),
    ("peer_underlay", "172.19.1", "peer_underlay: '172.19.1' is not an IP address"),
    ("mss_clamp", 100, "mss_clamp: 100 is out of range (536 to 65495)"),
    ("mss_clamp", "big", "mss_clamp: 'big' is neither 'pmtu', a number nor false"),
])
def test_bad_input_is_refused_before_any_change(netns, option, value, message):
    before = save(netns, "legacy")
    result = run_module_direct(netns, "tunnel_firewall", dict(HOWTO, backend="legacy", **{option: value}))
    assert result.get("failed") is True
    assert result["msg"].startswith(message), result["msg"]
    assert save(netns, "legacy") == before


def test_forwarding_flows_through_the_tunnel_interface_under_policy_drop(netns_factory, backend):
    """Real packets: a router whose interface toward the other site is named like a tunnel, FORWARD policy DROP."""
    left, router, right = netns_factory("l"), netns_factory("r"), netns_factory("x")
    sh(router, "ip link add eth1 type veth peer name eth0 netns %s && ip link add gre-x type veth peer name eth0 netns %s"
       % (left, right))
    sh(router, "ip addr add 10.10.1.1/24 dev eth1 && ip addr add 20.10.1.1/24 dev gre-x && ip link set eth1 up && "
               "ip link set gre-x up && sysctl -qw net.ipv4.ip_forward=1")
    sh(left, "ip addr add 10.10.1.10/24 dev eth0 && ip link set eth0 up && ip route add default via 10.10.1.1")
    sh(right, "ip addr add 20.10.1.10/24 dev eth0 && ip link set eth0 up && ip route add default via 20.10.1.1")
    sh(router, "iptables-%s -P FORWARD DROP" % backend)
    assert not ping(left, "20.10.1.10", wait=1)
    result = run_module(router, "overlay.gre.tunnel_firewall",
                        dict(tunnel="gre-x", local_networks=["10.10.1.0/24"], peer_networks=["20.10.1.0/24"], backend=backend))
    assert result["changed"] is True, result
    assert ping(left, "20.10.1.10") and ping(right, "10.10.1.10")
    again = run_module(router, "overlay.gre.tunnel_firewall",
                       dict(tunnel="gre-x", local_networks=["10.10.1.0/24"], peer_networks=["20.10.1.0/24"], backend=backend))
    assert again["changed"] is False


def conf(netns, tunnel, name):
    return sh(netns, "cat /proc/sys/net/ipv4/conf/%s/%s" % (tunnel, name)).stdout.strip()


def test_reflect_keepalives_accepts_gre_from_the_tunnel_to_the_peer_only_when_asked(netns, backend):
    chain = "OGRE-FWD-gre-router_b"
    reflect = ('-A OGRE-FWD-gre-router_b -d 172.19.1.2/32 -i gre-router_b -p gre -m comment --comment "overlay.gre gre-router_b" '
               '-j ACCEPT')
    # the host kernel cannot make GRE links: an interface of the tunnel's name carries the per-interface settings
    sh(netns, "ip link add gre-router_b type veth peer name ogre-other && sysctl -qw net.ipv4.conf.gre-router_b.rp_filter=1")
    assert (conf(netns, "gre-router_b", "accept_local"), conf(netns, "gre-router_b", "rp_filter")) == ("0", "1")
    first = run_module_direct(netns, "tunnel_firewall", dict(HOWTO, backend=backend, reflect_keepalives=True), diff=True)
    assert first["changed"] is True
    assert rules(netns, backend, "filter", chain)[-1] == reflect
    # the kernel lets a decapsulated keepalive (its source is this router's own address) through: accept_local, loose rp_filter
    assert (conf(netns, "gre-router_b", "accept_local"), conf(netns, "gre-router_b", "rp_filter")) == ("1", "2")
    assert first["sysctls"] == {"net/ipv4/conf/gre-router_b/accept_local": 1, "net/ipv4/conf/gre-router_b/rp_filter": 2}
    assert "net/ipv4/conf/gre-router_b/rp_filter = 1" in first["diff"]["before"]
    assert "net/ipv4/conf/gre-router_b/rp_filter = 2" in first["diff"]["after"]
    # set at boot once the tunnel exists; the rules' replay, run before the tunnel is made, holds none of them
    assert first["replay_settings"] == ["echo 1 > /proc/sys/net/ipv4/conf/gre-router_b/accept_local",
                                        "echo 2 > /proc/sys/net/ipv4/conf/gre-router_b/rp_filter"]
    assert not [line for line in first["replay"] if "/proc/sys" in line]
    again = run_module_direct(netns, "tunnel_firewall", dict(HOWTO, backend=backend, reflect_keepalives=True))
    assert again["changed"] is False
    # a setting changed behind the module's back is a change, and only that
    sh(netns, "sysctl -qw net.ipv4.conf.gre-router_b.accept_local=0")
    drift = run_module_direct(netns, "tunnel_firewall", dict(HOWTO, backend=backend, reflect_keepalives=True))
    assert drift["changed"] is True and drift["added"] == [] and drift["removed"] == []
    assert conf(netns, "gre-router_b", "accept_local") == "1"
    without_peer = dict(HOWTO, backend=backend, reflect_keepalives=True)
    del without_peer["peer_underlay"]
    run_module_direct(netns, "tunnel_firewall", without_peer)
    assert rules(netns, backend, "filter", chain)[-1] == reflect.replace("-d 172.19.1.2/32 ", "")
    off = run_module_direct(netns, "tunnel_firewall", dict(HOWTO, backend=backend))  # the default: no reflection
    assert off["changed"] is True and len(off["removed"]) == 1
    assert not any("-p gre" in rule for rule in rules(netns, backend, "filter", chain))
    assert off["sysctls"] == {} and conf(netns, "gre-router_b", "rp_filter") == "2"  # left as they are


def test_reflect_keepalives_needs_the_tunnel_and_changes_nothing_without_it(netns, backend):
    before = save(netns, backend)
    args = dict(HOWTO, tunnel="gre-missing", backend=backend, reflect_keepalives=True)
    checked = run_module_direct(netns, "tunnel_firewall", args, check=True)
    assert checked["changed"] is True  # in check mode the tunnel may be about to be made by gre_tunnel
    assert checked["sysctls"] == {"net/ipv4/conf/gre-missing/accept_local": 1, "net/ipv4/conf/gre-missing/rp_filter": 2}
    failed = run_module_direct(netns, "tunnel_firewall", args)
    assert failed.get("failed") is True
    assert failed["msg"].startswith("reflect_keepalives: the tunnel gre-missing does not exist"), failed["msg"]
    assert save(netns, backend) == before


def test_replay_rebuilds_the_rules_after_a_reboot_and_twice_is_harmless(netns, backend):
    ipt = "iptables-%s" % backend
    sh(netns, "%s -A INPUT -s 192.0.2.1 -j ACCEPT && %s -P FORWARD DROP" % (ipt, ipt))
    foreign = sh(netns, "%s-save" % ipt).stdout
    result = run_module_direct(netns, "tunnel_firewall", dict(HOWTO, backend=backend, mss_clamp=1436))
    assert result["replay"][0].startswith("%s -w -t filter -N OGRE-IN-gre-router_b 2>/dev/null || " % ipt)
    converged = save(netns, backend)
    # the boot: the machine's own firewall comes back as it was before, then the replay runs (twice)
    subprocess.run(["ip", "netns", "exec", netns, "%s-restore" % ipt], input=foreign, text=True, check=True)
    assert save(netns, backend) != converged
    for _time in (1, 2):
        sh(netns, "set -e\n" + "\n".join(result["replay"]))
        assert save(netns, backend) == converged
    again = run_module_direct(netns, "tunnel_firewall", dict(HOWTO, backend=backend, mss_clamp=1436))
    assert again["changed"] is False and again["replay"] == result["replay"]


def test_the_peer_can_ping_the_tunnel_address_under_input_policy_drop(netns_factory, backend):
    """Two namespaces joined by a link named like the tunnel; INPUT policy DROP on both; pings need the ICMP accept."""
    left, right = netns_factory("l"), netns_factory("r")
    sh(left, "ip link add gre-x type veth peer name gre-y netns %s && ip addr add 192.168.8.1/30 dev gre-x && ip link set gre-x up" % right)
    sh(right, "ip addr add 192.168.8.2/30 dev gre-y && ip link set gre-y up")
    for ns in (left, right):
        sh(ns, "iptables-%s -P INPUT DROP" % backend)
    assert not ping(left, "192.168.8.2", wait=1)
    run_module_direct(left, "tunnel_firewall", dict(tunnel="gre-x", peer_tunnel_address="192.168.8.2", backend=backend))
    run_module_direct(right, "tunnel_firewall", dict(tunnel="gre-y", peer_tunnel_address="192.168.8.1", backend=backend))
    assert ping(left, "192.168.8.2") and ping(right, "192.168.8.1")
    rules_left = rules(left, backend, "filter", "OGRE-IN-gre-x")
    assert [line.split(" -m comment")[0] for line in rules_left] == [
        "-A OGRE-IN-gre-x -s 192.168.8.2/32 -i gre-x -p icmp -m icmp --icmp-type 8",
        "-A OGRE-IN-gre-x -s 192.168.8.2/32 -i gre-x -p icmp -m icmp --icmp-type 0"]
    bad = run_module_direct(left, "tunnel_firewall", dict(tunnel="gre-x", peer_tunnel_address="192.168.8", backend=backend))
    assert bad.get("failed") is True and bad["msg"].startswith("peer_tunnel_address: '192.168.8' is not an IP address")


def test_tunnels_in_one_run_and_purge_removes_the_tunnel_no_longer_listed(netns, backend):
    ipt = "iptables-%s" % backend
    sh(netns, "%s -A FORWARD -s 192.0.2.2 -j ACCEPT" % ipt)

    def site(n):
        return {"tunnel": "gre-s%d" % n, "peer_underlay": "172.19.0.%d" % n, "local_networks": ["10.1.0.0/16"],
                "peer_networks": ["10.%d.0.0/16" % n]}
    three = dict(tunnels=[site(2), site(3), site(4)], purge=True, backend=backend)
    result = run_module_direct(netns, "tunnel_firewall", three)
    assert result["changed"] is True, result
    for n in (2, 3, 4):
        assert rules(netns, backend, "filter", "OGRE-IN-gre-s%d" % n) == [
            '-A OGRE-IN-gre-s%d -s 172.19.0.%d/32 -p gre -m comment --comment "overlay.gre gre-s%d" -j ACCEPT' % (n, n, n)]
    assert run_module_direct(netns, "tunnel_firewall", three)["changed"] is False
    before_s2 = [line for line in save(netns, backend) if "gre-s2" in line]
    check = run_module_direct(netns, "tunnel_firewall", dict(three, tunnels=[site(2), site(4)]), check=True)
    assert check["changed"] is True and all("gre-s3" in line for line in check["removed"]), check
    assert rules(netns, backend, "filter", "OGRE-IN-gre-s3") != []
    result = run_module_direct(netns, "tunnel_firewall", dict(three, tunnels=[site(2), site(4)]))
    text = sh(netns, "%s-save" % ipt).stdout
    assert "gre-s3" not in text and "gre-s4" in text and "OGRE-GRE-DROP" in text and "192.0.2.2" in text
    assert [line for line in save(netns, backend) if "gre-s2" in line] == before_s2
    # without purge, an unlisted tunnel's rules stay
    run_module_direct(netns, "tunnel_firewall", dict(tunnels=[site(2)], backend=backend))
    assert "gre-s4" in sh(netns, "%s-save" % ipt).stdout
    bad = run_module_direct(netns, "tunnel_firewall", dict(tunnels=[site(2), dict(site(5), peer_networks=["10.5.0.1/16"])],
                                                           backend=backend))
    assert bad.get("failed") is True and bad["msg"].startswith("tunnels[1].peer_networks: '10.5.0.1/16' is not a network"), bad


def test_ipsec_rules_drop_clear_gre_both_ways_then_back_to_plain(netns, backend):
    """GRE over IPsec: IKE and ESP accepted from the peer, its GRE only through a policy, clear GRE to it dropped on
    OUTPUT and FORWARD; the kernel takes the rules as the module writes them (an unchanged re-run changes nothing), and
    ipsec off puts the plain accept back and the OUTPUT chain goes."""
    params = dict(HOWTO, backend=backend, ipsec=True)
    first = run_module_direct(netns, "tunnel_firewall", params)
    assert first["changed"] is True, first
    tag = '-m comment --comment "overlay.gre gre-router_b"'
    assert rules(netns, backend, "filter", "OGRE-IN-gre-router_b") == [
        "-A OGRE-IN-gre-router_b -s 172.19.1.2/32 -p udp -m udp --dport 500 %s -j ACCEPT" % tag,
        "-A OGRE-IN-gre-router_b -s 172.19.1.2/32 -p udp -m udp --dport 4500 %s -j ACCEPT" % tag,
        "-A OGRE-IN-gre-router_b -s 172.19.1.2/32 -p esp %s -j ACCEPT" % tag,
        "-A OGRE-IN-gre-router_b -s 172.19.1.2/32 -p gre -m policy --dir in --pol ipsec %s -j ACCEPT" % tag,
        "-A OGRE-IN-gre-router_b -s 172.19.1.2/32 -p gre -m policy --dir in --pol none %s -j DROP" % tag]
    assert rules(netns, backend, "filter", "OUTPUT")[0] == "-A OUTPUT %s -j OGRE-OUT-gre-router_b" % tag
    clear_out = "-d 172.19.1.2/32 -p gre -m policy --dir out --pol none %s -j DROP" % tag
    assert rules(netns, backend, "filter", "OGRE-OUT-gre-router_b") == ["-A OGRE-OUT-gre-router_b " + clear_out]
    assert "-A OGRE-FWD-gre-router_b " + clear_out in rules(netns, backend, "filter", "OGRE-FWD-gre-router_b")
    assert any("OGRE-OUT-gre-router_b" in line for line in first["replay_check"])
    again = run_module_direct(netns, "tunnel_firewall", params)
    assert again["changed"] is False, again
    plain = run_module_direct(netns, "tunnel_firewall", dict(HOWTO, backend=backend))
    assert plain["changed"] is True
    assert rules(netns, backend, "filter", "OGRE-IN-gre-router_b") == [
        "-A OGRE-IN-gre-router_b -s 172.19.1.2/32 -p gre %s -j ACCEPT" % tag]
    assert not any("OGRE-OUT" in line for line in save(netns, backend))


def test_ipsec_needs_the_peer_underlay(netns):
    before = save(netns, "legacy")
    params = dict(HOWTO, backend="legacy", ipsec=True)
    del params["peer_underlay"]
    result = run_module_direct(netns, "tunnel_firewall", params)
    assert result.get("failed") is True
    assert result["msg"].startswith("ipsec: is true, but peer_underlay is not set"), result["msg"]
    assert save(netns, "legacy") == before
