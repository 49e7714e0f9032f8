# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many peers per router (gre_router_peers): meshes, a transit hub, peers outside the inventory, and stable pairs."""

from __future__ import annotations

import ipaddress

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import pair_index, peer_tunnel_name, plan

POOL = "10.255.0.0/16"


def site(number, peers, **extra):
    """Router rN: underlay 172.19.0.N, LAN 10.N.0.0/16, site id N."""
    out = {"gre_router_peers": peers, "gre_router_underlay_ip": "172.19.0.%d" % number,
           "gre_router_lan_cidrs": ["10.%d.0.0/16" % number], "gre_router_site_id": number, "gre_router_tunnel_pool": POOL}
    out.update(("gre_router_" + k, v) for k, v in extra.items())
    return out


def mesh(numbers):
    return dict(("r%d" % n, site(n, ["r%d" % m for m in numbers if m != n])) for n in numbers)


def plans(hv):
    return dict((name, plan(name, hv[name], hv)) for name in hv)


def by_peer(result):
    assert result["errors"] == [], result["errors"]
    return dict((p["peer"], p) for p in result["pairs"])


def test_a_mesh_of_four_mirrors_every_pair():
    all_plans = plans(mesh([1, 2, 3, 4]))
    for name, result in all_plans.items():
        pairs = by_peer(result)
        assert sorted(pairs) == sorted(n for n in all_plans if n != name)
        for peer, pair in pairs.items():
            back = by_peer(all_plans[peer])[name]
            assert pair["tunnel_address"] == back["tunnel_peer_address"] and pair["tunnel_peer_address"] == back["tunnel_address"]
            assert pair["tunnel_network"] == back["tunnel_network"]
            assert ipaddress.ip_network(pair["tunnel_network"]).subnet_of(ipaddress.ip_network(POOL))
            assert pair["tunnel"]["name"] == "gre-" + peer
            assert pair["tunnel"]["routes"] == [{"dest": "10.%s.0.0/16" % peer[1:]}]
            assert pair["transit_lan_cidrs"] == []
    networks = [p["tunnel_network"] for r in all_plans.values() for p in r["pairs"]]
    assert len(set(networks)) == 6


def test_adding_and_removing_a_site_changes_no_other_pair():
    before = plans(mesh([1, 2, 3]))
    after = plans(mesh([1, 2, 3, 4]))
    fewer = plans(mesh([1, 3]))
    for name in ("r1", "r2", "r3"):
        old, new = by_peer(before[name]), by_peer(after[name])
        for peer in old:
            assert old[peer] == new[peer], (name, peer)
    assert by_peer(fewer["r1"])["r3"] == by_peer(before["r1"])["r3"]


def test_pair_numbers_are_unique_and_new_sites_take_new_ones():
    seen = set()
    for second in range(2, 60):
        for first in range(1, second):
            index = pair_index(first, second)
            assert index not in seen
            seen.add(index)
        assert seen == set(range(len(seen)))  # the sites 1..second fill the first numbers, no gaps


def test_auto_key_is_the_same_on_both_ends_and_differs_per_pair():
    hv = mesh([1, 2, 3])
    for name in hv:
        hv[name]["gre_router_key"] = "auto"
    all_plans = plans(hv)
    assert by_peer(all_plans["r1"])["r2"]["tunnel"]["key"] == by_peer(all_plans["r2"])["r1"]["tunnel"]["key"] == 65538
    assert by_peer(all_plans["r1"])["r3"]["tunnel"]["key"] == 65539


def test_a_transit_hub_carries_spoke_to_spoke():
    hv = {"hub": site(1, ["s2", "s3", "s4"], transit=True)}
    for n in (2, 3, 4):
        hv["s%d" % n] = site(n, ["hub"])
    all_plans = plans(hv)
    s2 = by_peer(all_plans["s2"])["hub"]
    assert s2["tunnel"]["routes"] == [{"dest": d} for d in ("10.1.0.0/16", "10.3.0.0/16", "10.4.0.0/16")]
    assert s2["transit_lan_cidrs"] == ["10.3.0.0/16", "10.4.0.0/16"]
    hub = by_peer(all_plans["hub"])
    assert hub["s2"]["tunnel"]["routes"] == [{"dest": "10.2.0.0/16"}]
    assert hub["s2"]["local_networks"] == ["10.1.0.0/16", "10.3.0.0/16", "10.4.0.0/16"]
    assert all_plans["hub"]["transit"] is True


def test_without_transit_spokes_reach_only_the_hub():
    hv = {"hub": site(1, ["s2", "s3"])}
    for n in (2, 3):
        hv["s%d" % n] = site(n, ["hub"])
    assert by_peer(plan("s2", hv["s2"], hv))["hub"]["tunnel"]["routes"] == [{"dest": "10.1.0.0/16"}]
    assert by_peer(plan("hub", hv["hub"], hv))["s2"]["local_networks"] == ["10.1.0.0/16"]


def test_a_peer_outside_the_inventory():
    cisco = {"name": "cisco-branch-7", "underlay_ip": "198.51.100.7", "lan_cidrs": ["192.168.50.0/24"],
             "tunnel_cidr": "192.168.200.0/30", "key": 7, "keepalive": True}
    hv = {"r1": site(1, ["r2", cisco]), "r2": site(2, ["r1"])}
    pair = by_peer(plan("r1", hv["r1"], hv))["cisco-branch-7"]
    assert pair["external"] is True
    assert pair["tunnel"]["name"] == peer_tunnel_name("cisco-branch-7") and len(pair["tunnel"]["name"]) == 15
    assert pair["tunnel"]["name"].startswith("gre-cisco--")
    assert (pair["tunnel"]["remote"], pair["tunnel"]["key"]) == ("198.51.100.7", 7)
    assert pair["tunnel"]["addresses"] == [{"address": "192.168.200.1/30"}] and pair["tunnel_peer_address"] == "192.168.200.2"
    assert pair["keepalive"] == {"period": 10, "retries": 3}
    assert pair["tunnel"]["routes"] == [{"dest": "192.168.50.0/24"}]


def test_a_peer_name_that_could_break_the_boot_files_is_refused():
    """A peer's name is written into the router's boot script (as a comment), and its tunnel's and units' names: a
    newline in it would make the rest of the name a command that root runs at every boot."""
    for name in ("x\ntouch /tmp/pwned", "branch 7", "a;b", "$(id)", "x" * 254):
        evil = {"name": name, "underlay_ip": "198.51.100.7", "lan_cidrs": ["192.168.50.0/24"],
                "tunnel_cidr": "192.168.200.0/30"}
        hv = {"r1": site(1, ["r2", evil]), "r2": site(2, ["r1"])}
        result = plan("r1", hv["r1"], hv)
        assert result["pairs"] == []
        assert len(result["errors"]) == 1, result["errors"]
        assert result["errors"][0].startswith("r1: gre_router_peers has the name %r, which holds characters" % name)
    for name in ("cisco-branch-7", "branch_7.example.net", "2001:db8::7", "10.0.0.7"):
        good = {"name": name, "underlay_ip": "198.51.100.7", "lan_cidrs": ["192.168.50.0/24"],
                "tunnel_cidr": "192.168.200.0/30"}
        hv = {"r1": site(1, [good]), "r2": site(2, [])}
        assert plan("r1", hv["r1"], hv)["errors"] == []


def test_an_outside_peer_with_addresses_written_out_and_one_from_the_pool():
    mikrotik = {"name": "mt", "underlay_ip": "198.51.100.8", "lan_cidrs": ["192.168.60.0/24"],
                "tunnel_address": "192.168.201.1", "peer_tunnel_address": "192.168.201.2"}
    pooled = {"name": "provider", "underlay_ip": "198.51.100.9", "site_id": 9}
    hv = {"r1": site(1, [mikrotik, pooled])}
    pairs = by_peer(plan("r1", hv["r1"], hv))
    assert pairs["mt"]["tunnel"]["addresses"] == [{"address": "192.168.201.1", "peer": "192.168.201.2"}]
    assert pairs["provider"]["tunnel_network"] == str(ipaddress.ip_network("10.255.0.0/30").network_address
                                                      + 4 * pair_index(1, 9)) + "/30"


def test_long_names_stay_readable_apart_and_fixed():
    a, b = peer_tunnel_name("branch-office-paris"), peer_tunnel_name("branch-office-porto")
    assert a != b and len(a) == len(b) == 15 and a.startswith("gre-branch-")
    assert peer_tunnel_name("branch-office-paris") == a


def errors_of(hv, name):
    return plan(name, hv[name], hv)["errors"]


def test_both_peer_forms_are_refused():
    hv = mesh([1, 2])
    hv["r1"]["gre_router_peer"] = "r2"
    assert any(e.startswith("r1: gre_router_peers and gre_router_peer are both set") for e in errors_of(hv, "r1"))


def test_a_peer_that_does_not_list_us_back_is_named():
    hv = mesh([1, 2, 3])
    hv["r2"]["gre_router_peers"] = ["r3"]
    assert "r2: gre_router_peers does not list r1, but r1 lists r2: both routers of a pair list each other " \
           "(a hub with gre_router_transit lists its spokes too)" in errors_of(hv, "r1")


def test_missing_and_equal_site_ids_are_named():
    hv = mesh([1, 2])
    del hv["r2"]["gre_router_site_id"]
    assert any(e.startswith("r2: gre_router_site_id is not set") for e in errors_of(hv, "r1"))
    hv = mesh([1, 2])
    hv["r2"]["gre_router_site_id"] = 1
    assert any(e.startswith("r1: gre_router_site_id is 1 on both r1 and r2") for e in errors_of(hv, "r1"))


def test_a_tunnel_name_clash_is_refused():
    hv = mesh([1, 2, 3])
    hv["r1"]["gre_router_peers"] = [{"name": "r2", "tunnel_name": "to-x"}, {"name": "r3", "tunnel_name": "to-x"}]
    errors = errors_of(hv, "r1")
    assert any("r1: gre_router_peers[r3].tunnel_name gives 'to-x', the name of the tunnel to r2 too" in e for e in errors), errors


def test_two_pairs_on_one_network_are_refused():
    hv = mesh([1, 2, 3])
    hv["r1"]["gre_router_peers"] = [{"name": "r2", "tunnel_cidr": "192.168.1.0/30"}, {"name": "r3", "tunnel_cidr": "192.168.1.0/30"}]
    errors = errors_of(hv, "r1")
    assert any("gives the pairs with r2 and r3 overlapping tunnel networks" in e for e in errors), errors


def test_per_pair_networks_must_agree():
    hv = mesh([1, 2])
    hv["r1"]["gre_router_peers"] = [{"name": "r2", "tunnel_cidr": "192.168.1.0/30"}]
    hv["r2"]["gre_router_peers"] = [{"name": "r1", "tunnel_cidr": "192.168.2.0/30"}]
    assert any("r1: gre_router_peers[r2].tunnel_cidr is '192.168.1.0/30' on r1 but '192.168.2.0/30' on its peer r2" in e
               for e in errors_of(hv, "r1"))
    hv["r2"]["gre_router_peers"] = ["r1"]   # one end gives it: both use it
    assert by_peer(plan("r2", hv["r2"], hv))["r1"]["tunnel_network"] == "192.168.1.0/30"


def test_a_pool_too_small_is_named():
    hv = mesh([1, 2, 3])
    for name in hv:
        hv[name]["gre_router_tunnel_pool"] = "10.255.0.0/29"
    errors = errors_of(hv, "r3")
    assert any("gre_router_tunnel_pool is 10.255.0.0/29, which has room for 2 pairs of /30" in e for e in errors), errors


def test_an_inventory_peer_entry_cannot_override_its_own_variables():
    hv = mesh([1, 2])
    hv["r1"]["gre_router_peers"] = [{"name": "r2", "underlay_ip": "1.2.3.4"}]
    assert any(e.startswith("r1: gre_router_peers[r2] has underlay_ip: r2 is a host of this inventory") for e in errors_of(hv, "r1"))


def test_an_unknown_name_without_underlay_is_explained():
    hv = mesh([1, 2])
    hv["r1"]["gre_router_peers"] = ["r2", "r9"]
    assert any(e.startswith("r1: gre_router_peers[r9] names 'r9', which is not a host of this inventory") for e in errors_of(hv, "r1"))


def test_lans_routed_through_two_peers_are_refused():
    hv = {"hub": site(1, ["s2", "s3"], transit=True), "s2": site(2, ["hub", "s3"]), "s3": site(3, ["hub", "s2"])}
    errors = errors_of(hv, "s2")
    assert any("routes 10.3.0.0/16 through hub and 10.3.0.0/16 through s3, which overlap" in e for e in errors), errors


def test_the_one_peer_form_and_the_list_form_pair_up():
    hv = mesh([1, 2])
    hv["r2"] = dict(hv["r2"], gre_router_peer="r1", gre_router_peers=None)
    assert by_peer(plan("r1", hv["r1"], hv))["r2"]["tunnel_network"] == by_peer(plan("r2", hv["r2"], hv))["r1"]["tunnel_network"]


def test_a_router_being_removed_needs_no_peer_listing_it_back():
    hv = {"hub": site(1, ["s2"], transit=True), "s2": site(2, ["hub"]), "s3": site(3, ["hub"], state="absent")}
    result = plan("s3", hv["s3"], hv)
    assert result["errors"] == [] and [p["tunnel"]["name"] for p in result["pairs"]] == ["gre-hub"]
    assert by_peer(plan("s2", hv["s2"], hv))["hub"]["tunnel"]["routes"] == [{"dest": "10.1.0.0/16"}]


def _pair(peer, external=False):
    return {"peer": peer, "external": external, "tunnel": {"name": "gre-" + peer}, "tunnel_address": "10.255.0.1",
            "tunnel_peer_address": "10.255.0.2", "underlay_ip": "172.19.0.1", "peer_underlay_ip": "172.19.0.2"}


def test_a_pair_is_held_when_either_end_found_no_answer():
    from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import held_peers
    pairs = [_pair("r2"), _pair("r3"), _pair("r4"), _pair("cisco", external=True)]
    own = {"peers": {"r2": {"underlay": "answered: ICMP echo"}, "r3": {"underlay": "no answer: no ICMP echo reply"},
                     "r4": {"underlay": "answered: ARP on wan0"}, "cisco": {"underlay": "answered: ICMP echo"}}}
    theirs = {"r2": {"peers": {"r1": {"underlay": "answered: ICMP echo"}}},
              "r4": {"peers": {"r1": {"underlay": "no answer: no ARP answer"}}}}
    # r3: ours found no answer; r4: theirs found none; r2 and the peer outside the inventory: both fine
    assert held_peers(pairs, "r1", own, theirs) == ["r3", "r4"]
    assert held_peers(pairs, "r1", {"peers": {}}, {}) == ["r2", "r3", "r4", "cisco"]  # not probed: nothing is known


def test_the_held_message_gives_both_probes_and_what_to_check():
    from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import held_message
    pairs = [_pair("r2"), _pair("r3"), _pair("cisco", external=True)]
    own = {"peers": {"r2": {"underlay": "answered: ICMP echo"}, "r3": {"underlay": "no answer: no ICMP echo reply"},
                     "cisco": {"underlay": "no answer: no ARP answer"}}}
    theirs = {"r3": {"peers": {"r1": {"underlay": "answered: ICMP echo"}}}}
    text = held_message(pairs, ["r3", "cisco"], "r1", own, theirs)
    r3, cisco = pairs[1], pairs[2]
    expected = ("The underlay between r1 (%s) and r3 (%s) does not carry traffic, so the tunnel between them cannot work. "
                "r1 -> %s: no answer: no ICMP echo reply. r3 -> %s: answered: ICMP echo. Nothing was changed on either "
                "router of this pair." % (r3["underlay_ip"], r3["peer_underlay_ip"], r3["peer_underlay_ip"], r3["underlay_ip"]))
    assert text.startswith(expected)
    assert "cisco -> %s: not probed (outside the inventory)." % cisco["underlay_ip"] in text
    assert text.count("gre_router_preflight=false skips this check.") == 2 and "r2" not in text
    assert held_message(pairs, [], "r1", own, theirs) == ""


def test_verdicts_name_the_pair_and_where_to_look():
    from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import verdicts
    pairs = [_pair("r2"), _pair("r3")]
    own = {"peers": {"r2": {"tunnel": "answered"}, "r3": {"tunnel": "no answer"}}}
    out = verdicts(pairs, "r1", own, {"r2": {"peers": {"r1": {"tunnel": "answered"}}}, "r3": {"skipped": True}})
    assert [v["ok"] for v in out] == [True, False]
    assert out[0]["text"] == "r1: r2's tunnel address 10.255.0.2 answers through gre-r2"
    assert out[1]["text"].startswith("The tunnel between r1 and r3 is built but does not carry traffic.")
    assert "Look at: the underlay between 172.19.0.1 and 172.19.0.2" in out[1]["text"]
    out = verdicts(pairs[:1], "r1", own, {"r2": {"peers": {"r1": {"tunnel": "no answer"}}}})
    assert out[0]["ok"] is False and "from r2 to 10.255.0.1: no answer" in out[0]["text"]


def test_the_verdicts_in_one_the_failed_pairs_alone_when_any_failed():
    from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import verdicts_summary
    good, other = {"ok": True, "text": "r1: r2 answers"}, {"ok": True, "text": "r1: r4 answers"}
    bad = {"ok": False, "text": "The tunnel between r1 and r3 is built but does not carry traffic."}
    assert verdicts_summary([good, other]) == {"ok": True, "msg": "r1: r2 answers; r1: r4 answers"}
    assert verdicts_summary([good, bad, dict(bad, text="And r5.")]) == {"ok": False, "msg": bad["text"] + " And r5."}
    assert verdicts_summary([]) == {"ok": True, "msg": ""}


def test_whether_the_pair_changed_and_whether_every_tunnel_answered():
    from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import pair_changed, pairs_answered
    hostvars = {"r1": {"tunnel": {"changed": False}, "files": {"skipped": True, "changed": False}},
                "r2": {"tunnel": {"changed": False}, "files": {"changed": True}}}
    assert pair_changed(["r1"], hostvars, ["tunnel", "files", "never_registered"]) is False
    assert pair_changed(["r1", "r2"], hostvars, ["tunnel", "files"]) is True
    assert pair_changed(["r1", "r2"], hostvars, ["tunnel"]) is False
    assert pair_changed(["gone"], hostvars, ["tunnel"]) is False
    pairs = [_pair("r2"), _pair("r3")]
    assert pairs_answered(pairs, {"r2": {"tunnel": "answered"}, "r3": {"tunnel": "answered"}}) is True
    assert pairs_answered(pairs, {"r2": {"tunnel": "answered"}, "r3": {"tunnel": "no answer"}}) is False
    assert pairs_answered(pairs, {"r2": {"tunnel": "answered"}}) is False
    assert pairs_answered([], {}) is True


def test_what_each_module_gets_from_one_run():
    from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import run_args

    def pair(peer, ipsec=False, keepalive=False):
        out = _pair(peer)
        out.update(ipsec={"mtu": 1442} if ipsec else None, keepalive={"period": 10} if keepalive else None,
                   tunnel_options={"name": "gre-" + peer, "mtu": 1442 if ipsec else None},
                   tunnel_options_plain={"name": "gre-" + peer, "mtu": 1476},
                   firewall_options={"tunnel": "gre-" + peer}, nat_rules=[{"out_interface": "gre-" + peer}])
        return out
    pairs = [pair("r2", ipsec=True), pair("r3", keepalive=True), pair("r4")]
    # r3's IPsec was turned off, r5's pair is held (its IPsec stays), r6 left the list
    probe = {"ipsec": ["gre-r2", "gre-r3", "gre-r5", "gre-r6"]}
    args = run_args(pairs, ["gre-r5"], probe, "present", False)
    assert args["ipsec_gone"] == ["gre-r3", "gre-r6"]
    assert [p["peer"] for p in args["ipsec_pairs"]] == ["r2"] and [p["peer"] for p in args["sending"]] == ["r3"]
    assert args["tunnels"] == [{"name": "gre-r2", "mtu": 1442}, {"name": "gre-r4", "mtu": None}, {"name": "gre-r3", "mtu": 1476}]
    assert args["firewall"] == [{"tunnel": "gre-r2"}, {"tunnel": "gre-r3"}, {"tunnel": "gre-r4"}] and args["nat_rules"] == []
    assert run_args(pairs, [], probe, "present", True)["nat_rules"] == [{"out_interface": "gre-r%d" % n} for n in (2, 3, 4)]
    absent = run_args(pairs, [], probe, "absent", False)
    assert absent["ipsec_pairs"] == [] and absent["ipsec_gone"] == probe["ipsec"]


def test_one_unsound_inventory_in_the_play_stops_every_router_with_its_errors():
    from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import play_errors
    hostvars = {"r1": {"plan": {"errors": []}}, "r2": {"plan": {"errors": ["r2: gre_router_site_id: 'x' is not a number"]}},
                "r3": {}}
    assert play_errors("r1", [], ["r1", "r3"], hostvars, "plan") == {
        "ok": True, "msg": "r1: the inventory of every router of the play is sound"}
    out = play_errors("r1", [], ["r1", "r2", "r3"], hostvars, "plan")
    assert out == {"ok": False, "msg": "Stopped before any change: the inventory of another router of this play is not "
                                       "sound: r2: gre_router_site_id: 'x' is not a number"}
    own = ["r2: gre_router_site_id: 'x' is not a number", "r2: gre_router_lans: 'y' is not a network"]
    assert play_errors("r2", own, ["r1", "r2"], hostvars, "plan") == {"ok": False, "msg": "; ".join(own)}


def test_the_underlay_summary_gives_each_pairs_probe():
    from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import underlay_summary
    pairs = [_pair("r2"), _pair("r3")]
    peers = {"r2": {"underlay": "answered: ICMP echo"}, "r3": {"underlay": ""}}
    expected = "r1 (172.19.0.1) -> r2 (172.19.0.2): answered: ICMP echo; r1 (172.19.0.1) -> r3 (172.19.0.2): not probed"
    assert underlay_summary(pairs, "r1", peers, True) == expected
    assert underlay_summary(pairs[:1], "r1", peers, False) == (
        "r1 (172.19.0.1) -> r2 (172.19.0.2): not probed (gre_router_preflight is off, or gre_router_state is absent)")
    assert underlay_summary([], "r1", peers, True) == ""


def test_ipsec_comes_up_where_either_router_changed_and_the_first_name_initiates():
    from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import ipsec_bring_up
    r2, r3, r0, cisco = _pair("r2"), _pair("r3"), _pair("r0"), _pair("cisco", external=True)
    mine = [{"item": r2, "changed": False}, {"item": r3, "changed": True}, {"item": r0, "changed": False},
            {"item": cisco, "changed": True}]
    hostvars = {"r2": {"loaded": {"results": [{"item": {"peer": "r1"}, "changed": True}]}},
                "r0": {"loaded": {"results": [{"item": {"peer": "r9"}, "changed": True}, {"item": {"peer": "r1"}, "changed": False}]}}}
    out = ipsec_bring_up(mine, "r1", hostvars, "loaded")
    # r2 changed its end, r3 and the router outside the inventory ours; r0 changed nothing towards r1
    assert [(p["tunnel"], p["initiate"]) for p in out] == [("gre-r2", True), ("gre-r3", True), ("gre-cisco", True)]
    assert ipsec_bring_up([{"item": r0, "changed": True}], "r1", {}, "loaded")[0]["initiate"] is False  # r0 sorts first
    assert ipsec_bring_up([{"item": r2, "skipped": True}, {"item": r3, "failed": True, "changed": True}], "r1", hostvars,
                          "loaded") == []


def test_the_ipsec_verdict_names_the_pairs_without_sas_and_where_to_look():
    from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import ipsec_verdict
    up = {"tunnel": "gre-r2", "peer": "r2", "underlay_ip": "172.19.0.1", "peer_underlay_ip": "172.19.0.2", "initiate": True}
    assert ipsec_verdict([], "r1") == {"ran": False, "ok": True, "msg": "r1: CHILD SAs installed for none (SAs unchanged)"}
    assert ipsec_verdict([{"item": up, "skipped": True}], "r1")["ran"] is False
    good = {"item": up, "established": True, "connection": "overlay-gre-gre-r2"}
    assert ipsec_verdict([good], "r1") == {"ran": True, "ok": True, "msg": "r1: CHILD SAs installed for overlay-gre-gre-r2"}
    bad = {"item": up, "established": False, "msg": "no IPsec CHILD SA of overlay-gre-gre-r2 after 30 s"}
    out = ipsec_verdict([good, bad], "r1")
    assert out["ran"] is True and out["ok"] is False
    assert out["msg"].startswith("r1 (172.19.0.1) and r2 (172.19.0.2) did not bring up IPsec SAs for gre-r2: no IPsec "
                                 "CHILD SA of overlay-gre-gre-r2 after 30 s. Look at: charon's log on both routers")


def test_with_serial_a_pair_whose_peer_runs_later_is_checked_then():
    """`serial:` runs the play's routers in batches: a peer of a later batch has not built its end yet, one of an
    earlier batch pinged before this router built its own."""
    from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import batches, verdicts
    pairs = [_pair("r0"), _pair("r2"), _pair("r3"), _pair("r4"), _pair("cisco", external=True)]
    hostvars = {"r0": {"plan": {"pairs": []}, "verify": {"peers": {"r1": {"tunnel": "no answer"}}}}, "r2": {}, "r3": {},
                "r4": {"plan": {"pairs": []}}}
    # r0 ran in an earlier batch, r2 runs later, r3 is in this batch, r4 failed (not in the play's hosts any more)
    where = batches(pairs, hostvars, ["r1", "r3"], ["r0", "r1", "r2", "r3"], "plan")
    assert where == {"earlier": ["r0"], "later": ["r2"]}
    assert batches(pairs, hostvars, None, None, "plan") == {"earlier": [], "later": []}
    own = {"peers": {"r0": {"tunnel": "answered"}, "r2": {"tunnel": "no answer"}, "r3": {"tunnel": "no answer"},
                     "r4": {"tunnel": "no answer"}, "cisco": {"tunnel": "answered"}}}
    out = verdicts(pairs, "r1", own, {"r0": hostvars["r0"]["verify"]}, where["earlier"], where["later"])
    # r0: its own ping was from before r1 built its end; r2: checked when it runs; r3 and r4: failed
    assert [v["ok"] for v in out] == [True, True, False, False, True]
    assert out[1]["text"] == ("r1: r2 runs in a later batch of this play (serial), so its end of gre-r2 is not built yet: the "
                              "pair is checked when r2 runs")
    # without batches, r0's old "no answer" counts
    assert verdicts(pairs[:1], "r1", own, {"r0": hostvars["r0"]["verify"]})[0]["ok"] is False


def test_with_serial_ipsec_comes_up_with_peers_of_earlier_batches_and_waits_for_later_ones():
    from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import ipsec_bring_up
    r0, r2 = _pair("r0"), _pair("r2")
    hostvars = {"r0": {"loaded": {"results": [{"item": {"peer": "r1"}, "changed": False}]}}}
    out = ipsec_bring_up([{"item": r0, "changed": True}, {"item": r2, "changed": True}], "r1", hostvars, "loaded",
                         earlier=["r0"], later=["r2"])
    # r0 sorts first but is done: r1 starts the SAs; r2 brings its pair up when it runs
    assert [(p["tunnel"], p["initiate"]) for p in out] == [("gre-r0", True)]


def test_one_run_settled_from_the_plan_and_the_probes():
    """The role's tasks pass run()'s fields to the modules: held pairs left out (their tunnels, rules, IPsec and
    senders untouched, no purge), the others' MTU from the underlay, and the senders and IPsec that go."""
    from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import run
    hv = {"r1": site(1, ["r2", "r3", "r4"], keepalive=True), "r2": site(2, ["r1"], keepalive=True),
          "r3": site(3, ["r1"], keepalive=True), "r4": site(4, ["r1"], keepalive=True)}
    planned = plan("r1", hv["r1"], hv)
    assert planned["errors"] == [] and planned["ipsec"] is False
    answered = {"underlay": "answered: ICMP echo", "tunnel": "answered", "underlay_mtu": 1492}
    own = {"peers": {"r2": answered, "r3": dict(answered, underlay="no answer: no ICMP echo reply"), "r4": answered},
           "keepalives": ["gre-r3", "gre-r4", "gre-r9"], "ipsec": ["gre-r9"], "masquerade": True}
    theirs = {"r2": {"peers": {"r1": {"underlay": "answered: ICMP echo"}}}, "r4": {"peers": {"r1": {"underlay": "answered: ARP"}}}}
    out = run(planned, "r1", own, theirs, "present", True, False)
    # r3's underlay did not answer: held, its sender stays; r9 left the inventory: its sender and IPsec go
    assert out["held"] == ["r3"] and out["held_tunnels"] == ["gre-r3"] and out["all_held"] is False
    assert out["held_msg"].startswith("The underlay between r1 (172.19.0.1) and r3 (172.19.0.3) does not carry traffic")
    assert out["purge"] is False and [p["peer"] for p in out["pairs"]] == ["r2", "r4"]
    assert [t["name"] for t in out["tunnels"]] == ["gre-r2", "gre-r4"] and [t["tunnel"] for t in out["firewall"]] == ["gre-r2", "gre-r4"]
    assert {p["tunnel"]["name"] for p in out["sending"]} == {"gre-r2", "gre-r4"}
    assert out["sender_stop"] == {"units": [{"name": "overlay-gre-keepalive@gre-r9.service", "enabled": False, "started": False}],
                                  "files": [{"path": "/etc/overlay-gre/keepalive-gre-r9.json", "state": "absent"}]}
    assert out["ipsec_gone"] == ["gre-r9"] and out["ipsec_pairs"] == [] and out["ipsec_on"] is False and out["ipsec"] is True
    assert out["firewall_first"] == []
    # masquerading off, but an earlier run's chains are there: nat_masquerade runs, with no rules, to remove them
    assert out["nat"] is True and out["nat_rules"] == []
    assert out["family"] == "ipv4" and out["answered"] is True and out["pair_hosts"] == ["r1", "r2", "r4"]
    assert out["probes"] == [p["probe"] for p in out["pairs"]] and len(planned["probes"]) == 3
    assert "r1 (172.19.0.1) -> r3 (172.19.0.3): no answer: no ICMP echo reply" in out["underlay_msg"]
    # every pair held: the run stops before any change; the probe off (or absent): none is
    every = run(planned, "r1", {"peers": {}}, {}, "present", True, False)
    assert every["all_held"] is True and every["pairs"] == [] and every["tunnels"] == []
    assert run(planned, "r1", {"peers": {}}, {}, "present", False, False)["held"] == []
    absent = run(planned, "r1", own, theirs, "absent", True, False)
    assert absent["held"] == [] and absent["purge"] is True and absent["ipsec_gone"] == ["gre-r9"]
    assert "not probed (gre_router_preflight is off, or gre_router_state is absent)" in absent["underlay_msg"]


def test_a_new_tunnel_with_ipsec_gets_its_firewall_rules_before_it_exists():
    from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import run
    from support.pairs import howto
    hv = howto(a__ipsec=True, b__ipsec=True, a__ipsec_psk="a-lab-psk-0123456789", b__ipsec_psk="a-lab-psk-0123456789")
    planned = plan("router_a", hv["router_a"], hv)
    assert planned["errors"] == [] and planned["ipsec"] is True
    answered = {"peers": {"router_b": {"underlay": "answered: ICMP echo"}}}
    first = run(planned, "router_a", dict(answered, tunnels=[]), {}, "present", True, False)["firewall_first"]
    assert [(f["tunnel"], f["ipsec"], f["reflect_keepalives"]) for f in first] == [("gre-router_b", True, False)]
    # the rest of its options as the firewall task gets them
    assert dict(first[0], reflect_keepalives=True) == planned["pairs"][0]["firewall_options"]
    # once it exists, the firewall task alone
    assert run(planned, "router_a", dict(answered, tunnels=["gre-router_b"]), {}, "present", True, False)["firewall_first"] == []
