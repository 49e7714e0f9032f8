# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a GRE router keeps across reboots, planned: the files and units of overlay.gre.service_files for one router.

The role overlay.gre.gre_router calls this (through the filters gre_router_files and gre_router_run) with
what its modules reported and what overlay.gre.peer_probe found on the router. It returns:

- the boot data of all the router's tunnels (/etc/overlay-gre/boot/NAME.json), the program that applies it
  (overlay-gre-apply) and its two units, or their removal;
- a keepalive sender per tunnel that sends them, or their removal;
- the removal of the boot scripts of older versions (/etc/overlay-gre/NAME.sh, before that one per tunnel).

A held pair (its underlay did not answer, so the run left it as it was) keeps exactly what it had: its entries of the
boot data as the last run wrote them, its keepalive sender and configuration untouched. The router's other pairs get
theirs updated all the same.
"""

from __future__ import annotations

import json
import os

ETC = "/etc/overlay-gre"
BOOT = ETC + "/boot"
UNIT = "/etc/systemd/system/overlay-gre@.service"
GUARD_UNIT = "/etc/systemd/system/overlay-gre-guard@.service"
SENDER_CONFIG = ETC + "/keepalive-%s.json"
SENDER_STATE = "/run/overlay-gre/keepalive-%s.json"
SENDER_UNIT = "overlay-gre-keepalive@%s.service"
# the comment of the jump to each of overlay.gre.tunnel_firewall's chains of one tunnel
TUNNEL_CHAIN_TAG = "overlay.gre %s"


class RouterFilesError(Exception):
    pass


def sender_stop(stopping):
    """The units and files of overlay.gre.service_files that stop the keepalive senders of the tunnels STOPPING."""
    return {"units": [{"name": SENDER_UNIT % tunnel, "enabled": False, "started": False} for tunnel in stopping],
            "files": [{"path": SENDER_CONFIG % tunnel, "state": "absent"} for tunnel in stopping]}


def senders_to_stop(running, sending, held):
    """The tunnels whose keepalive sender goes before the tunnels change: those with a sender configuration on the
    router (RUNNING) that this run does not send for (SENDING), unless their pair is HELD."""
    keep = set(sending) | set(held)
    return [name for name in running if name not in keep]


def _jump_comment(chain):
    jump = list(chain.get("jump") or [])
    for index, word in enumerate(jump[:-1]):
        if word == "--comment":
            return jump[index + 1]
    return None


def held_boot(old, tunnels):
    """The entries of the boot data OLD (as the last run wrote it) that belong to TUNNELS: their links, their
    overlay.gre.tunnel_firewall chains (found by their jump's comment) and their settings."""
    tunnels = set(tunnels)
    tags = set(TUNNEL_CHAIN_TAG % name for name in tunnels)
    folders = set(os.path.join("/proc/sys/net/ipv4/conf", name) for name in tunnels)
    return {"links": [link for link in old.get("links") or [] if link.get("name") in tunnels],
            "chains": [chain for chain in old.get("chains") or [] if _jump_comment(chain) in tags],
            "settings": [entry for entry in old.get("settings") or [] if os.path.dirname(str(entry.get("path"))) in folders]}


def _ipsec_replayed(ipsec_result):
    return any(result.get("replay") for result in (ipsec_result or {}).get("results") or [] if isinstance(result, dict))


def boot_data(inputs, old):
    """The router's boot data: what the modules reported they would rebuild (their `boot` results), in the order the
    program applies it (the firewall: the tunnels' rules, then masquerading; the tunnels; their settings; their IPsec),
    with each held pair's entries of OLD."""
    results = inputs.get("results") or {}
    firewall = (results.get("firewall") or {}).get("boot") or {}
    nat = (results.get("nat") or {}).get("boot") or {}
    links = list((results.get("tunnel") or {}).get("boot") or [])
    held = list(inputs.get("held_tunnels") or [])
    kept = held_boot(old or {}, held)
    built = set(link["name"] for link in links)
    kept_links = [link for link in kept["links"] if link["name"] not in built]
    boot = inputs["boot"]
    comment = ("%s (overlay.gre.gre_router): what overlay-gre@%s.service applies at boot (%s %s), and "
               "overlay-gre-guard@%s.service after a firewall reload"
               % (inputs.get("managed") or "Ansible managed", boot, inputs["program"], boot, boot))
    return {
        "_comment": comment,
        "format": 1,
        "iptables": firewall.get("iptables") or nat.get("iptables") or "iptables",
        # the held tunnels' chains ahead of the shared ones: their jumps stay where the last run put them
        "chains": kept["chains"] + list(firewall.get("chains") or []) + list(nat.get("chains") or []),
        "links": links + kept_links,
        "settings": kept["settings"] + list(firewall.get("settings") or []),
        "ipsec": _ipsec_replayed(results.get("ipsec")) or bool(set(held) & set((inputs.get("probe") or {}).get("ipsec") or [])),
    }


def _sender_config(pair, managed):
    tunnel = pair["tunnel"]
    comment = "%s (overlay.gre.gre_router): the configuration of overlay-gre-keepalive@%s" % (
        managed or "Ansible managed", tunnel["name"])
    return {
        "_comment": comment,
        "tunnel": tunnel["name"],
        "local": tunnel["local"],
        "remote": tunnel["remote"],
        "key": tunnel.get("key"),
        "period": pair["keepalive"]["period"],
        "retries": pair["keepalive"]["retries"],
        "ttl": tunnel.get("ttl") or 255,
        "routes": tunnel.get("routes"),
        "state_file": SENDER_STATE % tunnel["name"],
    }


def _json(data):
    return json.dumps(data, indent=2, sort_keys=True, separators=(",", ": ")) + "\n"


def service_files(inputs):
    """{"files", "units", "prune", "sending"} for overlay.gre.service_files, from INPUTS:

    state (present/absent), persist (bool), boot (the boot data's name), program (the apply program's path),
    sender_program and sender_unit_file (the keepalive sender's), contents ({program, unit, guard_unit, sender_program,
    sender_unit}: the files' texts), managed (the ansible_managed text), pairs (every pair of the router's plan),
    sending (the pairs whose keepalives this run sends), held_tunnels (the tunnels of the held pairs), probe
    (overlay.gre.peer_probe's result: tunnels, scripts, keepalives, ipsec, boot_data) and results (the registered
    results of the modules: tunnel, firewall, nat, ipsec)."""
    present = inputs["state"] == "present"
    persisted = present and bool(inputs.get("persist"))
    boot = inputs["boot"]
    program = inputs["program"]
    contents = dict(inputs.get("contents") or {})
    for name in ("program", "sender_program"):  # Ansible's file lookup strips a file's last newline
        if name in contents and not str(contents[name]).endswith("\n"):
            contents[name] = "%s\n" % contents[name]
    probe = inputs.get("probe") or {}
    pairs = inputs.get("pairs") or []
    held = list(inputs.get("held_tunnels") or []) if present else []
    own_data = "%s/%s.json" % (BOOT, boot)
    scripts = list(probe.get("scripts") or [])
    tunnel_names = [pair["tunnel"]["name"] for pair in pairs] + list(probe.get("tunnels") or [])
    candidates = set(["%s/%s.sh" % (ETC, boot)] + ["%s/%s.sh" % (ETC, name) for name in tunnel_names])
    old_scripts = [script for script in scripts if script in candidates]
    other_boot = [script for script in scripts if script != own_data and script not in old_scripts]
    old_data = (probe.get("boot_data") or {}).get(own_data)
    if held and old_data is None and old_scripts:
        # the held pairs' boot entries are in a boot script of an older version, which no data can keep: leave it
        # all as it is until every pair answers
        return {"files": [], "units": [], "prune": [], "sending": False}

    files = []
    units = []
    for script in old_scripts:
        name = os.path.basename(script)[:-len(".sh")]
        files.append({"path": script, "state": "absent"})
        if name != boot:
            units.append({"name": "overlay-gre@%s.service" % name, "enabled": False})
            units.append({"name": "overlay-gre-guard@%s.service" % name, "enabled": False, "started": False})
    if persisted:
        files.extend([
            {"path": own_data, "content": _json(boot_data(inputs, old_data))},
            {"path": program, "content": contents["program"], "mode": "0755"},
            {"path": UNIT, "content": contents["unit"]},
            {"path": GUARD_UNIT, "content": contents["guard_unit"]},
        ])
    else:
        # the program and the units are shared with overlay.gre.gre_lan_host (overlay-gre@lan-routes): they go with
        # the last boot data
        files.append({"path": own_data, "state": "absent"})
        if not other_boot:
            files.extend([{"path": UNIT, "state": "absent"}, {"path": GUARD_UNIT, "state": "absent"},
                          {"path": program, "state": "absent"}])
    # started too, so that systemd knows it as applied (PartOf= restarts only an active unit, and `systemctl status`
    # tells the truth); never restarted by a change: the modules applied it already
    units.append({"name": "overlay-gre@%s.service" % boot, "enabled": persisted, "started": persisted, "restart_on": []})
    # puts the firewall rules back after a firewall reload; restarted when the data or the program changed
    units.append({"name": "overlay-gre-guard@%s.service" % boot, "enabled": persisted, "started": persisted,
                  "restart_on": [own_data, program]})

    sending = list(inputs.get("sending") or []) if present else []
    sending_names = [pair["tunnel"]["name"] for pair in sending]
    sender_program = inputs["sender_program"]
    sender_unit_file = inputs["sender_unit_file"]
    for pair in sending:
        config = SENDER_CONFIG % pair["tunnel"]["name"]
        files.append({"path": config, "content": _json(_sender_config(pair, inputs.get("managed")))})
        # a change to the sender, its configuration or its unit restarts it
        units.append({"name": SENDER_UNIT % pair["tunnel"]["name"], "enabled": True, "started": True,
                      "restart_on": [sender_program, config, sender_unit_file]})
    running = list(probe.get("keepalives") or [])
    gone = running + ([] if present else [pair["tunnel"]["name"] for pair in pairs])
    seen = set()
    for name in gone:
        if name in seen or name in sending_names or name in held:
            continue
        seen.add(name)
        units.append({"name": SENDER_UNIT % name, "enabled": False, "started": False})
        files.extend([{"path": SENDER_CONFIG % name, "state": "absent"},
                      {"path": SENDER_STATE % name, "state": "absent", "check": False}])
    held_senders = [name for name in held if name in running]
    if sending:
        files.extend([{"path": sender_program, "content": contents["sender_program"], "mode": "0755"},
                      {"path": sender_unit_file, "content": contents["sender_unit"]}])
    elif not held_senders:
        # the program, like a package's, stays while the role is on the router (in the lab, all routers share /usr)
        files.append({"path": sender_unit_file, "state": "absent"})
        if not present:
            files.append({"path": sender_program, "state": "absent"})
    # /run/overlay-gre is the running senders' own folder
    prune = [BOOT, ETC] + ([] if sending or held_senders else ["/run/overlay-gre"])
    return {"files": files, "units": units, "prune": prune, "sending": bool(sending)}
