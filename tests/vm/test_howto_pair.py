# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The how-to's pair on real routers: playbooks/site.yml over SSH, with the routers' own /usr/bin/python3, as a user
runs it; then a real reboot of both, which must bring everything back with no Ansible run; then removal.

host_c is a machine of site A whose default gateway (gw_a) has no way to site B: the role gre_lan_host gives it a
route through router_a, and its own unit puts the route back at boot (a Debian 12 machine with systemd as well).

The tests of this module run in order on one lab (each step builds on the one before), as a user's session would.
"""

from __future__ import annotations

import json

import pytest

from support.vmlab import (ROUTERS, Capture, assert_tcp_crosses_without_pmtu_discovery, boot_sites, converged, kernel_state,
                           lab_name, no_failed_unit, ping, playbook, reboot_routers, recap, units_of_ours, wait_for)

pytestmark = pytest.mark.vm

LAB = lab_name("pair")
# the files and units of ours a router may hold; absent must leave none of them
OURS = ["/etc/overlay-gre", "/etc/sysctl.d/90-overlay-gre.conf", "/usr/local/sbin/overlay-gre-keepalive",
        "/usr/local/sbin/overlay-gre-apply"]
LAN_HOST = "host_c"
ROUTER_A_LAN = "10.10.1.1"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from boot_sites(LAB, tmp_path_factory.mktemp("inventory"), lan_hosts=(LAN_HOST,))


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
    # host_c's default gateway has no way to site B
    assert lan_host_gateway(lab) == "10.10.1.254"
    assert not ping(lab, LAN_HOST, "20.10.1.10")
    STATE["before"][LAN_HOST] = lan_host_routes(lab)


def lan_host_gateway(lab):
    """The gateway host_c's kernel takes to host_b."""
    proc = lab.run(LAN_HOST, ["ip", "-j", "route", "get", "20.10.1.10"], check=True)
    return json.loads(proc.stdout)[0].get("gateway")


def lan_host_routes(lab):
    return sorted(lab.run(LAN_HOST, ["ip", "-4", "route", "show", "table", "main"], check=True).stdout.splitlines())


def lan_host_reaches_site_b(lab):
    assert lan_host_gateway(lab) == ROUTER_A_LAN
    assert ping(lab, LAN_HOST, "20.10.1.10")
    no_failed_unit(lab, LAN_HOST)
    for query in ("is-enabled", "is-active"):
        said = lab.run(LAN_HOST, ["systemctl", query, "overlay-gre@lan-routes.service"]).stdout.strip()
        assert said in ("enabled", "active"), "host_c: overlay-gre@lan-routes.service: %s %s" % (query, said)


def test_check_mode_changes_nothing_and_shows_the_diff(lab):
    proc = playbook(lab, "--check", "--diff")
    converged(proc, changed=True)
    assert "+++ after" in proc.stdout
    for router in ROUTERS:
        assert kernel_state(lab, router) == STATE["before"][router]
        assert units_of_ours(lab, router) == {}
        assert lab.run(router, ["test", "-e", "/etc/overlay-gre"]).returncode != 0
    assert lan_host_routes(lab) == STATE["before"][LAN_HOST]
    assert units_of_ours(lab, LAN_HOST) == {}


def test_converge_joins_the_sites_through_the_tunnel(lab):
    converged(playbook(lab), changed=True)
    with Capture(lab, "router_b", "bond0", "ip proto 47") as underlay, \
            Capture(lab, "host_b", "eth0", "icmp[icmptype] == icmp-echo") as at_host_b:
        assert ping(lab, "host_a", "20.10.1.10")
    assert ping(lab, "host_b", "10.10.1.10")
    # GRE on the underlay; host_b sees host_a's own address (routed, no NAT)
    assert any("GREv0" in line for line in underlay.lines), underlay.lines
    assert {line.split()[2] for line in at_host_b.lines if " IP " in line} == {"10.10.1.10"}, at_host_b.lines
    lan_host_reaches_site_b(lab)
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
        # a boot step that hangs (an iptables waiting for its lock) cannot hold the boot before network-online.target
        # for ever: systemd stops the unit after 2 minutes
        timeout = lab.run(router, ["systemctl", "show", "-P", "TimeoutStartUSec", "overlay-gre@tunnels.service"]).stdout.strip()
        assert timeout == "2min", "%s: overlay-gre@tunnels.service: TimeoutStartUSec=%s" % (router, timeout)
        state = kernel_state(lab, router)
        assert state["forwarding"] == "1"
        assert any(l["kind"] == "gre" and l["name"] != "gre0" for l in state["links"]), state["links"]
        assert any("TCPMSS" in rule for rule in state["rules"]), state["rules"]
        STATE.setdefault("converged", {})[router] = state


def test_large_tcp_transfers_cross_with_pmtu_discovery_broken(lab):
    """With ICMP "fragmentation needed" dropped on the routers (as by many firewalls on the way), only the tunnel's MSS
    clamping keeps 1500-byte TCP segments out of the tunnel, whose MTU is smaller: 1 MiB crosses both ways."""
    assert_tcp_crosses_without_pmtu_discovery(lab)


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
    lan_host_reaches_site_b(lab)


def test_a_run_after_the_reboot_changes_nothing(lab):
    converged(playbook(lab), changed=False)


def test_a_firewall_step_that_fails_at_boot_leaves_the_tunnel_down(lab):
    """The boot applies the firewall first and stops at a failure: the tunnel never comes up without its rules. A rule
    that the kernel refuses (a match it does not know) is put into router_a's boot data by hand, then router_a reboots."""
    path = "/etc/overlay-gre/boot/tunnels.json"
    data = json.loads(lab.run("router_a", ["cat", path], check=True).stdout)
    data["chains"][0]["rules"].append(["-m", "nosuchmatch", "-j", "ACCEPT"])
    lab.run("router_a", ["tee", path], input=json.dumps(data), check=True)
    reboot_routers(lab, machines=("router_a",), failed_units=1)
    state = kernel_state(lab, "router_a")
    assert not any(l["kind"] == "gre" and l["name"] != "gre0" for l in state["links"]), state["links"]
    assert lab.run("router_a", ["systemctl", "is-failed", "overlay-gre@tunnels.service"]).stdout.strip() == "failed"
    log = lab.run("router_a", ["journalctl", "-b", "-u", "overlay-gre@tunnels.service", "-o", "cat", "--no-pager"],
                  check=True).stdout
    assert "firewall" in log and "nosuchmatch" in log, log
    assert not ping(lab, "host_a", "20.10.1.10")
    # the next run writes router_a's data again and starts its unit: all back (router_b and host_c have nothing to do)
    proc = playbook(lab)
    converged(proc, changed=None)
    counts = recap(proc)
    assert counts["router_a"]["changed"] > 0 and counts["router_b"]["changed"] == 0, counts
    assert kernel_state(lab, "router_a") == STATE["converged"]["router_a"]
    assert ping(lab, "host_a", "20.10.1.10")
    no_failed_unit(lab, "router_a")


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
    no_failed_unit(lab, LAN_HOST)
    assert units_of_ours(lab, LAN_HOST) == {}
    assert lan_host_routes(lab) == STATE["before"][LAN_HOST]
    for path in ("/etc/overlay-gre", "/usr/local/sbin/overlay-gre-apply"):
        assert lab.run(LAN_HOST, ["test", "-e", path]).returncode != 0, "host_c keeps %s" % path
