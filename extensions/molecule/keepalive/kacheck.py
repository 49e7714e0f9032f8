#!/usr/bin/env python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of the keepalive scenario, against the lab's namespaces (lab/topologies/keepalive.yml).

    kacheck.py open-backup     accept forwarding through the backup path (eth2) on both routers
    kacheck.py verify --period P --retries R --logs DIR
                               start both senders as the unit's ExecStart would (the lab has no systemd), then:
                               both up; break (GRE dropped on router_b's underlay): router_a down and its routes
                               withdrawn within P*R+P, host_a's traffic on the backup path; restore: up within 2P,
                               routes back; the same with router_b only reflecting. One line a check; exit 1 on failure
    kacheck.py stop            stop any sender this script started (destroy runs it)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time

ROUTERS = {"router_a": "gre-router_b", "router_b": "gre-router_a"}
PEER_LAN = {"router_a": "20.10.1.0/24", "router_b": "10.10.1.0/24"}
UNIT = "/etc/systemd/system/overlay-gre-keepalive@.service"
PIDS = "/run/overlay-gre/kacheck-pids.json"
BREAK = ["-i", "bond0", "-p", "gre", "-m", "comment", "--comment", "lab: path broken", "-j", "DROP"]
SLACK = 0.5  # seconds on top of the bounds: the lab's single slow CPU schedules the sender late at times


def run(ns, *cmd, check=True):
    proc = subprocess.run(["ip", "netns", "exec", ns] + list(cmd), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("in %s, %s failed: %s" % (ns, " ".join(cmd), proc.stderr.strip()))
    return proc


def open_backup():
    for ns in ROUTERS:
        for direction in ("-i", "-o"):
            run(ns, "iptables", "-A", "FORWARD", direction, "eth2", "-m", "comment", "--comment", "lab: backup path",
                "-j", "ACCEPT")
    print("backup path eth2 open for forwarding on both routers")


def state_file(ns):
    return "/run/overlay-gre/keepalive-%s.json" % ROUTERS[ns]


def read_state(ns):
    try:
        with open(state_file(ns), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def exec_start(ns, tunnel):
    """The unit's ExecStart, for this tunnel, as an argv; read as the router sees its own /etc (ip netns exec)."""
    unit = subprocess.run(["ip", "netns", "exec", ns, "cat", UNIT], capture_output=True, text=True, check=True).stdout
    for line in unit.splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line.split("=", 1)[1].replace("%i", tunnel))
    raise RuntimeError("no ExecStart in %s of %s" % (UNIT, ns))


def start(ns, logs):
    log = open(os.path.join(logs, "keepalive-%s.log" % ns), "a", encoding="utf-8")
    proc = subprocess.Popen(["ip", "netns", "exec", ns] + exec_start(ns, ROUTERS[ns]), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    pids = _pids()
    pids[ns] = proc.pid
    _save_pids(pids)
    return proc


def _pids():
    try:
        with open(PIDS, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def _save_pids(pids):
    os.makedirs(os.path.dirname(PIDS), exist_ok=True)
    with open(PIDS, "w", encoding="utf-8") as handle:
        json.dump(pids, handle)


def stop(ns=None):
    pids = _pids()
    for name in list(pids):
        if ns is None or name == ns:
            try:
                os.kill(pids.pop(name), signal.SIGTERM)
            except ProcessLookupError:
                pass
    _save_pids(pids)


def wait_for(predicate, timeout, step=0.05):
    """Poll PREDICATE until true; returns the seconds it took, or None after TIMEOUT."""
    begin = time.monotonic()
    while time.monotonic() - begin < timeout:
        if predicate():
            return time.monotonic() - begin
        time.sleep(step)
    return None


def tunnel_routes(ns):
    routes = json.loads(run(ns, "ip", "-j", "route", "show", PEER_LAN[ns]).stdout or "[]")
    return [r for r in routes if r.get("dev") == ROUTERS[ns]]


def route_dev(ns, address):
    return json.loads(run(ns, "ip", "-j", "route", "get", address).stdout)[0]["dev"]


def tx_packets(ns, dev):
    return json.loads(run(ns, "ip", "-s", "-j", "link", "show", "dev", dev).stdout)[0]["stats64"]["tx"]["packets"]


def ping(src, dst):
    return run(src, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", dst, check=False).returncode == 0


def verify(period, retries, logs):
    results = []

    def check(name, ok, detail=""):
        results.append(bool(ok))
        print("%s: %s%s" % ("ok" if ok else "FAIL", name, (" (%s)" % detail) if detail else ""), flush=True)
        return ok

    down_bound = period * retries + period
    up_bound = 2 * period

    def traffic_path(label, expect_dev):
        before = {dev: tx_packets("router_a", dev) for dev in ("eth2", ROUTERS["router_a"])}
        reached = ping("host_a", "20.10.1.10")
        after = {dev: tx_packets("router_a", dev) for dev in before}
        used = [dev for dev in before if after[dev] - before[dev] >= 2]
        check("%s: host_a reaches host_b through router_a's %s" % (label, expect_dev),
              reached and expect_dev in used and route_dev("router_a", "20.10.1.10") == expect_dev,
              "ping %s, tx packets %s -> %s" % ("ok" if reached else "failed", before, after))

    def break_and_restore(label, both_send):
        run("router_b", "iptables", "-I", "INPUT", "1", *BREAK)
        broken = time.time()
        took = wait_for(lambda: read_state("router_a").get("state") == "down", down_bound + 5)
        st = read_state("router_a")
        detected = (st.get("last_change") or broken) - broken
        check("%s: router_a declares the tunnel down within period*retries+period = %gs" % (label, down_bound),
              took is not None and detected <= down_bound + SLACK, "after %.2fs, misses %s" % (detected, st.get("misses")))
        check("%s: router_a withdrew its routes through the tunnel" % label,
              wait_for(lambda: not tunnel_routes("router_a"), 2) is not None)
        if both_send:
            check("%s: router_b, sending too, declares it down as well" % label,
                  wait_for(lambda: read_state("router_b").get("state") == "down", down_bound + 5) is not None)
        traffic_path(label + ", broken", "eth2")
        run("router_b", "iptables", "-D", "INPUT", *BREAK)
        restored = time.time()
        took = wait_for(lambda: read_state("router_a").get("state") == "up", up_bound + 5)
        st = read_state("router_a")
        back = (st.get("last_change") or restored) - restored
        check("%s: router_a declares it up within two periods (%gs) of the repair" % (label, up_bound),
              took is not None and back <= up_bound + SLACK, "after %.2fs" % back)
        check("%s: router_a's routes through the tunnel are back" % label,
              wait_for(lambda: bool(tunnel_routes("router_a")), 2) is not None)
        if both_send:
            check("%s: router_b is up again" % label,
                  wait_for(lambda: read_state("router_b").get("state") == "up", up_bound + 5) is not None)
        traffic_path(label + ", repaired", ROUTERS["router_a"])

    for ns in ROUTERS:
        if os.path.exists(state_file(ns)):
            os.unlink(state_file(ns))
        start(ns, logs)
    try:
        for ns in ROUTERS:
            took = wait_for(lambda ns=ns: read_state(ns).get("received", 0) >= 1 and read_state(ns).get("state") == "up", 20)
            st = read_state(ns)
            check("%s sends keepalives and sees its peer up" % ns, took is not None,
                  "state %s, sent %s, received %s" % (st.get("state"), st.get("sent"), st.get("received")))
            check("%s's sender put the routes through the tunnel in place" % ns,
                  wait_for(lambda ns=ns: bool(tunnel_routes(ns)), 3) is not None)
        traffic_path("both up", ROUTERS["router_a"])
        break_and_restore("both sending", both_send=True)

        stop("router_b")
        time.sleep(period * (retries + 1))
        st = read_state("router_a")
        check("one-sided: router_b only reflects, router_a still sees the tunnel up", st.get("state") == "up",
              "state %s, misses %s" % (st.get("state"), st.get("misses")))
        break_and_restore("one-sided", both_send=False)
    finally:
        stop()
        time.sleep(0.5)
    for ns in ROUTERS:
        with open(os.path.join(logs, "keepalive-%s.log" % ns), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        check("%s's log says \"down: %d keepalives missed\" and \"up\"" % (ns, retries),
              "down: %d keepalives missed" % retries in lines and "up" in lines, "; ".join(lines[-6:]))
    print("verify: %d passed, %d failed" % (results.count(True), results.count(False)))
    return 0 if all(results) else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("open-backup")
    sub.add_parser("stop")
    ver = sub.add_parser("verify")
    ver.add_argument("--period", type=float, required=True)
    ver.add_argument("--retries", type=int, required=True)
    ver.add_argument("--logs", required=True)
    args = parser.parse_args(argv)
    if args.action == "open-backup":
        open_backup()
        return 0
    if args.action == "stop":
        stop()
        return 0
    return verify(args.period, args.retries, args.logs)


if __name__ == "__main__":
    sys.exit(main())
