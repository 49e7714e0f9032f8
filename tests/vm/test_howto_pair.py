# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The how-to's pair on real routers: playbooks/site.yml over SSH, with the routers' own /usr/bin/python3, as a user
runs it; then a real reboot of both, which must bring everything back with no Ansible run; then removal.

The tests of this module run in order on one lab (each step builds on the one before), as a user's session would.
"""

from __future__ import annotations

import pytest

from support.vmlab import (ROUTERS, boot_sites, converged, kernel_state, lab_name, no_failed_unit, ping, playbook,
                           reboot_routers, units_of_ours, wait_for)

pytestmark = pytest.mark.vm

LAB = lab_name("pair")
# the files and units of ours a router may hold; absent must leave none of them
OURS = ["/etc/overlay-gre", "/etc/sysctl.d/90-overlay-gre.conf", "/usr/local/sbin/overlay-gre-keepalive"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from boot_sites(LAB, tmp_path_factory.mktemp("inventory"))


STATE = {}


def test_before_converge_the_sites_do_not_reach_each_other(lab):
    # each router's own firewall the Debian way: nftables.service with Debian's /etc/nftables.conf ("flush ruleset")
    for router in ROUTERS:
        lab.run(router, ["systemctl", "enable", "--now", "nftables.service"], check=True)
    assert ping(lab, "host_a", "10.10.1.1")
    assert not ping(lab, "host_a", "20.10.1.10")
    for router in ROUTERS:
        STATE.setdefault("before", {})[router] = kernel_state(lab, router)
        assert lab.run(router, ["sysctl", "-n", "net.ipv4.ip_forward"], check=True).stdout.strip() == "0"


def test_check_mode_changes_nothing_and_shows_the_diff(lab):
    proc = playbook(lab, "--check", "--diff")
    converged(proc, changed=True)
    assert "+++ after" in proc.stdout
    for router in ROUTERS:
        assert kernel_state(lab, router) == STATE["before"][router]
        assert units_of_ours(lab, router) == {}
        assert lab.run(router, ["test", "-e", "/etc/overlay-gre"]).returncode != 0


def test_converge_joins_the_sites_through_the_tunnel(lab):
    converged(playbook(lab), changed=True)
    assert ping(lab, "host_a", "20.10.1.10")
    assert ping(lab, "host_b", "10.10.1.10")
    for router in ROUTERS:
        no_failed_unit(lab, router)
        units = units_of_ours(lab, router)
        for unit in ("overlay-gre@tunnels.service", "overlay-gre-guard@tunnels.service"):
            enabled = lab.run(router, ["systemctl", "is-enabled", unit]).stdout.strip()
            assert enabled == "enabled", "%s: %s is %s" % (router, unit, enabled)
            # applied by this run, and systemd knows it: `systemctl status` tells the truth, and a restart of the
            # machine's firewall (PartOf=) applies the tunnel's rules again
            active = lab.run(router, ["systemctl", "is-active", unit]).stdout.strip()
            assert active == "active", "%s: %s is %s" % (router, unit, active)
        state = kernel_state(lab, router)
        assert state["forwarding"] == "1"
        assert any(l["kind"] == "gre" and l["name"] != "gre0" for l in state["links"]), state["links"]
        assert any("TCPMSS" in rule for rule in state["rules"]), state["rules"]
        STATE.setdefault("converged", {})[router] = state


def test_a_second_run_changes_nothing(lab):
    converged(playbook(lab), changed=False)


def test_a_restart_of_the_routers_own_firewall_loses_nothing(lab):
    """`systemctl restart nftables` flushes the whole ruleset, ours included; the guard puts our rules back."""
    for router in ROUTERS:
        lab.run(router, ["systemctl", "restart", "nftables.service"], check=True)
    for router in ROUTERS:
        wait_for("%s's rules are back after the firewall's restart" % router,
                 lambda router=router: kernel_state(lab, router)["rules"] == STATE["converged"][router]["rules"])
        no_failed_unit(lab, router)
        # they were gone: the guard saw it and put them back
        log = lab.run(router, ["journalctl", "-u", "overlay-gre-guard@tunnels.service", "-o", "cat", "--no-pager"],
                      check=True).stdout
        assert "were gone (a firewall reload?): putting them back" in log, log
    assert ping(lab, "host_a", "20.10.1.10")
    assert ping(lab, "host_b", "10.10.1.10")


def test_a_real_reboot_brings_it_all_back_with_no_ansible_run(lab):
    reboot_routers(lab)
    for router in ROUTERS:
        assert kernel_state(lab, router) == STATE["converged"][router]
    assert ping(lab, "host_a", "20.10.1.10")
    assert ping(lab, "host_b", "10.10.1.10")


def test_a_run_after_the_reboot_changes_nothing(lab):
    converged(playbook(lab), changed=False)


def test_absent_leaves_no_unit_no_file_and_no_tunnel(lab):
    converged(playbook(lab, "-e", "gre_router_state=absent"), changed=True)
    assert not ping(lab, "host_a", "20.10.1.10")
    for router in ROUTERS:
        no_failed_unit(lab, router)
        assert units_of_ours(lab, router) == {}
        left = [path for path in OURS if lab.run(router, ["test", "-e", path]).returncode == 0]
        assert left == [], "%s keeps %s" % (router, left)
        state = kernel_state(lab, router)
        assert not any(l["kind"] == "gre" and l["name"] != "gre0" for l in state["links"]), state["links"]
        assert state["routes"] == STATE["before"][router]["routes"]
