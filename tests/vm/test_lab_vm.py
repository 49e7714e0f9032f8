# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lab/vm, the real-router lab: the how-to's routers boot Debian 12 with systemd, answer SSH and Ansible, come back
from a real reboot, and `down` leaves nothing behind.

Runs on the host (the routers are User-Mode Linux kernels in the lab's own network namespaces): `pytest -m vm`.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

import vm  # lab/vm.py
from support.vmlab import ROOT, ansible_env, boot, lab_name, lab_vm

pytestmark = pytest.mark.vm

LAB = lab_name("smoke")
ROUTERS = ("router_a", "router_b")
# Only reached when something is broken: a router that is not back after this long is reported with its console.
REBOOT_LIMIT = 300


def lab_processes():
    """The pids of every process whose command line names this lab's runtime folder (its UML kernels)."""
    marker = os.path.join(vm.RUN_ROOT, LAB).encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as handle:
                    if marker in handle.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def lab_namespaces():
    names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return sorted(n for n in names if n == vm.NS_PREFIX + LAB or n.startswith(vm.NS_PREFIX + LAB + "-"))


def boot_id(lab, host):
    proc = lab.run(host, ["cat", "/proc/sys/kernel/random/boot_id"], timeout=60)
    return proc.stdout.strip() if proc.returncode == 0 else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from boot(LAB, "lab/topologies/howto.yml", str(tmp_path_factory.mktemp("inventory")))


def test_routers_run_systemd_with_no_failed_unit(lab):
    for router in ROUTERS:
        assert lab.run(router, ["readlink", "/proc/1/exe"], check=True).stdout.strip() == "/usr/lib/systemd/systemd"
        assert lab.run(router, ["systemctl", "is-system-running"]).stdout.strip() == "running"
        assert lab.run(router, ["systemctl", "--failed", "--no-legend", "--plain"], check=True).stdout.strip() == ""
        os_release = lab.run(router, ["cat", "/etc/os-release"], check=True).stdout
        assert 'VERSION_CODENAME=bookworm' in os_release
        # Debian's own Python, with nothing of the controller's virtualenv: no pyroute2
        assert lab.run(router, ["/usr/bin/python3", "-c", "import pyroute2"]).returncode != 0


def test_addresses_and_names_as_in_the_howto(lab):
    expected = {"router_a": {"bond0": "172.19.1.1/24", "eth1": "10.10.1.1/24"},
                "router_b": {"bond0": "172.19.1.2/24", "eth1": "20.10.1.1/24"}}
    for router, interfaces in expected.items():
        for ifname, address in interfaces.items():
            shown = lab.run(router, ["ip", "-o", "-4", "addr", "show", "dev", ifname], check=True).stdout
            assert " %s " % address in shown, (router, ifname, shown)
        # each router has its own SSH host key (the image ships none)
    keys = {lab.run(r, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"], check=True).stdout.split()[1] for r in ROUTERS}
    assert len(keys) == 2
    # the LAN hosts sit on their site's LAN, behind their router; before any tunnel, no site reaches the other
    assert lab.run("host_a", ["ping", "-c", "1", "-W", "2", "10.10.1.1"]).returncode == 0
    assert lab.run("host_b", ["ping", "-c", "1", "-W", "2", "20.10.1.1"]).returncode == 0
    assert lab.run("router_a", ["ping", "-c", "1", "-W", "2", "172.19.1.2"]).returncode == 0
    assert lab.run("host_a", ["ping", "-c", "1", "-W", "2", "20.10.1.10"]).returncode != 0


def test_lab_vm_ssh_exits_with_the_commands_status(lab):
    assert lab_vm("ssh", "router_a", "--lab", LAB, "--", "sh", "-c", "exit 3", check=False).returncode == 3
    assert lab_vm("ssh", "host_b", "--lab", LAB, "--", "false", check=False).returncode == 1
    assert lab_vm("ssh", "router_b", "--lab", LAB, "--", "hostname").stdout.strip() == "router-b"


def test_ansible_reaches_the_routers_over_ssh_with_the_written_inventory(lab):
    env = ansible_env()
    proc = subprocess.run(["ansible", "-i", lab.inventory, "router_a,router_b", "-m", "ansible.builtin.ping"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == 2, proc.stdout
    # over the real ssh connection, with the router's own Python
    proc = subprocess.run(["ansible", "-i", lab.inventory, "router_a", "-m", "ansible.builtin.setup", "-a",
                           "filter=ansible_python"], stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r'"executable": "/usr/bin/python3[.0-9]*"', proc.stdout), proc.stdout


def test_systemctl_reboot_brings_a_router_back(lab):
    before = boot_id(lab, "router_a")
    assert before
    lab.run("router_a", ["systemctl", "reboot"], timeout=60)
    deadline = time.monotonic() + REBOOT_LIMIT
    after = None
    while time.monotonic() < deadline:
        after = boot_id(lab, "router_a")
        if after and after != before:
            break
        time.sleep(1)
    else:
        pytest.fail("router_a did not come back from its reboot; console:\n%s" % lab._console_tail("router_a"))
    state = lab.run("router_a", ["systemctl", "is-system-running", "--wait"], timeout=REBOOT_LIMIT).stdout.strip()
    assert state == "running"
    assert lab.run("router_a", ["systemctl", "--failed", "--no-legend", "--plain"], check=True).stdout.strip() == ""
    # the same machine: its own host key (checked by ssh against known_hosts) and addresses
    shown = lab.run("router_a", ["ip", "-o", "-4", "addr", "show", "dev", "bond0"], check=True).stdout
    assert " 172.19.1.1/24 " in shown
    assert lab.run("router_b", ["ping", "-c", "1", "-W", "2", "172.19.1.1"]).returncode == 0


def test_down_leaves_no_process_and_no_namespace(lab):
    assert lab_processes(), "the lab's kernels should run before down"
    assert lab_namespaces()
    lab_vm("down", "--lab", LAB)
    deadline = time.monotonic() + 30
    while lab_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert lab_processes() == []
    assert lab_namespaces() == []
    # the lab's package repository server went with it
    assert not os.path.exists("/proc/%d" % lab.data["repository_pid"]) or \
        open("/proc/%d/stat" % lab.data["repository_pid"]).read().split(")")[-1].split()[0] == "Z"
    # safe to run again
    assert lab_vm("down", "--lab", LAB, check=False).returncode == 0
