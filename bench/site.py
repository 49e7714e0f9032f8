#!/usr/bin/env python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/site.yml on the lab's router pair, first and unchanged, beside an ansible.builtin.ping play on the
same hosts in the same run; prints the ratios (goal: the unchanged run within 5x of the ping play).

Two measures, each against a ping play on exactly the hosts its site.yml run touches:
  the pair      site.yml --limit gre_routers (the role gre_router on router_a and router_b) against ping on both;
  the whole lab site.yml as users run it (the routers, then the LAN host host_c) against ping on all three.

Run it in the lab:  lab/run --results bench/output/site -- .venv/bin/python bench/site.py
"""

from __future__ import annotations

import os
import re
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
- name: Reach the hosts site.yml changes (the baseline)
  hosts: gre_routers:gre_lan_hosts
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
    site = ["ansible-playbook"] + INVENTORY + [os.path.join(ROOT, "playbooks", "site.yml")]
    pair = ["--limit", "gre_routers"]
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
            handle.write(PING_PLAY)
        ping = ["ansible-playbook"] + INVENTORY + [handle.name]
        ping_pair = [seconds(ping + pair)]
        ping_all = [seconds(ping)]
        first_s = seconds(site)
        again_s, out = timed(site)
        again_pair_s, out_pair = timed(site + pair)
        ping_pair.append(seconds(ping + pair))
        ping_all.append(seconds(ping))
        os.unlink(handle.name)
    finally:
        topo.down()
    for text in (out, out_pair):
        if "changed=0" not in text or re.search(r"(changed|failed)=[1-9]", text):
            sys.exit("bench: an unchanged site.yml run changed something or failed:\n" + text)
    missed = False
    for label, pings, again in (("the pair (--limit gre_routers)", ping_pair, again_pair_s), ("the whole lab (routers, LAN host)", ping_all, again_s)):
        ref = min(pings)
        ratio = again / ref
        missed = missed or ratio > 5
        print("%s" % label)
        print("  ping play                    %6.1f s  (best of 2: %.1f, %.1f)" % (ref, pings[0], pings[1]))
        print("  site.yml, unchanged re-run   %6.1f s  ratio to ping play %.1fx  (goal: within 5x: %s)"
              % (again, ratio, "met" if ratio <= 5 else "MISSED"))
    print("site.yml, first run (whole lab) %6.1f s  ratio to its ping play %.1fx" % (first_s, first_s / min(ping_all)))
    if missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
