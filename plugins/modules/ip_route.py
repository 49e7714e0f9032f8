#!/usr/bin/python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: ip_route
short_description: Static routes in the Linux kernel's routing tables, declarative and owned
version_added: 0.1.0
description:
  - Makes the kernel's routing tables hold the routes listed in O(routes), each to a destination network through a
    gateway (O(routes[].via)), an interface (O(routes[].dev)) or both, and removes those marked V(absent).
  - Does what C(ip route add 20.10.1.0/24 via 10.10.1.1) (the how-to's
    C(route add -net 20.10.1.0 netmask 255.255.255.0 gw 10.10.1.1)) does by hand, idempotently.
  - The kernel holds one route per destination, metric and table; that triple is the route's key, and a listed route
    owns its key. A route already there with that key and another gateway, interface or protocol is replaced in place
    (C(ip route replace)), reported in the diff and with a warning when this module had not made it.
  - Routes the module makes carry the route protocol O(protocol) (C(proto 71) by default). That is how O(purge) tells
    its own routes from every other route, which it never touches.
  - Reads the kernel's routes and interfaces once (through rtnetlink, in the module), compares, and applies only the differences in one
    C(ip -batch) run. All input is checked against the kernel before any change, with the checks the kernel itself
    makes (the interface exists and is up, the gateway is on a connected network and is not an address of the host);
    if a command still fails, the commands before it are undone and the message says so.
author:
  - overlay.gre contributors (@overlay-gre)
options:
  routes:
    description:
      - The routes. Each needs O(routes[].dest) and at least one of O(routes[].via) and O(routes[].dev) (a route to be
        removed needs only O(routes[].dest)).
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description:
          - The destination network in CIDR form, its host bits zero (V(20.10.1.0/24), V(2001:db8:20::/48)), or V(default).
        type: str
        required: true
      via:
        description:
          - The gateway, an address of the destination's family on a network the host is connected to (or, with
            O(routes[].onlink), on the link of O(routes[].dev)). An IPv6 link-local gateway needs O(routes[].dev).
        type: str
      dev:
        description:
          - The interface the route goes out of. Must exist and be up. Without O(routes[].via), a route of scope link
            (the destination is on that interface).
          - Left out, the kernel picks the interface the gateway is on, and it is not compared.
        type: str
      metric:
        description:
          - The route's metric (preference, lower wins), 0 to 4294967295. Part of the route's key.
          - Default 0 for IPv4 and 1024 for IPv6, as the kernel's (an IPv6 metric of 0 means 1024).
        type: int
      table:
        description:
          - The routing table, by number (1 to 4294967295) or by a name iproute2 knows (C(main), C(default), or one from
            C(rt_tables) and C(rt_tables.d)). Not C(local), which holds the kernel's own addresses.
        type: raw
        default: main
      onlink:
        description:
          - Take the gateway as reachable on O(routes[].dev) even though no network of the host holds it (C(ip route ... onlink)).
            Needs O(routes[].via) and O(routes[].dev).
        type: bool
        default: false
      state:
        description:
          - This route's state; defaults to the module's O(state).
          - V(absent) removes the route with this key (with O(routes[].via) or O(routes[].dev), only one through that
            gateway or interface), whoever made it, except the kernel's own routes.
        type: str
        choices: [present, absent]
  state:
    description: The state of every route of O(routes) that does not give its own.
    type: str
    choices: [present, absent]
    default: present
  purge:
    description:
      - Also remove every route of protocol O(protocol), in any table, whose key is not listed in O(routes); that is,
        the routes this module made earlier that are no longer wanted. Routes of any other protocol are never removed.
      - Tasks that manage separate sets of routes with O(purge) each need a protocol number of their own.
    type: bool
    default: false
  protocol:
    description:
      - The route protocol number that marks the routes this module makes (C(ip route ... proto N)), 5 to 255.
      - The default, 71 (0x47, ASCII C(G)), is not in the kernel's list (C(rtnetlink.h)) nor in iproute2's C(rt_protos),
        and no known routing daemon uses it (bird 12, zebra 11, keepalived 18, babel 42, Calico 80, FRR 186 to 198).
        Change it only if something on the hosts already uses 71.
      - C(ip route) shows it as C(proto 71); a line C(71 overlay.gre) in C(/etc/iproute2/rt_protos.d/overlay-gre.conf) makes it
        show a name.
    type: int
    default: 71
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
requirements:
  - iproute2 (the C(ip) command) with JSON (C(-j)) and numeric (C(-N)) output on the target.
notes:
  - The routes are those of the running kernel (of the host, or of the network namespace the task runs in); they do
    not survive a reboot unless the play runs again at boot, the network configuration also has them, or a boot
    script runs the commands of RV(replay) (as the role M(overlay.gre.gre_lan_host) does).
  - Why a module of its own - community.general has no module for the kernel's routes; its M(community.general.nmcli)
    manages NetworkManager profiles and M(community.general.interfaces_file) edits C(/etc/network/interfaces), files
    that some other tool turns into routes later, without reading the kernel's state. This one shares M(overlay.gre.gre_tunnel)'s
    route code.
  - The kernel's own routes (protocols C(kernel), C(redirect) and C(ra), such as those of connected networks) and
    multipath routes are never changed; a listed route with the key of one is refused.
seealso:
  - module: overlay.gre.gre_tunnel
"""

EXAMPLES = r"""
- name: The how-to's route on a LAN host of site A whose default gateway is not the GRE router
  # route add -net 20.10.1.0 netmask 255.255.255.0 gw 10.10.1.1
  overlay.gre.ip_route:
    routes:
      - dest: 20.10.1.0/24
        via: 10.10.1.1

- name: Routes to every LAN of site B, and only those (routes made earlier and no longer listed are removed)
  overlay.gre.ip_route:
    routes:
      - {dest: 20.10.1.0/24, via: 10.10.1.1}
      - {dest: 20.10.2.0/24, via: 10.10.1.1, dev: eth0, metric: 10}
      - {dest: "2001:db8:20::/48", via: "fe80::1", dev: eth0}
    purge: true

- name: A route in another table, through an interface only
  overlay.gre.ip_route:
    routes:
      - {dest: 192.0.2.0/24, dev: eth1, table: 100}

- name: Remove the route again
  overlay.gre.ip_route:
    routes:
      - dest: 20.10.1.0/24
    state: absent
"""

RETURN = r"""
routes:
  description:
    - Each route of O(routes), in the same order, as the kernel has it after the task (in check mode, as it would).
  returned: always
  type: list
  elements: dict
  contains:
    dest:
      description: The destination network.
      type: str
      sample: 20.10.1.0/24
    via:
      description: The gateway, or null.
      type: str
      sample: 10.10.1.1
    dev:
      description: The interface.
      type: str
      sample: eth0
    metric:
      description: The metric.
      type: int
      sample: 0
    table:
      description: The table, by name for C(main) and C(default), else by number.
      type: str
      sample: main
    onlink:
      description: Whether the gateway is declared on-link.
      type: bool
      sample: false
    protocol:
      description: The route's protocol number.
      type: int
      sample: 71
    owned:
      description: Whether the route carries O(protocol), that is, this module made it.
      type: bool
      sample: true
    state:
      description: V(present), or V(absent) when no such route is there.
      type: str
      sample: present
  sample: [{dest: 20.10.1.0/24, via: 10.10.1.1, dev: eth0, metric: 0, table: main, onlink: false, protocol: 71, owned: true, state: present}]
purged:
  description: The routes O(purge) removed (or would remove, in check mode), in the shape of RV(routes).
  returned: always
  type: list
  elements: dict
  sample: [{dest: 20.10.9.0/24, via: 10.10.1.1, dev: eth0, metric: 0, table: main, onlink: false, protocol: 71}]
commands:
  description:
    - The C(ip) commands the module ran, in order (in check mode, those it would run). Empty when nothing changed.
    - When a command failed, the commands that ran before it and those that undid them.
  returned: always
  type: list
  elements: str
  sample: ["ip route add 20.10.1.0/24 via 10.10.1.1 proto 71"]
boot:
  description:
    - What RV(replay) runs, as data, the words of each C(ip) command without C(ip), in the same order. The role
      M(overlay.gre.gre_lan_host) keeps them in the host's boot data, which the roles' apply program runs in one C(ip -batch).
  returned: always
  type: list
  elements: list
  sample: [["route", "replace", "20.10.1.0/24", "via", "10.10.1.1", "proto", "71"]]
replay:
  description:
    - Shell commands that rebuild the listed routes of O(routes) that are V(present) (as they are after the run, or
      would be in check mode) on a machine that has just booted, C(ip route replace ... proto 71) each, routes through
      an interface alone first, then those through a gateway. Running them again changes nothing.
    - The interface is named only where O(routes[].dev) was given, as the task itself leaves it to the kernel.
    - Deprecated in 0.4.0 and to be removed in 1.0.0, as the roles no longer use it. What a machine keeps across reboots is
      data (RV(boot)), which the roles' apply program applies.
  returned: always
  type: list
  elements: str
  sample: ["ip route replace 20.10.1.0/24 via 10.10.1.1 proto 71"]
diff:
  description: With C(--diff), the routes of every key touched before and after, one C(ip route)-like line each.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.overlay.gre.plugins.module_utils import _lock

from ansible_collections.overlay.gre.plugins.module_utils._ip_route import PROTOCOL, run_module


def main():
    route_options = dict(
        dest=dict(type="str", required=True),
        via=dict(type="str"),
        dev=dict(type="str"),
        metric=dict(type="int"),
        table=dict(type="raw", default="main"),
        onlink=dict(type="bool", default=False),
        state=dict(type="str", choices=["present", "absent"]),
    )
    module = AnsibleModule(
        argument_spec=dict(
            routes=dict(type="list", elements="dict", options=route_options, default=[]),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            purge=dict(type="bool", default=False),
            protocol=dict(type="int", default=PROTOCOL),
            **_lock.ARGUMENT_SPEC
        ),
        supports_check_mode=True,
    )
    with _lock.router_lock(module, "overlay.gre.ip_route"):
        run_module(module)


if __name__ == "__main__":
    main()
