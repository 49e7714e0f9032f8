# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nat_masquerade's arguments become rules in exactly the form iptables-save prints them."""

from __future__ import annotations

import pytest

from ansible_collections.overlay.gre.plugins.module_utils._iptables import join_rule, parse_save, plan
from ansible_collections.overlay.gre.plugins.modules import nat_masquerade as mod


@pytest.mark.parametrize("given,normal,warned", [
    ("10.10.1.0/24", "10.10.1.0/24", False),
    ("10.10.1.1/24", "10.10.1.0/24", True),
    ("192.168.8.11", "192.168.8.11/32", False),
    ("192.168.8.11/32", "192.168.8.11/32", False),
    ("10.10.1.0/255.255.255.0", "10.10.1.0/24", False),
    ("0.0.0.0/0", None, False),
])
def test_source_is_normalised_like_iptables(given, normal, warned):
    source, warning = mod.normalise_source(given)
    assert source == normal
    assert bool(warning) is warned


@pytest.mark.parametrize("given", ["10.10.1.0/33", "10.10.1", "eth1", "", "2001:db8::/64", "10.10.1.0/24 "])
def test_malformed_source_is_refused(given):
    if given == "10.10.1.0/24 ":
        assert mod.normalise_source(given)[0] == "10.10.1.0/24"
        return
    with pytest.raises(ValueError) as err:
        mod.normalise_source(given)
    assert ("IPv6" if ":" in given else "not an IPv4") in str(err.value)


@pytest.mark.parametrize("name", ["eth1", "my_tunnel", "gre+", "bond0.100", "a" * 15, "veth-x@1"])
def test_valid_interface_names(name):
    assert mod.check_interface(name) == name


@pytest.mark.parametrize("name", ["", "a" * 16, "eth 1", "eth1/2", "eth:1", "..", "!eth1", "e+th"])
def test_invalid_interface_names(name):
    with pytest.raises(ValueError):
        mod.check_interface(name)


@pytest.mark.parametrize("comment", ["", "x" * 256, 'say "hi"', "back\\slash", "two\nlines", "it's"])
def test_invalid_comments(comment):
    with pytest.raises(ValueError):
        mod.check_comment(comment)


def test_rules_have_iptables_save_form():
    # as iptables-nft-save and iptables-legacy-save v1.8.9 print them (checked on both backends)
    assert join_rule(mod.masquerade_rule("10.10.1.0/24", "eth1", "overlay.gre nat_masquerade")) == \
        '-s 10.10.1.0/24 -o eth1 -m comment --comment "overlay.gre nat_masquerade" -j MASQUERADE'
    out_rule, back_rule = mod.forward_rules("10.10.1.0/24", "eth1", "overlay.gre nat_masquerade")
    assert join_rule(out_rule) == '-s 10.10.1.0/24 -o eth1 -m comment --comment "overlay.gre nat_masquerade" -j ACCEPT'
    assert join_rule(back_rule) == ('-d 10.10.1.0/24 -i eth1 -m conntrack --ctstate RELATED,ESTABLISHED '
                                    '-m comment --comment "overlay.gre nat_masquerade" -j ACCEPT')


def test_any_source_has_no_address_match():
    assert join_rule(mod.masquerade_rule(None, "eth1", "x")) == "-o eth1 -m comment --comment x -j MASQUERADE"


def params(**kwargs):
    base = dict(source=None, out_interface=None, state="present", forward=True, comment="overlay.gre nat_masquerade",
                rules=None, purge=False, backend="auto", wait=10)
    base.update(kwargs)
    return base


def test_items_inherit_the_task_options():
    entries, warnings = mod.requested_entries(params(out_interface="eth1", forward=False, rules=[
        {"source": "10.10.1.0/24"},
        {"source": "10.10.2.5/24", "out_interface": "gre1", "forward": True, "comment": "b", "state": "absent"},
    ]))
    assert entries == [("10.10.1.0/24", "eth1", "present", False, "overlay.gre nat_masquerade"),
                       ("10.10.2.0/24", "gre1", "absent", True, "b")]
    assert warnings == ["rules[1]: source 10.10.2.5/24 has host bits set; using 10.10.2.0/24 as iptables does"]


def test_the_same_rule_twice_is_refused():
    with pytest.raises(ValueError, match=r"rules\[1\]: source 10.10.1.0/24 out of eth1 is listed twice"):
        mod.requested_entries(params(out_interface="eth1", rules=[{"source": "10.10.1.0/24"}, {"source": "10.10.1.7/24"}]))


def test_item_errors_name_the_item():
    with pytest.raises(ValueError, match=r"rules\[0\]: out_interface is required"):
        mod.requested_entries(params(rules=[{"source": "10.10.1.0/24"}]))


def test_forward_false_removes_forward_rules_but_keeps_nat():
    saved = parse_save(
        "*filter\n:FORWARD ACCEPT [0:0]\n:OVERLAY-GRE-FWD - [0:0]\n"
        '-A FORWARD -m comment --comment "overlay.gre nat_masquerade" -j OVERLAY-GRE-FWD\n'
        '-A OVERLAY-GRE-FWD -s 10.10.1.0/24 -o eth1 -m comment --comment "overlay.gre nat_masquerade" -j ACCEPT\n'
        '-A OVERLAY-GRE-FWD -d 10.10.1.0/24 -i eth1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "overlay.gre nat_masquerade" -j ACCEPT\n'
        "COMMIT\n")
    entries, _warnings = mod.requested_entries(params(source="10.10.1.0/24", out_interface="eth1", forward=False))
    payload = plan(saved, mod.chain_specs(entries, purge=False)).restore_payload()
    assert payload.startswith("*filter\n-D FORWARD")
    assert "-X OVERLAY-GRE-FWD" in payload
    assert "*nat\n:OVERLAY-GRE-MASQ - [0:0]\n" in payload
