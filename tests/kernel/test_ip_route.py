# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.gre.ip_route against the kernel's routing tables, in namespaces the tests make (routes need no GRE)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from support import lab
from support.lab import ip_json, ping, run_module, run_module_direct, sh


HERE = os.path.dirname(os.path.abspath(__file__))
HOWTO_ROUTE = {"dest": "20.10.1.0/24", "via": "10.10.1.1"}


def routes(netns):
    """Every unicast route of every table (the local table's entries are of other types)."""
    return ip_json(netns, "route", "show", "table", "all", "type", "unicast")


def lines(netns):
    return sorted(json.dumps(r, sort_keys=True) for r in routes(netns))


@pytest.fixture
def lan(netns):
    """A host on 10.10.1.0/24 and 2001:db8:1::/64 (eth0, up), with eth1 down and addressless."""
    sh(netns, "sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 && "
              "ip link add eth0 type veth peer name peer0 && ip link add eth1 type veth peer name peer1 && "
              "sysctl -qw net.ipv6.conf.peer0.disable_ipv6=1 && "
              "ip link set peer0 up && ip link set eth0 up && ip addr add 10.10.1.5/24 dev eth0 && "
              "ip addr add 2001:db8:1::5/64 dev eth0 nodad")

    def settled():  # carrier up, and the kernel's IPv6 link-local route made: later snapshots compare equal
        text = json.dumps(routes(netns))
        return "linkdown" not in text and '"fe80::/64"' in text

    deadline = time.monotonic() + 5
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.05)
    return netns


def exact(netns, dest, table="all"):
    return ip_json(netns, "-N", "route", "show", "table", table, "exact", dest)


def test_creates_the_routes_with_its_protocol_then_no_change(lan):
    wanted = [HOWTO_ROUTE, {"dest": "2001:db8:20::/48", "via": "2001:db8:1::1", "metric": 5},
              {"dest": "192.0.2.0/24", "dev": "eth0", "table": 100}, {"dest": "198.51.100.0/24", "via": "192.0.2.1", "table": 100}]
    result = run_module_direct(lan, "ip_route", {"routes": wanted})
    assert result["changed"] is True, result
    assert result["commands"] == [
        "ip route add 192.0.2.0/24 dev eth0 table 100 proto 71",  # device routes first: the next gateway is on it
        "ip route add 20.10.1.0/24 via 10.10.1.1 proto 71",
        "ip route add 2001:db8:20::/48 via 2001:db8:1::1 metric 5 proto 71",
        "ip route add 198.51.100.0/24 via 192.0.2.1 table 100 proto 71",
    ]
    assert exact(lan, "20.10.1.0/24") == [{"dst": "20.10.1.0/24", "gateway": "10.10.1.1", "dev": "eth0", "protocol": "71", "flags": []}]
    assert [r["protocol"] for r in exact(lan, "2001:db8:20::/48")] == ["71"]
    assert exact(lan, "198.51.100.0/24", "100")[0]["gateway"] == "192.0.2.1"
    assert result["routes"][0] == {"dest": "20.10.1.0/24", "via": "10.10.1.1", "dev": "eth0", "metric": 0, "table": "main",
                                   "onlink": False, "protocol": 71, "owned": True, "state": "present"}
    assert result["routes"][2]["table"] == "100" and result["routes"][1]["metric"] == 5
    before = lines(lan)
    again = run_module_direct(lan, "ip_route", {"routes": wanted})
    assert again["changed"] is False and again["commands"] == [], again
    assert lines(lan) == before


def test_check_mode_changes_nothing_and_diff_shows_the_routes(lan):
    before = lines(lan)
    result = run_module_direct(lan, "ip_route", {"routes": [HOWTO_ROUTE]}, check=True, diff=True)
    assert result["changed"] is True
    assert result["commands"] == ["ip route add 20.10.1.0/24 via 10.10.1.1 proto 71"]
    assert lines(lan) == before
    assert result["diff"]["before"] == ""
    assert result["diff"]["after"] == "20.10.1.0/24 via 10.10.1.1 dev eth0 table main metric 0 proto 71\n"
    assert result["routes"][0]["state"] == "present" and result["routes"][0]["via"] == "10.10.1.1"


def test_absent_removes_the_route_and_then_has_nothing_to_do(lan):
    run_module_direct(lan, "ip_route", {"routes": [HOWTO_ROUTE]})
    result = run_module_direct(lan, "ip_route", {"routes": [{"dest": "20.10.1.0/24"}], "state": "absent"}, diff=True)
    assert result["changed"] is True
    assert result["commands"] == ["ip route del 20.10.1.0/24 via 10.10.1.1 dev eth0 metric 0 proto 71"]
    assert exact(lan, "20.10.1.0/24") == []
    assert result["routes"] == [{"dest": "20.10.1.0/24", "metric": 0, "table": "main", "state": "absent"}]
    assert result["diff"]["before"].startswith("20.10.1.0/24 via 10.10.1.1 dev eth0") and result["diff"]["after"] == ""
    again = run_module_direct(lan, "ip_route", {"routes": [{"dest": "20.10.1.0/24", "state": "absent"}]})
    assert again["changed"] is False


def test_purge_removes_only_routes_it_made(lan):
    sh(lan, "ip route add 30.0.0.0/8 via 10.10.1.1 proto static && ip route add 20.10.2.0/24 via 10.10.1.3 metric 7 && "
            "ip route add 20.10.3.0/24 via 10.10.1.4 proto 72")
    run_module_direct(lan, "ip_route", {"routes": [HOWTO_ROUTE, {"dest": "20.10.2.0/24", "via": "10.10.1.1"},
                                                   {"dest": "20.10.9.0/24", "dev": "eth0", "table": 200}]})
    foreign = [r for r in routes(lan) if r.get("protocol") != "71"]
    result = run_module_direct(lan, "ip_route", {"routes": [HOWTO_ROUTE], "purge": True})
    assert result["changed"] is True
    assert sorted(result["commands"]) == ["ip route del 20.10.2.0/24 via 10.10.1.1 dev eth0 metric 0 proto 71",
                                          "ip route del 20.10.9.0/24 dev eth0 table 200 metric 0 proto 71"]
    assert sorted(r["dest"] for r in result["purged"]) == ["20.10.2.0/24", "20.10.9.0/24"]
    assert [r for r in routes(lan) if r.get("protocol") != "71"] == foreign  # static, boot, 72 and the kernel's
    assert [r["dst"] for r in routes(lan) if r.get("protocol") == "71"] == ["20.10.1.0/24"]
    assert run_module_direct(lan, "ip_route", {"routes": [HOWTO_ROUTE], "purge": True})["changed"] is False


def test_a_changed_gateway_is_replaced_in_place_and_a_changed_metric_moves_with_purge(lan):
    run_module_direct(lan, "ip_route", {"routes": [HOWTO_ROUTE]})
    moved = run_module_direct(lan, "ip_route", {"routes": [dict(HOWTO_ROUTE, via="10.10.1.2")]}, diff=True)
    assert moved["commands"] == ["ip route replace 20.10.1.0/24 via 10.10.1.2 proto 71"]
    assert [r["gateway"] for r in exact(lan, "20.10.1.0/24")] == ["10.10.1.2"]
    assert moved["diff"]["before"] == "20.10.1.0/24 via 10.10.1.1 dev eth0 table main metric 0 proto 71\n"
    assert moved["diff"]["after"] == "20.10.1.0/24 via 10.10.1.2 dev eth0 table main metric 0 proto 71\n"
    assert moved["warnings"] == []
    metric = run_module_direct(lan, "ip_route", {"routes": [dict(HOWTO_ROUTE, via="10.10.1.2", metric=20)], "purge": True})
    assert metric["commands"] == ["ip route add 20.10.1.0/24 via 10.10.1.2 metric 20 proto 71",
                                  "ip route del 20.10.1.0/24 via 10.10.1.2 dev eth0 metric 0 proto 71"]
    assert [(r["gateway"], r.get("metric", 0)) for r in exact(lan, "20.10.1.0/24")] == [("10.10.1.2", 20)]
    back = run_module_direct(lan, "ip_route", {"routes": [dict(HOWTO_ROUTE, via="10.10.1.2")], "purge": True})
    # `ip route del` without a metric takes the first route of any metric, here the new one: the metric is always given
    assert back["commands"] == ["ip route add 20.10.1.0/24 via 10.10.1.2 proto 71",
                                "ip route del 20.10.1.0/24 via 10.10.1.2 dev eth0 metric 20 proto 71"]
    assert [(r["gateway"], r.get("metric", 0)) for r in exact(lan, "20.10.1.0/24")] == [("10.10.1.2", 0)]


def test_a_foreign_route_with_the_same_key_is_taken_over_and_reported(lan):
    sh(lan, "ip route add 20.10.1.0/24 via 10.10.1.9 proto static")
    result = run_module_direct(lan, "ip_route", {"routes": [HOWTO_ROUTE]}, diff=True)
    assert result["commands"] == ["ip route replace 20.10.1.0/24 via 10.10.1.1 proto 71"]
    assert result["diff"]["before"] == "20.10.1.0/24 via 10.10.1.9 dev eth0 table main metric 0 proto static\n"
    assert result["warnings"] == ["routes[0]: replaced 20.10.1.0/24 via 10.10.1.9 dev eth0 table main metric 0 proto static, "
                                  "a route of protocol static this module did not make"]
    assert exact(lan, "20.10.1.0/24") == [{"dst": "20.10.1.0/24", "gateway": "10.10.1.1", "dev": "eth0", "protocol": "71", "flags": []}]


def test_onlink_gateway_off_any_connected_network(lan):
    wanted = {"routes": [{"dest": "203.0.113.0/24", "via": "100.64.0.1", "dev": "eth0", "onlink": True}]}
    result = run_module_direct(lan, "ip_route", wanted)
    assert result["changed"] is True, result
    assert exact(lan, "203.0.113.0/24")[0]["flags"] == ["onlink"]
    assert run_module_direct(lan, "ip_route", wanted)["changed"] is False


@pytest.mark.parametrize("entry,message", [
    ({"dest": "20.10.1.1/24", "via": "10.10.1.1"}, "routes[1]: '20.10.1.1/24' is not a destination network (CIDR): 20.10.1.1/24 has host bits set"),
    ({"dest": "20.10.7.0/24", "via": "10.10.1"}, "routes[1].via: '10.10.1' is not an IP address"),
    ({"dest": "20.10.7.0/24", "via": "2001:db8:1::1"}, "routes[1].via: 2001:db8:1::1 is not of the address family of 20.10.7.0/24"),
    ({"dest": "20.10.7.0/24", "via": "10.10.1.1", "dev": "eth9"}, "routes[1].dev: 'eth9' does not exist on this host"),
    ({"dest": "20.10.7.0/24", "dev": "eth1"}, "routes[1].dev: eth1 is down"),
    ({"dest": "20.10.7.0/24", "via": "10.10.1.1", "metric": -1}, "routes[1].metric: -1 is out of range (a route metric is 0 to 4294967295)"),
    ({"dest": "20.10.7.0/24", "via": "10.10.1.1", "metric": 2 ** 32}, "routes[1].metric: 4294967296 is out of range"),
    ({"dest": "20.10.7.0/24", "via": "10.20.1.1"}, "routes[1].via: 10.20.1.1 is not on a network this host is connected to"),
    ({"dest": "20.10.7.0/24", "via": "10.10.1.5"}, "routes[1].via: 10.10.1.5 is an address of this host itself"),
    ({"dest": "2001:db8:20::/48", "via": "2001:db8:2::1"}, "routes[1].via: 2001:db8:2::1 is not on a network this host is connected to"),
    ({"dest": "2001:db8:20::/48", "via": "fe80::1"}, "routes[1].via: fe80::1 is a link-local address; it needs dev"),
    ({"dest": "20.10.7.0/24"}, "routes[1]: 20.10.7.0/24 has neither via (a gateway) nor dev"),
    ({"dest": "20.10.7.0/24", "via": "100.64.0.1", "onlink": True}, "routes[1].onlink: onlink needs both via and dev"),
    ({"dest": "20.10.7.0/24", "via": "10.10.1.1", "table": "local"}, "routes[1].table: 'local' is the kernel's local table"),
    ({"dest": "20.10.7.0/24", "via": "10.10.1.1", "table": "nosuch"}, "routes[1].table: 'nosuch' is neither a routing table number"),
    ({"dest": "10.10.1.0/24", "dev": "eth0"}, "routes[1]: 10.10.1.0/24 metric 0 in table main is the kernel's own route (protocol kernel) on eth0"),
])
def test_bad_input_is_refused_before_any_change(lan, entry, message):
    before = lines(lan)
    result = run_module_direct(lan, "ip_route", {"routes": [HOWTO_ROUTE, entry]})
    assert result.get("failed") is True, result
    assert result["msg"].startswith(message), result["msg"]
    assert result["commands"] == []
    assert lines(lan) == before


def test_a_reserved_protocol_is_refused(lan):
    result = run_module_direct(lan, "ip_route", {"routes": [HOWTO_ROUTE], "protocol": 4})
    assert result.get("failed") is True and result["msg"].startswith("protocol: 4 is reserved"), result


def test_a_failure_part_way_undoes_what_ran_before_it(lan):
    """The kernel refuses the second route (IPv6 is off on eth0), which no input check foresees: the first is undone."""
    sh(lan, "ip route add 20.10.1.0/24 via 10.10.1.9 proto static && sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1")
    before = lines(lan)
    result = run_module_direct(lan, "ip_route", {"routes": [HOWTO_ROUTE, {"dest": "20.10.2.0/24", "via": "10.10.1.1"},
                                                            {"dest": "2001:db8:20::/48", "via": "2001:db8:1::1", "dev": "eth0", "onlink": True}]},
                               diff=True)
    assert result.get("failed") is True, result
    assert result["msg"].startswith("`ip route add 2001:db8:20::/48 via 2001:db8:1::1 dev eth0 onlink proto 71` failed:"), result["msg"]
    assert "The 2 command(s) before it were undone" in result["msg"] and "the routes are as they were" in result["msg"]
    assert result["changed"] is False
    assert lines(lan) == before
    assert exact(lan, "20.10.1.0/24")[0]["protocol"] == "4"
    assert result["warnings"] == []  # the foreign route was put back: nothing was replaced
    assert result["diff"]["after"] == result["diff"]["before"] == "20.10.1.0/24 via 10.10.1.9 dev eth0 table main metric 0 proto static\n"
    assert [r["state"] for r in result["routes"]] == ["present", "absent", "absent"]


@pytest.fixture
def site(netns_factory):
    import topology  # lab/topology.py

    if os.geteuid() != 0:
        pytest.fail("tests that use network namespaces must run as root", pytrace=False)
    topo = topology.Topology.load(os.path.join(HERE, "topologies", "ip_route.yml"), prefix=lab.new_netns_name("ir") + "-")
    topo.up()
    try:
        yield topo
    finally:
        topo.down()


def test_a_lan_host_reaches_the_other_site_once_routed_via_the_gre_router(site):
    """Real packets, through Ansible: host's default gateway (edge) has no way to site B; the router has."""
    host = site.ns("host")
    assert not ping(host, "20.10.1.10", wait=1)
    result = run_module(host, "overlay.gre.ip_route", {"routes": [HOWTO_ROUTE]}, diff=True)
    assert result["changed"] is True, result
    assert result["commands"] == ["ip route add 20.10.1.0/24 via 10.10.1.1 proto 71"]
    assert ping(host, "20.10.1.10")
    trace = subprocess.run(["ip", "-n", host, "-j", "route", "get", "20.10.1.10"], capture_output=True, text=True, check=True)
    assert json.loads(trace.stdout)[0]["gateway"] == "10.10.1.1"
    again = run_module(host, "overlay.gre.ip_route", {"routes": [HOWTO_ROUTE]})
    assert again["changed"] is False, again
    assert ping(host, "20.10.1.10")


def test_replay_twice_rebuilds_the_same_routes(lan):
    """What a boot script of the returned `replay` lines does: the routes as the task left them, and running it again
    changes nothing."""
    sh(lan, "ip route add 30.0.0.0/8 via 10.10.1.1 proto static")  # not listed: not in the replay
    wanted = [HOWTO_ROUTE, {"dest": "20.10.2.0/24", "via": "10.10.1.2", "metric": 10},
              {"dest": "2001:db8:20::/48", "via": "2001:db8:1::1"}, {"dest": "198.51.100.0/24", "via": "192.0.2.1", "table": 100},
              {"dest": "192.0.2.0/24", "dev": "eth0", "table": 100}, {"dest": "20.10.9.0/24", "state": "absent"}]
    result = run_module_direct(lan, "ip_route", {"routes": wanted})
    assert result["changed"] is True, result
    assert result["replay"] == [
        "ip route replace 192.0.2.0/24 dev eth0 table 100 proto 71",
        "ip route replace 20.10.1.0/24 via 10.10.1.1 proto 71",
        "ip route replace 20.10.2.0/24 via 10.10.1.2 metric 10 proto 71",
        "ip route replace 2001:db8:20::/48 via 2001:db8:1::1 proto 71",
        "ip route replace 198.51.100.0/24 via 192.0.2.1 table 100 proto 71",
    ]
    after_task = lines(lan)
    check = run_module_direct(lan, "ip_route", {"routes": wanted}, check=True)
    assert check["changed"] is False and check["replay"] == result["replay"]
    # the reboot: the routes the module made are gone
    sh(lan, "ip route flush table all proto 71 && ip -6 route flush table all proto 71")
    assert lines(lan) != after_task
    script = "set -e\n" + "\n".join(result["replay"]) + "\n"
    for _time in (1, 2):
        sh(lan, script)
        assert lines(lan) == after_task
    assert run_module_direct(lan, "ip_route", {"routes": wanted})["changed"] is False


def test_the_rtnetlink_reader_reads_what_ip_N_j_prints(lan):
    """ip_route reads through _rtnetlink; `ip -N -j` of the same namespace, parsed as the module once did, is the reference."""
    sh(lan, "ip route add 20.10.1.0/24 via 10.10.1.1 metric 5 proto 71 && ip route add 20.10.2.0/24 via 10.10.1.2 table 1000 && "
            "ip route add 20.10.3.0/24 via 10.99.0.1 dev eth0 onlink table 77 && ip route add 20.10.4.0/24 tos 0x10 via 10.10.1.1 && "
            "ip route add 20.10.5.0/24 nexthop via 10.10.1.1 nexthop via 10.10.1.2 && ip -6 route add 2001:db8:7::/48 via 2001:db8:1::1 metric 9 && "
            "ip route add default via 10.10.1.1 && ip -6 route add default via 2001:db8:1::1 table 3000")
    from support.lab import in_child

    def both():
        from ansible_collections.overlay.gre.plugins.module_utils import _ip_route as r
        from ansible_collections.overlay.gre.plugins.module_utils import _rtnetlink
        out = subprocess.run(["ip", "-N", "-j", "-batch", "-"], input=r.READ_COMMANDS, capture_output=True, text=True, check=True).stdout
        by_ip = r.LiveRoutes.from_ip_output(out)
        routes, links = _rtnetlink.read(table=_rtnetlink.RT_TABLE_UNSPEC, numeric=True)[::-1]
        by_netlink = r.LiveRoutes(routes, links)

        def view(live):
            return [sorted(live.routes, key=lambda x: json.dumps(x, sort_keys=True)), live.interfaces, sorted(live.addresses)]

        return json.dumps([view(by_ip), view(by_netlink)])

    by_ip, by_netlink = json.loads(in_child(lan, both))
    assert by_netlink == by_ip
    routes = {(x["table"], x["dest"]): x for x in by_netlink[0]}
    assert routes[(77, "20.10.3.0/24")]["onlink"] is True and routes[(254, "20.10.5.0/24")]["multipath"] is True
    assert routes[(254, "20.10.1.0/24")]["protocol"] == 71 and (3000, "::/0") in routes and (254, "20.10.4.0/24") not in routes
