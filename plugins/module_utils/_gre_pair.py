# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note: this module_utils is private to the overlay.gre collection; its API may change at any time.

"""Derive one router's tunnels, one per peer, from the inventory variables of both ends of each pair, and check them.

Runs on the controller (through the overlay.gre.gre_router_plan filter): every check happens before any
host is touched, and both ends of a pair are derived from the same data, so they always mirror each other.

A router names its peers in gre_router_peers (or its one peer in gre_router_peer): inventory names, or mappings for
peers outside the inventory. Per pair, the tunnel's name, key and network are derived from the two ends alone (their
names, their gre_router_site_id), never from a position in a list, so adding or removing a site changes no other pair.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping

from ansible_collections.overlay.gre.plugins.module_utils import _ipsec, _router_files

PREFIX = "gre_router_"

DEFAULTS = {
    "key": None,
    "ttl": 64,
    "mtu": None,
    "underlay_mtu": None,
    "preflight_port": None,
    "mss_clamp": "pmtu",
    "masquerade": False,
    "lan_interface": None,
    "gre_firewall": True,
    "verify": True,
    "lan_cidrs": [],
    "tunnel_address": None,
    "tunnel_peer_address": None,
    "tunnel_name": None,
    "state": "present",
    "keepalive": None,
    "peers": None,
    "tunnel_pool": None,
    "tunnel_pool_prefix": None,
    "site_id": None,
    "transit": False,
}

KEEPALIVE_DEFAULTS = {"period": 10, "retries": 3}


# what a peer's name may hold: it is written into the router's boot script (a comment), its tunnel's and units' names
SAFE_NAME = re.compile(r"\A[A-Za-z0-9._:-]{1,253}\Z")


def _truthy(value):
    """A boolean variable as Ansible reads it (true, 'yes', 'True', 1...)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y")
    return bool(value)


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


def _clean(name):
    return "".join(c if (c.isalnum() or c in "-_.") else "-" for c in str(name))


def default_tunnel_name(peer_name):
    """gre_router_peer's name: 'gre-' and as much of the peer's name as fits the kernel's 15 characters."""
    return ("gre-" + _clean(peer_name))[:15]


def peer_tunnel_name(peer_name):
    """gre_router_peers' name: 'gre-PEER' where it fits 15 characters; else 'gre-', the peer's first 6 characters, '-'
    and 4 hex digits of a hash of its whole name (two long names with one beginning stay apart, and stay the same)."""
    name = "gre-" + _clean(peer_name)
    if len(name) <= 15:
        return name
    return "gre-%s-%s" % (_clean(peer_name)[:6], hashlib.sha1(str(peer_name).encode("utf-8")).hexdigest()[:4])


def pair_index(first, second):
    """The pair of site ids FIRST < SECOND as a number: 0 for (1, 2), 1 for (1, 3), 2 for (2, 3), 3 for (1, 4)...
    Each pair has its own, and a new site's pairs take numbers no pair of the older sites has."""
    return (second - 1) * (second - 2) // 2 + (first - 1)


def auto_key(first, second):
    """gre_router_key: auto for the pair of site ids FIRST < SECOND: the two ids in the key's two halves."""
    return first * 65536 + second


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


INVENTORY_ENTRY_KEYS = ("name", "tunnel_cidr", "key", "keepalive", "tunnel_name", "preflight_port")
EXTERNAL_ENTRY_KEYS = ("name", "underlay_ip", "lan_cidrs", "tunnel_cidr", "tunnel_address", "peer_tunnel_address", "key",
                       "keepalive", "tunnel_name", "site_id", "preflight_port")
# the settings of one pair that gre_router_peer's one-peer form takes from the router's own variables
LEGACY_PAIR_KEYS = ("tunnel_cidr", "tunnel_address", "tunnel_peer_address", "tunnel_name")


class _Errors(object):
    """Messages that each name a host and a variable, in order, each once."""

    def __init__(self):
        self.items = []

    def add(self, host, label, text):
        message = "%s: %s %s" % (host, label, text)
        if message not in self.items:
            self.items.append(message)


def read_lans(errors, host, label, value):
    """The networks of a lan_cidrs value; what is not a network goes to ERRORS."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        errors.add(host, label, "must be a list of networks in CIDR form, not %r" % (value,))
        return []
    nets = []
    for item in value:
        try:
            nets.append(ipaddress.ip_network(str(item), strict=True))
        except ValueError as exc:
            errors.add(host, label, "has %r, which is not a network in CIDR form (%s)" % (item, exc))
    return nets


class _Entry(object):
    """One peer of a router: an inventory router, or (external) a router outside the inventory given as a mapping.

    settings: the pair's own settings from this router's side, {key: (value, label)}.
    """

    def __init__(self, name, external, settings, legacy):
        self.name, self.external, self.settings, self.legacy = name, external, settings, legacy

    def value(self, key):
        return self.settings[key][0] if key in self.settings else None

    def label(self, key):
        return self.settings[key][1] if key in self.settings else PREFIX + key


def _entries(side, hostvars, errors):
    """SIDE's peers as _Entry objects; what is wrong with the lists goes to ERRORS (None: report nothing)."""
    def err(label, text):
        if errors is not None:
            errors.add(side.name, label, text)

    single, many = side.get("peer"), side.vars.get(PREFIX + "peers")
    if single and many:
        err(PREFIX + "peers", "and gre_router_peer are both set: list every peer in gre_router_peers (gre_router_peer is "
            "the form for one peer), and remove gre_router_peer")
        return []
    if single:
        if single == side.name:
            err(PREFIX + "peer", "names this router itself (%s); it must name the other router of the pair" % side.name)
            return []
        if single not in hostvars:
            err(PREFIX + "peer", "names %r, which is not a host of this inventory" % (single,))
            return []
        settings = dict((key, (side.get(key), PREFIX + key)) for key in LEGACY_PAIR_KEYS if side.get(key))
        return [_Entry(str(single), False, settings, legacy=True)]
    if many is None or many == []:
        err(PREFIX + "peers", "is not set: list the routers this one builds a tunnel to (inventory names, or mappings "
            "for routers outside the inventory), or name its one peer in gre_router_peer")
        return []
    if not isinstance(many, list):
        err(PREFIX + "peers", "must be a list of inventory names or mappings, not %r" % (many,))
        return []
    out, seen = [], set()
    for item in many:
        if isinstance(item, dict):
            name = item.get("name")
        else:
            name, item = item, {"name": item}
        if not isinstance(name, str) or not name:
            err(PREFIX + "peers", "has %r: each entry is an inventory name, or a mapping with at least name" % (item,))
            continue
        label = "%speers[%s]" % (PREFIX, name)
        if not SAFE_NAME.match(name):
            err(PREFIX + "peers", "has the name %r, which holds characters other than letters, digits, '.', '_', '-' and "
                "':' (or is over 253 characters): a peer's name goes into the router's boot files and unit names; use a "
                "label such as cisco-branch-7" % (name,))
            continue
        if name == side.name:
            err(label, "names this router itself; list the other routers")
            continue
        if name in seen:
            err(label, "is listed twice")
            continue
        seen.add(name)
        external = name not in hostvars
        allowed = EXTERNAL_ENTRY_KEYS if external else INVENTORY_ENTRY_KEYS
        unknown = sorted(set(item) - set(allowed))
        if unknown:
            if external:
                err(label, "has %s, which a peer outside the inventory does not take (it takes %s)"
                    % (", ".join(unknown), ", ".join(allowed)))
            else:
                err(label, "has %s: %s is a host of this inventory, whose own variables give those (an inventory peer's "
                    "entry takes %s)" % (", ".join(unknown), name, ", ".join(allowed)))
            continue
        if external and not item.get("underlay_ip"):
            err(label, "names %r, which is not a host of this inventory: a peer outside the inventory is a mapping with "
                "name, underlay_ip, lan_cidrs and its tunnel network (tunnel_cidr, tunnel_address and peer_tunnel_address, "
                "or site_id with gre_router_tunnel_pool)" % (name,))
            continue
        settings = dict((key, (value, "%s.%s" % (label, key))) for key, value in item.items()
                        if key != "name" and value is not None)
        out.append(_Entry(name, external, settings, legacy=False))
    return out


class _Pair(object):
    """One tunnel of the router ME to the peer ENTRY; errors go to ERRORS, the result to .result (None on errors)."""

    def __init__(self, me, entry, hostvars, errors):
        self.me, self.entry, self.hostvars, self.errors = me, entry, hostvars, errors
        self.result = None
        self.transit_lans = []
        count = len(errors.items)
        if entry.external:
            self.peer = _Side(entry.name, {})
            self.back = None
        else:
            self.peer = _Side(entry.name, hostvars[entry.name])
            back = [e for e in _entries(self.peer, hostvars, None) if e.name == me.name]
            self.back = back[0] if back else None
            # a router being removed (gre_router_state: absent) needs no peer that still lists it
            if self.back is None and me.get("state") != "absent":
                if entry.legacy and self.peer.get("peer") and not self.peer.vars.get(PREFIX + "peers"):
                    errors.add(self.peer.name, PREFIX + "peer", "is %r, but %s names %s as its peer: each router of a pair "
                               "must name the other" % (self.peer.get("peer"), me.name, self.peer.name))
                else:
                    errors.add(self.peer.name, PREFIX + "peers", "does not list %s, but %s lists %s: both routers of a pair "
                               "list each other (a hub with gre_router_transit lists its spokes too)" % (me.name, me.name, self.peer.name))
        self._derive()
        if len(errors.items) > count:
            self.result = None

    # --- small readers ------------------------------------------------------------------------------------

    def _network(self, host, label, value):
        try:
            return ipaddress.ip_network(str(value), strict=True)
        except ValueError as exc:
            self.errors.add(host, label, "has %r, which is not a network in CIDR form (%s)" % (value, exc))
            return None

    def _address(self, host, label, value):
        try:
            return ipaddress.ip_address(str(value))
        except ValueError:
            self.errors.add(host, label, "has %r, which is not an IP address" % (value,))
            return None

    def lans(self, host, label, value):
        return read_lans(self.errors, host, label, value)

    def _peer_setting(self, key):
        """(value, host, label) of the pair's KEY on the peer's side, or (None, ...) when its side does not set it."""
        if self.entry.external:
            mirror = {"tunnel_address": "peer_tunnel_address", "tunnel_peer_address": "tunnel_address"}.get(key, key)
            if mirror in ("tunnel_cidr", "key", "tunnel_address", "peer_tunnel_address"):
                return self.entry.value(mirror), self.me.name, self.entry.label(mirror)
            return None, self.me.name, None
        if self.back is None:
            return None, self.peer.name, None
        return self.back.value(key), self.peer.name, self.back.label(key)

    def _site_id(self, side, entry_label=None, value=None):
        label = entry_label or PREFIX + "site_id"
        if value is None:
            value = side.get("site_id")
        if value is None:
            return None, label
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit() or not 1 <= int(value) <= 65535:
            self.errors.add(side.name if entry_label is None else self.me.name, label,
                            "has %r: a site id is a whole number from 1 to 65535, different on every router" % (value,))
            return None, label
        return int(value), label

    def _site_ids(self, why):
        """This router's and the peer's gre_router_site_id (the peer's from its entry when it is outside the inventory)."""
        mine, _label = self._site_id(self.me)
        if self.entry.external:
            theirs, their_label = self._site_id(self.peer, self.entry.label("site_id"), self.entry.value("site_id"))
            their_host = self.me.name
        else:
            theirs, their_label = self._site_id(self.peer)
            their_host = self.peer.name
        if mine is None:
            self.errors.add(self.me.name, PREFIX + "site_id", "is not set, but %s: give every router a site id of its own "
                            "(1, 2, 3...; it never changes once given)" % why)
        if theirs is None:
            self.errors.add(their_host, their_label, "is not set, but %s: give every router a site id of its own" % why)
        if mine is not None and mine == theirs:
            self.errors.add(self.me.name, PREFIX + "site_id", "is %d on both %s and %s: every router needs its own"
                            % (mine, self.me.name, self.peer.name))
            return None
        if mine is None or theirs is None:
            return None
        return mine, theirs

    # --- the pair -----------------------------------------------------------------------------------------

    def _key(self):
        me, entry = self.me, self.entry
        mine_value = entry.value("key") if "key" in entry.settings else me.get("key")
        mine_label = entry.label("key") if "key" in entry.settings else PREFIX + "key"
        if entry.external:
            theirs_value, theirs_label, their_host = mine_value, mine_label, me.name
        elif self.back is not None and "key" in self.back.settings:
            theirs_value, theirs_label, their_host = self.back.value("key"), self.back.label("key"), self.peer.name
        else:
            theirs_value, theirs_label, their_host = self.peer.get("key"), PREFIX + "key", self.peer.name

        def resolve(value, host, label):
            if isinstance(value, str) and value == "auto":
                ids = self._site_ids("%s is auto" % label)
                return None if ids is None else auto_key(min(ids), max(ids))
            try:
                return normalise_key(value)
            except (ValueError, TypeError):
                self.errors.add(host, label, "has %r: a GRE key is an integer from 0 to 4294967295, a dotted quad, or auto "
                                "(derived from the two routers' gre_router_site_id)" % (value,))
                raise
        try:
            mine = resolve(mine_value, me.name, mine_label)
            theirs = resolve(theirs_value, their_host, theirs_label)
        except (ValueError, TypeError):
            return None
        if mine != theirs:
            self.errors.add(me.name, mine_label, "is %r on %s but %r on its peer %s: both ends of a tunnel must agree"
                            % (mine_value, me.name, theirs_value, self.peer.name))
        return mine

    def _pool_network(self):
        me = self.me
        pool_value = me.get("tunnel_pool")
        if not pool_value:
            if self.entry.legacy:
                self.errors.add(me.name, PREFIX + "tunnel_cidr", "is not set: give the small network both tunnel ends share "
                                "(a /30 or /31), or set both gre_router_tunnel_address and gre_router_tunnel_peer_address")
            else:
                self.errors.add(me.name, PREFIX + "tunnel_pool", "is not set, and the pair with %s has no network of its own "
                                "(tunnel_cidr in its gre_router_peers entry): give the network the pairs' tunnel networks "
                                "are taken from (such as 10.255.0.0/16)" % self.peer.name)
            return None
        pool = self._network(me.name, PREFIX + "tunnel_pool", pool_value)
        if not self.entry.external:
            their_pool = self.peer.get("tunnel_pool")
            if their_pool and str(their_pool) != str(pool_value):
                self.errors.add(me.name, PREFIX + "tunnel_pool", "is %r on %s but %r on its peer %s: the two ends take their "
                                "network from the same pool" % (pool_value, me.name, their_pool, self.peer.name))
                return None
        ids = self._site_ids("the pair with %s takes its network from gre_router_tunnel_pool" % self.peer.name)
        if pool is None or ids is None:
            return None
        default_prefix = 30 if pool.version == 4 else 126
        prefix = me.get("tunnel_pool_prefix") or default_prefix
        allowed = (30, 31) if pool.version == 4 else (126, 127)
        if isinstance(prefix, bool) or not str(prefix).isdigit() or int(prefix) not in allowed or int(prefix) < pool.prefixlen:
            self.errors.add(me.name, PREFIX + "tunnel_pool_prefix", "has %r: give %s (a pair's network in %s)"
                            % (prefix, " or ".join(str(a) for a in allowed), pool))
            return None
        prefix = int(prefix)
        index = pair_index(min(ids), max(ids))
        room = 2 ** (prefix - pool.prefixlen)
        if index >= room:
            self.errors.add(me.name, PREFIX + "tunnel_pool", "is %s, which has room for %d pairs of /%d; the pair of site ids %d "
                            "and %d (%s and %s) is pair number %d: use a larger pool"
                            % (pool, room, prefix, min(ids), max(ids), me.name, self.peer.name, index + 1))
            return None
        size = 2 ** (pool.max_prefixlen - prefix)
        return ipaddress.ip_network("%s/%d" % (pool.network_address + index * size, prefix))

    def _addresses(self):
        """(this end's tunnel address, the peer's, prefix length or None for a point-to-point pair, the network or None)."""
        me, entry = self.me, self.entry
        my_cidr = entry.value("tunnel_cidr")
        their_cidr, their_host, their_label = self._peer_setting("tunnel_cidr")
        network = None
        if my_cidr and their_cidr and str(my_cidr) != str(their_cidr) and not entry.external:
            self.errors.add(me.name, entry.label("tunnel_cidr"), "is %r on %s but %r on its peer %s: both ends of a tunnel "
                            "must agree" % (my_cidr, me.name, their_cidr, self.peer.name))
            return None, None, None, None
        cidr, host, label = (my_cidr, me.name, entry.label("tunnel_cidr")) if my_cidr else (their_cidr, their_host, their_label)
        own, own_label = entry.value("tunnel_address"), entry.label("tunnel_address")
        peer_addr = entry.value("tunnel_peer_address") or entry.value("peer_tunnel_address")
        peer_label = entry.label("tunnel_peer_address" if entry.value("tunnel_peer_address") else "peer_tunnel_address")
        their_own, _h, their_own_label = self._peer_setting("tunnel_address")
        their_peer_addr, _h, _l = self._peer_setting("tunnel_peer_address")
        if cidr:
            network = self._network(host, label, cidr)
            if network is None:
                return None, None, None, None
        elif not ((own or their_peer_addr) and (peer_addr or their_own)):
            network = self._pool_network()
            if network is None:
                return None, None, None, None
        derived = (None, None)
        if network is not None:
            usable = list(network.hosts()) if network.num_addresses > 2 else list(network)
            if len(usable) < 2:
                self.errors.add(host, label, "has %s, which has room for fewer than two tunnel addresses" % network)
                return None, None, None, None
            me_first = entry.external or me.name < self.peer.name
            derived = (usable[0], usable[1]) if me_first else (usable[1], usable[0])
        mine = self._address(me.name, own_label, own) if own else derived[0]
        theirs = self._address(me.name, peer_label, peer_addr) if peer_addr else None
        if theirs is None and not peer_addr:
            theirs = self._address(their_host, their_own_label, their_own) if their_own else derived[1]
        if not entry.external and self.back is not None:
            # the peer's view of the pair must mirror this one
            their_mine = (self._address(their_host, their_own_label, their_own) if their_own else derived[1])
            their_theirs = (self._address(their_host, self.back.label("tunnel_peer_address"), their_peer_addr)
                            if their_peer_addr else (mine if own else derived[0]))
            if None not in (mine, theirs, their_mine, their_theirs) and (their_mine != theirs or their_theirs != mine):
                self.errors.add(me.name, own_label if own else PREFIX + "tunnel_address",
                                "gives this end %s and the other %s, but %s's variables give it %s and this end %s"
                                % (mine, theirs, self.peer.name, their_mine, their_theirs))
        explicit = bool(own or peer_addr or their_own or their_peer_addr)
        prefixlen = network.prefixlen if (network is not None and not explicit) else None
        return mine, theirs, prefixlen, network

    def _peer_lans(self):
        if self.entry.external:
            return self.lans(self.me.name, self.entry.label("lan_cidrs"), self.entry.value("lan_cidrs") or [])
        return self.lans(self.peer.name, PREFIX + "lan_cidrs", self.peer.get("lan_cidrs"))

    def _transit_lans(self):
        """With the peer a transit hub: the LANs behind its other peers, reached through it."""
        if self.entry.external or not _truthy(self.peer.get("transit")):
            return []
        quiet = _Errors()
        lans = []
        for other in _entries(self.peer, self.hostvars, None):
            if other.name == self.me.name:
                continue
            if other.external:
                values = other.value("lan_cidrs") or []
            else:
                values = _Side(other.name, self.hostvars[other.name]).get("lan_cidrs")
            lans.extend(read_lans(quiet, other.name, PREFIX + "lan_cidrs", values))
        return lans

    def _derive(self):
        me, peer, entry = self.me, self.peer, self.entry
        my_underlay = self._address(me.name, PREFIX + "underlay_ip", me.get("underlay_ip")) if me.get("underlay_ip") else None
        if me.get("underlay_ip") is None:
            self.errors.add(me.name, PREFIX + "underlay_ip", "is not set: give this router's address on the network both "
                            "routers reach")
        if entry.external:
            peer_underlay = self._address(me.name, entry.label("underlay_ip"), entry.value("underlay_ip"))
        else:
            peer_underlay = self._address(peer.name, PREFIX + "underlay_ip", peer.get("underlay_ip")) if peer.get("underlay_ip") else None
            if peer.get("underlay_ip") is None:
                self.errors.add(peer.name, PREFIX + "underlay_ip", "is not set: give this router's address on the network "
                                "both routers reach")
        if my_underlay is not None and my_underlay == peer_underlay:
            self.errors.add(me.name, PREFIX + "underlay_ip", "is %s on both %s and %s: the two ends need different underlay "
                            "addresses" % (my_underlay, me.name, peer.name))
        if my_underlay is not None and peer_underlay is not None and my_underlay.version != peer_underlay.version:
            self.errors.add(me.name, PREFIX + "underlay_ip", "is %s, but %s's is %s: both ends of a tunnel use the same IP "
                            "version" % (my_underlay, peer.name, peer_underlay))
        key = self._key()
        peer_lans = self._peer_lans()
        transit_lans = self._transit_lans()
        mine, theirs, prefixlen, network = self._addresses()
        keepalive_value = entry.value("keepalive") if "keepalive" in entry.settings else me.get("keepalive")
        keepalive_label = entry.label("keepalive") if "keepalive" in entry.settings else PREFIX + "keepalive"
        keepalive = None
        try:
            keepalive = normalise_keepalive(keepalive_value)
        except (ValueError, TypeError) as exc:
            self.errors.add(me.name, keepalive_label, "has %r (%s): give {period: SECONDS, retries: COUNT} (from 0 to 3600 "
                            "seconds, 1 to 255 retries), true for 10 seconds and 3 retries, or null to send none"
                            % (keepalive_value, exc))
        if keepalive is not None and my_underlay is not None and my_underlay.version != 4:
            self.errors.add(me.name, keepalive_label, "is set, but GRE keepalives are sent over IPv4 only, and %s is IPv6"
                            % my_underlay)
        if entry.value("tunnel_name"):
            name = str(entry.value("tunnel_name"))
        elif entry.legacy:
            name = default_tunnel_name(peer.name)
        else:
            name = peer_tunnel_name(peer.name)
        if len(name) > 15 or any(c in name for c in "/: \t\n") or name in (".", ".."):
            self.errors.add(me.name, entry.label("tunnel_name"), "has %r, which is not an interface name (1 to 15 characters, "
                            "no '/', ':' or spaces)" % (name,))
        # GRE over IPsec (gre_router_ipsec*): its own checks, and the tunnel's MTU with ESP's overhead. A peer outside
        # the inventory is configured by hand to match this router's settings.
        ipsec_errors, ipsec = _ipsec.pair_settings(me.name, me.vars, peer.name, me.vars if entry.external else peer.vars,
                                                   my_underlay.version if my_underlay is not None else 4, key, me.get("mtu"))
        for message in ipsec_errors:
            if message not in self.errors.items:
                self.errors.items.append(message)
        if None in (my_underlay, peer_underlay, mine, theirs) or ipsec_errors:
            return
        # the pair's own preflight_port, else the router's gre_router_preflight_port
        own_port = entry.value("preflight_port") is not None
        port = read_port(self.errors, me.name, entry.label("preflight_port") if own_port else PREFIX + "preflight_port",
                         entry.value("preflight_port") if own_port else me.get("preflight_port"))
        tunnel_net = ipaddress.ip_interface("%s/%d" % (mine, prefixlen)).network if prefixlen is not None else network
        if prefixlen is not None:
            address = {"address": "%s/%d" % (mine, prefixlen)}
        else:
            address = {"address": str(mine), "peer": str(theirs)}
        routed = peer_lans + transit_lans
        self.result = {
            "peer": peer.name,
            "external": entry.external,
            "tunnel": {
                "name": name,
                "mode": "gre" if my_underlay.version == 4 else "ip6gre",
                "local": str(my_underlay),
                "remote": str(peer_underlay),
                "key": key,
                "ttl": me.get("ttl"),
                "mtu": ipsec["mtu"] if ipsec is not None and ipsec["mtu"] is not None else me.get("mtu"),
                "addresses": [address],
                "routes": [{"dest": str(n)} for n in routed],
            },
            "tunnel_address": str(mine),
            "tunnel_peer_address": str(theirs),
            "tunnel_network": None if tunnel_net is None else str(tunnel_net),
            "peer_lan_cidrs": [str(n) for n in routed],
            "transit_lan_cidrs": [str(n) for n in transit_lans],
            "keepalive": keepalive,
            "ipsec": ipsec,
            "underlay_ip": str(my_underlay),
            "peer_underlay_ip": str(peer_underlay),
            # the pair's entry of overlay.gre.peer_probe's peers
            "probe": {"name": peer.name, "underlay_ip": str(peer_underlay), "tunnel": name, "tunnel_peer_address": str(theirs),
                      "port": port},
        }
        self.transit_lans = transit_lans
        self._nets = (tunnel_net, [ipaddress.ip_address(mine), ipaddress.ip_address(theirs)], peer_underlay, routed)


class RouterPlan(object):
    """Every tunnel of one router, and every error found in its pairs (each naming a host and a variable)."""

    def __init__(self, me_name, me_vars, hostvars):
        self.errors = _Errors()
        self.me = _Side(me_name, me_vars)
        self.pairs = []
        entries = _entries(self.me, hostvars, self.errors)
        my_lans = read_lans(self.errors, me_name, PREFIX + "lan_cidrs", self.me.get("lan_cidrs"))
        pairs = [_Pair(self.me, entry, hostvars, self.errors) for entry in entries]
        if _truthy(self.me.get("masquerade")) and not self.me.get("lan_interface"):
            self.errors.add(me_name, PREFIX + "lan_interface", "is not set, but gre_router_masquerade is on: name the interface "
                            "toward this site's LAN")
        self.underlay_mtu = read_underlay_mtu(self.errors, me_name, self.me.get("underlay_mtu"))
        self._check_router(my_lans, [p for p in pairs if p.result is not None])
        self.pairs = [p.result for p in pairs if p.result is not None]
        self.my_lans = my_lans

    def _check_router(self, my_lans, pairs):
        """What no single pair sees: overlaps between the router's own LANs, its pairs' networks and routes, and names."""
        err = self.errors.add
        me = self.me.name
        for i, lan in enumerate(my_lans):
            for other in my_lans[i + 1:]:
                if lan.version == other.version and lan.overlaps(other):
                    err(me, PREFIX + "lan_cidrs", "lists %s and %s, which overlap" % (lan, other))
        names = {}
        for pair in pairs:
            name = pair.result["tunnel"]["name"]
            if name in names:
                err(me, "%speers[%s].tunnel_name" % (PREFIX, pair.entry.name), "gives %r, the name of the tunnel to %s too: "
                    "give one of them another tunnel_name" % (name, names[name]))
            names[name] = pair.entry.name
        for pair in pairs:
            tunnel_net, tunnel_addrs, peer_underlay, routed = pair._nets
            peer = pair.peer.name
            for lan in my_lans:
                for other in routed:
                    if lan.version == other.version and lan.overlaps(other):
                        whose = "%s's gre_router_lan_cidrs" % peer if other not in pair.transit_lans else \
                            "the LANs %s reaches through %s" % (me, peer)
                        err(me, PREFIX + "lan_cidrs", "has %s, which overlaps %s of %s" % (lan, other, whose))
                if tunnel_net is not None and lan.version == tunnel_net.version and lan.overlaps(tunnel_net):
                    err(me, PREFIX + "lan_cidrs", "has %s, which overlaps the tunnel network %s" % (lan, tunnel_net))
                else:
                    for addr in tunnel_addrs:
                        if addr in lan:
                            err(me, PREFIX + "lan_cidrs", "has %s, which holds the tunnel address %s" % (lan, addr))
                for addr in (ipaddress.ip_address(pair.result["underlay_ip"]), peer_underlay):
                    if addr in lan:
                        err(me, PREFIX + "lan_cidrs", "has %s, which holds the underlay address %s: the tunnel would be "
                            "routed through itself" % (lan, addr))
        for i, pair in enumerate(pairs):
            for other in pairs[i + 1:]:
                a, b = pair._nets, other._nets
                if a[0] is not None and b[0] is not None and a[0].version == b[0].version and a[0].overlaps(b[0]):
                    err(me, PREFIX + "peers", "gives the pairs with %s and %s overlapping tunnel networks (%s and %s): "
                        "each pair needs its own" % (pair.peer.name, other.peer.name, a[0], b[0]))
                for net in a[3]:
                    for net2 in b[3]:
                        if net.version == net2.version and net.overlaps(net2):
                            err(me, PREFIX + "peers", "routes %s through %s and %s through %s, which overlap"
                                % (net, pair.peer.name, net2, other.peer.name))
                if a[2] == b[2]:
                    err(me, PREFIX + "peers", "lists %s and %s, which have the same underlay address %s: the kernel tells GRE "
                        "tunnels apart by their endpoints" % (pair.peer.name, other.peer.name, a[2]))

    def result(self):
        out = {"errors": list(self.errors.items)}
        if self.errors.items:
            out.update(pairs=[], probes=[], ipsec=False, absent={"firewall": [], "tunnels": []})
            return out
        me = self.me
        nat_rules = []
        for pair in self.pairs:
            nat_rules += [{"source": str(n), "out_interface": pair["tunnel"]["name"]} for n in self.my_lans]
        for pair in self.pairs:
            theirs = ipaddress.ip_address(pair["tunnel_peer_address"])
            nat_rules.append({"source": "%s/%d" % (theirs, theirs.max_prefixlen), "out_interface": me.get("lan_interface")})
        transit = _truthy(me.get("transit"))
        for pair in self.pairs:
            # what the firewall lets through this tunnel from this end: this site, and with transit the other peers' LANs
            others = [n for p in self.pairs if p is not pair for n in p["peer_lan_cidrs"]] if transit else []
            pair["local_networks"] = [str(n) for n in self.my_lans] + others
            # the options of each module for this pair (tasks/present.yml)
            tunnel = dict(pair["tunnel"])
            if pair["keepalive"] is not None:
                del tunnel["routes"]  # the keepalive sender owns them: it withdraws them while the peer is gone
            pair["tunnel_options"] = tunnel
            # the same, for a tunnel whose IPsec was just turned off: back to the kernel's MTU for plain GRE over a
            # 1500-byte underlay, from ESP's smaller one (unless gre_router_mtu sets one); with_underlay_mtu derives
            # both from the underlay the router has
            pair["mtu_derived"] = me.get("mtu") is None
            pair["tunnel_options_plain"] = dict(tunnel, mtu=me.get("mtu") if me.get("mtu") is not None else
                                                plain_gre_mtu(_ipsec.UNDERLAY_MTU, tunnel["key"]))
            pair["firewall_options"] = {
                "tunnel": tunnel["name"],
                "peer_underlay": pair["peer_underlay_ip"] if _truthy(me.get("gre_firewall")) else None,
                "peer_tunnel_address": pair["tunnel_peer_address"] if _truthy(me.get("verify")) else None,
                "local_networks": pair["local_networks"],
                "peer_networks": pair["peer_lan_cidrs"],
                "mss_clamp": me.get("mss_clamp"),
                "reflect_keepalives": True,
                "ipsec": pair["ipsec"] is not None,
            }
            theirs = ipaddress.ip_address(pair["tunnel_peer_address"])
            pair["nat_rules"] = [{"source": str(n), "out_interface": tunnel["name"]} for n in self.my_lans] + [
                {"source": "%s/%d" % (theirs, theirs.max_prefixlen), "out_interface": me.get("lan_interface")}]
        families = sorted(set("ipv6" if p["tunnel"]["mode"] == "ip6gre" else "ipv4" for p in self.pairs))
        out.update({
            "pairs": self.pairs,
            "lan_cidrs": [str(n) for n in self.my_lans],
            "underlay_ip": self.pairs[0]["underlay_ip"] if self.pairs else None,
            "nat_rules": nat_rules,
            "families": families,
            "transit": transit,
            "underlay_mtu": self.underlay_mtu,
            # what overlay.gre.peer_probe probes of each pair (tasks/read.yml)
            "probes": [p["probe"] for p in self.pairs],
            # whether any tunnel has IPsec (tasks/read.yml reads strongSwan's packages then)
            "ipsec": any(p.get("ipsec") is not None for p in self.pairs),
            # what gre_router_state: absent removes by name (overlay.gre.tunnel_firewall's and overlay.gre.gre_tunnel's
            # tunnels; their purge removes the role's other tunnels too)
            "absent": {"firewall": [{"tunnel": p["tunnel"]["name"], "state": "absent"} for p in self.pairs],
                       "tunnels": [{"name": p["tunnel"]["name"], "state": "absent"} for p in self.pairs]},
        })
        return out


def _read_number(errors, host, label, value, low, high, what):
    """VALUE as a whole number from LOW to HIGH, or None when it is not set (None, "", false); anything else goes to
    ERRORS as "has VALUE, which is not WHAT"."""
    if value is None or value == "" or value is False:
        return None
    try:
        number = int(str(value), 10) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        errors.add(host, label, "has %r, which is not %s" % (value, what))
        return None
    return number


def read_underlay_mtu(errors, host, value):
    """gre_router_underlay_mtu: None, or a whole number of bytes from 576 to 65535."""
    return _read_number(errors, host, PREFIX + "underlay_mtu", value, 576, 65535,
                        "an MTU (a whole number of bytes from 576 to 65535: the largest packet the path between the two "
                        "underlay addresses carries)")


def read_port(errors, host, label, value):
    """A TCP port for the underlay check (gre_router_preflight_port, or a peer entry's preflight_port): None (ICMP echo
    and ARP), or a whole number from 1 to 65535."""
    return _read_number(errors, host, label, value, 1, 65535, "a TCP port (a whole number from 1 to 65535, such as SSH's 22)")


def plain_gre_mtu(underlay_mtu, key):
    """The MTU of a GRE tunnel over IPv4 on an underlay of UNDERLAY_MTU bytes: the outer IPv4 header (20) and GRE's (4,
    8 with a key) less, as the kernel computes it for a new tunnel."""
    return underlay_mtu - 24 - (4 if key is not None else 0)


def with_underlay_mtu(pairs, probe_peers, override=None):
    """PAIRS (plan pairs) with the MTU of their tunnels derived from the underlay this router has: OVERRIDE
    (gre_router_underlay_mtu) when set, else the MTU of the device that carries each peer's underlay address (PROBE_PEERS:
    overlay.gre.peer_probe's peers, its underlay_mtu). Only where the inventory sets no gre_router_mtu: a tunnel with
    IPsec gets the largest MTU whose ESP packets fit in one underlay packet; the same tunnel without it (IPsec just
    turned off) the kernel's own for plain GRE. A tunnel without IPsec keeps the kernel's own (made from the same
    device). Pairs whose underlay MTU is unknown keep the plan's, for a 1500-byte underlay."""
    out = []
    for pair in pairs or []:
        underlay = override or ((probe_peers or {}).get(pair["peer"]) or {}).get("underlay_mtu")
        if not underlay or not pair.get("mtu_derived") or pair["tunnel"]["mode"] != "gre":
            out.append(pair)
            continue
        pair = dict(pair)
        key = pair["tunnel"]["key"]
        pair["underlay_mtu"] = underlay
        pair["tunnel_options_plain"] = dict(pair["tunnel_options_plain"], mtu=plain_gre_mtu(underlay, key))
        if pair.get("ipsec") is not None:
            mtu = _ipsec.tunnel_mtu(pair["ipsec"]["esp_proposals"], key, underlay)
            pair["ipsec"] = dict(pair["ipsec"], mtu=mtu)
            pair["tunnel"] = dict(pair["tunnel"], mtu=mtu)
            pair["tunnel_options"] = dict(pair["tunnel_options"], mtu=mtu)
        out.append(pair)
    return out


class PublishedVars(object):
    """HOSTVARS, each host seen through the gre_router_* settings it published as the variable NAME (all that its
    role run sees: defaults, inventory, play variables, role parameters) when it did, else through its hostvars (a
    peer outside the play, which hold neither play variables nor role parameters)."""

    def __init__(self, hostvars, name):
        self.hostvars, self.name = hostvars, name

    def __contains__(self, host):
        return host in self.hostvars

    def __getitem__(self, host):
        host_vars = self.hostvars[host]
        published = host_vars.get(self.name) if hasattr(host_vars, "get") else None
        return published if isinstance(published, Mapping) else host_vars


def plan(me_name, me_vars, hostvars):
    """The filter's entry point: a dict with 'errors' (a list) and, when there are none, this router's tunnels in 'pairs'."""
    return RouterPlan(me_name, me_vars or {}, hostvars).result()


def held_peers(pairs, me_name, own_probe, probes_by_peer):
    """The peers whose pair this run leaves as it is: this router's underlay probe of them found no answer, or theirs
    of this router did (PROBES_BY_PEER: each inventory peer's overlay.gre.peer_probe result, when it ran in this play).

    OWN_PROBE: this router's peer_probe result. A peer outside the play (or the inventory) is judged by our probe alone.
    """
    held = []
    own = (own_probe or {}).get("peers") or {}
    for pair in pairs or []:
        mine = (own.get(pair["peer"]) or {}).get("underlay") or ""
        theirs = (((probes_by_peer.get(pair["peer"]) or {}).get("peers") or {}).get(me_name) or {}).get("underlay") or ""
        if not mine.startswith("answered:") or theirs.startswith("no answer:"):
            held.append(pair["peer"])
    return held


def held_message(pairs, held, me_name, own_probe, probes_by_peer):
    """Why each held pair (HELD: the peers' names) is left as it is, in one message: both routers' underlay probes."""
    own = (own_probe or {}).get("peers") or {}
    texts = []
    for pair in pairs or []:
        peer = pair["peer"]
        if peer not in held:
            continue
        mine = (own.get(peer) or {}).get("underlay") or "not probed"
        theirs = ((((probes_by_peer.get(peer) or {}).get("peers") or {}).get(me_name) or {}).get("underlay")
                  or ("not probed (outside the inventory)" if pair.get("external") else "not probed"))
        texts.append("The underlay between %s (%s) and %s (%s) does not carry traffic, so the tunnel between them cannot work. "
                     "%s -> %s: %s. %s -> %s: %s. Nothing was changed on either router of this pair. Check the link and the "
                     "routing between the two underlay addresses (gre_router_underlay_ip), then run again; "
                     "gre_router_preflight=false skips this check."
                     % (me_name, pair["underlay_ip"], peer, pair["peer_underlay_ip"], me_name, pair["peer_underlay_ip"], mine,
                        peer, pair["underlay_ip"], theirs))
    return " ".join(texts)


def batches(pairs, hostvars, batch, play_hosts, ran_var):
    """Where each inventory peer of PAIRS stands in a play that runs its hosts in batches (`serial:`): {'earlier':
    peers of the play outside this batch that ran already (they hold RAN_VAR), 'later': those that have yet to run}.
    Both empty when BATCH (ansible_play_batch) is None or holds the whole play (PLAY_HOSTS: ansible_play_hosts, the
    hosts of every batch that have not failed)."""
    out = {"earlier": [], "later": []}
    if batch is None:
        return out
    batch, play_hosts = set(batch), set(play_hosts or [])
    for pair in pairs or []:
        peer = pair["peer"]
        if pair.get("external") or peer in batch or peer not in play_hosts:
            continue
        ran = peer in hostvars and hostvars[peer].get(ran_var) is not None
        out["earlier" if ran else "later"].append(peer)
    return out


def verdicts(pairs, me_name, own_probe, probes_by_peer, earlier=(), later=()):
    """After converge: for each pair, whether its tunnel carried pings both ways, and what to say about it.

    OWN_PROBE: this router's overlay.gre.peer_probe result (tunnel pings); PROBES_BY_PEER: each inventory peer's, when
    it ran (a peer outside the play, or the inventory, is judged by this router's ping alone). With `serial:`
    (batches()), a peer of an EARLIER batch is judged by this router's ping alone too (its own ping was from before
    this router's run), and a pair whose peer runs LATER is checked then: the peer's end is not built yet.
    """
    out = []
    own = (own_probe or {}).get("peers") or {}
    for pair in pairs or []:
        peer, tunnel = pair["peer"], pair["tunnel"]["name"]
        mine = (own.get(peer) or {}).get("tunnel")
        theirs_probe = None if peer in earlier else probes_by_peer.get(peer)
        if not theirs_probe or theirs_probe.get("skipped"):
            theirs = "not checked"
        else:
            theirs = ((theirs_probe.get("peers") or {}).get(me_name) or {}).get("tunnel") or "not checked"
        ok = mine == "answered" and theirs in ("answered", "not checked")
        if ok:
            text = "%s: %s's tunnel address %s answers through %s" % (me_name, peer, pair["tunnel_peer_address"], tunnel)
        elif peer in later:
            ok = True
            text = ("%s: %s runs in a later batch of this play (serial), so its end of %s is not built yet: the pair is "
                    "checked when %s runs" % (me_name, peer, tunnel, peer))
        else:
            text = ("The tunnel between %s and %s is built but does not carry traffic. Checked: ping from %s through %s to %s's "
                    "tunnel address %s: %s; from %s to %s: %s. Look at: the underlay between %s and %s (ping -I %s %s); the GRE "
                    "key on both ends (gre_router_key; `ip -d link show` of the tunnel on each router shows its ikey and okey); "
                    "a firewall between the sites, or on either router, dropping IP protocol 47 (GRE) between the two underlay "
                    "addresses (`tcpdump -ni <underlay interface> ip proto 47` on each router shows where the packets stop); "
                    "reverse-path filtering (net.ipv4.conf.*.rp_filter) dropping what leaves the tunnel. gre_router_verify=false "
                    "skips this check."
                    % (me_name, peer, me_name, tunnel, peer, pair["tunnel_peer_address"], mine or "no answer", peer,
                       pair["tunnel_address"], theirs, pair["underlay_ip"], pair["peer_underlay_ip"], pair["underlay_ip"],
                       pair["peer_underlay_ip"]))
        out.append({"peer": peer, "ok": ok, "text": text})
    return out


def verdicts_summary(found):
    """FOUND (verdicts()'s result) as one verdict: {'ok': every pair passed, 'msg': every pair's text when all passed
    (joined by '; '), else the failed pairs' texts (joined by spaces)}."""
    failed = [v["text"] for v in found if not v["ok"]]
    if failed:
        return {"ok": False, "msg": " ".join(failed)}
    return {"ok": True, "msg": "; ".join(v["text"] for v in found)}


def play_errors(me_name, own_errors, hosts, hostvars, plan_var):
    """Before any change, the inventory of every router of the play (HOSTS, each with its plan in PLAN_VAR): {'ok',
    'msg'}. Any unsound one stops them all; this router's own errors first, else the others' (with their names)."""
    others = []
    for host in hosts or []:
        plan_of = hostvars[host].get(plan_var) if host in hostvars else None
        if host != me_name and isinstance(plan_of, Mapping):
            others += list(plan_of.get("errors") or [])
    if own_errors:
        return {"ok": False, "msg": "; ".join(own_errors)}
    if others:
        return {"ok": False, "msg": "Stopped before any change: the inventory of another router of this play is not sound: "
                                    + "; ".join(others)}
    return {"ok": True, "msg": "%s: the inventory of every router of the play is sound" % me_name}


def underlay_summary(pairs, me_name, probe_peers, probed):
    """What this router's underlay probe found for each pair, in one line (PROBED false: the probe was off)."""
    texts = []
    for pair in pairs or []:
        if probed:
            found = ((probe_peers or {}).get(pair["peer"]) or {}).get("underlay") or "not probed"
        else:
            found = "not probed (gre_router_preflight is off, or gre_router_state is absent)"
        texts.append("%s (%s) -> %s (%s): %s" % (me_name, pair["underlay_ip"], pair["peer"], pair["peer_underlay_ip"], found))
    return "; ".join(texts)


def ipsec_bring_up(load_results, me_name, hostvars, load_var, earlier=(), later=()):
    """After overlay.gre.ipsec_peer loaded each protected pair's IPsec (LOAD_RESULTS: that loop's results, each with
    its pair as `item`; the peers' under LOAD_VAR in HOSTVARS), the pairs whose SAs to bring up now: those where either
    router changed its configuration. Each with `initiate`: the router whose name sorts first starts the SAs (always
    this one towards a peer outside the inventory), the other waits for them; both loaded theirs in the same task.
    With `serial:` (batches()), this router starts the SAs with a peer of an EARLIER batch (that one is done), and a
    pair whose peer runs LATER is brought up then."""
    out = []
    for result in load_results or []:
        pair = (result or {}).get("item") or {}
        if not pair or result.get("skipped") or result.get("failed") or pair["peer"] in later:
            continue
        peer = pair["peer"]
        changed = bool(result.get("changed"))
        if peer in earlier:
            pass  # its results are from before this router's change
        elif not changed and not pair.get("external") and peer in hostvars:
            theirs = hostvars[peer].get(load_var) or {}
            changed = any((r or {}).get("changed") and ((r or {}).get("item") or {}).get("peer") == me_name
                          for r in theirs.get("results") or [])
        if changed:
            out.append({"tunnel": pair["tunnel"]["name"], "initiate": bool(me_name < peer or pair.get("external") or peer in earlier),
                        "peer": peer, "underlay_ip": pair["underlay_ip"], "peer_underlay_ip": pair["peer_underlay_ip"]})
    return out


def ipsec_verdict(up_results, me_name):
    """Whether IKE brought up the SAs of every pair brought up (UP_RESULTS: the loop of overlay.gre.ipsec_peer with
    state=established over ipsec_bring_up()): {'ran', 'ok', 'msg'}; 'ran' false when no pair was brought up."""
    ran = [r for r in up_results or [] if r and not r.get("skipped")]
    failed = [r for r in ran if r.get("established") is not True]
    if not failed:
        names = ", ".join(r.get("connection") or r["item"]["tunnel"] for r in ran) or "none (SAs unchanged)"
        return {"ran": bool(ran), "ok": True, "msg": "%s: CHILD SAs installed for %s" % (me_name, names)}
    texts = ["%s (%s) and %s (%s) did not bring up IPsec SAs for %s: %s."
             % (me_name, r["item"]["underlay_ip"], r["item"]["peer"], r["item"]["peer_underlay_ip"], r["item"]["tunnel"],
                r.get("msg") or "") for r in failed]
    return {"ran": True, "ok": False,
            "msg": " ".join(texts) + " Look at: charon's log on both routers (journalctl -u strongswan), IKE (UDP 500 and "
                   "4500) and ESP between the two underlay addresses, and whether both routers hold the same "
                   "gre_router_ipsec_psk and proposals."}


def peer_results(pairs, hostvars, var):
    """{peer: its registered VAR} for each inventory peer of PAIRS that has one (the filters' view of the play)."""
    out = {}
    for pair in pairs or []:
        name = pair["peer"]
        if not pair.get("external") and name in hostvars:
            out[name] = hostvars[name].get(var)
    return out


def pair_changed(hosts, hostvars, results):
    """Whether any of RESULTS (names of registered results) changed anything on any of HOSTS (this router and its
    peers in the play): then the check after converge runs again."""
    for host in hosts or []:
        host_vars = hostvars[host] if host in hostvars else {}
        for name in results or []:
            result = host_vars.get(name) if hasattr(host_vars, "get") else None
            if isinstance(result, Mapping) and result.get("changed"):
                return True
    return False


def pairs_answered(pairs, probe_peers):
    """Whether every pair's tunnel answered the ping of overlay.gre.peer_probe (PROBE_PEERS: its peers) before the run."""
    return all(((probe_peers or {}).get(pair["peer"]) or {}).get("tunnel") == "answered" for pair in pairs or [])


def run_args(pairs, held_tunnels, probe, state, masquerade):
    """What one run passes to each module, from PAIRS (those it builds; the held ones are left out):

    tunnels (overlay.gre.gre_tunnel: a tunnel whose IPsec goes gets its plain GRE MTU back), firewall
    (overlay.gre.tunnel_firewall), nat_rules (overlay.gre.nat_masquerade, none unless MASQUERADE), sending (the pairs
    whose keepalives this run sends), ipsec_pairs (the pairs this run protects) and ipsec_gone (the tunnels with an
    IPsec configuration on the router, PROBE's ipsec, that no longer have one: turned off, the peer removed, or
    STATE absent; a held pair's stays)."""
    pairs = list(pairs or [])
    present = state == "present"
    ipsec_pairs = [pair for pair in pairs if pair.get("ipsec")] if present else []
    keep = set(pair["tunnel"]["name"] for pair in ipsec_pairs) | set(held_tunnels or [])
    ipsec_gone = [name for name in (probe or {}).get("ipsec") or [] if name not in keep]
    gone = set(ipsec_gone)
    return {
        "tunnels": ([pair["tunnel_options"] for pair in pairs if pair["tunnel"]["name"] not in gone]
                    + [pair["tunnel_options_plain"] for pair in pairs if pair["tunnel"]["name"] in gone]),
        "firewall": [pair["firewall_options"] for pair in pairs],
        "nat_rules": [rule for pair in pairs for rule in pair["nat_rules"]] if masquerade else [],
        "sending": [pair for pair in pairs if pair.get("keepalive")],
        "ipsec_pairs": ipsec_pairs,
        "ipsec_gone": ipsec_gone,
    }


def run(plan_of, me_name, own_probe, probes_by_peer, state, preflight, masquerade):
    """The filter gre_router_run's entry point: once the router is read (OWN_PROBE: this router's
    overlay.gre.peer_probe result; PROBES_BY_PEER: its inventory peers', when they ran in this play), everything this
    run does, from PLAN_OF (plan()'s result), STATE (gre_router_state), PREFLIGHT (gre_router_preflight) and MASQUERADE
    (gre_router_masquerade). One dict:

    held (the peers whose pair is left as it is: see held_peers(); none when the probe was off), all_held (every
    planned pair is: the run stops before any change), held_tunnels, held_msg (why), pairs (the pairs it builds, their
    MTU derived from the underlay: with_underlay_mtu()), underlay_msg (what the probe found, for the check), purge
    (nothing held: the modules may remove what is no longer planned), the modules' arguments (tunnels, firewall,
    nat_rules: run_args(); firewall_first: the rules of the new tunnels with IPsec, applied before the tunnels), nat
    (whether nat_masquerade runs: masquerading on, or an earlier run's chains to remove), family (ip_forward's),
    sending, sender_stop (overlay.gre.service_files' units and files that stop the senders that go), ipsec_pairs,
    ipsec_on (any: strongSwan runs), ipsec_gone, ipsec (whether the IPsec tasks run), answered (every built pair's
    tunnel answered the probe's ping before the run), pair_hosts (this router and the inventory peers of the pairs it
    builds: pair_changed() reads their results) and probes (what the check after the change probes)."""
    plan_of = plan_of or {}
    own_probe = own_probe or {}
    probe_peers = own_probe.get("peers") or {}
    planned = list(plan_of.get("pairs") or [])
    probed = bool(preflight) and state == "present"
    held = held_peers(planned, me_name, own_probe, probes_by_peer or {}) if probed else []
    built = [pair for pair in planned if pair["peer"] not in held]
    pairs = with_underlay_mtu(built, probe_peers, plan_of.get("underlay_mtu"))
    held_tunnels = [pair["tunnel"]["name"] for pair in planned if pair["peer"] in held]
    args = run_args(pairs, held_tunnels, own_probe, state, bool(masquerade))
    sending = [pair["tunnel"]["name"] for pair in args["sending"]]
    families = list(plan_of.get("families") or [])
    out = dict(args)
    # a new tunnel with IPsec gets its firewall rules before it exists (they drop its GRE that IPsec does not
    # protect): the keepalive reflection's settings, which need the tunnel, come with the other rules after it
    existing = set(own_probe.get("tunnels") or [])
    out["firewall_first"] = [dict(pair["firewall_options"], reflect_keepalives=False) for pair in args["ipsec_pairs"]
                             if pair["tunnel"]["name"] not in existing]
    out.update({
        "held": held,
        "all_held": bool(planned) and len(held) == len(planned),
        "held_tunnels": held_tunnels,
        "held_msg": held_message(planned, held, me_name, own_probe, probes_by_peer or {}),
        "pairs": pairs,
        "underlay_msg": underlay_summary(planned, me_name, probe_peers, probed),
        "purge": not held,
        "nat": bool(masquerade) or bool(own_probe.get("masquerade")),
        "family": "both" if len(families) > 1 else (families[0] if families else "ipv4"),
        "sender_stop": _router_files.sender_stop(
            _router_files.senders_to_stop(list(own_probe.get("keepalives") or []), sending, held_tunnels)),
        "ipsec_on": bool(args["ipsec_pairs"]),
        "ipsec": bool(args["ipsec_pairs"]) or bool(args["ipsec_gone"]),
        "answered": pairs_answered(pairs, probe_peers),
        "pair_hosts": [me_name] + [pair["peer"] for pair in pairs if not pair.get("external")],
        "probes": [pair["probe"] for pair in pairs],
    })
    return out
