# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_run
short_description: Everything one run of the GRE router role does, once the router and its peers are read
version_added: 0.4.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) after M(overlay.gre.peer_probe) ran on every router of the play; the
    role's tasks pass its fields to the modules.
  - Settles the pairs this run holds (this router's probe of the peer's underlay address found no answer, or the
    peer's probe of this router's did; see P(overlay.gre.gre_router_held#filter)) and those it builds, their tunnels'
    MTU derived from the underlay's, and each module's arguments.
extends_documentation_fragment:
  - overlay.gre.peer_probes
options:
  _input:
    description: The router's inventory name.
    type: str
    required: true
  plan:
    description: The router's plan (P(overlay.gre.gre_router_plan#filter)).
    type: dict
    required: true
  state:
    description: C(gre_router_state).
    type: str
    required: true
  preflight:
    description: C(gre_router_preflight) (off, no pair is held).
    type: bool
    required: true
  masquerade:
    description: C(gre_router_masquerade).
    type: bool
    required: true
"""

EXAMPLES = r"""
- name: Settle this run
  ansible.builtin.set_fact:
    run: "{{ inventory_hostname | overlay.gre.gre_router_run(plan, probe, hostvars, 'probe', 'present', true, false) }}"

- name: Bring up the tunnels
  overlay.gre.gre_tunnel:
    tunnels: "{{ run.tunnels }}"
    purge: "{{ run.purge }}"
"""

RETURN = r"""
_value:
  description:
    - C(held), C(all_held) (every planned pair is held - the run stops before any change), C(held_tunnels), C(held_msg)
      (why they are held), C(pairs) (those built), C(underlay_msg) (what the probe found), C(purge) (nothing held),
      C(tunnels), C(firewall), C(firewall_first) (the rules of the new tunnels with IPsec, applied before the
      tunnels), C(nat_rules), C(nat) (whether M(overlay.gre.nat_masquerade) runs), C(family)
      (M(overlay.gre.ip_forward)'s), C(sending), C(sender_stop) (M(overlay.gre.service_files)' C(units) and C(files)
      that stop the keepalive senders that go), C(ipsec_pairs), C(ipsec_on) (any pair protected), C(ipsec_gone),
      C(ipsec) (whether the IPsec tasks run), C(answered) (every built pair's tunnel answered the probe before the
      run), C(pair_hosts) (this router and the inventory peers of the pairs it builds) and C(probes) (what the check
      after the change probes).
  type: dict
"""

from ansible_collections.overlay.gre.plugins.module_utils._gre_pair import peer_results, run


def gre_router_run(me, plan, probe, hostvars, probe_var, state, preflight, masquerade):
    plan = dict(plan or {})
    probe = dict(probe or {})
    return run(plan, str(me), probe, peer_results(plan.get("pairs") or [], hostvars, probe_var), str(state), bool(preflight),
               bool(masquerade))


class FilterModule(object):
    def filters(self):
        return {"gre_router_run": gre_router_run}
