# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the real-router tests (tests/vm) share: lab/vm run as a command, and a lab booted for a module and stopped after it
(lab/vm down saves each router's journal of every boot, its failed units and console to the lab's evidence folder,
tests/output/vm/NAME, also when a test failed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

import vm  # lab/vm.py

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB_VM = os.path.join(ROOT, "lab", "vm")
# The virtualenv whose ansible-core runs the tests' playbooks: .venv, or $OVERLAY_GRE_ANSIBLE_VENV (scripts/test-all runs
# the how-to's pair with .venv-core218 too, the oldest ansible-core that meta/runtime.yml admits)
VENV_BIN = os.path.join(os.path.abspath(os.environ.get("OVERLAY_GRE_ANSIBLE_VENV", os.path.join(ROOT, ".venv"))), "bin")
SITE = os.path.join(ROOT, "playbooks", "site.yml")
ROUTERS = ("router_a", "router_b")


def lab_name(base):
    """The name of a test's lab: BASE, after $LAB_VM_PREFIX when set (two checkouts testing at once)."""
    return os.environ.get("LAB_VM_PREFIX", "") + base


def lab_vm(*args, check=True):
    proc = subprocess.run([LAB_VM] + list(args), stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, cwd=ROOT)
    if check and proc.returncode != 0:
        pytest.fail("lab/vm %s exited %d:\n%s%s" % (" ".join(args), proc.returncode, proc.stdout, proc.stderr),
                    pytrace=False)
    return proc


def ansible_env():
    """The environment of an Ansible command run by a test: the checkout's virtualenv first."""
    return dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ["PATH"], ANSIBLE_FORCE_COLOR="0",
                ANSIBLE_NOCOLOR="1")


def boot(name, topology, inventory):
    """Boot lab NAME from TOPOLOGY (writing its Ansible inventory into INVENTORY); yields the vm.Lab, then downs it."""
    if os.geteuid() != 0:
        pytest.fail("the real-router lab needs root (network namespaces, UML kernels)", pytrace=False)
    lab_vm("down", "--lab", name, check=False)  # an earlier run's lab of this name, if a crash left one
    try:
        lab_vm("up", os.path.join(ROOT, topology), "--lab", name, "--inventory", inventory)
        found = vm.Lab.find(name)
        found.inventory = inventory
        yield found
    finally:
        lab_vm("down", "--lab", name, check=False)


# ---- the how-to's sites on real routers (playbooks/site.yml) ----

def boot_sites(name, inventory, group_vars=None, topology="lab/topologies/howto.yml",
               sites="inventories/example/host_vars", routers=ROUTERS, lan_hosts=()):
    """Boot lab NAME of TOPOLOGY (default: the how-to's), for playbooks/site.yml on its ROUTERS; yields the vm.Lab,
    then downs it.

    INVENTORY (a pathlib.Path, empty) gets the sites as a user writes them (a copy of the host_vars folder SITES, or
    none, which a test may edit as a user edits an inventory: INVENTORY/sites/host_vars/NAME.yml; GROUP_VARS for
    gre_routers; LAN_HOSTS, machines of the topology in the group gre_lan_hosts) and, given after it, the lab's
    inventory, which says how to reach each machine (lab/vm's ssh_config through the lab's namespace)."""
    (inventory / "sites").mkdir()
    groups = "---\ngre_routers:\n  hosts:\n" + "".join("    %s:\n" % router for router in routers)
    if lan_hosts:
        groups += "gre_lan_hosts:\n  hosts:\n" + "".join("    %s:\n" % host for host in lan_hosts)
    (inventory / "sites" / "hosts.yml").write_text(groups, encoding="utf-8")
    if sites:
        shutil.copytree(os.path.join(ROOT, sites), inventory / "sites" / "host_vars")
    else:
        (inventory / "sites" / "host_vars").mkdir()
    if group_vars:
        (inventory / "sites" / "group_vars").mkdir()
        (inventory / "sites" / "group_vars" / "gre_routers.yml").write_text(
            "---\n" + json.dumps(group_vars) + "\n", encoding="utf-8")
    for found in boot(name, topology, str(inventory / "lab")):
        found.inventories = [str(inventory / "sites"), str(inventory / "lab" / "hosts.yml")]
        found.routers = tuple(routers)
        found.lan_hosts = tuple(lan_hosts)
        found.host_vars = inventory / "sites" / "host_vars"
        yield found


def playbook(lab, *args, site=SITE, collections=None):
    """ansible-playbook SITE (this checkout's playbooks/site.yml) on LAB's inventories with ARGS; with COLLECTIONS, that
    folder alone on the collections path (an installed artefact)."""
    argv = ["ansible-playbook"]
    for inventory in lab.inventories:
        argv += ["-i", inventory]
    env = ansible_env()
    if collections:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    return subprocess.run(argv + [site] + list(args), stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, cwd=ROOT,
                          env=env)


def recap(proc):
    """{host: {'ok': N, 'changed': N, 'failed': N, ...}} from the PLAY RECAP."""
    found = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", proc.stdout, re.M):
        found[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return found


def converged(proc, changed):
    """The run passed on every router of the play, each reporting changes (CHANGED true) or none (false; None: either)."""
    counts = recap(proc)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert counts, proc.stdout[-3000:]
    for router, count in counts.items():
        assert count["failed"] == 0 and count["unreachable"] == 0, counts
        if changed is None:
            continue
        if changed:
            assert count["changed"] > 0, counts
        else:
            assert count["changed"] == 0, proc.stdout[-6000:]


def ping(lab, source, target):
    return lab.run(source, ["ping", "-c", "2", "-i", "0.2", "-W", "2", target]).returncode == 0


def kernel_state(lab, router):
    """What the router's kernel reports of everything the role manages: links (kind, GRE settings, MTU, state),
    IPv4 addresses, routes of the main table, forwarding, and the firewall's rules (no counters, no empty table)."""
    links = []
    for link in json.loads(lab.run(router, ["ip", "-d", "-j", "link", "show"], check=True).stdout):
        info = link.get("linkinfo", {})
        links.append({"name": link["ifname"], "mtu": link.get("mtu"), "up": "UP" in link.get("flags", []),
                      "kind": info.get("info_kind"), "data": info.get("info_data")})
    addresses = lab.run(router, ["ip", "-4", "-o", "addr", "show"], check=True).stdout.split("\n")
    addresses = sorted(" ".join(line.split()[1:4]) for line in addresses if line.strip())
    routes = sorted(lab.run(router, ["ip", "-4", "route", "show", "table", "main"], check=True).stdout.splitlines())
    forwarding = lab.run(router, ["sysctl", "-n", "net.ipv4.ip_forward"], check=True).stdout.strip()
    # the rules and the chains of our own or with a policy other than the default, each after its table's name: a
    # table that a run loaded and left empty (every built-in chain ACCEPT, no rule) is the same firewall as none
    rules, table = [], None
    for line in lab.run(router, ["iptables-save"], check=True).stdout.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A") or (line.startswith(":") and not re.match(r":[A-Z]+ ACCEPT ", line)):
            rules.append("%s %s" % (table, re.sub(r" \[\d+:\d+\]$", "", line)))
    return {"links": sorted(links, key=lambda l: l["name"]), "addresses": addresses, "routes": routes,
            "forwarding": forwarding, "rules": rules}


def harden(lab):
    """The routers' own firewall, as a careful administrator sets it by hand: INPUT accepts the loopback, replies and
    SSH, FORWARD nothing, and both drop what nothing accepts. The rest must come from the role's rules."""
    for router in lab.routers:
        for rule in (["-i", "lo"], ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED"], ["-p", "tcp", "--dport", "22"]):
            lab.run(router, ["iptables", "-A", "INPUT"] + rule + ["-j", "ACCEPT"], check=True)
        for chain in ("INPUT", "FORWARD"):
            lab.run(router, ["iptables", "-P", chain, "DROP"], check=True)


def units_of_ours(lab, router):
    # exits 1 when no unit matches
    out = lab.run(router, ["systemctl", "list-unit-files", "--no-legend", "--plain", "overlay-gre*"]).stdout
    return dict(line.split()[:2] for line in out.splitlines() if line.strip())


def no_failed_unit(lab, router):
    failed = lab.run(router, ["systemctl", "--failed", "--no-legend", "--plain"], check=True).stdout.strip()
    assert failed == "", "%s: %s" % (router, failed)


def nothing_of_ours_left(lab, router):
    """No unit, file or sender state of ours on ROUTER (in /run/overlay-gre only the router's lock stays: the modules'
    own, gone at the next boot), and no unit failed."""
    no_failed_unit(lab, router)
    assert units_of_ours(lab, router) == {}
    for path in ("/etc/overlay-gre", "/usr/local/sbin/overlay-gre-keepalive", "/usr/local/sbin/overlay-gre-apply"):
        assert lab.run(router, ["test", "-e", path]).returncode != 0, "%s keeps %s" % (router, path)
    left = lab.run(router, ["ls", "-A", "/run/overlay-gre"]).stdout.split()
    assert [name for name in left if not name.endswith(".lock")] == [], (router, left)


def reboot_routers(lab, machines=None, failed_units=0):
    """ansible.builtin.reboot of the lab's routers and LAN hosts of the role gre_lan_host, or of MACHINES (systemctl
    reboot, then it waits for SSH); each comes back a new boot, with systemd running and no failed unit (or, with
    FAILED_UNITS, with systemd "degraded" by that many failed units)."""
    machines = tuple(machines or lab.routers + getattr(lab, "lan_hosts", ()))
    boot_ids = {r: lab.run(r, ["cat", "/proc/sys/kernel/random/boot_id"], check=True).stdout for r in machines}
    argv = ["ansible"]
    for inventory in lab.inventories:
        argv += ["-i", inventory]
    proc = subprocess.run(argv + [":".join(machines), "-m", "ansible.builtin.reboot", "-a", "reboot_timeout=300"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, cwd=ROOT, env=ansible_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for router in machines:
        assert lab.run(router, ["cat", "/proc/sys/kernel/random/boot_id"], check=True).stdout != boot_ids[router]
        state = lab.run(router, ["systemctl", "is-system-running", "--wait"], timeout=300).stdout.strip()
        if failed_units:
            assert state == "degraded", "%s: %s" % (router, state)
            failed = lab.run(router, ["systemctl", "--failed", "--no-legend", "--plain"], check=True).stdout.splitlines()
            assert len(failed) == failed_units, "%s: %s" % (router, failed)
        else:
            assert state == "running", "%s: %s" % (router, state)
            no_failed_unit(lab, router)


class Capture(object):
    """tcpdump (filter BPF) on the lab's side of machine NAME's port IFNAME (outside the machine): what crossed the wire,
    for the duration of a with-block; .lines holds one line a packet."""

    def __init__(self, lab, name, ifname, bpf):
        self.argv = lab.in_lab_ns(["tcpdump", "-i", lab.port(name, ifname), "-n", "-l", "-p", bpf])
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


TCP_SERVER = r"""
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 5001)); srv.listen(1); srv.settimeout(30); print("listening", flush=True)
conn, peer = srv.accept(); conn.settimeout(20); total = 0
try:
    while True:
        data = conn.recv(65536)
        if not data: break
        total += len(data)
except OSError as error:
    print("server:", error, file=sys.stderr)
print(total, peer[0])
"""

TCP_CLIENT = r"""
import socket, sys
sock = socket.create_connection((sys.argv[1], 5001), timeout=20)
sock.sendall(b"x" * int(sys.argv[2])); sock.shutdown(socket.SHUT_WR); sock.recv(1); sock.close()
"""


def tcp_transfer(lab, source, target, address, size):
    """SIZE bytes over one TCP connection from SOURCE to ADDRESS (light host TARGET's): (bytes received, what failed).
    Both ends run the controller's Python in their namespaces (light hosts)."""
    server = lab.popen(target, [sys.executable, "-c", TCP_SERVER], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening", server.stderr.read()
        client = lab.run(source, [sys.executable, "-c", TCP_CLIENT, address, str(size)], timeout=120)
        out, err = server.communicate(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    received = int(out.split()[0]) if out.strip() else 0
    return received, (client.stderr.strip() + " " + err.strip()).strip()


# The how-to's two sites: each LAN host, the other one, and the address it reaches there.
CROSSINGS = (("host_a", "host_b", "20.10.1.10"), ("host_b", "host_a", "10.10.1.10"))
NO_PMTU = ["-p", "icmp", "--icmp-type", "fragmentation-needed", "-m", "comment", "--comment", "lab: no PMTU", "-j", "DROP"]


def assert_tcp_crosses_without_pmtu_discovery(lab, size=1 << 20):
    """With ICMP "fragmentation needed" dropped on both routers (as by many firewalls on the way), SIZE bytes of TCP
    cross the tunnel both ways: only the tunnel's MSS clamping keeps the segments within its MTU."""
    for router in ROUTERS:
        for chain in ("OUTPUT", "FORWARD"):
            lab.run(router, ["iptables", "-I", chain] + NO_PMTU, check=True)
    try:
        for source, target, address in CROSSINGS:
            received, failure = tcp_transfer(lab, source, target, address, size)
            assert received == size, "%s -> %s: %d bytes of %d received (%s)" % (source, target, received, size, failure)
    finally:
        for router in ROUTERS:
            for chain in ("OUTPUT", "FORWARD"):
                lab.run(router, ["iptables", "-D", chain] + NO_PMTU, check=True)


# Only reached when something is broken: what a test waits for that does not come within this long fails it.
WAIT_LIMIT = 60


def wait_for(what, check, seen=None):
    """Poll CHECK until it is true; fail the test, naming WHAT (and what SEEN(), when given, returns then), when it is
    not within WAIT_LIMIT seconds."""
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    pytest.fail("not within %d s: %s%s" % (WAIT_LIMIT, what, "; seen then:\n%s" % seen() if seen else ""), pytrace=False)
