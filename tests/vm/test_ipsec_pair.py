# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GRE over IPsec on the how-to's pair of real routers: the role installs strongSwan with apt from the lab's package
repository (the routers' only apt source), systemd runs strongswan.service, the SAs come up and the underlay carries
ESP only; after a real reboot the SAs come back by themselves and no GRE leaves either router in clear from power-on;
removal takes the IPsec away.

The tests of this module run in order on one lab (each step builds on the one before).
"""

from __future__ import annotations

import subprocess
import time

import pytest

from support.vmlab import (ROUTERS, boot_sites, converged, lab_name, no_failed_unit, ping, playbook, reboot_routers,
                           wait_for)

pytestmark = pytest.mark.vm

LAB = lab_name("ipsec")
PSK = "lab-only-psk-3f9d0c2a7e51"
PACKAGES = ("charon-systemd", "strongswan-swanctl", "libstrongswan-standard-plugins")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from boot_sites(LAB, tmp_path_factory.mktemp("inventory"),
                          {"gre_router_ipsec": True, "gre_router_ipsec_psk": PSK})


class Capture(object):
    """tcpdump on the lab's side of a router's underlay port (outside the router): what crossed the wire."""

    def __init__(self, lab, router, ifname):
        self.lab = lab
        self.argv = lab.in_lab_ns(["tcpdump", "-i", lab.port(router, ifname), "-n", "-l", "-p", "esp or ip proto 47"])
        self.proc = None
        self.lines = []

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # tcpdump says "listening on" once its filter is in place
        said = []
        while not said or "listening on" not in said[-1]:
            said.append(self.proc.stderr.readline())
            assert said[-1], "tcpdump did not start: %s" % "".join(said)
        return self

    def __exit__(self, *exc):
        time.sleep(0.5)
        self.proc.terminate()
        out, _err = self.proc.communicate(timeout=30)
        self.lines = [line for line in out.splitlines() if line.strip()]
        return False

    @property
    def esp(self):
        return [line for line in self.lines if ": ESP(" in line]

    @property
    def gre_in_clear(self):
        # the filter lets only ESP and GRE through: whatever is not ESP is GRE in clear
        return [line for line in self.lines if ": ESP(" not in line]


def sas(lab, router):
    """The router's IKE and CHILD SAs as swanctl lists them (ESTABLISHED / INSTALLED)."""
    out = lab.run(router, ["swanctl", "--list-sas"], check=True).stdout
    return out.count("ESTABLISHED"), out.count("INSTALLED")


def installed(lab, router, package):
    proc = lab.run(router, ["dpkg-query", "-W", "-f", "${db:Status-Status}", package])
    return proc.returncode == 0 and proc.stdout.strip() == "installed"


def test_before_converge_no_strongswan(lab):
    for router in ROUTERS:
        assert not any(installed(lab, router, package) for package in PACKAGES)


def test_check_mode_installs_nothing(lab):
    converged(playbook(lab, "--check", "--diff"), changed=True)
    for router in ROUTERS:
        assert not any(installed(lab, router, package) for package in PACKAGES)
        assert lab.run(router, ["ip", "xfrm", "policy"], check=True).stdout.strip() == ""


def test_converge_installs_strongswan_by_apt_and_carries_esp_only(lab):
    converged(playbook(lab), changed=True)
    for router in ROUTERS:
        assert all(installed(lab, router, package) for package in PACKAGES)
        for unit in ("strongswan.service",):
            assert lab.run(router, ["systemctl", "is-active", unit]).stdout.strip() == "active"
            assert lab.run(router, ["systemctl", "is-enabled", unit]).stdout.strip() == "enabled"
        ike, child = sas(lab, router)
        assert ike >= 1 and child >= 1, (router, ike, child)
        no_failed_unit(lab, router)
    with Capture(lab, "router_b", "bond0") as capture:
        assert ping(lab, "host_a", "20.10.1.10")
        assert ping(lab, "host_b", "10.10.1.10")
    assert capture.esp, capture.lines
    assert capture.gre_in_clear == [], capture.gre_in_clear


def test_a_second_run_changes_nothing(lab):
    converged(playbook(lab), changed=False)


def test_after_a_real_reboot_the_sas_come_back_and_no_gre_leaves_in_clear(lab):
    with Capture(lab, "router_a", "bond0") as capture:
        reboot_routers(lab)
        for router in ROUTERS:
            wait_for("%s has its SAs again" % router, lambda router=router: min(sas(lab, router)) >= 1)
        assert ping(lab, "host_a", "20.10.1.10")
        assert ping(lab, "host_b", "10.10.1.10")
    assert capture.esp, capture.lines
    assert capture.gre_in_clear == [], capture.gre_in_clear
    converged(playbook(lab), changed=False)


def test_absent_removes_the_ipsec(lab):
    converged(playbook(lab, "-e", "gre_router_state=absent"), changed=True)
    for router in ROUTERS:
        assert sas(lab, router) == (0, 0)
        # no ESP SA and no policy for GRE in the kernel (charon's own per-socket policies stay while it runs)
        assert lab.run(router, ["ip", "xfrm", "state"], check=True).stdout.strip() == ""
        policies = lab.run(router, ["ip", "xfrm", "policy"], check=True).stdout
        assert "proto gre" not in policies and "172.19.1." not in policies, policies
        left = lab.run(router, ["sh", "-c", "ls /etc/swanctl/conf.d/ | grep overlay-gre || true"], check=True).stdout
        assert left.strip() == "", left
        no_failed_unit(lab, router)
