#!/usr/bin/python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: peer_probe
short_description: Probe a GRE router's peers over the underlay and through their tunnels, and list what earlier runs left
version_added: 0.3.0
description:
  - Reads only; never changes anything, also outside check mode. The role M(overlay.gre.gre_router) runs it on every
    router before any change, to check each pair, and after a change, to check each tunnel.
  - For each peer with O(peers[].underlay_ip) (and O(probe_underlay)), checks that the peer's underlay address answers
    from this router's O(underlay_ip), as the how-to does with C(ping). A peer on a directly connected network that
    drops ICMP still answers ARP (IPv6 neighbour discovery) whatever its firewall says, so a neighbour entry that
    becomes C(REACHABLE) counts as an answer too.
  - For each peer with O(peers[].tunnel) and O(peers[].tunnel_peer_address) (and O(probe_tunnels)), pings the peer's
    tunnel address through the tunnel, when the tunnel exists.
  - Every peer is probed at the same time, so the run takes about as long for fifteen peers as for one.
  - Also lists the tunnels M(overlay.gre.gre_tunnel) made, the boot data, boot scripts and keepalive configurations in
    C(/etc/overlay-gre), the tunnels with GRE over IPsec, and whether M(overlay.gre.nat_masquerade)'s chain exists.
author:
  - overlay.gre contributors (!UNKNOWN)
options:
  underlay_ip:
    description: This router's underlay address, the source of the underlay probes.
    type: str
  peers:
    description: The peers to probe.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The peer's name, the key of RV(peers).
        type: str
        required: true
      underlay_ip:
        description: The peer's underlay address.
        type: str
      tunnel:
        description: The tunnel to the peer.
        type: str
      tunnel_peer_address:
        description: The peer's address inside the tunnel.
        type: str
      port:
        description:
          - A TCP port of the peer's underlay address to probe instead of ICMP echo and ARP, for underlays that drop
            ICMP (cloud security groups), such as SSH's 22. A connection, or a refusal (the peer's kernel answered with
            a reset), is an answer; no answer within 2 seconds is none.
        type: int
        version_added: 0.4.0
  probe_underlay:
    description: Probe the peers' underlay addresses.
    type: bool
    default: true
  probe_tunnels:
    description: Ping the peers' tunnel addresses through the tunnels that exist.
    type: bool
    default: true
extends_documentation_fragment:
  - overlay.gre.attributes
attributes:
  check_mode:
    support: full
    details: Reads only, in check mode too.
  diff_mode:
    support: none
  idempotent:
    support: full
requirements:
  - ip (iproute2) and ping on the target
"""

EXAMPLES = r"""
- name: Probe both peers of a router
  overlay.gre.peer_probe:
    underlay_ip: 172.19.0.1
    peers:
      - {name: site2, underlay_ip: 172.19.0.2, tunnel: gre-site2, tunnel_peer_address: 10.255.0.2}
      - {name: site3, underlay_ip: 172.19.0.3, tunnel: gre-site3, tunnel_peer_address: 10.255.0.6}
  register: probe

- name: Stop unless site2 answers
  ansible.builtin.assert:
    that: probe.peers.site2.underlay is match('answered:')
"""

RETURN = r"""
peers:
  description:
    - For each peer, C(underlay) (a line that starts with C(answered:) or C(no answer:) and says how it was found, or
      null when not probed), C(tunnel) (V(answered), V(no answer), or null when not probed or the tunnel does not exist)
      and C(underlay_mtu) (the MTU of the device through which the kernel routes to the peer's underlay address from
      O(underlay_ip), or null when it has no route; read in any case, version 0.4.0).
  returned: always
  type: dict
  sample: {"site2": {"underlay": "answered: ICMP echo (2 packets transmitted, 2 received, 0% packet loss, time 51ms)",
                     "tunnel": "answered", "underlay_mtu": 1500}}
tunnels:
  description: The tunnels that M(overlay.gre.gre_tunnel) made (interface alias C(overlay.gre.gre_tunnel)).
  returned: always
  type: list
  elements: str
  sample: ["gre-site2"]
scripts:
  description:
    - The boot data in C(/etc/overlay-gre/boot) (C(NAME.json), which the roles' apply program applies at boot) and the
      boot scripts of older versions in C(/etc/overlay-gre) (C(NAME.sh)).
  returned: always
  type: list
  elements: str
  sample: ["/etc/overlay-gre/boot/tunnels.json"]
boot_data:
  description:
    - The content of each boot data file in C(/etc/overlay-gre/boot), by its path (a file that is not valid JSON is left
      out).
  returned: always
  type: dict
  version_added: 0.4.0
  sample: {"/etc/overlay-gre/boot/tunnels.json": {"format": 1, "links": []}}
keepalives:
  description: The tunnels with a keepalive configuration (C(/etc/overlay-gre/keepalive-TUNNEL.json)).
  returned: always
  type: list
  elements: str
  sample: ["gre-site2"]
ipsec:
  description: The tunnels with GRE over IPsec configured (M(overlay.gre.ipsec_peer)'s C(/etc/swanctl/conf.d/overlay-gre-TUNNEL.conf)).
  returned: always
  type: list
  elements: str
  sample: ["gre-site2"]
masquerade:
  description: Whether M(overlay.gre.nat_masquerade)'s chain C(OVERLAY-GRE-MASQ) exists in the nat table.
  returned: always
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.overlay.gre.plugins.module_utils._peer_probe import ProbeInputError, Prober, validate


def main():
    module = AnsibleModule(
        argument_spec=dict(
            underlay_ip=dict(type="str"),
            peers=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                underlay_ip=dict(type="str"),
                tunnel=dict(type="str"),
                tunnel_peer_address=dict(type="str"),
                port=dict(type="int"),
            )),
            probe_underlay=dict(type="bool", default=True),
            probe_tunnels=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    try:
        peers = validate(module.params)
    except ProbeInputError as exc:
        module.fail_json(msg=str(exc))
    ip = module.get_bin_path("ip", required=True)
    ping = module.get_bin_path("ping", required=True)
    prober = Prober(module.run_command, ip=ip, ping=ping)
    results = prober.probe(module.params["underlay_ip"], peers, module.params["probe_underlay"], module.params["probe_tunnels"])
    scripts, keepalives, ipsec = prober.leftovers()
    iptables = module.get_bin_path("iptables")
    masquerade = bool(iptables) and module.run_command([iptables, "-w", "-t", "nat", "-n", "-L", "OVERLAY-GRE-MASQ"])[0] == 0
    module.exit_json(changed=False, peers=results, tunnels=prober.our_tunnels(), scripts=scripts,
                     boot_data=prober.boot_data(), keepalives=keepalives,
                     ipsec=ipsec, masquerade=masquerade)


if __name__ == "__main__":
    main()
