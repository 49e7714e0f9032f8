# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.gre.nat_masquerade against the real kernel, in namespaces the tests make.

Every test runs for both iptables backends, nft and legacy, on the host and in the lab's kernel alike (a kernel
that cannot run one fails test_backends_under_test). How the module refuses a backend the kernel cannot run is
tested in tests/unit/test_iptables_backend.py: no kernel here lacks one.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys

import pytest

from support import lab
from support.lab import run_module, run_module_direct, sh

pytestmark = pytest.mark.lab

TAG = "overlay.gre nat_masquerade"


BACKENDS = ("nft", "legacy")


def test_backends_under_test():
    """No silent gaps: the host kernel and the lab's both run the nft and the legacy backend."""
    runnable = [backend for backend in BACKENDS if lab.iptables_backend_runs(backend)]
    assert runnable == list(BACKENDS), "this kernel should run both iptables backends, runs only %s (as root?)" % runnable


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def saved(netns, backend, table=None):
    """The namespace's rules as iptables-save prints them, without comments and counters."""
    cmd = "iptables-%s-save" % backend + (" -t %s" % table if table else "")
    return [line for line in sh(netns, cmd).stdout.splitlines() if line and not line.startswith("#")]


def chain(netns, backend, table, name):
    return [line for line in saved(netns, backend, table) if line.startswith("-A %s " % name)]


def direct(netns, backend, check=False, diff=False, **args):
    args.setdefault("backend", backend)
    return run_module_direct(netns, "nat_masquerade", args, check=check, diff=diff)


MASQ = '-A OVERLAY-GRE-MASQ -s %s -o %s -m comment --comment "%s" -j MASQUERADE'
FWD_OUT = '-A OVERLAY-GRE-FWD -s %s -o %s -m comment --comment "%s" -j ACCEPT'
FWD_BACK = '-A OVERLAY-GRE-FWD -d %s -i %s -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "%s" -j ACCEPT'
JUMP_NAT = '-A POSTROUTING -m comment --comment "%s" -j OVERLAY-GRE-MASQ' % TAG
JUMP_FWD = '-A FORWARD -m comment --comment "%s" -j OVERLAY-GRE-FWD' % TAG


def test_create_rerun_and_absent(netns, backend):
    result = direct(netns, backend, diff=True, source="10.10.1.0/24", out_interface="eth1")
    assert result["changed"] is True, result
    assert result["backend"] == backend
    assert chain(netns, backend, "nat", "OVERLAY-GRE-MASQ") == [MASQ % ("10.10.1.0/24", "eth1", TAG)]
    assert chain(netns, backend, "nat", "POSTROUTING") == [JUMP_NAT]
    assert chain(netns, backend, "filter", "FORWARD") == [JUMP_FWD]
    assert chain(netns, backend, "filter", "OVERLAY-GRE-FWD") == [FWD_OUT % ("10.10.1.0/24", "eth1", TAG),
                                                                  FWD_BACK % ("10.10.1.0/24", "eth1", TAG)]
    assert len(result["added"]) == 5 and result["removed"] == []
    assert result["diff"]["before"] == ""
    assert MASQ % ("10.10.1.0/24", "eth1", TAG) in result["diff"]["after"].splitlines()

    before = saved(netns, backend)
    again = direct(netns, backend, diff=True, source="10.10.1.0/24", out_interface="eth1")
    assert again["changed"] is False and again["added"] == [] and again["removed"] == []
    assert again["diff"]["before"] == again["diff"]["after"] == result["diff"]["after"]
    assert saved(netns, backend) == before

    gone = direct(netns, backend, source="10.10.1.0/24", out_interface="eth1", state="absent")
    assert gone["changed"] is True and len(gone["removed"]) == 5
    assert not [line for line in saved(netns, backend) if "OVERLAY-GRE" in line]
    assert direct(netns, backend, source="10.10.1.0/24", out_interface="eth1", state="absent")["changed"] is False


def test_replay_rebuilds_the_rules_after_a_reboot_and_twice_is_harmless(netns, backend):
    ipt = "iptables-%s" % backend
    sh(netns, "%s -A FORWARD -j REJECT && %s -t nat -A POSTROUTING -d 192.0.2.0/24 -j RETURN" % (ipt, ipt))
    foreign = sh(netns, "%s-save" % ipt).stdout
    result = direct(netns, backend, rules=[{"source": "10.10.1.0/24", "out_interface": "eth1"},
                                           {"source": "192.168.8.2/32", "out_interface": "gre1", "forward": False}])
    converged = saved(netns, backend)
    subprocess.run(["ip", "netns", "exec", netns, "%s-restore" % ipt], input=foreign, text=True, check=True)
    assert saved(netns, backend) != converged
    for _time in (1, 2):
        sh(netns, "set -e\n" + "\n".join(result["replay"]))
        assert saved(netns, backend) == converged


def test_check_mode_changes_nothing(netns, backend):
    sh(netns, "iptables-%s -t nat -A POSTROUTING -o eth9 -j MASQUERADE" % backend)
    before = saved(netns, backend)
    result = direct(netns, backend, check=True, diff=True, source="192.168.8.11", out_interface="eth1")
    assert result["changed"] is True
    assert MASQ % ("192.168.8.11/32", "eth1", TAG) in result["diff"]["after"].splitlines()
    assert "-t nat -A OVERLAY-GRE-MASQ -s 192.168.8.11/32 -o eth1 -m comment --comment \"%s\" -j MASQUERADE" % TAG in result["added"]
    assert saved(netns, backend) == before

    direct(netns, backend, source="192.168.8.11", out_interface="eth1")
    after_create = saved(netns, backend)
    result = direct(netns, backend, check=True, source="192.168.8.11", out_interface="eth1", state="absent")
    assert result["changed"] is True and len(result["removed"]) == 5
    assert saved(netns, backend) == after_create


def test_purge_spares_foreign_rules(netns, backend):
    ipt = "iptables-%s" % backend
    sh(netns, "%s -t nat -A POSTROUTING -s 10.50.0.0/16 -o eth1 -j MASQUERADE && "
              "%s -t nat -A POSTROUTING -s 10.51.0.0/16 -o eth1 -m comment --comment 'overlay.gre look-alike' -j MASQUERADE && "
              "%s -A FORWARD -s 10.50.0.0/16 -o eth1 -j ACCEPT" % (ipt, ipt, ipt))
    foreign_nat = chain(netns, backend, "nat", "POSTROUTING")
    foreign_fwd = chain(netns, backend, "filter", "FORWARD")
    listed = [{"source": "10.10.%d.0/24" % n} for n in range(1, 4)]
    assert direct(netns, backend, out_interface="eth1", rules=listed)["changed"] is True
    assert len(chain(netns, backend, "nat", "OVERLAY-GRE-MASQ")) == 3
    assert direct(netns, backend, out_interface="eth1", rules=listed[:1])["changed"] is False  # no purge: nothing goes

    result = direct(netns, backend, out_interface="eth1", rules=listed[:1], purge=True)
    assert result["changed"] is True
    assert sorted(result["removed"]) == sorted(
        ["-t nat " + MASQ % ("10.10.%d.0/24" % n, "eth1", TAG) for n in (2, 3)]
        + ["-t filter " + (rule % ("10.10.%d.0/24" % n, "eth1", TAG)) for n in (2, 3) for rule in (FWD_OUT, FWD_BACK)])
    assert chain(netns, backend, "nat", "OVERLAY-GRE-MASQ") == [MASQ % ("10.10.1.0/24", "eth1", TAG)]
    assert chain(netns, backend, "nat", "POSTROUTING") == foreign_nat + [JUMP_NAT]
    assert chain(netns, backend, "filter", "FORWARD") == [JUMP_FWD] + foreign_fwd

    assert direct(netns, backend, rules=[], purge=True)["changed"] is True
    assert chain(netns, backend, "nat", "POSTROUTING") == foreign_nat
    assert chain(netns, backend, "filter", "FORWARD") == foreign_fwd
    assert not [line for line in saved(netns, backend) if "OVERLAY-GRE" in line]


def test_foreign_rule_order_is_kept_and_the_jump_stays_first(netns, backend):
    ipt = "iptables-%s" % backend
    sh(netns, " && ".join([
        "%s -P FORWARD DROP" % ipt,
        "%s -A FORWARD -i lo -j ACCEPT" % ipt,
        "%s -A FORWARD -p tcp --dport 22 -j ACCEPT" % ipt,
        "%s -A FORWARD -j REJECT" % ipt,
        "%s -t nat -A POSTROUTING -d 10.0.0.0/8 -j RETURN" % ipt,
        "%s -t nat -A POSTROUTING -o eth2 -j MASQUERADE" % ipt,
    ]))
    foreign_fwd = chain(netns, backend, "filter", "FORWARD")
    foreign_nat = chain(netns, backend, "nat", "POSTROUTING")
    direct(netns, backend, source="10.10.1.0/24", out_interface="eth1")
    direct(netns, backend, source="10.10.2.0/24", out_interface="eth1")
    assert chain(netns, backend, "filter", "FORWARD") == [JUMP_FWD] + foreign_fwd
    assert chain(netns, backend, "nat", "POSTROUTING") == foreign_nat + [JUMP_NAT]

    # another tool puts a rule ahead of the jump: the next run moves the jump back to the top, nothing else
    sh(netns, "%s -I FORWARD 1 -s 10.66.0.0/16 -j DROP" % ipt)
    foreign_fwd = [line for line in chain(netns, backend, "filter", "FORWARD") if line != JUMP_FWD]
    result = direct(netns, backend, source="10.10.1.0/24", out_interface="eth1")
    assert result["changed"] is True
    assert result["added"] == ["-t filter " + JUMP_FWD] and result["removed"] == ["-t filter " + JUMP_FWD]
    assert chain(netns, backend, "filter", "FORWARD") == [JUMP_FWD] + foreign_fwd
    assert direct(netns, backend, source="10.10.1.0/24", out_interface="eth1")["changed"] is False


def test_comment_and_forward_changes(netns, backend):
    direct(netns, backend, source="10.10.1.0/24", out_interface="eth1")
    result = direct(netns, backend, source="10.10.1.0/24", out_interface="eth1", comment="overlay.gre site A", forward=False)
    assert result["changed"] is True
    assert chain(netns, backend, "nat", "OVERLAY-GRE-MASQ") == [MASQ % ("10.10.1.0/24", "eth1", "overlay.gre site A")]
    assert not [line for line in saved(netns, backend, "filter") if "OVERLAY-GRE" in line]


@pytest.mark.parametrize("args,message", [
    ({"source": "10.10.1.0/33", "out_interface": "eth1"}, "not an IPv4 address or CIDR"),
    ({"source": "2001:db8::/64", "out_interface": "eth1"}, "IPv4"),
    ({"source": "10.10.1.0/24", "out_interface": "eth1/2"}, "not a valid interface name"),
    ({"source": "10.10.1.0/24", "out_interface": "averyveryverylongname"}, "not a valid interface name"),
    ({"rules": [{"source": "10.10.1.0/24"}], "purge": True}, "out_interface is required"),
    ({"source": "10.10.1.0/24", "out_interface": "eth1", "purge": True}, "purge needs rules"),
    ({"source": "10.10.1.0/24", "out_interface": "eth1", "comment": 'a "quoted" tag'}, "without quotes"),
])
def test_bad_arguments_are_refused_before_any_change(netns, args, message):
    backend = BACKENDS[-1]
    before = saved(netns, backend)
    result = direct(netns, backend, **args)
    assert result.get("failed") is True and message in result["msg"], result
    assert saved(netns, backend) == before


def test_lock_held_too_long_is_refused(netns, tmp_path, monkeypatch):
    """The legacy backend takes the xtables lock; a private lock file keeps the host's lock out of it."""
    lock = tmp_path / "xtables.lock"
    monkeypatch.setenv("XTABLES_LOCKFILE", str(lock))
    before = saved(netns, "legacy")
    with open(lock, "w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = direct(netns, "legacy", source="10.10.1.0/24", out_interface="eth1", wait=1)
    assert result.get("failed") is True, result
    assert "could not get the xtables lock within 1 seconds" in result["msg"]
    assert saved(netns, "legacy") == before
    assert direct(netns, "legacy", source="10.10.1.0/24", out_interface="eth1", wait=1)["changed"] is True


def test_auto_uses_the_backend_of_the_iptables_command(netns):
    version = subprocess.run(["iptables", "--version"], capture_output=True, text=True, check=True).stdout
    expected = "nft" if "nf_tables" in version else "legacy"
    result = run_module_direct(netns, "nat_masquerade", {"source": "10.10.1.0/24", "out_interface": "eth1"})
    assert result["changed"] is True and result["backend"] == expected, result
    assert chain(netns, expected, "nat", "OVERLAY-GRE-MASQ") == [MASQ % ("10.10.1.0/24", "eth1", TAG)]


# --- through Ansible, with traffic ---------------------------------------------------------------------------

LISTENER = r"""
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 8080))
srv.listen(1)
print("ready", flush=True)
srv.settimeout(20)
conn, peer = srv.accept()
conn.sendall(b"hello")
print(peer[0], flush=True)
conn.close()
"""

CLIENT = r"""
import socket
with socket.create_connection(("203.0.113.2", 8080), timeout=5) as conn:
    print(conn.recv(16).decode())
"""


@pytest.fixture
def routed(netns_factory):
    """client (10.10.1.10) -- eth1 router wan0 (203.0.113.1) -- server (203.0.113.2, no route back to 10.10.1.0/24).

    The router forwards, FORWARD's policy is DROP and a reject-all rule ends the chain.
    """
    client, router, server = netns_factory("cli"), netns_factory("rtr"), netns_factory("srv")
    subprocess.run(["ip", "link", "add", "c0", "netns", client, "type", "veth", "peer", "name", "eth1", "netns", router], check=True)
    subprocess.run(["ip", "link", "add", "wan0", "netns", router, "type", "veth", "peer", "name", "s0", "netns", server], check=True)
    sh(client, "ip addr add 10.10.1.10/24 dev c0 && ip link set c0 up && ip route add default via 10.10.1.1")
    sh(router, "ip addr add 10.10.1.1/24 dev eth1 && ip link set eth1 up && ip addr add 203.0.113.1/24 dev wan0 && "
               "ip link set wan0 up && sysctl -qw net.ipv4.ip_forward=1")
    sh(server, "ip addr add 203.0.113.2/24 dev s0 && ip link set s0 up")
    return client, router, server


def _connect(client, server):
    listener = subprocess.Popen(["ip", "netns", "exec", server, sys.executable, "-c", LISTENER],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready", listener.stderr.read()
        reply = subprocess.run(["ip", "netns", "exec", client, sys.executable, "-c", CLIENT],
                               capture_output=True, text=True, timeout=30, check=False)
        assert reply.returncode == 0 and reply.stdout.strip() == "hello", reply.stderr
        peer = listener.stdout.readline().strip()
        listener.wait(timeout=10)
        return peer
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


def test_traffic_is_forwarded_and_masqueraded_through_ansible(routed, backend):
    client, router, server = routed
    ipt = "iptables-%s" % backend
    sh(router, "%s -P FORWARD DROP && %s -A FORWARD -j REJECT --reject-with icmp-net-prohibited" % (ipt, ipt))
    assert not lab.ping(client, "203.0.113.2", wait=1), "FORWARD should drop before the module runs"

    result = run_module(router, "overlay.gre.nat_masquerade",
                        {"source": "10.10.1.0/24", "out_interface": "wan0", "backend": backend}, diff=True)
    assert result.get("failed") is not True and result["changed"] is True, result
    assert MASQ % ("10.10.1.0/24", "wan0", TAG) in result["diff"]["after"].splitlines()

    # the server has no route to 10.10.1.0/24: the reply only arrives because the router masqueraded
    assert _connect(client, server) == "203.0.113.1"
    assert chain(router, backend, "filter", "FORWARD")[-1] == "-A FORWARD -j REJECT --reject-with icmp-net-prohibited"

    check = run_module(router, "overlay.gre.nat_masquerade",
                       {"source": "10.10.1.0/24", "out_interface": "wan0", "backend": backend, "state": "absent"}, check=True, diff=True)
    assert check["changed"] is True and check["diff"]["after"] == "", check
    assert _connect(client, server) == "203.0.113.1"  # check mode left everything in place
