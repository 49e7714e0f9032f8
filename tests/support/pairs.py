# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The how-to's pair of routers as hostvars, for the tests of the pair planner."""

from __future__ import annotations

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import PREFIX


def howto(**changes):
    """router_a and router_b's gre_router_* variables; a__key=value / b__key=value change one router's."""
    a = {"gre_router_peer": "router_b", "gre_router_underlay_ip": "172.19.1.1", "gre_router_lan_cidrs": ["10.10.1.0/24"],
         "gre_router_tunnel_cidr": "192.168.8.0/30"}
    b = {"gre_router_peer": "router_a", "gre_router_underlay_ip": "172.19.1.2", "gre_router_lan_cidrs": ["20.10.1.0/24"],
         "gre_router_tunnel_cidr": "192.168.8.0/30"}
    for key, value in changes.items():
        host, var = key.split("__")
        (a if host == "a" else b)[PREFIX + var] = value
    return {"router_a": a, "router_b": b}
