# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two ansible-playbook site.yml runs against the same routers at the same moment (two people, or a person and a
pipeline): the router's lock (plugins/module_utils/_lock.py) makes them take turns, so both succeed and the routers
end as one run leaves them; a third run then has nothing to do.

Each round first undoes part of what the role made (all of it: the tunnel, the firewall rules, forwarding and the boot
files; then the boot files alone), by hand as a failure or a person would, so that both runs race to change the same
things, not merely to read them.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from support.lab import ROOT, ansible_env, howto_inventory, ip_json, run_playbook, sh

pytestmark = pytest.mark.gre

SITE = os.path.join(ROOT, "playbooks", "site.yml")
ROUTERS = ("router_a", "router_b")
BOOT_FILES = "/etc/overlay-gre /etc/sysctl.d/90-overlay-gre.conf /etc/systemd/system/overlay-gre@.service"
RESETS = {
    "tunnel": "ip -j -d link show type gre | grep -o '\"ifname\":\"gre-[^\"]*' | cut -d'\"' -f4 | xargs -r -n1 ip link del",
    "firewall": "iptables -F && iptables -X && iptables -t nat -F && iptables -t nat -X && iptables -t mangle -F && iptables -t mangle -X",
    "forwarding": "sysctl -qw net.ipv4.ip_forward=0",
    # /etc/overlay-gre is each router's own folder (lab/topologies/howto.yml), mounted: its contents go
    "boot files": "rm -rf /etc/overlay-gre/* " + BOOT_FILES.replace("/etc/overlay-gre ", ""),
}
RESETS["all of it"] = "; ".join("{ %s; }" % command for command in RESETS.values())
# The rounds, each a reset then two runs at once: everything undone (both runs race to change every module's part),
# then the boot files alone (both race to write the same files and restart the same units while the kernel state is
# as they want it). Each round takes two site.yml runs in the lab's one-CPU kernel (about 2.5 minutes in make test),
# so not one round per kind.
ROUNDS = ("all of it", "boot files")


def _without_volatile(value):
    if isinstance(value, dict):
        return {k: _without_volatile(v) for k, v in value.items() if k not in ("ifindex", "link_index", "link", "operstate")}
    if isinstance(value, list):
        return [_without_volatile(v) for v in value]
    return value


def state(topo):
    """What the role leaves on the routers: links, addresses (but IPv6 link-local), routes, rules, forwarding, and its
    files (ip netns exec shows each router its own /etc, as the lab's topology gives each one)."""
    out = {}
    for host in ROUTERS:
        ns = topo.ns(host)
        addresses = ip_json(ns, "addr")
        for link in addresses:
            link["addr_info"] = [a for a in link.get("addr_info", []) if a.get("scope") != "link"]
        rules = [line for line in sh(ns, "iptables-save").stdout.splitlines() if not line.startswith(("#", ":"))]
        files = sh(ns, "for f in $(find %s -type f 2>/dev/null | sort); do echo \"== $f\"; cat \"$f\"; done" % BOOT_FILES).stdout
        out[host] = _without_volatile([ip_json(ns, "-d", "link"), addresses, ip_json(ns, "route", "show", "table", "all"), sorted(rules),
                                       sh(ns, "sysctl -n net.ipv4.ip_forward").stdout.strip(), files])
    return json.dumps(out, sort_keys=True, indent=1)


def reset(topo, kind):
    for host in ROUTERS:
        sh(topo.ns(host), RESETS[kind])


def recap(output):
    """{host: {"changed": n, "failed": n, ...}} from a run's PLAY RECAP."""
    found = {}
    for line in output.splitlines():
        words = line.replace(":", " ").split()
        if len(words) > 2 and words[0] in ROUTERS and "=" in line:
            found[words[0]] = dict(w.split("=", 1) for w in words[1:] if "=" in w)
    return found


def test_two_site_runs_at_once_take_turns_and_end_as_one_run_does(howto_topology, tmp_path):
    topo = howto_topology
    topo.inventory = howto_inventory(tmp_path, topo)
    single = run_playbook(SITE, topo.inventory)
    assert single.returncode == 0, single.output
    reference = state(topo)
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK="default")
    for number, kind in enumerate(ROUNDS):
        reset(topo, kind)
        assert state(topo) != reference, "the reset of %s changed nothing" % kind
        runs = [subprocess.Popen([os.path.join(os.path.dirname(env["LAB_PYTHON"]), "ansible-playbook"), "-i", topo.inventory, SITE],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env) for _run in range(2)]
        outputs = [run.communicate()[0] for run in runs]
        for run, output in zip(runs, outputs):  # with lock_timeout's 300 s, a run that gave up waiting would be a bug
            assert run.returncode == 0, "round %d (%s):\n%s" % (number + 1, kind, output)
        assert state(topo) == reference, "round %d (after resetting %s): the routers differ from one run's result" % (number + 1, kind)
    third = run_playbook(SITE, topo.inventory, env_extra={"ANSIBLE_STDOUT_CALLBACK": "default"})
    assert third.returncode == 0, third.output
    counts = recap(third.stdout)
    assert set(counts) == set(ROUTERS) and all(c["changed"] == "0" for c in counts.values()), third.stdout
