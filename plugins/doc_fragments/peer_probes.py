# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    """The options of the GRE router role's filters that read every router's overlay.gre.peer_probe result."""

    DOCUMENTATION = r"""
options:
  probe:
    description: The router's registered M(overlay.gre.peer_probe) result.
    type: dict
    required: true
  hostvars:
    description: The play's C(hostvars), to read each peer's probe (the variable O(probe_var)).
    type: dict
    required: true
  probe_var:
    description: The name under which each router registered its probe.
    type: str
    required: true
"""
