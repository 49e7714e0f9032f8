# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_held
short_description: The peers of a GRE router whose underlay did not answer, whose pairs a run leaves as they are
version_added: 0.3.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) after M(overlay.gre.peer_probe) ran on every router of the play.
  - A pair is held when this router's probe of the peer's underlay address found no answer, or the peer's probe of
    this router's did (a peer outside the play is judged by this router's probe alone).
extends_documentation_fragment:
  - overlay.gre.peer_probes
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
"""

EXAMPLES = r"""
- name: The peers this run leaves alone
  ansible.builtin.set_fact:
    held: "{{ plan.pairs | overlay.gre.gre_router_held(inventory_hostname, probe, hostvars, 'probe') }}"
"""

RETURN = r"""
_value:
  description: The held peers' names.
  type: list
  elements: str
"""

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import held_peers, peer_results


def gre_router_held(pairs, me, probe, hostvars, probe_var):
    return held_peers(pairs, str(me), probe, peer_results(pairs, hostvars, probe_var))


class FilterModule(object):
    def filters(self):
        return {"gre_router_held": gre_router_held}
