# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_args
short_description: What one run of the GRE router role passes to each module
version_added: 0.4.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) once the pairs it builds are settled.
  - Returns C(tunnels) (for M(overlay.gre.gre_tunnel); a tunnel whose IPsec goes gets its plain GRE MTU back),
    C(firewall) (for M(overlay.gre.tunnel_firewall)), C(nat_rules) (for M(overlay.gre.nat_masquerade)), C(sending)
    (the pairs whose keepalives this run sends), C(ipsec_pairs) (the pairs it protects with IPsec) and C(ipsec_gone)
    (the tunnels whose IPsec configuration goes; a held pair's stays).
options:
  _input:
    description: The pairs this run builds.
    type: list
    elements: dict
    required: true
  held_tunnels:
    description: The tunnels of the held pairs.
    type: list
    elements: str
    required: true
  probe:
    description: The router's M(overlay.gre.peer_probe) result (its C(ipsec)).
    type: dict
    required: true
  state:
    description: C(gre_router_state).
    type: str
    required: true
  masquerade:
    description: C(gre_router_masquerade).
    type: bool
    required: true
"""

EXAMPLES = r"""
- name: Bring up the tunnels
  overlay.gre.gre_tunnel:
    tunnels: "{{ (pairs | overlay.gre.gre_router_args([], probe, 'present', false)).tunnels }}"
"""

RETURN = r"""
_value:
  description: C(tunnels), C(firewall), C(nat_rules), C(sending), C(ipsec_pairs) and C(ipsec_gone).
  type: dict
"""

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import run_args


def gre_router_args(pairs, held_tunnels, probe, state, masquerade):
    return run_args(list(pairs or []), list(held_tunnels or []), dict(probe or {}), str(state), bool(masquerade))


class FilterModule(object):
    def filters(self):
        return {"gre_router_args": gre_router_args}
