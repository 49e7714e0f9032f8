# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GRE over IPsec on the how-to's pair of real routers: the role installs strongSwan with apt from the lab's package
repository (the routers' only apt source), systemd runs strongswan.service, the SAs come up and the underlay carries
ESP only; after a real reboot the SAs come back by themselves and no GRE leaves either router in clear from power-on;
removal takes the IPsec away.

The tests of this module run in order on one lab (each step builds on the one before).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess

import pytest

from support.vmlab import (ROUTERS, assert_tcp_crosses_without_pmtu_discovery, boot_sites, converged, kernel_state,
                           lab_name, no_failed_unit, ping, recap, reboot_routers, wait_for)
from support.vmlab import playbook as run_playbook
from support import vmlab
from ansible_collections.overlay.gre.plugins.module_utils._ipsec import tunnel_mtu

pytestmark = pytest.mark.vm

LAB = lab_name("ipsec")
PSK = "lab-only-psk-3f9d0c2a7e51"
PACKAGES = ("charon-systemd", "strongswan-swanctl", "libstrongswan-standard-plugins")


# every run's output, searched for the key at the end
OUTPUTS = []


def playbook(lab, *args):
    proc = run_playbook(lab, *args)
    OUTPUTS.append(proc.stdout + proc.stderr)
    return proc


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from boot_sites(LAB, tmp_path_factory.mktemp("inventory"),
                          {"gre_router_ipsec": True, "gre_router_ipsec_psk": PSK})


class Capture(vmlab.Capture):
    """What crossed a router's underlay port of ESP and GRE."""

    def __init__(self, lab, router, ifname):
        super().__init__(lab, router, ifname, "esp or ip proto 47")

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


def test_an_apt_that_fails_stops_the_run_before_any_change(lab):
    """strongSwan is installed before anything else changes: a failing apt (here a mirror that does not answer) leaves
    the router exactly as it was, never with the rules that keep GRE from leaving in clear and no charon to carry it."""
    sources = "/etc/apt/sources.list"
    kept = lab.run("router_a", ["cat", sources], check=True).stdout
    before = kernel_state(lab, "router_a")
    lab.run("router_a", ["sh", "-c", "cat > %s" % sources], input="deb [trusted=yes] http://127.0.0.1:9/ ./\n", check=True)
    try:
        proc = playbook(lab, "--limit", "router_a")
    finally:
        lab.run("router_a", ["sh", "-c", "cat > %s && apt-get -q update" % sources], input=kept, check=True)
    # the run stopped at apt (Ansible's apt module, which first installs python3-apt, found no package), the first task
    # that would change anything
    tasks = re.findall(r"^TASK \[(?:overlay\.gre\.gre_router : )?(.*?)\] \*+$|^(fatal): \[router_a\]", proc.stdout, re.M)
    failed_at = [task for (task, _f), (_t, fatal) in zip(tasks, tasks[1:]) if fatal]
    assert proc.returncode != 0 and failed_at == ["Install the missing strongSwan packages"], proc.stdout[-4000:]
    assert recap(proc)["router_a"]["changed"] == 0, recap(proc)
    assert kernel_state(lab, "router_a") == before
    assert lab.run("router_a", ["test", "-e", "/etc/overlay-gre"]).returncode != 0
    assert not any(installed(lab, "router_a", package) for package in PACKAGES)


def test_strongswan_starter_in_the_way_stops_the_run_before_any_change(lab):
    """A router with strongSwan's other daemon (strongswan-starter: ipsec.service, its own charon on UDP 500 and 4500,
    from the lab's apt repository as from Debian's): the run refuses before any change, saying what is in the way and
    how to move on; the router is left as it was."""
    apt = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y"]
    before = kernel_state(lab, "router_b")
    try:
        lab.run("router_b", apt + ["update"], check=True, timeout=300)  # a fresh router has no package lists
        lab.run("router_b", apt + ["install", "strongswan-starter"], check=True, timeout=300)
        proc = playbook(lab, "--limit", "router_b")
    finally:
        lab.run("router_b", apt + ["purge", "--autoremove", "strongswan-starter"], check=True, timeout=300)
        # systemd remembers a unit of the package that failed before it went (strongswan-starter.service)
        lab.run("router_b", ["systemctl", "reset-failed"], check=True)
    assert proc.returncode != 0, proc.stdout[-4000:]
    assert ("router_b: gre_router_ipsec runs strongSwan's charon-systemd (strongswan.service), but strongswan-starter is "
            "installed: its ipsec.service runs another charon") in proc.stdout, proc.stdout[-4000:]
    assert "(apt purge strongswan-starter)" in proc.stdout and "Nothing was changed." in proc.stdout
    assert recap(proc)["router_b"]["changed"] == 0, recap(proc)
    assert kernel_state(lab, "router_b") == before
    assert lab.run("router_b", ["test", "-e", "/etc/overlay-gre"]).returncode != 0
    assert not any(installed(lab, "router_b", package) for package in PACKAGES + ("strongswan-starter",))


@contextlib.contextmanager
def pinging(lab, source, target):
    """host SOURCE pings TARGET every 50 ms for the duration of a with-block."""
    proc = lab.popen(source, ["ping", "-n", "-q", "-i", "0.05", "-w", "600", target],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        lab.run(source, ["pkill", "-x", "ping"])
        proc.wait(timeout=30)


def test_converge_installs_strongswan_by_apt_and_carries_esp_only(lab):
    # routers that forward already (as routers do), and the sites talking all along: the new tunnel's rules that drop
    # GRE that IPsec does not protect come before the tunnel, so none of their traffic leaves in clear meanwhile
    for router in ROUTERS:
        lab.run(router, ["sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
    with Capture(lab, "router_a", "bond0") as first_build, pinging(lab, "host_a", "20.10.1.10"):
        proc = playbook(lab)
    converged(proc, changed=True)
    assert first_build.gre_in_clear == [], first_build.gre_in_clear
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


TUNNELS = {"router_a": "gre-router_b", "router_b": "gre-router_a"}
ESP = "aes256gcm16-ecp384"  # the role's default ESP proposal


def tunnel_mtus(lab):
    return dict((router, json.loads(lab.run(router, ["ip", "-j", "link", "show", TUNNELS[router]], check=True).stdout)[0]["mtu"])
                for router in ROUTERS)


def esp_mtu(lab, underlay_mtu):
    """The largest inner packet whose ESP packet fits in one underlay packet of UNDERLAY_MTU bytes, for the lab's
    tunnels (with their GRE key, when the inventory gives one)."""
    link = json.loads(lab.run("router_a", ["ip", "-d", "-j", "link", "show", TUNNELS["router_a"]], check=True).stdout)[0]
    key = link["linkinfo"]["info_data"].get("ikey")
    return tunnel_mtu(ESP, key, underlay_mtu)


def set_underlay_mtu(lab, mtu):
    for router in ROUTERS:
        lab.run(router, ["ip", "link", "set", "bond0", "mtu", str(mtu)], check=True)


def test_the_tunnel_mtu_follows_the_underlay(lab):
    """ESP must fit in one underlay packet: the tunnel's MTU comes from the underlay's, whether the inventory gives it
    (gre_router_underlay_mtu, for a path narrower than the first link) or the router's own underlay interface has it."""
    wide = esp_mtu(lab, 1500)
    assert tunnel_mtus(lab) == {"router_a": wide, "router_b": wide}
    narrow = esp_mtu(lab, 1400)
    assert narrow < wide
    converged(playbook(lab, "-e", "gre_router_underlay_mtu=1400"), changed=True)
    assert tunnel_mtus(lab) == {"router_a": narrow, "router_b": narrow}
    try:
        # the same, read from the routers' own underlay interface: nothing to change
        set_underlay_mtu(lab, 1400)
        converged(playbook(lab), changed=False)
        assert tunnel_mtus(lab) == {"router_a": narrow, "router_b": narrow}
        # and TCP fits through it with ICMP "fragmentation needed" dropped on both routers
        assert_tcp_crosses_without_pmtu_discovery(lab)
    finally:
        set_underlay_mtu(lab, 1500)
    converged(playbook(lab), changed=True)
    assert tunnel_mtus(lab) == {"router_a": wide, "router_b": wide}


def test_an_underlay_mtu_that_is_not_one_is_refused_before_any_change(lab):
    before = {router: kernel_state(lab, router) for router in ROUTERS}
    proc = playbook(lab, "-e", "gre_router_underlay_mtu=100")
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert re.search(r"router_a: gre_router_underlay_mtu has '?100'?, which is not an MTU", said), said[-3000:]
    for router in ROUTERS:
        assert recap(proc)[router]["changed"] == 0, recap(proc)
        assert kernel_state(lab, router) == before[router], router


def xfrm(lab, router):
    """The router's SAs and policies, without what any packet changes (when an SA was last used, its sequence numbers
    and replay bitmap): the same SAs and policies give the same result whatever crossed them meanwhile."""
    volatile = re.compile(r"^\s*(lastused|anti-replay context|replay-window)\b.*$\n?", re.M)
    return {part: volatile.sub("", lab.run(router, ["ip", "xfrm", part], check=True).stdout) for part in ("state", "policy")}


def xfrm_seen(lab, router):
    """What a test that waited in vain for the xfrm state to empty shows: the state and policies with their
    statistics, the acquire lifetime, and charon's last log lines."""
    return lab.run(router, ["sh", "-c", "ip -s xfrm state; ip xfrm policy; sysctl net.core.xfrm_acq_expires; "
                                        "journalctl -u strongswan.service -n 30 --no-pager"]).stdout


def real_sas(state):
    """The SAs in STATE, the text of `ip xfrm state`, without the kernel's larval ones: a packet that meets a policy
    with no SA leaves an acquire entry (spi 0) that the kernel drops by itself after net.core.xfrm_acq_expires
    (30 s by default). Those are not SAs; a test that sees one waits for it to go."""
    blocks = re.split(r"(?m)^(?=src )", state)
    return [block for block in blocks if block.strip() and "spi 0x00000000" not in block]


def test_different_keys_stop_the_run_before_any_change(lab):
    before = {router: (kernel_state(lab, router), xfrm(lab, router)) for router in ROUTERS}
    other = "another-lab-psk-91c4e07d2b5f"
    host_vars = lab.host_vars / "router_b.yml"
    kept = host_vars.read_text(encoding="utf-8")
    host_vars.write_text(kept + "gre_router_ipsec_psk: %s\n" % other, encoding="utf-8")
    try:
        proc = playbook(lab)
    finally:
        host_vars.write_text(kept, encoding="utf-8")
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "router_a: gre_router_ipsec_psk differs between router_a and router_b" in said, said[-4000:]
    assert "router_b: gre_router_ipsec_psk differs between router_b and router_a" in said, said[-4000:]
    for router in ROUTERS:
        assert recap(proc)[router]["changed"] == 0 and recap(proc)[router]["failed"] == 1, recap(proc)
        assert (kernel_state(lab, router), xfrm(lab, router)) == before[router], router
    assert other not in said and PSK not in said


def test_with_strongswan_stopped_no_gre_leaves_in_clear(lab):
    """strongSwan stopped on router_b takes its SAs and policies away: our rules drop the GRE that IPsec no longer
    protects (nothing crosses in clear), and traffic comes back by itself once it runs again."""
    with Capture(lab, "router_a", "bond0") as at_a, Capture(lab, "router_b", "bond0") as at_b:
        lab.run("router_b", ["systemctl", "stop", "strongswan.service"], check=True)
        policies = [line for line in xfrm(lab, "router_b")["policy"].splitlines() if "proto gre" in line]
        assert policies == [], policies
        assert not ping(lab, "host_a", "20.10.1.10")
        assert not ping(lab, "host_b", "10.10.1.10")
    assert at_a.gre_in_clear == [] and at_b.gre_in_clear == [], at_a.gre_in_clear + at_b.gre_in_clear
    lab.run("router_b", ["systemctl", "start", "strongswan.service"], check=True)
    wait_for("traffic comes back once strongSwan runs again on router_b",
             lambda: ping(lab, "host_a", "20.10.1.10") and ping(lab, "host_b", "10.10.1.10"))
    assert min(sas(lab, "router_b")) >= 1
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


# Another tool's connection and secret in charon (a VPN manager's, say), loaded over vici: no start action, so
# charon sends nothing to its peer, an address of TEST-NET-1.
FOREIGN = [("load-conn", {"foreign": {"version": "2", "remote_addrs": ["192.0.2.1"], "local": {"auth": "psk"},
                                      "remote": {"auth": "psk"},
                                      "children": {"foreign": {"remote_ts": ["198.51.100.0/24"]}}}}),
           ("load-shared", {"id": "foreign-psk", "type": "ike", "data": "foreign-secret-0123456789",
                            "owners": ["192.0.2.1"]})]
VICI = open(os.path.join(vmlab.ROOT, "plugins", "module_utils", "_vici.py"), encoding="utf-8").read()


def vici(lab, router, requests):
    """REQUESTS ([(command, message)]) sent to the router's charon over vici as another tool would (the collection's
    client, run there by the router's Python); charon's answers."""
    script = VICI + "\nimport json\nwith Session() as s:\n    print(json.dumps([s.request(c, m) for c, m in %r]))\n" % (requests,)
    return json.loads(lab.run(router, ["python3", "-"], input=script, check=True).stdout)


def charon_holds(lab, router):
    """(connection names, ids of secrets loaded over vici) that the router's charon holds, sorted."""
    conns, shared = vici(lab, router, [("get-conns", {}), ("get-shared", {})])
    return sorted(conns.get("conns") or []), sorted(shared.get("keys") or [])


def test_ipsec_off_returns_to_plain_gre_and_on_again_to_esp(lab):
    # what other tools loaded stays: the role loads and unloads its own connections and secrets by name
    answers = vici(lab, "router_a", FOREIGN)
    assert [answer["success"] for answer in answers] == ["yes", "yes"], answers
    assert charon_holds(lab, "router_a") == (["foreign", "overlay-gre-gre-router_b"], ["foreign-psk", "ike-overlay-gre-gre-router_b"])
    converged(playbook(lab, "-e", "gre_router_ipsec=false"), changed=True)
    assert charon_holds(lab, "router_a") == (["foreign"], ["foreign-psk"])
    for router in ROUTERS:
        assert sas(lab, router) == (0, 0)
        state = xfrm(lab, router)
        assert real_sas(state["state"]) == [] and "proto gre" not in state["policy"], state
        wait_for("%s's larval acquire states expire" % router,
                 lambda router=router: xfrm(lab, router)["state"].strip() == "", seen=lambda router=router: xfrm_seen(lab, router))
        left = lab.run(router, ["sh", "-c", "ls /etc/swanctl/conf.d/ | grep overlay-gre || true"], check=True).stdout
        assert left.strip() == "", left
        rules = kernel_state(lab, router)["rules"]
        assert not any("policy" in rule or "-p esp" in rule for rule in rules), rules
    with Capture(lab, "router_b", "bond0") as capture:
        assert ping(lab, "host_a", "20.10.1.10")
        assert ping(lab, "host_b", "10.10.1.10")
    assert capture.gre_in_clear and not capture.esp, capture.lines
    # and back: IPsec on again, ESP only on the wire
    converged(playbook(lab), changed=True)
    for router in ROUTERS:
        wait_for("%s has its SAs again" % router, lambda router=router: min(sas(lab, router)) >= 1)
    with Capture(lab, "router_b", "bond0") as capture:
        assert ping(lab, "host_a", "20.10.1.10")
    assert capture.esp and capture.gre_in_clear == [], capture.lines
    assert charon_holds(lab, "router_a") == (["foreign", "overlay-gre-gre-router_b"], ["foreign-psk", "ike-overlay-gre-gre-router_b"])
    # the boot unit runs again with a firewall reload (PartOf=): it applies the data, and leaves charon's
    # connections, ours and the other tool's, as they are (0.3.0's `swanctl --load-all` unloaded the foreign ones)
    lab.run("router_a", ["systemctl", "restart", "overlay-gre@tunnels.service"], check=True)
    assert lab.run("router_a", ["systemctl", "is-active", "overlay-gre@tunnels.service"]).stdout.strip() == "active"
    assert charon_holds(lab, "router_a") == (["foreign", "overlay-gre-gre-router_b"], ["foreign-psk", "ike-overlay-gre-gre-router_b"])


def test_absent_removes_the_ipsec(lab):
    # with the sites talking all along: the tunnels go first, so no GRE leaves in clear while the IPsec and the rules
    # that drop unprotected GRE go (0.3.0 removed those first, and the tunnels last)
    with Capture(lab, "router_a", "bond0") as capture, pinging(lab, "host_a", "20.10.1.10"):
        proc = playbook(lab, "-e", "gre_router_state=absent")
    converged(proc, changed=True)
    assert capture.esp and capture.gre_in_clear == [], capture.gre_in_clear
    assert charon_holds(lab, "router_a") == (["foreign"], ["foreign-psk"])
    vici(lab, "router_a", [("unload-conn", {"name": "foreign"}), ("unload-shared", {"id": "foreign-psk"})])
    for router in ROUTERS:
        assert sas(lab, router) == (0, 0)
        # no ESP SA and no policy for GRE in the kernel (charon's own per-socket policies stay while it runs)
        assert real_sas(lab.run(router, ["ip", "xfrm", "state"], check=True).stdout) == []
        wait_for("%s's larval acquire states expire" % router,
                 lambda router=router: lab.run(router, ["ip", "xfrm", "state"], check=True).stdout.strip() == "",
                 seen=lambda router=router: xfrm_seen(lab, router))
        policies = lab.run(router, ["ip", "xfrm", "policy"], check=True).stdout
        assert "proto gre" not in policies and "172.19.1." not in policies, policies
        left = lab.run(router, ["sh", "-c", "ls /etc/swanctl/conf.d/ | grep overlay-gre || true"], check=True).stdout
        assert left.strip() == "", left
        no_failed_unit(lab, router)


def test_no_output_and_no_log_holds_the_key(lab):
    assert OUTPUTS and not [out for out in OUTPUTS if PSK in out]
    for router in ROUTERS:
        # the journal of every boot, the role's runs and strongSwan's logs included
        journal = lab.run(router, ["journalctl", "--no-pager", "-o", "cat"], check=True).stdout
        assert journal and PSK not in journal, router
