#!/usr/bin/python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: service_files
short_description: Small files and the systemd units they make up, with only a POSIX shell on the target
version_added: 0.1.0
description:
  - Makes the files in O(files) hold exactly the given content and mode (or be absent), then enables, starts, stops or
    disables the systemd units in O(units), reloading systemd when a file under a C(systemd) folder changed and
    restarting a running unit when any of the files changed.
  - This is an action. It runs on the controller and talks to the target through one shell run that reads every file
    and unit, and a second one, only when something differs, that applies exactly the differences. The target needs
    no Python, only C(sh), C(stat), C(base64), C(mkdir), C(chmod), C(mv) (coreutils or BusyBox) and, for O(units),
    C(systemctl). The roles of this collection use it for their boot scripts, units and the keepalive sender, so that
    an unchanged run costs one shell run instead of a Python module run per file.
  - Each shell run's script, the files' contents included, reaches the target on the connection's stdin, never in a
    command line, so files of any size can be written (one argument over 128 KiB would fail with E2BIG) and no
    content shows in C(ps) or in C(sudo)'s log. The connection must pass stdin to the command (ssh and local do).
  - Files are replaced atomically (written beside, then renamed) and owned by the user the task runs as
    (use C(become) for root). A path that exists but is not a regular file is refused.
  - Where systemd does not run (a container, the collection's lab), O(units) is left alone and RV(systemd) says so.
author:
  - overlay.gre contributors (@overlay-gre)
options:
  files:
    description: The files, each written or removed as a whole.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file. Missing parent folders are made (mode C(0755)).
        type: str
        required: true
      content:
        description: The whole content of the file (text). Required with O(files[].state=present).
        type: str
      mode:
        description: The file's permissions, in octal (quote it, V("0644"); an unquoted C(0644) that YAML read as a number is taken as that number).
        type: raw
        default: "0644"
      state:
        description: V(present) writes the file, V(absent) removes it.
        type: str
        choices: [present, absent]
        default: present
      check:
        description:
          - Whether the run checks, under the router's lock and before any change, that the file is still as its read
            found it (another run at the same time changed nothing).
          - V(false) for a file that a running program rewrites by itself, such as a service's state under C(/run).
            With O(files[].state=absent) it is removed after the units are stopped, whatever it holds by then.
        type: bool
        default: true
  units:
    description: The systemd units, acted on only where systemd runs, after the files.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The unit's full name, such as V(overlay-gre@gre-router_b.service).
        type: str
        required: true
      enabled:
        description: V(true) enables the unit (C(systemctl enable)), V(false) disables it; unset leaves it.
        type: bool
      started:
        description:
          - V(true) starts the unit, or restarts it when any file of the task changed; V(false) stops it (before the
            files go); unset leaves it.
        type: bool
      restart_on:
        description:
          - The paths of O(files) whose change restarts the running unit (with O(units[].started=true)); unset means
            any file of the task.
        type: list
        elements: str
  prune:
    description: Folders removed after a change when they are empty (for example V(/etc/overlay-gre)).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - overlay.gre.attributes
  - overlay.gre.router_lock
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
notes:
  - Made for files of a few kilobytes; the content travels on the command line, base64-encoded, both ways.
seealso:
  - module: ansible.builtin.copy
  - module: ansible.builtin.systemd_service
"""

EXAMPLES = r"""
- name: A boot script and the unit that runs it at boot
  overlay.gre.service_files:
    files:
      - path: /etc/overlay-gre/gre-router_b.sh
        content: "{{ lookup('ansible.builtin.template', 'boot.sh.j2') }}"
        mode: "0755"
      - path: /etc/systemd/system/overlay-gre@.service
        content: "{{ lookup('ansible.builtin.template', 'overlay-gre@.service.j2') }}"
    units:
      - name: overlay-gre@gre-router_b.service
        enabled: true

- name: Stop a sender and remove its files
  overlay.gre.service_files:
    units:
      - name: overlay-gre-keepalive@gre-router_b.service
        enabled: false
        started: false
    files:
      - path: /usr/local/sbin/overlay-gre-keepalive
        state: absent
    prune: [/etc/overlay-gre]
"""

RETURN = r"""
files:
  description: Each file written, removed or whose mode changed (or would be, in check mode), with what was done.
  returned: always
  type: dict
  sample: {"/etc/overlay-gre/gre-router_b.sh": "written"}
units:
  description: What was (or would be) done to the units, as C(ACTION UNIT).
  returned: always
  type: list
  elements: str
  sample: ["enable overlay-gre@gre-router_b.service"]
systemd:
  description: Whether systemd runs on the target (C(/run/systemd/system) exists); without it O(units) is left alone.
  returned: always
  type: bool
  sample: true
done:
  description: The steps the target completed, in order (also when one failed).
  returned: when something was changed
  type: list
  elements: str
  sample: ["write: /etc/overlay-gre/gre-router_b.sh"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.overlay.gre.plugins.module_utils._service_files import ARGUMENT_SPEC


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="overlay.gre.service_files runs on the controller as an action; call it as a task of a play")


if __name__ == "__main__":
    main()
