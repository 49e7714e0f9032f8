# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_verdicts
short_description: Whether each tunnel of a GRE router carried pings both ways after a run, and what to say about it
version_added: 0.3.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) after converge, once M(overlay.gre.peer_probe) pinged every tunnel on
    every router of the play.
  - A pair passes when this router's ping of the peer's tunnel address answered, and the peer's ping of this router's
    did too (a peer outside the play is judged by this router's ping alone). A failing pair's text says where to look.
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
  probe:
    description: The router's registered M(overlay.gre.peer_probe) result (its tunnel pings).
    type: dict
    required: true
  batch:
    description:
      - The hosts of this batch of the play (C(ansible_play_batch)), for plays that run their hosts in batches
        (C(serial)). A peer of an earlier batch is then judged by this router's ping alone, and a pair whose peer runs
        in a later batch passes with a text that says it is checked when the peer runs.
    type: list
    elements: str
    version_added: 0.4.0
  play_hosts:
    description: The hosts of the play that have not failed, in every batch (C(ansible_play_hosts)); needed with O(batch).
    type: list
    elements: str
    version_added: 0.4.0
  ran_var:
    description: A variable that every router of the play sets when it runs (a peer of the play without it has yet to run).
    type: str
    default: _gre_router_plan
    version_added: 0.4.0
  summary:
    description:
      - Return one verdict for all pairs rather than one per pair - C(ok) (every pair passed) and C(msg) (every pair's
        text when all passed, else the failed pairs' texts).
    type: bool
    default: false
    version_added: 0.4.0
"""

EXAMPLES = r"""
- name: How each tunnel did
  ansible.builtin.set_fact:
    verdicts: "{{ plan.pairs | overlay.gre.gre_router_verdicts(inventory_hostname, probe, hostvars, 'probe') }}"
"""

RETURN = r"""
_value:
  description:
    - For each pair, C(peer), C(ok) (true when it passed) and C(text) (what to say about it).
    - With O(summary), one dict, C(ok) and C(msg).
  type: raw
"""

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import batches, verdicts, verdicts_summary, peer_results


def gre_router_verdicts(pairs, me, probe, hostvars, probe_var, batch=None, play_hosts=None, ran_var="_gre_router_plan",
                        summary=False):
    where = batches(pairs, hostvars, batch, play_hosts, ran_var)
    out = verdicts(pairs, str(me), probe, peer_results(pairs, hostvars, probe_var), where["earlier"], where["later"])
    return verdicts_summary(out) if summary else out


class FilterModule(object):
    def filters(self):
        return {"gre_router_verdicts": gre_router_verdicts}
