# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_ipsec_bring_up
short_description: Which IPsec pairs of a GRE router to bring up now, and which router of each starts the SAs
version_added: 0.4.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) after M(overlay.gre.ipsec_peer) loaded each protected pair's IPsec on
    every router of the play.
  - A pair is brought up when either of its routers changed its configuration. The router whose name sorts first
    starts the SAs (always this router towards a peer outside the inventory); the other waits for them.
options:
  _input:
    description: The results of the loop that loaded the IPsec, each with its pair as C(item).
    type: list
    elements: dict
    required: true
  me:
    description: The router's inventory name.
    type: str
    required: true
  hostvars:
    description: The play's C(hostvars), to read each peer's loop results (the variable O(load_var)).
    type: dict
    required: true
  load_var:
    description: The name under which each router registered that loop.
    type: str
    required: true
  batch:
    description:
      - The hosts of this batch of the play (C(ansible_play_batch)), for plays that run their hosts in batches
        (C(serial)). This router then starts the SAs with a peer of an earlier batch, and leaves a pair whose peer runs
        in a later batch to that peer's run.
    type: list
    elements: str
  play_hosts:
    description: The hosts of the play that have not failed, in every batch (C(ansible_play_hosts)); needed with O(batch).
    type: list
    elements: str
  ran_var:
    description: A variable that every router of the play sets when it runs (a peer of the play without it has yet to run).
    type: str
    default: _gre_router_plan
"""

EXAMPLES = r"""
- name: Bring up the SAs
  overlay.gre.ipsec_peer:
    tunnel: "{{ item.tunnel }}"
    state: established
    initiate: "{{ item.initiate }}"
  loop: "{{ loaded.results | overlay.gre.gre_router_ipsec_bring_up(inventory_hostname, hostvars, 'loaded') }}"
"""

RETURN = r"""
_value:
  description: For each pair to bring up, C(tunnel), C(initiate), C(peer), C(underlay_ip) and C(peer_underlay_ip).
  type: list
  elements: dict
"""

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import batches, ipsec_bring_up


def gre_router_ipsec_bring_up(results, me, hostvars, load_var, batch=None, play_hosts=None, ran_var="_gre_router_plan"):
    pairs = [result["item"] for result in results or [] if isinstance(result, dict) and result.get("item")]
    where = batches(pairs, hostvars, batch, play_hosts, ran_var)
    return ipsec_bring_up(results, str(me), hostvars, load_var, where["earlier"], where["later"])


class FilterModule(object):
    def filters(self):
        return {"gre_router_ipsec_bring_up": gre_router_ipsec_bring_up}
