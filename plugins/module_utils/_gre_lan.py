# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note: this module_utils is private to the overlay.gre collection; its API may change at any time.

"""The routes of a LAN host whose default gateway is not its site's GRE router (the gre_lan_host role).

What to route comes from the inventory: the host names its router (gre_lan_router), the router names its peer
(gre_router_peer), the peer lists its LANs (gre_router_lan_cidrs). Through which address is the kernels' business:
the router's addresses (``ip -j addr show`` on the router) that lie in a network the host is directly connected to
(``ip -j route show scope link`` and ``ip -j -6 route show`` on the host). Nothing is written twice.

plan() runs twice: without the kernels' output it checks the inventory and names the router to read; with it, it
picks the gateway and returns the routes for overlay.gre.ip_route. Every error names the host and the variable.
"""

from __future__ import annotations

import ipaddress
import json

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import plan as gre_router_plan

ROUTER_GROUP = "gre_routers"


def _text(value):
    return "" if value is None else str(value).strip()


def _networks(values, owner, variable, errors):
    """The CIDRs of VALUES as networks; each bad one is an error naming OWNER and VARIABLE."""
    if values is None:
        return []
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        errors.append("%s: %s must be a list of networks in CIDR form, not %r" % (owner, variable, values))
        return []
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(_text(value)))
        except ValueError as exc:
            errors.append("%s: %s has %r, which is not a network in CIDR form (%s)" % (owner, variable, value, exc))
    return networks


def parse_json_lines(text):
    """Every JSON document of TEXT that stands on a line of its own (``ip -j`` prints one a line), concatenated."""
    items = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("["):
            items.extend(json.loads(line))
    return items


def router_addresses(text):
    """The global addresses of ``ip -j addr show`` output, as interfaces (address with prefix), primary first."""
    found = []
    for link in parse_json_lines(text) if isinstance(text, str) else (text or []):
        for info in link.get("addr_info") or []:
            if "local" not in info or info.get("scope", "global") not in ("global", "universe", 0):
                continue
            interface = ipaddress.ip_interface("%s/%s" % (info["local"], info.get("prefixlen", 32)))
            if interface.ip.is_link_local or interface.ip.is_loopback:
                continue
            found.append((bool(info.get("secondary")), interface, link.get("ifname")))
    return [(interface, ifname) for _secondary, interface, ifname in sorted(found, key=lambda f: f[0])]


def connected_networks(text):
    """The networks the host is directly connected to: routes without a gateway of ``ip -j route show scope link``
    and ``ip -j -6 route show`` output (IPv6 link-local, multicast and host routes left out)."""
    networks = []
    for route in parse_json_lines(text) if isinstance(text, str) else (text or []):
        dest = route.get("dst")
        if not dest or dest == "default" or route.get("gateway") or route.get("type", "unicast") != "unicast":
            continue
        try:
            network = ipaddress.ip_network(dest)
        except ValueError:
            continue
        if network.is_link_local or network.is_multicast or network.prefixlen == network.max_prefixlen:
            continue
        if network not in networks:
            networks.append(network)
    return networks


def plan(me_name, me_vars, hostvars, router_group=None, router_addr_text=None, host_route_text=None):
    """The LAN host ME_NAME's routes to the other site's LANs through its router.

    ROUTER_GROUP is the list of hosts of gre_routers. Without ROUTER_ADDR_TEXT and HOST_ROUTE_TEXT (the output of
    ``ip -j addr show`` on the router and of ``ip -j route show scope link; ip -j -6 route show`` on the host) only
    the inventory is checked. Returns a dict: errors, router, peer, peer_lan_cidrs, and with the kernels' output
    gateways (by IP version) and routes (for overlay.gre.ip_route).
    """
    errors = []
    result = {"errors": errors, "router": None, "peer": None, "peer_lan_cidrs": [], "gateways": {}, "routes": []}
    router = _text(me_vars.get("gre_lan_router"))
    if not router:
        errors.append("%s: gre_lan_router is not set; name the inventory host of this site's GRE router" % me_name)
        return result
    if router == me_name:
        errors.append("%s: gre_lan_router names this host itself; a LAN host needs another machine, its site's GRE router" % me_name)
        return result
    if router not in hostvars:
        errors.append("%s: gre_lan_router names %r, which is not a host of this inventory" % (me_name, router))
        return result
    if router_group is not None and router not in list(router_group):
        errors.append("%s: gre_lan_router names %s, which is not in the group %s (the routers the role overlay.gre.gre_router applies to)"
                      % (me_name, router, ROUTER_GROUP))
        return result
    result["router"] = router
    router_vars = hostvars[router]
    if router_vars.get("gre_router_peers"):
        # many peers: every LAN the router routes through its tunnels (its peers', and those behind a transit hub)
        router_plan = gre_router_plan(router, router_vars, hostvars)
        if router_plan["errors"]:
            errors.append("%s: gre_lan_router names %s, whose tunnels cannot be planned: %s"
                          % (me_name, router, "; ".join(router_plan["errors"])))
            return result
        result["peer"] = ", ".join(pair["peer"] for pair in router_plan["pairs"])
        peer_lans = [ipaddress.ip_network(n) for pair in router_plan["pairs"] for n in pair["peer_lan_cidrs"]]
        result["peer_lan_cidrs"] = [str(n) for n in peer_lans]
        if router_addr_text is None or host_route_text is None:
            return result
        own_lans = _networks(router_vars.get("gre_router_lan_cidrs"), router, "gre_router_lan_cidrs", errors)
        return _routes(result, me_name, router, peer_lans, own_lans, router_addr_text, host_route_text, errors)
    peer = _text(router_vars.get("gre_router_peer"))
    if not peer:
        errors.append("%s: gre_lan_router names %s, whose gre_router_peer is not set, so there is no other site to route to" % (me_name, router))
        return result
    if peer not in hostvars:
        errors.append("%s: gre_lan_router names %s, whose gre_router_peer %r is not a host of this inventory" % (me_name, router, peer))
        return result
    result["peer"] = peer
    peer_lans = _networks(hostvars[peer].get("gre_router_lan_cidrs"), peer, "gre_router_lan_cidrs", errors)
    own_lans = _networks(router_vars.get("gre_router_lan_cidrs"), router, "gre_router_lan_cidrs", errors)
    if errors:
        errors[:] = ["%s: gre_lan_router %s: %s" % (me_name, router, e) for e in errors]
        return result
    result["peer_lan_cidrs"] = [str(n) for n in peer_lans]
    if router_addr_text is None or host_route_text is None:
        return result
    return _routes(result, me_name, router, peer_lans, own_lans, router_addr_text, host_route_text, errors)


def _routes(result, me_name, router, peer_lans, own_lans, router_addr_text, host_route_text, errors):
    """The routes through ROUTER's address on this host's network to PEER_LANS (result's gateways and routes)."""
    addresses = router_addresses(router_addr_text)
    connected = connected_networks(host_route_text)
    for lan in peer_lans:
        for network in connected:
            if lan.version == network.version and lan.overlaps(network):
                errors.append("%s: %s of %s's gre_router_lan_cidrs overlaps %s, a network this host is directly connected to;"
                              " it cannot be routed through gre_lan_router %s" % (me_name, lan, result["peer"], network, router))
    for version in sorted(set(lan.version for lan in peer_lans)):
        candidates = []
        for network in sorted((n for n in connected if n.version == version), key=lambda n: -n.prefixlen):
            candidates += [a for a, _ifname in addresses if a.ip in network and a not in candidates]
        if candidates:
            result["gateways"]["ipv%d" % version] = str(candidates[0].ip)
            continue
        mine = ", ".join(str(n) for n in connected if n.version == version) or "none"
        theirs = ", ".join("%s (%s)" % (a, ifname) for a, ifname in addresses if a.version == version) or "none"
        errors.append("%s: gre_lan_router %s has no IPv%d address on a network this host is directly connected to"
                      " (this host's: %s; %s's: %s); put the host on one of the router's LANs (%s), or name another router"
                      % (me_name, router, version, mine, router, theirs,
                         ", ".join(str(n) for n in own_lans if n.version == version) or "gre_router_lan_cidrs is empty"))
    if not errors:
        result["routes"] = [{"dest": str(lan), "via": result["gateways"]["ipv%d" % lan.version]} for lan in peer_lans]
    return result
