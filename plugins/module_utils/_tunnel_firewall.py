# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note: this module_utils is private to the overlay.gre collection; its API may change at any time.

"""The iptables rules a GRE router needs around one tunnel, as chains this collection owns.

For a tunnel T:
  filter OGRE-IN-T   (jumped to from the top of INPUT):   GRE from the peer's underlay address accepted
  filter OGRE-GRE-DROP (jumped to from the end of INPUT): any other GRE dropped (shared by all tunnels)
  filter OGRE-FWD-T  (jumped to from the top of FORWARD): local LANs <-> peer LANs through T accepted, and with
                     reflect_keepalives the peer's GRE keepalives, decapsulated from T, on their way back to the peer
  mangle OGRE-MSS-T  (jumped to from the top of mangle FORWARD): TCP MSS clamped on SYNs crossing T
With ipsec (GRE over IPsec, overlay.gre.ipsec_peer): OGRE-IN-T accepts IKE and ESP from the peer and GRE from it only
when it came through an IPsec policy, and drops the peer's GRE that did not; filter OGRE-OUT-T (jumped to from the top
of OUTPUT) and OGRE-FWD-T drop GRE to the peer that no IPsec policy protects, so that GRE never leaves in clear, not
even while charon is down and its policies are gone (sent or reflected keepalives included).
The accept chains sit ahead of every rule this collection did not make, so they work under policies of DROP
or a reject-all rule; the GRE drop sits at the end of INPUT, after every accept of every tunnel.

With reflect_keepalives the kernel must also let a decapsulated keepalive through before FORWARD sees it: the
tunnel's own accept_local (its source is this router's own address) and rp_filter (loose, whatever
net.ipv4.conf.all.rp_filter says). Those two settings of T are compared and set with the rules (Reflection).
"""

from __future__ import annotations

import ipaddress
import os
import shlex

from ansible_collections.overlay.gre.plugins.module_utils._iptables import COLLECTION_TAG, ChainSpec
from ansible_collections.overlay.gre.plugins.module_utils._sysctl import PROC_SYS, read_int, os_error_text, restore_values, write_int

GRE_DROP_CHAIN = "OGRE-GRE-DROP"
IN_PREFIX, FWD_PREFIX, MSS_PREFIX, OUT_PREFIX = "OGRE-IN-", "OGRE-FWD-", "OGRE-MSS-", "OGRE-OUT-"
SYN = ("-p", "tcp", "-m", "tcp", "--tcp-flags", "SYN,RST", "SYN")


class FirewallInputError(ValueError):
    pass


def validate_all(params):
    """The module's tunnels, normalised: O(tunnels) (each entry with its place in the option's name), or the one
    tunnel of the top-level options. Raises FirewallInputError naming the option and the value."""
    if params.get("tunnels") is None:
        return [validate(params)]
    out, seen = [], set()
    for index, entry in enumerate(params["tunnels"]):
        try:
            opts = validate(entry)
        except FirewallInputError as exc:
            raise FirewallInputError("tunnels[%d].%s" % (index, exc))
        if opts["tunnel"] in seen:
            raise FirewallInputError("tunnels[%d].tunnel: %r is listed twice" % (index, opts["tunnel"]))
        seen.add(opts["tunnel"])
        out.append(opts)
    return out


def validate(params):
    """Check every option of one tunnel before anything is read or changed; returns normalised values."""
    tunnel = params.get("tunnel")
    if not tunnel or len(tunnel) > 15 or any(c in tunnel for c in "/: \t\n") or tunnel in (".", ".."):
        raise FirewallInputError("tunnel: %r is not a valid interface name (1 to 15 characters, no '/', ':' or spaces)" % (tunnel,))
    out = {"tunnel": tunnel, "state": params.get("state") or "present", "reflect_keepalives": bool(params.get("reflect_keepalives")),
           "ipsec": bool(params.get("ipsec"))}

    def networks(option):
        nets = []
        for value in params.get(option) or []:
            try:
                net = ipaddress.ip_network(str(value), strict=True)
            except ValueError as exc:
                raise FirewallInputError("%s: %r is not a network in CIDR form (%s)" % (option, value, exc))
            if net.version != 4:
                raise FirewallInputError("%s: %r is IPv6; this module manages IPv4 (iptables) rules" % (option, value))
            nets.append(str(net))
        return nets

    out["local_networks"] = networks("local_networks")
    out["peer_networks"] = networks("peer_networks")
    out["peer_underlay"] = _ipv4_address(params, "peer_underlay")
    out["peer_tunnel_address"] = _ipv4_address(params, "peer_tunnel_address")
    if out["ipsec"] and not out["peer_underlay"]:
        raise FirewallInputError("ipsec: is true, but peer_underlay is not set: the rules that keep GRE from leaving in clear "
                                 "need the peer's underlay address")
    clamp = params.get("mss_clamp", "pmtu")
    if clamp is None or clamp is False or str(clamp).lower() in ("false", "off", "no", "none", ""):
        out["mss_clamp"] = None
    elif str(clamp).lower() == "pmtu":
        out["mss_clamp"] = "pmtu"
    else:
        try:
            mss = int(str(clamp), 10)
        except ValueError:
            raise FirewallInputError("mss_clamp: %r is neither 'pmtu', a number nor false" % (clamp,))
        if not 536 <= mss <= 65495:
            raise FirewallInputError("mss_clamp: %r is out of range (536 to 65495)" % (clamp,))
        out["mss_clamp"] = mss
    return out


def _ipv4_address(params, option):
    """The option's IPv4 address in its canonical form, or None when it is not set."""
    value = params.get(option)
    if not value:
        return None
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        raise FirewallInputError("%s: %r is not an IP address" % (option, value))
    if address.version != 4:
        raise FirewallInputError("%s: %r is IPv6; this module manages IPv4 (iptables) rules" % (option, value))
    return str(address)


def _comment(tunnel):
    return ("-m", "comment", "--comment", "%s %s" % (COLLECTION_TAG, tunnel))


def wanted_rules(opts):
    """{(table, chain): [rule tokens]} for a present tunnel."""
    tunnel = opts["tunnel"]
    tag = _comment(tunnel)
    rules = {}
    ipsec = opts.get("ipsec")
    rules[("filter", IN_PREFIX + tunnel)] = (
        [("-s", opts["peer_underlay"] + "/32", "-p", "gre") + tag + ("-j", "ACCEPT")] if opts["peer_underlay"] and not ipsec else [])
    if ipsec:
        # Each rule matches on whether IPsec protected the packet, so their order does not matter.
        peer = ("-s", opts["peer_underlay"] + "/32")
        rules[("filter", IN_PREFIX + tunnel)] += [
            peer + ("-p", "udp", "-m", "udp", "--dport", "500") + tag + ("-j", "ACCEPT"),
            peer + ("-p", "udp", "-m", "udp", "--dport", "4500") + tag + ("-j", "ACCEPT"),
            peer + ("-p", "esp") + tag + ("-j", "ACCEPT"),
            peer + ("-p", "gre", "-m", "policy", "--dir", "in", "--pol", "ipsec") + tag + ("-j", "ACCEPT"),
            peer + ("-p", "gre", "-m", "policy", "--dir", "in", "--pol", "none") + tag + ("-j", "DROP"),
        ]
    clear_gre_out = (("-d", opts["peer_underlay"] + "/32", "-p", "gre", "-m", "policy", "--dir", "out", "--pol", "none")
                     + tag + ("-j", "DROP")) if ipsec else None
    rules[("filter", OUT_PREFIX + tunnel)] = [clear_gre_out] if ipsec else []
    # the peer's pings to this end's tunnel address, and the replies to this end's pings (the role's check after converge)
    for icmp_type in ("8", "0") if opts.get("peer_tunnel_address") else ():
        rules[("filter", IN_PREFIX + tunnel)].append(
            ("-s", opts["peer_tunnel_address"] + "/32", "-i", tunnel, "-p", "icmp", "-m", "icmp", "--icmp-type", icmp_type)
            + tag + ("-j", "ACCEPT"))
    forward = []
    for local in opts["local_networks"]:
        for peer in opts["peer_networks"]:
            forward.append(("-s", local, "-d", peer, "-o", tunnel) + tag + ("-j", "ACCEPT"))
            forward.append(("-s", peer, "-d", local, "-i", tunnel) + tag + ("-j", "ACCEPT"))
    if opts.get("reflect_keepalives"):
        # A GRE keepalive's payload is a GRE packet addressed back to its sender: once T decapsulates it, this router
        # only forwards it to the peer's underlay address (to any address when the peer is not given).
        to_peer = ("-d", opts["peer_underlay"] + "/32") if opts["peer_underlay"] else ()
        protected = ("-m", "policy", "--dir", "out", "--pol", "ipsec") if ipsec else ()
        forward.append(to_peer + ("-i", tunnel, "-p", "gre") + protected + tag + ("-j", "ACCEPT"))
    if ipsec:
        forward.append(clear_gre_out)
    rules[("filter", FWD_PREFIX + tunnel)] = forward
    clamp = opts["mss_clamp"]
    if clamp == "pmtu":
        mss = [("-o", tunnel) + SYN + tag + ("-j", "TCPMSS", "--clamp-mss-to-pmtu")]
    elif clamp is not None:
        mss = [(direction, tunnel) + SYN + tag + ("-j", "TCPMSS", "--set-mss", str(clamp)) for direction in ("-o", "-i")]
    else:
        mss = []
    rules[("mangle", MSS_PREFIX + tunnel)] = mss
    return rules


def owned_tunnels(tables):
    """The tunnels that have chains of this module in TABLES (from parse_save)."""
    names = set()
    for table in ("filter", "mangle"):
        for chain in (tables.get(table).chains if tables.get(table) else {}):
            for prefix in (IN_PREFIX, FWD_PREFIX, MSS_PREFIX, OUT_PREFIX):
                if chain.startswith(prefix):
                    names.add(chain[len(prefix):])
    return names


def chain_specs(opts_list, tables, purge=False):
    """The ChainSpecs that bring the kernel to OPTS_LIST (one per tunnel), given the current TABLES (from parse_save);
    with PURGE also the removal of every other tunnel's chains."""
    if isinstance(opts_list, dict):
        opts_list = [opts_list]
    listed = set(opts["tunnel"] for opts in opts_list)
    gone = sorted(owned_tunnels(tables) - listed) if purge else []
    everything = list(opts_list) + [{"tunnel": name, "state": "absent"} for name in gone]
    parents = {IN_PREFIX: ("filter", "INPUT"), FWD_PREFIX: ("filter", "FORWARD"), MSS_PREFIX: ("mangle", "FORWARD"),
               OUT_PREFIX: ("filter", "OUTPUT")}
    specs = []
    for opts in everything:
        tunnel = opts["tunnel"]
        rules = wanted_rules(opts) if opts["state"] == "present" else {}
        for prefix, (table, parent) in parents.items():
            chain = prefix + tunnel
            specs.append(ChainSpec(table, chain, parent, position="first", wanted=rules.get((table, chain), []), purge=True,
                                   jump_comment="%s %s" % (COLLECTION_TAG, tunnel)))
    # The shared GRE drop stays while any tunnel accepts GRE from its peer.
    filter_chains = (tables.get("filter").chains if tables.get("filter") else {})
    handled = set(opts["tunnel"] for opts in everything)
    others_accept = any(name.startswith(IN_PREFIX) and name[len(IN_PREFIX):] not in handled for name in filter_chains)
    ours_accept = any(opts["state"] == "present" and opts.get("peer_underlay") for opts in everything)
    drop = [("-p", "gre", "-m", "comment", "--comment", "%s: GRE from any other address" % COLLECTION_TAG, "-j", "DROP")]
    specs.append(ChainSpec("filter", GRE_DROP_CHAIN, "INPUT", position="last", wanted=drop if (others_accept or ours_accept) else [],
                           purge=True, jump_comment=COLLECTION_TAG))
    return specs


# --- the tunnel's settings for reflected keepalives -----------------------------------------------------------

REFLECT_SETTINGS = (("accept_local", 1), ("rp_filter", 2))


class Reflection(object):
    """The tunnel's accept_local and rp_filter as the kernel has them, and what reflect_keepalives wants."""

    def __init__(self, opts, check_mode, proc_sys=PROC_SYS):
        self.tunnel = opts["tunnel"]
        self.folder = os.path.join(proc_sys, "net", "ipv4", "conf", self.tunnel)
        wanted = opts["state"] == "present" and opts["reflect_keepalives"]
        self.wanted = dict(REFLECT_SETTINGS) if wanted else {}
        self.before = {}
        if not self.wanted:
            return
        if not os.path.isdir(self.folder):
            if check_mode:  # the tunnel is made earlier in the same (checked) run: report what would be set
                self.before = dict((name, None) for name in self.wanted)
                return
            raise FirewallInputError("reflect_keepalives: the tunnel %s does not exist (%s is missing), so its accept_local and "
                                     "rp_filter cannot be set; create the tunnel first (overlay.gre.gre_tunnel)" % (self.tunnel, self.folder))
        try:
            self.before = dict((name, read_int(os.path.join(self.folder, name))) for name in self.wanted)
        except (IOError, OSError, ValueError) as exc:
            raise FirewallInputError("reflect_keepalives: could not read the tunnel %s's settings in %s: %s" % (self.tunnel, self.folder, exc))

    @property
    def changes(self):
        return [(name, value) for name, value in self.wanted.items() if self.before.get(name) != value]

    def key(self, name):
        return "net/ipv4/conf/%s/%s" % (self.tunnel, name)

    def after(self):
        return dict((self.key(name), value) for name, value in self.wanted.items())

    def apply(self):
        """Set what differs; on a failure put back what was set and raise FirewallInputError."""
        done = []
        try:
            for name, value in self.changes:
                write_int(os.path.join(self.folder, name), value)
                done.append(name)
        except (IOError, OSError) as exc:
            failed = self.undo(done)
            raise FirewallInputError("reflect_keepalives: could not set %s to %s: %s; %s"
                                     % (self.key(name), value, os_error_text(exc), _undo_text(failed)))
        return done

    def undo(self, names):
        """Put back the values NAMES had before; returns the paths that could not be put back."""
        return restore_values([(os.path.join(self.folder, name), self.before[name]) for name in names])

    def diff_lines(self, after):
        values = self.wanted if after else self.before
        return ["%s = %s" % (self.key(name), "(no such interface)" if values.get(name) is None else values[name])
                for name in self.wanted]

    def boot_settings(self):
        """The two settings as data for the router's apply program: [{"path": ..., "value": ...}], set once the tunnel
        exists."""
        return [{"path": os.path.join(PROC_SYS, "net", "ipv4", "conf", self.tunnel, name), "value": str(value)}
                for name, value in self.wanted.items()]

    def replay_lines(self):
        """Boot lines that set the two settings once the tunnel exists (the boot script makes it first)."""
        return ["echo %d > %s" % (value, shlex.quote(os.path.join(PROC_SYS, "net", "ipv4", "conf", self.tunnel, name)))
                for name, value in self.wanted.items()]


class Reflections(object):
    """The Reflection of every tunnel, as one."""

    def __init__(self, opts_list, check_mode, proc_sys=PROC_SYS):
        self.items = [Reflection(opts, check_mode, proc_sys) for opts in opts_list]

    @property
    def wanted(self):
        return any(item.wanted for item in self.items)

    @property
    def changes(self):
        return [change for item in self.items for change in item.changes]

    def after(self):
        out = {}
        for item in self.items:
            out.update(item.after())
        return out

    def apply(self):
        """Set what differs; on a failure put back what was set in every tunnel and raise FirewallInputError."""
        done = []
        for item in self.items:
            try:
                done.append((item, item.apply()))
            except FirewallInputError as exc:
                failed = [path for earlier, names in done for path in earlier.undo(names)]
                if failed:
                    raise FirewallInputError("%s; putting back the settings of the other tunnels failed for %s: check those by hand"
                                             % (exc, ", ".join(failed)))
                raise
        return done

    @staticmethod
    def undo(done):
        return [path for item, names in done for path in item.undo(names)]

    def diff_lines(self, after):
        return [line for item in self.items if item.wanted for line in item.diff_lines(after)]

    def replay_lines(self):
        return [line for item in self.items for line in item.replay_lines()]

    def boot_settings(self):
        return [entry for item in self.items for entry in item.boot_settings()]


def _undo_text(failed):
    if failed:
        return "putting back what was set before failed for %s: check those by hand" % ", ".join(failed)
    return "nothing was changed"
