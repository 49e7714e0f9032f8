# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the real-router tests (tests/vm) share: lab/vm run as a command, and a lab booted for a module and stopped after it
(lab/vm down saves each router's journal of every boot, its failed units and console to the lab's evidence folder,
tests/output/vm/NAME, also when a test failed)."""

from __future__ import annotations

import os
import subprocess

import pytest

import vm  # lab/vm.py

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB_VM = os.path.join(ROOT, "lab", "vm")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")


def lab_vm(*args, check=True):
    proc = subprocess.run([LAB_VM] + list(args), capture_output=True, text=True, check=False, cwd=ROOT)
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
