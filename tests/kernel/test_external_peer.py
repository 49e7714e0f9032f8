# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A peer outside the inventory (gre_router_peers entry as a mapping): router_b is set up by hand with `ip` commands
only, as the how-to does (standing in for a Cisco or MikroTik router); the role configures router_a alone. Keepalives
work both ways: router_a's sender sees its keepalives reflected by the hand-made peer, and router_a reflects the
peer's own (the sender program stands in for the Cisco's `keepalive 1 3`)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time

import pytest
import yaml

from support.keepalive import PROGRAM
from support.lab import ROOT, run_playbook, sh

pytestmark = pytest.mark.gre

PEER = {"name": "cisco-branch-b", "underlay_ip": "172.19.1.2", "lan_cidrs": ["20.10.1.0/24"],
        "tunnel_address": "192.168.8.1", "peer_tunnel_address": "192.168.8.11", "key": 42,
        "keepalive": {"period": 0.5, "retries": 3}}
TUNNEL = "gre-cisco--" + __import__("hashlib").sha1(b"cisco-branch-b").hexdigest()[:4]
HOWTO_PEER = """
ip tunnel add netb mode gre remote 172.19.1.1 local 172.19.1.2 key 42 ttl 255
ip link set netb up
ip addr add 192.168.8.11 peer 192.168.8.1 dev netb
ip route add 10.10.1.0/24 dev netb
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.ipv4.conf.netb.accept_local=1 net.ipv4.conf.netb.rp_filter=2
"""


def inventory(tmp_path, topo):
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "router_a.yml").write_text(yaml.safe_dump({
        "gre_router_underlay_ip": "172.19.1.1", "gre_router_lan_cidrs": ["10.10.1.0/24"], "gre_router_peers": [PEER]}))
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "overlay.gre.netns"}, "children": {
        "gre_routers": {"hosts": {"router_a": {"ansible_host": topo.ns("router_a")}}}}}}))
    return str(tmp_path / "hosts.yml")


def state(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def wait_up(path, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state(path).get("state") == "up" and state(path).get("received", 0) >= 2:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def shared_files_cleaned():
    """The keepalive program and state files the role puts in the lab's shared /usr and /run: removed afterwards when
    this test made them, so that later tests (the ipsec scenario compares files) find the lab as it was."""
    paths = ["/usr/local/sbin/overlay-gre-keepalive", "/run/overlay-gre/keepalive-%s.json" % TUNNEL]
    existed = [p for p in paths if os.path.exists(p)]
    yield
    for path in paths:
        if path not in existed and os.path.exists(path):
            os.remove(path)


def test_the_role_builds_our_side_against_a_peer_made_by_hand(howto_topology, tmp_path, shared_files_cleaned):
    topo = howto_topology
    a, b = topo.ns("router_a"), topo.ns("router_b")
    for line in HOWTO_PEER.strip().splitlines():
        sh(b, line)
    hosts = inventory(tmp_path, topo)
    site = os.path.join(ROOT, "playbooks", "site.yml")
    run = run_playbook(site, hosts)
    assert run.returncode == 0, run.output
    link = json.loads(sh(a, "ip -d -j link show dev %s" % TUNNEL).stdout)[0]
    data = link["linkinfo"]["info_data"]
    assert (data["local"], data["remote"], data["ikey"], data["okey"]) == ("172.19.1.1", "172.19.1.2", "0.0.0.42", "0.0.0.42")
    again = run_playbook(site, hosts)
    assert again.returncode == 0 and not [r for r in again.results if r["result"].get("changed")], again.output

    # router_a's keepalive sender, started as its unit would (the lab has no systemd): its keepalives come back
    unit = sh(a, "cat /etc/systemd/system/overlay-gre-keepalive@.service").stdout
    start = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")][0].replace("%i", TUNNEL)
    # the unit's program and configuration, run by this Python (the router's /usr/bin/python3 here has no pyroute2)
    ours = subprocess.Popen(["ip", "netns", "exec", a, sys.executable] + shlex.split(start)[1:], stdout=open(tmp_path / "a.log", "w"),
                            stderr=subprocess.STDOUT)
    theirs = None
    try:
        assert wait_up("/run/overlay-gre/keepalive-%s.json" % TUNNEL), (tmp_path / "a.log").read_text()
        # the peer's LAN is routed through the tunnel once the sender saw the peer: host_a reaches host_b
        assert any(r.get("dev") == TUNNEL for r in json.loads(sh(a, "ip -j route show 20.10.1.0/24").stdout))
        assert sh(topo.ns("host_a"), "ping -n -c 2 -i 0.2 -W 2 20.10.1.10").returncode == 0
        # the peer's keepalives (as a Cisco sends them), reflected by router_a through the role's rules and settings
        config = tmp_path / "peer.json"
        config.write_text(json.dumps({"tunnel": "netb", "local": "172.19.1.2", "remote": "172.19.1.1", "key": 42,
                                      "period": 0.5, "retries": 3, "routes": [], "state_file": str(tmp_path / "peer-state.json")}))
        theirs = subprocess.Popen(["ip", "netns", "exec", b, sys.executable, PROGRAM, "--config", str(config)],
                                  stdout=open(tmp_path / "b.log", "w"), stderr=subprocess.STDOUT)
        assert wait_up(str(tmp_path / "peer-state.json")), (tmp_path / "b.log").read_text()
    finally:
        for proc in (ours, theirs):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=20)
