# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_play_errors
short_description: Whether the inventory of every GRE router of the play is sound, and what to say
version_added: 0.4.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) before any change. Any router of the play with an unsound inventory
    stops them all; the message gives this router's own errors first, else the other routers' (each names its host
    and variable).
options:
  _input:
    description: The router's inventory name.
    type: str
    required: true
  errors:
    description: The router's own errors (the plan's C(errors)).
    type: list
    elements: str
    required: true
  hosts:
    description: Every router of the play (C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  hostvars:
    description: The play's C(hostvars), to read each router's plan (the variable O(plan_var)).
    type: dict
    required: true
  plan_var:
    description: The name under which each router keeps its plan.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Stop unless every router's inventory is sound
  vars:
    verdict: "{{ inventory_hostname | overlay.gre.gre_router_play_errors(plan.errors, ansible_play_hosts_all, hostvars, 'plan') }}"
  ansible.builtin.assert:
    that: verdict.ok
    fail_msg: "{{ verdict.msg }}"
"""

RETURN = r"""
_value:
  description: C(ok) (true when every router's inventory is sound) and C(msg) (what to say).
  type: dict
"""

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import play_errors


def gre_router_play_errors(me, errors, hosts, hostvars, plan_var):
    return play_errors(str(me), list(errors or []), list(hosts or []), hostvars, plan_var)


class FilterModule(object):
    def filters(self):
        return {"gre_router_play_errors": gre_router_play_errors}
