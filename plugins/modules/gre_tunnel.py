#!/usr/bin/python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: gre_tunnel
short_description: Manage Linux GRE tunnels, their addresses and the routes through them
version_added: 0.1.0
description:
  - Creates, changes and removes GRE tunnels (C(gre), C(gretap), C(ip6gre), C(ip6gretap)) on a Linux host, with the
    tunnel's own addresses and the routes through it, declaratively and idempotently.
  - Does in one task what C(ip tunnel add NAME mode gre local L remote R), C(ip addr add A peer P dev NAME),
    C(ip link set NAME up) and C(ip route add NET dev NAME) do by hand.
  - Reads the kernel's state once, through rtnetlink in the module's own process (a dump each of the links, the addresses
    and the main table's routes), compares every attribute, and changes only what differs, in one C(ip -batch) run; in
    place where the kernel allows, by re-creating the tunnel (with its addresses and routes) where it must, that is when
    the mode changes or the tunnel must be unbound from its underlay O(link).
  - Options O(ttl), O(tos), O(pmtudisc), O(mtu), O(addresses) and O(routes) are managed only when given; left out, the
    tunnel keeps what it has. O(local), O(remote), the keys and O(link) describe the tunnel as C(ip link add) does, so
    leaving one out means the tunnel has none (any address, no key, no underlay binding).
  - All input is checked before any change. When a change fails, a tunnel this task created is removed again, a tunnel
    re-created for a mode change is restored, and the message says what state the tunnel is in.
author:
  - overlay.gre contributors (!UNKNOWN)
requirements:
  - iproute2 (the C(ip) command) on the target, which makes the changes.
notes:
  - Tunnels the module creates carry the interface alias C(overlay.gre.gre_tunnel); O(purge) removes only tunnels with
    that alias, never one it did not make. A listed tunnel that is already there without any alias (made by hand, or by
    a run that was killed between creating the tunnel and setting its alias, which the kernel cannot do in one step)
    is taken over and gets the alias; one with another alias keeps it.
  - The kernel's fallback devices (C(gre0), C(gretap0), C(erspan0), C(ip6gre0), C(ip6tnl0) and the like) are never
    reported, changed or removed.
  - The IPv6 link-local address the kernel gives a tunnel is left alone and not reported, unless O(addresses) lists it.
  - Routes are looked at in the main table only; routes the kernel makes from addresses (protocol C(kernel)) are not
    managed.
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
options:
  name:
    description:
      - The tunnel interface's name, 1 to 15 characters without C(/), C(:) or white space.
      - Exactly one of O(name) and O(tunnels) is required.
    type: str
  state:
    description:
      - V(present) makes the tunnel as described; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  mode:
    description:
      - The kind of tunnel. V(gre) and V(ip6gre) carry IP packets, V(gretap) and V(ip6gretap) carry Ethernet frames.
      - V(gre) and V(gretap) run over IPv4, V(ip6gre) and V(ip6gretap) over IPv6.
      - Changing the mode re-creates the tunnel, keeping its addresses and routes.
    type: str
    choices: [gre, gretap, ip6gre, ip6gretap]
    default: gre
  local:
    description:
      - The underlay address the tunnel's packets leave from; its family must fit O(mode).
      - Left out, the tunnel has none (any).
    type: str
  remote:
    description:
      - The underlay address of the other end of the tunnel; its family must fit O(mode).
      - Left out, the tunnel has none (any), as on the hub of a point-to-multipoint network.
    type: str
  key:
    description:
      - One GRE key for both directions, a number from 0 to 4294967295 or a dotted quad like C(0.0.0.42).
      - Mutually exclusive with O(ikey) and O(okey). Left out (and O(ikey), O(okey) too), the tunnel has no key.
    type: raw
  ikey:
    description:
      - The key of incoming packets, as O(key). Left out, incoming packets carry no key.
    type: raw
  okey:
    description:
      - The key of outgoing packets, as O(key). Left out, outgoing packets carry no key.
    type: raw
  ttl:
    description:
      - The TTL (hop limit for V(ip6gre) and V(ip6gretap)) of the tunnel's packets, 0 to 255; 0 means inherit the inner
        packet's TTL.
      - A fixed TTL (not 0) cannot be combined with O(pmtudisc=false).
    type: int
  tos:
    description:
      - The TOS (traffic class for V(ip6gre) and V(ip6gretap)) of the tunnel's packets, a number from 0 to 255
        (decimal or C(0x) hexadecimal), or V(inherit).
    type: str
  pmtudisc:
    description:
      - Whether path-MTU discovery is on (the don't-fragment bit is set). V(gre) and V(gretap) only.
    type: bool
  mtu:
    description:
      - The tunnel's MTU, from 68 to 65535 less the tunnel's headers. Left out, the kernel computes it from the underlay.
    type: int
  link:
    description:
      - The underlay interface to bind the tunnel to (C(ip link add ... dev LINK)). It must exist.
      - Left out, the tunnel is not bound to an interface.
    type: str
  up:
    description:
      - Whether the tunnel's link is up (C(ip link set NAME up)) or down.
    type: bool
    default: true
  addresses:
    description:
      - The tunnel's own addresses, IPv4 or IPv6. Each is a CIDR string (V(192.168.8.1/30)), or a mapping with
        C(address) and C(peer) for a point-to-point address, as C(ip addr add 192.168.8.1 peer 192.168.8.11)
        (C(address) V(192.168.8.1) and C(peer) V(192.168.8.11)). A peer without a prefix length is a /32 (/128).
      - The module owns them; addresses on the tunnel that are not listed are removed. V([]) removes all.
      - Left out, the tunnel's addresses are not managed.
    type: list
    elements: raw
  routes:
    description:
      - Destinations routed through the tunnel, in the main table. Each is a CIDR string (V(20.10.1.0/24), or
        V(default)), or a mapping with C(dest), optionally C(metric) (default 0 for IPv4, 1024 for IPv6) and C(via)
        (a gateway inside the tunnel's network, such as the peer address).
      - The module owns them; routes through the tunnel that are not listed are removed. V([]) removes all.
      - Left out, the routes through the tunnel are not managed.
      - Routes need the tunnel up (O(up=true)).
    type: list
    elements: raw
  tunnels:
    description:
      - A list of tunnels for one task that manages many (a hub with hundreds of spokes). Each entry takes the options
        above, from O(name) to O(routes), with the same defaults.
      - Mutually exclusive with O(name) and the other per-tunnel options.
    type: list
    elements: dict
    suboptions:
      name:
        description: As O(name).
        type: str
        required: true
      state:
        description: As O(state).
        type: str
        choices: [present, absent]
        default: present
      mode:
        description: As O(mode).
        type: str
        choices: [gre, gretap, ip6gre, ip6gretap]
        default: gre
      local:
        description: As O(local).
        type: str
      remote:
        description: As O(remote).
        type: str
      key:
        description: As O(key).
        type: raw
      ikey:
        description: As O(ikey).
        type: raw
      okey:
        description: As O(okey).
        type: raw
      ttl:
        description: As O(ttl).
        type: int
      tos:
        description: As O(tos).
        type: str
      pmtudisc:
        description: As O(pmtudisc).
        type: bool
      mtu:
        description: As O(mtu).
        type: int
      link:
        description: As O(link).
        type: str
      up:
        description: As O(up).
        type: bool
        default: true
      addresses:
        description: As O(addresses).
        type: list
        elements: raw
      routes:
        description: As O(routes).
        type: list
        elements: raw
  purge:
    description:
      - With O(tunnels), also remove the tunnels this module created earlier (those with the alias
        C(overlay.gre.gre_tunnel)) that the list no longer names. Tunnels it did not create are never removed.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: The how-to's tunnel from site A to site B, with its point-to-point address and the route to site B
  overlay.gre.gre_tunnel:
    name: my_tunnel
    mode: gre
    local: 172.19.1.1
    remote: 172.19.1.2
    key: 42
    ttl: 64
    addresses:
      - address: 192.168.8.1
        peer: 192.168.8.11
    routes:
      - 20.10.1.0/24

- name: A layer-2 tunnel bound to its underlay interface, with a fixed MTU
  overlay.gre.gre_tunnel:
    name: l2site
    mode: gretap
    local: 172.19.1.1
    remote: 172.19.1.3
    link: bond0
    mtu: 1450

- name: Preview what would change, tunnel by tunnel (run with --check --diff)
  overlay.gre.gre_tunnel:
    name: my_tunnel
    local: 172.19.1.1
    remote: 172.19.1.2
    ikey: 10
    okey: 11
  check_mode: true
  register: preview

- name: A hub with one tunnel per spoke; tunnels this module made for spokes no longer listed are removed
  overlay.gre.gre_tunnel:
    tunnels: "{{ spokes | map('combine', {'local': '172.19.1.1', 'ttl': 64}) | list }}"
    purge: true
  vars:
    spokes:
      - {name: spoke1, remote: 172.19.2.1, key: 1, addresses: [{address: 192.168.9.1, peer: 192.168.9.2}], routes: [10.1.0.0/16]}
      - {name: spoke2, remote: 172.19.2.2, key: 2, addresses: [{address: 192.168.9.3, peer: 192.168.9.4}], routes: [10.2.0.0/16]}

- name: Route through the tunnel with a gateway and a metric
  overlay.gre.gre_tunnel:
    name: my_tunnel
    local: 172.19.1.1
    remote: 172.19.1.2
    key: 42
    routes:
      - {dest: 20.10.1.0/24, via: 192.168.8.11, metric: 10}

- name: Remove the tunnel
  overlay.gre.gre_tunnel:
    name: my_tunnel
    state: absent
"""

RETURN = r"""
boot:
  description:
    - What RV(replay) does, as data for the role M(overlay.gre.gre_router)'s apply program, which rebuilds the listed
      tunnels after a boot (as they are after the run, or would be in check mode), one entry per tunnel.
    - C(create) holds the words of the C(ip) command that makes the tunnel, run where it is missing; C(lines) the words
      of the C(ip) commands that set its state, addresses and routes (with C(replace), so running them again changes nothing).
  returned: always
  type: list
  elements: dict
  sample:
    - name: gre-router_b
      create: ["link", "add", "gre-router_b", "type", "gre", "remote", "172.19.1.2", "local", "172.19.1.1", "ttl", "64"]
      lines: [["link", "set", "gre-router_b", "up"], ["addr", "replace", "10.0.0.1/30", "dev", "gre-router_b"]]
replay:
  description:
    - Shell commands that rebuild the listed tunnels (as they are after the run, or would be in check mode) with their
      addresses and routes on a machine that has just booted. Running them again changes nothing.
    - Deprecated in 0.4.0 and to be removed in 1.0.0, as the roles no longer use it. What a machine keeps across reboots is
      data (RV(boot)), which the roles' apply program applies.
  returned: always
  type: list
  elements: str
  sample: ["ip link show dev gre-router_b >/dev/null 2>&1 || ip link add gre-router_b type gre remote 172.19.1.2 local 172.19.1.1 ttl 64"]
tunnel:
  description:
    - The tunnel as the kernel now has it (in check mode, as it would have it), when O(name) was given.
    - For an absent tunnel, only RV(tunnel.name) and RV(tunnel.state=absent).
  returned: when O(name) is given
  type: dict
  contains:
    name:
      description: The interface name.
      type: str
      sample: my_tunnel
    state:
      description: V(present) or V(absent).
      type: str
      sample: present
    mode:
      description: V(gre), V(gretap), V(ip6gre) or V(ip6gretap).
      type: str
      sample: gre
    local:
      description: The local underlay address, null for any.
      type: str
      sample: 172.19.1.1
    remote:
      description: The remote underlay address, null for any.
      type: str
      sample: 172.19.1.2
    ikey:
      description: The key of incoming packets as a number, null for none.
      type: int
      sample: 42
    okey:
      description: The key of outgoing packets as a number, null for none.
      type: int
      sample: 42
    ttl:
      description: The TTL (hop limit), 0 for inherit.
      type: int
      sample: 64
    tos:
      description: The TOS (traffic class) as a number, or V(inherit).
      type: raw
      sample: 0
    pmtudisc:
      description: Whether path-MTU discovery is on; null for IPv6 tunnels.
      type: bool
      sample: true
    mtu:
      description: The MTU.
      type: int
      sample: 1472
    link:
      description: The underlay interface the tunnel is bound to, null for none.
      type: str
      sample: bond0
    up:
      description: Whether the link is up.
      type: bool
      sample: true
    managed:
      description: Whether this module created the tunnel (it carries the alias C(overlay.gre.gre_tunnel)), so that O(purge) may remove it.
      type: bool
      sample: true
    addresses:
      description: The tunnel's addresses, each with C(address) and, for a point-to-point one, C(peer).
      type: list
      elements: dict
      sample: [{address: 192.168.8.1, peer: 192.168.8.11/32}]
    routes:
      description: The routes through the tunnel in the main table, each with C(dest), C(metric) and, if any, C(via).
      type: list
      elements: dict
      sample: [{dest: 20.10.1.0/24, metric: 0}]
tunnels:
  description: Each tunnel of O(tunnels), in the same order and shape as RV(tunnel).
  returned: when O(tunnels) is given
  type: list
  elements: dict
  sample: [{name: spoke1, state: present, mode: gre, local: 172.19.1.1, remote: 172.19.2.1, ikey: 1, okey: 1}]
purged:
  description: The names of the tunnels O(purge) removed (or would remove, in check mode).
  returned: when O(tunnels) is given
  type: list
  elements: str
  sample: [spoke7]
commands:
  description:
    - The C(ip) commands the module ran, in order (in check mode, those it would run). Empty when nothing changed.
    - When a change failed, the commands that ran before the failing one.
  returned: always
  type: list
  elements: str
  sample:
    - ip link add my_tunnel type gre local 172.19.1.1 remote 172.19.1.2 key 0.0.0.42 ttl 64
    - ip link set my_tunnel alias overlay.gre.gre_tunnel up
    - ip addr add 192.168.8.1 peer 192.168.8.11/32 dev my_tunnel
    - ip route add 20.10.1.0/24 dev my_tunnel
diff:
  description:
    - With C(--diff), the tunnel before and after (with O(tunnels), a list of them, one for each tunnel that changed).
  returned: when diff mode is on
  type: raw
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.overlay.gre.plugins.module_utils import _lock

from ansible_collections.overlay.gre.plugins.module_utils._gre_tunnel import run_module

TUNNEL_OPTION_SPEC = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    mode=dict(type="str", choices=["gre", "gretap", "ip6gre", "ip6gretap"], default="gre"),
    local=dict(type="str"),
    remote=dict(type="str"),
    key=dict(type="raw", no_log=False),
    ikey=dict(type="raw", no_log=False),
    okey=dict(type="raw", no_log=False),
    ttl=dict(type="int"),
    tos=dict(type="str"),
    pmtudisc=dict(type="bool"),
    mtu=dict(type="int"),
    link=dict(type="str"),
    up=dict(type="bool", default=True),
    addresses=dict(type="list", elements="raw"),
    routes=dict(type="list", elements="raw"),
)


def main():
    tunnel_suboptions = dict(name=dict(type="str", required=True), **TUNNEL_OPTION_SPEC)
    argument_spec = dict(
        name=dict(type="str"),
        tunnels=dict(type="list", elements="dict", options=tunnel_suboptions),
        purge=dict(type="bool", default=False),
        **dict(TUNNEL_OPTION_SPEC, **_lock.ARGUMENT_SPEC)
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[["tunnels", option] for option in ["name"] + sorted(TUNNEL_OPTION_SPEC)] + [["key", "ikey"], ["key", "okey"]],
        required_one_of=[["name", "tunnels"]],
        supports_check_mode=True,
    )
    with _lock.router_lock(module, "overlay.gre.gre_tunnel"):
        run_module(module)


if __name__ == "__main__":
    main()
