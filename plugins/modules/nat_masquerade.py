#!/usr/bin/python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: nat_masquerade
short_description: Masquerade a source network leaving an interface, and let it through FORWARD
version_added: 0.1.0
description:
  - Manages the how-to's C(iptables -t nat -A POSTROUTING -s SRC -o IF -j MASQUERADE) together with its
    C(iptables -A FORWARD -s SRC -o IF -j ACCEPT), plus the rule that lets the replies back in.
  - Reads the rules once with C(iptables-save), compares them with what was asked and applies every difference
    with one C(iptables-restore --noflush). Rules of other tools are never deleted and keep their order.
  - The module owns two chains and keeps its rules in them; each rule carries the O(comment) tag.
    C(OVERLAY-GRE-MASQ) in the C(nat) table holds the C(MASQUERADE) rules and is jumped to from the end of
    C(POSTROUTING), so NAT exemptions that other tools put before it still apply.
    C(OVERLAY-GRE-FWD) in the C(filter) table holds the C(ACCEPT) rules and is jumped to from the top of
    C(FORWARD), so the traffic passes when C(FORWARD)'s policy is C(DROP) or a reject-all rule ends the chain.
    If another tool later puts a rule ahead of that jump, the next run moves the jump back to the top.
  - A chain is created with its first rule and removed, together with its jump, when its last rule goes.
  - IPv4 only (C(iptables)); C(ip6tables) is not managed.
  - The module does not enable IP forwarding (C(net.ipv4.ip_forward)); use M(ansible.posix.sysctl) for that.
author:
  - overlay.gre contributors (!UNKNOWN)
extends_documentation_fragment:
  - overlay.gre.attributes
  - overlay.gre.router_lock
attributes:
  check_mode:
    support: full
    description: Reads the rules and reports what would change without running C(iptables-restore).
  diff_mode:
    support: full
    description: Shows the owned rules before and after as C(iptables-save) lines.
  idempotent:
    support: full
    description: A second run with the same arguments changes nothing.
options:
  source:
    description:
      - The source network to masquerade, as a CIDR (C(10.10.1.0/24)) or a single address (C(192.168.8.11), taken as C(/32)).
      - Host bits are cleared as C(iptables) does (C(10.10.1.1/24) becomes C(10.10.1.0/24)), with a warning.
      - C(0.0.0.0/0) matches every source.
      - Mutually exclusive with O(rules); one of the two is required.
    type: str
  out_interface:
    description:
      - The interface the traffic leaves by; the address of this interface becomes the new source.
      - A trailing C(+) matches every interface whose name starts with the rest (C(gre+)), as in C(iptables -o).
      - Required with O(source); with O(rules), the default for items that do not name one.
    type: str
  state:
    description:
      - Whether the rules must exist (V(present)) or not (V(absent)).
      - With O(rules), the default for items that do not set it.
      - V(absent) removes the C(MASQUERADE) rule and both C(FORWARD) rules of the source and interface, whatever their comment.
    type: str
    choices: [present, absent]
    default: present
  forward:
    description:
      - Also accept the traffic in the C(filter) table's C(FORWARD) chain (C(-s SOURCE -o OUT_INTERFACE)) and its
        replies (C(-d SOURCE -i OUT_INTERFACE -m conntrack --ctstate RELATED,ESTABLISHED)).
      - V(false) removes those two rules if this module made them earlier.
      - With O(rules), the default for items that do not set it.
    type: bool
    default: true
  comment:
    description:
      - The tag on every rule (C(-m comment --comment)). A rule that differs only in its comment is rewritten.
      - At most 255 characters, without quotes, backslashes or line breaks.
      - With O(rules), the default for items that do not set it.
    type: str
    default: overlay.gre nat_masquerade
  rules:
    description:
      - Many rules in one task, read and applied in one step. Each item takes the options above; those it does not
        set come from the task's options.
      - Mutually exclusive with O(source).
    type: list
    elements: dict
    suboptions:
      source:
        description: As O(source).
        type: str
        required: true
      out_interface:
        description: As O(out_interface); defaults to the task's O(out_interface).
        type: str
      state:
        description: As O(state); defaults to the task's O(state).
        type: str
        choices: [present, absent]
      forward:
        description: As O(forward); defaults to the task's O(forward).
        type: bool
      comment:
        description: As O(comment); defaults to the task's O(comment).
        type: str
  purge:
    description:
      - With O(rules), remove every rule from this module's chains that the list does not produce, whoever made it,
        and nothing outside them.
      - Only allowed with O(rules). C(rules=[]) and C(purge=true) remove all of them, and the chains.
    type: bool
    default: false
  backend:
    description:
      - Which iptables to use. V(auto) is the backend the target's C(iptables) command uses
        (C(update-alternatives --display iptables)); V(nft) and V(legacy) pick C(iptables-nft-*) or C(iptables-legacy-*).
      - A backend the kernel cannot run is refused, naming the backend that works.
    type: str
    choices: [auto, nft, legacy]
    default: auto
  wait:
    description:
      - Seconds C(iptables-restore) waits for the xtables lock (C(-w)) before the module gives up, changing nothing.
      - Only the legacy backend takes the lock.
    type: int
    default: 10
notes:
  - C(iptables-restore) commits each table on its own, so a run is atomic per table. When the C(nat) table gains rules
    it is applied before C(filter), so the C(FORWARD) accept never exists without its C(MASQUERADE) rule; when only
    rules go, C(filter) goes first.
  - Rules are compared in the form C(iptables-save) prints them; do not add rules to C(OVERLAY-GRE-MASQ) or
    C(OVERLAY-GRE-FWD) by hand, O(purge) would remove them.
seealso:
  - module: ansible.builtin.iptables
    description: Manages one rule per task with one C(iptables) call each.
requirements:
  - iptables (C(iptables-save) and C(iptables-restore)) on the target, and the kernel's C(comment), C(conntrack) and C(MASQUERADE) support.
"""

EXAMPLES = r"""
- name: Masquerade site A behind the tunnel, as in the how-to
  overlay.gre.nat_masquerade:
    source: 10.10.1.0/24
    out_interface: my_tunnel

- name: Only NAT, the FORWARD chain is managed elsewhere
  overlay.gre.nat_masquerade:
    source: 192.168.8.11
    out_interface: eth1
    forward: false

- name: All masquerade rules of this router in one step; remove those no longer listed
  overlay.gre.nat_masquerade:
    out_interface: eth1
    rules:
      - source: 192.168.8.11
      - source: 10.10.1.0/24
        out_interface: my_tunnel
      - source: 10.10.2.0/24
        comment: overlay.gre branch office
    purge: true

- name: Remove one
  overlay.gre.nat_masquerade:
    source: 10.10.1.0/24
    out_interface: my_tunnel
    state: absent

- name: On a kernel without nf_tables for IPv4
  overlay.gre.nat_masquerade:
    source: 10.10.1.0/24
    out_interface: eth1
    backend: legacy
    wait: 30
"""

RETURN = r"""
added:
  description: The rules added (or that would be, in check mode), as C(iptables) arguments.
  returned: always
  type: list
  elements: str
  sample:
    - '-t nat -A POSTROUTING -m comment --comment "overlay.gre nat_masquerade" -j OVERLAY-GRE-MASQ'
    - '-t nat -A OVERLAY-GRE-MASQ -s 10.10.1.0/24 -o eth1 -m comment --comment "overlay.gre nat_masquerade" -j MASQUERADE'
removed:
  description: The rules removed (or that would be), in the same form.
  returned: always
  type: list
  elements: str
  sample: []
rules:
  description: Every rule in this module's chains, and the jumps to them, after the run.
  returned: always
  type: list
  elements: str
  sample:
    - '-t filter -A FORWARD -m comment --comment "overlay.gre nat_masquerade" -j OVERLAY-GRE-FWD'
    - '-t filter -A OVERLAY-GRE-FWD -s 10.10.1.0/24 -o eth1 -m comment --comment "overlay.gre nat_masquerade" -j ACCEPT'
boot:
  description:
    - What RV(replay) does, as data for the role M(overlay.gre.gre_router)'s apply program, which rebuilds the rules this
      module owns after a boot or a firewall reload (as they are after the run, or would be in check mode).
  returned: always
  type: dict
  contains:
    iptables:
      description: The iptables command of the backend in use.
      type: str
      sample: iptables-nft
    chains:
      description:
        - The owned chains that stay, in order; each made (or flushed) and filled, and the jump to it from its built-in
          chain added where it is missing (C(first) on top, C(last) at the end).
      type: list
      elements: dict
      sample:
        - table: nat
          chain: OVERLAY-GRE-MASQ
          parent: POSTROUTING
          position: last
          jump: ["-m", "comment", "--comment", "overlay.gre nat_masquerade", "-j", "OVERLAY-GRE-MASQ"]
          rules: [["-s", "10.10.1.0/24", "-o", "gre-router_b", "-m", "comment", "--comment", "overlay.gre nat_masquerade", "-j", "MASQUERADE"]]
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
      machine that has just booted, after its own firewall is loaded. Running them again changes nothing.
    - Deprecated in 0.4.0 and to be removed in 1.0.0, as the roles no longer use it. What a machine keeps across reboots is
      data (RV(boot)), which the roles' apply program applies.
  returned: always
  type: list
  elements: str
  sample: ["iptables-nft -w -t nat -N OVERLAY-GRE-MASQ 2>/dev/null || iptables-nft -w -t nat -F OVERLAY-GRE-MASQ"]
backend:
  description: The iptables backend used.
  returned: always
  type: str
  sample: nft
"""

import ipaddress
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.overlay.gre.plugins.module_utils import _lock

from ansible_collections.overlay.gre.plugins.module_utils._iptables import (
    ChainSpec,
    Iptables,
    IptablesError,
    plan,
    rule_line,
)

NAT_CHAIN = "OVERLAY-GRE-MASQ"
FORWARD_CHAIN = "OVERLAY-GRE-FWD"
JUMP_COMMENT = "overlay.gre nat_masquerade"

_IFNAME = re.compile(r"^[A-Za-z0-9_.@-]+\+?$|^\+$")
_BAD_COMMENT = re.compile(r"[\"'\\\x00-\x1f\x7f]")


def normalise_source(source):
    """(iptables-save form of the -s argument or None for 'any', warning or None); ValueError when malformed."""
    text = (source or "").strip()
    if ":" in text:
        raise ValueError("source %r is an IPv6 network; this module manages IPv4 (iptables) only" % source)
    address, slash, length = text.partition("/")
    try:
        host = int(ipaddress.IPv4Address(address))
        if not slash:
            prefix = 32
        elif length.isdigit() and int(length) <= 32:
            prefix = int(length)
        else:
            prefix = ipaddress.IPv4Network("0.0.0.0/" + length).prefixlen  # a netmask, or ValueError
    except ValueError as exc:
        raise ValueError("source %r is not an IPv4 address or CIDR: %s" % (source, exc))
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    network = "%s/%d" % (ipaddress.IPv4Address(host & mask), prefix)
    warning = None
    if host & ~mask & 0xFFFFFFFF:
        warning = "source %s has host bits set; using %s as iptables does" % (text, network)
    return (network if prefix else None), warning


def check_interface(name):
    if not name or len(name) > 15 or name in (".", "..") or not _IFNAME.match(name):
        raise ValueError("out_interface %r is not a valid interface name (1 to 15 letters, digits, '_', '-', '.' or '@', "
                         "optionally ending in '+')" % (name,))
    return name


def check_comment(comment):
    if not comment or len(comment) > 255 or _BAD_COMMENT.search(comment):
        raise ValueError("comment %r must be 1 to 255 characters without quotes, backslashes or control characters" % (comment,))
    return comment


def masquerade_rule(source, interface, comment):
    rule = []
    if source:
        rule += ["-s", source]
    return tuple(rule + ["-o", interface, "-m", "comment", "--comment", comment, "-j", "MASQUERADE"])


def forward_rules(source, interface, comment):
    """The outbound accept and the accept for its replies, in iptables-save's order of options."""
    out_rule = (["-s", source] if source else []) + ["-o", interface]
    back_rule = (["-d", source] if source else []) + ["-i", interface, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"]
    tag = ["-m", "comment", "--comment", comment, "-j", "ACCEPT"]
    return tuple(out_rule + tag), tuple(back_rule + tag)


def requested_entries(params):
    """The validated entries (source, interface, state, forward, comment) and warnings; ValueError when invalid."""
    if params["rules"] is None:
        items = [{"source": params["source"]}]
    else:
        items = params["rules"]
    entries = []
    warnings = []
    seen = {}
    for index, item in enumerate(items):
        where = "" if params["rules"] is None else "rules[%d]: " % index
        try:
            source, warning = normalise_source(item.get("source"))
            interface = item.get("out_interface") or params["out_interface"]
            if not interface:
                raise ValueError("out_interface is required")
            check_interface(interface)
            comment = check_comment(item["comment"] if item.get("comment") is not None else params["comment"])
        except ValueError as exc:
            raise ValueError(where + str(exc))
        if warning:
            warnings.append(where + warning)
        key = (source, interface)
        if key in seen:
            raise ValueError("%ssource %s out of %s is listed twice (also rules[%d])" % (where, source or "0.0.0.0/0", interface, seen[key]))
        seen[key] = index
        state = item.get("state") or params["state"]
        forward = params["forward"] if item.get("forward") is None else item["forward"]
        entries.append((source, interface, state, forward, comment))
    return entries, warnings


def chain_specs(entries, purge):
    nat_wanted, nat_unwanted, fwd_wanted, fwd_unwanted = [], [], [], []
    for source, interface, state, forward, comment in entries:
        masquerade = masquerade_rule(source, interface, comment)
        accepts = forward_rules(source, interface, comment)
        if state == "present":
            nat_wanted.append(masquerade)
            (fwd_wanted if forward else fwd_unwanted).extend(accepts)
        else:
            nat_unwanted.append(masquerade)
            fwd_unwanted.extend(accepts)
    return [
        ChainSpec("nat", NAT_CHAIN, "POSTROUTING", position="last", wanted=nat_wanted, unwanted=nat_unwanted,
                  purge=purge, jump_comment=JUMP_COMMENT),
        ChainSpec("filter", FORWARD_CHAIN, "FORWARD", position="first", wanted=fwd_wanted, unwanted=fwd_unwanted,
                  purge=purge, jump_comment=JUMP_COMMENT),
    ]


def main():
    item_options = dict(
        source=dict(type="str", required=True),
        out_interface=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"]),
        forward=dict(type="bool"),
        comment=dict(type="str"),
    )
    module = AnsibleModule(
        argument_spec=dict(
            source=dict(type="str"),
            out_interface=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            forward=dict(type="bool", default=True),
            comment=dict(type="str", default=JUMP_COMMENT),
            rules=dict(type="list", elements="dict", options=item_options),
            purge=dict(type="bool", default=False),
            backend=dict(type="str", choices=["auto", "nft", "legacy"], default="auto"),
            wait=dict(type="int", default=10),
            **_lock.ARGUMENT_SPEC
        ),
        mutually_exclusive=[("source", "rules")],
        required_one_of=[("source", "rules")],
        required_by={"source": "out_interface"},
        supports_check_mode=True,
    )
    params = module.params
    if params["purge"] and params["rules"] is None:
        module.fail_json(msg="purge needs rules: list every rule to keep (rules: [] removes them all)")
    if params["wait"] < 1:
        module.fail_json(msg="wait must be at least 1 second, got %d" % params["wait"])
    try:
        entries, warnings = requested_entries(params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    for warning in warnings:
        module.warn(warning)

    with _lock.router_lock(module, "overlay.gre.nat_masquerade"):
        try:
            iptables = Iptables(module, backend=params["backend"], wait=params["wait"])
            changes = plan(iptables.save(), chain_specs(entries, params["purge"]))
            if changes.changed and not module.check_mode:
                iptables.restore(changes.restore_payload())
        except IptablesError as exc:
            module.fail_json(msg=str(exc))

    after = [rule_line(table, chain, tokens) for table, _chains, rules in changes.after for chain, tokens in rules]
    result = dict(changed=changes.changed, added=changes.added, removed=changes.removed, rules=after, backend=iptables.backend,
                  replay=changes.replay_lines(iptables.command_name), replay_check=changes.check_lines(iptables.command_name),
                  boot=dict(iptables=iptables.command_name, chains=changes.boot_chains()))
    if module._diff:
        result["diff"] = changes.diff()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
