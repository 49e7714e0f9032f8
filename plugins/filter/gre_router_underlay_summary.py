# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_underlay_summary
short_description: What the underlay probe of a GRE router found for each of its pairs, in one line
version_added: 0.4.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) to report the check of the underlay before any change.
options:
  _input:
    description: The pairs of the router's plan (from P(overlay.gre.gre_router_plan#filter)).
    type: list
    elements: dict
    required: true
  me:
    description: The router's inventory name.
    type: str
    required: true
  probe_peers:
    description: The C(peers) of the router's M(overlay.gre.peer_probe) result.
    type: dict
    required: true
  probed:
    description: Whether the underlay was probed (false with C(gre_router_preflight) off or C(gre_router_state=absent)).
    type: bool
    required: true
"""

EXAMPLES = r"""
- name: Report the underlay
  ansible.builtin.debug:
    msg: "{{ plan.pairs | overlay.gre.gre_router_underlay_summary(inventory_hostname, probe.peers, true) }}"
"""

RETURN = r"""
_value:
  description: One text, the pairs separated by C(; ).
  type: str
"""

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import underlay_summary


def gre_router_underlay_summary(pairs, me, probe_peers, probed):
    return underlay_summary(pairs, str(me), probe_peers, bool(probed))


class FilterModule(object):
    def filters(self):
        return {"gre_router_underlay_summary": gre_router_underlay_summary}
