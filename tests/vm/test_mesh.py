# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A full mesh of four sites on real routers (lab/topologies/mesh.yml, the sites of inventories/mesh): every LAN host
reaches every other one directly; the pair site1-site2 has keepalives, whose senders run under systemd and withdraw
only that pair's routes while its path is broken; absent leaves each router as before converge.

The tests of this module run in order on one lab (each step builds on the one before), as a user's session would.
"""

from __future__ import annotations

import json

import pytest

from support.vmlab import (converged, kernel_state, lab_name, no_failed_unit, nothing_of_ours_left, ping, playbook,
                           wait_for)
from support.vmsites import Sites, boot_inventory, every_pair_reaches

pytestmark = pytest.mark.vm

LAB = lab_name("mesh")
TOPOLOGY = "lab/topologies/mesh.yml"
SITES = Sites(TOPOLOGY)
ROUTERS = tuple(sorted(SITES.routers))
STATE = {}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from boot_inventory(LAB, tmp_path_factory.mktemp("inventory"), TOPOLOGY, "mesh")


def tunnel_routes(lab, router):
    """{LAN: tunnel} of ROUTER's routes to the other sites' LANs through its GRE tunnels."""
    lans = {SITES.lan(other) for other in ROUTERS}
    routes = json.loads(lab.run(router, ["ip", "-j", "route", "show"], check=True).stdout)
    return {r["dst"]: r["dev"] for r in routes if r["dst"] in lans and r.get("dev", "").startswith("gre-")}


def senders(lab, router):
    """{unit: ActiveState} of ROUTER's keepalive senders, as systemd reports them."""
    out = lab.run(router, ["systemctl", "list-units", "--all", "--no-legend", "--plain", "overlay-gre-keepalive@*"]).stdout
    units = [line.split()[0] for line in out.splitlines() if line.strip()]
    return {unit: lab.run(router, ["systemctl", "is-active", unit]).stdout.strip() for unit in units}


def test_converge_joins_every_site_directly(lab):
    STATE["before"] = {router: kernel_state(lab, router) for router in ROUTERS}
    converged(playbook(lab), changed=True)
    # two routers on the way, never three: no site's traffic crosses a third one
    assert every_pair_reaches(lab, SITES) == []
    for router in ROUTERS:
        no_failed_unit(lab, router)
        others = {SITES.lan(other): "gre-%s" % other for other in ROUTERS if other != router}
        wait_for("%s routes every other LAN through its tunnel to that site" % router,
                 lambda router=router, others=others: tunnel_routes(lab, router) == others)
    # the pair site1-site2 alone has keepalives: one sender on each of its routers, run by systemd
    assert senders(lab, "site1") == {"overlay-gre-keepalive@gre-site2.service": "active"}
    assert senders(lab, "site2") == {"overlay-gre-keepalive@gre-site1.service": "active"}
    assert senders(lab, "site3") == {} and senders(lab, "site4") == {}


def test_a_second_run_changes_nothing(lab):
    converged(playbook(lab), changed=False)


def test_a_broken_path_withdraws_only_its_pairs_routes(lab):
    full = {router: tunnel_routes(lab, router) for router in ROUTERS}
    # the path between site1 and site2 breaks: site1 drops the GRE of site2 (the other paths stay)
    rule = ["INPUT", "-s", SITES.underlay("site2"), "-p", "gre", "-j", "DROP"]
    lab.run("site1", ["iptables", "-I"] + rule, check=True)
    try:
        def withdrawn():
            return (SITES.lan("site2") not in tunnel_routes(lab, "site1")
                    and SITES.lan("site1") not in tunnel_routes(lab, "site2"))
        wait_for("site1 and site2 withdraw their routes to each other's LAN", withdrawn)
        for router in ROUTERS:
            expected = {dst: dev for dst, dev in full[router].items()
                        if (router, dst) not in (("site1", SITES.lan("site2")), ("site2", SITES.lan("site1")))}
            assert tunnel_routes(lab, router) == expected, router
        assert every_pair_reaches(lab, SITES, only=("host3", "host4")) == []
        assert not ping(lab, "host1", SITES.lan_hosts["host2"])
    finally:
        lab.run("site1", ["iptables", "-D"] + rule, check=True)
    wait_for("the routes come back once the path is mended",
             lambda: all(tunnel_routes(lab, router) == full[router] for router in ROUTERS))
    assert every_pair_reaches(lab, SITES, only=("host1", "host2")) == []
    # the senders kept the routes: a run finds nothing to do
    converged(playbook(lab), changed=False)


def test_absent_leaves_each_router_as_before_converge(lab):
    converged(playbook(lab, "-e", "gre_router_state=absent"), changed=True)
    for router in ROUTERS:
        nothing_of_ours_left(lab, router)
        assert kernel_state(lab, router) == STATE["before"][router], router
