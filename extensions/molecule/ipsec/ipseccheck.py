#!/usr/bin/env python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of the ipsec scenario (GRE over IPsec), against the lab's namespaces (lab/topologies/howto.yml).

The routers are namespaces of one kernel: each gets its own charon, with its own /etc/strongswan.conf and
/etc/swanctl (through /etc/netns/ROUTER/, which `ip netns exec` mounts over /etc's), its own control socket and log,
and its own /etc/overlay-gre.
The lab has no systemd: `start-charon` does what strongswan.service does (charon-systemd, then swanctl --load-all).

    ipseccheck.py setup --logs DIR       each router's own strongSwan configuration, and its charon started
    ipseccheck.py start-charon ROUTER --logs DIR | stop-charon ROUTER | stop-all
    ipseccheck.py snapshot FILE          labcheck's kernel state, plus each router's xfrm state and policies and
                                         the files the role writes (as the router sees them)
    ipseccheck.py compare FILE_A FILE_B
    ipseccheck.py verify --logs DIR --rekey-time S --bench FILE
                                         SAs on both routers; with both keepalive senders running: pings and 1 MiB of
                                         TCP each way (ICMP fragmentation-needed dropped), the underlay carrying ESP
                                         and not one GRE packet in clear, both ways; 10 MiB throughput (bench/ipsec.py);
                                         ping every 0.2 s across two rekeys; charon stopped on router_b: no GRE in
                                         clear while it is down, traffic back by itself after it starts again
    ipseccheck.py reboot PRE_FILE --logs DIR
                                         charon stopped on both, labcheck's simulated reboot (boot files replayed),
                                         charon started as at boot: SAs and traffic back
    ipseccheck.py plain --logs DIR --bench FILE
                                         after gre_router_ipsec: false: no swanctl file, no SA, no policy for GRE;
                                         GRE in clear on the underlay and no ESP; traffic; 10 MiB throughput
    ipseccheck.py grep-key PATH...       exit 1 when the key (environment IPSEC_LAB_KEY) occurs in a file under the PATHs
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path[:0] = [os.path.join(HERE, "..", "shared"), os.path.join(HERE, "..", "keepalive"), os.path.join(ROOT, "bench")]

import labcheck  # noqa: E402  pylint: disable=wrong-import-position
import kacheck  # noqa: E402  pylint: disable=wrong-import-position
import ipsec as bench  # noqa: E402  pylint: disable=wrong-import-position

ROUTERS = labcheck.ROUTERS
UNDERLAY = {"router_a": "172.19.1.1", "router_b": "172.19.1.2"}
LAB_RUN = "/run/overlay-gre-lab"
CONN = {ns: "overlay-gre-" + tunnel for ns, tunnel in ROUTERS.items()}
FILES = ["/etc/swanctl/conf.d", "/etc/overlay-gre", "/etc/systemd/system", "/etc/sysctl.d", "/usr/local/sbin/overlay-gre-keepalive"]

STRONGSWAN_CONF = """# The lab's strongswan.conf of %(ns)s (ipseccheck.py setup): Debian's, with this router's own control socket and log
charon {
    load_modular = yes
    plugins {
        include strongswan.d/charon/*.conf
        vici {
            socket = unix://%(run)s/%(ns)s.vici
        }
    }
    filelog {
        lab {
            path = %(log)s
            default = 1
            ike = 2
            time_format = %%T
        }
    }
}
include strongswan.d/*.conf
swanctl {
    socket = unix://%(run)s/%(ns)s.vici
}
"""


def run(ns, *cmd, check=True):
    return labcheck.run(ns, *cmd, check=check)


class Results(object):
    def __init__(self, name):
        self.name = name
        self.results = []

    def check(self, what, ok, detail=""):
        self.results.append(bool(ok))
        print("%s: %s%s" % ("ok" if ok else "FAIL", what, (" (%s)" % detail) if detail != "" else ""), flush=True)
        return ok

    def end(self):
        print("%s: %d passed, %d failed" % (self.name, self.results.count(True), self.results.count(False)), flush=True)
        return 0 if all(self.results) else 1


# --- charon, one per router ------------------------------------------------------------------------------------

def pid_file(ns):
    return os.path.join(LAB_RUN, "charon-%s.pid" % ns)


def socket_path(ns):
    return os.path.join(LAB_RUN, "%s.vici" % ns)


def setup(logs):
    os.makedirs(LAB_RUN, exist_ok=True)
    # Each router its own /etc/overlay-gre too, as each real router has: in a shared one each router sees the other's
    # boot script, and keeps the units that go with the last boot script of the machine (snapshot compares files).
    os.makedirs("/etc/overlay-gre", exist_ok=True)
    for ns in ROUTERS:
        own = os.path.join("/etc/netns", ns)
        os.makedirs(os.path.join(own, "overlay-gre"), exist_ok=True)
        shutil.copytree("/etc/swanctl", os.path.join(own, "swanctl"), dirs_exist_ok=True)
        with open(os.path.join(own, "strongswan.conf"), "w", encoding="utf-8") as handle:
            handle.write(STRONGSWAN_CONF % {"ns": ns, "run": LAB_RUN, "log": os.path.join(logs, "charon-%s.log" % ns)})
        start_charon(ns, logs)
    return 0


def charon_pid(ns):
    try:
        with open(pid_file(ns), encoding="utf-8") as handle:
            pid = int(handle.read())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start_charon(ns, logs):
    """What strongswan.service does: charon-systemd, then (ExecStartPost) swanctl --load-all --noprompt."""
    if charon_pid(ns):
        return
    if os.path.exists(socket_path(ns)):
        os.unlink(socket_path(ns))
    with open(os.path.join(logs, "charon-%s.out" % ns), "a", encoding="utf-8") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/sbin/charon-systemd"], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    with open(pid_file(ns), "w", encoding="utf-8") as handle:
        handle.write(str(proc.pid))
    for _try in range(600):
        if os.path.exists(socket_path(ns)):
            break
        time.sleep(0.1)
    else:
        raise RuntimeError("charon of %s did not open its socket %s" % (ns, socket_path(ns)))
    loaded = run(ns, "swanctl", "--load-all", "--noprompt", check=False)
    print("%s: charon started (pid %d), swanctl --load-all: %s" % (ns, proc.pid, (loaded.stdout.strip().splitlines() or ["-"])[-1]),
          flush=True)


def stop_charon(ns):
    pid = charon_pid(ns)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    for _try in range(300):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    os.unlink(pid_file(ns))
    print("%s: charon stopped" % ns, flush=True)


def stop_all():
    kacheck.stop()
    for ns in ROUTERS:
        stop_charon(ns)
    return 0


# --- state ---------------------------------------------------------------------------------------------------

def xfrm(ns):
    """NS's SAs by what they are (addresses, protocol, mode: no SPI, which each rekeying changes, no key, no counter)
    and its policies, each as the kernel lists it but for the SPI of its SA."""
    states = set()
    current = None
    for line in run(ns, "ip", "xfrm", "state").stdout.splitlines():
        if line.startswith("src "):
            current = line.strip()
        elif current and line.strip().startswith("proto "):
            states.add("%s %s" % (current, re.sub(r" spi 0x[0-9a-f]+", "", line.strip())))
    policies = []
    for line in run(ns, "ip", "xfrm", "policy").stdout.splitlines():
        line = re.sub(r" spi 0x[0-9a-f]+", "", line)  # an SA's policy names its SA, which each rekeying replaces
        if line.startswith("src ") or not policies:
            policies.append(line)
        else:
            policies[-1] += "\n" + line
    return {"state": sorted(states), "policy": sorted(policies)}


def files(ns):
    script = ("for p in %s; do [ -e \"$p\" ] && find \"$p\" -type f -exec sh -c "
              "'printf \"%%s %%s %%s\\n\" \"$1\" \"$(stat -c %%a \"$1\")\" \"$(sha256sum < \"$1\" | cut -c1-16)\"' _ {} \\; ; done; true"
              % " ".join(FILES))
    return sorted(run(ns, "sh", "-c", script).stdout.splitlines())


def snapshot():
    state = labcheck.snapshot()
    for ns in ROUTERS:
        state[ns]["xfrm"] = xfrm(ns)
        state[ns]["files"] = files(ns)
    return state


def sas(ns):
    out = run(ns, "swanctl", "--list-sas", "--ike", CONN[ns], check=False).stdout
    return out, len(re.findall(r", INSTALLED, TRANSPORT", out))


def out_spis(ns):
    """The SPIs of the ESP states from NS's underlay address to its peer's."""
    text = run(ns, "ip", "xfrm", "state").stdout
    peer = UNDERLAY["router_b" if ns == "router_a" else "router_a"]
    return set(re.findall(r"src %s dst %s\s+proto esp spi (0x[0-9a-f]+)" % (UNDERLAY[ns], peer), text))


def wait_for(predicate, bound, step=0.2):
    start = time.monotonic()
    while time.monotonic() - start < bound:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    return None


def classify(lines):
    """(ESP packets a->b, ESP b->a, GRE packets in clear) among tcpdump's lines."""
    a, b = UNDERLAY["router_a"], UNDERLAY["router_b"]
    esp_ab = sum(1 for l in lines if "ESP(" in l and " %s > %s:" % (a, b) in l)
    esp_ba = sum(1 for l in lines if "ESP(" in l and " %s > %s:" % (b, a) in l)
    gre = [l for l in lines if "GRE" in l or "gre" in l.split(":")[-1].lower()]
    return esp_ab, esp_ba, gre


def stop_senders():
    """Stop the keepalive senders; the routes they put through the tunnel are theirs and go with them (as at a reboot,
    where they come back once the senders run again)."""
    kacheck.stop()
    time.sleep(1)
    for ns, tunnel in ROUTERS.items():
        run(ns, "ip", "route", "del", kacheck.PEER_LAN[ns], "dev", tunnel, check=False)


def start_senders(logs):
    for ns in ROUTERS:
        kacheck.start(ns, logs)
    took = wait_for(lambda: all(kacheck.read_state(ns).get("state") == "up" and kacheck.tunnel_routes(ns) for ns in ROUTERS), 60)
    return took


# --- the checks -----------------------------------------------------------------------------------------------

def tunnel_mtu(ns):
    return json.loads(run(ns, "ip", "-j", "link", "show", "dev", ROUTERS[ns]).stdout)[0]["mtu"]


def verify(logs, rekey_time, bench_file):
    res = Results("verify")
    for ns in ROUTERS:
        res.check("%s: the tunnel's MTU leaves room for ESP (1438 with the GRE key 42)" % ns, tunnel_mtu(ns) == 1438, tunnel_mtu(ns))
    for ns in ROUTERS:
        text, installed = sas(ns)
        res.check("%s: swanctl --list-sas shows the IKE SA and an installed transport CHILD SA" % ns,
                  "ESTABLISHED" in text and installed >= 1, "%d installed" % installed)
        res.check("%s: ip xfrm state holds ESP SAs both ways" % ns, len(out_spis(ns)) >= 1
                  and "proto esp" in run(ns, "ip", "xfrm", "state").stdout)
    took = start_senders(logs)
    res.check("both keepalive senders see their peer up through the encrypted tunnel", took is not None,
              "after %s s" % (None if took is None else round(took, 1)))
    with labcheck.Capture("router_b", "bond0", "esp or ip proto 47") as cap:
        res.check("host_a reaches host_b", labcheck.ping("host_a", "20.10.1.10"))
        res.check("host_b reaches host_a", labcheck.ping("host_b", "10.10.1.10"))
        for src, dst_ns, addr in (("host_a", "host_b", "20.10.1.10"), ("host_b", "host_a", "10.10.1.10")):
            received, detail = labcheck.tcp_transfer(src, dst_ns, addr, 1 << 20)
            res.check("1 MiB of TCP %s -> %s with ICMP fragmentation-needed dropped" % (src, dst_ns), received == 1 << 20,
                      "%d bytes%s" % (received, ("; " + detail) if detail else ""))
        time.sleep(3)  # a few keepalive periods more
    esp_ab, esp_ba, gre = classify(cap.lines)
    print("capture on router_b's bond0 (esp or ip proto 47): %d lines: ESP a->b %d, ESP b->a %d, GRE in clear %d"
          % (len(cap.lines), esp_ab, esp_ba, len(gre)), flush=True)
    res.check("the underlay carries ESP both ways", esp_ab > 0 and esp_ba > 0, "a->b %d, b->a %d" % (esp_ab, esp_ba))
    res.check("not one GRE packet in clear on the underlay, keepalives included", not gre, "; ".join(gre[:3]))
    try:
        bench.measure("ipsec", bench_file, 10 << 20, 2)
        res.check("10 MiB through the encrypted tunnel (bench/ipsec.py)", True)
    except RuntimeError as exc:
        res.check("10 MiB through the encrypted tunnel (bench/ipsec.py)", False, exc)
    rekeys(res, rekey_time)
    charon_down(res, logs)
    stop_senders()
    return res.end()


def rekeys(res, rekey_time):
    """A ping every 0.2 s from host_a to host_b while router_a's outbound SA is replaced twice."""
    seen = [out_spis("router_a")]
    ping = subprocess.Popen(["ip", "netns", "exec", "host_a", "ping", "-n", "-i", "0.2", "-W", "1", "20.10.1.10"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    start = time.monotonic()
    new = set()
    events = []  # when a new outbound SA appeared; a rekey collision makes two within a second or two: one rekey
    last = seen[0]
    while time.monotonic() - start < 4 * rekey_time + 30:
        time.sleep(0.5)
        now = out_spis("router_a")
        if now - last - new:
            if not events or time.monotonic() - start - events[-1] > 5:
                events.append(round(time.monotonic() - start, 1))
            new |= now - last
        last = now
        if len(events) >= 2:
            time.sleep(3)
            break
    changes = len(events)
    elapsed = time.monotonic() - start
    ping.send_signal(signal.SIGINT)
    out = ping.communicate(timeout=30)[0]
    match = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    sent, got = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    print("rekey: %.0f s of pings every 0.2 s, %d sent, %d received, %d lost; router_a's outbound SA replaced %d times, "
          "at %s s (new SPIs: %s)" % (elapsed, sent, got, sent - got, changes, events, ", ".join(sorted(new))), flush=True)
    res.check("router_a's outbound ESP SA was replaced at least twice (rekey_time %d s)" % rekey_time, changes >= 2,
              "%d changes" % changes)
    res.check("a ping every 0.2 s across the rekeys lost at most one packet", sent > 0 and sent - got <= 1,
              "%d sent, %d lost" % (sent, sent - got))


def charon_down(res, logs):
    """charon stopped on router_b: its policies go, and not one GRE packet crosses in clear; back by itself after."""
    with labcheck.Capture("router_a", "bond0", "ip proto 47") as at_a, labcheck.Capture("router_b", "bond0", "ip proto 47") as at_b:
        stop_charon("router_b")
        policies = [l for l in run("router_b", "ip", "xfrm", "policy").stdout.splitlines() if "proto gre" in l]
        res.check("router_b: with charon stopped, no xfrm policy for GRE is left", not policies, policies)
        down_start = time.monotonic()
        while time.monotonic() - down_start < 8:  # traffic both ways while it is down; keepalives keep going
            labcheck.ping("host_a", "20.10.1.10", count=1)
            labcheck.ping("host_b", "10.10.1.10", count=1)
    print("charon down on router_b for %.0f s: proto 47 captured on router_a's bond0: %d, on router_b's: %d"
          % (time.monotonic() - down_start, len(at_a.lines), len(at_b.lines)), flush=True)
    res.check("not one GRE packet in clear while charon is down (router_a's and router_b's underlay)",
              not at_a.lines and not at_b.lines, "; ".join((at_a.lines + at_b.lines)[:3]))
    start_charon("router_b", logs)
    back = wait_for(lambda: labcheck.ping("host_a", "20.10.1.10", count=1) and labcheck.ping("host_b", "10.10.1.10", count=1), 180, 0.5)
    print("traffic back %s after charon started again on router_b" % ("%.1f s" % back if back is not None else "NOT"), flush=True)
    res.check("traffic comes back by itself once charon runs again", back is not None)
    res.check("router_b has its SAs again", sas("router_b")[1] >= 1)


def reboot(pre_file, logs):
    res = Results("reboot")
    for ns in ROUTERS:
        stop_charon(ns)
    res.check("labcheck's simulated reboot: the boot files bring the kernel state back", labcheck.reboot(pre_file) == 0)
    for ns in ROUTERS:  # strongswan.service at boot
        start_charon(ns, logs)
    for ns in ROUTERS:
        took = wait_for(lambda ns=ns: sas(ns)[1] >= 1, 60)
        res.check("%s: SAs back after the reboot" % ns, took is not None, "after %s s" % (None if took is None else round(took, 1)))
    took = start_senders(logs)
    res.check("keepalives up again", took is not None)
    with labcheck.Capture("router_b", "bond0", "esp or ip proto 47") as cap:
        res.check("host_a reaches host_b after the reboot", labcheck.ping("host_a", "20.10.1.10"))
        res.check("host_b reaches host_a after the reboot", labcheck.ping("host_b", "10.10.1.10"))
    esp_ab, esp_ba, gre = classify(cap.lines)
    res.check("after the reboot: ESP both ways, no GRE in clear", esp_ab and esp_ba and not gre,
              "a->b %d, b->a %d, clear %d" % (esp_ab, esp_ba, len(gre)))
    stop_senders()
    return res.end()


def plain(logs, bench_file):
    res = Results("plain")
    for ns in ROUTERS:
        res.check("%s: the tunnel's MTU is the kernel's for GRE with a key again (1472)" % ns, tunnel_mtu(ns) == 1472, tunnel_mtu(ns))
        res.check("%s: no swanctl file of the tunnel" % ns,
                  run(ns, "test", "-e", "/etc/swanctl/conf.d/overlay-gre-%s.conf" % ROUTERS[ns], check=False).returncode != 0)
        res.check("%s: charon holds no connection or SA of the tunnel" % ns,
                  CONN[ns] not in run(ns, "swanctl", "--list-conns").stdout and sas(ns)[0].strip() == "")
        state = xfrm(ns)
        res.check("%s: no ESP SA and no GRE policy in the kernel" % ns,
                  not any("proto esp" in l for l in state["state"]) and not any("proto gre" in l for l in state["policy"]))
        res.check("%s: no IPsec firewall rule is left" % ns,
                  not any("policy" in l or "-p esp" in l for l in labcheck.owned_rules(ns)))
    took = start_senders(logs)
    res.check("keepalives up over plain GRE", took is not None)
    with labcheck.Capture("router_b", "bond0", "esp or ip proto 47") as cap:
        res.check("host_a reaches host_b over plain GRE", labcheck.ping("host_a", "20.10.1.10"))
        res.check("host_b reaches host_a over plain GRE", labcheck.ping("host_b", "10.10.1.10"))
        received, detail = labcheck.tcp_transfer("host_a", "host_b", "20.10.1.10", 1 << 20)
        res.check("1 MiB of TCP host_a -> host_b over plain GRE", received == 1 << 20, detail)
    esp_ab, esp_ba, gre = classify(cap.lines)
    res.check("the underlay carries GRE in clear again, and no ESP", gre and not esp_ab and not esp_ba,
              "GRE %d, ESP %d" % (len(gre), esp_ab + esp_ba))
    try:
        bench.measure("plain", bench_file, 10 << 20, 2)
        res.check("10 MiB through the plain tunnel (bench/ipsec.py)", True)
    except RuntimeError as exc:
        res.check("10 MiB through the plain tunnel (bench/ipsec.py)", False, exc)
    stop_senders()
    bench.report(bench_file)
    return res.end()


def grep_key(key, paths):
    """Every file under PATHS but Molecule's inventory folder, which holds the scenario's key on purpose."""
    hits = []
    for path in paths:
        for folder, dirs, names in os.walk(path) if os.path.isdir(path) else [(os.path.dirname(path), [], [os.path.basename(path)])]:
            dirs[:] = [d for d in dirs if d != "inventory"]
            for name in names:
                full = os.path.join(folder, name)
                try:
                    with open(full, "rb") as handle:
                        if key.encode() in handle.read():
                            hits.append(full)
                except OSError:
                    pass
    print("the key occurs in %d files of %s%s" % (len(hits), ", ".join(paths), (": " + ", ".join(hits)) if hits else ""))
    return 1 if hits else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="action", required=True)
    for name in ("setup", "verify", "reboot", "plain"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--logs", required=True)
        if name == "verify":
            cmd.add_argument("--rekey-time", type=int, required=True)
        if name in ("verify", "plain"):
            cmd.add_argument("--bench", required=True)
        if name == "reboot":
            cmd.add_argument("pre_file")
    cmd = sub.add_parser("start-charon")
    cmd.add_argument("router")
    cmd.add_argument("--logs", required=True)
    sub.add_parser("stop-charon").add_argument("router")
    sub.add_parser("stop-all")
    sub.add_parser("snapshot").add_argument("file")
    cmp_parser = sub.add_parser("compare")
    cmp_parser.add_argument("file_a")
    cmp_parser.add_argument("file_b")
    sub.add_parser("grep-key").add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    if args.action == "setup":
        return setup(args.logs)
    if args.action == "start-charon":
        start_charon(args.router, args.logs)
        return 0
    if args.action == "stop-charon":
        stop_charon(args.router)
        return 0
    if args.action == "stop-all":
        return stop_all()
    if args.action == "snapshot":
        with open(args.file, "w", encoding="utf-8") as handle:
            json.dump(snapshot(), handle, indent=1, sort_keys=True)
        labcheck.save_rules(args.file)
        print("kernel, xfrm and file state of %s saved to %s" % (", ".join(ROUTERS), args.file))
        return 0
    if args.action == "compare":
        return labcheck.compare(args.file_a, args.file_b)
    if args.action == "verify":
        return verify(args.logs, args.rekey_time, args.bench)
    if args.action == "reboot":
        return reboot(args.pre_file, args.logs)
    if args.action == "plain":
        return plain(args.logs, args.bench)
    return grep_key(os.environ["IPSEC_LAB_KEY"], args.paths)


if __name__ == "__main__":
    sys.exit(main())
