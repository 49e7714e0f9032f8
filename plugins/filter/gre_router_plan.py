# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_plan
short_description: Derive one router's side of a GRE pair from both routers' variables, and check the pair
version_added: 0.1.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) on the controller, before anything is changed on a host.
  - Reads this router's C(gre_router_*) variables and its peer's (from O(hostvars)), checks that they form a pair,
    and returns the tunnel, addresses and routes for this router.
  - Every error names the host and the variable at fault.
options:
  _input:
    description: The inventory name of this router.
    type: str
    required: true
  variables:
    description: This router's C(gre_router_*) variables (with the role's defaults applied).
    type: dict
    required: true
  hostvars:
    description: The play's C(hostvars), to read the peer's variables.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Plan this router's side of the pair
  ansible.builtin.set_fact:
    plan: "{{ inventory_hostname | overlay.gre.gre_router_plan(my_gre_router_vars, hostvars) }}"
"""

RETURN = r"""
_value:
  description:
    - C(errors), a list of messages (empty when the pair is sound); when empty also C(tunnel) (options for
      M(overlay.gre.gre_tunnel)), C(tunnel_address), C(tunnel_peer_address), C(lan_cidrs), C(peer_lan_cidrs),
      C(underlay_ip), C(peer_underlay_ip) and C(peer).
  type: dict
"""

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import plan


def gre_router_plan(me_name, variables, hostvars):
    return plan(str(me_name), dict(variables or {}), hostvars)


class FilterModule(object):
    def filters(self):
        return {"gre_router_plan": gre_router_plan}
