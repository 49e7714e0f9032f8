# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_pairs_answered
short_description: Whether every tunnel of a GRE router answered through its tunnel before the run
version_added: 0.4.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router). When no router of a pair changed anything and every tunnel answered
    the ping of M(overlay.gre.peer_probe) at the start of the run, that ping checked the state the run leaves.
options:
  _input:
    description: The pairs this run builds (from P(overlay.gre.gre_router_plan#filter)).
    type: list
    elements: dict
    required: true
  probe_peers:
    description: M(overlay.gre.peer_probe)'s C(peers).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Whether every tunnel answered
  ansible.builtin.set_fact:
    answered: "{{ plan.pairs | overlay.gre.gre_router_pairs_answered(probe.peers) }}"
"""

RETURN = r"""
_value:
  description: True when every pair's tunnel answered (also when there is no pair).
  type: bool
"""

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import pairs_answered


def gre_router_pairs_answered(pairs, probe_peers):
    return pairs_answered(list(pairs or []), dict(probe_peers or {}))


class FilterModule(object):
    def filters(self):
        return {"gre_router_pairs_answered": gre_router_pairs_answered}
