# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The planning behind the gre_lan_host role: the other site's LANs from the inventory, the router's address on the
host's network from the kernels' output, and every error named. The samples are iproute2 6.1 output
(`ip -j addr show` on router_a, `ip -j route show scope link` and `ip -j -6 route show` on host_c) of the lab's
topology (lab/topologies/howto.yml)."""

from __future__ import annotations

import json

from ansible_collections.overlay.gre.plugins.filter.gre_lan_routes import FilterModule
from ansible_collections.overlay.gre.plugins.module_utils._gre_lan import connected_networks, plan, router_addresses

ROUTER_A_ADDR = json.dumps([
    {"ifindex": 1, "ifname": "lo", "addr_info": [
        {"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"},
        {"family": "inet6", "local": "::1", "prefixlen": 128, "scope": "host"}]},
    {"ifindex": 2, "ifname": "bond0", "addr_info": [{"family": "inet", "local": "172.19.1.1", "prefixlen": 24, "scope": "global"}]},
    {"ifindex": 3, "ifname": "eth1", "addr_info": [
        {"family": "inet", "local": "10.10.1.1", "prefixlen": 24, "scope": "global"},
        {"family": "inet", "local": "10.10.1.2", "prefixlen": 24, "scope": "global", "secondary": True},
        {"family": "inet6", "local": "2001:db8:1::1", "prefixlen": 64, "scope": "global"},
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]},
    {"ifindex": 4, "ifname": "gre-router_b", "addr_info": [{"family": "inet", "local": "192.168.8.1", "prefixlen": 30, "scope": "global"}]},
])
HOST_C_ROUTES = "\n".join([
    json.dumps([{"dst": "10.10.1.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link", "prefsrc": "10.10.1.20", "flags": []}]),
    json.dumps([{"dst": "2001:db8:1::/64", "dev": "eth0", "protocol": "kernel", "metric": 256, "flags": []},
                {"dst": "fe80::/64", "dev": "eth0", "protocol": "kernel", "metric": 256, "flags": []},
                {"dst": "default", "gateway": "2001:db8:1::fe", "dev": "eth0", "flags": []}]),
    "systemd=no",
])


def inventory(**changes):
    hv = {
        "router_a": {"gre_router_peer": "router_b", "gre_router_lan_cidrs": ["10.10.1.0/24"]},
        "router_b": {"gre_router_peer": "router_a", "gre_router_lan_cidrs": ["20.10.1.0/24", "20.10.2.0/24"]},
        "host_c": {"gre_lan_router": "router_a"},
    }
    for key, value in changes.items():
        host, var = key.split("__")
        if value is None:
            hv[host].pop(var, None)
        else:
            hv[host][var] = value
    return hv


def lan_plan(hv=None, addr=ROUTER_A_ADDR, routes=HOST_C_ROUTES, routers=("router_a", "router_b")):
    hv = inventory() if hv is None else hv
    return plan("host_c", hv["host_c"], hv, list(routers), addr, routes)


def test_routes_to_every_lan_of_the_other_site_through_the_routers_address_on_the_hosts_network():
    result = lan_plan()
    assert result["errors"] == []
    assert (result["router"], result["peer"], result["gateways"]) == ("router_a", "router_b", {"ipv4": "10.10.1.1"})
    assert result["routes"] == [{"dest": "20.10.1.0/24", "via": "10.10.1.1"}, {"dest": "20.10.2.0/24", "via": "10.10.1.1"}]


def test_without_the_kernels_output_only_the_inventory_is_checked():
    result = plan("host_c", {"gre_lan_router": "router_a"}, inventory(), ["router_a", "router_b"])
    assert result["errors"] == [] and result["router"] == "router_a"
    assert result["peer_lan_cidrs"] == ["20.10.1.0/24", "20.10.2.0/24"] and result["routes"] == []


def test_ipv6_lans_go_through_the_routers_ipv6_address_never_a_link_local_one():
    result = lan_plan(inventory(router_b__gre_router_lan_cidrs=["20.10.1.0/24", "2001:db8:20::/48"]))
    assert result["errors"] == []
    assert result["routes"] == [{"dest": "20.10.1.0/24", "via": "10.10.1.1"}, {"dest": "2001:db8:20::/48", "via": "2001:db8:1::1"}]


def test_the_primary_address_wins_over_a_secondary_one_and_the_longest_network_first():
    assert [str(entry[0]) for entry in router_addresses(ROUTER_A_ADDR)][:2] == ["172.19.1.1/24", "10.10.1.1/24"]
    assert [str(entry[0]) for entry in router_addresses(ROUTER_A_ADDR)][-1] == "10.10.1.2/24"
    routes = json.dumps([{"dst": "10.10.0.0/16", "dev": "eth1", "scope": "link"}, {"dst": "10.10.1.0/25", "dev": "eth0", "scope": "link"}])
    addr = json.dumps([{"ifname": "eth1", "addr_info": [
        {"family": "inet", "local": "10.10.2.1", "prefixlen": 16, "scope": "global"},
        {"family": "inet", "local": "10.10.1.1", "prefixlen": 25, "scope": "global"}]}])
    assert lan_plan(addr=addr, routes=routes)["gateways"] == {"ipv4": "10.10.1.1"}


def test_connected_networks_leave_out_gateways_link_local_multicast_and_host_routes():
    text = json.dumps([{"dst": "10.10.1.0/24", "dev": "eth0"}, {"dst": "10.9.9.9", "dev": "eth0"}, {"dst": "default", "dev": "eth0"},
                       {"dst": "30.0.0.0/8", "gateway": "10.10.1.254"}, {"dst": "fe80::/64"}, {"dst": "ff00::/8", "type": "multicast"}])
    assert [str(n) for n in connected_networks(text + "\nnot json\n")] == ["10.10.1.0/24"]


def test_errors_name_the_host_and_the_variable():
    cases = [
        (inventory(host_c__gre_lan_router=None), "host_c: gre_lan_router is not set"),
        (inventory(host_c__gre_lan_router="host_c"), "host_c: gre_lan_router names this host itself"),
        (inventory(host_c__gre_lan_router="router_x"), "host_c: gre_lan_router names 'router_x', which is not a host of this inventory"),
        (inventory(router_a__gre_router_peer=None), "host_c: gre_lan_router names router_a, whose gre_router_peer is not set"),
        (inventory(router_a__gre_router_peer="router_z"), "host_c: gre_lan_router names router_a, whose gre_router_peer 'router_z' is not a host"),
        (inventory(router_b__gre_router_lan_cidrs=["20.10.1.0/33"]),
         "host_c: gre_lan_router router_a: router_b: gre_router_lan_cidrs has '20.10.1.0/33', which is not a network"),
        (inventory(router_b__gre_router_lan_cidrs="20.10.1.0/24"),
         "host_c: gre_lan_router router_a: router_b: gre_router_lan_cidrs must be a list of networks"),
    ]
    for hv, message in cases:
        errors = lan_plan(hv)["errors"]
        assert len(errors) == 1 and errors[0].startswith(message), (message, errors)
    hv = inventory()
    hv["host_d"] = {}
    errors = plan("host_c", {"gre_lan_router": "host_d"}, hv, ["router_a", "router_b"])["errors"]
    assert errors == ["host_c: gre_lan_router names host_d, which is not in the group gre_routers (the routers the role"
                      " overlay.gre.gre_router applies to)"]


def test_no_router_address_on_the_hosts_networks_is_an_error_listing_both_sides():
    routes = json.dumps([{"dst": "10.20.1.0/24", "dev": "eth0", "scope": "link"}])
    result = lan_plan(routes=routes)
    assert result["routes"] == []
    assert result["errors"] == [
        "host_c: gre_lan_router router_a has no IPv4 address on a network this host is directly connected to (this host's:"
        " 10.20.1.0/24; router_a's: 172.19.1.1/24 (bond0), 10.10.1.1/24 (eth1), 192.168.8.1/30 (gre-router_b), 10.10.1.2/24 (eth1));"
        " put the host on one of the router's LANs (10.10.1.0/24), or name another router"]
    v6 = lan_plan(inventory(router_b__gre_router_lan_cidrs=["2001:db8:20::/48"]), routes=HOST_C_ROUTES.split("\n", maxsplit=1)[0])
    assert v6["errors"][0].startswith("host_c: gre_lan_router router_a has no IPv6 address on a network this host is directly connected to"
                                      " (this host's: none;")


def test_a_lan_of_the_other_site_the_host_is_on_itself_is_refused():
    result = lan_plan(inventory(router_b__gre_router_lan_cidrs=["10.10.0.0/16"]))
    assert result["errors"] == ["host_c: 10.10.0.0/16 of router_b's gre_router_lan_cidrs overlaps 10.10.1.0/24, a network this host is"
                                " directly connected to; it cannot be routed through gre_lan_router router_a"]


def test_the_filter_is_the_plan():
    hv = inventory()
    routes = FilterModule().filters()["gre_lan_routes"]("host_c", {"gre_lan_router": "router_a"}, hv, ["router_a"], ROUTER_A_ADDR, HOST_C_ROUTES)
    assert routes == lan_plan(hv, routers=["router_a"])


def test_a_router_with_many_peers_routes_every_lan_it_reaches():
    """router_a is a spoke of a transit hub: host_c gets routes to the hub's LAN and to the other spoke's."""
    def router(site_id, underlay, lans, peers, **extra):
        out = {"gre_router_site_id": site_id, "gre_router_underlay_ip": underlay, "gre_router_lan_cidrs": lans,
               "gre_router_peers": peers, "gre_router_tunnel_pool": "10.255.0.0/24"}
        out.update(extra)
        return out
    hv = {"router_a": router(2, "172.19.1.1", ["10.10.1.0/24"], ["hub"]),
          "hub": router(1, "172.19.1.9", ["30.0.0.0/24"], ["router_a", "router_c"], gre_router_transit=True),
          "router_c": router(3, "172.19.1.3", ["40.0.0.0/24"], ["hub"]),
          "host_c": {"gre_lan_router": "router_a"}}
    result = lan_plan(hv, routers=("router_a", "hub", "router_c"))
    assert result["errors"] == [] and result["peer"] == "hub"
    assert result["routes"] == [{"dest": "30.0.0.0/24", "via": "10.10.1.1"}, {"dest": "40.0.0.0/24", "via": "10.10.1.1"}]
