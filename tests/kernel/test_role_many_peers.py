# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role with many peers per router, on the hub topology (lab/topologies/hub.yml): a pair whose underlay does not
answer is held (left as it is) and fails alone, while the router's other pairs are built."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
import yaml

from support.lab import ROOT, new_netns_name, run_playbook, sh

pytestmark = pytest.mark.gre


@pytest.fixture
def hub_topology():
    import topology  # lab/topology.py

    topo = topology.Topology.load(os.path.join(ROOT, "lab", "topologies", "hub.yml"), prefix=new_netns_name("m") + "-")
    topo.up()
    try:
        yield topo
    finally:
        topo.down()


def inventory(tmp_path, topo):
    shutil.copytree(os.path.join(ROOT, "inventories", "hub", "host_vars"), tmp_path / "host_vars")
    with open(os.path.join(ROOT, "inventories", "hub", "hosts.yml"), encoding="utf-8") as handle:
        hosts = yaml.safe_load(handle)
    routers = hosts["all"]["children"]["gre_routers"]
    for name in routers["hosts"]:
        routers["hosts"][name] = {"ansible_host": topo.ns(name)}
    hosts["all"]["vars"] = {"ansible_connection": "overlay.gre.netns"}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return str(tmp_path / "hosts.yml")


def tunnels(topo, router):
    return sorted(link["ifname"] for link in json.loads(sh(topo.ns(router), "ip -j link show type gre").stdout)
                  if link["ifname"] != "gre0")


def test_a_pair_whose_underlay_does_not_answer_is_held_and_the_others_are_built(hub_topology, tmp_path):
    topo = hub_topology
    hosts = inventory(tmp_path, topo)
    site = os.path.join(ROOT, "playbooks", "site.yml")
    sh(topo.ns("spoke3"), "ip link set wan0 down")
    run = run_playbook(site, hosts)
    assert run.returncode != 0, run.output
    assert "The underlay between hub (172.19.0.1) and spoke3 (172.19.0.3) does not carry traffic" in run.output, run.output
    assert "The underlay between spoke3 (172.19.0.3) and hub (172.19.0.1) does not carry traffic" in run.output, run.output
    # the hub built its two other pairs (and failed at the end for the held one); spoke3 changed nothing
    assert tunnels(topo, "hub") == ["gre-spoke2", "gre-spoke4"]
    assert tunnels(topo, "spoke3") == [] and tunnels(topo, "spoke2") == ["gre-hub"]
    failed = sorted(r["host"] for r in run.results if r["status"] == "failed")
    assert failed == ["hub", "spoke3"], failed
    assert sh(topo.ns("host2"), "ping -n -c 2 -i 0.2 -W 2 10.4.0.10").returncode == 0  # spoke to spoke, through the hub
    # the held pair does not keep the healthy ones out of the hub's boot data; it has nothing of its own there yet
    assert boot_links(topo, "hub") == ["gre-spoke2", "gre-spoke4"]
    sh(topo.ns("spoke3"), "ip link set wan0 up")
    again = run_playbook(site, hosts)
    assert again.returncode == 0, again.output
    assert tunnels(topo, "hub") == ["gre-spoke2", "gre-spoke3", "gre-spoke4"]
    assert boot_links(topo, "hub") == ["gre-spoke2", "gre-spoke3", "gre-spoke4"]
    assert sh(topo.ns("host3"), "ping -n -c 2 -i 0.2 -W 2 10.2.0.10").returncode == 0
    # spoke3 down again while the hub's other pairs change (spoke2's tunnel gets another MTU): spoke3's entries of the
    # boot data stay exactly as the last run wrote them, spoke2's follow the change
    before = boot_entries(topo, "hub", "gre-spoke3")
    sh(topo.ns("spoke3"), "ip link set wan0 down")
    held = run_playbook(site, hosts, extra_vars={"gre_router_mtu": 1400})
    assert held.returncode != 0 and "The underlay between hub (172.19.0.1) and spoke3" in held.output, held.output
    assert boot_entries(topo, "hub", "gre-spoke3") == before
    assert "1400" in json.dumps(boot_entries(topo, "hub", "gre-spoke2")["links"])
    assert "1400" not in json.dumps(before["links"])


def boot_data(topo, router):
    return json.loads(sh(topo.ns(router), "cat /etc/overlay-gre/boot/tunnels.json").stdout)


def boot_links(topo, router):
    return sorted(link["name"] for link in boot_data(topo, router)["links"])


def boot_entries(topo, router, tunnel):
    """TUNNEL's entries of ROUTER's boot data: its link, its chains, its settings."""
    data = boot_data(topo, router)
    return {"links": [link for link in data["links"] if link["name"] == tunnel],
            "chains": [chain for chain in data["chains"] if chain["chain"].endswith("-" + tunnel)],
            "settings": [entry for entry in data["settings"] if "/%s/" % tunnel in entry["path"]]}


def test_serial_builds_the_routers_in_batches_and_checks_each_pair_once_both_ends_ran(hub_topology, tmp_path):
    """`serial:`, the usual rolling change of routers, here two at a time: the hub and spoke2 first (their pair is
    checked as in any run), then spoke3 and spoke4. The hub's pairs with those two are checked when they run (each
    pings the hub's end, built by then); a second rolling run changes nothing."""
    topo = hub_topology
    hosts = inventory(tmp_path, topo)
    play = tmp_path / "serial.yml"
    play.write_text(yaml.safe_dump([{"name": "GRE routers, two at a time", "hosts": "gre_routers", "serial": 2,
                                     "gather_facts": False, "roles": [{"role": "overlay.gre.gre_router"}]}]), encoding="utf-8")
    run = run_playbook(str(play), hosts)
    assert run.returncode == 0, run.output
    verdicts = dict((r["host"], r["result"].get("msg", "")) for r in run.results
                    if "Fail the pairs whose tunnels do not carry pings both ways" in r["task"] and r["status"] == "ok")
    assert sorted(verdicts) == ["hub", "spoke2", "spoke3", "spoke4"], verdicts
    assert "hub: spoke2's tunnel address" in verdicts["hub"], verdicts
    for spoke in ("spoke3", "spoke4"):
        assert ("hub: %s runs in a later batch of this play (serial), so its end of gre-%s is not built yet" % (spoke, spoke)
                in verdicts["hub"]), verdicts
    for spoke in ("spoke2", "spoke3", "spoke4"):
        assert verdicts[spoke].startswith("%s: hub's tunnel address" % spoke), verdicts
        assert tunnels(topo, spoke) == ["gre-hub"]
    assert tunnels(topo, "hub") == ["gre-spoke2", "gre-spoke3", "gre-spoke4"]
    again = run_playbook(str(play), hosts)
    assert again.returncode == 0, again.output
    recap = dict((host, int(changed)) for host, changed in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", again.output, re.M))
    assert recap == {"hub": 0, "spoke2": 0, "spoke3": 0, "spoke4": 0}, again.output
