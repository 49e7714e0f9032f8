# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note: this module_utils is private to the overlay.gre collection; its API may change at any time.

"""Derive one router's side of a GRE pair from both routers' inventory variables, and check the pair.

Runs on the controller (through the overlay.gre.gre_router_plan filter): every check happens before any
host is touched, and both ends are derived from the same data, so they always mirror each other.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.overlay.gre.plugins.module_utils import _ipsec

PREFIX = "gre_router_"

DEFAULTS = {
    "key": None,
    "ttl": 64,
    "mtu": None,
    "mss_clamp": "pmtu",
    "masquerade": False,
    "lan_interface": None,
    "gre_firewall": True,
    "lan_cidrs": [],
    "tunnel_address": None,
    "tunnel_peer_address": None,
    "tunnel_name": None,
    "state": "present",
    "keepalive": None,
}

KEEPALIVE_DEFAULTS = {"period": 10, "retries": 3}


class _Side(object):
    """One router's gre_router_* variables, with the role's defaults where unset."""

    def __init__(self, name, variables):
        self.name = name
        self.vars = variables or {}

    def get(self, key):
        value = self.vars.get(PREFIX + key)
        if value is None:
            return DEFAULTS.get(key)
        return value


def default_tunnel_name(peer_name):
    """'gre-' and as much of the peer's name as fits the kernel's 15 characters, with no ':' '/' or spaces."""
    cleaned = "".join(c if (c.isalnum() or c in "-_.") else "-" for c in str(peer_name))
    return ("gre-" + cleaned)[:15]


def normalise_key(value):
    """A GRE key as the kernel holds it (an integer), from an integer or a dotted quad; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("not a key")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and "." in value:
        number = int(ipaddress.IPv4Address(value))
    else:
        number = int(str(value), 10)
    if not 0 <= number <= 0xFFFFFFFF:
        raise ValueError("out of range")
    return number


def normalise_keepalive(value):
    """GRE keepalives as {'period': seconds, 'retries': count}, or None for off (None, false, an empty value).

    True gives IOS's defaults (10 seconds, 3 retries); a mapping may give either or both.
    """
    if value is None or value is False or value == "" or value == {}:
        return None
    if value is True:
        return dict(KEEPALIVE_DEFAULTS)
    if not isinstance(value, dict):
        raise ValueError("not a mapping")
    unknown = sorted(set(value) - set(KEEPALIVE_DEFAULTS))
    if unknown:
        raise ValueError("unknown key %s" % ", ".join(unknown))
    out = dict(KEEPALIVE_DEFAULTS)
    for name in KEEPALIVE_DEFAULTS:
        if value.get(name) is not None:
            if isinstance(value[name], bool):
                raise ValueError("%s is not a number" % name)
            number = float(value[name]) if name == "period" else int(str(value[name]), 10)
            if name == "period" and number == int(number):
                number = int(number)
            out[name] = number
    if not 0 < out["period"] <= 3600 or not 1 <= out["retries"] <= 255:
        raise ValueError("out of range")
    return out


class PairPlan(object):
    """Everything this router needs, and every error found in the pair (each naming a host and a variable)."""

    def __init__(self, me_name, me_vars, peer_vars_by_host):
        self.errors = []
        self.me = _Side(me_name, me_vars)
        peer_name = self.me.get("peer")
        self.peer = None
        self.result = {}
        if not peer_name:
            self._err(self.me, "peer", "is not set: name the inventory host of the other router of the pair")
            return
        if peer_name == me_name:
            self._err(self.me, "peer", "names this router itself (%s); it must name the other router of the pair" % me_name)
            return
        if peer_name not in peer_vars_by_host:
            self._err(self.me, "peer", "names %r, which is not a host of this inventory" % (peer_name,))
            return
        self.peer = _Side(peer_name, peer_vars_by_host[peer_name])
        self._check_and_derive()

    def _err(self, side, var, text):
        self.errors.append("%s: %s%s %s" % (side.name, PREFIX, var, text))

    def _network(self, side, var, value):
        try:
            return ipaddress.ip_network(str(value), strict=True)
        except ValueError as exc:
            self._err(side, var, "has %r, which is not a network in CIDR form (%s)" % (value, exc))
            return None

    def _address(self, side, var, value):
        try:
            return ipaddress.ip_address(str(value))
        except ValueError:
            self._err(side, var, "has %r, which is not an IP address" % (value,))
            return None

    def _lans(self, side):
        value = side.get("lan_cidrs")
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self._err(side, "lan_cidrs", "must be a list of networks in CIDR form, not %r" % (value,))
            return []
        nets = [self._network(side, "lan_cidrs", item) for item in value]
        return [n for n in nets if n is not None]

    def _tunnel_addresses(self, side, other):
        """(this side's tunnel address, the other side's, prefix length or None for a peer address pair)."""
        cidr_value = side.get("tunnel_cidr")
        own = side.get("tunnel_address")
        peer_addr = side.get("tunnel_peer_address")
        network = None
        if cidr_value:
            network = self._network(side, "tunnel_cidr", cidr_value)
        elif not (own and peer_addr):
            self._err(side, "tunnel_cidr", "is not set: give the small network both tunnel ends share (a /30 or /31), "
                      "or set both gre_router_tunnel_address and gre_router_tunnel_peer_address")
            return None, None, None
        derived = (None, None)
        if network is not None:
            usable = list(network.hosts()) if network.num_addresses > 2 else list(network)
            if len(usable) < 2:
                self._err(side, "tunnel_cidr", "has %s, which has room for fewer than two tunnel addresses" % network)
            else:
                first, second = usable[0], usable[1]
                derived = (first, second) if side.name < other.name else (second, first)
        mine = self._address(side, "tunnel_address", own) if own else derived[0]
        theirs = self._address(side, "tunnel_peer_address", peer_addr) if peer_addr else None
        if theirs is None and not peer_addr:
            other_own = other.get("tunnel_address")
            theirs = self._address(other, "tunnel_address", other_own) if other_own else derived[1]
        prefixlen = network.prefixlen if (network is not None and not own and not peer_addr) else None
        return mine, theirs, prefixlen

    def _check_and_derive(self):
        me, peer = self.me, self.peer
        if peer.get("peer") != me.name:
            self._err(peer, "peer", "is %r, but %s names %s as its peer: each router of a pair must name the other"
                      % (peer.get("peer"), me.name, peer.name))
        for var in ("tunnel_cidr", "key"):
            mine, theirs = me.get(var), peer.get(var)
            if var == "key":
                try:
                    mine, theirs = normalise_key(mine), normalise_key(theirs)
                except ValueError:
                    self._err(me, "key", "has %r: a GRE key is an integer from 0 to 4294967295 or a dotted quad" % (me.get("key"),))
                    continue
            if mine != theirs:
                self._err(me, var, "is %r on %s but %r on its peer %s: both ends of a tunnel must agree"
                          % (me.get(var), me.name, peer.get(var), peer.name))
        my_underlay = self._address(me, "underlay_ip", me.get("underlay_ip")) if me.get("underlay_ip") else None
        peer_underlay = self._address(peer, "underlay_ip", peer.get("underlay_ip")) if peer.get("underlay_ip") else None
        if me.get("underlay_ip") is None:
            self._err(me, "underlay_ip", "is not set: give this router's address on the network both routers reach")
        if peer.get("underlay_ip") is None:
            self._err(peer, "underlay_ip", "is not set: give this router's address on the network both routers reach")
        if my_underlay is not None and my_underlay == peer_underlay:
            self._err(me, "underlay_ip", "is %s on both %s and %s: the two ends need different underlay addresses"
                      % (my_underlay, me.name, peer.name))
        my_lans, peer_lans = self._lans(me), self._lans(peer)
        mine, theirs, prefixlen = self._tunnel_addresses(me, peer)
        peer_view = self._tunnel_addresses(peer, me) if not self.errors else (None, None, None)
        if mine is not None and theirs is not None and peer_view[0] is not None:
            if peer_view[0] != theirs or peer_view[1] != mine:
                self._err(me, "tunnel_address", "gives this end %s and the other %s, but %s's variables give it %s and this end %s"
                          % (mine, theirs, peer.name, peer_view[0], peer_view[1]))
        tunnel_net = None
        if prefixlen is not None and mine is not None:
            tunnel_net = ipaddress.ip_interface("%s/%d" % (mine, prefixlen)).network
        self._check_overlaps(my_lans, peer_lans, tunnel_net, [a for a in (mine, theirs) if a is not None],
                             [a for a in (my_underlay, peer_underlay) if a is not None])
        if me.get("masquerade") and not me.get("lan_interface"):
            self._err(me, "lan_interface", "is not set, but gre_router_masquerade is on: name the interface toward this site's LAN")
        key = None
        try:
            key = normalise_key(me.get("key"))
        except ValueError:
            pass
        name = me.get("tunnel_name") or default_tunnel_name(peer.name)
        keepalive = None
        try:
            keepalive = normalise_keepalive(me.get("keepalive"))
        except (ValueError, TypeError) as exc:
            self._err(me, "keepalive", "has %r (%s): give {period: SECONDS, retries: COUNT} (from 0 to 3600 seconds, "
                      "1 to 255 retries), true for 10 seconds and 3 retries, or null to send none" % (me.get("keepalive"), exc))
        if keepalive is not None and my_underlay is not None and my_underlay.version != 4:
            self._err(me, "keepalive", "is set, but GRE keepalives are sent over IPv4 only, and %s is IPv6" % my_underlay)
        # GRE over IPsec (gre_router_ipsec*): its own checks, and the tunnel's MTU with ESP's overhead
        ipsec_errors, ipsec = _ipsec.pair_settings(me.name, me.vars, peer.name, peer.vars,
                                                   my_underlay.version if my_underlay is not None else 4, key, me.get("mtu"))
        self.errors += ipsec_errors
        if self.errors:
            return
        if prefixlen is not None:
            address = {"address": "%s/%d" % (mine, prefixlen)}
        else:
            address = {"address": str(mine), "peer": str(theirs)}
        self.result = {
            "peer": peer.name,
            "tunnel": {
                "name": name,
                "mode": "gre" if my_underlay.version == 4 else "ip6gre",
                "local": str(my_underlay),
                "remote": str(peer_underlay),
                "key": key,
                "ttl": me.get("ttl"),
                "mtu": ipsec["mtu"] if ipsec is not None and ipsec["mtu"] is not None else me.get("mtu"),
                "addresses": [address],
                "routes": [{"dest": str(n)} for n in peer_lans],
            },
            "tunnel_address": str(mine),
            "tunnel_peer_address": str(theirs),
            "lan_cidrs": [str(n) for n in my_lans],
            "peer_lan_cidrs": [str(n) for n in peer_lans],
            "keepalive": keepalive,
            "ipsec": ipsec,
            "underlay_ip": str(my_underlay),
            "peer_underlay_ip": str(peer_underlay),
            # the how-to's NAT mode: site traffic into the tunnel, and the peer's tunnel address into the site
            "nat_rules": [{"source": str(n), "out_interface": name} for n in my_lans]
            + [{"source": "%s/%d" % (theirs, theirs.max_prefixlen), "out_interface": me.get("lan_interface")}],
        }

    def _check_overlaps(self, my_lans, peer_lans, tunnel_net, tunnel_addrs, underlays):
        me, peer = self.me, self.peer
        for lan in my_lans:
            for other in peer_lans:
                if lan.version == other.version and lan.overlaps(other):
                    self._err(me, "lan_cidrs", "has %s, which overlaps %s of %s's gre_router_lan_cidrs" % (lan, other, peer.name))
            if tunnel_net is not None and lan.version == tunnel_net.version and lan.overlaps(tunnel_net):
                self._err(me, "lan_cidrs", "has %s, which overlaps the tunnel network %s" % (lan, tunnel_net))
            else:
                for addr in tunnel_addrs:
                    if addr in lan:
                        self._err(me, "lan_cidrs", "has %s, which holds the tunnel address %s" % (lan, addr))
            for addr in underlays:
                if addr in lan:
                    self._err(me, "lan_cidrs", "has %s, which holds the underlay address %s: the tunnel would be routed "
                              "through itself" % (lan, addr))
        for i, lan in enumerate(my_lans):
            for other in my_lans[i + 1:]:
                if lan.version == other.version and lan.overlaps(other):
                    self._err(me, "lan_cidrs", "lists %s and %s, which overlap" % (lan, other))


def plan(me_name, me_vars, hostvars):
    """The filter's entry point: a dict with 'errors' (a list) and, when there are none, this router's side."""
    peers = {}
    peer_name = (me_vars or {}).get(PREFIX + "peer")
    if peer_name is not None and peer_name in hostvars:
        peers[peer_name] = hostvars[peer_name]
    result = PairPlan(me_name, me_vars, peers)
    out = dict(result.result)
    out["errors"] = result.errors
    return out
