# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note: this module_utils is private to the overlay.gre collection; its API may change at any time.

"""GRE over IPsec for one tunnel: ESP in transport mode for IP protocol 47 between two underlay addresses, keyed by
IKEv2 with a pre-shared key (strongSwan's charon, configured through a swanctl file of its own per tunnel).

Everything here is pure: the pair check and the MTU (used by the pair planner on the controller), the swanctl
configuration text and its redacted form (used by the module overlay.gre.ipsec_peer), and the parsing of what
swanctl prints. Every piece is keyed by the tunnel's name, so one router can hold one such configuration per tunnel.
"""

from __future__ import annotations

import base64
import ipaddress
import re

PREFIX = "gre_router_"
CONF_DIR = "/etc/swanctl/conf.d"
CONF_MODE = 0o600
REDACTED = "<redacted>"
MIN_PSK_LENGTH = 16

DEFAULTS = {
    "ipsec": False,
    "ipsec_psk": None,
    "ipsec_ike_proposals": "aes256gcm16-prfsha384-ecp384",
    "ipsec_esp_proposals": "aes256gcm16-ecp384",
    "ipsec_rekey_time": 3600,
}

# ESP's cost in transport mode, per algorithm kind: the header (SPI and sequence number, 8 bytes), the IV, the
# integrity check value, the trailer (pad length and next header, 2 bytes) and the padding that aligns the payload
# and trailer to the cipher's block (at least 4 bytes). AES-GCM (RFC 4106): 8-byte IV, 16-byte ICV, aligned to 4.
# Anything else is costed as AES-CBC with up to HMAC-SHA-512's 32-byte ICV: 16-byte IV, aligned to 16.
ESP_HEADER = 8
ESP_TRAILER = 2
GCM = {"iv": 8, "icv": 16, "align": 4}
CBC = {"iv": 16, "icv": 32, "align": 16}
IPV4_HEADER = 20
UNDERLAY_MTU = 1500

_PROPOSAL = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


class IpsecInputError(ValueError):
    pass


def conn_name(tunnel):
    """The swanctl connection (and child) name of TUNNEL's IPsec."""
    return "overlay-gre-" + tunnel


def conf_path(tunnel, conf_dir=CONF_DIR):
    return "%s/overlay-gre-%s.conf" % (conf_dir.rstrip("/"), tunnel)


def _esp_algorithms(esp_proposals):
    """GCM when every proposal of the list encrypts with AES-GCM (16-byte ICV), else CBC (the conservative cost)."""
    proposals = [p.strip() for p in str(esp_proposals).split(",") if p.strip()]
    if proposals and all(re.match(r"^aes(128|192|256)?gcm(16|128)?(-|$)", p) for p in proposals):
        return GCM
    return CBC


def esp_overhead(payload, esp_proposals):
    """The bytes ESP adds in transport mode to an IP payload of PAYLOAD bytes (header, IV, padding, trailer, ICV)."""
    algo = _esp_algorithms(esp_proposals)
    padded = -(-(payload + ESP_TRAILER) // algo["align"]) * algo["align"]
    return ESP_HEADER + algo["iv"] + padded - payload + algo["icv"]


def tunnel_mtu(esp_proposals, gre_key=None, underlay_mtu=UNDERLAY_MTU):
    """The largest inner packet a GRE tunnel over IPv4 carries, ESP transport included, in one underlay packet.

    The GRE header is 4 bytes, 8 with a key; the outer IPv4 header 20. The answer is the largest MTU whose encrypted
    packet still fits, so no packet of the tunnel ever needs fragmenting or an ICMP "fragmentation needed".
    """
    gre = 4 + (4 if gre_key is not None else 0)
    mtu = underlay_mtu - IPV4_HEADER - gre
    while mtu > 0 and IPV4_HEADER + gre + mtu + esp_overhead(gre + mtu, esp_proposals) > underlay_mtu:
        mtu -= 1
    return mtu


def _truthy(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _get(side_vars, key):
    value = (side_vars or {}).get(PREFIX + key)
    return DEFAULTS[key] if value is None else value


def check_proposals(option, value):
    """A comma-separated list of strongSwan proposals (letters, digits and '-' per proposal); returns it normalised."""
    text = str(value).strip() if value is not None else ""
    proposals = [p.strip() for p in text.split(",")]
    if not text or not all(_PROPOSAL.match(p) for p in proposals):
        raise IpsecInputError("%s: %r is not a list of strongSwan proposals (such as aes256gcm16-prfsha384-ecp384, "
                              "several separated by commas)" % (option, value))
    return ",".join(proposals)


def check_rekey_time(option, value):
    if isinstance(value, bool):
        raise IpsecInputError("%s: %r is not a number of seconds" % (option, value))
    try:
        seconds = int(str(value), 10)
    except ValueError:
        raise IpsecInputError("%s: %r is not a number of seconds" % (option, value))
    if not 10 <= seconds <= 86400:
        raise IpsecInputError("%s: %r is out of range (10 to 86400 seconds)" % (option, value))
    return seconds


def pair_settings(me_name, me_vars, peer_name, peer_vars, underlay_version, gre_key, mtu):
    """Check both routers' IPsec variables; return (errors, settings), settings None when IPsec is off.

    Each error names a host and a variable. The pre-shared keys are compared, never shown: a message says that they
    differ, or that one is missing or short, and nothing of their content.
    """
    errors = []

    def err(host, var, text):
        errors.append("%s: %s%s %s" % (host, PREFIX, var, text))

    mine, theirs = _truthy(_get(me_vars, "ipsec")), _truthy(_get(peer_vars, "ipsec"))
    if mine != theirs:
        err(me_name, "ipsec", "is %s on %s but %s on its peer %s: both ends of a tunnel must agree"
            % (mine, me_name, theirs, peer_name))
    if not mine:
        return errors, None
    for host, side in ((me_name, me_vars), (peer_name, peer_vars)):
        psk = _get(side, "ipsec_psk")
        if psk is None or str(psk) == "":
            err(host, "ipsec_psk", "is not set, but gre_router_ipsec is on: give both routers of the pair the same "
                "pre-shared key (from Ansible Vault)")
        elif len(str(psk)) < MIN_PSK_LENGTH:
            err(host, "ipsec_psk", "is shorter than %d characters (its value is not shown): use a long random key"
                % MIN_PSK_LENGTH)
    psk_mine, psk_theirs = _get(me_vars, "ipsec_psk"), _get(peer_vars, "ipsec_psk")
    if psk_mine and psk_theirs and str(psk_mine) != str(psk_theirs):
        err(me_name, "ipsec_psk", "differs between %s and %s (the keys are not shown): both routers of a pair must hold "
            "the same pre-shared key" % (me_name, peer_name))
    settings = {"conn": None}
    for key, check in (("ipsec_ike_proposals", check_proposals), ("ipsec_esp_proposals", check_proposals),
                       ("ipsec_rekey_time", check_rekey_time)):
        values = {}
        for host, side in ((me_name, me_vars), (peer_name, peer_vars)):
            try:
                values[host] = check(PREFIX + key, _get(side, key))
            except IpsecInputError as exc:
                errors.append("%s: %s" % (host, exc))
        if len(values) == 2 and values[me_name] != values[peer_name]:
            err(me_name, key, "is %r on %s but %r on its peer %s: both ends of a tunnel must agree"
                % (values[me_name], me_name, values[peer_name], peer_name))
        settings[key[len("ipsec_"):]] = values.get(me_name)
    if underlay_version != 4:
        err(me_name, "ipsec", "is on, but GRE over IPsec is made for IPv4 underlay addresses only")
    if errors:
        return errors, None
    if mtu is None:
        settings["mtu"] = tunnel_mtu(settings["esp_proposals"], gre_key)
    else:
        settings["mtu"] = None  # the inventory's own gre_router_mtu stands
    del settings["conn"]
    return errors, settings


# --- the swanctl file ---------------------------------------------------------------------------------------------

def validate(params):
    """The module's options, checked and normalised, before anything is read."""
    tunnel = params.get("tunnel")
    if not tunnel or not _NAME.match(str(tunnel)):
        raise IpsecInputError("tunnel: %r is not a valid interface name (1 to 15 letters, digits, '-', '_' or '.')" % (tunnel,))
    out = {"tunnel": str(tunnel), "state": params.get("state") or "present"}
    conf_dir = params.get("conf_dir") or CONF_DIR
    if not str(conf_dir).startswith("/"):
        raise IpsecInputError("conf_dir: %r is not an absolute path" % (conf_dir,))
    out["conf_dir"] = str(conf_dir)
    if out["state"] in ("absent", "established"):
        return out
    for option in ("local", "remote"):
        value = params.get(option)
        try:
            address = ipaddress.ip_address(str(value))
        except ValueError:
            raise IpsecInputError("%s: %r is not an IP address" % (option, value))
        if address.version != 4:
            raise IpsecInputError("%s: %r is IPv6; GRE over IPsec is made for IPv4 underlay addresses" % (option, value))
        out[option] = str(address)
    if out["local"] == out["remote"]:
        raise IpsecInputError("remote: %r is the local address too; the two ends need different addresses" % (out["remote"],))
    psk = params.get("psk")
    if psk is None or str(psk) == "":
        raise IpsecInputError("psk: is required with state=present (its value is never shown)")
    if len(str(psk)) < MIN_PSK_LENGTH:
        raise IpsecInputError("psk: is shorter than %d characters (its value is not shown)" % MIN_PSK_LENGTH)
    out["psk"] = str(psk)
    out["ike_proposals"] = check_proposals("ike_proposals", params.get("ike_proposals"))
    out["esp_proposals"] = check_proposals("esp_proposals", params.get("esp_proposals"))
    out["rekey_time"] = check_rekey_time("rekey_time", params.get("rekey_time"))
    return out


# keys whose values swanctl sends to charon as lists (comma-separated in the file)
LIST_KEYS = ("local_addrs", "remote_addrs", "proposals", "local_ts", "remote_ts", "esp_proposals")


def connection(opts):
    """The connection of one tunnel as swanctl.conf's section holds it (in order; sections as dicts): IKEv2, PSK, peers
    by underlay address, ESP transport for GRE between the two addresses, trapped and started at load.

    Started at load, so a restarted charon brings its SAs back by itself; trapped, so GRE that finds no SA starts the
    negotiation. No close or DPD action: with one of trap, an SA that the peer closed while this router was unloading
    the connection trapped it again, and its policies stayed (seen in the lab's ipsec scenario)."""
    name = conn_name(opts["tunnel"])
    local, remote = opts["local"], opts["remote"]
    rekey = opts["rekey_time"]
    return {
        "version": "2",
        "local_addrs": local,
        "remote_addrs": remote,
        "proposals": opts["ike_proposals"],
        "rekey_time": "%ds" % (rekey * 4),
        "dpd_delay": "10s",
        "local": {"auth": "psk", "id": local},
        "remote": {"auth": "psk", "id": remote},
        "children": {name: {
            "mode": "transport",
            "local_ts": "%s/32[gre]" % local,
            "remote_ts": "%s/32[gre]" % remote,
            "esp_proposals": opts["esp_proposals"],
            "rekey_time": "%ds" % rekey,
            # trapped while loaded (a closed SA is made again by the next GRE packet), started at load; no close or
            # DPD action of its own: those would trap again a connection that was just unloaded
            "start_action": "trap|start",
        }},
    }


def secret_id(name):
    """The name of the secret of connection NAME: its section in the file, its id in charon."""
    return "ike-" + name


def _section_lines(section, depth):
    lines = []
    for key, value in section.items():
        if isinstance(value, dict):
            lines += ["    " * depth + "%s {" % key] + _section_lines(value, depth + 1) + ["    " * depth + "}"]
        else:
            lines.append("    " * depth + "%s = %s" % (key, value))
    return lines


def config_text(opts, header="", redact=False):
    """The swanctl file of one tunnel: its connection (connection()) and its secret, as base64 ('0s'), or REDACTED."""
    name = conn_name(opts["tunnel"])
    secret = REDACTED if redact else "0s" + base64.b64encode(opts["psk"].encode("utf-8")).decode("ascii")
    tree = {"connections": {name: connection(opts)},
            "secrets": {secret_id(name): {"id-local": opts["local"], "id-remote": opts["remote"], "secret": secret}}}
    lines = ["# " + line for line in header.splitlines()] if header else []
    return "\n".join(lines + _section_lines(tree, 0)) + "\n"


def _vici_section(section):
    out = {}
    for key, value in section.items():
        if isinstance(value, dict):
            out[key] = _vici_section(value)
        elif key in LIST_KEYS:
            out[key] = [item.strip() for item in value.split(",") if item.strip()]
        else:
            out[key] = value
    return out


def vici_load(opts):
    """[(command, message)] that load the tunnel's connection and its secret into charon over vici, as swanctl does
    for the file's sections (the secret's id is its section's name, so that it can be unloaded alone)."""
    name = conn_name(opts["tunnel"])
    return [("load-conn", {name: _vici_section(connection(opts))}),
            ("load-shared", {"id": secret_id(name), "type": "ike", "data": opts["psk"].encode("utf-8"),
                             "owners": [opts["local"], opts["remote"]]})]


def vici_unload(name):
    """[(command, message)] that unload connection NAME and its secret (nothing else charon holds)."""
    return [("unload-conn", {"name": name}), ("unload-shared", {"id": secret_id(name)})]


def redact_text(text):
    """TEXT (a swanctl file as read) with every secret's value replaced by REDACTED."""
    if text is None:
        return None
    return re.sub(r"(?m)^(\s*secret\s*=\s*).*$", lambda m: m.group(1) + REDACTED, text)


# --- what swanctl prints --------------------------------------------------------------------------------------

def established_sas(list_sas_output, name):
    """{'ike': 'ESTABLISHED'|state|None, 'children': [child states]} of NAME in `swanctl --list-sas` output."""
    state = {"ike": None, "children": []}
    current = None
    for line in list_sas_output.splitlines():
        top = re.match(r"^([^\s:]+): #\d+, (\w+)", line)
        if top:
            current = top.group(1)
            if current == name and state["ike"] != "ESTABLISHED":
                state["ike"] = top.group(2)
            continue
        child = re.match(r"^\s+([^\s:]+): #\d+, reqid \d+, (\w+)", line)
        if child and current == name and child.group(1) == name:
            state["children"].append(child.group(2))
    return state


def bring_up(list_sas, initiate, name, should_initiate, sleep, tries=60, interval=0.5, every=20):
    """Wait until NAME's CHILD SA is INSTALLED; (installed, SA states) once it is or after TRIES polls INTERVAL apart.

    LIST_SAS() returns `swanctl --list-sas --ike NAME`'s output (or "" when it failed); INITIATE() starts the CHILD SA.
    Both routers of a pair load their configuration in the same task, and each tries its SAs at load; whichever loaded
    first met a peer without it. So the router that SHOULD_INITIATE does, at the first poll and every EVERY polls
    after, while no SA is up; the other waits for it.
    """
    sas = {"ike": None, "children": []}
    for attempt in range(tries + 1):
        sas = established_sas(list_sas(), name)
        if "INSTALLED" in sas["children"]:
            return True, sas
        if attempt == tries:
            break
        if should_initiate and attempt % every == 0:
            initiate()
        sleep(interval)
    return False, sas


# strongSwan's other daemon: its ipsec.service (starter and its own charon, ipsec.conf) would compete with
# charon-systemd's for IKE's UDP ports 500 and 4500 and for the kernel's SAs and policies
CONFLICTING_PACKAGES = ("strongswan-starter",)


def packages_state(read, wanted, conflicting=CONFLICTING_PACKAGES):
    """What a router's dpkg says about strongSwan: {"missing": [packages of WANTED to install], "problem": why the
    role cannot go on, or ""}.

    READ: the registered result of `dpkg-query -W -f '${Package} ${db:Status-Status}\n' WANTED... CONFLICTING...`
    (rc 1 when some package is unknown, which it then leaves out; no dpkg at all fails the command)."""
    read = read or {}
    if read.get("skipped") or not read:
        return {"missing": [], "problem": ""}
    installed = set()
    for line in (read.get("stdout") or "").splitlines():
        words = line.split()
        if len(words) == 2 and words[1] == "installed":
            installed.add(words[0])
    if read.get("rc") not in (0, 1) or ("stdout" not in read and read.get("failed")):
        return {"missing": list(wanted), "problem": (
            "gre_router_ipsec needs strongSwan (%s), which the role installs with apt, but this router has no dpkg (not "
            "Debian or Ubuntu). Install strongSwan's charon-systemd with swanctl and its standard plugins (gcm, openssl) "
            "by hand, run it as a service, then run again. Nothing was changed." % ", ".join(wanted))}
    conflicts = [name for name in conflicting if name in installed]
    if conflicts:
        return {"missing": [], "problem": (
            "gre_router_ipsec runs strongSwan's charon-systemd (strongswan.service), but %s is installed: its "
            "ipsec.service runs another charon, which competes for IKE's UDP ports 500 and 4500 and for the kernel's "
            "SAs. Move its connections to swanctl and remove it (apt purge %s), or turn gre_router_ipsec off, then run "
            "again. Nothing was changed." % (", ".join(conflicts), " ".join(conflicts)))}
    return {"missing": [name for name in wanted if name not in installed], "problem": ""}
