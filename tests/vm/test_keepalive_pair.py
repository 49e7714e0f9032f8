# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GRE keepalives on the how-to's pair of real routers with a backup path between them (lab/topologies/keepalive.yml:
eth2, and routes to the other site through it with metric 100): the senders run under systemd on Debian's own
Python, own the routes through the tunnel, withdraw them while the underlay is cut (the traffic takes the backup path)
and bring them back, come back after a reboot; a sender that cannot run fails the run with its reason; keepalives on
one end only (the other reflects), then off; removal leaves each router as before converge, backup routes included.

The tests of this module run in order on one lab (each step builds on the one before).
"""

from __future__ import annotations

import json

import pytest

from support.vmlab import (ROUTERS, boot_sites, converged, kernel_state, lab_name, no_failed_unit, nothing_of_ours_left,
                           ping, playbook, reboot_routers, recap, wait_for)

pytestmark = pytest.mark.vm

LAB = lab_name("keepalive")
KEEPALIVE = {"period": 1, "retries": 3}
OTHER_LAN = {"router_a": "20.10.1.0/24", "router_b": "10.10.1.0/24"}
OTHER_HOST = {"router_a": "20.10.1.10", "router_b": "10.10.1.10"}
STATE = {}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from boot_sites(LAB, tmp_path_factory.mktemp("inventory"), {"gre_router_keepalive": KEEPALIVE},
                          topology="lab/topologies/keepalive.yml")


def senders(lab, router):
    """{unit: {property: value}} of the router's keepalive senders, as systemd reports them."""
    out = lab.run(router, ["systemctl", "list-units", "--all", "--no-legend", "--plain", "overlay-gre-keepalive@*"]).stdout
    found = {}
    for unit in [line.split()[0] for line in out.splitlines() if line.strip()]:
        show = lab.run(router, ["systemctl", "show", "-p", "ActiveState,SubState,NRestarts,MainPID", unit], check=True)
        found[unit] = dict(line.split("=", 1) for line in show.stdout.splitlines() if "=" in line)
    return found


def route_to_other_lan(lab, router):
    """The router's route to the other site's LAN through the tunnel (empty: none; the backup route is not it)."""
    out = lab.run(router, ["ip", "-4", "route", "show", OTHER_LAN[router]], check=True).stdout
    return "\n".join(line for line in out.splitlines() if " dev gre" in line)


def way_to_other_host(lab, router):
    """The interface the router sends the other site's host out of, as its kernel decides now."""
    out = lab.run(router, ["ip", "-j", "route", "get", OTHER_HOST[router]], check=True).stdout
    return json.loads(out)[0]["dev"]


def sender_state(lab, router, unit):
    tunnel = unit.split("@", 1)[1].rsplit(".", 1)[0]
    return json.loads(lab.run(router, ["cat", "/run/overlay-gre/keepalive-%s.json" % tunnel], check=True).stdout)


def test_converge_runs_a_sender_per_router_under_systemd_on_debians_python(lab):
    STATE["before"] = {router: kernel_state(lab, router) for router in ROUTERS}
    converged(playbook(lab), changed=True)
    for router in ROUTERS:
        units = senders(lab, router)
        assert len(units) == 1, units
        for unit, props in units.items():
            assert (props["ActiveState"], props["SubState"], props["NRestarts"]) == ("active", "running", "0"), props
            exe = lab.run(router, ["readlink", "/proc/%s/exe" % props["MainPID"]], check=True).stdout.strip()
            assert exe.startswith("/usr/bin/python3"), exe
            assert sender_state(lab, router, unit)["state"] == "up"
        no_failed_unit(lab, router)
        assert route_to_other_lan(lab, router) != ""
        assert way_to_other_host(lab, router).startswith("gre-")
    # the sites reach each other's networks, not only the tunnel's addresses
    assert ping(lab, "host_a", "20.10.1.10")
    assert ping(lab, "host_b", "10.10.1.10")


def test_a_second_run_changes_nothing(lab):
    converged(playbook(lab), changed=False)


def test_a_cut_underlay_withdraws_the_routes_and_mending_it_brings_them_back(lab):
    lab.set_wire("router_b", "bond0", "down")
    try:
        for router in ROUTERS:
            wait_for("%s withdraws its route to %s" % (router, OTHER_LAN[router]),
                     lambda router=router: route_to_other_lan(lab, router) == "")
            assert [sender_state(lab, router, unit)["state"] for unit in senders(lab, router)] == ["down"]
            # the backup path carries the traffic meanwhile
            assert way_to_other_host(lab, router) == "eth2"
        assert ping(lab, "host_a", "20.10.1.10")
        assert ping(lab, "host_b", "10.10.1.10")
    finally:
        lab.set_wire("router_b", "bond0", "up")
    for router in ROUTERS:
        wait_for("%s puts its route to %s back" % (router, OTHER_LAN[router]),
                 lambda router=router: route_to_other_lan(lab, router) != "")
        assert way_to_other_host(lab, router).startswith("gre-")
    assert ping(lab, "host_a", "20.10.1.10")
    # the sender kept the routes; a run finds nothing to do
    converged(playbook(lab), changed=False)


def test_after_a_real_reboot_the_senders_run_and_the_sites_reach_each_other(lab):
    reboot_routers(lab)
    for router in ROUTERS:
        wait_for("the sender of %s says up" % router, lambda router=router: all(
            sender_state(lab, router, unit)["state"] == "up" for unit in senders(lab, router)))
        for props in senders(lab, router).values():
            assert (props["ActiveState"], props["NRestarts"]) == ("active", "0"), props
    assert ping(lab, "host_a", "20.10.1.10")
    assert ping(lab, "host_b", "10.10.1.10")
    converged(playbook(lab), changed=False)


def test_a_sender_that_cannot_run_fails_the_run_and_ends_failed(lab):
    # an administrator's mistake on router_a: a drop-in that gives the sender a program that cannot run
    dropin = "/etc/systemd/system/overlay-gre-keepalive@.service.d"
    lab.run("router_a", ["mkdir", "-p", dropin], check=True)
    lab.run("router_a", ["sh", "-c", "printf '[Service]\\nExecStart=\\nExecStart=/usr/bin/python3 -c \"import nosuchmodule\"\\n'"
                         " > %s/broken.conf && systemctl daemon-reload" % dropin], check=True)
    try:
        # a new period: the sender's configuration changes, so the run restarts it
        proc = playbook(lab, "-e", json.dumps({"gre_router_keepalive": {"period": 2, "retries": 3}}))
        assert proc.returncode != 0
        units = list(senders(lab, "router_a"))
        assert len(units) == 1, units
        unit = units[0]
        assert "%s did not restart" % unit in proc.stdout, proc.stdout[-4000:]
        assert "nosuchmodule" in proc.stdout, proc.stdout[-4000:]  # the reason, from its log
        wait_for("%s ends failed" % unit, lambda: senders(lab, "router_a")[unit]["ActiveState"] == "failed")
    finally:
        lab.run("router_a", ["sh", "-c", "rm -r %s && systemctl daemon-reload" % dropin], check=True)
    # mended, a run starts it again and the sites reach each other
    converged(playbook(lab), changed=True)
    for props in senders(lab, "router_a").values():
        assert props["ActiveState"] == "active", props
    no_failed_unit(lab, "router_a")
    assert ping(lab, "host_a", "20.10.1.10")


def test_keepalives_on_one_end_the_other_reflects(lab):
    host_vars = lab.host_vars / "router_b.yml"
    kept = host_vars.read_text(encoding="utf-8")
    host_vars.write_text(kept + "gre_router_keepalive: null\n", encoding="utf-8")
    try:
        proc = playbook(lab)
        assert proc.returncode == 0, proc.stdout[-6000:]
        # router_b stops its sender; router_a has nothing to change
        assert (recap(proc)["router_a"]["changed"], recap(proc)["router_b"]["changed"] > 0) == (0, True), recap(proc)
        assert senders(lab, "router_b") == {}
        # router_b reflects router_a's keepalives: router_a sees the tunnel up and keeps its route
        for unit in senders(lab, "router_a"):
            wait_for("router_a's sender says up", lambda unit=unit: sender_state(lab, "router_a", unit)["state"] == "up")
        assert route_to_other_lan(lab, "router_a") != "" and route_to_other_lan(lab, "router_b") != ""
        assert ping(lab, "host_a", "20.10.1.10")
        converged(playbook(lab), changed=False)
    finally:
        host_vars.write_text(kept, encoding="utf-8")


def test_keepalives_off_leaves_static_routes_through_the_tunnel(lab):
    proc = playbook(lab, "-e", '{"gre_router_keepalive": null}')
    assert proc.returncode == 0, proc.stdout[-6000:]
    # router_a stops its sender (router_b has had none since the test before)
    assert recap(proc)["router_a"]["changed"] > 0, recap(proc)
    for router in ROUTERS:
        assert senders(lab, router) == {}
        left = lab.run(router, ["sh", "-c", "ls /etc/overlay-gre /run/overlay-gre | grep keepalive || true"], check=True).stdout
        assert left.strip() == "", "%s keeps %s" % (router, left)
        assert route_to_other_lan(lab, router) != ""
        assert way_to_other_host(lab, router).startswith("gre-")
        no_failed_unit(lab, router)
    assert ping(lab, "host_a", "20.10.1.10")
    converged(playbook(lab, "-e", '{"gre_router_keepalive": null}'), changed=False)
    # and on again, for the removal below
    converged(playbook(lab), changed=True)
    for router in ROUTERS:
        wait_for("%s has its sender running again" % router,
                 lambda router=router: [p["ActiveState"] for p in senders(lab, router).values()] == ["active"])


def test_absent_leaves_no_sender(lab):
    converged(playbook(lab, "-e", "gre_router_state=absent"), changed=True)
    for router in ROUTERS:
        nothing_of_ours_left(lab, router)
        assert senders(lab, router) == {}
        # each router as before converge: the backup route to the other site, a route of the router's own, is kept
        assert kernel_state(lab, router) == STATE["before"][router], router
