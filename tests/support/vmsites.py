# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of the many-site labs on real routers (tests/vm/test_hub.py, test_mesh.py): a topology's routers are its
hosts with a wan0 interface, its LAN hosts those with eth0, each behind the router on its network."""

from __future__ import annotations

import ipaddress
import json
import os
import re

import yaml

from support.vmlab import ROOT, boot_sites


def boot_inventory(name, inventory, topology, example):
    """Boot lab NAME of TOPOLOGY for the sites of inventories/EXAMPLE: its host_vars, and the variables its hosts.yml
    gives the group gre_routers; yields the vm.Lab, then downs it."""
    with open(os.path.join(ROOT, "inventories", example, "hosts.yml"), encoding="utf-8") as handle:
        group_vars = yaml.safe_load(handle)["all"]["children"]["gre_routers"]["vars"]
    yield from boot_sites(name, inventory, group_vars, topology=topology,
                          sites="inventories/%s/host_vars" % example, routers=tuple(sorted(Sites(topology).routers)))


class Sites:
    """The routers and LAN hosts of TOPOLOGY (a path under the checkout)."""

    def __init__(self, topology):
        with open(os.path.join(ROOT, topology), encoding="utf-8") as handle:
            hosts = yaml.safe_load(handle)["hosts"]
        self.routers = {name: host["interfaces"] for name, host in hosts.items() if "wan0" in host["interfaces"]}
        self.lan_hosts = {name: str(ipaddress.ip_interface(host["interfaces"]["eth0"]).ip)
                          for name, host in hosts.items() if "eth0" in host["interfaces"]}
        self.behind = {}
        for name, address in self.lan_hosts.items():
            for router, interfaces in self.routers.items():
                if ipaddress.ip_address(address) in ipaddress.ip_interface(interfaces["lan0"]).network:
                    self.behind[name] = router

    def lan(self, router):
        return str(ipaddress.ip_interface(self.routers[router]["lan0"]).network)

    def underlay(self, router):
        return str(ipaddress.ip_interface(self.routers[router]["wan0"]).ip)


def ttl_of_replies(lab, source, address):
    """The TTLs of the replies SOURCE gets to pings of ADDRESS (empty: no reply)."""
    out = lab.run(source, ["ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", address]).stdout
    return sorted({int(ttl) for ttl in re.findall(r"ttl=(\d+)", out)})


def every_pair_reaches(lab, sites, hub=None, only=None):
    """Every LAN host pings every other one; each reply crossed two routers, or, between two hosts behind spokes,
    three: through HUB, never directly. Returns the failures, one line each (empty: all passed)."""
    names = [name for name in sorted(sites.lan_hosts) if not only or name in only]
    failures = []
    for source in names:
        for target in names:
            if source == target:
                continue
            hops = 3 if hub and hub not in (sites.behind[source], sites.behind[target]) else 2
            ttls = ttl_of_replies(lab, source, sites.lan_hosts[target])
            if ttls != [64 - hops]:
                failures.append("%s -> %s (%s): ttl %s, expected %d (%d routers)" % (
                    source, target, sites.lan_hosts[target], ttls or "none, no reply", 64 - hops, hops))
    return failures


def snapshot(lab, routers):
    """Each router's GRE tunnels (ip -d link, ifindex included: a tunnel made again is not the same one), their
    addresses, the main table's routes and the firewall rules of overlay.gre, as the kernels report them."""
    state = {}
    for router in routers:
        links = [link for link in json.loads(lab.run(router, ["ip", "-d", "-j", "link", "show", "type", "gre"],
                                                     check=True).stdout) if link["ifname"] != "gre0"]
        addresses = {}
        for link in links:
            info = json.loads(lab.run(router, ["ip", "-j", "addr", "show", "dev", link["ifname"]], check=True).stdout)
            addresses[link["ifname"]] = [a for a in info[0].get("addr_info", [])
                                         if not (a["family"] == "inet6" and a["scope"] == "link")]
        routes = [json.dumps(r, sort_keys=True)
                  for r in json.loads(lab.run(router, ["ip", "-j", "route", "show"], check=True).stdout)]
        rules = [line for line in lab.run(router, ["iptables-save"], check=True).stdout.splitlines()
                 if line.startswith("-A") and "OGRE-" in line]
        state[router] = {"links": {link["ifname"]: link for link in links}, "addresses": addresses,
                         "routes": routes, "rules": rules}
    return state


def without(state, routers=(), tunnels=(), lans=(), rules_as_set=False):
    """STATE without ROUTERS, the TUNNELS named and the routes and rules that name TUNNELS or LANS; with
    RULES_AS_SET, each router's rules sorted (a chain that got rules back has them in another order)."""
    words = tuple(tunnels) + tuple(lans)
    out = {}
    for router, item in state.items():
        if router in routers:
            continue
        rules = [r for r in item["rules"] if not any(word in r for word in words)]
        out[router] = {
            "links": {k: v for k, v in item["links"].items() if k not in tunnels},
            "addresses": {k: v for k, v in item["addresses"].items() if k not in tunnels},
            "routes": [r for r in item["routes"] if not any(word in r for word in words)],
            "rules": sorted(rules) if rules_as_set else rules,
        }
    return out
