# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.gre.netns runs every command inside the namespace that ansible_host names."""

from __future__ import annotations

import os

import pytest

from support.lab import run_ansible, sh

pytestmark = pytest.mark.lab


def _adhoc(netns, module, args, *extra):
    return run_ansible(["ansible", "all", "-i", "%s," % netns, "-c", "overlay.gre.netns", "-m", module, "-a", args] + list(extra))


def test_command_runs_inside_the_namespace(netns):
    sh(netns, "ip link add lab0 type veth peer name lab1 && ip addr add 198.51.100.7/24 dev lab0")
    run = _adhoc(netns, "ansible.builtin.command", "ip -o addr")
    assert run.returncode == 0, run.output
    stdout = run.results[0]["result"]["stdout"]
    assert "198.51.100.7/24" in stdout
    # exactly the namespace's interfaces, none of the host's
    assert _ifnames(stdout) == _ifnames(sh(netns, "ip -o addr").stdout) == {"lo", "lab0"}
    assert _ifnames(os.popen("ip -o addr").read()) != {"lo", "lab0"}


def _ifnames(ip_o_output):
    return {line.split()[1] for line in ip_o_output.splitlines() if line.strip()}


def test_raw_runs_inside_the_namespace(netns):
    sh(netns, "ip link add raw0 type veth peer name raw1")
    run = _adhoc(netns, "ansible.builtin.raw", "ip -o link show raw0")
    assert run.returncode == 0, run.output
    assert "raw0@raw1" in run.results[0]["result"]["stdout"]


def test_inventory_name_with_ansible_host(netns, tmp_path):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("router ansible_connection=overlay.gre.netns ansible_host=%s\n" % netns)
    sh(netns, "ip link add named0 type veth peer name named1")
    run = run_ansible(["ansible", "router", "-i", str(inventory), "-m", "ansible.builtin.command", "-a", "ip -o link show named0"])
    assert run.returncode == 0, run.output
    assert "named0@named1" in run.results[0]["result"]["stdout"]


def test_files_are_copied_as_on_the_local_machine(netns, tmp_path):
    dest = tmp_path / "copied.txt"
    run = _adhoc(netns, "ansible.builtin.copy", "content=hello dest=%s" % dest)
    assert run.returncode == 0, run.output
    assert run.results[0]["result"]["changed"] is True
    assert dest.read_text() == "hello"


def test_missing_namespace_is_named_in_the_error():
    run = _adhoc("ogt-no-such-ns", "ansible.builtin.command", "true")
    assert run.returncode != 0
    assert "network namespace 'ogt-no-such-ns' does not exist" in run.output
    assert "ip netns add ogt-no-such-ns" in run.output
