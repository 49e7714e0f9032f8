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
