# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_sender_stop
short_description: The keepalive senders a GRE router stops before its tunnels change
version_added: 0.4.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) before it changes the tunnels.
  - A sender stops when the router has its configuration but this run sends no keepalives for its tunnel
    (C(gre_router_keepalive) turned off, or the peer removed), unless the tunnel's pair is held.
options:
  _input:
    description: The tunnels with a keepalive configuration on the router (M(overlay.gre.peer_probe)'s C(keepalives)).
    type: list
    elements: str
    required: true
  sending:
    description: The tunnels whose keepalives this run sends.
    type: list
    elements: str
    required: true
  held:
    description: The tunnels of the held pairs.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Stop the senders that go
  overlay.gre.service_files:
    units: "{{ stop.units }}"
    files: "{{ stop.files }}"
  vars:
    stop: "{{ probe.keepalives | overlay.gre.gre_router_sender_stop(['gre-site2'], []) }}"
"""

RETURN = r"""
_value:
  description: C(units) and C(files) (options of M(overlay.gre.service_files)) that stop and remove the senders.
  type: dict
"""

from ansible_collections.overlay.gre.plugins.module_utils._router_files import sender_stop, senders_to_stop


def gre_router_sender_stop(running, sending, held):
    return sender_stop(senders_to_stop(list(running or []), list(sending or []), list(held or [])))


class FilterModule(object):
    def filters(self):
        return {"gre_router_sender_stop": gre_router_sender_stop}
