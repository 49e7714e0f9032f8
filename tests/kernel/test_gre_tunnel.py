# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.gre.gre_tunnel against a kernel that can make GRE links (the lab).

The end-to-end tests go through Ansible (run_module, seconds each in the lab); the attribute matrix calls the
module's main() inside the namespace (run_module_direct): the same module code, without Ansible's start-up.
"""

from __future__ import annotations

import importlib
import json
import subprocess

import pytest

from support.lab import ensure_collection_path, in_child, ip_json, ping, run_ansible, run_module, run_module_direct, sh

pytestmark = pytest.mark.gre

# Imported once here, so that every forked run_module_direct child starts with the module and Ansible loaded
# (imports cost about a second each in the lab's kernel).
ensure_collection_path()
importlib.import_module("ansible_collections.overlay.gre.plugins.modules.gre_tunnel")

MODULE = "overlay.gre.gre_tunnel"
SHORT = "gre_tunnel"
MARK = "overlay.gre.gre_tunnel"
FALLBACK = {"gre0", "gretap0", "erspan0", "ip6gre0", "ip6tnl0"}


def underlay(netns):
    """Two veth underlays with IPv4 and IPv6 addresses, as on a router's uplinks."""
    sh(netns, "ip link add up0 type veth peer name up0p && ip link add up1 type veth peer name up1p && "
              "ip link set up0 up && ip link set up0p up && ip link set up1 up && ip link set up1p up && "
              "ip addr add 172.19.1.1/24 dev up0 && ip addr add 172.19.2.1/24 dev up1 && "
              "ip addr add 2001:db8::1/64 dev up0 nodad")
    return netns


def link(netns, name):
    found = ip_json(netns, "-d", "link", "show", "dev", name)
    return found[0] if found else None


def info(netns, name):
    return link(netns, name)["linkinfo"]["info_data"]


def tunnel_names(netns):
    return {entry["ifname"] for entry in ip_json(netns, "-d", "link", "show")
            if (entry.get("linkinfo") or {}).get("info_kind") in ("gre", "gretap", "ip6gre", "ip6gretap")} - FALLBACK


def addresses(netns, name):
    return sorted((a["local"], a.get("address"), a["prefixlen"]) for a in ip_json(netns, "addr", "show", "dev", name)[0]["addr_info"]
                  if not a["local"].startswith("fe80:"))


def routes(netns, name):
    return sorted((r["dst"], r.get("gateway"), r.get("metric", 0)) for r in ip_json(netns, "route", "show", "dev", name) if r.get("protocol") != "kernel")


BASE = {"name": "t1", "local": "172.19.1.1", "remote": "172.19.1.2", "key": 42, "ttl": 64,
        "addresses": [{"address": "192.168.8.1", "peer": "192.168.8.11"}], "routes": ["20.10.1.0/24"]}


def direct(netns, args, check=False, diff=False):
    return run_module_direct(netns, SHORT, args, check=check, diff=diff)


def ok(result):
    assert not result.get("failed"), result
    return result


# --- reading the kernel ---------------------------------------------------------------------------------------------

# Every kind of tunnel, attribute, address and route the module reads, and the routes it must not count as a tunnel's.
KERNEL_ZOO = """
ip link add g1 type gre local 172.19.1.1 remote 172.19.1.2 ikey 5 okey 0.0.1.6 ttl 64 tos 0x10
ip link set g1 up
ip addr add 192.168.8.1 peer 192.168.8.2/32 dev g1
ip addr add 10.9.0.1/24 dev g1
ip route add 20.10.1.0/24 dev g1
ip route add 20.10.2.0/24 via 192.168.8.2 dev g1 metric 7
ip route add default dev g1 metric 50
ip route add 20.10.3.0/24 dev g1 table 100
ip route add 20.10.6.0/24 dev g1 proto static
ip route add 20.10.8.0/24 dev g1 proto 71
ip route add blackhole 20.10.4.0/24
ip link add g2 type gre local 172.19.1.1 remote 172.19.1.3 key 0.0.0.42 ttl inherit nopmtudisc tos inherit dev up0
ip link set g2 alias somebody-else
ip route add 20.10.5.0/24 nexthop dev g1 nexthop via 10.9.0.2 dev g1
ip link add g3 mtu 1400 type gretap remote 172.19.1.4
ip link set g3 up
ip link add g6 type ip6gre local 2001:db8::1 remote 2001:db8::2 key 9 hoplimit 30 tclass 0x20
ip link set g6 up
ip addr add 2001:db8:99::1/64 dev g6 nodad
ip -6 route add 2001:db8:77::/48 via 2001:db8:99::2 dev g6 metric 10
ip -6 route add ::ffff:0:0/96 dev g6
ip -6 route add default dev g6 metric 2000
ip addr add 2001:db8:98::1 peer 2001:db8:98::2/128 dev g6 nodad
ip link add g7 type ip6gretap remote 2001:db8::3 tclass inherit dev up1
ip link add ge type gre external
"""


def test_reading_through_rtnetlink_matches_ip_d_j(netns):
    """The module reads the kernel through rtnetlink; `ip -d -j` of the same namespace, parsed as before, is the reference."""
    underlay(netns)
    sh(netns, "set -e" + KERNEL_ZOO)

    def both():
        from ansible_collections.overlay.gre.plugins.module_utils import _gre_tunnel as g
        out = subprocess.run(["ip", "-d", "-j", "-batch", "-"], input="addr show\nroute show table all type unicast\n",
                             capture_output=True, text=True, check=True).stdout
        by_ip, by_netlink = g.LiveState.from_ip_output(out), g.LiveState.read()
        return json.dumps([[by_ip.interfaces, by_ip.tunnels], [by_netlink.interfaces, by_netlink.tunnels]])

    by_ip, by_netlink = json.loads(in_child(netns, both))
    assert by_netlink == by_ip
    interfaces, tunnels = by_netlink
    assert set(tunnels) == {"g1", "g2", "g3", "g6", "g7", "ge"} and interfaces["lo"] == "loopback" and interfaces["up0"] == "veth"
    assert tunnels["g1"]["routes"] == [["0.0.0.0/0", 50, None], ["20.10.1.0/24", 0, None], ["20.10.2.0/24", 7, "192.168.8.2"],
                                       ["20.10.6.0/24", 0, None], ["20.10.8.0/24", 0, None]]
    assert (tunnels["g1"]["ikey"], tunnels["g1"]["okey"], tunnels["g1"]["tos"]) == (5, 262, 16)
    assert (tunnels["g2"]["tos"], tunnels["g2"]["pmtudisc"]) == ("inherit", False)
    assert (tunnels["g2"]["link"], tunnels["g2"]["alias"], tunnels["g2"]["up"], tunnels["g3"]["mtu"]) == ("up0", "somebody-else", False, 1400)
    assert (tunnels["g6"]["tos"], tunnels["g6"]["ttl"], tunnels["g7"]["tos"], tunnels["g7"]["link"]) == (32, 30, "inherit", "up1")
    assert ["2001:db8:77::/48", 10, "2001:db8:99::2"] in tunnels["g6"]["routes"] and ["::ffff:0:0/96", 1024, None] in tunnels["g6"]["routes"]
    assert ["2001:db8:98::1", 128, "2001:db8:98::2"] in tunnels["g6"]["addresses"]


# --- end to end, through Ansible ----------------------------------------------------------------------------------


def test_create_then_rerun_unchanged_through_ansible(netns):
    underlay(netns)
    first = ok(run_module(netns, MODULE, BASE, diff=True))
    assert first["changed"] is True
    assert first["commands"][0] == "ip link add t1 type gre local 172.19.1.1 remote 172.19.1.2 key 0.0.0.42 ttl 64"
    data = info(netns, "t1")
    assert (data["local"], data["remote"], data["ikey"], data["okey"], data["ttl"]) == ("172.19.1.1", "172.19.1.2", "0.0.0.42", "0.0.0.42", 64)
    assert "UP" in link(netns, "t1")["flags"]
    assert link(netns, "t1")["ifalias"] == MARK
    assert addresses(netns, "t1") == [("192.168.8.1", "192.168.8.11", 32)]
    assert routes(netns, "t1") == [("20.10.1.0/24", None, 0)]
    assert first["tunnel"]["managed"] is True and first["tunnel"]["ikey"] == 42
    assert first["diff"]["before"] == {"name": "t1", "state": "absent"} and first["diff"]["after"]["remote"] == "172.19.1.2"

    second = ok(run_module(netns, MODULE, BASE))
    assert second["changed"] is False and second["commands"] == []
    assert second["tunnel"] == first["tunnel"]


def test_bad_input_through_ansible_changes_nothing(netns):
    underlay(netns)
    # run_ansible rather than run_module: the recorded result of a failed task does not carry 'failed' in ansible-core 2.19.
    run = run_ansible(["ansible", "all", "-i", "%s," % netns, "-c", "overlay.gre.netns", "-m", MODULE, "-a", json.dumps(dict(BASE, local="172.19.1.300"))])
    assert run.returncode != 0 and run.results[-1]["status"] == "failed", run.output
    result = run.results[-1]["result"]
    assert "local" in result["msg"] and "172.19.1.300" in result["msg"], result
    assert result["changed"] is False and result["commands"] == []
    assert tunnel_names(netns) == set()


def test_tunnel_carries_ping_between_two_sites(howto_topology):
    topo = howto_topology
    router_a, router_b = topo.ns("router_a"), topo.ns("router_b")
    a = ok(run_module_direct(router_a, SHORT, {
        "name": "my_tunnel", "local": "172.19.1.1", "remote": "172.19.1.2", "key": 42, "ttl": 64,
        "addresses": [{"address": "192.168.8.1", "peer": "192.168.8.11"}], "routes": ["20.10.1.0/24"]}))
    b = ok(run_module_direct(router_b, SHORT, {
        "name": "my_tunnel", "local": "172.19.1.2", "remote": "172.19.1.1", "key": 42, "ttl": 64,
        "addresses": [{"address": "192.168.8.11", "peer": "192.168.8.1"}], "routes": ["10.10.1.0/24"]}))
    assert a["changed"] and b["changed"]
    assert ping(router_a, "192.168.8.11", count=2)
    for ns in (router_a, router_b):
        sh(ns, "sysctl -qw net.ipv4.ip_forward=1")
    assert ping(topo.ns("host_a"), topo.address("host_b", "eth0"), count=2)
    assert ping(topo.ns("host_b"), topo.address("host_a", "eth0"), count=2)


# --- create, check mode, diff, absent -------------------------------------------------------------------------------


def test_check_mode_create_reports_and_changes_nothing(netns):
    underlay(netns)
    result = ok(direct(netns, BASE, check=True, diff=True))
    assert result["changed"] is True
    assert result["commands"] == [
        "ip link add t1 type gre local 172.19.1.1 remote 172.19.1.2 key 0.0.0.42 ttl 64",
        "ip link set t1 alias overlay.gre.gre_tunnel up",
        "ip addr add 192.168.8.1 peer 192.168.8.11/32 dev t1",
        "ip route add 20.10.1.0/24 dev t1",
    ]
    assert result["diff"]["after"]["state"] == "present" and result["diff"]["after"]["ikey"] == 42
    assert tunnel_names(netns) == set()


def test_absent_and_its_check_mode(netns):
    underlay(netns)
    ok(direct(netns, BASE))
    check = ok(direct(netns, {"name": "t1", "state": "absent"}, check=True, diff=True))
    assert check["changed"] is True and check["commands"] == ["ip link del t1"]
    assert check["diff"]["before"]["state"] == "present" and check["diff"]["after"] == {"name": "t1", "state": "absent"}
    assert tunnel_names(netns) == {"t1"}
    gone = ok(direct(netns, {"name": "t1", "state": "absent"}))
    assert gone["changed"] is True and tunnel_names(netns) == set()
    again = ok(direct(netns, {"name": "t1", "state": "absent"}))
    assert again["changed"] is False and again["commands"] == []


# --- every attribute changed alone ----------------------------------------------------------------------------------

CHANGES = [
    ("local", "172.19.2.1", lambda ns: info(ns, "t1")["local"] == "172.19.2.1"),
    ("remote", "172.19.1.9", lambda ns: info(ns, "t1")["remote"] == "172.19.1.9"),
    ("key", "0.0.1.0", lambda ns: info(ns, "t1")["ikey"] == "0.0.1.0" and info(ns, "t1")["okey"] == "0.0.1.0"),
    ("ikey", 7, lambda ns: info(ns, "t1").get("ikey") == "0.0.0.7" and "okey" not in info(ns, "t1")),
    ("ttl", 0, lambda ns: info(ns, "t1")["ttl"] == 0),
    ("tos", "0x10", lambda ns: info(ns, "t1")["tos"] == "0x10"),
    ("tos", "inherit", lambda ns: info(ns, "t1")["tos"] == "0x1"),
    ("pmtudisc", False, lambda ns: info(ns, "t1")["pmtudisc"] is False),
    ("mtu", 1400, lambda ns: link(ns, "t1")["mtu"] == 1400),
    ("link", "up1", lambda ns: info(ns, "t1").get("link") == "up1"),
    ("up", False, lambda ns: "UP" not in link(ns, "t1")["flags"]),
    ("addresses", ["10.0.0.1/30", "2001:db8:9::1/64"], lambda ns: addresses(ns, "t1") == [("10.0.0.1", None, 30), ("2001:db8:9::1", None, 64)]),
    ("routes", ["20.10.2.0/24", {"dest": "20.10.1.0/24", "metric": 5, "via": "192.168.8.11"}],
     lambda ns: routes(ns, "t1") == [("20.10.1.0/24", "192.168.8.11", 5), ("20.10.2.0/24", None, 0)]),
]


@pytest.mark.parametrize("option,value,applied", CHANGES, ids=["%s=%s" % (c[0], c[1]) for c in CHANGES])
def test_attribute_changed_alone(netns, option, value, applied):
    underlay(netns)
    base = dict(BASE)
    if option == "ikey":
        base.pop("key")
    if option == "pmtudisc":
        base["ttl"] = 0
    if option == "up":
        base.pop("routes")
    ok(direct(netns, base))
    before = link(netns, "t1")
    wanted = dict(base, **{option: value})

    check = ok(direct(netns, wanted, check=True, diff=True))
    assert check["changed"] is True, check
    assert check["commands"], check
    assert not any(cmd.startswith(("ip link del", "ip link add")) for cmd in check["commands"]), check["commands"]
    assert link(netns, "t1") == before, "check mode changed the kernel"

    real = ok(direct(netns, wanted, diff=True))
    assert real["changed"] is True and real["commands"] == check["commands"]
    assert applied(netns), (option, link(netns, "t1"))
    assert link(netns, "t1")["ifindex"] == before["ifindex"], "changed in place, not re-created"
    assert real["diff"]["before"] != real["diff"]["after"]

    again = ok(direct(netns, wanted))
    assert again["changed"] is False and again["commands"] == [], again


def test_mode_change_recreates_keeping_addresses_and_routes(netns):
    underlay(netns)
    ok(direct(netns, BASE))
    old = link(netns, "t1")
    check = ok(direct(netns, dict(BASE, mode="gretap"), check=True))
    assert check["commands"][:2] == ["ip link del t1", "ip link add t1 type gretap local 172.19.1.1 remote 172.19.1.2 key 0.0.0.42 ttl 64"]
    assert link(netns, "t1") == old
    result = ok(direct(netns, dict(BASE, mode="gretap")))
    assert result["changed"] and link(netns, "t1")["linkinfo"]["info_kind"] == "gretap"
    assert addresses(netns, "t1") == [("192.168.8.1", "192.168.8.11", 32)]
    assert routes(netns, "t1") == [("20.10.1.0/24", None, 0)]
    assert link(netns, "t1")["ifalias"] == MARK
    assert ok(direct(netns, dict(BASE, mode="gretap")))["changed"] is False


def test_unmanaged_options_are_kept(netns):
    underlay(netns)
    ok(direct(netns, dict(BASE, mtu=1400, tos="0x10")))
    result = ok(direct(netns, {"name": "t1", "local": "172.19.1.1", "remote": "172.19.1.2", "key": 42}))
    assert result["changed"] is False, result
    assert link(netns, "t1")["mtu"] == 1400 and routes(netns, "t1") == [("20.10.1.0/24", None, 0)]


def test_ip6gre_create_and_rerun(netns):
    underlay(netns)
    args = {"name": "t6", "mode": "ip6gre", "local": "2001:db8::1", "remote": "2001:db8::2", "key": "0.0.0.9", "ttl": 30,
            "addresses": ["2001:db8:99::1/64"], "routes": ["2001:db8:77::/48"]}
    ok(direct(netns, args))
    data = info(netns, "t6")
    assert (data["local"], data["remote"], data["ikey"], data["ttl"]) == ("2001:db8::1", "2001:db8::2", "0.0.0.9", 30)
    assert ok(direct(netns, args))["changed"] is False


def test_many_tunnels_in_one_task_and_rerun(netns):
    underlay(netns)
    tunnels = [{"name": "s%d" % i, "local": "172.19.1.1", "remote": "172.19.3.%d" % (i + 1), "key": i + 1,
                "addresses": [{"address": "192.168.9.%d" % (2 * i + 1), "peer": "192.168.9.%d" % (2 * i + 2)}],
                "routes": ["10.%d.0.0/16" % i]} for i in range(30)]
    first = ok(direct(netns, {"tunnels": tunnels}))
    assert first["changed"] and len(first["tunnels"]) == 30 and tunnel_names(netns) == {"s%d" % i for i in range(30)}
    assert ok(direct(netns, {"tunnels": tunnels}))["changed"] is False
    tunnels[3]["ttl"] = 9
    third = ok(direct(netns, {"tunnels": tunnels}, diff=True))
    assert third["commands"] == ["ip link set s3 type gre ttl 9"]
    assert [d["after_header"] for d in third["diff"]] == ["tunnel s3"]


def test_purge_spares_foreign_and_fallback_tunnels(netns):
    underlay(netns)
    sh(netns, "ip link add foreign type gre local 172.19.1.1 remote 172.19.9.9")
    tunnels = [{"name": "p%d" % i, "local": "172.19.1.1", "remote": "172.19.4.%d" % i} for i in range(3)]
    ok(direct(netns, {"tunnels": tunnels}))
    check = ok(direct(netns, {"tunnels": tunnels[:1], "purge": True}, check=True, diff=True))
    assert check["purged"] == ["p1", "p2"] and tunnel_names(netns) == {"foreign", "p0", "p1", "p2"}
    result = ok(direct(netns, {"tunnels": tunnels[:1], "purge": True}))
    assert result["purged"] == ["p1", "p2"] and result["commands"] == ["ip link del p1", "ip link del p2"]
    assert tunnel_names(netns) == {"foreign", "p0"}
    everything = ok(direct(netns, {"tunnels": [], "purge": True}))
    assert everything["purged"] == ["p0"] and tunnel_names(netns) == {"foreign"}
    assert link(netns, "gre0") is not None


# --- bad input, refused before any change -----------------------------------------------------------------------------

BAD = [
    ({"addresses": ["192.168.8.300/24"]}, ["addresses[0]", "192.168.8.300/24"]),
    ({"local": "2001:db8::1"}, ["local", "2001:db8::1", "IPv4"]),
    ({"name": "a-name-too-long-for-linux"}, ["name", "a-name-too-long-for-linux"]),
    ({"name": "bad/name"}, ["name", "bad/name"]),
    ({"key": 4294967296}, ["key", "4294967296"]),
    ({"ttl": 256}, ["ttl", "256"]),
    ({"mtu": 65535}, ["mtu", "65535"]),
    ({"mtu": 60}, ["mtu", "60"]),
    ({"pmtudisc": False}, ["ttl", "64", "pmtudisc"]),
    ({"link": "nosuchdev"}, ["link", "nosuchdev"]),
    ({"routes": ["10.0.0.1/8"]}, ["routes[0]", "10.0.0.1/8"]),
]


@pytest.mark.parametrize("change,words", BAD, ids=[repr(b[0]) for b in BAD])
def test_bad_input_is_refused_before_any_change(netns, change, words):
    underlay(netns)
    result = direct(netns, dict(BASE, **change))
    assert result.get("failed"), result
    for word in words:
        assert word in result["msg"], (word, result["msg"])
    assert tunnel_names(netns) == set()


def test_same_endpoints_and_key_as_another_tunnel_is_refused(netns):
    underlay(netns)
    sh(netns, "ip link add other type gre local 172.19.1.1 remote 172.19.1.2 key 42")
    result = direct(netns, BASE)
    assert result.get("failed") and "other" in result["msg"] and "key" in result["msg"], result
    assert tunnel_names(netns) == {"other"}
    twice = direct(netns, {"tunnels": [dict(BASE, key=5), dict(BASE, name="t2", key=5)]})
    assert twice.get("failed") and "t1" in twice["msg"] and "tunnels[1]" in twice["msg"], twice


def test_a_non_tunnel_interface_of_that_name_is_left_alone(netns):
    underlay(netns)
    result = direct(netns, dict(BASE, name="up1"))
    assert result.get("failed") and "up1" in result["msg"] and "veth" in result["msg"], result


def test_failure_after_create_removes_the_tunnel(netns):
    underlay(netns)
    result = direct(netns, dict(BASE, routes=[{"dest": "20.10.9.0/24", "via": "203.0.113.9"}]))
    assert result.get("failed"), result
    assert "removed" in result["msg"] and "route add 20.10.9.0/24" in result["msg"], result["msg"]
    assert tunnel_names(netns) == set()


def test_failure_part_way_through_a_change_says_where_the_tunnel_is(netns):
    underlay(netns)
    ok(direct(netns, BASE))
    result = direct(netns, dict(BASE, ttl=9, routes=[{"dest": "20.10.9.0/24", "via": "203.0.113.9"}]))
    assert result.get("failed"), result
    assert "part way" in result["msg"] and "ip link set t1 type gre ttl 9" in result["msg"], result["msg"]
    assert result["tunnel"]["ttl"] == 9 and info(netns, "t1")["ttl"] == 9


def test_replay_rebuilds_the_tunnel_after_a_reboot_and_twice_is_harmless(netns):
    underlay(netns)
    args = {"name": "gre-boot", "local": "172.19.1.1", "remote": "172.19.1.2", "key": 42, "ttl": 64, "mtu": 1400,
            "addresses": [{"address": "192.168.8.1", "peer": "192.168.8.11"}, "192.168.9.1/30"],
            "routes": ["20.10.1.0/24", {"dest": "20.10.2.0/24", "metric": 50}]}
    result = ok(run_module_direct(netns, SHORT, args))
    assert result["replay"][0].startswith("ip link show dev gre-boot >/dev/null 2>&1 || ip link add gre-boot")

    def kernel():
        found = link(netns, "gre-boot")
        found.pop("ifindex")
        return found, addresses(netns, "gre-boot"), routes(netns, "gre-boot")

    converged = kernel()
    sh(netns, "ip link del gre-boot")
    for _time in (1, 2):
        sh(netns, "set -e\n" + "\n".join(result["replay"]))
        assert kernel() == converged
    again = ok(run_module_direct(netns, SHORT, args))
    assert again["changed"] is False and again["replay"] == result["replay"]
