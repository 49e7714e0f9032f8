# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/site.yml refuses a bad inventory before any change, naming the host and the variable.

The pair check runs on the controller before any task reaches a router, so these tests need no GRE: they run
on the host's kernel, against the how-to's topology in namespaces, and check that nothing changed there.
"""

from __future__ import annotations

import json
import os

import pytest
import yaml

from support.lab import ROOT, howto_inventory, ip_json, run_playbook, sh


def _state(topo):
    out = {}
    for host in ("router_a", "router_b"):
        ns = topo.ns(host)
        out[host] = (ip_json(ns, "-d", "link"), _stable_addresses(ip_json(ns, "addr")), ip_json(ns, "route", "show", "table", "all"),
                     [line for line in sh(ns, "iptables-save").stdout.splitlines() if not line.startswith("#")], sh(ns, "sysctl -n net.ipv4.ip_forward").stdout)
    return json.dumps(out, sort_keys=True)


def _stable_addresses(links):
    """Addresses without IPv6 link-local ones, whose duplicate address detection goes on in the background."""
    for link in links:
        link["addr_info"] = [a for a in link.get("addr_info", []) if not (a["family"] == "inet6" and a["scope"] == "link")]
    return links


CASES = {
    "peer missing": ({"router_a": {"gre_router_peer": "router_c"}},
                     ["router_a: gre_router_peer names 'router_c', which is not a host of this inventory"]),
    "peer not pointing back": ({"router_b": {"gre_router_peer": "router_c"},
                                "extra_hosts": {"router_c": {"ansible_host": "ogt-nowhere", "gre_router_peer": "router_b"}}},
                               ["router_b: gre_router_peer is 'router_c', but router_a names router_b as its peer"]),
    "key mismatch": ({"router_b": {"gre_router_key": 43}},
                     ["router_a: gre_router_key is 42 on router_a but 43 on its peer router_b",
                      "router_b: gre_router_key is 43 on router_b but 42 on its peer router_a"]),
    "overlapping LANs": ({"router_b": {"gre_router_lan_cidrs": ["10.10.0.0/16"]}},
                         ["router_a: gre_router_lan_cidrs has 10.10.1.0/24, which overlaps 10.10.0.0/16 of router_b's",
                          "router_b: gre_router_lan_cidrs has 10.10.0.0/16, which overlaps 10.10.1.0/24 of router_a's"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_inventory_fails_before_any_change(howto_topology, tmp_path, case):
    changes, messages = CASES[case]
    inventory = howto_inventory(tmp_path, howto_topology, changes)
    before = _state(howto_topology)
    run = run_playbook(os.path.join(ROOT, "playbooks", "site.yml"), inventory)
    assert run.returncode != 0, run.output
    for message in messages:
        assert message in run.output, run.output
    # no task after the check ran on any router, and the kernel state is as it was
    assert not [r for r in run.results if r["task"].startswith(("Bring up", "Enable IP", "Accept GRE", "Masquerade"))]
    assert _state(howto_topology) == before


def test_play_variables_and_role_parameters_count_on_both_ends(howto_topology, tmp_path):
    """Settings given by the play (vars:) or as role parameters reach each router's own run, not its peer's hostvars:
    both ends are compared through what each router's run sees, so a playbook that sets them for both agrees with
    itself (before 0.4.0: "gre_router_key is 77 on router_a but 42 on its peer router_b"). Check mode: nothing changes."""
    inventory = howto_inventory(tmp_path, howto_topology)
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "name": "GRE routers, some settings from the play",
        "hosts": "gre_routers",
        "gather_facts": False,
        "vars": {"gre_router_key": 77},
        "roles": [{"role": "overlay.gre.gre_router", "gre_router_tunnel_cidr": "192.168.9.0/30"}],
    }]))
    before = _state(howto_topology)
    run = run_playbook(str(play), inventory, check=True, diff=True)
    assert run.returncode == 0, run.output
    assert "must agree" not in run.output and "on its peer" not in run.output, run.output
    views = {}
    for result in run.results:
        if result["action"] == "overlay.gre.gre_tunnel":
            views[result["host"]] = result["result"]["tunnels"]
    assert sorted(views) == ["router_a", "router_b"], run.output
    for host, tunnels in views.items():
        assert [(str(t["ikey"]), str(t["okey"])) for t in tunnels] == [("77", "77")], (host, tunnels)
        assert "192.168.9." in json.dumps(tunnels), (host, tunnels)
    assert _state(howto_topology) == before


def test_the_underlay_check_can_probe_a_tcp_port_instead_of_icmp(howto_topology, tmp_path):
    """gre_router_preflight_port: the check before the change probes a TCP port of the peer's underlay address, for
    underlays that drop ICMP. A reset (nothing listens on the port) is an answer; a port whose packets are dropped is
    none, and the pair is held before any change. Check mode: nothing changes."""
    topo = howto_topology
    inventory = howto_inventory(tmp_path, topo, {"router_a": {"gre_router_preflight_port": 22},
                                                 "router_b": {"gre_router_preflight_port": 22}})
    site = os.path.join(ROOT, "playbooks", "site.yml")
    for router in ("router_a", "router_b"):  # ICMP dropped both ways: only the TCP probe can answer
        sh(topo.ns(router), "iptables -I INPUT -p icmp -j DROP")
    before = _state(topo)
    run = run_playbook(site, inventory, check=True)
    assert run.returncode == 0, run.output
    said = " ".join(str(r["result"].get("msg")) for r in run.results if "Stop unless each pair's underlay" in r["task"])
    assert "router_a (172.19.1.1) -> router_b (172.19.1.2): answered: TCP port 22 (refused: the peer's kernel answered" \
        in said, said
    assert _state(topo) == before
    sh(topo.ns("router_b"), "iptables -I INPUT -p tcp --dport 22 -j DROP")
    before = _state(topo)
    held = run_playbook(site, inventory, check=True)
    assert held.returncode != 0
    said = " ".join(str(r["result"].get("msg")) for r in held.results if r["status"] == "failed")
    assert ("router_a -> 172.19.1.2: no answer: no TCP answer from port 22 within 2 s. router_b -> 172.19.1.1: answered: "
            "TCP port 22 (refused") in said, said
    assert _state(topo) == before
