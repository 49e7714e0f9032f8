# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_held_message
short_description: Why a GRE router's held pairs are left as they are, in one message
version_added: 0.4.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) when a pair is held (P(overlay.gre.gre_router_held#filter)).
  - For each held pair, both routers' underlay probes (a peer outside the play or the inventory has none), and what
    to check.
options:
  _input:
    description: The pairs of the router's plan (from P(overlay.gre.gre_router_plan#filter)).
    type: list
    elements: dict
    required: true
  held:
    description: The held peers' names.
    type: list
    elements: str
    required: true
  me:
    description: The router's inventory name.
    type: str
    required: true
  probe:
    description: The router's registered M(overlay.gre.peer_probe) result.
    type: dict
    required: true
  hostvars:
    description: The play's C(hostvars), to read each peer's probe (the variable O(probe_var)).
    type: dict
    required: true
  probe_var:
    description: The name under which each router registered its probe.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Fail for the held pairs
  ansible.builtin.fail:
    msg: "{{ plan.pairs | overlay.gre.gre_router_held_message(held, inventory_hostname, probe, hostvars, 'probe') }}"
  when: held | length > 0
"""

RETURN = r"""
_value:
  description: The message, one sentence group per held pair; empty when none is held.
  type: str
"""

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import held_message, peer_results


def gre_router_held_message(pairs, held, me, probe, hostvars, probe_var):
    return held_message(pairs, list(held or []), str(me), probe, peer_results(pairs, hostvars, probe_var))


class FilterModule(object):
    def filters(self):
        return {"gre_router_held_message": gre_router_held_message}
