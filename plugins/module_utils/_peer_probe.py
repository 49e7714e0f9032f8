# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note: this module_utils is private to the overlay.gre collection; its API may change at any time.

"""What the role gre_router reads on a router before it changes anything (overlay.gre.peer_probe), in one run.

The probe of each peer follows the how-to: the peer's underlay address must answer from this router's own. A peer
behind an INPUT policy of DROP does not answer ICMP echo, but its kernel answers ARP (IPv6: neighbour discovery)
whatever its firewall says: for a peer on a directly connected network a neighbour entry that becomes REACHABLE counts
as an answer too. Every peer is probed at once (threads), so a router with fifteen peers waits about as long as one
with one. Besides the probes it lists what earlier runs left: tunnels of overlay.gre.gre_tunnel, boot scripts,
keepalive configurations and the masquerading chain.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import socket
import threading
import time

GRE_TUNNEL_ALIAS = "overlay.gre.gre_tunnel"
NEIGHBOUR_WAITING = ("INCOMPLETE", "DELAY", "PROBE")
NEIGHBOUR_ANSWERED = ("REACHABLE", "STALE", "DELAY", "PROBE")
NAME_RE = re.compile(r"^[^/: \t\n]{1,15}$")


# seconds a TCP probe waits for the peer's answer (SYN-ACK or reset)
TCP_TIMEOUT = 2


class ProbeInputError(ValueError):
    pass


def validate(params):
    """The peers to probe, checked; a message names the option and the value."""
    peers = []
    for index, entry in enumerate(params.get("peers") or []):
        where = "peers[%d]" % index
        if not entry.get("name"):
            raise ProbeInputError("%s.name: is required" % where)
        tunnel = entry.get("tunnel")
        if tunnel is not None and (not NAME_RE.match(tunnel) or tunnel in (".", "..")):
            raise ProbeInputError("%s.tunnel: %r is not a valid interface name (1 to 15 characters, no '/', ':' or spaces)"
                                  % (where, tunnel))
        port = entry.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
            raise ProbeInputError("%s.port: %r is not a TCP port (1 to 65535)" % (where, port))
        peers.append(dict(entry))
    return peers


def route_device(route_line):
    """The device of `ip route get` output's first line when the peer is directly connected (no gateway), else None."""
    if " via " in route_line:
        return None
    match = re.search(r" dev (\S+)", route_line)
    return match.group(1) if match else None


def clean_route(text):
    line = (text or "").splitlines()[0] if (text or "").strip() else ""
    return re.sub(r" uid [0-9]+", "", line).rstrip()


def ping_summary(output):
    """The line of ping's output that says how it went (its statistics, or its error)."""
    lines = [line for line in (output or "").splitlines()
             if "transmitted" in line or line.startswith("ping:") or "connect:" in line or "bind:" in line]
    return lines[-1] if lines else ""


def neighbour_state(output):
    """The state (last word) of the first non-empty line of `ip neigh show to PEER dev DEV`, or ''."""
    for line in (output or "").splitlines():
        if line.strip():
            return line.split()[-1]
    return ""


def underlay_verdict(peer, rc, summary, route, dev, state):
    """The probe's verdict line: 'answered: ...' or 'no answer: ...'."""
    if rc == 0:
        return "answered: ICMP echo (%s)" % summary
    if not dev:
        return ("no answer: no ICMP echo reply (%s); %s is not on a directly connected network (%s), so ARP cannot tell"
                % (summary, peer, route))
    if state in NEIGHBOUR_ANSWERED:
        return ("answered: ARP on %s (neighbour entry %s); no ICMP echo reply (%s): a firewall (the peer's INPUT, or this "
                "router's own) drops ICMP" % (dev, state, summary))
    return ("no answer: no ICMP echo reply (%s), and no ARP answer on %s (neighbour entry %s; route: %s)"
            % (summary, dev, state or "none", route))


def _in_parallel(jobs):
    """Run each callable of JOBS in a thread of its own; returns their results in order."""
    results = [None] * len(jobs)

    def run(index, job):
        results[index] = job()
    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


class Prober(object):
    """Runs the probes through RUN (module.run_command's signature: argv -> (rc, out, err))."""

    def __init__(self, run, ip="ip", ping="ping", sysfs="/sys/class/net", etc="/etc/overlay-gre", swanctl="/etc/swanctl/conf.d"):
        self.run, self.ip, self.ping, self.sysfs, self.etc, self.swanctl = run, ip, ping, sysfs, etc, swanctl

    def tcp(self, own, peer, port):
        """The verdict of a TCP probe of PEER's PORT from OWN: a connection, or a refusal (the peer's kernel answered
        with a reset), is an answer; a timeout or an ICMP error is not."""
        family = socket.AF_INET6 if ":" in peer else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(TCP_TIMEOUT)
            if own:
                sock.bind((own, 0))
            code = sock.connect_ex((peer, port))
        except socket.timeout:
            code = errno.ETIMEDOUT
        except OSError as exc:
            code = exc.errno or errno.EIO
        finally:
            sock.close()
        if code == 0:
            return "answered: TCP port %d (connected)" % port
        if code == errno.ECONNREFUSED:
            return "answered: TCP port %d (refused: the peer's kernel answered with a reset)" % port
        if code in (errno.ETIMEDOUT, errno.EAGAIN, errno.EINPROGRESS):
            return "no answer: no TCP answer from port %d within %d s" % (port, TCP_TIMEOUT)
        return "no answer: TCP port %d: %s" % (port, os.strerror(code))

    def underlay(self, own, peer, port=None):
        """The verdict of one peer's underlay probe: TCP to PORT when given, else ICMP echo (and ARP)."""
        if port:
            return self.tcp(own, peer, port)
        rc, out, err = self.run([self.ip, "route", "get", peer, "from", own])
        route = clean_route(out or err)
        dev = route_device(route) if rc == 0 else None
        if dev:
            # forget what the neighbour cache remembers, so that the kernel asks again and the entry says whether it answers now
            self.run([self.ip, "neigh", "flush", "to", peer, "dev", dev])
        rc, out, err = self.run([self.ping, "-n", "-c", "2", "-i", "0.05", "-W", "1", "-I", own, peer])
        summary = ping_summary((out or "") + "\n" + (err or ""))
        state = ""
        if rc != 0 and dev:
            # the kernel resolves the peer while the pings go out: wait briefly for an unfinished request's outcome
            for _try in range(26):
                state = neighbour_state(self.run([self.ip, "neigh", "show", "to", peer, "dev", dev])[1])
                if state not in NEIGHBOUR_WAITING:
                    break
                time.sleep(0.2)
        return underlay_verdict(peer, rc, summary, route, dev, state)

    def underlay_mtu(self, own, peer):
        """The MTU of the device through which the kernel routes to PEER (from OWN, when given); None without a route."""
        rc, out, _err = self.run([self.ip, "route", "get", peer] + (["from", own] if own else []))
        match = re.search(r"\bdev (\S+)", out or "") if rc == 0 else None
        if not match:
            return None
        try:
            with open(os.path.join(self.sysfs, match.group(1), "mtu")) as handle:
                return int(handle.read().strip())
        except (IOError, OSError, ValueError):
            return None

    def tunnel(self, tunnel, address):
        """'answered' or 'no answer' for a ping of ADDRESS through TUNNEL; None when the tunnel does not exist."""
        if not os.path.isdir(os.path.join(self.sysfs, tunnel)):
            return None
        rc = self.run([self.ping, "-n", "-q", "-c", "3", "-i", "0.05", "-W", "1", "-I", tunnel, address])[0]
        return "answered" if rc == 0 else "no answer"

    def our_tunnels(self):
        """The tunnels that overlay.gre.gre_tunnel made (its alias), sorted."""
        names = []
        for path in glob.glob(os.path.join(self.sysfs, "*", "ifalias")):
            try:
                with open(path) as handle:
                    if handle.read().strip() == GRE_TUNNEL_ALIAS:
                        names.append(os.path.basename(os.path.dirname(path)))
            except (IOError, OSError):
                continue  # a link that went away while we read
        return sorted(names)

    def leftovers(self):
        """Boot data (boot/NAME.json, which overlay-gre-apply applies) and boot scripts (NAME.sh, from before 0.4.0) and
        keepalive configurations in /etc/overlay-gre, and the tunnels with IPsec (swanctl files)."""
        scripts = sorted(glob.glob(os.path.join(self.etc, "boot", "*.json")) + glob.glob(os.path.join(self.etc, "*.sh")))
        keepalives = sorted(os.path.basename(p)[len("keepalive-"):-len(".json")]
                            for p in glob.glob(os.path.join(self.etc, "keepalive-*.json")))
        ipsec = sorted(os.path.basename(p)[len("overlay-gre-"):-len(".conf")]
                       for p in glob.glob(os.path.join(self.swanctl, "overlay-gre-*.conf")))
        return scripts, keepalives, ipsec

    def boot_data(self):
        """{path: data} of each boot data file in /etc/overlay-gre/boot (left out when it is not valid JSON): a held
        pair keeps its entries as the last run wrote them."""
        out = {}
        for path in sorted(glob.glob(os.path.join(self.etc, "boot", "*.json"))):
            try:
                with open(path, encoding="utf-8") as handle:
                    data = json.load(handle)
            except (IOError, OSError, ValueError):
                continue
            if isinstance(data, dict):
                out[path] = data
        return out

    def probe(self, own, peers, underlay, tunnels):
        """Every probe at once; {peer name: {'underlay': verdict or None, 'tunnel': result or None}}.

        First each existing tunnel is pinged (all at once); then the underlay of each peer whose tunnel did not answer
        is probed (all at once). A tunnel that carried the ping both ways carried it over the underlay both ways: that
        peer's underlay answered, and probing it again would only cost processes (an unchanged run of a mesh of 16
        sites would start 60 per router instead of 15).
        """
        out = dict((peer["name"], {"underlay": None, "tunnel": None, "underlay_mtu": None}) for peer in peers)
        routed = [peer for peer in peers if peer.get("underlay_ip")]
        for peer, mtu in zip(routed, _in_parallel([lambda p=peer: self.underlay_mtu(own, p["underlay_ip"]) for peer in routed])):
            out[peer["name"]]["underlay_mtu"] = mtu
        pinged = [peer for peer in peers if tunnels and peer.get("tunnel") and peer.get("tunnel_peer_address")]
        for peer, result in zip(pinged, _in_parallel([lambda p=peer: self.tunnel(p["tunnel"], p["tunnel_peer_address"])
                                                      for peer in pinged])):
            out[peer["name"]]["tunnel"] = result
            if underlay and result == "answered":
                out[peer["name"]]["underlay"] = ("answered: through the tunnel %s (the peer's tunnel address %s answered, so "
                                                 "the underlay carries GRE both ways)" % (peer["tunnel"], peer["tunnel_peer_address"]))
        probed = [peer for peer in peers if underlay and own and peer.get("underlay_ip") and out[peer["name"]]["underlay"] is None]
        for peer, verdict in zip(probed, _in_parallel([lambda p=peer: self.underlay(own, p["underlay_ip"], p.get("port"))
                                                       for peer in probed])):
            out[peer["name"]]["underlay"] = verdict
        return out
