# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An upgrade on the how-to's pair of real routers: the routers converged by overlay.gre 0.3.0 (the artefact that
release shipped, tests/vm/data/overlay-gre-0.3.0.tar.gz, installed as a user installs it), then by this version. The
network stays as it was (the kernel reports the same links, addresses, routes, forwarding and rules); only the boot
files change, from 0.3.0's shell script to the data that overlay-gre-apply applies; a second run changes nothing; a
real reboot brings back the same network, with nothing of 0.3.0's files left.

The tests of this module run in order on one lab (each step builds on the one before).
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from support.vmlab import (ROOT, ROUTERS, ansible_env, boot_sites, converged, kernel_state, lab_name, no_failed_unit,
                           ping, playbook, reboot_routers)

pytestmark = pytest.mark.vm

LAB = lab_name("upgrade")
# 0.3.0's artefact: `git archive e044ccd` (galaxy.yml's version 0.3.0), then `ansible-galaxy collection build`
OLD = os.path.join(ROOT, "tests", "vm", "data", "overlay-gre-0.3.0.tar.gz")
STATE = {}
BOOT_TASK = ("Write or remove the boot data, its program and units and the keepalive senders, as gre_router_persist and "
             "gre_router_keepalive say")
# what the role keeps on a router for its boot, and the units it enables
BOOT_FILES = ["sh", "-c", "find /etc/overlay-gre -type f; find /etc/systemd/system /usr/local/sbin -name '*overlay-gre*'"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from boot_sites(LAB, tmp_path_factory.mktemp("inventory"))


@pytest.fixture(scope="module")
def old_collections(tmp_path_factory):
    """A collections folder holding overlay.gre 0.3.0, installed from its artefact."""
    path = tmp_path_factory.mktemp("collections-0.3.0")
    # (--force: this checkout's galaxy.yml says 0.3.0 too, and ansible-galaxy would find it installed)
    proc = subprocess.run(["ansible-galaxy", "collection", "install", "--offline", "--force", "-p", str(path), OLD],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
                          env=dict(ansible_env(), ANSIBLE_COLLECTIONS_PATH=str(path)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = path / "ansible_collections" / "overlay" / "gre" / "playbooks" / "site.yml"
    assert site.is_file(), proc.stdout
    return path


def old_playbook(lab, collections):
    """0.3.0's playbooks/site.yml, with 0.3.0 alone on the collections path."""
    site = os.path.join(str(collections), "ansible_collections", "overlay", "gre", "playbooks", "site.yml")
    return playbook(lab, site=site, collections=collections)


def changed_tasks(proc):
    """{task name} of the tasks that reported a change on some host (the default callback's output)."""
    found, task = set(), None
    for line in proc.stdout.splitlines():
        match = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.*)\] \**$", line)
        if match:
            task = match.group(1)
        elif line.startswith("changed: ") and task:
            found.add(task)
    return found


def boot_files(lab, router):
    return sorted(lab.run(router, BOOT_FILES, check=True).stdout.split())


def test_0_3_0_converges_the_pair(lab, old_collections):
    proc = old_playbook(lab, old_collections)
    converged(proc, changed=True)
    assert ping(lab, "host_a", "20.10.1.10")
    assert ping(lab, "host_b", "10.10.1.10")
    STATE["kernel"] = {router: kernel_state(lab, router) for router in ROUTERS}
    STATE["files"] = {router: boot_files(lab, router) for router in ROUTERS}
    # 0.3.0 kept a shell script for the boot
    assert any(path.endswith(".sh") for path in STATE["files"]["router_a"]), STATE["files"]


def test_this_version_keeps_the_network_and_changes_only_the_boot_files(lab):
    proc = playbook(lab)
    converged(proc, changed=True)
    changed = changed_tasks(proc)
    # the one task of tasks/files.yml (service_files): 0.3.0's boot script gone, the boot data and its program written
    assert [task.split(" : ")[-1] for task in changed] == [BOOT_TASK], changed
    for router in ROUTERS:
        assert kernel_state(lab, router) == STATE["kernel"][router], router
        files = boot_files(lab, router)
        assert not any(path.endswith(".sh") for path in files), files
        assert "/usr/local/sbin/overlay-gre-apply" in files, files
        no_failed_unit(lab, router)
    assert ping(lab, "host_a", "20.10.1.10")
    STATE["new files"] = {router: boot_files(lab, router) for router in ROUTERS}


def test_a_second_run_changes_nothing(lab):
    converged(playbook(lab), changed=False)


def test_after_a_real_reboot_the_same_network_and_no_file_of_0_3_0(lab):
    reboot_routers(lab)
    for router in ROUTERS:
        assert kernel_state(lab, router) == STATE["kernel"][router], router
        assert boot_files(lab, router) == STATE["new files"][router]
    assert ping(lab, "host_a", "20.10.1.10")
    assert ping(lab, "host_b", "10.10.1.10")
    converged(playbook(lab), changed=False)
