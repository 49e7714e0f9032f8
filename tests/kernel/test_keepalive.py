# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's keepalive sender (roles/gre_router/files/overlay-gre-keepalive) against real GRE tunnels.

Two namespaces, A and B, joined by an underlay link and a backup link; keyed (or unkeyed) GRE tunnels made by hand;
the sender runs in A, B only reflects. These are the kernel facts the role relies on, found by experiment here.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from support.keepalive import PROGRAM
from support.lab import sh

pytestmark = pytest.mark.gre

A_UNDER, B_UNDER = "172.19.1.1", "172.19.1.2"
PEER_LAN = "20.10.1.0/24"
BREAK = "iptables -I INPUT 1 -i ub -p gre -j DROP"
REPAIR = "iptables -D INPUT -i ub -p gre -j DROP"


@pytest.fixture
def pair(netns_factory):
    """(A, B): underlay ua/ub, backup link ka/kb with a route to PEER_LAN at metric 100 in A, tunnels 'gt'."""
    a, b = netns_factory("ka"), netns_factory("kb")
    sh(a, "ip link add ua type veth peer ub netns %s && ip link add ka type veth peer kb netns %s" % (b, b))
    sh(a, "ip addr add %s/24 dev ua && ip link set ua up && ip addr add 192.168.99.1/30 dev ka && ip link set ka up" % A_UNDER)
    sh(b, "ip addr add %s/24 dev ub && ip link set ub up && ip addr add 192.168.99.2/30 dev kb && ip link set kb up" % B_UNDER)
    sh(b, "ip addr add 20.10.1.1/24 dev kb && sysctl -qw net.ipv4.ip_forward=1")
    sh(a, "ip route add %s via 192.168.99.2 metric 100" % PEER_LAN)
    return a, b


def tunnels(a, b, key=42):
    keyed = "key %d" % key if key is not None else ""
    sh(a, "ip link add gt type gre local %s remote %s %s ttl 64 && ip link set gt up" % (A_UNDER, B_UNDER, keyed))
    sh(b, "ip link add gt type gre local %s remote %s %s ttl 64 && ip link set gt up" % (B_UNDER, A_UNDER, keyed))
    sh(a, "ip addr add 192.168.8.1/30 dev gt")
    sh(b, "ip addr add 192.168.8.2/30 dev gt")


def reflect(b):
    sh(b, "sysctl -qw net.ipv4.conf.gt.accept_local=1 net.ipv4.conf.gt.rp_filter=2")


class Sender(object):
    def __init__(self, ns, tmp_path, key=42, period=0.3, retries=3, routes=(PEER_LAN,)):
        self.ns, self.period, self.retries = ns, period, retries
        self.state_file = str(tmp_path / "state.json")
        self.config = tmp_path / "keepalive.json"
        self.config.write_text(json.dumps({"tunnel": "gt", "local": A_UNDER, "remote": B_UNDER, "key": key, "period": period,
                                           "retries": retries, "routes": list(routes), "state_file": self.state_file}))
        self.log = tmp_path / "keepalive.log"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, PROGRAM, "--config", str(self.config)],
                                     stdout=open(self.log, "a", encoding="utf-8"), stderr=subprocess.STDOUT)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)

    def state(self):
        try:
            with open(self.state_file, encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def wait(self, state, timeout):
        """Seconds until the state file says STATE (from the call), or fail after TIMEOUT."""
        begin = time.monotonic()
        while time.monotonic() - begin < timeout:
            if self.state().get("state") == state:
                return time.monotonic() - begin
            time.sleep(0.02)
        raise AssertionError("not %s after %.1fs: %s; log: %s" % (state, timeout, self.state(), self.log.read_text()))

    def lines(self):
        return self.log.read_text().splitlines()


@pytest.fixture
def sender_factory(tmp_path):
    made = []

    def make(*args, **kwargs):
        sender = Sender(*args, **kwargs)
        made.append(sender)
        return sender

    yield make
    for sender in made:
        sender.stop()


def tunnel_routes(ns):
    return [r["dst"] for r in json.loads(sh(ns, "ip -j route show dev gt").stdout or "[]") if r.get("protocol") != "kernel"]


def route_dev(ns, address):
    return json.loads(sh(ns, "ip -j route get %s" % address).stdout)[0]["dev"]


def icmp_counters(ns):
    names, values = [line.split()[1:] for line in sh(ns, "cat /proc/net/snmp").stdout.splitlines() if line.startswith("Icmp:")]
    return dict(zip(names, map(int, values)))


def started_and_up(sender):
    sender.start()
    sender.wait("up", 15)
    deadline = time.monotonic() + 15
    while sender.state().get("received", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sender.state()["received"] >= 1, sender.state()


@pytest.mark.parametrize("key", [42, None], ids=["keyed", "unkeyed"])
def test_failover_to_the_backup_route_and_back(pair, sender_factory, tmp_path, key):
    a, b = pair
    tunnels(a, b, key=key)
    reflect(b)
    sender = sender_factory(a, tmp_path, key=key)
    started_and_up(sender)
    assert tunnel_routes(a) == [PEER_LAN] and route_dev(a, "20.10.1.1") == "gt"

    sh(b, BREAK)
    took = sender.wait("down", 10)
    bound = sender.period * (sender.retries + 1)
    assert took <= bound + 0.5, (took, bound)
    assert tunnel_routes(a) == [] and route_dev(a, "20.10.1.1") == "ka"  # the backup route carries the traffic
    sent = sender.state()["sent"]
    time.sleep(sender.period * 2)
    assert sender.state()["sent"] >= sent + 1  # it goes on sending while down

    sh(b, REPAIR)
    took = sender.wait("up", 5)
    assert took <= 2 * sender.period + 0.5
    time.sleep(0.2)
    assert tunnel_routes(a) == [PEER_LAN] and route_dev(a, "20.10.1.1") == "gt"
    assert "down: 3 keepalives missed" in sender.lines() and "up" in sender.lines()
    # the reply matched A's own tunnel (the inner header carries the key): A answered with no ICMP unreachable
    assert icmp_counters(a)["OutDestUnreachs"] == 0


def test_what_the_reflecting_kernel_needs(pair, sender_factory, tmp_path):
    """accept_local on the tunnel (the inner packet's source is the reflector's own address), reverse-path filtering
    not strict on it (loose passes, whatever net.ipv4.conf.all.rp_filter says, as the effective value is the higher
    one; but any filtering fails on a tunnel without an IPv4 address), forwarding on, and FORWARD accepting the packet
    when its policy is DROP."""
    a, b = pair
    tunnels(a, b)
    sender = sender_factory(a, tmp_path, period=0.2, retries=2)
    sender.start()
    sender.wait("down", 15)  # B as it comes: accept_local 0, the decapsulated keepalive is a martian
    steps = [
        ("net.ipv4.conf.gt.accept_local=1", "up"),
        ("net.ipv4.conf.gt.rp_filter=1", "down"),   # strict: the source is not reachable through gt
        ("net.ipv4.conf.gt.rp_filter=2", "up"),     # loose
        ("net.ipv4.conf.all.rp_filter=1", "up"),    # max(all=1, gt=2) is 2, loose
        ("net.ipv4.conf.gt.rp_filter=0", "down"),   # max(all=1, gt=0) is 1, strict
        ("net.ipv4.conf.all.rp_filter=0", "up"),
        ("net.ipv4.ip_forward=0", "down"),
        ("net.ipv4.ip_forward=1", "up"),
    ]
    for setting, expected in steps:
        sh(b, "sysctl -qw %s" % setting)
        sender.wait(expected, 10)
    sh(b, "iptables -P FORWARD DROP")
    sender.wait("down", 10)
    # the rule overlay.gre.tunnel_firewall makes with reflect_keepalives
    sh(b, "iptables -A FORWARD -d %s/32 -i gt -p gre -j ACCEPT" % A_UNDER)
    sender.wait("up", 10)
    # reverse-path filtering, even loose, rejects every source arriving on an interface without an IPv4 address
    sh(b, "ip addr flush dev gt && sysctl -qw net.ipv4.conf.gt.rp_filter=2")
    sender.wait("down", 10)
    sh(b, "sysctl -qw net.ipv4.conf.gt.rp_filter=0")
    sender.wait("up", 10)


def test_it_owns_the_routes_while_it_runs(pair, sender_factory, tmp_path):
    """Routes come back after the tunnel is re-created, a restart while down keeps them away, a stale one goes."""
    a, b = pair
    tunnels(a, b)
    reflect(b)
    sh(a, "ip route add 30.0.0.0/8 dev gt")  # configured once, not any more
    sender = sender_factory(a, tmp_path)
    started_and_up(sender)
    time.sleep(sender.period * 2)
    assert tunnel_routes(a) == [PEER_LAN]

    sh(a, "ip link del gt")
    sh(a, "ip link add gt type gre local %s remote %s key 42 ttl 64 && ip link set gt up" % (A_UNDER, B_UNDER))
    sh(a, "ip addr add 192.168.8.1/30 dev gt")
    deadline = time.monotonic() + 5
    while tunnel_routes(a) != [PEER_LAN] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tunnel_routes(a) == [PEER_LAN]

    sh(b, BREAK)
    sender.wait("down", 10)
    sender.stop()
    sh(a, "ip route add %s dev gt" % PEER_LAN)  # an Ansible run of the past, say
    restarted = sender_factory(a, tmp_path).start()
    time.sleep(0.5)
    deadline = time.monotonic() + 15
    while tunnel_routes(a) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert restarted.state()["state"] == "down" and tunnel_routes(a) == []
    sh(b, REPAIR)
    restarted.wait("up", 5)


def test_a_signal_stops_it_at_once(pair, sender_factory, tmp_path):
    a, b = pair
    tunnels(a, b)
    reflect(b)
    sender = sender_factory(a, tmp_path, period=30)
    sender.start()
    deadline = time.monotonic() + 15
    while not sender.state().get("sent") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sender.state()["sent"] == 1
    begin = time.monotonic()
    sender.stop()  # a second after the first keepalive, 29 before the next
    assert time.monotonic() - begin < 3 and sender.proc.returncode == 0
    assert sender.lines()[-1] == "stopped"
