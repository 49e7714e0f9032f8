# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pair planning behind the gre_router role: derived addresses, and every inventory error named."""

from __future__ import annotations

import os

import yaml

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import DEFAULTS, PREFIX, PublishedVars, default_tunnel_name, plan
from support.pairs import howto


def one(result):
    """The plan's one pair, for the one-peer form (gre_router_peer)."""
    assert result["errors"] == [] and len(result["pairs"]) == 1, result
    return result["pairs"][0]


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_symmetric_addresses_first_name_takes_first_address():
    hv = howto()
    pa, pb = one(plan("router_a", hv["router_a"], hv)), one(plan("router_b", hv["router_b"], hv))
    assert pa["tunnel"]["addresses"] == [{"address": "192.168.8.1/30"}]
    assert pb["tunnel"]["addresses"] == [{"address": "192.168.8.2/30"}]
    assert pa["tunnel_peer_address"] == "192.168.8.2" and pb["tunnel_peer_address"] == "192.168.8.1"
    assert (pa["tunnel"]["local"], pa["tunnel"]["remote"]) == ("172.19.1.1", "172.19.1.2")
    assert (pb["tunnel"]["local"], pb["tunnel"]["remote"]) == ("172.19.1.2", "172.19.1.1")
    assert pa["tunnel"]["routes"] == [{"dest": "20.10.1.0/24"}]
    assert pb["tunnel"]["routes"] == [{"dest": "10.10.1.0/24"}]
    assert pa["tunnel"]["name"] == "gre-router_b" and pa["tunnel"]["ttl"] == 64


def test_slash31_uses_both_addresses():
    hv = howto(a__tunnel_cidr="192.168.9.0/31", b__tunnel_cidr="192.168.9.0/31")
    assert one(plan("router_a", hv["router_a"], hv))["tunnel"]["addresses"] == [{"address": "192.168.9.0/31"}]
    assert one(plan("router_b", hv["router_b"], hv))["tunnel"]["addresses"] == [{"address": "192.168.9.1/31"}]


def test_howto_peer_addresses_can_be_written_out():
    hv = howto(a__tunnel_address="192.168.8.1", a__tunnel_peer_address="192.168.8.11",
               b__tunnel_address="192.168.8.11", b__tunnel_peer_address="192.168.8.1")
    pa = one(plan("router_a", hv["router_a"], hv))
    assert pa["tunnel"]["addresses"] == [{"address": "192.168.8.1", "peer": "192.168.8.11"}]


def test_mismatched_written_addresses_are_named():
    hv = howto(a__tunnel_address="192.168.8.1", a__tunnel_peer_address="192.168.8.11",
               b__tunnel_address="192.168.8.12", b__tunnel_peer_address="192.168.8.1")
    errors = plan("router_a", hv["router_a"], hv)["errors"]
    assert any(e.startswith("router_a: gre_router_tunnel_address") and "192.168.8.12" in e for e in errors), errors


def test_peer_missing():
    hv = howto(a__peer="router_c")
    assert plan("router_a", hv["router_a"], hv)["errors"] == [
        "router_a: gre_router_peer names 'router_c', which is not a host of this inventory"]


def test_peer_not_pointing_back():
    hv = howto(b__peer="router_c")
    hv["router_c"] = {}
    errors = plan("router_a", hv["router_a"], hv)["errors"]
    assert errors == ["router_b: gre_router_peer is 'router_c', but router_a names router_b as its peer: "
                      "each router of a pair must name the other"]


def test_key_mismatch_and_dotted_quad_equivalence():
    hv = howto(a__key=42, b__key="0.0.0.42")
    assert plan("router_a", hv["router_a"], hv)["errors"] == []
    assert one(plan("router_a", hv["router_a"], hv))["tunnel"]["key"] == 42
    hv = howto(a__key=42, b__key=43)
    errors = plan("router_a", hv["router_a"], hv)["errors"]
    assert errors == ["router_a: gre_router_key is 42 on router_a but 43 on its peer router_b: both ends of a tunnel must agree"]


def test_tunnel_cidr_mismatch():
    hv = howto(b__tunnel_cidr="192.168.7.0/30")
    errors = plan("router_a", hv["router_a"], hv)["errors"]
    assert any("gre_router_tunnel_cidr is '192.168.8.0/30' on router_a but '192.168.7.0/30'" in e for e in errors), errors


def test_same_underlay():
    hv = howto(b__underlay_ip="172.19.1.1")
    errors = plan("router_a", hv["router_a"], hv)["errors"]
    assert any(e.startswith("router_a: gre_router_underlay_ip is 172.19.1.1 on both") for e in errors), errors


def test_overlapping_lans():
    hv = howto(b__lan_cidrs=["10.10.0.0/16"])
    errors = plan("router_a", hv["router_a"], hv)["errors"]
    assert "router_a: gre_router_lan_cidrs has 10.10.1.0/24, which overlaps 10.10.0.0/16 of router_b's gre_router_lan_cidrs" in errors


def test_lan_overlapping_tunnel_and_underlay():
    hv = howto(a__lan_cidrs=["192.168.8.0/24", "172.19.0.0/16"])
    errors = plan("router_a", hv["router_a"], hv)["errors"]
    assert any("192.168.8.0/24, which overlaps the tunnel network 192.168.8.0/30" in e for e in errors), errors
    assert any("172.19.0.0/16, which holds the underlay address 172.19.1.1" in e for e in errors), errors


def test_malformed_cidr_named():
    hv = howto(a__lan_cidrs=["10.10.1.1/24"])
    errors = plan("router_a", hv["router_a"], hv)["errors"]
    assert any(e.startswith("router_a: gre_router_lan_cidrs has '10.10.1.1/24', which is not a network in CIDR form") for e in errors)


def test_masquerade_needs_lan_interface():
    hv = howto(a__masquerade=True)
    assert plan("router_a", hv["router_a"], hv)["errors"] == [
        "router_a: gre_router_lan_interface is not set, but gre_router_masquerade is on: name the interface toward this site's LAN"]


def test_default_tunnel_name_fits_the_kernel():
    assert default_tunnel_name("router_b") == "gre-router_b"
    assert len(default_tunnel_name("a-very-long-router-name.example.com")) == 15
    assert default_tunnel_name("a b/c:d") == "gre-a-b-c-d"


def test_planner_defaults_agree_with_the_role_defaults():
    with open(os.path.join(ROOT, "roles", "gre_router", "defaults", "main.yml"), encoding="utf-8") as handle:
        role_defaults = yaml.safe_load(handle)
    for key, value in DEFAULTS.items():
        if PREFIX + key in role_defaults:
            assert role_defaults[PREFIX + key] == value, key


def test_the_argument_specs_defaults_are_the_role_defaults():
    """The role's defaults are written twice for Ansible (defaults/main.yml, which the role reads, and
    meta/argument_specs.yml, which ansible-doc shows) and once for the planner (DEFAULTS, above): all three agree."""
    role = os.path.join(ROOT, "roles", "gre_router")
    with open(os.path.join(role, "defaults", "main.yml"), encoding="utf-8") as handle:
        role_defaults = yaml.safe_load(handle)
    with open(os.path.join(role, "meta", "argument_specs.yml"), encoding="utf-8") as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    for name, value in role_defaults.items():
        assert name in options, name
        assert options[name].get("default") == value, (name, options[name].get("default"), value)
    assert sorted(name for name, option in options.items() if "default" in option and name not in role_defaults) == []


def test_masquerade_rules_follow_the_howto():
    hv = howto(a__masquerade=True, a__lan_interface="eth1")
    assert plan("router_a", hv["router_a"], hv)["nat_rules"] == [
        {"source": "10.10.1.0/24", "out_interface": "gre-router_b"},
        {"source": "192.168.8.2/32", "out_interface": "eth1"},
    ]


def test_absent_removes_every_tunnel_of_the_plan_by_name():
    hv = howto()
    assert plan("router_a", hv["router_a"], hv)["absent"] == {
        "firewall": [{"tunnel": "gre-router_b", "state": "absent"}],
        "tunnels": [{"name": "gre-router_b", "state": "absent"}]}
    broken = howto(a__key=1, b__key=2)
    result = plan("router_a", broken["router_a"], broken)
    assert result["errors"] and result["absent"] == {"firewall": [], "tunnels": []}


def test_peers_are_compared_through_the_settings_they_published():
    """A key given by the play (or a role parameter) is in each router's own settings, not in its peer's hostvars:
    compared through what each router published, both ends agree."""
    hv = howto()
    published = dict((name, dict(hv[name], gre_router_key=77)) for name in ("router_a", "router_b"))
    seen = dict((name, dict(hv[name], _published=published[name])) for name in hv)
    errors = plan("router_a", published["router_a"], seen)["errors"]
    assert any("gre_router_key is 77 on router_a but None on its peer router_b" in e for e in errors), errors
    result = plan("router_a", published["router_a"], PublishedVars(seen, "_published"))
    assert result["errors"] == [] and result["pairs"][0]["tunnel"]["key"] == 77
    # a peer that published nothing (outside the play) is read from its hostvars
    unpublished = dict(seen, router_b=hv["router_b"])
    errors = plan("router_a", published["router_a"], PublishedVars(unpublished, "_published"))["errors"]
    assert any("gre_router_key is 77 on router_a but None on its peer router_b" in e for e in errors), errors


def test_role_readme_is_in_step_with_the_argument_specs():
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "role-readme"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_both_roles_install_the_same_boot_unit():
    """gre_router and gre_lan_host share /etc/systemd/system/overlay-gre@.service: they must never fight over it."""
    texts = []
    for role in ("gre_router", "gre_lan_host"):
        with open(os.path.join(ROOT, "roles", role, "templates", "overlay-gre@.service.j2"), encoding="utf-8") as handle:
            texts.append(handle.read())
    assert texts[0] == texts[1]
