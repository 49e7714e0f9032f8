# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gre_router_preflight and gre_router_verify on the how-to's pair of real routers, whose own firewall drops what it
does not accept: with the underlay's wire cut, converge and converge --check stop both routers with the preflight
message and change nothing; with GRE dropped on its way into router_b (as a firewall between the sites would),
converge builds the tunnel and fails on both routers with the verify message; with the path whole again, the run
passes both checks and the sites reach each other.

The tests of this module run in order on one lab (each step builds on the one before).
"""

from __future__ import annotations

import re

import pytest

from support.vmlab import ROUTERS, boot_sites, harden, kernel_state, lab_name, ping, playbook, recap

pytestmark = pytest.mark.vm

LAB = lab_name("preflight")
PREFLIGHT = [r'fatal: \[router_a\]: FAILED![^}]*"msg": "The underlay between router_a \(172\.19\.1\.1\) and router_b '
             r'\(172\.19\.1\.2\) does not carry',
             r'fatal: \[router_b\]: FAILED![^}]*"msg": "The underlay between router_b \(172\.19\.1\.2\) and router_a '
             r'\(172\.19\.1\.1\) does not carry']
ANSWERED = [r'router_a \(172\.19\.1\.1\) -> router_b \(172\.19\.1\.2\): answered',
            r'router_b \(172\.19\.1\.2\) -> router_a \(172\.19\.1\.1\): answered']
VERIFY = [r'fatal: \[router_a\]: FAILED![^}]*"msg": "The tunnel between router_a and router_b is built but does not carry '
          r'traffic\.',
          r'fatal: \[router_b\]: FAILED![^}]*"msg": "The tunnel between router_b and router_a is built but does not carry '
          r'traffic\.',
          r'Look at: the underlay between 172\.19\.1\.1 and 172\.19\.1\.2']
# As a firewall between the sites would: GRE dropped before router_b's filter table, where the role's accepts are.
GRE_DROP = ["PREROUTING", "-i", "bond0", "-p", "gre", "-m", "comment", "--comment", "lab: GRE lost", "-j", "DROP"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from boot_sites(LAB, tmp_path_factory.mktemp("inventory"))


def failed_on_both(proc, messages, changed):
    """The run failed once on each router, with every one of MESSAGES in its output, having changed something
    (CHANGED true) or nothing."""
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0, said[-4000:]
    for message in messages:
        assert re.search(message, said), "%s not in:\n%s" % (message, said[-6000:])
    for router, counts in recap(proc).items():
        assert counts["failed"] == 1 and counts["unreachable"] == 0, (router, counts)
        assert (counts["changed"] > 0) == changed, (router, counts)
    assert set(recap(proc)) == set(ROUTERS), recap(proc)


def test_with_the_underlay_cut_converge_and_check_stop_before_any_change(lab):
    harden(lab)
    lab.set_wire("router_b", "bond0", "down")
    try:
        before = {router: kernel_state(lab, router) for router in ROUTERS}
        for args in ((), ("--check",)):
            proc = playbook(lab, *args)
            failed_on_both(proc, PREFLIGHT, changed=False)
            assert "Bring up the GRE tunnel, its addresses" not in proc.stdout, proc.stdout[-4000:]
        for router in ROUTERS:
            assert kernel_state(lab, router) == before[router]
            assert lab.run(router, ["test", "-e", "/etc/overlay-gre"]).returncode != 0
    finally:
        lab.set_wire("router_b", "bond0", "up")


def test_with_gre_lost_on_the_way_converge_builds_the_tunnel_and_verify_fails(lab):
    lab.run("router_b", ["iptables", "-t", "mangle", "-A"] + GRE_DROP, check=True)
    try:
        proc = playbook(lab)
    finally:
        lab.run("router_b", ["iptables", "-t", "mangle", "-D"] + GRE_DROP, check=True)
    failed_on_both(proc, ANSWERED + VERIFY, changed=True)


def test_with_the_path_whole_the_run_passes_both_checks(lab):
    proc = playbook(lab)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert all(counts["failed"] == 0 for counts in recap(proc).values()), recap(proc)
    for message in ANSWERED:
        assert re.search(message, proc.stdout), proc.stdout[-4000:]
    assert ping(lab, "host_a", "20.10.1.10")
    assert ping(lab, "host_b", "10.10.1.10")
