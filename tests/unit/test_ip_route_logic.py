# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.gre.ip_route's pure logic: input checks, parsing `ip -N -j` output, the on-link check, planning.
No kernel involved; the kernel's side is in tests/kernel/test_ip_route.py. The samples were captured with
iproute2 6.1 (`ip -N -j route show table all type unicast`, `ip -N -j addr show`) in a namespace."""

from __future__ import annotations

import json

import pytest

from ansible_collections.overlay.gre.plugins.module_utils import _ip_route as r

ROUTES = [
    {"dst": "30.0.0.0/8", "gateway": "10.10.1.1", "dev": "eth0", "table": "100", "protocol": "4", "flags": []},
    {"dst": "10.10.1.0/24", "dev": "eth0", "protocol": "2", "scope": "253", "prefsrc": "10.10.1.5", "flags": []},
    {"dst": "20.10.1.0/24", "gateway": "10.10.1.1", "dev": "eth0", "protocol": "71", "flags": []},
    {"dst": "20.10.9.0/24", "gateway": "10.10.1.1", "dev": "eth0", "protocol": "71", "metric": 5, "flags": []},
    {"dst": "40.0.0.0/8", "dev": "eth0", "protocol": "71", "table": "200", "scope": "253", "flags": []},
    {"dst": "50.0.0.0/8", "gateway": "10.99.0.1", "dev": "eth0", "flags": ["onlink"]},
    {"dst": "default", "gateway": "10.10.1.254", "dev": "eth0", "flags": []},
    {"dst": "2001:db8:1::/64", "dev": "eth0", "protocol": "2", "metric": 256, "flags": [], "pref": "medium"},
    {"dst": "2001:db8:9::/48", "gateway": "2001:db8:1::1", "dev": "eth0", "protocol": "122", "metric": 1024, "flags": [], "pref": "medium"},
    {"dst": "default", "gateway": "fe80::1", "dev": "eth0", "protocol": "9", "metric": 1024, "flags": [], "pref": "medium"},
    {"dst": "60.0.0.0/8", "tos": "0x10", "gateway": "10.10.1.1", "dev": "eth0", "flags": []},
]
LINKS = [
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"],
     "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifindex": 2, "ifname": "eth0", "flags": ["BROADCAST", "UP", "LOWER_UP"],
     "addr_info": [{"family": "inet", "local": "10.10.1.5", "prefixlen": 24}, {"family": "inet6", "local": "2001:db8:1::5", "prefixlen": 64}]},
    {"ifindex": 3, "ifname": "eth1", "flags": ["BROADCAST"], "addr_info": []},
]
TABLES = dict(r.TABLES, vpn=100)


def live(routes=None):
    return r.LiveRoutes.from_ip_output(json.dumps(ROUTES if routes is None else routes) + "\n" + json.dumps(LINKS) + "\n")


def wanted(*routes, **params):
    return r.desired_routes(dict(params, routes=list(routes)), TABLES)


def plan(*routes, purge=False, state=None, current=None):
    wants = wanted(*routes, state=state)
    return r.plan_routes(wants, current or live(), r.PROTOCOL, purge)


HOWTO = {"dest": "20.10.1.0/24", "via": "10.10.1.1"}


# --- reading ----------------------------------------------------------------------------------------------


def test_kernel_routes_are_read_with_iproute2s_defaults_filled_in():
    state = live()
    onlink = next(x for x in state.routes if x["dest"] == "50.0.0.0/8")
    assert onlink == {"table": 254, "dest": "50.0.0.0/8", "metric": 0, "via": "10.99.0.1", "dev": "eth0", "onlink": True,
                      "protocol": 3, "scope": 0, "multipath": False}
    assert [x["dest"] for x in state.routes if x["dest"].endswith("/0")] == ["0.0.0.0/0", "::/0"]
    assert not any(x["dest"] == "60.0.0.0/8" for x in state.routes)  # a TOS route is another key: never ours
    assert state.interfaces["eth1"] == {"up": False, "addresses": []}
    assert state.addresses == {"127.0.0.1", "10.10.1.5", "2001:db8:1::5"}


# --- input ------------------------------------------------------------------------------------------------


def test_a_route_needs_a_mapping_with_a_gateway_or_a_device():
    with pytest.raises(r.RouteError, match=r"routes\[0\]: '20.10.1.0/24' must be a mapping with dest and via"):
        wanted("20.10.1.0/24")
    with pytest.raises(r.RouteError, match=r"routes\[0\]: 20.10.1.0/24 has neither via"):
        wanted({"dest": "20.10.1.0/24"})
    assert wanted({"dest": "20.10.1.0/24"}, state="absent")[0]["state"] == "absent"  # removing needs no gateway


def test_metric_defaults_follow_the_kernel_and_a_key_is_listed_once():
    assert [w["metric"] for w in wanted(HOWTO, {"dest": "2001:db8:20::/48", "via": "2001:db8:1::1", "metric": 0})] == [0, 1024]
    with pytest.raises(r.RouteError, match=r"routes\[1\]: 20.10.1.0/24 metric 0 in table main is listed twice \(also as routes\[0\]\)"):
        wanted(HOWTO, dict(HOWTO, via="10.10.1.2"))
    assert len(wanted(HOWTO, dict(HOWTO, table=100))) == 2


def test_tables_by_name_or_number_and_never_local(tmp_path):
    (tmp_path / "rt_tables").write_text("255\tlocal\n254\tmain\n# comment\n100 vpn\n")
    (tmp_path / "rt_tables.d").mkdir()
    (tmp_path / "rt_tables.d" / "site.conf").write_text("0x65 siteb # hex, as iproute2 allows\n")
    (tmp_path / "rt_tables.d" / "ignored.txt").write_text("102 nope\n")
    names = r.read_table_names([str(tmp_path / "rt_tables"), str(tmp_path / "missing")])
    assert names["vpn"] == 100 and names["siteb"] == 101 and "nope" not in names
    assert r.parse_table("siteb", "t", names) == 101 and r.parse_table("7", "t", names) == 7 and r.parse_table(None, "t", names) == 254
    with pytest.raises(r.RouteError, match="t: 'local' is the kernel's local table"):
        r.parse_table("local", "t", names)
    with pytest.raises(r.RouteError, match=r"t: 0 is neither a routing table number \(1 to 4294967295\) nor a table name"):
        r.parse_table(0, "t", names)


@pytest.mark.parametrize("value,ok", [(None, 71), (5, 5), (255, 255), (4, None), (2, None), (256, None), ("x", None)])
def test_protocol_is_a_number_no_kernel_or_ip_route_default_uses(value, ok):
    if ok is None:
        with pytest.raises(r.TunnelError, match="protocol: "):  # RouteError or the shared helpers' TunnelError
            r.parse_protocol(value)
    else:
        assert r.parse_protocol(value) == ok


# --- the kernel's checks, done before any change -------------------------------------------------------------


def test_a_gateway_must_be_on_a_route_of_scope_link_as_the_kernel_requires():
    routes = live().routes
    assert r._on_link("10.10.1.1", None, 254, routes) == "eth0"
    assert r._on_link("10.10.1.1", "eth1", 254, routes) is None  # not on that device
    assert r._on_link("20.10.1.7", None, 254, routes) is None  # reachable, but only through a gateway
    assert r._on_link("40.1.2.3", None, 200, routes) == "eth0"  # a device route in the route's own table
    assert r._on_link("10.10.1.1", None, 100, routes) == "eth0"  # then main, as fib_check_nh does
    assert r._on_link("2001:db8:1::1", None, 254, routes) == "eth0"
    assert r._on_link("2001:db8:9::1", None, 254, routes) is None  # its longest match has a gateway


def test_device_routes_listed_make_their_networks_on_link_for_the_gateways_after_them():
    wants = wanted({"dest": "192.0.2.0/24", "dev": "eth0"}, {"dest": "198.51.100.0/24", "via": "192.0.2.1"})
    r.check_against_kernel(wants, live())
    with pytest.raises(r.RouteError, match=r"routes\[0\].via: 192.0.2.1 is not on a network this host is connected to"):
        r.check_against_kernel(wanted({"dest": "198.51.100.0/24", "via": "192.0.2.1"}), live())


def test_the_kernels_own_routes_and_multipath_routes_are_never_taken():
    with pytest.raises(r.RouteError, match=r"routes\[0\]: ::/0 metric 1024 in table main is the kernel's own route \(protocol ra\) on eth0"):
        r.check_against_kernel(wanted({"dest": "::/0", "via": "fe80::2", "dev": "eth0"}), live())
    multipath = ROUTES + [{"dst": "70.0.0.0/8", "flags": [], "nexthops": [{"gateway": "10.10.1.1", "dev": "eth0"}]}]
    with pytest.raises(r.RouteError, match=r"routes\[0\]: 70.0.0.0/8 metric 0 in table main is a multipath route"):
        r.check_against_kernel(wanted({"dest": "70.0.0.0/8", "via": "10.10.1.1"}), live(multipath))


def test_down_or_missing_devices_and_own_addresses_are_refused():
    for entry, message in [({"dest": "70.0.0.0/8", "dev": "eth1"}, r"routes\[0\].dev: eth1 is down"),
                           ({"dest": "70.0.0.0/8", "dev": "eth7"}, r"routes\[0\].dev: 'eth7' does not exist"),
                           ({"dest": "70.0.0.0/8", "via": "10.10.1.5"}, r"routes\[0\].via: 10.10.1.5 is an address of this host")]:
        with pytest.raises(r.RouteError, match=message):
            r.check_against_kernel(wanted(entry), live())
    r.check_against_kernel(wanted({"dest": "70.0.0.0/8", "dev": "eth1"}, state="absent"), live())  # removing through it is fine


# --- planning ----------------------------------------------------------------------------------------------


def test_routes_as_they_are_plan_nothing():
    result = plan(HOWTO, {"dest": "20.10.9.0/24", "via": "10.10.1.1", "dev": "eth0", "metric": 5})
    assert result.steps == [] and result.before == [] and result.after == []


def test_a_new_route_is_added_and_undone_by_deleting_it():
    result = plan({"dest": "2001:db8:20::/48", "via": "2001:db8:1::1"}, {"dest": "20.10.2.0/24", "via": "10.10.1.1", "table": "vpn", "metric": 3})
    assert [s.command for s in result.steps] == ["ip route add 2001:db8:20::/48 via 2001:db8:1::1 proto 71",
                                                 "ip route add 20.10.2.0/24 via 10.10.1.1 table 100 metric 3 proto 71"]
    assert [" ".join(s.undo) for s in result.steps] == ["route del 2001:db8:20::/48 via 2001:db8:1::1 metric 1024 proto 71",
                                                        "route del 20.10.2.0/24 via 10.10.1.1 table 100 metric 3 proto 71"]
    assert [x["dev"] for x in result.after] == ["eth0", "eth0"]  # predicted: the device of the gateway's network


def test_another_gateway_or_a_foreign_route_at_the_key_is_replaced_and_restorable():
    result = plan(dict(HOWTO, via="10.10.1.2"), {"dest": "30.0.0.0/8", "via": "10.10.1.1", "table": 100})
    assert [s.command for s in result.steps] == ["ip route replace 20.10.1.0/24 via 10.10.1.2 proto 71",
                                                 "ip route replace 30.0.0.0/8 via 10.10.1.1 table 100 proto 71"]
    assert [" ".join(s.undo) for s in result.steps] == ["route replace 20.10.1.0/24 via 10.10.1.1 dev eth0 proto 71",
                                                        "route replace 30.0.0.0/8 via 10.10.1.1 dev eth0 table 100 proto 4"]
    assert [r.route_line(x) for x in result.taken_over] == ["30.0.0.0/8 via 10.10.1.1 dev eth0 table 100 metric 0 proto static"]


def test_routes_appended_to_a_listed_key_are_removed_after_the_replace():
    appended = ROUTES + [{"dst": "20.10.1.0/24", "gateway": "10.10.1.3", "dev": "eth0", "protocol": "4", "flags": []}]
    result = plan(HOWTO, current=live(appended))
    assert [s.command for s in result.steps] == ["ip route replace 20.10.1.0/24 via 10.10.1.1 proto 71",
                                                 "ip route del 20.10.1.0/24 via 10.10.1.3 dev eth0 metric 0 proto 4"]
    assert result.steps[1].undo[:2] == ["route", "append"]


def test_device_routes_go_first_and_removals_last():
    result = plan({"dest": "20.10.5.0/24", "via": "192.0.2.1"}, {"dest": "192.0.2.0/24", "dev": "eth0"},
                  {"dest": "20.10.9.0/24", "metric": 5, "state": "absent"})
    assert [s.args[1] for s in result.steps] == ["add", "add", "del"]
    assert result.steps[0].line == "route add 192.0.2.0/24 dev eth0 proto 71"


def test_absent_removes_any_route_but_the_kernels_and_only_through_the_gateway_given():
    assert [s.command for s in plan({"dest": "30.0.0.0/8", "table": 100}, state="absent").steps] == [
        "ip route del 30.0.0.0/8 via 10.10.1.1 dev eth0 table 100 metric 0 proto 4"]
    assert plan({"dest": "30.0.0.0/8", "table": 100, "via": "10.10.1.9"}, state="absent").steps == []
    assert plan({"dest": "10.10.1.0/24"}, state="absent").steps == []  # the connected network's route stays


def test_purge_removes_its_own_unlisted_routes_in_every_table_and_nothing_else():
    result = plan(HOWTO, purge=True)
    assert [s.command for s in result.steps] == ["ip route del 20.10.9.0/24 via 10.10.1.1 dev eth0 metric 5 proto 71",
                                                 "ip route del 40.0.0.0/8 dev eth0 table 200 metric 0 proto 71"]
    assert [x["dest"] for x in result.purged] == ["20.10.9.0/24", "40.0.0.0/8"]
    assert r.plan_routes(wanted(HOWTO), live(), 72, True).purged == []  # another protocol: another owner


def test_diff_lines_read_like_ip_route():
    assert r.diff_text(live().routes[:2]) == ("30.0.0.0/8 via 10.10.1.1 dev eth0 table 100 metric 0 proto static\n"
                                              "10.10.1.0/24 dev eth0 table main metric 0 proto kernel\n")


def test_replay_lines_rebuild_the_present_routes_device_routes_first_quoted_for_the_shell():
    wants = r.desired_routes({"routes": [
        {"dest": "20.10.1.0/24", "via": "10.10.1.1"},
        {"dest": "20.10.2.0/24", "via": "10.10.1.1", "metric": 10, "table": "vpn"},
        {"dest": "20.10.9.0/24", "state": "absent"},
        {"dest": "192.0.2.0/24", "dev": "eth0"},
        {"dest": "2001:db8:20::/48", "via": "fe80::1", "dev": "eth0", "metric": 1024},
    ]}, TABLES)
    assert r.replay_lines(wants, 71) == [
        "ip route replace 192.0.2.0/24 dev eth0 proto 71",
        "ip route replace 20.10.1.0/24 via 10.10.1.1 proto 71",
        "ip route replace 20.10.2.0/24 via 10.10.1.1 table 100 metric 10 proto 71",
        "ip route replace 2001:db8:20::/48 via fe80::1 dev eth0 proto 71",
    ]
    assert r.replay_lines([], 71) == []
    # the apply program's data: the same commands, as words
    assert [" ".join(["ip"] + words) for words in r.boot_lines(wants, 71)] == r.replay_lines(wants, 71)
