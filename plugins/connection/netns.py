# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: netns
short_description: Run tasks inside a Linux network namespace on the controller
description:
  - Runs every command of a task, C(raw) included, inside a named network namespace on the machine
    that runs Ansible, through C(ip netns exec NAME /bin/sh -c COMMAND).
  - Files are copied as on the local machine, since a network namespace shares the file system with
    its creator (C(ip netns exec) only bind-mounts C(/etc/netns/NAME/) entries over C(/etc)).
  - Made for labs and tests in which each namespace plays one host; it needs root on the controller.
author:
  - overlay.gre contributors (!UNKNOWN)
version_added: 0.1.0
options:
  netns:
    description:
      - The name of the network namespace, as C(ip netns list) shows it.
      - Defaults to the inventory host name when no C(ansible_host) is set.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_netns_name
  ip_command:
    description:
      - The C(ip) program used to enter the namespace.
    type: str
    default: ip
    vars:
      - name: ansible_netns_ip_command
  become_success_timeout:
    description:
      - Seconds to wait for become to succeed when enabled.
    type: int
    default: 10
    vars:
      - name: ansible_netns_become_success_timeout
  become_strip_preamble:
    description:
      - Strip internal become output preceding command execution.
    type: bool
    default: true
    vars:
      - name: ansible_netns_become_strip_preamble
extends_documentation_fragment:
  - connection_pipelining
notes:
  - 'The remote user is ignored: commands run as the user that runs Ansible, which must be root to enter a namespace.'
"""

EXAMPLES = r"""
# inventory.ini: each host is a network namespace made with `ip netns add`
# [gre_routers]
# router_a ansible_connection=overlay.gre.netns
# router_b ansible_connection=overlay.gre.netns ansible_host=lab-router-b

# ansible -i inventory.ini -m ansible.builtin.command -a 'ip -o addr' router_a
"""

import os
import shlex

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.connection.local import Connection as LocalConnection
from ansible.utils.display import Display

display = Display()

NETNS_RUN_DIR = "/run/netns"


class Connection(LocalConnection):
    """Local connection whose commands run inside a network namespace."""

    transport = "overlay.gre.netns"
    has_pipelining = True

    def _netns_name(self):
        name = self.get_option("netns")
        if not name or "/" in name or name in (".", ".."):
            raise AnsibleConnectionFailure(
                "overlay.gre.netns: %r is not a network namespace name; set ansible_host to one that `ip netns list` shows" % (name,)
            )
        return name

    def _connect(self):
        name = self._netns_name()
        if not os.path.exists(os.path.join(NETNS_RUN_DIR, name)):
            raise AnsibleConnectionFailure(
                "overlay.gre.netns: network namespace %r does not exist (no %s/%s); create it with `ip netns add %s`"
                " or point ansible_host at one that `ip netns list` shows" % (name, NETNS_RUN_DIR, name, name)
            )
        return super(Connection, self)._connect()

    def exec_command(self, cmd, in_data=None, sudoable=True):
        wrapped = "%s netns exec %s /bin/sh -c %s" % (
            shlex.quote(self.get_option("ip_command")),
            shlex.quote(self._netns_name()),
            shlex.quote(cmd),
        )
        display.vvv("NETNS %s: %s" % (self._netns_name(), cmd), host=self._netns_name())
        return super(Connection, self).exec_command(wrapped, in_data=in_data, sudoable=sudoable)
