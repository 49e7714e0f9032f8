# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note: this module_utils is private to the overlay.gre collection; its API may change at any time.

"""The logic of overlay.gre.ip_route: static routes of a host, owned through a route protocol number.

A route is known to the kernel by its key (table, destination, metric); the module owns the keys it is given.
Routes it makes carry the protocol number PROTOCOL (``proto 71``): that is how ``purge`` finds its own routes
and never touches others. Reading is one pass of the rtnetlink reader (_rtnetlink.py: routes of every table,
interfaces with their addresses, in the shape ``ip -N -j`` prints them); every change is one ``ip -batch`` run of
exactly the commands reported, and a run that fails
part way is rolled back command by command.

``replay`` is the listed routes as ``ip route replace`` lines, for a boot script (the role gre_lan_host's).

Parsing of destinations, gateways and metrics, and of the kernel's JSON, is gre_tunnel's (_gre_tunnel.py).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import tempfile

from ansible_collections.overlay.gre.plugins.module_utils import _rtnetlink
from ansible_collections.overlay.gre.plugins.module_utils._gre_tunnel import (
    TunnelError,
    _canonical_ip,
    _default_metric,
    _int_in,
    _route_dest,
    check_ifname,
    parse_json_documents,
    parse_route,
    remove_stale_batches,
    run_ip_batch,
)

# 0x47, ASCII "G". Not in the kernel's rtnetlink.h nor iproute2's rt_protos, and not used by the daemons that
# program routes (bird 12, zebra 11, keepalived 18, babel 42, Calico felix 80, Open/R 99, FRR 186-198).
PROTOCOL = 71
# Routes the kernel makes itself; a listed route never replaces one of them.
KERNEL_PROTOCOLS = {1: "redirect", 2: "kernel", 9: "ra"}
PROTOCOL_NAMES = {3: "boot", 4: "static", 11: "zebra", 12: "bird", 16: "dhcp", 18: "keepalived", 42: "babel", 186: "bgp", 188: "ospf"}
PROTOCOL_NAMES.update(KERNEL_PROTOCOLS)
TABLES = {"main": 254, "default": 253, "local": 255}
TABLE_NAMES = dict((number, name) for name, number in TABLES.items())
TABLE_MAX = 2 ** 32 - 1
SCOPE_LINK = 253
RT_TABLES_PLACES = ("/usr/share/iproute2/rt_tables", "/usr/lib/iproute2/rt_tables", "/etc/iproute2/rt_tables")
# What the reader reads, as ip commands: tests/kernel/test_ip_route.py compares the two readings.
READ_COMMANDS = "route show table all type unicast\naddr show\n"
ROUTE_KEYS = ("dest", "via", "dev", "metric", "table", "onlink", "state")


class RouteError(TunnelError):
    """Bad input, or a kernel state the module refuses to act on; raised before any change."""


# --- input ----------------------------------------------------------------------------------------------------


def read_table_names(places=RT_TABLES_PLACES):
    """The routing table names iproute2 knows (rt_tables and rt_tables.d/*.conf), as {name: number}."""
    names = dict(TABLES)
    for place in places:
        files = [place]
        folder = place + ".d"
        if os.path.isdir(folder):
            files += [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".conf")]
        for path in files:
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    lines = handle.read().splitlines()
            except OSError:
                continue
            for line in lines:
                words = line.split("#", 1)[0].split()
                if len(words) >= 2:
                    try:
                        names[words[1]] = int(words[0], 0)
                    except ValueError:
                        pass
    return names


def parse_table(value, option, names):
    if value is None or str(value).strip() == "":
        return TABLES["main"]
    text = str(value).strip()
    if text in names:
        number = names[text]
    else:
        try:
            number = _int_in(text, option, 1, TABLE_MAX, "a routing table number")
        except TunnelError:
            raise RouteError("%s: %r is neither a routing table number (1 to %d) nor a table name iproute2 knows (%s)"
                             % (option, value, TABLE_MAX, ", ".join(sorted(names))))
    if number == TABLES["local"]:
        raise RouteError("%s: %r is the kernel's local table (its own addresses); static routes go to main or another table" % (option, value))
    if not 1 <= number <= TABLE_MAX:
        raise RouteError("%s: %r is out of range (a routing table is 1 to %d)" % (option, value, TABLE_MAX))
    return number


def parse_protocol(value):
    number = _int_in(value, "protocol", 0, 255, "a route protocol number")
    if number is None:
        return PROTOCOL
    if number <= 4 or number in KERNEL_PROTOCOLS:
        raise RouteError("protocol: %r is reserved (0 to 4 are the kernel's and `ip route`'s own: unspec, redirect, kernel, boot, static);"
                         " give a number of 5 to 255 that no other tool on this host uses" % (value,))
    return number


def desired_routes(params, table_names):
    """Validate the listed routes (no kernel needed). Returns a list of wanted routes, each a dict with its path."""
    default_state = params.get("state") or "present"
    routes = params.get("routes")
    if routes is None:
        routes = []
    if not isinstance(routes, list):
        raise RouteError("routes: must be a list of routes")
    wants = []
    seen = {}
    for index, item in enumerate(routes):
        path = "routes[%d]" % index
        if not isinstance(item, dict) or "dest" not in item:
            raise RouteError("%s: %r must be a mapping with dest and via (or dev); a bare CIDR names no gateway" % (path, item))
        unknown = sorted(set(item) - set(ROUTE_KEYS))
        if unknown:
            raise RouteError("%s: unknown option(s) %s (known: %s)" % (path, ", ".join(unknown), ", ".join(ROUTE_KEYS)))
        dest, metric, via = parse_route({"dest": item["dest"], "metric": item.get("metric"), "via": item.get("via")}, path)
        dev = item.get("dev")
        if dev not in (None, ""):
            dev = check_ifname(dev, path + ".dev")
        else:
            dev = None
        state = item.get("state") or default_state
        if state not in ("present", "absent"):
            raise RouteError("%s.state: %r is not present or absent" % (path, state))
        onlink = bool(item.get("onlink"))
        if state == "present" and via is None and dev is None:
            raise RouteError("%s: %s has neither via (a gateway) nor dev; give the gateway, the interface, or both" % (path, dest))
        if onlink and (via is None or dev is None):
            raise RouteError("%s.onlink: onlink needs both via and dev (the gateway is declared reachable on that interface)" % path)
        if via is not None and ipaddress.ip_address(via).is_link_local and dev is None:
            raise RouteError("%s.via: %s is a link-local address; it needs dev (the interface it is reachable on)" % (path, via))
        want = {"path": path, "state": state, "table": parse_table(item.get("table"), path + ".table", table_names),
                "dest": dest, "metric": metric, "via": via, "dev": dev, "onlink": onlink}
        key = route_key(want)
        if key in seen:
            raise RouteError("%s: %s metric %d in table %s is listed twice (also as %s); the kernel holds one route per destination,"
                             " metric and table" % (path, dest, metric, table_text(want["table"]), seen[key]))
        seen[key] = path
        wants.append(want)
    return wants


def route_key(route):
    return (route["table"], route["dest"], route["metric"])


def table_text(number):
    return TABLE_NAMES.get(number, str(number))


def protocol_text(number):
    return PROTOCOL_NAMES.get(number, str(number))


# --- the kernel's state ---------------------------------------------------------------------------------------


def parse_kernel_route(entry):
    """One entry of ``ip -N -j route show table all type unicast``; None for what the module never manages."""
    if "tos" in entry and str(entry["tos"]) not in ("0", "0x00"):
        return None  # a TOS route is another key in the kernel's eyes; never ours
    gateway = entry.get("gateway")
    return {
        "table": int(entry.get("table", TABLES["main"])),
        "dest": _route_dest(entry),
        "metric": int(entry.get("metric", 0)),
        "via": _canonical_ip(gateway) if gateway else None,
        "dev": entry.get("dev"),
        "onlink": "onlink" in (entry.get("flags") or []),
        "protocol": int(entry.get("protocol", 3)),  # iproute2 leaves out "boot", its own default
        "scope": int(entry.get("scope", 0)),
        "multipath": "nexthops" in entry,
    }


class LiveRoutes(object):
    """The kernel's unicast routes of every table, and its interfaces (up or not, their addresses)."""

    def __init__(self, routes, links):
        self.routes = [r for r in (parse_kernel_route(entry) for entry in routes) if r is not None]
        self.interfaces = {}
        self.addresses = set()
        for link in links:
            addresses = []
            for info in link.get("addr_info") or []:
                if "local" in info:
                    addresses.append(_canonical_ip(info["local"]))
            self.interfaces[link["ifname"]] = {"up": "UP" in (link.get("flags") or []), "addresses": addresses}
            self.addresses.update(addresses)

    @classmethod
    def from_ip_output(cls, text):
        routes, links = parse_json_documents(text, 2)
        return cls(routes, links)

    def at(self, key):
        return [r for r in self.routes if route_key(r) == key]


def _family(text):
    return 6 if ":" in text else 4


def _on_link(gateway, dev, table, routes):
    """The device a gateway is reachable on without another gateway, as the kernel would find it; None if none.

    IPv4 looks for the longest route of scope link (or host) that holds the gateway, IPv6 for the longest route
    that holds it, which must have no gateway; in TABLE first, then in main (as the kernel's fib_check_nh does).
    """
    address = ipaddress.ip_address(gateway)
    for number in (table, TABLES["main"]) if table != TABLES["main"] else (table,):
        best = None
        for route in routes:
            if route["table"] != number or route["multipath"] or _family(route["dest"]) != address.version:
                continue
            if dev is not None and route["dev"] != dev:
                continue
            if address.version == 4 and route["scope"] < SCOPE_LINK:
                continue
            network = ipaddress.ip_network(route["dest"])
            if address in network and (best is None or network.prefixlen > best[0].prefixlen
                                       or (network.prefixlen == best[0].prefixlen and not route["via"])):
                best = (network, route)
        if best is not None:
            return None if best[1]["via"] else best[1]["dev"]
    return None


def _planned_routes(wants, live):
    """The kernel's routes and the device routes this run adds, which make their networks reachable for gateways."""
    return list(live.routes) + [dict(w, via=None, scope=SCOPE_LINK, multipath=False) for w in wants
                                if w["state"] == "present" and w["via"] is None]


def check_against_kernel(wants, live):
    """Refuse, naming the option, what the kernel would refuse or what would take a route that is not ours to take."""
    planned = _planned_routes(wants, live)
    for want in wants:
        path = want["path"]
        if want["dev"] is not None:
            interface = live.interfaces.get(want["dev"])
            if interface is None:
                raise RouteError("%s.dev: %r does not exist on this host" % (path, want["dev"]))
            if want["state"] == "present" and not interface["up"]:
                raise RouteError("%s.dev: %s is down; the kernel refuses routes through a device that is not up" % (path, want["dev"]))
        if want["state"] != "present":
            continue
        via = want["via"]
        if via is not None:
            if via in live.addresses:
                raise RouteError("%s.via: %s is an address of this host itself, not a gateway" % (path, via))
            if not want["onlink"] and not ipaddress.ip_address(via).is_link_local:
                if _on_link(via, want["dev"], want["table"], planned) is None:
                    where = " on %s" % want["dev"] if want["dev"] else ""
                    raise RouteError("%s.via: %s is not on a network this host is connected to%s (no route of scope link holds it),"
                                     " so the kernel would refuse it (Nexthop has invalid gateway); give a gateway on a local network,"
                                     " or onlink with dev if it is reachable there" % (path, via, where))
        for route in live.at(route_key(want)):
            if route["protocol"] in KERNEL_PROTOCOLS:
                on_dev = " on " + route["dev"] if route["dev"] else ""
                raise RouteError("%s: %s metric %d in table %s is the kernel's own route (protocol %s)%s; a static route cannot replace it:"
                                 " give another metric" % (path, want["dest"], want["metric"], table_text(want["table"]),
                                                           protocol_text(route["protocol"]), on_dev))
            if route["multipath"]:
                raise RouteError("%s: %s metric %d in table %s is a multipath route, which this module does not manage; remove it first or"
                                 " give another metric" % (path, want["dest"], want["metric"], table_text(want["table"])))


# --- comparing and planning -----------------------------------------------------------------------------------


def route_words(route, verb="add"):
    """``ip route VERB`` and a route as its arguments: the table when not main, the metric when not the kernel's
    default, except for ``del``, which takes a route of any metric when given none."""
    words = [route["dest"]]
    if route.get("via"):
        words += ["via", route["via"]]
    if route.get("dev"):
        words += ["dev", route["dev"]]
    if route.get("onlink"):
        words.append("onlink")
    if route["table"] != TABLES["main"]:
        words += ["table", str(route["table"])]
    if verb == "del" or route["metric"] != _default_metric(route["dest"]):
        words += ["metric", str(route["metric"])]
    words += ["proto", str(route["protocol"])]
    return ["route", verb] + words


def route_line(route):
    """A route as a line of --diff, close to ``ip route show``."""
    words = [route["dest"]]
    if route.get("via"):
        words += ["via", route["via"]]
    if route.get("dev"):
        words += ["dev", route["dev"]]
    if route.get("onlink"):
        words.append("onlink")
    words += ["table", table_text(route["table"]), "metric", str(route["metric"]), "proto", protocol_text(route["protocol"])]
    return " ".join(words)


def route_view(route, protocol=None):
    """A route as the module returns it."""
    if route is None:
        return None
    view = {"dest": route["dest"], "via": route.get("via"), "dev": route.get("dev"), "metric": route["metric"],
            "table": table_text(route["table"]), "onlink": bool(route.get("onlink")), "protocol": route["protocol"]}
    if protocol is not None:
        view["owned"] = route["protocol"] == protocol
    return view


class Step(object):
    """One ``ip route`` command of the plan, with the command that undoes it."""

    __slots__ = ("args", "undo")

    def __init__(self, args, undo):
        self.args = args
        self.undo = undo

    @property
    def line(self):
        return " ".join(self.args)

    @property
    def command(self):
        return "ip " + self.line


def _matches(want, route, protocol):
    return (route["via"] == want["via"] and route["onlink"] == want["onlink"] and route["protocol"] == protocol
            and (want["dev"] is None or route["dev"] == want["dev"]))


def _absent_matches(want, route):
    return ((want["via"] is None or route["via"] == want["via"]) and (want["dev"] is None or route["dev"] == want["dev"])
            and route["protocol"] not in KERNEL_PROTOCOLS and not route["multipath"])


class RoutePlan(object):
    """The steps that make the kernel's routes what was asked, the routes before and after, and what was taken over."""

    def __init__(self):
        self.steps = []
        self.before = []
        self.after = []
        self.taken_over = []
        self.purged = []

    @property
    def changed(self):
        return bool(self.steps)


def plan_routes(wants, live, protocol, purge=False):
    """Compare WANTS with LIVE; return a RoutePlan. Adds and replaces go first (device routes before those through a
    gateway, which may need them), removals last, so a destination is never left without a route on the way."""
    plan = RoutePlan()
    planned = _planned_routes(wants, live)
    device_steps, gateway_steps, removals = [], [], []
    listed = set()
    for want in wants:
        key = route_key(want)
        listed.add(key)
        current = live.at(key)
        if want["state"] == "absent":
            for route in current:
                if _absent_matches(want, route):
                    removals.append(Step(route_words(route, "del"), route_words(route, "add")))
                    plan.before.append(route)
            continue
        wanted = dict(want, protocol=protocol)
        if current and _matches(want, current[0], protocol) and len(current) == 1:
            continue
        steps = device_steps if want["via"] is None else gateway_steps
        if not current:
            steps.append(Step(route_words(wanted, "add"), route_words(wanted, "del")))
        else:
            first = current[0]
            steps.append(Step(route_words(wanted, "replace"), route_words(first, "replace")))
            for extra in current[1:]:  # IPv4 routes appended to the same key (`ip route append`)
                steps.append(Step(route_words(extra, "del"), route_words(extra, "append")))
            plan.taken_over += [r for r in current if r["protocol"] != protocol]
        plan.before += current
        expected = dict(wanted)
        if expected["dev"] is None:  # the kernel takes the device of the gateway's network
            expected["dev"] = _on_link(want["via"], None, want["table"], planned) if want["via"] else None
        plan.after.append(expected)
    if purge:
        for route in live.routes:
            if route["protocol"] == protocol and route_key(route) not in listed and not route["multipath"]:
                removals.append(Step(route_words(route, "del"), route_words(route, "add")))
                plan.before.append(route)
                plan.purged.append(route)
    plan.steps = device_steps + gateway_steps + removals
    return plan


def boot_lines(wants, protocol):
    """The ``ip route replace`` of each listed present route as asked (the interface only where it was given), device
    routes first, as the plan orders them, as the words of each ``ip`` command without ``ip``: data for the roles'
    apply program (roles/gre_router/files/overlay-gre-apply), which runs them in one ``ip -batch``. Running them again
    changes nothing."""
    present = [dict(w, protocol=protocol) for w in wants if w["state"] == "present"]
    ordered = [w for w in present if w["via"] is None] + [w for w in present if w["via"] is not None]
    return [route_words(w, "replace") for w in ordered]


def replay_lines(wants, protocol):
    """boot_lines as shell lines, for a boot script."""
    return [" ".join(shlex.quote(word) for word in ["ip"] + words) for words in boot_lines(wants, protocol)]


def diff_text(routes):
    return "".join(route_line(r) + "\n" for r in sorted(routes, key=lambda r: (r["table"], _family(r["dest"]), r["dest"], r["metric"])))


# --- the module -----------------------------------------------------------------------------------------------


class IpRouteManager(object):
    """Read once, compare, apply in one ``ip -batch``; roll back on failure."""

    def __init__(self, module):
        self.module = module
        self.ip = module.get_bin_path("ip", required=True)
        if not module.check_mode:
            remove_stale_batches(tempfile.gettempdir())

    def read(self):
        try:
            routes, links = _rtnetlink.read(table=_rtnetlink.RT_TABLE_UNSPEC, numeric=True)[::-1]
        except _rtnetlink.NetlinkError as exc:
            raise RouteError("could not read the kernel's routes and addresses through rtnetlink: %s" % exc)
        return LiveRoutes(routes, links)

    def _batch(self, steps, force=False):
        """Run STEPS in one ``ip -batch`` (run_ip_batch); return (index of the failed step or None, error text)."""
        rc, out, err = run_ip_batch(self.module, [self.ip] + (["-force"] if force else []), [s.line for s in steps])
        if rc == 0:
            return None, ""
        found = re.findall(r"Command failed -:(\d+)", err)
        index = int(found[0]) - 1 if found else 0
        text = re.sub(r"\s*Command failed -:\d+\s*", " ", err).strip() or out.strip() or "exit status %d" % rc
        return index, text.rstrip(".")

    def run(self):
        params = self.module.params
        protocol = parse_protocol(params.get("protocol"))
        wants = desired_routes(params, read_table_names())
        live = self.read()
        check_against_kernel(wants, live)
        plan = plan_routes(wants, live, protocol, bool(params.get("purge")))
        result = {"changed": plan.changed, "commands": [s.command for s in plan.steps],
                  "purged": [route_view(r) for r in plan.purged], "replay": replay_lines(wants, protocol),
                  "boot": boot_lines(wants, protocol)}
        after = plan.after
        kept = True
        if plan.changed and not self.module.check_mode:
            failure = self.apply(plan.steps)
            live = self.read()
            if failure:
                result.update(changed=failure["changed"], commands=failure["ran"], msg=failure["msg"], failed=True)
                kept = failure["changed"]
            keys = set(route_key(r) for r in plan.before + plan.after)
            after = [r for r in live.routes if route_key(r) in keys]
            result["routes"] = self._views(wants, live, protocol)
        elif self.module.check_mode:
            result["routes"] = self._predicted(wants, live, plan, protocol)
        else:
            result["routes"] = self._views(wants, live, protocol)
        if self.module._diff:
            result["diff"] = {"before": diff_text(plan.before), "after": diff_text(after),
                              "before_header": "routes (ip route)", "after_header": "routes (ip route)"}
        if kept:
            verb = "would replace" if self.module.check_mode else "replaced"
            for route in plan.taken_over:
                self.module.warn("%s: %s %s, a route of protocol %s this module did not make"
                                 % (self._path_of(route, wants), verb, route_line(route), protocol_text(route["protocol"])))
        return result

    @staticmethod
    def _path_of(route, wants):
        return next((w["path"] for w in wants if route_key(w) == route_key(route)), "routes")

    @staticmethod
    def _views(wants, live, protocol):
        views = []
        for want in wants:
            current = live.at(route_key(want))
            if want["state"] == "absent":
                current = [r for r in current if _absent_matches(want, r)]
            if current:
                view = route_view(current[0], protocol)
                view["state"] = "present"
            else:
                view = {"dest": want["dest"], "metric": want["metric"], "table": table_text(want["table"]), "state": "absent"}
            views.append(view)
        return views

    @staticmethod
    def _predicted(wants, live, plan, protocol):
        expected = dict((route_key(r), r) for r in plan.after)
        views = []
        for want in wants:
            key = route_key(want)
            if want["state"] == "absent":
                view = {"dest": want["dest"], "metric": want["metric"], "table": table_text(want["table"]), "state": "absent"}
            else:
                view = route_view(expected[key] if key in expected else live.at(key)[0], protocol)
                view["state"] = "present"
            views.append(view)
        return views

    def apply(self, steps):
        """Apply STEPS; when one fails, undo those before it (newest first) and say what state the routes are in."""
        failed, error = self._batch(steps)
        if failed is None:
            return None
        ran = steps[:failed]
        msg = "`%s` failed: %s." % (steps[failed].command, error)
        if not ran:
            return {"msg": msg + " Nothing was changed.", "ran": [], "changed": False}
        undo = [Step(s.undo, None) for s in reversed(ran)]
        undo_failed, undo_error = self._batch(undo, force=True)
        if undo_failed is None:
            msg += " The %d command(s) before it were undone (%s): the routes are as they were." % (
                len(ran), "; ".join("`ip %s`" % " ".join(s.args) for s in undo))
            return {"msg": msg, "ran": [s.command for s in ran] + ["ip " + " ".join(s.args) for s in undo], "changed": False}
        msg += (" Undoing the %d command(s) before it failed too (%s): the routes are as returned in `routes`; applied: %s."
                % (len(ran), undo_error, "; ".join("`%s`" % s.command for s in ran)))
        return {"msg": msg, "ran": [s.command for s in ran], "changed": True}


def run_module(module):
    """The body of overlay.gre.ip_route's main()."""
    try:
        result = IpRouteManager(module).run()
    except TunnelError as exc:
        module.fail_json(msg=str(exc), changed=False, commands=[])
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)
