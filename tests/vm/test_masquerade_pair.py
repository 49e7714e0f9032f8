# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The how-to's NAT mode (gre_router_masquerade: true) on its pair of real routers, whose own firewall drops what it
does not accept (INPUT and FORWARD policies DROP): host_b sees host_a's traffic come from router_b's site address;
a real reboot brings the NAT back with no Ansible run; masquerade off leaves the sites routed (host_b sees host_a's
own address) and no NAT rule; removal.

The tests of this module run in order on one lab (each step builds on the one before).
"""

from __future__ import annotations

import subprocess
import time

import pytest

from support.vmlab import (ROUTERS, boot_sites, converged, harden, kernel_state, lab_name, no_failed_unit,
                           nothing_of_ours_left, ping, playbook, reboot_routers)

pytestmark = pytest.mark.vm

LAB = lab_name("masquerade")
STATE = {}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from boot_sites(LAB, tmp_path_factory.mktemp("inventory"), {"gre_router_masquerade": True})


def same_but_rule_order(state, other):
    """STATE and OTHER alike, the rules in any order (the administrator's rules, set again by hand after a reboot,
    come after the role's, which the boot put in place first)."""
    return dict(state, rules=sorted(state["rules"])) == dict(other, rules=sorted(other["rules"]))


def sources_seen_by_host_b(lab):
    """The source addresses of host_a's pings as host_b receives them (a capture in host_b's own namespace)."""
    capture = subprocess.Popen(lab.command("host_b", ["tcpdump", "-l", "-n", "-p", "-i", "eth0", "icmp[icmptype] = icmp-echo"]),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        said = capture.stderr.readline()
        while said and "listening on" not in said:
            said = capture.stderr.readline()
        assert ping(lab, "host_a", "20.10.1.10")
        time.sleep(0.5)
    finally:
        capture.terminate()
    out, _err = capture.communicate(timeout=30)
    return {line.split()[2] for line in out.splitlines() if " IP " in line}


def nat_rules(lab, router):
    return [rule for rule in kernel_state(lab, router)["rules"] if rule.startswith("nat ") and "MASQUERADE" in rule]


def test_converge_masquerades_the_sites_behind_policies_of_drop(lab):
    harden(lab)
    STATE["before"] = {router: kernel_state(lab, router) for router in ROUTERS}
    assert not ping(lab, "host_a", "20.10.1.10")
    converged(playbook(lab), changed=True)
    assert sources_seen_by_host_b(lab) == {"20.10.1.1"}
    assert ping(lab, "host_b", "10.10.1.10")
    for router in ROUTERS:
        assert nat_rules(lab, router), router
        no_failed_unit(lab, router)


def test_a_second_run_changes_nothing(lab):
    converged(playbook(lab), changed=False)


def test_a_real_reboot_brings_the_nat_back_with_no_ansible_run(lab):
    converged_state = {router: kernel_state(lab, router) for router in ROUTERS}
    reboot_routers(lab)
    harden(lab)  # the policies were the administrator's, set by hand: they are not ours to keep
    for router in ROUTERS:
        assert same_but_rule_order(kernel_state(lab, router), converged_state[router]), router
    assert sources_seen_by_host_b(lab) == {"20.10.1.1"}
    converged(playbook(lab), changed=False)


def test_masquerade_off_leaves_the_sites_routed_and_no_nat(lab):
    converged(playbook(lab, "-e", '{"gre_router_masquerade": false}'), changed=True)
    for router in ROUTERS:
        assert nat_rules(lab, router) == [], router
    assert sources_seen_by_host_b(lab) == {"10.10.1.10"}
    assert ping(lab, "host_b", "10.10.1.10")
    converged(playbook(lab, "-e", '{"gre_router_masquerade": false}'), changed=False)


def test_absent_leaves_each_router_as_before_converge(lab):
    converged(playbook(lab, "-e", "gre_router_state=absent"), changed=True)
    for router in ROUTERS:
        nothing_of_ours_left(lab, router)
        assert same_but_rule_order(kernel_state(lab, router), STATE["before"][router]), router
