# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keepalive sender's route keeping (through `ip`) on a veth in a namespace: no GRE needed, runs on the host too."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support.keepalive import ROOT
from support.lab import sh


KEEP = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from support.keepalive import load_keepalive
ka = load_keepalive()
keeper = ka.RouteKeeper("v1", ka.normalise_config({"tunnel": "v1", "local": "192.0.2.1", "remote": "192.0.2.2",
                                                   "routes": json.loads(sys.argv[2])})["routes"], print)
for state in sys.argv[3:]:
    print(json.dumps(keeper.apply(state)))
"""


def keep(netns, routes, *states):
    proc = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", KEEP, os.path.join(ROOT, "tests"), json.dumps(routes)]
                          + list(states), capture_output=True, text=True, check=True)
    return [json.loads(line) if line.startswith("[") else line for line in proc.stdout.splitlines()]


def routes(netns):
    return sorted((r["dst"], r.get("metric", 0), r.get("protocol", "boot"))
                  for r in json.loads(sh(netns, "ip -j route show dev v1").stdout or "[]") if r.get("protocol") != "kernel")


@pytest.fixture
def link(netns):
    sh(netns, "ip link add v1 type veth peer v2 && ip link set v1 up && ip link set v2 up && ip addr add 192.0.2.1/30 dev v1")
    return netns


def test_up_adds_down_withdraws_and_only_what_differs(link):
    wanted = ["20.10.1.0/24", {"dest": "30.0.0.0/8", "metric": 5}]
    assert keep(link, wanted, "up", "up", "down", "down", "up") == [
        ["add 20.10.1.0/24", "add 30.0.0.0/8"], [], ["del 20.10.1.0/24", "del 30.0.0.0/8"], [], ["add 20.10.1.0/24", "add 30.0.0.0/8"]]
    assert routes(link) == [("20.10.1.0/24", 0, "static"), ("30.0.0.0/8", 5, "static")]
    assert sh(link, "ip route show 20.10.1.0/24").stdout.split() == ["20.10.1.0/24", "dev", "v1", "proto", "static", "scope", "link"]


def test_adopts_routes_made_by_ip_or_the_gre_tunnel_module_and_removes_stale_ones(link):
    sh(link, "ip route add 20.10.1.0/24 dev v1 && ip route add 40.0.0.0/8 dev v1 && ip route add 50.0.0.0/8 dev v1 proto bird")
    assert keep(link, ["20.10.1.0/24"], "up", "down") == [["del 40.0.0.0/8 (not configured)"], ["del 20.10.1.0/24"]]
    assert routes(link) == [("50.0.0.0/8", 0, "bird")]  # a routing daemon's route is not ours


def test_a_backup_route_with_the_same_metric_is_named_in_the_log(link):
    sh(link, "ip link add v3 type veth peer v4 && ip link set v3 up && ip route add 20.10.1.0/24 dev v3")
    out = keep(link, ["20.10.1.0/24"], "up", "up")
    assert out[0].startswith("cannot add route 20.10.1.0/24 through v1") and "higher one" in out[0]
    assert out[1:] == [[], []]  # said once
