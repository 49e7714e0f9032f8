#!/usr/bin/env python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks the Molecule scenarios run against the lab's namespaces (router_a, router_b, host_a, host_b, host_c).

    labcheck.py snapshot FILE              the routers' kernel state (links, addresses, routes, iptables, forwarding)
                                           and the LAN host host_c's routes
    labcheck.py compare FILE_A FILE_B      exit 1, showing the differences, unless both snapshots are equal
    labcheck.py harden                     INPUT and FORWARD policies DROP on both routers, ICMP "fragmentation
                                           needed" dropped (so only MSS clamping can save large TCP transfers)
    labcheck.py firewall-reload PRE_FILE   reload both routers' firewall as `systemctl restart nftables` does (flush
                                           ruleset, load PRE_FILE's rules) with the firewall guard running as its unit
                                           would; exit 1 unless the rules, traffic and the MSS clamp are back within 5 s
    labcheck.py lan-before                 exit 1 unless host_c (default gateway gw_a, which has no way to site B)
                                           cannot reach host_b: its route through router_a is what makes it work
    labcheck.py verify
                                           traffic checks; prints one line a check, exit 1 if any failed
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

ROUTERS = {"router_a": "gre-router_b", "router_b": "gre-router_a"}
HOSTS = {"host_a": "10.10.1.10", "host_b": "20.10.1.10"}
# A LAN host of site A whose default gateway is not router_a (the role gre_lan_host), and its boot unit's instance.
LAN_HOST = "host_c"
ROUTER_A_LAN = "10.10.1.1"
# The instance of the routers' boot unit and firewall guard: the boot script of all of a router's tunnels.
BOOT = "tunnels"


def run(ns, *cmd, check=True):
    proc = subprocess.run(["ip", "netns", "exec", ns] + list(cmd), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("in %s, %s failed: %s" % (ns, " ".join(cmd), proc.stderr.strip()))
    return proc


def stable_addresses(links):
    """Addresses without IPv6 link-local ones, whose duplicate address detection goes on in the background."""
    for link in links:
        link.pop("ifindex", None)  # a re-created link gets a new index; what matters is what it is
        link["addr_info"] = [a for a in link.get("addr_info", []) if not (a["family"] == "inet6" and a["scope"] == "link")]
    return links


def snapshot():
    state = {}
    for ns in ROUTERS:
        iptables = []
        for table in ("filter", "nat", "mangle"):
            out = run(ns, "iptables-save", "-t", table).stdout
            iptables += [re.sub(r"\[\d+:\d+\]", "", line) for line in out.splitlines() if not line.startswith("#")]
        links = json.loads(run(ns, "ip", "-d", "-j", "link", "show").stdout)
        for link in links:
            link.pop("ifindex", None)  # a re-created link gets a new index; what matters is what it is
        state[ns] = {
            "links": links,
            "addresses": stable_addresses(json.loads(run(ns, "ip", "-j", "addr", "show").stdout)),
            "routes": json.loads(run(ns, "ip", "-j", "route", "show", "table", "all").stdout),
            "iptables": iptables,
            "forwarding": {key: run(ns, "sysctl", "-n", key).stdout.strip()
                           for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")},
        }
    state[LAN_HOST] = {"routes": json.loads(run(LAN_HOST, "ip", "-j", "route", "show", "table", "all").stdout)}
    return state


def exec_starts(ns, instance, unit="overlay-gre@.service"):
    """The ExecStart lines of NS's own UNIT for INSTANCE (ip netns exec shows NS its own /etc)."""
    text = run(ns, "cat", "/etc/systemd/system/" + unit).stdout
    starts = [line.split("=", 1)[1].replace("%i", instance) for line in text.splitlines() if line.startswith("ExecStart=")]
    if not starts:
        raise RuntimeError("%s: %s has no ExecStart" % (ns, unit))
    return starts


def owned_rules(ns):
    """The rules overlay.gre's modules made on NS (their chains and the jumps to them), from iptables-save."""
    return [line for line in run(ns, "iptables-save").stdout.splitlines()
            if line.startswith("-A") and ("OGRE-" in line or "OVERLAY-GRE" in line or "overlay.gre" in line)]


def firewall_reload(pre_file):
    """Each router's firewall reloaded as `systemctl restart nftables` does with Debian's /etc/nftables.conf (flush
    ruleset, then load the saved firewall: PRE_FILE's rules), with the firewall guard running as its unit would: the
    rules, traffic and the MSS clamp must be back within 5 s."""
    expected = {ns: owned_rules(ns) for ns in ROUTERS}
    guards = {}
    for ns in ROUTERS:
        command = exec_starts(ns, BOOT, unit="overlay-gre-guard@.service")[0]
        guards[ns] = subprocess.Popen(["ip", "netns", "exec", ns, "sh", "-c", command], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, start_new_session=True)
    results = []
    try:
        time.sleep(2)  # the guards have started and found the rules in place
        # A run of the role that changes the firewall (here: router_a's forwarding rule for site A's traffic goes)
        # must not be undone by the guard, which still runs the script from before that run.
        chain = "OGRE-FWD-" + ROUTERS["router_a"]
        first = [line for line in run("router_a", "iptables", "-S", chain).stdout.splitlines() if line.startswith("-A ")][0]
        run("router_a", "sh", "-c", "iptables " + first.replace("-A ", "-D ", 1))
        time.sleep(2.5)
        kept = first not in run("router_a", "iptables", "-S", chain).stdout.splitlines()
        results.append(kept)
        print("%s: the guard left a run's change to router_a's rules alone (%s)" % ("ok" if kept else "FAIL", first))
        run("router_a", "sh", "-c", "iptables " + first.replace("-A ", "-I ", 1).replace(chain, chain + " 1", 1))
        reloaded = {}
        for ns in ROUTERS:
            run(ns, "nft", "flush", "ruleset")
            with open("%s.%s.rules" % (pre_file, ns), encoding="utf-8") as handle:
                subprocess.run(["ip", "netns", "exec", ns, "iptables-restore"], input=handle.read(), text=True, check=True)
            reloaded[ns] = time.monotonic()
        back = {}
        while len(back) < len(ROUTERS) and time.monotonic() - min(reloaded.values()) < 5:
            for ns in ROUTERS:
                if ns not in back and sorted(owned_rules(ns)) == sorted(expected[ns]):
                    back[ns] = time.monotonic() - reloaded[ns]
            time.sleep(0.1)
        said = {}
        for ns, guard in guards.items():  # the guard's own line is the proof that the reload had removed the rules
            os.killpg(guard.pid, signal.SIGKILL)
            said[ns] = [line for line in guard.communicate()[0].splitlines() if line.strip()]
        guards = {}
        gone = {ns: any("were gone" in line for line in said[ns]) for ns in ROUTERS}
        for ns in ROUTERS:
            print("%s's guard said: %s" % (ns, " | ".join(said[ns]) or "nothing"))
            ok = gone[ns] and ns in back and back[ns] <= 5
            results.append(ok)
            when = "back after %.1f s" % back[ns] if ns in back else "not back within 5 s"
            print("%s: %s's rules %s by the reload, %s" % ("ok" if ok else "FAIL", ns, "removed" if gone[ns] else "NOT seen removed", when))
        reached = ping("host_a", HOSTS["host_b"]) and ping("host_b", HOSTS["host_a"])
        results.append(reached)
        print("%s: host_a and host_b reach each other again" % ("ok" if reached else "FAIL"))
        received, detail = tcp_transfer("host_a", "host_b", HOSTS["host_b"], 1 << 20)
        results.append(received == 1 << 20)
        print("%s: a 1 MiB TCP transfer host_a -> host_b completes with ICMP fragmentation-needed dropped (MSS clamp back) (%d bytes%s)"
              % ("ok" if received == 1 << 20 else "FAIL", received, ("; " + detail) if detail else ""))
    finally:
        for ns, guard in guards.items():
            os.killpg(guard.pid, signal.SIGKILL)
            out = guard.communicate()[0]
            print("%s's guard said: %s" % (ns, " | ".join(line for line in out.splitlines() if line.strip()) or "nothing"))
    print("firewall-reload: %d passed, %d failed" % (results.count(True), results.count(False)))
    return 0 if all(results) else 1


def save_rules(path):
    """Each router's whole iptables-save next to a snapshot: what its own firewall would restore at boot."""
    for ns in ROUTERS:
        with open("%s.%s.rules" % (path, ns), "w", encoding="utf-8") as handle:
            handle.write(run(ns, "iptables-save").stdout)


def lan_host_route():
    """The gateway host_c's kernel takes to host_b (None when it has no route)."""
    proc = run(LAN_HOST, "ip", "-j", "route", "get", HOSTS["host_b"], check=False)
    return json.loads(proc.stdout)[0].get("gateway") if proc.returncode == 0 and proc.stdout.strip() else None


def lan_before():
    gateway = lan_host_route()
    reached = ping(LAN_HOST, HOSTS["host_b"], count=1)
    print("%s: %s; to %s through %s" % (LAN_HOST, "reaches host_b" if reached else "cannot reach host_b", HOSTS["host_b"], gateway))
    return 1 if reached or gateway == ROUTER_A_LAN else 0


def compare(path_a, path_b):
    with open(path_a, encoding="utf-8") as a, open(path_b, encoding="utf-8") as b:
        left, right = json.load(a), json.load(b)
    if left == right:
        print("kernel state equal: %s == %s" % (path_a, path_b))
        return 0
    diff = difflib.unified_diff(json.dumps(left, indent=1, sort_keys=True).splitlines(),
                                json.dumps(right, indent=1, sort_keys=True).splitlines(), path_a, path_b, lineterm="")
    print("kernel state differs:\n" + "\n".join(diff))
    return 1


def harden():
    for ns in ROUTERS:
        run(ns, "iptables", "-P", "INPUT", "DROP")
        run(ns, "iptables", "-P", "FORWARD", "DROP")
        for chain in ("OUTPUT", "FORWARD"):
            run(ns, "iptables", "-A", chain, "-p", "icmp", "--icmp-type", "fragmentation-needed",
                "-m", "comment", "--comment", "lab: no PMTU discovery", "-j", "DROP")
    print("routers hardened: INPUT/FORWARD policy DROP, ICMP fragmentation-needed dropped")


class Capture(object):
    """tcpdump in a namespace, for the duration of a with-block; .lines holds what it printed."""

    def __init__(self, ns, interface, bpf):
        self.cmd = ["ip", "netns", "exec", ns, "tcpdump", "-l", "-n", "-p", "-i", interface, bpf]
        self.lines = []

    def __enter__(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # tcpdump says "listening on" on stderr once the capture is armed
        while True:
            line = self.proc.stderr.readline()
            if not line or "listening on" in line:
                break
        return self

    def __exit__(self, *exc):
        time.sleep(0.5)
        self.proc.terminate()
        out = self.proc.communicate(timeout=10)[0]
        self.lines = [line for line in out.splitlines() if line.strip()]
        return False


def ping(src, dst, count=3):
    return run(src, "ping", "-n", "-c", str(count), "-W", "2", dst, check=False).returncode == 0


def tunnel_counters(ns):
    link = json.loads(run(ns, "ip", "-s", "-j", "link", "show", "dev", ROUTERS[ns]).stdout)[0]
    return link["stats64"]["rx"]["packets"], link["stats64"]["tx"]["packets"]


TCP_SERVER = r"""
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 5001)); srv.listen(1); srv.settimeout(60)
conn, peer = srv.accept(); conn.settimeout(30); total = 0
while True:
    data = conn.recv(65536)
    if not data: break
    total += len(data)
print(total, peer[0])
"""

TCP_CLIENT = r"""
import socket, sys
sock = socket.create_connection((sys.argv[1], 5001), timeout=30)
sock.sendall(b"x" * int(sys.argv[2])); sock.shutdown(socket.SHUT_WR); sock.recv(1); sock.close()
"""


def tcp_transfer(src, dst_ns, dst_addr, size):
    server = subprocess.Popen(["ip", "netns", "exec", dst_ns, sys.executable, "-c", TCP_SERVER],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    client = run(src, sys.executable, "-c", TCP_CLIENT, dst_addr, str(size), check=False)
    out, err = server.communicate(timeout=90)
    received = int(out.split()[0]) if out.strip() else 0
    return received, client.stderr.strip() + err.strip()


def verify():
    results = []

    def check(name, ok, detail=""):
        results.append(ok)
        print("%s: %s%s" % ("ok" if ok else "FAIL", name, (" (%s)" % detail) if detail else ""))

    before = {ns: tunnel_counters(ns) for ns in ROUTERS}
    with Capture("router_b", "bond0", "ip proto 47") as gre_on_underlay:
        check("host_a reaches host_b (20.10.1.10)", ping("host_a", "20.10.1.10"))
    check("host_b reaches host_a (10.10.1.10)", ping("host_b", "10.10.1.10"))
    check("the traffic crossed the underlay as GRE (protocol 47 seen on router_b's bond0)",
          any("GREv0" in line or "gre" in line.lower() for line in gre_on_underlay.lines),
          "%d packets" % len(gre_on_underlay.lines))
    after = {ns: tunnel_counters(ns) for ns in ROUTERS}
    for ns in ROUTERS:
        check("%s's tunnel %s counted the packets" % (ns, ROUTERS[ns]),
              after[ns][0] > before[ns][0] and after[ns][1] > before[ns][1], "rx/tx %s -> %s" % (before[ns], after[ns]))

    with Capture("host_b", "eth0", "icmp[icmptype] == icmp-echo") as at_host_b, \
            Capture("router_b", "gre-router_a", "icmp[icmptype] == icmp-echo") as at_tunnel:
        ping("host_a", "20.10.1.10", count=1)
    sources_b = {line.split()[2] for line in at_host_b.lines if " IP " in line}
    sources_t = {line.split()[2] for line in at_tunnel.lines if " IP " in line}
    check("host_b sees host_a's own address 10.10.1.10 (routed, no NAT)", sources_b == {"10.10.1.10"}, sources_b)
    check("router_b sees host_a's address come out of the tunnel", sources_t == {"10.10.1.10"}, sources_t)

    size = 1 << 20
    received, detail = tcp_transfer("host_a", "host_b", "20.10.1.10", size)
    check("a 1 MiB TCP transfer host_a -> host_b completes with ICMP fragmentation-needed dropped (MSS clamping)",
          received == size, "%d bytes received%s" % (received, ("; " + detail) if detail else ""))
    received, detail = tcp_transfer("host_b", "host_a", "10.10.1.10", size)
    check("a 1 MiB TCP transfer host_b -> host_a completes the same way", received == size,
          "%d bytes received%s" % (received, ("; " + detail) if detail else ""))
    gateway = lan_host_route()
    check("%s (default gateway gw_a, which has no way to site B) reaches host_b through its route via router_a %s"
          % (LAN_HOST, ROUTER_A_LAN), gateway == ROUTER_A_LAN and ping(LAN_HOST, HOSTS["host_b"]), "route to host_b via %s" % gateway)
    policies = [run(ns, "iptables", "-S", chain).stdout.splitlines()[0] for ns in ROUTERS for chain in ("INPUT", "FORWARD")]
    check("the routers' INPUT and FORWARD policies are still DROP", all(p.endswith(" DROP") for p in policies), policies)
    print("verify: %d passed, %d failed" % (results.count(True), results.count(False)))
    return 0 if all(results) else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="action", required=True)
    snap = sub.add_parser("snapshot")
    snap.add_argument("file")
    comp = sub.add_parser("compare")
    comp.add_argument("file_a")
    comp.add_argument("file_b")
    sub.add_parser("harden")
    sub.add_parser("lan-before")
    reload_parser = sub.add_parser("firewall-reload")
    reload_parser.add_argument("pre_file")
    sub.add_parser("verify")
    args = parser.parse_args(argv)
    if args.action == "snapshot":
        with open(args.file, "w", encoding="utf-8") as handle:
            json.dump(snapshot(), handle, indent=1, sort_keys=True)
        save_rules(args.file)
        print("kernel state of %s saved to %s" % (", ".join(ROUTERS), args.file))
        return 0
    if args.action == "compare":
        return compare(args.file_a, args.file_b)
    if args.action == "firewall-reload":
        return firewall_reload(args.pre_file)
    if args.action == "harden":
        harden()
        return 0
    if args.action == "lan-before":
        return lan_before()
    return verify()


if __name__ == "__main__":
    socket.setdefaulttimeout(60)
    sys.exit(main())
