# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GRE keepalives on the how-to's pair of real routers: the senders run under systemd on Debian's own Python, own
the routes between the sites, withdraw them while the underlay is cut and bring them back, come back after a reboot;
a sender that cannot run fails the run with its reason; removal leaves nothing of them.

The tests of this module run in order on one lab (each step builds on the one before).
"""

from __future__ import annotations

import json

import pytest

from support.vmlab import (ROUTERS, boot_sites, converged, lab_name, no_failed_unit, ping, playbook, reboot_routers,
                           units_of_ours, wait_for)

pytestmark = pytest.mark.vm

LAB = lab_name("keepalive")
KEEPALIVE = {"period": 1, "retries": 3}
OTHER_LAN = {"router_a": "20.10.1.0/24", "router_b": "10.10.1.0/24"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from boot_sites(LAB, tmp_path_factory.mktemp("inventory"), {"gre_router_keepalive": KEEPALIVE})


def senders(lab, router):
    """{unit: {property: value}} of the router's keepalive senders, as systemd reports them."""
    out = lab.run(router, ["systemctl", "list-units", "--all", "--no-legend", "--plain", "overlay-gre-keepalive@*"]).stdout
    found = {}
    for unit in [line.split()[0] for line in out.splitlines() if line.strip()]:
        show = lab.run(router, ["systemctl", "show", "-p", "ActiveState,SubState,NRestarts,MainPID", unit], check=True)
        found[unit] = dict(line.split("=", 1) for line in show.stdout.splitlines() if "=" in line)
    return found


def route_to_other_lan(lab, router):
    return lab.run(router, ["ip", "-4", "route", "show", OTHER_LAN[router]], check=True).stdout.strip()


def sender_state(lab, router, unit):
    tunnel = unit.split("@", 1)[1].rsplit(".", 1)[0]
    return json.loads(lab.run(router, ["cat", "/run/overlay-gre/keepalive-%s.json" % tunnel], check=True).stdout)


def test_converge_runs_a_sender_per_router_under_systemd_on_debians_python(lab):
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
        assert " dev " in route_to_other_lan(lab, router)
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
        assert not ping(lab, "host_a", "20.10.1.10")
    finally:
        lab.set_wire("router_b", "bond0", "up")
    for router in ROUTERS:
        wait_for("%s puts its route to %s back" % (router, OTHER_LAN[router]),
                 lambda router=router: route_to_other_lan(lab, router) != "")
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
        assert "nosuchmodule" in proc.stdout  # the reason, from its log
        wait_for("%s ends failed" % unit, lambda: senders(lab, "router_a")[unit]["ActiveState"] == "failed")
    finally:
        lab.run("router_a", ["sh", "-c", "rm -r %s && systemctl daemon-reload" % dropin], check=True)
    # mended, a run starts it again and the sites reach each other
    converged(playbook(lab), changed=True)
    for props in senders(lab, "router_a").values():
        assert props["ActiveState"] == "active", props
    no_failed_unit(lab, "router_a")
    assert ping(lab, "host_a", "20.10.1.10")


def test_absent_leaves_no_sender(lab):
    converged(playbook(lab, "-e", "gre_router_state=absent"), changed=True)
    for router in ROUTERS:
        assert units_of_ours(lab, router) == {}
        assert senders(lab, router) == {}
        for path in ("/usr/local/sbin/overlay-gre-keepalive", "/etc/overlay-gre"):
            assert lab.run(router, ["test", "-e", path]).returncode != 0, "%s keeps %s" % (router, path)
        # in /run/overlay-gre only the router's lock stays (the modules' own, gone at the next boot): no sender state
        left = lab.run(router, ["ls", "-A", "/run/overlay-gre"]).stdout.split()
        assert [name for name in left if not name.endswith(".lock")] == [], left
