# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_underlay_mtu
short_description: A GRE router's pairs with their tunnel MTU derived from the underlay the router has
version_added: 0.4.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) once M(overlay.gre.peer_probe) read the router.
  - Where the inventory sets no C(gre_router_mtu), a tunnel with IPsec gets the largest MTU whose ESP packets fit in
    one underlay packet, and the same tunnel without IPsec the kernel's own MTU for plain GRE; from O(override)
    (C(gre_router_underlay_mtu)) when set, else from the MTU of the interface through which the router routes to
    the peer's underlay address.
options:
  _input:
    description: The pairs of the router's plan (from P(overlay.gre.gre_router_plan#filter)).
    type: list
    elements: dict
    required: true
  probe_peers:
    description: M(overlay.gre.peer_probe)'s C(peers) (each peer's C(underlay_mtu)).
    type: dict
    required: true
  override:
    description: The underlay's MTU from the inventory (C(gre_router_underlay_mtu)), or null.
    type: int
"""

EXAMPLES = r"""
- name: The pairs to build, their MTU from the underlay
  ansible.builtin.set_fact:
    pairs: "{{ plan.pairs | overlay.gre.gre_router_underlay_mtu(probe.peers, plan.underlay_mtu) }}"
"""

RETURN = r"""
_value:
  description: The pairs, each with C(tunnel), C(tunnel_options), C(tunnel_options_plain) and C(ipsec) updated.
  type: list
  elements: dict
"""

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import with_underlay_mtu


def gre_router_underlay_mtu(pairs, probe_peers, override=None):
    return with_underlay_mtu(list(pairs or []), dict(probe_peers or {}), override)


class FilterModule(object):
    def filters(self):
        return {"gre_router_underlay_mtu": gre_router_underlay_mtu}
