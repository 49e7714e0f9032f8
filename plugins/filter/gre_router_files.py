# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gre_router_files
short_description: What a GRE router keeps across reboots, as the files and units of overlay.gre.service_files
version_added: 0.4.0
author:
  - overlay.gre contributors (!UNKNOWN)
description:
  - Used by the role M(overlay.gre.gre_router) once its modules ran.
  - Plans the boot data of all the router's tunnels (C(/etc/overlay-gre/boot/NAME.json)) from the modules' C(boot)
    results, the program that applies it and its units, a keepalive sender per tunnel that sends them, or the removal
    of all of it; and the removal of the boot scripts of older versions.
  - A held pair (its underlay did not answer) keeps its entries of the boot data as the last run wrote them, and its
    keepalive sender as it is; the router's other pairs get theirs updated.
options:
  _input:
    description:
      - The role's inputs; see C(plugins/module_utils/_router_files.py), C(service_files), for each key (C(state),
        C(persist), C(boot), C(program), C(sender_program), C(sender_unit_file), C(contents), C(managed), C(pairs),
        C(sending), C(held_tunnels), C(probe), C(results)).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Write what the router keeps across reboots
  overlay.gre.service_files:
    files: "{{ planned.files }}"
    units: "{{ planned.units }}"
    prune: "{{ planned.prune }}"
  vars:
    planned: "{{ inputs | overlay.gre.gre_router_files }}"
"""

RETURN = r"""
_value:
  description:
    - C(files), C(units) and C(prune) (options of M(overlay.gre.service_files)), and C(sending) (whether any keepalive
      sender runs).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.overlay.gre.plugins.module_utils._router_files import RouterFilesError, service_files


def gre_router_files(inputs):
    try:
        return service_files(dict(inputs))
    except (RouterFilesError, KeyError) as exc:
        raise AnsibleFilterError("gre_router_files: %s" % (exc,))


class FilterModule(object):
    def filters(self):
        return {"gre_router_files": gre_router_files}
