# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The how-to's pair on real routers: playbooks/site.yml over SSH, with the routers' own /usr/bin/python3, as a user
runs it; then a real reboot of both, which must bring everything back with no Ansible run; then removal.

The tests of this module run in order on one lab (each step builds on the one before), as a user's session would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from support.vmlab import ROOT, ansible_env, boot

pytestmark = pytest.mark.vm

LAB = "pair"
ROUTERS = ("router_a", "router_b")
SITE = os.path.join(ROOT, "playbooks", "site.yml")
# the files and units of ours a router may hold; absent must leave none of them
OURS = ["/etc/overlay-gre", "/etc/sysctl.d/90-overlay-gre.conf", "/usr/local/sbin/overlay-gre-keepalive"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    inventory = tmp_path_factory.mktemp("inventory")
    # The how-to's sites as a user writes them (inventories/example: groups and host_vars); the lab's inventory,
    # given after it, says how to reach each router (lab/vm's ssh_config through the lab's namespace).
    (inventory / "sites").mkdir()
    (inventory / "sites" / "hosts.yml").write_text(
        "---\ngre_routers:\n  hosts:\n    router_a:\n    router_b:\n", encoding="utf-8")
    (inventory / "sites" / "host_vars").symlink_to(os.path.join(ROOT, "inventories", "example", "host_vars"))
    for found in boot(LAB, "lab/topologies/howto.yml", str(inventory / "lab")):
        found.inventories = [str(inventory / "sites"), str(inventory / "lab" / "hosts.yml")]
        yield found


def playbook(lab, *args):
    argv = ["ansible-playbook"]
    for inventory in lab.inventories:
        argv += ["-i", inventory]
    proc = subprocess.run(argv + [SITE] + list(args), capture_output=True, text=True, check=False, cwd=ROOT,
                          env=ansible_env())
    return proc


def recap(proc):
    """{host: {'ok': N, 'changed': N, 'failed': N, ...}} from the PLAY RECAP."""
    found = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", proc.stdout, re.M):
        found[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return found


def converged(proc, changed):
    counts = recap(proc)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    for router in ROUTERS:
        assert counts[router]["failed"] == 0 and counts[router]["unreachable"] == 0, counts
        if changed:
            assert counts[router]["changed"] > 0, counts
        else:
            assert counts[router]["changed"] == 0, proc.stdout[-6000:]


def ping(lab, source, target):
    return lab.run(source, ["ping", "-c", "2", "-i", "0.2", "-W", "2", target]).returncode == 0


def kernel_state(lab, router):
    """What the router's kernel reports of everything the role manages: links (kind, GRE settings, MTU, state),
    IPv4 addresses, routes of the main table, forwarding, and the firewall's rules (no counters)."""
    links = []
    for link in json.loads(lab.run(router, ["ip", "-d", "-j", "link", "show"], check=True).stdout):
        info = link.get("linkinfo", {})
        links.append({"name": link["ifname"], "mtu": link.get("mtu"), "up": "UP" in link.get("flags", []),
                      "kind": info.get("info_kind"), "data": info.get("info_data")})
    addresses = lab.run(router, ["ip", "-4", "-o", "addr", "show"], check=True).stdout.split("\n")
    addresses = sorted(" ".join(line.split()[1:4]) for line in addresses if line.strip())
    routes = sorted(lab.run(router, ["ip", "-4", "route", "show", "table", "main"], check=True).stdout.splitlines())
    forwarding = lab.run(router, ["sysctl", "-n", "net.ipv4.ip_forward"], check=True).stdout.strip()
    rules = [line for line in lab.run(router, ["iptables-save"], check=True).stdout.splitlines()
             if line.startswith(("-A", "*", ":"))]
    rules = [re.sub(r" \[\d+:\d+\]$", "", line) for line in rules]
    return {"links": sorted(links, key=lambda l: l["name"]), "addresses": addresses, "routes": routes,
            "forwarding": forwarding, "rules": rules}


def units_of_ours(lab, router):
    # exits 1 when no unit matches
    out = lab.run(router, ["systemctl", "list-unit-files", "--no-legend", "--plain", "overlay-gre*"]).stdout
    return dict(line.split()[:2] for line in out.splitlines() if line.strip())


def no_failed_unit(lab, router):
    failed = lab.run(router, ["systemctl", "--failed", "--no-legend", "--plain"], check=True).stdout.strip()
    assert failed == "", "%s: %s" % (router, failed)


STATE = {}


def test_before_converge_the_sites_do_not_reach_each_other(lab):
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


def test_a_real_reboot_brings_it_all_back_with_no_ansible_run(lab):
    boot_ids = {r: lab.run(r, ["cat", "/proc/sys/kernel/random/boot_id"], check=True).stdout for r in ROUTERS}
    argv = ["ansible"]
    for inventory in lab.inventories:
        argv += ["-i", inventory]
    proc = subprocess.run(argv + ["gre_routers", "-m", "ansible.builtin.reboot", "-a", "reboot_timeout=300"],
                          capture_output=True, text=True, check=False, cwd=ROOT, env=ansible_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for router in ROUTERS:
        assert lab.run(router, ["cat", "/proc/sys/kernel/random/boot_id"], check=True).stdout != boot_ids[router]
        state = lab.run(router, ["systemctl", "is-system-running", "--wait"], timeout=300).stdout.strip()
        assert state == "running", "%s: %s" % (router, state)
        no_failed_unit(lab, router)
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
