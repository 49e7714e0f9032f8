# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_plan
short_description: Derive one router's GRE tunnels, one per peer, from the variables of both ends of each pair, and check them
version_added: 0.1.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) on the controller, before anything is changed on a host.
  - Reads this router's C(gre_router_*) variables and its peers' (from O(hostvars)), checks that each pair is sound
    and that the pairs do not clash on the router, and returns each tunnel with its addresses, routes and rules.
  - Per pair the tunnel's name, key and network are derived from the two ends alone (their names and
    C(gre_router_site_id)), never from a position in a list; adding or removing a site changes no other pair.
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
  published:
    description:
      - The name of the variable under which each router of the play published its effective C(gre_router_*)
        settings (defaults, group and host variables, play variables and role parameters, as that router sees them).
        A peer that published them is compared through them; a peer that did not (outside the play) through its
        C(hostvars), which hold neither play variables nor role parameters.
    type: str
    version_added: 0.4.0
"""

EXAMPLES = r"""
- name: Plan this router's side of the pair
  ansible.builtin.set_fact:
    plan: "{{ inventory_hostname | overlay.gre.gre_router_plan(my_gre_router_vars, hostvars) }}"
"""

RETURN = r"""
_value:
  description:
    - C(errors), a list of messages (empty when every pair is sound) and C(pairs), one per peer (empty on errors).
    - Each pair has C(peer), C(external) (the peer is outside the inventory), C(tunnel) (options for
      M(overlay.gre.gre_tunnel)), C(tunnel_options) (the same, without the routes when a keepalive sender owns them),
      C(firewall_options) (an entry of the O(overlay.gre.tunnel_firewall#module:tunnels) option of M(overlay.gre.tunnel_firewall)),
      C(nat_rules), C(probe) (an entry of M(overlay.gre.peer_probe)'s peers), C(tunnel_address), C(tunnel_peer_address),
      C(tunnel_network), C(local_networks), C(peer_lan_cidrs), C(transit_lan_cidrs), C(keepalive), C(underlay_ip) and
      C(peer_underlay_ip).
    - Without errors also C(lan_cidrs), C(underlay_ip), C(nat_rules), C(families) and C(transit).
  type: dict
"""

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import PublishedVars, plan


def gre_router_plan(me_name, variables, hostvars, published=None):
    return plan(str(me_name), dict(variables or {}), PublishedVars(hostvars, published) if published else hostvars)


class FilterModule(object):
    def filters(self):
        return {"gre_router_plan": gre_router_plan}
