# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GRE over IPsec: the pair check (keys compared, never shown), the MTU with ESP's overhead, the swanctl file and its
redacted form, what swanctl prints, and the firewall rules that keep GRE from leaving in clear."""

from __future__ import annotations

import base64

import pytest

from ansible_collections.overlay.gre.plugins.module_utils import _ipsec
from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import plan, with_underlay_mtu
from ansible_collections.overlay.gre.plugins.module_utils._tunnel_firewall import validate as firewall_validate, wanted_rules
from support.pairs import howto

KEY = "correct horse battery staple 42"


def ipsec_pair(**changes):
    base = {"a__ipsec": True, "b__ipsec": True, "a__ipsec_psk": KEY, "b__ipsec_psk": KEY}
    base.update(changes)
    return howto(**base)


def pair_of(name, hv):
    """NAME's plan, and its one pair (or the plan's errors)."""
    result = plan(name, hv[name], hv)
    return result, (result["pairs"][0] if result["pairs"] else {})


def test_off_by_default_changes_nothing():
    hv = howto()
    result, pa = pair_of("router_a", hv)
    assert result["errors"] == [] and pa["ipsec"] is None and pa["tunnel"]["mtu"] is None
    assert pa["firewall_options"]["ipsec"] is False


def test_on_gives_settings_and_the_esp_mtu_without_the_key():
    hv = ipsec_pair()
    (ra, pa), (rb, pb) = pair_of("router_a", hv), pair_of("router_b", hv)
    assert ra["errors"] == [] and rb["errors"] == []
    assert pa["firewall_options"]["ipsec"] is True and pa["tunnel_options_plain"]["mtu"] == 1476
    assert pa["ipsec"] == {"ike_proposals": "aes256gcm16-prfsha384-ecp384", "esp_proposals": "aes256gcm16-ecp384",
                           "rekey_time": 3600, "mtu": 1442}
    assert pa["tunnel"]["mtu"] == 1442 and pb["tunnel"]["mtu"] == 1442
    assert KEY not in repr(ra) and KEY not in repr(rb)


def test_gre_key_and_own_mtu():
    hv = ipsec_pair(a__key=42, b__key=42)
    assert pair_of("router_a", hv)[1]["tunnel"]["mtu"] == 1438
    hv = ipsec_pair(a__mtu=1400)
    assert pair_of("router_a", hv)[1]["tunnel"]["mtu"] == 1400


def test_the_esp_mtu_follows_the_underlay_the_router_has():
    hv = ipsec_pair()
    result, pa = pair_of("router_a", hv)
    # the probe read a 1400-byte underlay interface toward the peer (or gre_router_underlay_mtu says 1400)
    for settled in (with_underlay_mtu(result["pairs"], {"router_b": {"underlay_mtu": 1400}}),
                    with_underlay_mtu(result["pairs"], {"router_b": {"underlay_mtu": 1500}}, 1400)):
        pair = settled[0]
        assert pair["tunnel"]["mtu"] == pair["tunnel_options"]["mtu"] == pair["ipsec"]["mtu"] == _ipsec.tunnel_mtu(
            "aes256gcm16-ecp384", None, 1400) == 1342
        assert pair["tunnel_options_plain"]["mtu"] == 1376 and pair["underlay_mtu"] == 1400
    # a jumbo underlay, and a key
    hv = ipsec_pair(a__key=42, b__key=42)
    result, pa = pair_of("router_a", hv)
    pair = with_underlay_mtu(result["pairs"], {"router_b": {"underlay_mtu": 9000}})[0]
    assert pair["tunnel"]["mtu"] == _ipsec.tunnel_mtu("aes256gcm16-ecp384", 42, 9000) > 8900
    assert pair["tunnel_options_plain"]["mtu"] == 8972
    # unknown (no route to the peer): the plan's, for 1500 bytes; the plan itself is left as it was
    assert with_underlay_mtu(result["pairs"], {"router_b": {"underlay_mtu": None}})[0]["tunnel"]["mtu"] == 1438
    assert result["pairs"][0]["tunnel"]["mtu"] == 1438


def test_the_inventory_mtu_stands_and_plain_gre_keeps_the_kernel_own():
    result, pa = pair_of("router_a", ipsec_pair(a__mtu=1300))
    assert with_underlay_mtu(result["pairs"], {"router_b": {"underlay_mtu": 9000}})[0]["tunnel"]["mtu"] == 1300
    result, pa = pair_of("router_a", howto())
    assert with_underlay_mtu(result["pairs"], {"router_b": {"underlay_mtu": 9000}})[0]["tunnel"]["mtu"] is None


@pytest.mark.parametrize("value", [100, 70000, "jumbo", True, 1.5])
def test_an_underlay_mtu_that_is_not_one_is_named(value):
    errors = plan("router_a", dict(howto()["router_a"], gre_router_underlay_mtu=value), howto())["errors"]
    assert any(e.startswith("router_a: gre_router_underlay_mtu has %r, which is not an MTU" % (value,)) for e in errors), errors


def test_an_underlay_mtu_reaches_the_plan():
    hv = howto()
    assert plan("router_a", dict(hv["router_a"], gre_router_underlay_mtu="1460"), hv)["underlay_mtu"] == 1460
    assert plan("router_a", hv["router_a"], hv)["underlay_mtu"] is None


def test_different_keys_name_both_routers_and_show_neither():
    hv = ipsec_pair(b__ipsec_psk="another key of enough length")
    errors = plan("router_a", hv["router_a"], hv)["errors"]
    assert len(errors) == 1
    assert "router_a" in errors[0] and "router_b" in errors[0] and "gre_router_ipsec_psk" in errors[0]
    assert KEY not in errors[0] and "another key" not in errors[0]


@pytest.mark.parametrize("changes, fragment", [
    ({"b__ipsec": False}, "router_a: gre_router_ipsec is True on router_a but False on its peer router_b"),
    ({"a__ipsec_psk": None}, "router_a: gre_router_ipsec_psk is not set"),
    ({"b__ipsec_psk": ""}, "router_b: gre_router_ipsec_psk is not set"),
    ({"a__ipsec_psk": "short", "b__ipsec_psk": "short"}, "shorter than 16 characters"),
    ({"a__ipsec_esp_proposals": "aes256gcm16;reboot"}, "router_a: gre_router_ipsec_esp_proposals: 'aes256gcm16;reboot' is not"),
    ({"a__ipsec_ike_proposals": "aes128gcm16-prfsha256-ecp256"}, "gre_router_ipsec_ike_proposals is 'aes128gcm16-prfsha256-ecp256' on router_a"),
    ({"a__ipsec_rekey_time": 5, "b__ipsec_rekey_time": 5}, "out of range (10 to 86400 seconds)"),
])
def test_bad_input_is_named(changes, fragment):
    hv = ipsec_pair(**changes)
    errors = plan("router_a", hv["router_a"], hv)["errors"]
    assert any(fragment in e for e in errors), errors
    assert not any("short" in e.split("characters")[-1] for e in errors if "shorter" in e)


def test_ipv6_underlay_is_refused():
    hv = ipsec_pair(a__underlay_ip="2001:db8::1", b__underlay_ip="2001:db8::2")
    assert any("IPv4 underlay addresses only" in e for e in plan("router_a", hv["router_a"], hv)["errors"])


@pytest.mark.parametrize("payload, proposals, overhead", [
    (1446, "aes256gcm16-ecp384", 34),      # 8 + 8 + (1446 + 2 -> 1448) - 1446 + 16
    (1447, "aes256gcm16-ecp384", 37),      # 3 bytes of padding
    (1446, "aes256-sha256-modp2048", 66),  # CBC: 16-byte IV, 32-byte ICV, aligned to 16
])
def test_esp_overhead(payload, proposals, overhead):
    assert _ipsec.esp_overhead(payload, proposals) == overhead


def test_tunnel_mtu_fills_the_underlay_packet_exactly_or_nearly():
    for key in (None, 1):
        for proposals in ("aes256gcm16-ecp384", "aes128gcm16,aes256gcm16", "aes256-sha512"):
            mtu = _ipsec.tunnel_mtu(proposals, key)
            gre = 8 if key else 4
            assert 20 + gre + mtu + _ipsec.esp_overhead(gre + mtu, proposals) <= 1500
            assert 20 + gre + mtu + 1 + _ipsec.esp_overhead(gre + mtu + 1, proposals) > 1500
    assert _ipsec.tunnel_mtu("aes256gcm16-ecp384") == 1442


OPTS = {"tunnel": "gre-router_b", "state": "present", "local": "172.19.1.1", "remote": "172.19.1.2", "psk": KEY,
        "ike_proposals": "aes256gcm16-prfsha384-ecp384", "esp_proposals": "aes256gcm16-ecp384", "rekey_time": 30}


def test_config_text_transport_gre_between_the_underlay_addresses():
    text = _ipsec.config_text(_ipsec.validate(OPTS), header="managed")
    assert text.startswith("# managed\nconnections {\n    overlay-gre-gre-router_b {\n        version = 2\n")
    for line in ("local_addrs = 172.19.1.1", "remote_addrs = 172.19.1.2", "mode = transport",
                 "local_ts = 172.19.1.1/32[gre]", "remote_ts = 172.19.1.2/32[gre]", "id = 172.19.1.1", "id = 172.19.1.2",
                 "auth = psk", "rekey_time = 30s", "rekey_time = 120s", "start_action = trap|start",
                 "esp_proposals = aes256gcm16-ecp384", "proposals = aes256gcm16-prfsha384-ecp384",
                 "ike-overlay-gre-gre-router_b {", "id-local = 172.19.1.1", "id-remote = 172.19.1.2"):
        assert "\n" + " " * (len(line) - len(line.lstrip())) in text and line in text, line
    assert "close_action" not in text and "dpd_action" not in text  # they would trap an unloaded connection again
    assert KEY not in text
    assert "secret = 0s" + base64.b64encode(KEY.encode()).decode() in text


def test_redacted_forms_hide_the_key():
    opts = _ipsec.validate(OPTS)
    redacted = _ipsec.config_text(opts, redact=True)
    assert "secret = <redacted>" in redacted and "secret = 0s" not in redacted
    assert _ipsec.redact_text(_ipsec.config_text(opts)) == redacted
    assert _ipsec.redact_text(None) is None


@pytest.mark.parametrize("change, fragment", [
    ({"tunnel": "a/b"}, "tunnel: 'a/b' is not a valid interface name"),
    ({"local": "bond0"}, "local: 'bond0' is not an IP address"),
    ({"remote": "2001:db8::2"}, "remote: '2001:db8::2' is IPv6"),
    ({"remote": "172.19.1.1"}, "remote: '172.19.1.1' is the local address too"),
    ({"psk": ""}, "psk: is required"),
    ({"psk": "tiny"}, "psk: is shorter than 16 characters"),
    ({"esp_proposals": "aes256gcm16 ecp384"}, "esp_proposals: 'aes256gcm16 ecp384' is not a list"),
    ({"rekey_time": "soon"}, "rekey_time: 'soon' is not a number of seconds"),
])
def test_module_input_is_refused_naming_option_and_value(change, fragment):
    opts = dict(OPTS, **change)
    with pytest.raises(_ipsec.IpsecInputError) as info:
        _ipsec.validate(opts)
    assert fragment in str(info.value)
    assert "tiny" not in str(info.value)


def test_absent_needs_only_the_tunnel():
    expected = {"tunnel": "gre-x", "state": "absent", "conf_dir": "/etc/swanctl/conf.d"}
    assert _ipsec.validate({"tunnel": "gre-x", "state": "absent"}) == expected
    assert _ipsec.conf_path("gre-x") == "/etc/swanctl/conf.d/overlay-gre-gre-x.conf"


LIST_SAS = """overlay-gre-gre-router_b: #3, ESTABLISHED, IKEv2, 1b2c3d4e5f607182_i* 91a2b3c4d5e6f708_r
  local  '172.19.1.1' @ 172.19.1.1[500]
  overlay-gre-gre-router_b: #5, reqid 1, INSTALLED, TRANSPORT, ESP:AES_GCM_16-256/ECP_384
    installed 12s ago, rekeying in 14s, expires in 21s
  overlay-gre-gre-router_b: #4, reqid 1, REKEYED, TRANSPORT, ESP:AES_GCM_16-256/ECP_384
"""


def test_swanctl_output_parsing():
    expected = {"ike": "ESTABLISHED", "children": ["INSTALLED", "REKEYED"]}
    assert _ipsec.established_sas(LIST_SAS, "overlay-gre-gre-router_b") == expected
    assert _ipsec.established_sas("", "overlay-gre-gre-router_b") == {"ike": None, "children": []}


def firewall(**params):
    base = {"tunnel": "gre-router_b", "state": "present", "peer_underlay": "172.19.1.2", "reflect_keepalives": True,
            "local_networks": ["10.10.1.0/24"], "peer_networks": ["20.10.1.0/24"], "mss_clamp": "pmtu"}
    base.update(params)
    return wanted_rules(firewall_validate(base))


def test_firewall_without_ipsec_is_as_before():
    rules = firewall()
    assert rules[("filter", "OGRE-OUT-gre-router_b")] == []
    assert [r for r in rules[("filter", "OGRE-IN-gre-router_b")] if "policy" in r] == []


def test_firewall_with_ipsec_drops_clear_gre_both_ways():
    rules = firewall(ipsec=True)
    tag = ("-m", "comment", "--comment", "overlay.gre gre-router_b")
    inbound = rules[("filter", "OGRE-IN-gre-router_b")]
    assert ("-s", "172.19.1.2/32", "-p", "gre") + tag + ("-j", "ACCEPT") not in inbound
    assert ("-s", "172.19.1.2/32", "-p", "gre", "-m", "policy", "--dir", "in", "--pol", "ipsec") + tag + ("-j", "ACCEPT") in inbound
    assert ("-s", "172.19.1.2/32", "-p", "gre", "-m", "policy", "--dir", "in", "--pol", "none") + tag + ("-j", "DROP") in inbound
    assert ("-s", "172.19.1.2/32", "-p", "esp") + tag + ("-j", "ACCEPT") in inbound
    assert ("-s", "172.19.1.2/32", "-p", "udp", "-m", "udp", "--dport", "500") + tag + ("-j", "ACCEPT") in inbound
    clear_out = ("-d", "172.19.1.2/32", "-p", "gre", "-m", "policy", "--dir", "out", "--pol", "none") + tag + ("-j", "DROP")
    assert rules[("filter", "OGRE-OUT-gre-router_b")] == [clear_out]
    forward = rules[("filter", "OGRE-FWD-gre-router_b")]
    assert clear_out in forward
    assert ("-d", "172.19.1.2/32", "-i", "gre-router_b", "-p", "gre", "-m", "policy", "--dir", "out", "--pol", "ipsec") + tag \
        + ("-j", "ACCEPT") in forward


def test_firewall_ipsec_needs_the_peer():
    from ansible_collections.overlay.gre.plugins.module_utils._tunnel_firewall import FirewallInputError
    with pytest.raises(FirewallInputError, match="ipsec: is true, but peer_underlay is not set"):
        firewall(ipsec=True, peer_underlay=None)


def test_every_pair_of_a_mesh_is_protected_and_a_peer_outside_the_inventory_follows_this_router():
    from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import plan as router_plan

    def site(n, peers):
        return {"gre_router_peers": peers, "gre_router_underlay_ip": "172.19.0.%d" % n, "gre_router_lan_cidrs": ["10.%d.0.0/16" % n],
                "gre_router_site_id": n, "gre_router_tunnel_pool": "10.255.0.0/24", "gre_router_ipsec": True, "gre_router_ipsec_psk": KEY}
    cisco = {"name": "cisco", "underlay_ip": "198.51.100.7", "lan_cidrs": ["192.168.50.0/24"], "tunnel_cidr": "192.168.200.0/30"}
    hv = {"r1": site(1, ["r2", "r3", cisco]), "r2": site(2, ["r1", "r3"]), "r3": site(3, ["r1", "r2"])}
    result = router_plan("r1", hv["r1"], hv)
    assert result["errors"] == []
    assert [p["ipsec"]["mtu"] for p in result["pairs"]] == [1442, 1442, 1442]
    hv["r3"]["gre_router_ipsec"] = False
    errors = router_plan("r1", hv["r1"], hv)["errors"]
    assert any(e.startswith("r1: gre_router_ipsec is True on r1 but False on its peer r3") for e in errors), errors


SAS_UP = """overlay-gre-gre-b: #1, ESTABLISHED, IKEv2, 1122334455667788_i* 99aabbccddeeff00_r
  overlay-gre-gre-b: #1, reqid 1, INSTALLED, TRANSPORT, ESP:AES_GCM_16-256
"""


def test_bring_up_initiates_every_twenty_polls_until_the_child_sa_is_installed():
    outputs = iter([""] * 45 + [SAS_UP])
    started, slept = [], []
    installed, sas = _ipsec.bring_up(lambda: next(outputs), lambda: started.append(True), "overlay-gre-gre-b", True,
                                     slept.append)
    assert installed and sas == {"ike": "ESTABLISHED", "children": ["INSTALLED"]}
    assert len(started) == 3 and len(slept) == 45  # at polls 0, 20 and 40


def test_bring_up_waits_for_the_peer_without_initiating_and_gives_up():
    started, slept = [], []
    installed, sas = _ipsec.bring_up(lambda: "", lambda: started.append(True), "overlay-gre-gre-b", False, slept.append,
                                     tries=60, interval=0.5)
    assert not installed and sas == {"ike": None, "children": []}
    assert started == [] and slept == [0.5] * 60  # 30 s


def test_established_needs_only_the_tunnel():
    assert _ipsec.validate({"tunnel": "gre-b", "state": "established"}) == {
        "tunnel": "gre-b", "state": "established", "conf_dir": _ipsec.CONF_DIR}


WANTED = ["charon-systemd", "strongswan-swanctl", "libstrongswan-standard-plugins"]


def test_packages_missing_are_installed_and_strongswan_starter_stops_the_run():
    read = {"rc": 1, "stdout": "charon-systemd installed\nstrongswan-swanctl not-installed\n", "stderr": "no packages found"}
    assert _ipsec.packages_state(read, WANTED) == {"missing": ["strongswan-swanctl", "libstrongswan-standard-plugins"],
                                                   "problem": ""}
    every = {"rc": 0, "stdout": "".join("%s installed\n" % name for name in WANTED)}
    assert _ipsec.packages_state(every, WANTED) == {"missing": [], "problem": ""}
    starter = dict(every, stdout=every["stdout"] + "strongswan-starter installed\n")
    state = _ipsec.packages_state(starter, WANTED)
    assert state["problem"].startswith("gre_router_ipsec runs strongSwan's charon-systemd (strongswan.service), but "
                                       "strongswan-starter is installed")
    assert "apt purge strongswan-starter" in state["problem"]
    # removed but not purged: not in the way
    assert _ipsec.packages_state(dict(every, stdout=every["stdout"] + "strongswan-starter config-files\n"), WANTED)["problem"] == ""


def test_no_dpkg_is_a_problem_and_a_skipped_read_is_none():
    state = _ipsec.packages_state({"rc": 2, "failed": True, "msg": "[Errno 2] No such file or directory: b'dpkg-query'"}, WANTED)
    assert "this router has no dpkg (not Debian or Ubuntu)" in state["problem"]
    assert _ipsec.packages_state({"skipped": True}, WANTED) == {"missing": [], "problem": ""}
    assert _ipsec.packages_state({}, WANTED) == {"missing": [], "problem": ""}


def test_vici_loads_the_files_connection_and_secret_by_name():
    """What charon gets over vici is what swanctl would send for the file's sections: lists split at commas, the
    secret's id its section's name (so that it can be unloaded alone), the key as it is (not base64)."""
    opts = _ipsec.validate(dict(OPTS, esp_proposals="aes256gcm16-ecp384, aes128gcm16-modp2048"))
    (load_conn, conns), (load_shared, shared) = _ipsec.vici_load(opts)
    name = "overlay-gre-gre-router_b"
    assert (load_conn, list(conns)) == ("load-conn", [name])
    conn = conns[name]
    assert conn["local_addrs"] == ["172.19.1.1"] and conn["remote_addrs"] == ["172.19.1.2"]
    assert conn["local"] == {"auth": "psk", "id": "172.19.1.1"} and conn["remote"] == {"auth": "psk", "id": "172.19.1.2"}
    child = conn["children"][name]
    assert child["esp_proposals"] == ["aes256gcm16-ecp384", "aes128gcm16-modp2048"]
    assert child["local_ts"] == ["172.19.1.1/32[gre]"] and child["start_action"] == "trap|start"
    text = _ipsec.config_text(opts)
    for key in ("rekey_time = %s" % conn["rekey_time"], "rekey_time = %s" % child["rekey_time"], "ike-" + name):
        assert key in text
    assert load_shared == "load-shared"
    assert shared == {"id": "ike-" + name, "type": "ike", "data": OPTS["psk"].encode("utf-8"),
                      "owners": ["172.19.1.1", "172.19.1.2"]}
    assert _ipsec.vici_unload(name) == [("unload-conn", {"name": name}), ("unload-shared", {"id": "ike-" + name})]
