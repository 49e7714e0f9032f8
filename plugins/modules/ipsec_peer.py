#!/usr/bin/python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: ipsec_peer
short_description: GRE over IPsec for one tunnel, through strongSwan's swanctl
version_added: 0.3.0
description:
  - Protects the GRE packets (IP protocol 47) between O(local) and O(remote) with ESP in transport mode, keyed by
    IKEv2 with a pre-shared key; the two peers are identified by these underlay addresses.
  - Writes one swanctl file per tunnel, C(/etc/swanctl/conf.d/overlay-gre-TUNNEL.conf) (mode C(0600), as it holds the
    key), for C(strongswan.service) to load when charon starts, and loads the same connection and secret into the
    running charon over its control socket (vici, as swanctl does), by name; the connections and secrets that other
    tools loaded stay as they are (C(swanctl --load-all) would unload them). The connection installs its policies when
    loaded and starts at once (C(start_action = trap|start)), so a reboot or a restart of charon brings the SAs back
    by itself; while no SA exists the policies hold GRE back instead of sending it in clear.
  - Reads the file and charon's loaded connections and SAs once, compares, and writes and loads only when the file
    differs or the connection is not loaded. A changed configuration also ends the current IKE SA, so that the new
    settings take effect at once.
  - With O(state=absent) removes the file, unloads the connection and its secret (by name, nothing else), and ends its
    SAs.
  - charon must run (C(strongswan.service) of Debian's C(charon-systemd)) with its vici plugin on its default socket,
    C(/var/run/charon.vici).
  - The diff shows the file with the pre-shared key replaced by C(<redacted>); the key is never returned.
author:
  - overlay.gre contributors (@overlay-gre)
options:
  tunnel:
    description: The GRE tunnel the IPsec is for; it names the file, the connection and its secret.
    type: str
    required: true
  state:
    description:
      - V(present) configures and loads; V(absent) removes the file, the connection, its secret and SAs.
      - V(established) changes nothing and waits (up to 30 seconds) until the connection's CHILD SA is installed,
        starting it when O(initiate) is true and none is up; it fails, with the SAs' states, when none is. Run it on
        both routers of a pair once both have loaded their configuration (O(state=present)).
    type: str
    choices: [present, absent, established]
    default: present
  initiate:
    description:
      - With O(state=established), start the CHILD SA while none is up (C(swanctl --initiate)), or only wait for the
        peer to start it. One router of a pair initiates, so that both do not start SAs at once.
    type: bool
    default: true
    version_added: 0.4.0
  local:
    description: This router's underlay address (IPv4), the tunnel's local end; required with O(state=present).
    type: str
  remote:
    description: The peer's underlay address (IPv4), the tunnel's remote end; required with O(state=present).
    type: str
  psk:
    description:
      - The pre-shared key, the same on both peers, at least 16 characters; required with O(state=present).
      - Stored in the file as base64 (C(0s...)), never shown.
    type: str
  ike_proposals:
    description: The IKE proposals, in strongSwan's syntax.
    type: str
    default: aes256gcm16-prfsha384-ecp384
  esp_proposals:
    description: The ESP proposals, in strongSwan's syntax.
    type: str
    default: aes256gcm16-ecp384
  rekey_time:
    description: Seconds between rekeyings of the CHILD SA (the IKE SA rekeys every four times as long).
    type: int
    default: 3600
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
  - strongSwan's charon running (C(charon-systemd)) and C(swanctl) (C(strongswan-swanctl)) on the target
seealso:
  - module: overlay.gre.tunnel_firewall
"""

EXAMPLES = r"""
- name: Encrypt the GRE between router A and router B
  overlay.gre.ipsec_peer:
    tunnel: gre-router_b
    local: 172.19.1.1
    remote: 172.19.1.2
    psk: "{{ vault_gre_psk }}"

- name: Back to plain GRE
  overlay.gre.ipsec_peer:
    tunnel: gre-router_b
    state: absent

- name: Once both routers loaded it, wait for the SAs (router_a starts them, router_b waits)
  overlay.gre.ipsec_peer:
    tunnel: gre-router_b
    state: established
    initiate: true
"""

RETURN = r"""
path:
  description: The swanctl file of the tunnel.
  returned: always
  type: str
  sample: /etc/swanctl/conf.d/overlay-gre-gre-router_b.conf
connection:
  description: The name of the swanctl connection, its CHILD SA and (with C(ike-) in front) its secret.
  returned: always
  type: str
  sample: overlay-gre-gre-router_b
loaded:
  description: Whether charon holds the connection after the run (or would, in check mode).
  returned: always
  type: bool
sas:
  description: The IKE SA's state and the CHILD SAs' states of the connection, as read after the run.
  returned: always
  type: dict
  sample: {"ike": "ESTABLISHED", "children": ["INSTALLED"]}
established:
  description: With O(state=established), whether the CHILD SA is installed.
  returned: when O(state=established)
  type: bool
  version_added: 0.4.0
replay:
  description:
    - Shell commands that load charon's configuration again at boot (once charon runs, it loads it by itself too).
  returned: always
  type: list
  elements: str
"""

import os
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.overlay.gre.plugins.module_utils import _lock, _vici
from ansible_collections.overlay.gre.plugins.module_utils._ipsec import (
    CONF_MODE, IpsecInputError, bring_up, config_text, conf_path, conn_name, established_sas, redact_text, validate,
    vici_load, vici_unload)

HEADER = "Ansible managed (overlay.gre.ipsec_peer): GRE over IPsec for tunnel %s.\nOnly root may read this file: it holds the pre-shared key."


class Swanctl(object):
    def __init__(self, module):
        self.module = module
        self.path = module.get_bin_path("swanctl")

    def run(self, *args):
        if not self.path:
            return 127, "", "swanctl: not found (is strongswan-swanctl installed?)"
        return self.module.run_command([self.path] + list(args))

    def read(self, name):
        """(charon reachable, error text, connection loaded, SA states): the loaded connections' names over vici."""
        try:
            with _vici.Session() as session:
                loaded = name in (session.request("get-conns").get("conns") or [])
        except _vici.ViciError as exc:
            return False, str(exc), False, {"ike": None, "children": []}
        rc_sas, sas_out, _err = self.run("--list-sas", "--ike", name)
        return True, "", loaded, established_sas(sas_out if rc_sas == 0 else "", name)


def read_file(path):
    """(content or None, mode or None)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(), os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise IpsecInputError("could not read %s: %s" % (path, exc.strerror or exc))


def write_file(path, content):
    """Atomically, readable by its owner only from the first byte on."""
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise IpsecInputError("%s does not exist: is strongswan-swanctl installed?" % folder)
    fd, tmp = tempfile.mkstemp(prefix=".overlay-gre-", dir=folder)
    try:
        os.fchmod(fd, CONF_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.rename(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise IpsecInputError("could not write %s: %s" % (path, exc.strerror or exc))


def load_or_unload(requests, must):
    """Send REQUESTS ([(command, message)]) to charon over vici; with MUST, each has to succeed (an unload of what
    charon does not hold answers "not found", which is what absent wants)."""
    try:
        with _vici.Session() as session:
            for command, message in requests:
                if must:
                    session.must(command, message)
                else:
                    session.request(command, message)
    except _vici.ViciError as exc:
        raise IpsecInputError(str(exc))


def established(module, swanctl):
    """state=established: wait for the CHILD SA (without the router's lock: it only reads and starts SAs)."""
    try:
        opts = validate(module.params)
    except IpsecInputError as exc:
        module.fail_json(msg=str(exc))
    name = conn_name(opts["tunnel"])

    def list_sas():
        rc, out, _err = swanctl.run("--list-sas", "--ike", name)
        return out if rc == 0 else ""

    def initiate():
        swanctl.run("--initiate", "--child", name, "--timeout", "15")

    if module.check_mode:  # reads only: whether it is up now
        sas = established_sas(list_sas(), name)
        installed = "INSTALLED" in sas["children"]
    else:
        installed, sas = bring_up(list_sas, initiate, name, module.params["initiate"], time.sleep)
    if not installed and not module.check_mode:
        module.fail_json(msg="no IPsec CHILD SA of %s after 30 s (IKE SA: %s; CHILD SAs: %s)"
                         % (name, sas["ike"] or "none", ", ".join(sas["children"]) or "none"),
                         connection=name, sas=sas, established=False)
    module.exit_json(changed=False, connection=name, sas=sas, established=installed)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            tunnel=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent", "established"], default="present"),
            initiate=dict(type="bool", default=True),
            local=dict(type="str"),
            remote=dict(type="str"),
            psk=dict(type="str", no_log=True),
            ike_proposals=dict(type="str", default="aes256gcm16-prfsha384-ecp384"),
            esp_proposals=dict(type="str", default="aes256gcm16-ecp384"),
            rekey_time=dict(type="int", default=3600, no_log=False),
            **_lock.ARGUMENT_SPEC
        ),
        required_if=[("state", "present", ("local", "remote", "psk"))],
        supports_check_mode=True,
    )
    swanctl = Swanctl(module)
    if module.params["state"] == "established":
        established(module, swanctl)
    with _lock.router_lock(module, "overlay.gre.ipsec_peer"):
        try:
            opts = validate(module.params)
            name = conn_name(opts["tunnel"])
            path = conf_path(opts["tunnel"])
            present = opts["state"] == "present"
            before, mode = read_file(path)
            wanted = config_text(opts, header=HEADER % opts["tunnel"]) if present else None
            reachable, why, loaded, sas = swanctl.read(name)
            file_changes = before != wanted or (present and mode != CONF_MODE)
            if present:
                load = file_changes or not loaded
                end_sas = before is not None and before != wanted and sas["ike"] is not None
            else:
                load = reachable and (file_changes or loaded)
                end_sas = reachable and sas["ike"] is not None
            if present and not reachable and not module.check_mode:
                raise IpsecInputError("charon does not answer (%s): start it (systemctl start strongswan.service, of the "
                                      "package charon-systemd), then run again; nothing was changed" % why)
            changed = file_changes or load or end_sas
            if changed and not module.check_mode:
                if present:
                    write_file(path, wanted)
                elif before is not None:
                    os.unlink(path)
                if load:
                    load_or_unload(vici_load(opts) if present else vici_unload(name), present)
                if end_sas:  # the old settings' SAs: trap|start and the peer bring up new ones
                    swanctl.run("--terminate", "--ike", name, "--force", "--timeout", "5")
                if reachable:
                    reachable, why, loaded, sas = swanctl.read(name)
            elif module.check_mode:
                loaded = present
        except IpsecInputError as exc:
            module.fail_json(msg=str(exc))
        except OSError as exc:
            module.fail_json(msg="%s: %s" % (path, exc.strerror or exc))
    result = dict(changed=changed, path=path, connection=name, loaded=bool(loaded), sas=sas,
                  replay=["swanctl --load-all --noprompt >/dev/null 2>&1 || "
                          "echo 'overlay.gre: charon does not run yet; strongswan.service loads %s when it starts' >&2" % path]
                  if present else [])
    if module._diff:
        result["diff"] = dict(before_header=path, after_header=path,
                              before=redact_text(before) or "", after=redact_text(wanted) or "")
        if present and mode is not None and mode != CONF_MODE:
            result["diff"]["before"] += "# mode %04o\n" % mode
            result["diff"]["after"] += "# mode %04o\n" % CONF_MODE
    module.exit_json(**result)


if __name__ == "__main__":
    main()
