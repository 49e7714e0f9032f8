# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_pair_changed
short_description: Whether a run changed anything on a GRE router or on one of its peers
version_added: 0.4.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) to decide whether the check after converge runs again.
options:
  _input:
    description: The router and its peers in the play (inventory names).
    type: list
    elements: str
    required: true
  hostvars:
    description: The play's C(hostvars).
    type: dict
    required: true
  results:
    description: The names of the registered results to look at on each host.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Whether the pair changed
  ansible.builtin.set_fact:
    changed_here: "{{ [inventory_hostname, 'router_b'] | overlay.gre.gre_router_pair_changed(hostvars, ['tunnel_result']) }}"
"""

RETURN = r"""
_value:
  description: True when one of the results changed something on one of the hosts.
  type: bool
"""

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import pair_changed


def gre_router_pair_changed(hosts, hostvars, results):
    return pair_changed(list(hosts or []), hostvars, list(results or []))


class FilterModule(object):
    def filters(self):
        return {"gre_router_pair_changed": gre_router_pair_changed}
