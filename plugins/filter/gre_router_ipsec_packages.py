# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_ipsec_packages
short_description: What a GRE router's dpkg says about the strongSwan packages that GRE over IPsec needs
version_added: 0.4.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) before any change, with C(gre_router_ipsec) on.
  - Returns C(missing), the packages to install, and C(problem), why the role cannot go on (empty when it can). No
    dpkg (not Debian or Ubuntu), or C(strongswan-starter) installed (its C(ipsec.service) competes with
    charon-systemd for IKE's ports and the kernel's SAs), are problems.
options:
  _input:
    description:
      - The registered result of C(dpkg-query -W -f '${Package} ${db:Status-Status}\n') over the wanted packages and
        C(strongswan-starter).
    type: dict
    required: true
  wanted:
    description: The packages GRE over IPsec needs.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Stop unless strongSwan can run here
  ansible.builtin.assert:
    that: (read | overlay.gre.gre_router_ipsec_packages(['charon-systemd', 'strongswan-swanctl'])).problem == ''
"""

RETURN = r"""
_value:
  description: C(missing) (a list of package names) and C(problem) (a message, or an empty string).
  type: dict
"""

from ansible_collections.overlay.gre.plugins.module_utils._ipsec import packages_state


def gre_router_ipsec_packages(read, wanted):
    return packages_state(dict(read or {}), list(wanted or []))


class FilterModule(object):
    def filters(self):
        return {"gre_router_ipsec_packages": gre_router_ipsec_packages}
