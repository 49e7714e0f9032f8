# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.gre.gre_tunnel's pure logic: input checks, parsing `ip -j` output, planning. No kernel involved;
the kernel's side is in tests/kernel/test_gre_tunnel.py. The `ip -j` samples below were captured in the lab."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ansible_collections.overlay.gre.plugins.module_utils import _gre_tunnel as g

LINKS = [
    {"ifindex": 2, "ifname": "gre0", "flags": ["NOARP"], "mtu": 1476,
     "linkinfo": {"info_kind": "gre", "info_data": {"remote": "any", "local": "any", "ttl": 0, "pmtudisc": False}}, "addr_info": []},
    {"ifindex": 7, "ifname": "up0", "flags": ["BROADCAST", "UP"], "mtu": 1500, "linkinfo": {"info_kind": "veth"}, "addr_info": []},
    {"ifindex": 9, "ifname": "t1", "flags": ["POINTOPOINT", "NOARP", "UP", "LOWER_UP"], "mtu": 1472, "ifalias": "overlay.gre.gre_tunnel",
     "linkinfo": {"info_kind": "gre", "info_data": {"remote": "172.19.1.2", "local": "172.19.1.1", "ttl": 64, "pmtudisc": True,
                                                    "ikey": "0.0.0.42", "okey": "0.0.0.42"}},
     "addr_info": [{"family": "inet", "local": "192.168.8.1", "address": "192.168.8.11", "prefixlen": 32},
                   {"family": "inet6", "local": "fe80::5efe:ac13:101", "prefixlen": 64, "scope": "link"}]},
    {"ifindex": 11, "ifname": "t3", "flags": ["POINTOPOINT", "NOARP"], "mtu": 1448,
     "linkinfo": {"info_kind": "ip6gre", "info_data": {"remote": "2001:db8::2", "local": "2001:db8::1", "link": "up0", "ttl": 0,
                                                       "encap_limit": 4, "ip6_tnl_f_use_orig_tclass": True, "flowlabel": "0x00000"}},
     "addr_info": []},
]
ROUTES = [
    {"type": "unicast", "dst": "20.10.1.0/24", "dev": "t1", "table": "main", "protocol": "boot", "scope": "link", "flags": []},
    {"type": "unicast", "dst": "192.168.8.11", "dev": "t1", "table": "main", "protocol": "kernel", "scope": "link", "flags": []},
    {"type": "local", "dst": "192.168.8.1", "dev": "t1", "table": "local", "protocol": "kernel", "flags": []},
    {"type": "unicast", "dst": "default", "dev": "t1", "table": "main", "protocol": "boot", "metric": 1024, "pref": "medium", "flags": []},
]


def live():
    return g.LiveState.from_ip_output(json.dumps(LINKS) + "\n" + json.dumps(ROUTES) + "\n")


BASE = {"name": "t1", "local": "172.19.1.1", "remote": "172.19.1.2", "key": 42, "ttl": 64,
        "addresses": [{"address": "192.168.8.1", "peer": "192.168.8.11"}], "routes": ["20.10.1.0/24", "::/0"]}


def want(**changes):
    params = dict(BASE)
    params.update(changes)
    return g.desired_tunnel(params)


def test_live_state_parses_tunnels_and_skips_fallback_devices():
    state = live()
    assert set(state.tunnels) == {"t1", "t3"}
    assert set(state.interfaces) == {"gre0", "up0", "t1", "t3"}
    t1 = state.tunnels["t1"]
    assert (t1["local"], t1["remote"], t1["ikey"], t1["okey"], t1["ttl"], t1["tos"], t1["pmtudisc"], t1["up"]) == \
        ("172.19.1.1", "172.19.1.2", 42, 42, 64, 0, True, True)
    assert t1["addresses"] == [("192.168.8.1", 32, "192.168.8.11"), ("fe80::5efe:ac13:101", 64, None)]
    assert t1["routes"] == [("0.0.0.0/0", 1024, None), ("20.10.1.0/24", 0, None)] or t1["routes"] == [("20.10.1.0/24", 0, None), ("::/0", 1024, None)]
    t3 = state.tunnels["t3"]
    assert (t3["mode"], t3["tos"], t3["link"], t3["pmtudisc"], t3["ikey"]) == ("ip6gre", "inherit", "up0", None, None)


def test_ipv6_default_route_is_told_from_ipv4_by_its_pref():
    assert ("::/0", 1024, None) in live().tunnels["t1"]["routes"]


def test_unchanged_tunnel_plans_nothing():
    plan = g.plan_tunnel(want(), live().tunnels["t1"])
    assert plan.steps == [] and plan.tracker.empty and plan.action == "none"


def test_one_attribute_changes_in_place():
    plan = g.plan_tunnel(want(ttl=9), live().tunnels["t1"])
    assert [s.command for s in plan.steps] == ["ip link set t1 type gre ttl 9"]
    assert plan.tracker.get_before_after() == ({"ttl": 64}, {"ttl": 9})


def test_key_removal_uses_nokey_and_mtu_is_restated():
    plan = g.plan_tunnel(want(key=None, mtu=1472), live().tunnels["t1"])
    assert [s.command for s in plan.steps] == ["ip link set t1 mtu 1472 type gre noikey nookey"]


def test_mode_change_recreates_with_addresses_and_routes_but_not_the_kernels_link_local():
    plan = g.plan_tunnel(want(mode="gretap"), live().tunnels["t1"])
    assert plan.action == "recreate"
    assert [s.command for s in plan.steps] == [
        "ip link del t1",
        "ip link add t1 type gretap local 172.19.1.1 remote 172.19.1.2 key 0.0.0.42 ttl 64",
        "ip link set t1 alias overlay.gre.gre_tunnel up",
        "ip addr add 192.168.8.1 peer 192.168.8.11/32 dev t1",
        "ip route add 20.10.1.0/24 dev t1",
        "ip route add ::/0 dev t1",
    ]


def test_addresses_are_owned_new_before_old_and_link_local_kept():
    plan = g.plan_tunnel(want(addresses=["10.0.0.1/30"]), live().tunnels["t1"])
    assert [s.command for s in plan.steps] == [
        "ip addr add 10.0.0.1/30 dev t1",
        "ip addr del 192.168.8.1 peer 192.168.8.11/32 dev t1",
        "ip route replace 20.10.1.0/24 dev t1",
        "ip route replace ::/0 dev t1",
    ]


def test_routes_are_owned_metric_and_gateway():
    plan = g.plan_tunnel(want(routes=[{"dest": "20.10.1.0/24", "via": "192.168.8.11"}, {"dest": "30.0.0.0/8", "metric": 5}]),
                         live().tunnels["t1"])
    assert [s.command for s in plan.steps] == [
        "ip route del ::/0 dev t1 metric 1024",
        "ip route replace 20.10.1.0/24 via 192.168.8.11 dev t1",
        "ip route add 30.0.0.0/8 dev t1 metric 5",
    ]


def test_new_tunnel_is_marked_and_created_whole():
    plan = g.plan_tunnel(want(name="t9", tos="inherit", pmtudisc=True, link="up0", mtu=1400), None)
    assert plan.action == "create"
    assert plan.steps[0].command == "ip link add t9 mtu 1400 type gre local 172.19.1.1 remote 172.19.1.2 key 0.0.0.42 ttl 64 tos inherit dev up0"
    assert plan.steps[1].command == "ip link set t9 alias overlay.gre.gre_tunnel up"


def test_absent():
    assert [s.command for s in g.plan_tunnel({"name": "t1", "state": "absent"}, live().tunnels["t1"]).steps] == ["ip link del t1"]
    assert g.plan_tunnel({"name": "t1", "state": "absent"}, None).steps == []


@pytest.mark.parametrize("value,expected", [(42, 42), ("42", 42), ("0.0.0.42", 42), ("0x2a", 42), ("255.255.255.255", 2 ** 32 - 1)])
def test_keys(value, expected):
    assert g.parse_key(value, "key") == expected


@pytest.mark.parametrize("value", [-1, 2 ** 32, "1.2.3", "abc", True])
def test_bad_keys(value):
    with pytest.raises(g.TunnelError, match="key"):
        g.parse_key(value, "key")


@pytest.mark.parametrize("item,expected", [
    ("10.0.0.1/24", ("10.0.0.1", 24, None)),
    ("10.0.0.1", ("10.0.0.1", 32, None)),
    ({"address": "192.168.8.1", "peer": "192.168.8.11"}, ("192.168.8.1", 32, "192.168.8.11")),
    ({"address": "10.0.0.1/30", "peer": "10.0.0.2"}, ("10.0.0.1", 30, "10.0.0.2")),
    ({"address": "2001:DB8::1", "peer": "2001:db8::2/64"}, ("2001:db8::1", 64, "2001:db8::2")),
])
def test_addresses(item, expected):
    assert g.parse_address(item, "addresses[0]") == expected


@pytest.mark.parametrize("item,expected", [
    ("20.10.1.0/24", ("20.10.1.0/24", 0, None)),
    ("default", ("0.0.0.0/0", 0, None)),
    ("2001:db8::/32", ("2001:db8::/32", 1024, None)),
    ({"dest": "20.10.1.0/24", "metric": 7, "via": "192.168.8.11"}, ("20.10.1.0/24", 7, "192.168.8.11")),
])
def test_routes(item, expected):
    assert g.parse_route(item, "routes[0]") == expected


@pytest.mark.parametrize("changes,words", [
    ({"name": ""}, ["name"]),
    ({"name": "x" * 16}, ["name", "x" * 16]),
    ({"name": "a b"}, ["name"]),
    ({"name": "gre0"}, ["name", "gre0", "fallback"]),
    ({"local": "10.0.0.256"}, ["local", "10.0.0.256"]),
    ({"mode": "ip6gre"}, ["local", "172.19.1.1", "IPv6"]),
    ({"remote": "2001:db8::1"}, ["remote", "IPv6", "gre"]),
    ({"key": 1, "ikey": 2}, ["key", "ikey"]),
    ({"ttl": 300}, ["ttl", "300"]),
    ({"ttl": 64, "pmtudisc": False}, ["ttl", "64", "pmtudisc"]),
    ({"mtu": 67}, ["mtu", "67"]),
    ({"mtu": 65508}, ["mtu", "65508"]),
    ({"tos": "lowdelay"}, ["tos", "lowdelay"]),
    ({"link": "t1"}, ["link", "t1"]),
    ({"addresses": ["10.0.0.1/33"]}, ["addresses[0]", "10.0.0.1/33"]),
    ({"addresses": [{"address": "10.0.0.1", "peer": "2001:db8::1"}]}, ["addresses[0]", "peer"]),
    ({"addresses": [{"adress": "10.0.0.1"}]}, ["addresses[0]"]),
    ({"routes": ["20.10.1.1/24"]}, ["routes[0]", "20.10.1.1/24"]),
    ({"routes": [{"dest": "20.10.1.0/24", "via": "2001:db8::1"}]}, ["routes[0].via", "2001:db8::1"]),
    ({"routes": [{"dest": "20.10.1.0/24", "metric": -1}]}, ["routes[0].metric", "-1"]),
    ({"up": False}, ["routes", "up"]),
    ({"mode": "ip6gre", "local": "2001:db8::1", "remote": "2001:db8::2", "pmtudisc": True}, ["pmtudisc", "ip6gre"]),
])
def test_bad_input_names_option_and_value(changes, words):
    with pytest.raises(g.TunnelError) as caught:
        want(**changes)
    for word in words:
        assert word in str(caught.value), (word, str(caught.value))


def test_same_identity_as_another_tunnel_is_refused_and_named():
    state = live()
    other = want(name="t2")
    with pytest.raises(g.TunnelError, match="t2.*t1|t1.*t2"):
        g.check_against_kernel([other], state, set(), ["tunnels[0]"])
    # ... unless t1 goes away in the same task
    g.check_against_kernel([{"name": "t1", "state": "absent"}, other], state, set(), ["tunnels[0]", "tunnels[1]"])
    g.check_against_kernel([other], state, {"t1"}, ["tunnels[0]"])


def test_kernel_checks():
    state = live()
    with pytest.raises(g.TunnelError, match="link: 'nosuch' does not exist"):
        g.check_against_kernel([want(link="nosuch")], state, set(), [""])
    with pytest.raises(g.TunnelError, match="up0 exists and is a veth"):
        g.check_against_kernel([want(name="up0")], state, set(), [""])


def test_parse_json_documents_counts():
    assert g.parse_json_documents("[1]\n[]\n", 2) == [[1], []]
    with pytest.raises(ValueError):
        g.parse_json_documents("[1]\n", 2)


def test_views_hide_the_kernels_link_local_address():
    view = g.tunnel_view(live().tunnels["t1"])
    assert view["addresses"] == [{"address": "192.168.8.1", "peer": "192.168.8.11/32"}]
    assert view["managed"] is True and view["ikey"] == 42


def test_boot_link_holds_what_the_replay_runs_as_words():
    """The apply program's data (boot_link) and the boot script's lines (replay_lines) rebuild the same tunnel: the
    create command, then the state, addresses and routes with replace."""
    state = g.plan_tunnel(want(name="t9", mtu=1400), None).after
    link = g.boot_link(state)
    assert link["name"] == "t9"
    assert link["create"][:3] == ["link", "add", "t9"]
    lines = g.replay_lines(state)
    assert lines[0] == "ip link show dev t9 >/dev/null 2>&1 || ip " + " ".join(link["create"])
    assert ["ip " + " ".join(words) for words in link["lines"]] == lines[1:]
    assert all(words[1] == "replace" for words in link["lines"] if words[0] in ("addr", "route"))
    assert any(words[0] == "addr" for words in link["lines"]) and any(words[0] == "route" for words in link["lines"])


def test_batch_files_of_killed_runs_go_and_those_of_running_ones_stay(tmp_path):
    """A module killed before its cleanup (SIGKILL, an async timeout) leaves its `ip -batch` file; the next run
    removes the files of runs whose process is gone, and no other file."""
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no process holds now
    running = subprocess.Popen(["sleep", "30"])
    try:
        names = ["overlay-gre-batch-%d-abc.ip" % gone.pid, "overlay-gre-batch-%d-def.ip" % running.pid,
                 "overlay-gre-batch-%d-own.ip" % os.getpid(), "overlay-gre-batch-old.ip", "unrelated-%d.ip" % gone.pid]
        for name in names:
            (tmp_path / name).write_text("link add x type dummy\n", encoding="utf-8")
        assert g.remove_stale_batches(str(tmp_path)) == [names[0]]
        assert sorted(entry.name for entry in tmp_path.iterdir()) == sorted(names[1:])
    finally:
        running.kill()
        running.wait()
