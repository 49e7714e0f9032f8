# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_ipsec_verdict
short_description: Whether IKE brought up the SAs of every IPsec pair a GRE router brought up, and what to say
version_added: 0.4.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) after M(overlay.gre.ipsec_peer) with O(overlay.gre.ipsec_peer#module:state=established)
    ran for each pair from P(overlay.gre.gre_router_ipsec_bring_up#filter).
options:
  _input:
    description: The results of that loop.
    type: list
    elements: dict
    required: true
  me:
    description: The router's inventory name.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Fail unless the SAs are up
  vars:
    verdict: "{{ up.results | overlay.gre.gre_router_ipsec_verdict(inventory_hostname) }}"
  ansible.builtin.assert:
    that: verdict.ok
    success_msg: "{{ verdict.msg }}"
    fail_msg: "{{ verdict.msg }}"
  when: verdict.ran
"""

RETURN = r"""
_value:
  description: C(ran) (false when no pair was brought up), C(ok) and C(msg) (what to say, where to look on failure).
  type: dict
"""

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import ipsec_verdict


def gre_router_ipsec_verdict(results, me):
    return ipsec_verdict(results, str(me))


class FilterModule(object):
    def filters(self):
        return {"gre_router_ipsec_verdict": gre_router_ipsec_verdict}
