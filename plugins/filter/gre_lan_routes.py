# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_lan_routes
short_description: The routes of a LAN host to the other site's LANs through its GRE router
version_added: 0.1.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_lan_host) on the controller.
  - What to route comes from the inventory - the host's C(gre_lan_router), that router's C(gre_router_peer), and the
    peer's C(gre_router_lan_cidrs); with C(gre_router_peers), every LAN the router routes through its tunnels (its
    plan from P(overlay.gre.gre_router_plan#filter), those behind a transit hub included).
  - Through which address comes from the kernels - the router's address (from C(ip -j addr show) on the router) that
    lies in a network the host is directly connected to (from C(ip -j route show scope link) and
    C(ip -j -6 route show) on the host).
  - Without the kernels' output, only the inventory is checked. Every error names the host and the variable at fault.
options:
  _input:
    description: The inventory name of the LAN host.
    type: str
    required: true
  variables:
    description: The host's C(gre_lan_*) variables.
    type: dict
    required: true
  hostvars:
    description: The play's C(hostvars), to read the router's and its peer's variables.
    type: dict
    required: true
  routers:
    description: The hosts of the group C(gre_routers); the router must be one of them.
    type: list
    elements: str
  router_addresses:
    description: The output of C(ip -j addr show) on the router.
    type: str
  host_routes:
    description: The output of C(ip -j route show scope link) and C(ip -j -6 route show) on the host, one JSON document a line.
    type: str
"""

EXAMPLES = r"""
- name: Plan this LAN host's routes
  ansible.builtin.set_fact:
    lan_plan: "{{ inventory_hostname | overlay.gre.gre_lan_routes({'gre_lan_router': 'router_a'}, hostvars, groups.gre_routers, addr_out, route_out) }}"
"""

RETURN = r"""
_value:
  description:
    - C(errors), a list of messages (empty when all is sound), C(router), C(peer) and C(peer_lan_cidrs); with the
      kernels' output also C(gateways) (the router's address by IP version, C(ipv4) and C(ipv6)) and C(routes), options for
      M(overlay.gre.ip_route).
  type: dict
"""

from ansible_collections.overlay.gre.plugins.module_utils._gre_lan import plan


def gre_lan_routes(me_name, variables, hostvars, routers=None, router_addresses=None, host_routes=None):
    return plan(str(me_name), dict(variables or {}), hostvars, routers, router_addresses, host_routes)


class FilterModule(object):
    def filters(self):
        return {"gre_lan_routes": gre_lan_routes}
