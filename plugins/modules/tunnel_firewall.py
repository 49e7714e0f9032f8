#!/usr/bin/python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: tunnel_firewall
short_description: The iptables rules a GRE router needs around one tunnel
version_added: 0.1.0
description:
  - Accepts GRE on INPUT from the tunnel's peer only, accepts forwarding between this site's networks and the peer's
    through the tunnel, and clamps the TCP MSS of connections crossing the tunnel.
  - The rules live in chains this collection owns, one set per tunnel (C(OGRE-IN-TUNNEL), C(OGRE-FWD-TUNNEL) and, in
    the mangle table, C(OGRE-MSS-TUNNEL)), jumped to from the top of C(INPUT) and C(FORWARD), ahead of every rule
    the collection did not make. So they work under policies of DROP or a reject-all rule, and rules of other tools
    are never removed or reordered.
  - GRE from any address other than a tunnel's peer is dropped by the shared chain C(OGRE-GRE-DROP), jumped to from
    the end of C(INPUT), after the accepts of every tunnel.
  - Reads the rule set once (C(iptables-save)), compares, and applies every difference in one
    C(iptables-restore --noflush), atomic for each table.
  - IPv4 (C(iptables)) only.
author:
  - overlay.gre contributors (!UNKNOWN)
options:
  tunnel:
    description:
      - The tunnel interface the rules are for.
      - Exactly one of O(tunnel) and O(tunnels) is required.
    type: str
  state:
    description: V(absent) removes every rule and chain of O(tunnel).
    type: str
    choices: [present, absent]
    default: present
  peer_underlay:
    description:
      - The peer's underlay address; GRE from it is accepted on INPUT, and GRE from any other address dropped.
      - Without it, no GRE input rules are made for this tunnel.
    type: str
  peer_tunnel_address:
    description:
      - The peer's address inside the tunnel. ICMP echo requests and replies from it arriving through the tunnel are
        accepted on INPUT, so that the two ends can ping each other's tunnel address behind an INPUT policy of DROP.
        No other ICMP is accepted.
    type: str
  local_networks:
    description: This site's networks (CIDR). Forwarding from them to O(peer_networks) through the tunnel is accepted.
    type: list
    elements: str
    default: []
  peer_networks:
    description: The peer site's networks (CIDR). Forwarding from them through the tunnel to O(local_networks) is accepted.
    type: list
    elements: str
    default: []
  mss_clamp:
    description:
      - V(pmtu) clamps the MSS of TCP SYNs leaving through the tunnel to the path MTU (C(TCPMSS --clamp-mss-to-pmtu)).
      - A number (536 to 65495) sets that MSS on SYNs crossing the tunnel in both directions (C(TCPMSS --set-mss)).
      - V(false) clamps nothing.
    type: raw
    default: pmtu
  reflect_keepalives:
    description:
      - Accept in C(FORWARD) the GRE packets that come out of the tunnel addressed to the peer's underlay address
        (O(peer_underlay); any address when it is not given). Those are the peer's GRE keepalives (Cisco IOS
        C(keepalive), MikroTik C(keepalive=), the C(overlay.gre.gre_router) role's sender) on their way back to it,
        so the peer sees this end alive even when C(FORWARD)'s policy is C(DROP).
      - The kernel must also let them through before C(FORWARD) sees them, since once decapsulated a keepalive comes from
        this router's own address. So the module also sets the tunnel's C(net.ipv4.conf.TUNNEL.accept_local) to V(1)
        and its C(rp_filter) to V(2) (loose, whatever C(net.ipv4.conf.all.rp_filter) says), compares them like the
        rules, and puts them in RV(replay). The tunnel must exist then (in check mode it may be about to be made).
      - V(false) leaves those two settings as they are.
    type: bool
    default: false
  ipsec:
    description:
      - The tunnel's GRE is protected by IPsec (M(overlay.gre.ipsec_peer)). Accepts IKE (UDP 500 and 4500) and ESP from
        O(peer_underlay), accepts GRE from it only when an IPsec policy protected it, and drops GRE to and from it that
        no IPsec policy protects (C(-m policy --pol none)) on C(INPUT), C(OUTPUT) (the chain C(OGRE-OUT-TUNNEL)) and
        C(FORWARD) (reflected keepalives). GRE between the two underlay addresses never crosses in clear, not even
        while charon is stopped and its policies are gone.
      - Needs O(peer_underlay).
    type: bool
    default: false
    version_added: 0.3.0
  tunnels:
    description:
      - The rules of many tunnels in one task (a router with a tunnel to every other site), read and applied in one
        C(iptables-save) and one C(iptables-restore). Each entry takes the options above, from O(tunnel) to
        O(ipsec), with the same defaults.
      - Mutually exclusive with O(tunnel) and the other per-tunnel options.
    type: list
    elements: dict
    suboptions:
      tunnel:
        description: As O(tunnel).
        type: str
        required: true
      state:
        description: As O(state).
        type: str
        choices: [present, absent]
        default: present
      peer_underlay:
        description: As O(peer_underlay).
        type: str
      peer_tunnel_address:
        description: As O(peer_tunnel_address).
        type: str
      local_networks:
        description: As O(local_networks).
        type: list
        elements: str
        default: []
      peer_networks:
        description: As O(peer_networks).
        type: list
        elements: str
        default: []
      mss_clamp:
        description: As O(mss_clamp).
        type: raw
        default: pmtu
      reflect_keepalives:
        description: As O(reflect_keepalives).
        type: bool
        default: false
      ipsec:
        description: As O(ipsec).
        type: bool
        default: false
  purge:
    description:
      - With O(tunnels), also remove the rules and chains of every other tunnel (the chains C(OGRE-IN-*),
        C(OGRE-FWD-*), C(OGRE-MSS-*) and C(OGRE-OUT-*) of tunnels the list does not name), such as a site's tunnel that is gone.
    type: bool
    default: false
  backend:
    description:
      - The iptables backend. V(auto) uses the system's C(iptables); V(nft) and V(legacy) pick one.
    type: str
    choices: [auto, nft, legacy]
    default: auto
  wait:
    description: Seconds to wait for the xtables lock.
    type: int
    default: 10
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
  - iptables (C(iptables-save) and C(iptables-restore)) on the target
notes:
  - Other rules of the collection (M(overlay.gre.nat_masquerade)) live in chains of their own and are not touched.
seealso:
  - module: overlay.gre.nat_masquerade
  - module: overlay.gre.gre_tunnel
"""

EXAMPLES = r"""
- name: Firewall around the how-to's tunnel on router A
  overlay.gre.tunnel_firewall:
    tunnel: gre-router_b
    peer_underlay: 172.19.1.2
    local_networks: [10.10.1.0/24]
    peer_networks: [20.10.1.0/24]
    mss_clamp: pmtu

- name: The how-to's fixed MSS of 1436
  overlay.gre.tunnel_firewall:
    tunnel: gre-router_b
    peer_underlay: 172.19.1.2
    mss_clamp: 1436

- name: Remove the tunnel's rules
  overlay.gre.tunnel_firewall:
    tunnel: gre-router_b
    state: absent

- name: A router with a tunnel to each of two sites; the rules of any other tunnel go
  overlay.gre.tunnel_firewall:
    tunnels:
      - {tunnel: gre-site2, peer_underlay: 172.19.0.2, local_networks: [10.1.0.0/16], peer_networks: [10.2.0.0/16]}
      - {tunnel: gre-site3, peer_underlay: 172.19.0.3, local_networks: [10.1.0.0/16], peer_networks: [10.3.0.0/16]}
    purge: true
"""

RETURN = r"""
added:
  description: The rules added (or that would be added in check mode), as C(-t TABLE -A CHAIN ...) lines.
  returned: always
  type: list
  elements: str
  sample: ["-t filter -A OGRE-IN-gre-router_b -s 172.19.1.2/32 -p gre -m comment --comment \"overlay.gre gre-router_b\" -j ACCEPT"]
removed:
  description: The rules removed (or that would be removed in check mode), in the same form.
  returned: always
  type: list
  elements: str
  sample: []
boot:
  description:
    - What RV(replay) and RV(replay_settings) do, as data for the role M(overlay.gre.gre_router)'s apply program, which
      rebuilds the rules this module owns after a boot or a firewall reload (as they are after the run, or would be in
      check mode).
  returned: always
  type: dict
  contains:
    iptables:
      description: The iptables command of the backend in use.
      type: str
      sample: iptables-nft
    chains:
      description:
        - The owned chains that stay, in order; each made (or flushed) and filled, and the jump to it from O(tunnels)'s
          built-in chain added where it is missing (C(first) on top, C(last) at the end).
      type: list
      elements: dict
      sample:
        - table: filter
          chain: OGRE-IN-gre-router_b
          parent: INPUT
          position: first
          jump: ["-m", "comment", "--comment", "overlay.gre gre-router_b", "-j", "OGRE-IN-gre-router_b"]
          rules: [["-s", "172.19.1.2/32", "-p", "gre", "-m", "comment", "--comment", "overlay.gre gre-router_b", "-j", "ACCEPT"]]
    settings:
      description: With O(reflect_keepalives), the tunnel's settings to set once it exists, as C(path) and C(value).
      type: list
      elements: dict
      sample: [{"path": "/proc/sys/net/ipv4/conf/gre-router_b/accept_local", "value": "1"}]
replay_check:
  description:
    - Shell commands that all succeed only while the rules this module owns are in place (each jump to an owned chain, and
      each owned chain's first rule); one fails once a firewall reload has flushed them.
    - Deprecated in 0.4.0 and to be removed in 1.0.0, as the roles no longer use it. The role M(overlay.gre.gre_router)'s firewall
      guard checks the chains of RV(boot) itself.
  returned: always
  type: list
  elements: str
  sample: ["iptables-nft -w -t nat -C POSTROUTING -m comment --comment overlay.gre.nat_masquerade -j OVERLAY-GRE-MASQ"]
replay:
  description:
    - Shell commands that rebuild the rules this module owns (as they are after the run, or would be in check mode) on a
      machine that has just booted, after its own firewall is loaded. Running them again changes nothing. They need no
      tunnel to exist, so a boot runs them before it makes the tunnels, and no GRE leaves unguarded.
    - Deprecated in 0.4.0 and to be removed in 1.0.0, as the roles no longer use it. What a machine keeps across reboots is
      data (RV(boot)), which the roles' apply program applies.
  returned: always
  type: list
  elements: str
  sample: ["iptables-nft -w -t filter -N OGRE-IN-gre-router_b 2>/dev/null || iptables-nft -w -t filter -F OGRE-IN-gre-router_b"]
replay_settings:
  description:
    - With O(reflect_keepalives), shell commands that set the tunnel's two settings again on a machine that has just
      booted, once the tunnel exists (RV(replay) runs before it is made). Empty without O(reflect_keepalives).
    - Deprecated in 0.4.0 and to be removed in 1.0.0, as the roles no longer use it. What a machine keeps across reboots is
      data (RV(boot.settings)), which the roles' apply program applies.
  returned: always
  type: list
  elements: str
  sample: ["echo 1 > /proc/sys/net/ipv4/conf/gre-router_b/accept_local"]
sysctls:
  description:
    - The tunnel's settings that O(reflect_keepalives) owns, as they are after the run (or would be in check mode),
      keyed as in C(sysctl.d) files. Empty without O(reflect_keepalives).
  returned: always
  type: dict
  sample: {"net/ipv4/conf/gre-router_b/accept_local": 1, "net/ipv4/conf/gre-router_b/rp_filter": 2}
backend:
  description: The iptables backend used.
  returned: always
  type: str
  sample: nft
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.overlay.gre.plugins.module_utils import _lock

from ansible_collections.overlay.gre.plugins.module_utils._iptables import Iptables, IptablesError, plan
from ansible_collections.overlay.gre.plugins.module_utils._tunnel_firewall import FirewallInputError, Reflections, chain_specs, validate_all


# The options of one tunnel (besides its name), at the top level and in each entry of tunnels.
TUNNEL_SPEC = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    peer_underlay=dict(type="str"),
    peer_tunnel_address=dict(type="str"),
    local_networks=dict(type="list", elements="str", default=[]),
    peer_networks=dict(type="list", elements="str", default=[]),
    mss_clamp=dict(type="raw", default="pmtu"),
    reflect_keepalives=dict(type="bool", default=False),
    ipsec=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            tunnel=dict(type="str"),
            # each entry of tunnels takes the options of one tunnel, with the same defaults
            tunnels=dict(type="list", elements="dict", options=dict(TUNNEL_SPEC, tunnel=dict(type="str", required=True))),
            purge=dict(type="bool", default=False),
            backend=dict(type="str", choices=["auto", "nft", "legacy"], default="auto"),
            wait=dict(type="int", default=10),
            **dict(TUNNEL_SPEC, **_lock.ARGUMENT_SPEC)
        ),
        required_one_of=[("tunnel", "tunnels")],
        mutually_exclusive=[("tunnel", "tunnels"), ("tunnels", "peer_underlay"), ("tunnels", "peer_tunnel_address"),
                            ("tunnels", "local_networks"), ("tunnels", "peer_networks")],
        supports_check_mode=True,
    )
    with _lock.router_lock(module, "overlay.gre.tunnel_firewall"):
        try:
            opts = validate_all(module.params)
            iptables = Iptables(module, backend=module.params["backend"], wait=module.params["wait"])
            tables = iptables.save()
            result = plan(tables, chain_specs(opts, tables, purge=module.params["purge"] and module.params["tunnels"] is not None))
            reflection = Reflections(opts, module.check_mode)
            changed = result.changed or bool(reflection.changes)
            if changed and not module.check_mode:
                done = reflection.apply()
                try:
                    if result.changed:
                        iptables.restore(result.restore_payload())
                except IptablesError as exc:
                    failed = Reflections.undo(done)
                    if failed:
                        raise IptablesError("%s; putting back the tunnel's settings failed too for %s: check those by hand"
                                            % (exc, ", ".join(failed)))
                    raise
        except (FirewallInputError, IptablesError) as exc:
            module.fail_json(msg=str(exc))
    output = dict(changed=changed, added=result.added, removed=result.removed, backend=iptables.backend,
                  sysctls=reflection.after(), replay=result.replay_lines(iptables.command_name),
                  replay_settings=reflection.replay_lines(),
                  replay_check=result.check_lines(iptables.command_name),
                  boot=dict(iptables=iptables.command_name, chains=result.boot_chains(), settings=reflection.boot_settings()))
    if module._diff:
        diff = result.diff()
        if reflection.wanted:
            diff["before"] += "\n".join(reflection.diff_lines(after=False)) + "\n"
            diff["after"] += "\n".join(reflection.diff_lines(after=True)) + "\n"
        output["diff"] = diff
    module.exit_json(**output)


if __name__ == "__main__":
    main()
