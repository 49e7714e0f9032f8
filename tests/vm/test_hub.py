# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A hub with three spokes on real routers (lab/topologies/hub.yml, the sites of inventories/hub): every LAN host
reaches every other one, spoke to spoke through the hub (gre_router_transit); a spoke removed from the inventory
leaves every other tunnel as it was; added back while another spoke is cut off, it is built and kept for boot beside
the held pair; a real reboot brings it all back; absent leaves each router as before.

The tests of this module run in order on one lab (each step builds on the one before), as a user's session would.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from support.vmlab import (converged, kernel_state, lab_name, no_failed_unit, nothing_of_ours_left, playbook, reboot_routers,
                           recap, units_of_ours)
from support.vmsites import Sites, boot_inventory, every_pair_reaches, snapshot, without

pytestmark = pytest.mark.vm

LAB = lab_name("hub")
TOPOLOGY = "lab/topologies/hub.yml"
SITES = Sites(TOPOLOGY)
ROUTERS = tuple(sorted(SITES.routers))
STATE = {}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from boot_inventory(LAB, tmp_path_factory.mktemp("inventory"), TOPOLOGY, "hub")


def edit_host_vars(lab, host, **settings):
    """Change HOST's host_vars in the test's inventory, as a user edits the file."""
    path = lab.host_vars / ("%s.yml" % host)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.update(settings)
    path.write_text("---\n" + yaml.safe_dump(data), encoding="utf-8")


def test_converge_joins_every_site_spoke_to_spoke_through_the_hub(lab):
    STATE["before"] = {router: kernel_state(lab, router) for router in ROUTERS}
    # nothing routes one site to another yet
    assert len(every_pair_reaches(lab, SITES, hub="hub", only=("host1", "host2"))) == 2
    converged(playbook(lab), changed=True)
    assert every_pair_reaches(lab, SITES, hub="hub") == []
    for router in ROUTERS:
        no_failed_unit(lab, router)
        for unit in ("overlay-gre@tunnels.service", "overlay-gre-guard@tunnels.service"):
            active = lab.run(router, ["systemctl", "is-active", unit]).stdout.strip()
            assert active == "active", "%s: %s is %s" % (router, unit, active)


def test_a_second_run_changes_nothing(lab):
    converged(playbook(lab), changed=False)
    STATE["converged"] = snapshot(lab, ROUTERS)


def test_a_spoke_removed_leaves_every_other_tunnel_as_it_was(lab):
    edit_host_vars(lab, "spoke4", gre_router_state="absent")
    edit_host_vars(lab, "hub", gre_router_peers=["spoke2", "spoke3"])
    proc = playbook(lab)
    converged(proc, changed=True)
    after = snapshot(lab, ROUTERS)
    assert after["spoke4"]["links"] == {}, after["spoke4"]["links"]
    assert sorted(after["hub"]["links"]) == ["gre-spoke2", "gre-spoke3"]
    # the other tunnels are the same ones (ifindex included), with the same addresses, routes and rules, but for
    # the routes and rules that named spoke4's LAN
    gone = {"routers": ("spoke4",), "tunnels": ("gre-spoke4",), "lans": (SITES.lan("spoke4"),)}
    assert without(after, **gone) == without(STATE["converged"], **gone)
    assert every_pair_reaches(lab, SITES, hub="hub", only=("host1", "host2", "host3")) == []
    assert units_of_ours(lab, "spoke4") == {}


def boot_links(lab, router):
    """The tunnels in ROUTER's boot data (what overlay-gre@tunnels.service makes at boot)."""
    data = json.loads(lab.run(router, ["cat", "/etc/overlay-gre/boot/tunnels.json"], check=True).stdout)
    return sorted(link["name"] for link in data.get("links") or [])


JUMP = re.compile(r"^\w+ -A (INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) .*-j OGRE-")


def jumps_in_any_order(state):
    """STATE (kernel_state()) with the jumps from the built-in chains to the tunnels' own chains in any order among
    themselves (each chain matches only its own tunnel's traffic), each where it stands among the other rules: a held
    pair's chains, kept from the last run's boot data, are jumped to ahead of the others at the next boot."""
    rules = state["rules"]
    return dict(state, rules=["jump" if JUMP.match(rule) else rule for rule in rules],
                jumps=sorted(rule for rule in rules if JUMP.match(rule)))


def test_the_spoke_added_back_while_another_is_cut_off_is_built_and_kept_for_boot(lab):
    """spoke4 back in the inventory while spoke3's underlay is cut: the hub holds its pair with spoke3 exactly as it
    was and fails for it, but builds spoke4's, changes no other tunnel, and keeps both in its boot data: a real reboot
    of the hub, spoke3 still cut off, brings back every tunnel, the held one included."""
    edit_host_vars(lab, "spoke4", gre_router_state="present")
    edit_host_vars(lab, "hub", gre_router_peers=["spoke2", "spoke3", "spoke4"])
    lab.set_wire("spoke3", "wan0", "down")
    try:
        proc = playbook(lab)
        counts = recap(proc)
        assert proc.returncode != 0 and counts["hub"]["failed"] == 1 and counts["spoke3"]["failed"] == 1, counts
        assert counts["spoke2"]["failed"] == 0 and counts["spoke4"]["failed"] == 0 and counts["spoke4"]["changed"] > 0, counts
        assert "The underlay between hub (172.19.0.1) and spoke3 (172.19.0.3) does not carry traffic" in proc.stdout
        # every other tunnel as it was (the held one too: its chain on the hub does not list spoke4's LAN yet)
        back = snapshot(lab, ROUTERS)
        kept = {"routers": ("spoke4",), "tunnels": ("gre-spoke4",), "lans": (SITES.lan("spoke4"),), "rules_as_set": True}
        assert without(back, **kept) == without(STATE["converged"], **kept)
        assert every_pair_reaches(lab, SITES, hub="hub", only=("host1", "host2", "host4")) == []
        assert boot_links(lab, "hub") == ["gre-spoke2", "gre-spoke3", "gre-spoke4"]
        before = kernel_state(lab, "hub")
        reboot_routers(lab, machines=["hub"])
        # the same rules, the held pair's chains jumped to in another order (each matches its own tunnel's traffic)
        assert jumps_in_any_order(kernel_state(lab, "hub")) == jumps_in_any_order(before)
        assert every_pair_reaches(lab, SITES, hub="hub", only=("host1", "host2", "host4")) == []
    finally:
        lab.set_wire("spoke3", "wan0", "up")
    converged(playbook(lab), changed=None)
    assert every_pair_reaches(lab, SITES, hub="hub") == []


def test_a_real_reboot_brings_it_all_back_with_no_ansible_run(lab):
    STATE["converged"] = {router: kernel_state(lab, router) for router in ROUTERS}
    reboot_routers(lab)
    for router in ROUTERS:
        # (the hub's jumps to spoke3's chains were made ahead of the others while its pair was held, in the test above)
        assert jumps_in_any_order(kernel_state(lab, router)) == jumps_in_any_order(STATE["converged"][router]), router
    assert every_pair_reaches(lab, SITES, hub="hub") == []
    converged(playbook(lab), changed=False)


def test_absent_leaves_each_router_as_before_converge(lab):
    converged(playbook(lab, "-e", "gre_router_state=absent"), changed=True)
    for router in ROUTERS:
        nothing_of_ours_left(lab, router)
        assert kernel_state(lab, router) == STATE["before"][router], router
    assert len(every_pair_reaches(lab, SITES, hub="hub", only=("host1", "host2"))) == 2
