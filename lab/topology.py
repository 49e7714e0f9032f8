#!/usr/bin/env python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build and tear down a lab topology of network namespaces described in YAML.

    lab/topology up   [FILE] [--prefix P]   create the namespaces, links, addresses and routes
    lab/topology down [FILE] [--prefix P]   remove every namespace FILE names (absent ones are fine)
    lab/topology show [FILE] [--prefix P]   print each host's addresses and routes

FILE defaults to lab/topologies/howto.yml. The format:

    hosts:                      # each host is one network namespace of that name (plus --prefix)
      router_a:
        interfaces:             # interface name: address (CIDR), a list of them, or null for none
          bond0: 172.19.1.1/24
        gateway: 10.10.1.1      # optional default route
        routes:                 # optional further routes: {to: CIDR, via: ADDRESS, metric: N (optional)}
          - {to: 30.0.0.0/24, via: 172.19.1.254}
        forwarding: false       # optional: net.ipv4.ip_forward inside the namespace
        etc: [sysctl.d, systemd/system]  # optional: folders of /etc this host gets its own (empty) copy of, through
                                # /etc/netns/NAME/, whose entries `ip netns exec` mounts over /etc's (folders /etc has,
                                # and overlay-gre, made when missing)
        vm: true                # lab/vm only: this host is a Debian 12 machine with systemd (a network
                                # namespace in lab/run, as here)
    links:                      # veth pairs, "host:interface" at each end
      - [router_a:bond0, router_b:bond0]
    switches:                   # optional: a bridge in a namespace of its own, joining the ports listed
      lan_a: [router_a:eth1, host_a:eth0, host_c:eth0]
"""

import argparse
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FILE = os.path.join(HERE, "topologies", "howto.yml")


# Folders of /etc that a host may get its own copy of even where /etc has none yet: made (empty) first, so that
# ip netns exec has something to mount over. overlay.gre's own, where each router keeps its boot script.
MADE_ETC = ("overlay-gre",)


class TopologyError(Exception):
    pass


def _ip(*args, netns=None, check=True):
    cmd = ["ip"] + (["-n", netns] if netns else []) + list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise TopologyError("`%s` failed: %s" % (" ".join(cmd), proc.stderr.strip()))
    return proc


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class Topology:
    """A parsed topology; namespace names are the host names with the prefix in front."""

    def __init__(self, data, prefix=""):
        if not isinstance(data, dict) or not isinstance(data.get("hosts"), dict):
            raise TopologyError("a topology needs a 'hosts' mapping")
        self.prefix = prefix
        self.hosts = data["hosts"]
        self.links = data.get("links") or []
        self.switches = data.get("switches") or {}
        self._validate()

    @classmethod
    def load(cls, path=DEFAULT_FILE, prefix=""):
        with open(path, encoding="utf-8") as handle:
            return cls(yaml.safe_load(handle), prefix=prefix)

    def ns(self, host):
        return self.prefix + host

    def namespaces(self):
        return [self.ns(h) for h in self.hosts] + [self.ns(s) for s in self.switches]

    def address(self, host, interface):
        """The first address (without prefix length) of HOST's INTERFACE."""
        addrs = _as_list(self.hosts[host]["interfaces"][interface])
        return str(ipaddress.ip_interface(addrs[0]).ip)

    def _endpoint(self, text):
        host, sep, ifname = str(text).partition(":")
        if not sep or host not in self.hosts or ifname not in (self.hosts[host].get("interfaces") or {}):
            raise TopologyError("%r is not host:interface of a host and interface the topology declares" % (text,))
        return host, ifname

    def _validate(self):
        for name in list(self.hosts) + list(self.switches):
            if len(self.ns(name)) > 64 or "/" in name:
                raise TopologyError("%r cannot be a namespace name" % name)
        for host, spec in self.hosts.items():
            for ifname, addrs in ((spec or {}).get("interfaces") or {}).items():
                if len(ifname) > 15:
                    raise TopologyError("%s: interface name %r is longer than 15 characters" % (host, ifname))
                for addr in _as_list(addrs):
                    ipaddress.ip_interface(addr)
        used = set()
        for link in self.links:
            if not isinstance(link, list) or len(link) != 2:
                raise TopologyError("each link is a list of two host:interface ends, not %r" % (link,))
            for end in link:
                used.add(self._endpoint(end))
        for switch, ports in self.switches.items():
            for port in ports:
                used.add(self._endpoint(port))

    def up(self):
        """Create everything; on any failure remove what was made and raise."""
        try:
            self._up()
        except BaseException:
            self.down()
            raise

    def _up(self):
        for ns in self.namespaces():
            if os.path.exists(os.path.join("/run/netns", ns)):
                raise TopologyError("network namespace %s already exists; run `lab/topology down` first" % ns)
            _ip("netns", "add", ns)
            _ip("link", "set", "lo", "up", netns=ns)
            # No IPv6 duplicate address detection: link-local addresses are final at once, so the namespaces'
            # state is stable as soon as `up` returns (tests compare it before and after a change).
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
                            "net.ipv6.conf.default.accept_dad=0"], check=True)
        for index, (left, right) in enumerate(self.links):
            lhost, lif = self._endpoint(left)
            rhost, rif = self._endpoint(right)
            tmp = "labv%d" % index
            _ip("link", "add", tmp + "a", "netns", self.ns(lhost), "type", "veth", "peer", tmp + "b", "netns", self.ns(rhost))
            _ip("link", "set", tmp + "a", "name", lif, netns=self.ns(lhost))
            _ip("link", "set", tmp + "b", "name", rif, netns=self.ns(rhost))
        for switch, ports in self.switches.items():
            sns = self.ns(switch)
            _ip("link", "add", "br0", "type", "bridge", netns=sns)
            _ip("link", "set", "br0", "up", netns=sns)
            for index, port in enumerate(ports):
                host, ifname = self._endpoint(port)
                tmp = "labp%d" % index
                _ip("link", "add", tmp, "netns", sns, "type", "veth", "peer", ifname, "netns", self.ns(host))
                _ip("link", "set", tmp, "master", "br0", "up", netns=sns)
        for host, spec in self.hosts.items():
            ns = self.ns(host)
            for entry in spec.get("etc") or []:
                top = entry.split("/")[0]  # ip netns exec mounts /etc/netns/NAME/TOP over /etc/TOP
                if top in MADE_ETC:
                    os.makedirs(os.path.join("/etc", top), exist_ok=True)
                if not os.path.isdir(os.path.join("/etc", top)):
                    raise TopologyError("%s: etc: /etc/%s is not a folder of /etc, so ip netns exec cannot mount over it" % (host, top))
                os.makedirs(os.path.join("/etc/netns", ns, entry), exist_ok=True)
            for ifname, addrs in (spec.get("interfaces") or {}).items():
                for addr in _as_list(addrs):
                    _ip("addr", "add", addr, "dev", ifname, netns=ns)
                _ip("link", "set", ifname, "up", netns=ns)
            if spec.get("forwarding") is not None:
                subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                                "net.ipv4.ip_forward=%d" % int(bool(spec["forwarding"]))], check=True)
            for route in spec.get("routes") or []:
                metric = ["metric", str(route["metric"])] if route.get("metric") is not None else []
                _ip("route", "add", route["to"], "via", route["via"], *metric, netns=ns)
            if spec.get("gateway"):
                _ip("route", "add", "default", "via", spec["gateway"], netns=ns)
        self._wait_for_carrier()

    def _wait_for_carrier(self, seconds=10.0):
        """Return once every interface reports carrier (the kernel settles link state in the background)."""
        deadline = time.monotonic() + seconds
        pending = []
        while time.monotonic() < deadline:
            pending = []
            for host, spec in self.hosts.items():
                links = json.loads(_ip("-j", "link", "show", netns=self.ns(host)).stdout or "[]")
                states = {link["ifname"]: link.get("operstate") for link in links}
                pending += ["%s:%s" % (host, i) for i in (spec.get("interfaces") or {}) if states.get(i) != "UP"]
            if not pending:
                return
            time.sleep(0.05)
        raise TopologyError("interfaces still without carrier after %.0f s: %s" % (seconds, ", ".join(pending)))

    def down(self):
        """Remove every namespace of the topology; those already gone are fine."""
        failed = []
        for ns in self.namespaces():
            if os.path.exists(os.path.join("/run/netns", ns)):
                if _ip("netns", "del", ns, check=False).returncode != 0:
                    failed.append(ns)
            host = ns[len(self.prefix):]
            if (self.hosts.get(host) or {}).get("etc"):
                shutil.rmtree(os.path.join("/etc/netns", ns), ignore_errors=True)
        if failed:
            raise TopologyError("could not remove network namespaces: %s" % ", ".join(failed))

    def show(self):
        out = []
        for host in self.hosts:
            out.append("== %s" % self.ns(host))
            out.append(_ip("-br", "addr", netns=self.ns(host)).stdout.rstrip())
            out.append(_ip("route", netns=self.ns(host)).stdout.rstrip())
        return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lab/topology", description=__doc__.split("\n", 1)[0])
    parser.add_argument("action", choices=["up", "down", "show"])
    parser.add_argument("file", nargs="?", default=DEFAULT_FILE)
    parser.add_argument("--prefix", default="", help="put this in front of every namespace name")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("must run as root to create network namespaces")
    try:
        topo = Topology.load(args.file, prefix=args.prefix)
        if args.action == "up":
            print("lab/topology: creating %s" % ", ".join(topo.namespaces()), file=sys.stderr)
            topo.up()
        elif args.action == "down":
            topo.down()
        else:
            print(topo.show())
    except (TopologyError, OSError, yaml.YAMLError, ValueError, subprocess.CalledProcessError) as exc:
        print("lab/topology: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
