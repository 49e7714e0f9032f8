#!/usr/bin/env python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/site.yml on the lab's router pair, first and unchanged, beside an ansible.builtin.ping play on the
same hosts in the same run; prints the ratios (goal: the unchanged run within 5x of the ping play).

Run it in the lab:  lab/run --results bench/output/site -- .venv/bin/python bench/site.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests"), os.path.join(ROOT, "lab")]

import topology  # noqa: E402  pylint: disable=wrong-import-position
from support.lab import ansible_env  # noqa: E402  pylint: disable=wrong-import-position

INVENTORY = ["-i", os.path.join(ROOT, "inventories", "example"), "-i", os.path.join(ROOT, "inventories", "lab", "hosts.yml")]
PING_PLAY = """---
- name: Reach the routers (the baseline)
  hosts: gre_routers
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""


def timed(argv):
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK="default")
    start = time.monotonic()
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), argv[0])] + argv[1:], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit("bench: %s failed:\n%s%s" % (" ".join(argv), proc.stdout, proc.stderr))
    return elapsed, proc.stdout


def seconds(argv):
    return timed(argv)[0]


def main():
    topo = topology.Topology.load()
    topo.up()
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
            handle.write(PING_PLAY)
        ping_s = seconds(["ansible-playbook"] + INVENTORY + [handle.name])
        first_s = seconds(["ansible-playbook"] + INVENTORY + [os.path.join(ROOT, "playbooks", "site.yml")])
        again_s, out = timed(["ansible-playbook"] + INVENTORY + [os.path.join(ROOT, "playbooks", "site.yml")])
        ping2_s = seconds(["ansible-playbook"] + INVENTORY + [handle.name])
        os.unlink(handle.name)
    finally:
        topo.down()
    if "changed=0" not in out:
        sys.exit("bench: the second site.yml run changed something:\n" + out)
    ping_ref = min(ping_s, ping2_s)
    print("ping play (2 routers)        %6.1f s  (best of 2: %.1f, %.1f)" % (ping_ref, ping_s, ping2_s))
    print("site.yml, first run          %6.1f s  ratio to ping play %.1fx" % (first_s, first_s / ping_ref))
    print("site.yml, unchanged re-run   %6.1f s  ratio to ping play %.1fx  (goal: within 5x)" % (again_s, again_s / ping_ref))


if __name__ == "__main__":
    main()
