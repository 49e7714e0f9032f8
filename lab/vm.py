# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The real-router lab: every router of a topology a Debian 12 machine with systemd, reached over SSH.

    lab/vm up TOPOLOGY [--lab NAME] [--inventory DIR] [--mem SIZE]
    lab/vm ssh NAME [--lab NAME] -- COMMAND [ARG...]
    lab/vm wire NAME IFNAME up|down [--lab NAME]
    lab/vm down [--lab NAME]
    lab/vm list

Each host of the topology (lab/topologies/*.yml) that says `vm: true` is a User-Mode Linux kernel (lab/kernel) booting
Debian 12 with systemd as PID 1 from the lab's disk image (lab/image), through a copy-on-write file of its own. The
other hosts (LAN hosts that only send and answer traffic) are network namespaces. All of it lives in network
namespaces made for the lab (ogre-NAME, and ogre-NAME-HOST for the light hosts), never in the machine's own:

- a bridge per link and per switch of the topology; each machine's interface is a veth pair, whose inner end UML
  opens (vector driver, raw transport) and whose outer end is a port of the link's bridge;
- a management network 10.99.K.0/24 (K chosen per lab, so that two labs never share an address): each machine's
  interface mgmt0, the controller's end 10.99.K.254 in ogre-NAME, where the lab's apt repository is served
  (http://10.99.K.254/, the machines' only apt source);
- each machine gets, at its first boot, its own SSH host key, the lab's SSH key for root, its interface names
  (systemd .link files, by MAC address) and addresses (systemd-networkd .network files) from a seed disk that
  lab-seed.service unpacks (lab/image.d).

`up` writes, in the lab's folder (tests/output/vm/NAME): ssh_config (ssh -F it: the ProxyCommand enters the lab's
namespace, host keys are checked against known_hosts), an Ansible inventory that uses the real ssh connection for the
machines (and overlay.gre.netns for the light hosts), and lab.json for the checks (Lab.find, Lab.run: lab/vm.py).
`wire` cuts or mends a link outside the machine (its bridge port), as a failed cable or provider would.
`down` saves each machine's journal (every boot), `systemctl --failed` and console to evidence/, powers the machines
off with `systemctl poweroff` and removes the namespaces.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fcntl
import io
import ipaddress
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STATE_ROOT = os.environ.get("LAB_VM_STATE", os.path.join(ROOT, "tests", "output", "vm"))
# Sockets (UML's mconsole, ssh's control masters) need short paths; /run is the host's tmpfs.
RUN_ROOT = "/run/overlay-gre-vm"
MGMT_PREFIX = "10.99"
NS_PREFIX = "ogre-"
BOOT_TIMEOUT = 300  # seconds for every machine to come up; only reached when something is broken

sys.path.insert(0, HERE)


class LabError(Exception):
    pass


def say(text):
    print("==> lab/vm: %s" % text, file=sys.stderr, flush=True)


def _run(argv, check=True, **kwargs):
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if check and proc.returncode != 0:
        raise LabError("`%s` failed: %s" % (shlex.join(argv), (proc.stderr or proc.stdout).strip()))
    return proc


def _ip(*args, ns=None, check=True):
    return _run(["ip"] + (["-n", ns] if ns else []) + list(args), check=check)


def _netns_exists(name):
    return os.path.exists(os.path.join("/run/netns", name))


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours is gone for every purpose here
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _interfaces(spec):
    return list(((spec or {}).get("interfaces") or {}).items())


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class Lab:
    """A lab by name: its folder, its namespaces and, once up, what lab.json says of its machines."""

    def __init__(self, name):
        if not name or not all(c.isalnum() or c in "-_" for c in name) or len(name) > 40:
            raise LabError("a lab's name is letters, digits, '-' and '_' (at most 40): %r" % (name,))
        self.name = name
        self.state = os.path.join(STATE_ROOT, name)
        self.runtime = os.path.join(RUN_ROOT, name)
        self.ns = NS_PREFIX + name
        self.data = {}
        path = os.path.join(self.state, "lab.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                self.data = json.load(handle)

    # ---- what the tests use ------------------------------------------------------------------------------------

    @classmethod
    def find(cls, name=None):
        """The lab NAME, or the one lab that is up when no name is given."""
        if name:
            lab = cls(name)
        else:
            up = [entry for entry in sorted(os.listdir(STATE_ROOT)) if _netns_exists(NS_PREFIX + entry)] \
                if os.path.isdir(STATE_ROOT) else []
            if len(up) != 1:
                raise LabError("name the lab with --lab (labs up: %s)" % (", ".join(up) or "none"))
            lab = cls(up[0])
        if not lab.data or not _netns_exists(lab.ns):
            raise LabError("lab %s is not up: lab/vm up TOPOLOGY --lab %s" % (lab.name, lab.name))
        return lab

    @property
    def machines(self):
        return self.data.get("machines", {})

    def machine(self, name):
        if name not in self.machines:
            raise LabError("lab %s has no machine %s (it has: %s)" % (self.name, name, ", ".join(self.machines)))
        return self.machines[name]

    def is_vm(self, name):
        return self.machine(name)["kind"] == "vm"

    def command(self, name, argv):
        """The host's command line that runs ARGV on machine NAME."""
        machine = self.machine(name)
        if machine["kind"] == "vm":
            return ["ssh", "-F", self.ssh_config, name, shlex.join(argv)]
        return ["ip", "netns", "exec", machine["netns"]] + list(argv)

    def run(self, name, argv, check=False, input=None, timeout=None):
        # never the caller's stdin: ssh sets its stdin non-blocking and may leave it so (Ansible then refuses to run)
        stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
        proc = subprocess.run(self.command(name, argv), capture_output=True, text=True, check=False, timeout=timeout,
                              **stdin)
        if check and proc.returncode != 0:
            raise LabError("on %s, `%s` failed (exit %d): %s" % (name, shlex.join(argv), proc.returncode,
                                                                 (proc.stderr or proc.stdout).strip()))
        return proc

    def popen(self, name, argv, **kwargs):
        return subprocess.Popen(self.command(name, argv), **kwargs)

    def in_lab_ns(self, argv):
        """ARGV run in the lab's own namespace, where the links' bridges and ports are (captures, cuts)."""
        return ["ip", "netns", "exec", self.ns] + list(argv)

    def port(self, name, ifname):
        """The outer end of NAME's interface IFNAME in the lab's namespace: a bridge port that carries only its traffic."""
        interfaces = self.machine(name)["interfaces"]
        if ifname not in interfaces:
            raise LabError("%s has no interface %s (it has: %s)" % (name, ifname, ", ".join(interfaces)))
        return interfaces[ifname]["port"]

    def segment(self, name, ifname):
        """The bridge of the link or switch that NAME's IFNAME is on."""
        self.port(name, ifname)
        return self.machine(name)["interfaces"][ifname]["segment"]

    def set_wire(self, name, ifname, state):
        """Cut (down) or mend (up) the wire of NAME's IFNAME: its port on the lab's bridge; the machine itself sees no
        change (its interface stays up), as when a cable or a provider's link fails."""
        _ip("link", "set", self.port(name, ifname), state, ns=self.ns)

    @property
    def ssh_config(self):
        return os.path.join(self.state, "ssh_config")

    # ---- up ----------------------------------------------------------------------------------------------------

    def up(self, topology_file, inventory=None, mem="256M"):
        import topology  # lab/topology.py: the format and its validation

        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, veth, the UML kernels): sudo lab/vm ...")
        for tool in ("ip", "ssh", "ssh-keygen", "nc"):
            if shutil.which(tool) is None:
                raise LabError("'%s' is missing: apt-get install iproute2 openssh-client netcat-openbsd "
                               "(scripts/bootstrap does)" % tool)
        if _netns_exists(self.ns):
            raise LabError("lab %s is up already (namespace %s): lab/vm down --lab %s first" % (self.name, self.ns, self.name))
        topo = topology.Topology.load(topology_file)
        vms = [host for host, spec in topo.hosts.items() if (spec or {}).get("vm")]
        if not vms:
            raise LabError("%s has no host with `vm: true`: nothing to boot" % topology_file)
        started = time.monotonic()
        kernel, image = (self._cached(tool) for tool in ("kernel", "image"))
        shutil.rmtree(self.state, ignore_errors=True)
        os.makedirs(self.state)
        self.data = {"name": self.name, "ns": self.ns, "topology": os.path.abspath(topology_file), "kernel": kernel,
                     "image": image, "machines": {}}
        try:
            self._up(topo, vms, kernel, image, mem)
            self._wait_for_boot(vms, started)
            if inventory:
                self.write_inventory(inventory)
        except BaseException:
            say("bringing lab %s up failed; collecting evidence and stopping it" % self.name)
            self.down()
            raise
        return self

    @staticmethod
    def _cached(tool):
        """The path lab/kernel or lab/image prints: built the first time (their progress goes to stderr, shown)."""
        proc = subprocess.run([os.path.join(HERE, tool), "--path"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              text=True, check=False)
        if proc.returncode != 0:
            raise LabError("lab/%s failed (its messages are above)" % tool)
        return proc.stdout.strip()

    def _allocate_mgmt(self):
        """A /24 of 10.99/16 no lab that is up uses, the one after the last handed out (not reused at once)."""
        os.makedirs(RUN_ROOT, exist_ok=True)
        with open(os.path.join(RUN_ROOT, ".lock"), "a+", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = set()
            for entry in os.listdir(RUN_ROOT):
                path = os.path.join(RUN_ROOT, entry, "mgmt")
                if entry != self.name and _netns_exists(NS_PREFIX + entry) and os.path.exists(path):
                    with open(path, encoding="utf-8") as handle:
                        used.add(int(handle.read()))
            last_path = os.path.join(RUN_ROOT, ".last-mgmt")
            last = int(open(last_path, encoding="utf-8").read()) if os.path.exists(last_path) else 0
            for step in range(1, 251):
                index = (last + step) % 250
                if index not in used:
                    break
            else:
                raise LabError("every management network 10.99.0-249.0/24 is taken by a lab that is up")
            os.makedirs(self.runtime, exist_ok=True)
            for path in (os.path.join(self.runtime, "mgmt"), last_path):
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(str(index))
            return index

    def _up(self, topo, vms, kernel, image, mem):
        index = self._allocate_mgmt()
        mgmt = ipaddress.ip_network("%s.%d.0/24" % (MGMT_PREFIX, index))
        controller = str(mgmt.network_address + 254)
        self.data.update(mgmt=str(mgmt), controller=controller)
        os.makedirs(os.path.join(self.runtime, "uml"), exist_ok=True)
        _run(["ip", "netns", "add", self.ns])
        _ip("link", "set", "lo", "up", ns=self.ns)
        # The lab's namespace only switches frames (and holds the controller's end of the management network): no
        # IPv6 of its own there, no forwarding.
        _run(self.in_lab_ns(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]))
        _ip("link", "add", "mgmt", "type", "bridge", ns=self.ns)
        _ip("addr", "add", "%s/24" % controller, "dev", "mgmt", ns=self.ns)
        _ip("link", "set", "mgmt", "up", ns=self.ns)
        segments = {}
        for number, (left, right) in enumerate(topo.links):
            for end in (left, right):
                segments[end] = "l%d" % number
        for number, (switch, ports) in enumerate(topo.switches.items()):
            for end in ports:
                segments[end] = "s%d" % number
        for bridge in sorted(set(segments.values())):
            _ip("link", "add", bridge, "type", "bridge", ns=self.ns)
            _ip("link", "set", bridge, "up", ns=self.ns)
        self.data["segments"] = {bridge: sorted(end for end, b in segments.items() if b == bridge)
                                 for bridge in sorted(set(segments.values()))}
        self._make_key()
        known_hosts = []
        for number, host in enumerate(topo.hosts):
            spec = topo.hosts[host] or {}
            if host in vms:
                machine = self._make_vm(host, number, spec, segments, mgmt)
                known_hosts.append("%s %s" % (machine["address"], machine["host_key"]))
            else:
                machine = self._make_light_host(host, number, spec, segments)
            self.data["machines"][host] = machine
        with open(os.path.join(self.state, "known_hosts"), "w", encoding="utf-8") as handle:
            handle.write("\n".join(known_hosts) + "\n")
        self._write_ssh_config()
        self._start_repository(image)
        self._save()
        for host in vms:
            self._start_vm(host, kernel, image, mem)
        self._save()

    def _save(self):
        tmp = os.path.join(self.state, "lab.json.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.data, handle, indent=1, sort_keys=True)
        os.replace(tmp, os.path.join(self.state, "lab.json"))

    def _make_key(self):
        key = os.path.join(self.state, "id_ed25519")
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "overlay-gre-lab-%s" % self.name, "-f", key])

    def _veth(self, outer, inner, bridge):
        """A veth pair in the lab's namespace: INNER for UML or a light host, OUTER a port of BRIDGE."""
        _ip("link", "add", outer, "type", "veth", "peer", inner, ns=self.ns)
        _ip("link", "set", outer, "master", bridge, "up", ns=self.ns)

    def _make_vm(self, host, number, spec, segments, mgmt):
        folder = os.path.join(self.state, host)
        os.makedirs(folder)
        interfaces = {}
        # vec0 is the management interface; the topology's interfaces follow in its order
        names = ["mgmt0"] + [pair[0] for pair in _interfaces(spec)]
        for position, ifname in enumerate(names):
            inner, outer = "v%di%d" % (number, position), "v%di%db" % (number, position)
            bridge = "mgmt" if ifname == "mgmt0" else segments.get("%s:%s" % (host, ifname))
            if bridge is None:
                raise LabError("%s:%s is on no link or switch of the topology" % (host, ifname))
            self._veth(outer, inner, bridge)
            _ip("link", "set", inner, "up", ns=self.ns)
            # locally administered; the lab's management /24 in the second byte keeps two labs' MACs apart
            mac = "02:%02x:%02x:00:%02x:%02x" % (int(mgmt.network_address.packed[2]), 0x10, number, position)
            interfaces[ifname] = {"vec": position, "inner": inner, "port": outer, "segment": bridge, "mac": mac,
                                  "addresses": _as_list((spec.get("interfaces") or {}).get(ifname))}
        address = str(mgmt.network_address + 1 + number)
        interfaces["mgmt0"]["addresses"] = ["%s/24" % address]
        hostname = host.replace("_", "-")
        key = os.path.join(folder, "ssh_host_ed25519_key")
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@%s" % hostname, "-f", key])
        with open(key + ".pub", encoding="utf-8") as handle:
            host_key = " ".join(handle.read().split()[:2])
        self._write_seed(folder, host, hostname, spec, interfaces, key)
        return {"kind": "vm", "address": address, "hostname": hostname, "interfaces": interfaces, "host_key": host_key,
                "folder": folder}

    def _write_seed(self, folder, host, hostname, spec, interfaces, key):
        """The machine's seed: a tar archive that lab-seed.service unpacks onto / at the first boot."""
        files = {
            "etc/hostname": (hostname + "\n", 0o644),
            "etc/hosts": ("127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
                          % hostname, 0o644),
            "etc/apt/sources.list": ("# the lab's package repository (lab/image), served by lab/vm on the management "
                                     "network\ndeb [trusted=yes] http://%s/ ./\n" % self.data["controller"], 0o644),
            "root/.ssh/authorized_keys": (open(os.path.join(self.state, "id_ed25519.pub"), encoding="utf-8").read(), 0o600),
            "etc/ssh/ssh_host_ed25519_key": (open(key, encoding="utf-8").read(), 0o600),
            "etc/ssh/ssh_host_ed25519_key.pub": (open(key + ".pub", encoding="utf-8").read(), 0o644),
        }
        for ifname, interface in interfaces.items():
            files["etc/systemd/network/10-lab-%s.link" % ifname] = (
                "# lab/vm: the name of the interface with this MAC address\n[Match]\nMACAddress=%s\n\n[Link]\nName=%s\n"
                % (interface["mac"], ifname), 0o644)
            lines = ["# lab/vm: this interface's addresses (the topology's)", "[Match]", "Name=%s" % ifname, "",
                     "[Network]"]
            lines += ["Address=%s" % address for address in interface["addresses"]]
            if ifname == "mgmt0":
                lines += ["IPv6AcceptRA=no", "LinkLocalAddressing=no"]
            files["etc/systemd/network/20-lab-%s.network" % ifname] = ("\n".join(lines) + "\n", 0o644)
        # the default route and further routes go with the interface whose network holds their gateway
        routes = [{"to": "default", "via": spec["gateway"]}] if spec.get("gateway") else []
        routes += list(spec.get("routes") or [])
        for route in routes:
            via = ipaddress.ip_address(route["via"])
            for ifname, interface in interfaces.items():
                if any(via in ipaddress.ip_interface(a).network for a in interface["addresses"]):
                    name = "etc/systemd/network/20-lab-%s.network" % ifname
                    text, mode = files[name]
                    text += "\n[Route]\nDestination=%s\nGateway=%s\n" % (
                        "0.0.0.0/0" if route["to"] == "default" else route["to"], route["via"])
                    if route.get("metric") is not None:
                        text += "Metric=%d\n" % route["metric"]
                    files[name] = (text, mode)
                    break
            else:
                raise LabError("%s: no interface is on the network of the route's gateway %s" % (host, route["via"]))
        with tarfile.open(os.path.join(folder, "seed.tar"), "w", format=tarfile.GNU_FORMAT) as tar:
            directory = tarfile.TarInfo("root/.ssh")
            directory.type, directory.mode = tarfile.DIRTYPE, 0o700
            tar.addfile(directory)
            for name, (text, mode) in sorted(files.items()):
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), mode, int(time.time())
                tar.addfile(info, io.BytesIO(data))

    def _make_light_host(self, host, number, spec, segments):
        """A LAN host as a network namespace of its own: what it does (send, answer, capture) needs no init system."""
        netns = "%s-%s" % (self.ns, host)
        if _netns_exists(netns):
            raise LabError("network namespace %s exists already: lab/vm down --lab %s" % (netns, self.name))
        _run(["ip", "netns", "add", netns])
        _ip("link", "set", "lo", "up", ns=netns)
        _run(["ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
              "net.ipv6.conf.default.accept_dad=0"])
        interfaces = {}
        for position, (ifname, addresses) in enumerate(_interfaces(spec)):
            inner, outer = "h%di%d" % (number, position), "h%di%db" % (number, position)
            bridge = segments.get("%s:%s" % (host, ifname))
            if bridge is None:
                raise LabError("%s:%s is on no link or switch of the topology" % (host, ifname))
            self._veth(outer, inner, bridge)
            _ip("link", "set", inner, "netns", netns, "name", ifname, ns=self.ns)
            for address in _as_list(addresses):
                _ip("addr", "add", address, "dev", ifname, ns=netns)
            _ip("link", "set", ifname, "up", ns=netns)
            interfaces[ifname] = {"port": outer, "segment": bridge, "addresses": _as_list(addresses)}
        if spec.get("forwarding") is not None:
            _run(["ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_forward=%d" % int(bool(spec["forwarding"]))])
        for route in spec.get("routes") or []:
            metric = ["metric", str(route["metric"])] if route.get("metric") is not None else []
            _ip("route", "add", route["to"], "via", route["via"], *metric, ns=netns)
        if spec.get("gateway"):
            _ip("route", "add", "default", "via", spec["gateway"], ns=netns)
        return {"kind": "netns", "netns": netns, "interfaces": interfaces}

    def _write_ssh_config(self):
        lines = [
            "# lab/vm: ssh -F %s NAME reaches machine NAME of lab %s" % (self.ssh_config, self.name),
            "Host *",
            "    User root",
            "    IdentityFile %s" % os.path.join(self.state, "id_ed25519"),
            "    IdentitiesOnly yes",
            "    UserKnownHostsFile %s" % os.path.join(self.state, "known_hosts"),
            "    StrictHostKeyChecking yes",
            "    ProxyCommand ip netns exec %s nc %%h %%p" % self.ns,
            "    ConnectTimeout 10",
            "    ServerAliveInterval 5",
            "    ServerAliveCountMax 6",
            "    ControlMaster auto",
            "    ControlPath %s/ssh-%%h" % self.runtime,
            "    ControlPersist 120",
            "    LogLevel ERROR",
        ]
        for name, machine in self.machines.items():
            if machine["kind"] == "vm":
                lines += ["Host %s %s" % (name, machine["hostname"]), "    HostName %s" % machine["address"]]
        with open(self.ssh_config, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")

    def _start_repository(self, image):
        log = open(os.path.join(self.state, "repository.log"), "ab")
        proc = subprocess.Popen(self.in_lab_ns([shutil.which("python3") or sys.executable, "-m", "http.server", "80",
                                                "--bind", self.data["controller"], "--directory",
                                                os.path.join(image, "repo")]),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        self.data["repository_pid"] = proc.pid

    def _start_vm(self, host, kernel, image, mem):
        machine = self.machines[host]
        folder = machine["folder"]
        argv = [kernel, "umid=%s" % host, "uml_dir=%s" % os.path.join(self.runtime, "uml"), "mem=%s" % mem,
                "ubd0=%s,%s" % (os.path.join(folder, "disk.cow"), os.path.join(image, "base.img")),
                "ubd1r=%s" % os.path.join(folder, "seed.tar"), "root=/dev/ubda", "rw"]
        for interface in sorted(machine["interfaces"].values(), key=lambda i: i["vec"]):
            # gro=1: without it the console floods with "Incoming GSO frames and GRO disabled" and bulk TCP stalls
            argv.append("vec%d:transport=raw,ifname=%s,mac=%s,gro=1" % (interface["vec"], interface["inner"], interface["mac"]))
        argv += ["con=null", "ssl=null", "con0=null,fd:1", "init=/lib/systemd/systemd",
                 "systemd.hostname=%s" % machine["hostname"]]
        console = open(os.path.join(folder, "console.log"), "ab")
        proc = subprocess.Popen(self.in_lab_ns(argv), stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                                start_new_session=True)
        machine["pid"] = proc.pid
        machine["started"] = time.time()

    def _wait_for_boot(self, vms, started):
        say("booting %s (Debian 12, systemd; about 8 s alone, 20-25 s for 8 at once on 2 cores)" % ", ".join(vms))
        pending = {host: None for host in vms}
        deadline = time.monotonic() + BOOT_TIMEOUT
        while pending and time.monotonic() < deadline:
            for host in list(pending):
                machine = self.machines[host]
                if not _alive(machine["pid"]):
                    raise LabError("%s's kernel stopped during boot; its console: %s\n%s" % (
                        host, os.path.join(machine["folder"], "console.log"), self._console_tail(host)))
                proc = self.run(host, ["systemctl", "is-system-running", "--wait"], timeout=BOOT_TIMEOUT)
                state = proc.stdout.strip()
                if proc.returncode == 255:  # ssh itself: not listening yet
                    pending[host] = proc.stderr.strip()
                    continue
                if state != "running":
                    failed = self.run(host, ["systemctl", "--failed", "--no-legend", "--plain"]).stdout.strip()
                    raise LabError("%s booted %s, not running; failed units: %s"
                                   % (host, state or proc.stderr.strip(), failed or "none listed"))
                machine["boot_seconds"] = round(time.time() - machine["started"], 1)
                del pending[host]
            if pending:
                time.sleep(0.5)
        if pending:
            raise LabError("no SSH from %s after %d s: %s"
                           % (", ".join(pending), BOOT_TIMEOUT, "; ".join("%s: %s" % item for item in pending.items())))
        self._save()
        say("lab %s up in %.0f s: %s" % (self.name, time.monotonic() - started, ", ".join(
            "%s %s s" % (host, self.machines[host]["boot_seconds"]) for host in vms)))

    def _console_tail(self, host, lines=30):
        path = os.path.join(self.machines[host]["folder"], "console.log")
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return ""

    def write_inventory(self, folder):
        """An Ansible inventory of the lab's machines: ssh to the VMs, overlay.gre.netns into the light hosts."""
        os.makedirs(folder, exist_ok=True)
        lines = ["---", "# Made by lab/vm up for lab %s: how Ansible reaches its machines. The VMs over SSH, with host" % self.name,
                 "# keys checked against the lab's known_hosts; the light hosts (network namespaces) through overlay.gre.netns.",
                 "all:", "  children:", "    lab_vms:", "      hosts:"]
        for name, machine in self.machines.items():
            if machine["kind"] == "vm":
                lines += ["        %s:" % name, "          ansible_host: %s" % machine["address"],
                          "          ansible_user: root",
                          "          ansible_ssh_common_args: -F %s" % self.ssh_config,
                          # Ansible's own control sockets, per lab: in ~/.ansible/cp (keyed by address, port and
                          # user) a run would attach to the dead connection of an earlier lab with the same
                          # addresses and hang with no output
                          "          ansible_control_path_dir: %s" % os.path.join(self.runtime, "cp")]
        lines += ["    lab_light_hosts:", "      vars:", "        ansible_connection: overlay.gre.netns",
                  "        ansible_python_interpreter: \"{{ ansible_playbook_python }}\"", "      hosts:"]
        light = [(name, m) for name, m in self.machines.items() if m["kind"] == "netns"]
        for name, machine in light:
            lines += ["        %s:" % name, "          ansible_host: %s" % machine["netns"]]
        if not light:
            lines[-1] = "      hosts: {}"
        with open(os.path.join(folder, "hosts.yml"), "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")

    # ---- down --------------------------------------------------------------------------------------------------

    def collect_evidence(self, host):
        """HOST's journal of every boot and its failed units, into evidence/ of the lab's folder."""
        folder = os.path.join(self.state, "evidence")
        os.makedirs(folder, exist_ok=True)
        for suffix, argv in (("journal.txt", ["journalctl", "--no-pager", "-o", "short-precise"]),
                             ("failed.txt", ["systemctl", "--failed", "--no-pager"]),
                             ("boots.txt", ["journalctl", "--list-boots", "--no-pager"])):
            try:
                proc = self.run(host, argv, timeout=60)
                text = proc.stdout + (proc.stderr if proc.returncode else "")
            except subprocess.TimeoutExpired:
                text = "(no answer within 60 s)\n"
            with open(os.path.join(folder, "%s.%s" % (host, suffix)), "w", encoding="utf-8") as handle:
                handle.write(text)

    def _kernel_of(self, host):
        """The pid of HOST's UML kernel while it runs (its command line names this lab's folder and HOST), else None."""
        pid = self.machines[host].get("pid")
        if not pid or not _alive(pid):
            return None
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                args = handle.read().split(b"\0")
        except OSError:
            return None
        marks = {("umid=%s" % host).encode(), ("uml_dir=%s" % os.path.join(self.runtime, "uml")).encode()}
        return pid if marks <= set(args) else None

    def down(self):
        """Collect the evidence, power the machines off, remove the namespaces; fine to call on a half-made lab, and
        on a lab that is not up (a pid in an old lab.json may be another process's by now: only our kernels count)."""
        running = [host for host, machine in self.machines.items() if machine["kind"] == "vm" and self._kernel_of(host)]
        if running:
            say("saving the journals of %s to %s, then powering them off"
                % (", ".join(running), os.path.join(self.state, "evidence")))

            def stop(host):
                self.collect_evidence(host)
                try:
                    self.run(host, ["systemctl", "poweroff"], timeout=30)
                except subprocess.TimeoutExpired:
                    pass

            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(stop, running))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and any(self._kernel_of(h) for h in running):
                time.sleep(0.2)
        for host in running:
            pid = self._kernel_of(host)
            if pid:
                say("%s did not power off within 60 s: killing its kernel" % host)
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        # The repository's server, and whatever else still runs in the lab's namespaces (ssh's ProxyCommand, a
        # capture), goes with them: an ssh control master left connected to a machine that is gone would hang.
        namespaces = [m["netns"] for m in self.machines.values() if m["kind"] == "netns"] + [self.ns]
        for netns in namespaces:
            if _netns_exists(netns):
                pids = _run(["ip", "netns", "pids", netns], check=False).stdout.split()
                for pid in pids:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
                _run(["ip", "netns", "del", netns], check=False)
        # namespaces of light hosts that a half-made lab.json does not list
        for entry in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
            if entry.startswith(self.ns + "-"):
                _run(["ip", "netns", "del", entry], check=False)
        for machine in self.machines.values():
            if machine["kind"] == "vm":
                for name in ("disk.cow", "seed.tar"):
                    path = os.path.join(machine["folder"], name)
                    if os.path.exists(path):
                        os.unlink(path)
        shutil.rmtree(self.runtime, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lab/vm", description=__doc__.split("\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="boot every machine of a topology")
    up.add_argument("topology")
    up.add_argument("--lab", help="the lab's name (default: the topology file's name)")
    up.add_argument("--inventory", help="write an Ansible inventory of the lab's machines into this folder (hosts.yml)")
    up.add_argument("--mem", default="256M", help="each VM's memory (default 256M)")
    ssh = sub.add_parser("ssh", help="run a command on a machine of the lab; exits with its status")
    ssh.add_argument("machine")
    ssh.add_argument("--lab")
    wire = sub.add_parser("wire", help="cut (down) or mend (up) the wire of a machine's interface, outside the machine")
    wire.add_argument("machine")
    wire.add_argument("ifname")
    wire.add_argument("state", choices=["up", "down"])
    wire.add_argument("--lab")
    down = sub.add_parser("down", help="save the journals, power every machine off, remove the namespaces")
    down.add_argument("--lab")
    sub.add_parser("list", help="the labs that are up and their machines")
    argv = list(sys.argv[1:] if argv is None else argv)
    command = []
    if "--" in argv:  # what follows -- is the command of `ssh`, options and all
        command = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            name = args.lab or os.path.splitext(os.path.basename(args.topology))[0]
            lab = Lab(name).up(args.topology, inventory=args.inventory, mem=args.mem)
            print(json.dumps({"lab": lab.name, "ssh_config": lab.ssh_config, "machines": {
                host: m.get("address") or m.get("netns") for host, m in lab.machines.items()}}, indent=1))
            return 0
        if args.action == "ssh":
            if not command:
                parser.error("ssh needs a command: lab/vm ssh NAME -- COMMAND")
            lab = Lab.find(args.lab)
            return subprocess.call(lab.command(args.machine, command))
        if args.action == "wire":
            Lab.find(args.lab).set_wire(args.machine, args.ifname, args.state)
            return 0
        if args.action == "down":
            if args.lab:
                lab = Lab(args.lab)
            else:
                lab = Lab.find()
            lab.down()
            return 0
        for entry in sorted(os.listdir(STATE_ROOT)) if os.path.isdir(STATE_ROOT) else []:
            if _netns_exists(NS_PREFIX + entry):
                lab = Lab(entry)
                print("%s: %s" % (entry, ", ".join("%s (%s)" % (h, m.get("address") or m.get("netns"))
                                                   for h, m in lab.machines.items())))
        return 0
    except LabError as exc:
        print("lab/vm: %s" % exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
