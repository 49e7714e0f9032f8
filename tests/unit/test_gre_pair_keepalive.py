# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pair planner's gre_router_keepalive: normalised on the controller, refused with the host and variable named."""

from __future__ import annotations

import pytest

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import plan
from support.pairs import howto


@pytest.mark.parametrize("value, expected", [
    (None, None), (False, None), ({}, None), (True, {"period": 10, "retries": 3}),
    ({"period": 1, "retries": 5}, {"period": 1, "retries": 5}), ({"period": 0.5}, {"period": 0.5, "retries": 3}),
    ({"retries": "4"}, {"period": 10, "retries": 4}),
])
def test_keepalive_is_normalised(value, expected):
    hv = howto(a__keepalive=value)
    assert plan("router_a", hv["router_a"], hv)["pairs"][0]["keepalive"] == expected


@pytest.mark.parametrize("value", [{"period": 0}, {"retries": 0}, {"period": "x"}, {"interval": 5}, "10 3", {"retries": True}])
def test_bad_keepalive_is_refused_naming_host_and_variable(value):
    hv = howto(a__keepalive=value)
    errors = plan("router_a", hv["router_a"], hv)["errors"]
    assert len(errors) == 1 and errors[0].startswith("router_a: gre_router_keepalive has "), errors


def test_keepalive_needs_an_ipv4_underlay():
    hv = howto(a__keepalive=True, a__underlay_ip="2001:db8::1", b__underlay_ip="2001:db8::2")
    errors = plan("router_a", hv["router_a"], hv)["errors"]
    assert any("gre_router_keepalive is set, but GRE keepalives are sent over IPv4 only" in e for e in errors), errors
