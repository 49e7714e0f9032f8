#!/usr/bin/env python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of the many-site scenarios (hub, mesh) against the lab's namespaces of a topology (lab/topologies/*.yml).

Routers are the hosts with a wan0 interface; LAN hosts those with eth0, each behind the router on its network.

    sitecheck.py TOPOLOGY pings [--hub HUB] [--only HOST,...]
        every LAN host pings every other one; prints one line a pair with the reply's TTL and exits 1 unless all
        answered. Every reply crosses two routers (TTL 62), or with --hub, between two hosts behind spokes, three
        (TTL 61): through the hub, never directly
    sitecheck.py TOPOLOGY snapshot FILE
        each router's GRE tunnels (ip -d link, ifindex included: a tunnel made again is not the same), their
        addresses, the main table's routes and the rules of overlay.gre, as JSON
    sitecheck.py compare FILE_A FILE_B [--without ROUTER] [--without-tunnel NAME] [--without-lan CIDR] [--rules-as-set]
        exit 1, showing the differences, unless both snapshots are byte-identical once what belongs to the site
        being removed is left out: its router, the tunnels named, and the routes and rules naming its LAN (with
        --rules-as-set, each router's rules may come in another order)
    sitecheck.py TOPOLOGY keepalive A B --period P --retries R
        start the keepalive senders the routers have configurations for (as their unit's ExecStart would: the lab
        has no systemd; they keep running, owning their pairs' routes, until stop-senders), then break the underlay
        between routers A and B alone (GRE from B dropped on A): within
        P*R+P, A's and B's routes through their tunnels to each other are withdrawn, and every other route through a
        tunnel stays, as does the traffic between the other LANs; restore: the routes come back
    sitecheck.py stop-senders
        stop the keepalive senders this script started
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import yaml


def run(ns, *cmd, check=True):
    proc = subprocess.run(["ip", "netns", "exec", ns] + list(cmd), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("in %s, %s failed: %s" % (ns, " ".join(cmd), proc.stderr.strip()))
    return proc


def load(path):
    with open(path, encoding="utf-8") as handle:
        hosts = yaml.safe_load(handle)["hosts"]
    routers = dict((name, host["interfaces"]) for name, host in hosts.items() if "wan0" in host["interfaces"])
    lan_hosts = dict((name, str(ipaddress.ip_interface(host["interfaces"]["eth0"]).ip))
                     for name, host in hosts.items() if "eth0" in host["interfaces"])
    # the router of each LAN host: the one with an address on its network
    behind = {}
    for name, address in lan_hosts.items():
        for router, interfaces in routers.items():
            if ipaddress.ip_address(address) in ipaddress.ip_interface(interfaces["lan0"]).network:
                behind[name] = router
    return routers, lan_hosts, behind


def pings(topology, hub, only):
    _routers, lan_hosts, behind = load(topology)
    names = [n for n in sorted(lan_hosts) if not only or n in only]
    failed = 0
    for source in names:
        for target in names:
            if source == target:
                continue
            out = run(source, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", lan_hosts[target], check=False).stdout
            ttls = sorted(set(int(part.split("=")[1]) for part in out.split() if part.startswith("ttl=")))
            hops = 3 if hub and behind[source] != hub and behind[target] != hub else 2
            ok = ttls == [64 - hops]
            failed += not ok
            print("%s: %s -> %s (%s): ttl %s, expected %d (%d routers)%s" % (
                "ok" if ok else "FAIL", source, target, lan_hosts[target], ",".join(map(str, ttls)) or "none, no reply",
                64 - hops, hops, " through %s" % hub if hops == 3 else ""))
    return failed == 0


def gre_links(ns, *options):
    """NS's GRE tunnels (ip -j link), without gre0, the fallback device the kernel makes in every namespace."""
    links = json.loads(run(ns, "ip", "-j", *options, "link", "show", "type", "gre").stdout)
    return [link for link in links if link["ifname"] != "gre0"]


def snapshot(topology):
    routers, _hosts, _behind = load(topology)
    state = {}
    for ns in sorted(routers):
        links = gre_links(ns, "-d")
        names = [link["ifname"] for link in links]
        addresses = {}
        for name in names:
            addr = json.loads(run(ns, "ip", "-j", "addr", "show", "dev", name).stdout)[0]
            addresses[name] = [a for a in addr.get("addr_info", []) if not (a["family"] == "inet6" and a["scope"] == "link")]
        rules = [line for line in run(ns, "iptables-save").stdout.splitlines()
                 if line.startswith("-A") and ("OGRE-" in line or "OVERLAY-GRE" in line or "overlay.gre" in line)]
        state[ns] = {
            "links": dict((link["ifname"], link) for link in links),
            "addresses": addresses,
            "routes": [json.dumps(r, sort_keys=True) for r in json.loads(run(ns, "ip", "-j", "route", "show").stdout)],
            "rules": rules,
        }
    return state


def without(state, routers, tunnels, lans):
    out = {}
    for ns, item in state.items():
        if ns in routers:
            continue
        out[ns] = {
            "links": dict((k, v) for k, v in item["links"].items() if k not in tunnels),
            "addresses": dict((k, v) for k, v in item["addresses"].items() if k not in tunnels),
            "routes": [r for r in item["routes"] if not any(t in r for t in tunnels) and not any(lan in r for lan in lans)],
            "rules": [r for r in item["rules"] if not any(t in r for t in tunnels) and not any(lan in r for lan in lans)],
        }
    return out


def compare(file_a, file_b, routers, tunnels, lans, rules_as_set=False):
    with open(file_a, encoding="utf-8") as handle:
        a = without(json.load(handle), routers, tunnels, lans)
    with open(file_b, encoding="utf-8") as handle:
        b = without(json.load(handle), routers, tunnels, lans)
    if rules_as_set:  # the same rules, in any order (a chain that got rules back has them in another order)
        for state in (a, b):
            for item in state.values():
                item["rules"] = sorted(item["rules"])
    if a == b:
        kept = sum(len(item["links"]) for item in a.values())
        print("ok: the other %d tunnels, their addresses, routes and rules are byte-identical (ifindex included%s)"
              % (kept, "; the rules in any order" if rules_as_set else ""))
        return True
    text_a = json.dumps(a, indent=1, sort_keys=True).splitlines()
    text_b = json.dumps(b, indent=1, sort_keys=True).splitlines()
    print("FAIL: the other tunnels changed:")
    print("\n".join(difflib.unified_diff(text_a, text_b, file_a, file_b, lineterm="", n=2)))
    return False


SENDER_UNIT = "/etc/systemd/system/overlay-gre-keepalive@.service"
PIDS = "/run/overlay-gre/sitecheck-pids.json"


def start_senders(routers, logs):
    """Start each router's senders (one per keepalive-TUNNEL.json in its own /etc/overlay-gre); returns their names."""
    started, pids = [], []
    for ns in sorted(routers):
        configs = run(ns, "sh", "-c", "ls /etc/overlay-gre/keepalive-*.json 2>/dev/null || true").stdout.split()
        for config in configs:
            tunnel = os.path.basename(config)[len("keepalive-"):-len(".json")]
            unit = run(ns, "cat", SENDER_UNIT).stdout
            line = [ln for ln in unit.splitlines() if ln.startswith("ExecStart=")][0].split("=", 1)[1]
            log = open(os.path.join(logs, "keepalive-%s-%s.log" % (ns, tunnel)), "a", encoding="utf-8")
            proc = subprocess.Popen(["ip", "netns", "exec", ns] + shlex.split(line.replace("%i", tunnel)), stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            pids.append(proc.pid)
            started.append("%s:%s" % (ns, tunnel))
    os.makedirs(os.path.dirname(PIDS), exist_ok=True)
    with open(PIDS, "w", encoding="utf-8") as handle:
        json.dump(pids, handle)
    return started


def stop_senders():
    try:
        with open(PIDS, encoding="utf-8") as handle:
            pids = json.load(handle)
    except (OSError, ValueError):
        pids = []
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    if os.path.exists(PIDS):
        os.remove(PIDS)


def tunnel_routes(ns):
    """{destination: tunnel} of NS's routes through GRE tunnels."""
    tunnels = set(link["ifname"] for link in gre_links(ns))
    return dict((r["dst"], r["dev"]) for r in json.loads(run(ns, "ip", "-j", "route", "show").stdout) if r.get("dev") in tunnels)


def wait_for(predicate, timeout, step=0.1):
    begin = time.monotonic()
    while time.monotonic() - begin < timeout:
        if predicate():
            return time.monotonic() - begin
        time.sleep(step)
    return None


def keepalive(topology, a, b, period, retries, logs):
    routers, lan_hosts, behind = load(topology)
    results = []

    def check(name, ok, detail=""):
        results.append(bool(ok))
        print("%s: %s%s" % ("ok" if ok else "FAIL", name, (" (%s)" % detail) if detail else ""), flush=True)

    underlay = dict((ns, str(ipaddress.ip_interface(interfaces["wan0"]).ip)) for ns, interfaces in routers.items())
    lans = dict((ns, str(ipaddress.ip_interface(interfaces["lan0"]).network)) for ns, interfaces in routers.items())
    print("senders started: %s" % ", ".join(start_senders(routers, logs)), flush=True)
    bound = period * retries + period + 1.0  # a second of slack: the lab's single slow CPU schedules the senders late
    try:
        def every_lan():
            return all(set(lans[o] for o in routers if o != ns) <= set(tunnel_routes(ns)) for ns in routers)
        # the senders own their pairs' routes: they add them once the peer answers
        took = wait_for(every_lan, 4 * period + 10)
        full = dict((ns, tunnel_routes(ns)) for ns in routers)
        check("every router routes every other LAN through a tunnel before the break (the senders saw their peers)",
              took is not None, json.dumps(full))
        rule = ["INPUT", "-s", underlay[b], "-p", "gre", "-m", "comment", "--comment", "sitecheck: path broken", "-j", "DROP"]
        run(a, "iptables", "-I", *rule)
        try:
            def withdrawn():
                return lans[b] not in tunnel_routes(a) and lans[a] not in tunnel_routes(b)
            took = wait_for(withdrawn, bound + 5)
            check("%s and %s withdrew their routes to each other's LAN after the break" % (a, b),
                  took is not None and took <= bound, "after %s s, bound %.1f s" % ("%.1f" % took if took else "never", bound))
            for ns in routers:
                expected = dict((dst, dev) for dst, dev in full[ns].items()
                                if not (ns == a and dst == lans[b]) and not (ns == b and dst == lans[a]))
                check("%s kept every other route through its tunnels" % ns, tunnel_routes(ns) == expected,
                      "%s, expected %s" % (tunnel_routes(ns), expected))
            others = [n for n in sorted(lan_hosts) if behind[n] not in (a, b)]
            if len(others) >= 2:
                out = run(others[0], "ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", lan_hosts[others[1]], check=False)
                check("%s still reaches %s meanwhile" % (others[0], others[1]), out.returncode == 0)
        finally:
            run(a, "iptables", "-D", *rule)
        took = wait_for(lambda: all(tunnel_routes(ns) == full[ns] for ns in routers), 2 * period + 5)
        check("the routes came back after the path was restored", took is not None, "after %s s" % ("%.1f" % took if took else "never"))
    except Exception:
        stop_senders()
        raise
    # the senders keep running (they own their pairs' routes): stop-senders stops them
    return all(results)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pings")
    p.add_argument("topology")
    p.add_argument("--hub")
    p.add_argument("--only", default="")
    p = sub.add_parser("snapshot")
    p.add_argument("topology")
    p.add_argument("file")
    p = sub.add_parser("compare")
    p.add_argument("file_a")
    p.add_argument("file_b")
    p.add_argument("--without", action="append", default=[])
    p.add_argument("--without-tunnel", action="append", default=[])
    p.add_argument("--without-lan", action="append", default=[])
    p.add_argument("--rules-as-set", action="store_true")
    p = sub.add_parser("keepalive")
    p.add_argument("topology")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--period", type=float, required=True)
    p.add_argument("--retries", type=int, required=True)
    p.add_argument("--logs", default="/tmp")
    sub.add_parser("stop-senders")
    p = sub.add_parser("tunnels")
    p.add_argument("topology")
    p.add_argument("router")
    args = parser.parse_args()
    if args.command == "pings":
        return 0 if pings(args.topology, args.hub, [n for n in args.only.split(",") if n]) else 1
    if args.command == "snapshot":
        with open(args.file, "w", encoding="utf-8") as handle:
            json.dump(snapshot(args.topology), handle, indent=1, sort_keys=True)
        return 0
    if args.command == "compare":
        return 0 if compare(args.file_a, args.file_b, args.without, args.without_tunnel, args.without_lan, args.rules_as_set) else 1
    if args.command == "keepalive":
        return 0 if keepalive(args.topology, args.a, args.b, args.period, args.retries, args.logs) else 1
    if args.command == "stop-senders":
        stop_senders()
        return 0
    for link in gre_links(args.router):
        print(link["ifname"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
