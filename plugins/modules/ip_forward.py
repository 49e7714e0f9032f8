#!/usr/bin/python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: ip_forward
short_description: Turn IP forwarding on or off, live and in a sysctl file the boot reads
version_added: 0.1.0
description:
  - Sets IPv4 (C(net.ipv4.ip_forward)) and/or IPv6 (C(net.ipv6.conf.all.forwarding)) forwarding in the running
    kernel, through C(/proc/sys), and in a persistent sysctl file, so that a GRE router keeps forwarding after a reboot.
  - The live value and the file are compared separately and only what differs is changed.
  - The live value is the one of the network namespace the module runs in, for instance a namespace reached
    with the P(overlay.gre.netns#connection) connection; other namespaces and the host keep theirs.
  - The file is written atomically (a temporary file renamed over it). Only the forwarding lines of the chosen
    O(family) are the module's; every other line, comments included, is kept as it is. Other sysctl files are
    never changed.
  - Before it changes anything, the module checks that every needed change can be made, and refuses with a
    message saying why otherwise (a read-only C(/proc/sys), as in most containers; a file or directory that cannot
    be written; IPv6 disabled in the kernel). If the file cannot be replaced or removed after the live value was
    changed, the live value is put back and the failure says so.
  - Warns when the boot would not apply O(sysctl_file) as written, because the file is outside the directories
    systemd-sysctl reads, is hidden by a file of the same name in a directory read first, or a file applied after
    it (a later name in C(/etc/sysctl.d), C(/run/sysctl.d), C(/usr/local/lib/sysctl.d), C(/usr/lib/sysctl.d), or
    C(/etc/sysctl.conf) for C(sysctl --system)) sets the same key to another value.
author:
  - overlay.gre contributors (!UNKNOWN)
options:
  family:
    description:
      - Which forwarding to set.
      - V(ipv4) is C(net.ipv4.ip_forward), V(ipv6) is C(net.ipv6.conf.all.forwarding), V(both) is both.
    type: str
    choices: [ipv4, ipv6, both]
    default: ipv4
  state:
    description:
      - V(enabled) sets the keys to C(1), V(disabled) to C(0).
      - With O(persist=true), V(disabled) writes C(= 0) lines rather than removing the module's lines, so that
        forwarding stays off after a reboot even where an earlier sysctl file or a distribution default turns it on.
      - V(absent) undoes what the module did, so that the machine is as it would be without it.
        With O(persist=true), the lines that set the keys of O(family) are removed from O(sysctl_file), and every
        other line is kept; the file itself is removed when nothing is left but the header the module writes when
        it creates the file, and blank lines. A symbolic link is never removed; the file it names is rewritten instead.
        A missing file, or a dangling link, is left as it is.
      - With V(absent), the live value becomes the one the machine's other sysctl files give the key at boot,
        in the order systemd-sysctl applies them and then C(/etc/sysctl.conf) as C(sysctl --system) does
        (C(net.ipv4.conf.all.forwarding) counts as C(net.ipv4.ip_forward)); O(sysctl_file) is left out of that
        reckoning, or, with O(persist=true), read as the run leaves it. Where no file sets the key, the live value
        becomes the kernel's default, C(0). RV(live_source) says which file, or the kernel default, gave the value.
    type: str
    choices: [enabled, disabled, absent]
    default: enabled
  persist:
    description:
      - Whether to also keep the value in O(sysctl_file), which the boot applies.
      - With V(false), only the live value is set and the file is neither read nor written.
    type: bool
    default: true
  sysctl_file:
    description:
      - The sysctl file that holds the persistent value. It is created, with a header comment, if it does not exist;
        its directory must exist.
      - The default is a file in C(/etc/sysctl.d) because systemd-sysctl does not read C(/etc/sysctl.conf) on several
        distributions. The C(90-) prefix puts it after the distributions' own defaults, which are applied first.
      - A symbolic link is followed; the file it names is rewritten and the link is kept.
    type: path
    default: /etc/sysctl.d/90-overlay-gre.conf
extends_documentation_fragment:
  - overlay.gre.attributes
  - overlay.gre.router_lock
attributes:
  check_mode:
    support: full
    description: Reads the live value and the file, says what would change and refuses as a real run would; changes nothing.
  diff_mode:
    support: full
    description: Shows the live values and the file's text, before and after.
  idempotent:
    support: full
    description: A second run with the same options changes nothing and reports no change.
notes:
  - Writing C(net.ipv4.ip_forward) or C(net.ipv6.conf.all.forwarding) makes the kernel copy the value to the
    C(forwarding) setting of every interface and to C(default); the module compares only the C(all) key, so an
    interface that was later set apart on its own is not reported.
  - With IPv6 forwarding on, the kernel ignores router advertisements on interfaces whose C(accept_ra) is not C(2),
    so a router that takes its IPv6 default route from them loses it.
  - A network namespace shares the file system with the host, so with O(persist=true) a task run in a namespace writes
    the machine's file, which the boot applies to the host's own (root) namespace. Use O(persist=false) for namespaces.
  - A new network namespace starts with IPv4 forwarding copied from the host's and IPv6 forwarding off
    (C(net.core.devconf_inherit_init_net=0), the default). O(state=absent) gives a namespace the value the boot
    configuration gives the machine, which for IPv4 is not always what the namespace started with.
seealso:
  - module: ansible.posix.sysctl
    description: Sets any sysctl key.
  - name: sysctl.d(5)
    description: The file format and the order in which systemd-sysctl applies files.
    link: https://www.freedesktop.org/software/systemd/man/latest/sysctl.d.html
"""

EXAMPLES = r"""
- name: Let the GRE router forward IPv4, now and after a reboot
  overlay.gre.ip_forward:

- name: Forward IPv4 and IPv6, keeping the setting in a file of your own
  overlay.gre.ip_forward:
    family: both
    sysctl_file: /etc/sysctl.d/60-router.conf

- name: Turn IPv4 forwarding off in a lab namespace only, leaving the machine's files alone
  overlay.gre.ip_forward:
    state: disabled
    persist: false

- name: Undo the module, e.g. when the GRE router is taken down
  overlay.gre.ip_forward:
    state: absent
    family: both
  register: fwd_undo
  # fwd_undo.live_source tells where the restored value came from, e.g. "kernel default"
"""

RETURN = r"""
live:
  description:
    - The live value of each key the module manages, after the run (in check mode, what it would be).
  returned: success
  type: dict
  sample:
    net.ipv4.ip_forward: 1
file:
  description:
    - What O(sysctl_file) sets each managed key to after the run (in check mode, what it would set), V(null) for a key
      it does not set.
    - V(null) when O(persist=false).
  returned: success
  type: dict
  sample:
    net.ipv4.ip_forward: 1
sysctl_file:
  description: The persistent file the module keeps, V(null) when O(persist=false).
  returned: success
  type: str
  sample: /etc/sysctl.d/90-overlay-gre.conf
live_source:
  description:
    - For each managed key, what gave the live value O(state=absent) restores (in check mode, would restore),
      that is the path of the last sysctl file the boot applies that sets the key, or V(kernel default) where none does.
  returned: when O(state=absent)
  type: dict
  sample:
    net.ipv4.ip_forward: kernel default
    net.ipv6.conf.all.forwarding: /etc/sysctl.d/99-sysctl.conf
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.overlay.gre.plugins.module_utils import _lock

from ansible_collections.overlay.gre.plugins.module_utils._sysctl import IpForward


def main():
    module = AnsibleModule(
        argument_spec=dict(
            family=dict(type="str", choices=["ipv4", "ipv6", "both"], default="ipv4"),
            state=dict(type="str", choices=["enabled", "disabled", "absent"], default="enabled"),
            persist=dict(type="bool", default=True),
            sysctl_file=dict(type="path", default="/etc/sysctl.d/90-overlay-gre.conf"),
            **_lock.ARGUMENT_SPEC
        ),
        supports_check_mode=True,
    )
    with _lock.router_lock(module, "overlay.gre.ip_forward"):
        IpForward(module).run()


if __name__ == "__main__":
    main()
