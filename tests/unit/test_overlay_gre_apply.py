# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The router's apply program (roles/gre_router/files/overlay-gre-apply) on a fake command runner, a temporary
/sys and /proc and a lock file of the test's own: what it would run, in which order, with which input."""

from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.overlay.gre.plugins.module_utils import _lock
from support.keepalive import FILES, load_program

PROGRAM = os.path.join(FILES, "overlay-gre-apply")
ap = load_program("overlay-gre-apply")

JUMP_B = ["-m", "comment", "--comment", "overlay.gre gre-router_b", "-j", "OGRE-IN-gre-router_b"]
JUMP_C = ["-m", "comment", "--comment", "overlay.gre gre-router_c", "-j", "OGRE-IN-gre-router_c"]
JUMP_DROP = ["-m", "comment", "--comment", "overlay.gre", "-j", "OGRE-GRE-DROP"]
JUMP_NAT = ["-m", "comment", "--comment", "overlay.gre", "-j", "OGRE-NAT"]
DATA = {
    "_comment": "written by the test",
    "format": 1,
    "iptables": "iptables-nft",
    "chains": [
        {"table": "filter", "chain": "OGRE-IN-gre-router_b", "parent": "INPUT", "position": "first", "jump": JUMP_B,
         "rules": [["-i", "gre-router_b", "-j", "ACCEPT"], ["-p", "gre", "-s", "172.19.1.2", "-j", "ACCEPT"]]},
        {"table": "filter", "chain": "OGRE-IN-gre-router_c", "parent": "INPUT", "position": "first", "jump": JUMP_C,
         "rules": [["-i", "gre-router_c", "-j", "ACCEPT"]]},
        {"table": "filter", "chain": "OGRE-GRE-DROP", "parent": "INPUT", "position": "last", "jump": JUMP_DROP,
         "rules": [["-p", "gre", "-m", "comment", "--comment", "overlay.gre: GRE from any other address", "-j", "DROP"]]},
        {"table": "nat", "chain": "OGRE-NAT", "parent": "POSTROUTING", "position": "last", "jump": JUMP_NAT,
         "rules": [["-s", "10.10.1.0/24", "!", "-d", "10.10.1.0/24", "-o", "eth0", "-j", "MASQUERADE"]]},
    ],
    "links": [
        {"name": "gre-router_b",
         "create": ["link", "add", "gre-router_b", "type", "gre", "remote", "172.19.1.2", "local", "172.19.1.1", "ttl", "64"],
         "lines": [["link", "set", "gre-router_b", "up"], ["addr", "replace", "10.0.0.1/30", "dev", "gre-router_b"],
                   ["route", "replace", "20.10.1.0/24", "dev", "gre-router_b"]]},
        {"name": "gre-router_c",
         "create": ["link", "add", "gre-router_c", "type", "gre", "remote", "172.19.1.3", "local", "172.19.1.1"],
         "lines": [["link", "set", "gre-router_c", "up"]]},
    ],
    "ip": [["route", "replace", "20.10.2.0/24", "via", "10.10.1.1", "proto", "static"]],
    "settings": [{"path": "/proc/sys/net/ipv4/conf/gre-router_b/accept_local", "value": "1"}],
    "ipsec": True,
}
SETTING = "proc/sys/net/ipv4/conf/gre-router_b/accept_local"

PAYLOAD_ALL_MISSING = """*filter
:OGRE-IN-gre-router_b - [0:0]
:OGRE-IN-gre-router_c - [0:0]
:OGRE-GRE-DROP - [0:0]
-A OGRE-IN-gre-router_b -i gre-router_b -j ACCEPT
-A OGRE-IN-gre-router_b -p gre -s 172.19.1.2 -j ACCEPT
-A OGRE-IN-gre-router_c -i gre-router_c -j ACCEPT
-A OGRE-GRE-DROP -p gre -m comment --comment "overlay.gre: GRE from any other address" -j DROP
-I INPUT 1 -m comment --comment "overlay.gre gre-router_b" -j OGRE-IN-gre-router_b
-I INPUT 1 -m comment --comment "overlay.gre gre-router_c" -j OGRE-IN-gre-router_c
-A INPUT -m comment --comment overlay.gre -j OGRE-GRE-DROP
COMMIT
*nat
:OGRE-NAT - [0:0]
-A OGRE-NAT -s 10.10.1.0/24 ! -d 10.10.1.0/24 -o eth0 -j MASQUERADE
-A POSTROUTING -m comment --comment overlay.gre -j OGRE-NAT
COMMIT
"""

BATCH_NONE_THERE = """link add gre-router_b type gre remote 172.19.1.2 local 172.19.1.1 ttl 64
link add gre-router_c type gre remote 172.19.1.3 local 172.19.1.1
link set gre-router_b up
addr replace 10.0.0.1/30 dev gre-router_b
route replace 20.10.1.0/24 dev gre-router_b
link set gre-router_c up
route replace 20.10.2.0/24 via 10.10.1.1 proto static
"""


def check_argv(table, chain, tokens):
    return ["iptables-nft", "-w", "10", "-t", table, "-C", chain] + list(tokens)


class FakeRun(object):
    """Records every command; an `iptables -C` succeeds when its argv is in PRESENT, other commands as FAIL says."""

    def __init__(self, present=(), fail=None):
        self.calls = []
        self.present = [list(argv) for argv in present]
        self.fail = fail or {}

    def __call__(self, argv, input=None, timeout=None):  # pylint: disable=redefined-builtin
        assert timeout == ap.COMMAND_TIMEOUT
        self.calls.append((list(argv), input))
        if "-C" in argv:
            return (0, "", "") if list(argv) in self.present else (1, "", "iptables: Bad rule (does a matching rule exist in that chain?).")
        if argv[0] in self.fail:
            rc, err = self.fail[argv[0]]
            return rc, "", err
        return 0, "", ""

    def commands(self):
        return [argv for argv, _input in self.calls]

    def input_of(self, program):
        inputs = [data for argv, data in self.calls if argv[0] == program]
        assert len(inputs) == 1, self.calls
        return inputs[0]


class FakeLock(object):
    """A lock factory that records when the lock is held."""

    def __init__(self):
        self.held = False
        self.taken = 0

    def __call__(self):
        return self

    def __enter__(self):
        assert not self.held
        self.held = True
        self.taken += 1
        return self

    def __exit__(self, *exc_info):
        self.held = False


def validated(data=None):
    return ap.validate(copy.deepcopy(DATA if data is None else data))


@pytest.fixture
def root(tmp_path):
    """A /proc/sys with the tunnel's setting (at 0), and a /sys/class/net without the tunnels."""
    setting = tmp_path / SETTING
    setting.parent.mkdir(parents=True)
    setting.write_text("0\n")
    (tmp_path / "sys" / "class" / "net").mkdir(parents=True)
    return tmp_path


def write_config(tmp_path, data):
    path = tmp_path / "tunnels.json"
    path.write_text(json.dumps(data))
    return str(path)


def run_main(tmp_path, root, runner, data=None, action=None, find=lambda name: "/usr/sbin/" + name, lock=None):
    argv = ["--config", write_config(tmp_path, DATA if data is None else data), "tunnels"] + ([action] if action else [])
    return ap.main(argv, run=runner, find=find, root=str(root), lock=lock or FakeLock())


# --- what is written for iptables-restore and ip -batch ----------------------------------------------------------

def test_restore_payload_declares_fills_then_adds_the_missing_jumps():
    data = validated()
    missing = set((chain["table"], chain["chain"]) for chain in data["chains"])
    assert ap.restore_payload(data["chains"], missing) == PAYLOAD_ALL_MISSING


def test_first_jumps_end_up_as_the_modules_replay_puts_them():
    """Replaying the payload's -I/-A lines on an INPUT that holds a foreign rule: each 'first' jump inserted at the top
    in list order, as the modules' replay_lines do (the list's last chain ends on top), each 'last' one appended."""
    data = validated()
    missing = set((chain["table"], chain["chain"]) for chain in data["chains"])
    chain_input = ["foreign ACCEPT rule"]
    for line in ap.restore_payload(data["chains"], missing).splitlines():
        if line.startswith("-I INPUT 1 "):
            chain_input.insert(0, line.split()[-1])
        elif line.startswith("-A INPUT "):
            chain_input.append(line.split()[-1])
    assert chain_input == ["OGRE-IN-gre-router_c", "OGRE-IN-gre-router_b", "foreign ACCEPT rule", "OGRE-GRE-DROP"]


def test_a_jump_in_place_is_not_added_again():
    data = validated()
    payload = ap.restore_payload(data["chains"], {("filter", "OGRE-IN-gre-router_c")})
    assert "-I INPUT 1 -m comment --comment \"overlay.gre gre-router_c\" -j OGRE-IN-gre-router_c\n" in payload
    assert "-j OGRE-IN-gre-router_b\n" not in payload.replace("-A OGRE-IN-gre-router_b", "")
    assert "OGRE-GRE-DROP\n" not in payload and "-j OGRE-NAT\n" not in payload
    # the chains are still declared (flushed) and filled
    assert ":OGRE-NAT - [0:0]\n-A OGRE-NAT -s 10.10.1.0/24 ! -d 10.10.1.0/24 -o eth0 -j MASQUERADE\nCOMMIT\n" in payload


@pytest.mark.parametrize("token, written", [
    ("ACCEPT", "ACCEPT"),
    ("10.0.0.0/8", "10.0.0.0/8"),
    ("!", "!"),
    ("gre+", "gre+"),
    ("overlay.gre gre-router_b", '"overlay.gre gre-router_b"'),
    ("a\tb", '"a\tb"'),
    ("$(reboot)", '"$(reboot)"'),
    ("it's", '"it\'s"'),
])
def test_restore_tokens_are_quoted_only_when_needed(token, written):
    assert ap.restore_token(token) == written


def test_batch_text_makes_only_the_missing_links():
    data = validated()
    assert ap.batch_text(data["links"], data["ip"], exists=lambda name: False) == BATCH_NONE_THERE
    text = ap.batch_text(data["links"], data["ip"], exists=lambda name: name == "gre-router_b")
    assert text == BATCH_NONE_THERE.replace("link add gre-router_b type gre remote 172.19.1.2 local 172.19.1.1 ttl 64\n", "")
    assert ap.batch_text([], [], exists=lambda name: False) == ""


# --- all, firewall: the steps, in order ----------------------------------------------------------------------------

def test_all_runs_the_firewall_then_the_tunnels_then_settings_then_ipsec(tmp_path, root, capsys):
    runner = FakeRun()
    lock = FakeLock()
    assert run_main(tmp_path, root, runner, lock=lock) == 0
    data = validated()
    checks = [check_argv(chain["table"], chain["parent"], chain["jump"]) for chain in data["chains"]]
    assert runner.commands() == checks + [["iptables-nft-restore", "-w", "10", "--noflush"], ["ip", "-batch", "-"]]
    assert runner.input_of("iptables-nft-restore") == PAYLOAD_ALL_MISSING
    assert runner.input_of("ip") == BATCH_NONE_THERE
    assert all(data is None for argv, data in runner.calls if "-C" in argv)
    assert (root / SETTING).read_text() == "1\n"
    assert lock.taken == 1
    assert "made gre-router_b, gre-router_c" in capsys.readouterr().out


def test_the_steps_run_under_the_lock(tmp_path, root):
    lock = FakeLock()
    seen = []

    def runner(argv, input=None, timeout=None):  # pylint: disable=redefined-builtin
        seen.append(lock.held)
        return FakeRun()(argv, input=input, timeout=timeout)

    assert run_main(tmp_path, root, runner, lock=lock) == 0
    assert seen and all(seen)


def test_a_failed_firewall_makes_no_tunnel(tmp_path, root, capsys):
    runner = FakeRun(fail={"iptables-nft-restore": (2, "iptables-nft-restore: line 5 failed: Couldn't load match `comment'")})
    assert run_main(tmp_path, root, runner) == 1
    assert [argv[0] for argv in runner.commands()][-1] == "iptables-nft-restore"
    assert not any(argv[0] in ("ip", "swanctl") for argv in runner.commands())
    assert (root / SETTING).read_text() == "0\n"
    err = capsys.readouterr().err
    assert "the firewall step failed" in err
    assert "`iptables-nft-restore -w 10 --noflush` exited 2: iptables-nft-restore: line 5 failed: Couldn't load match `comment'" in err
    assert "the later steps were not run (links, settings, ipsec)" in err


def test_a_failed_ip_batch_leaves_settings_and_ipsec_alone(tmp_path, root, capsys):
    runner = FakeRun(fail={"ip": (1, "RTNETLINK answers: File exists\nCommand failed -:1")})
    assert run_main(tmp_path, root, runner) == 1
    assert runner.commands()[-1] == ["ip", "-batch", "-"]
    assert (root / SETTING).read_text() == "0\n"
    err = capsys.readouterr().err
    assert "the links step failed: `ip -batch -` exited 1: RTNETLINK answers: File exists" in err
    assert "not run (settings, ipsec)" in err


def test_a_second_run_makes_nothing_and_adds_no_jump(tmp_path, root):
    first = FakeRun()
    assert run_main(tmp_path, root, first) == 0
    # what the first run left: the tunnels exist, the jumps are in place
    for link in DATA["links"]:
        (root / "sys" / "class" / "net" / link["name"]).mkdir()
    data = validated()
    second = FakeRun(present=[check_argv(chain["table"], chain["parent"], chain["jump"]) for chain in data["chains"]])
    assert run_main(tmp_path, root, second) == 0
    batch = second.input_of("ip")
    assert "link add" not in batch
    assert batch == "".join(line for line in BATCH_NONE_THERE.splitlines(True) if not line.startswith("link add"))
    payload = second.input_of("iptables-nft-restore")
    assert not [line for line in payload.splitlines() if line.startswith(("-I INPUT", "-A INPUT", "-A POSTROUTING"))]
    # the chains themselves are rebuilt exactly as the first time
    owned = [line for line in PAYLOAD_ALL_MISSING.splitlines() if not line.startswith(("-I INPUT", "-A INPUT", "-A POSTROUTING"))]
    assert payload.splitlines() == owned
    assert (root / SETTING).read_text() == "1\n"


def test_a_check_that_cannot_tell_fails_rather_than_doubling_the_jump(tmp_path, root, capsys):
    def runner(argv, input=None, timeout=None):  # pylint: disable=redefined-builtin
        if "-C" in argv:
            return 4, "", "Another app is currently holding the xtables lock. Stopped waiting after 10s."
        pytest.fail("ran %s" % argv)

    assert run_main(tmp_path, root, runner) == 1
    err = capsys.readouterr().err
    assert "cannot tell whether a jump is in place" in err and "exited 4: Another app is currently holding the xtables lock" in err


def test_the_firewall_action_runs_the_firewall_alone(tmp_path, root):
    runner = FakeRun()
    assert run_main(tmp_path, root, runner, action="firewall") == 0
    assert [argv[0] for argv in runner.commands()] == ["iptables-nft"] * 4 + ["iptables-nft-restore"]
    assert (root / SETTING).read_text() == "0\n"


def test_nothing_of_a_kind_means_no_command(tmp_path, root):
    runner = FakeRun()
    assert run_main(tmp_path, root, runner, data={"format": 1}) == 0
    assert runner.calls == []


def test_a_lan_hosts_routes_alone(tmp_path, root):
    runner = FakeRun()
    data = {"format": 1, "ip": [["route", "replace", "20.10.1.0/24", "via", "10.10.1.1", "proto", "static"]]}
    assert run_main(tmp_path, root, runner, data=data) == 0
    assert runner.calls == [(["ip", "-batch", "-"], "route replace 20.10.1.0/24 via 10.10.1.1 proto static\n")]


def test_a_setting_of_a_missing_interface_fails_the_step(tmp_path, root, capsys):
    (root / SETTING).unlink()
    runner = FakeRun()
    assert run_main(tmp_path, root, runner) == 1
    assert not any(argv[0] == "swanctl" for argv in runner.commands())
    assert not (root / SETTING).exists()
    assert "the settings step failed: cannot write 1 to /proc/sys/net/ipv4/conf/gre-router_b/accept_local" in capsys.readouterr().err


def test_ipsec_loads_nothing_itself_so_other_tools_connections_stay(tmp_path, root, capsys):
    """strongswan.service loads the swanctl files when it starts; a `swanctl --load-all` here, run again whenever the
    unit restarts with a firewall reload, would unload the connections that other tools loaded over vici."""
    runner = FakeRun()
    assert run_main(tmp_path, root, runner) == 0
    assert not any(argv[0] == "swanctl" for argv in runner.commands())
    assert ap.IPSEC_BY_CHARON + "\n" in capsys.readouterr().out


def test_ipsec_without_strongswan_fails(tmp_path, root, capsys):
    runner = FakeRun()
    assert run_main(tmp_path, root, runner, find=lambda name: None) == 1
    assert not any(argv[0] == "swanctl" for argv in runner.commands())
    assert "the ipsec step failed: strongSwan is not installed (no swanctl in" in capsys.readouterr().err


class Clock(object):
    """A clock that only the fake sleep moves."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self):
        return self.now


def test_a_failed_ip_batch_is_tried_again_for_wait_seconds(root, capsys):
    """The second try makes only the tunnel the first one did not make."""
    net = root / "sys" / "class" / "net"
    results = [(1, "RTNETLINK answers: Network is unreachable\nCommand failed -:4"), (0, "")]
    batches = []

    def runner(argv, input=None, timeout=None):  # pylint: disable=redefined-builtin
        assert argv == ["ip", "-batch", "-"]
        batches.append(input)
        (net / "gre-router_b").mkdir(exist_ok=True)  # the first line of the first try made it
        rc, err = results.pop(0)
        return rc, "", err

    data = copy.deepcopy(DATA)
    data["wait"] = 60
    clock = Clock()
    applier = ap.Applier(validated(data), run=runner, root=str(root), sleep=clock.sleep, clock=clock)
    applier.links()
    assert batches[0] == BATCH_NONE_THERE
    assert batches[1] == BATCH_NONE_THERE.replace("link add gre-router_b type gre remote 172.19.1.2 local 172.19.1.1 ttl 64\n", "")
    assert clock.sleeps == [1]
    assert "Network is unreachable" in capsys.readouterr().err


def test_the_retries_end_after_wait_seconds(root):
    data = copy.deepcopy(DATA)
    data["wait"] = 3
    clock = Clock()
    runner = FakeRun(fail={"ip": (2, "Error: Nexthop has invalid gateway.")})
    applier = ap.Applier(validated(data), run=runner, root=str(root), sleep=clock.sleep, clock=clock)
    with pytest.raises(ap.StepError, match="exited 2: Error: Nexthop has invalid gateway"):
        applier.links()
    assert clock.sleeps == [1, 1, 1] and len(runner.calls) == 4


def test_no_wait_no_retry(root):
    clock = Clock()
    runner = FakeRun(fail={"ip": (2, "Error: Nexthop has invalid gateway.")})
    applier = ap.Applier(validated(), run=runner, root=str(root), sleep=clock.sleep, clock=clock)
    with pytest.raises(ap.StepError):
        applier.links()
    assert clock.sleeps == [] and len(runner.calls) == 1


# --- the data file -------------------------------------------------------------------------------------------------

def _set(path, value):
    """A mutation of DATA: PATH is a list of keys and indexes; value None removes the key."""
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        if value is None:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return mutate


BAD = [
    (_set(["chains", 1, "rules", 0, 3], 'ACC"EPT'), 'chains[1].rules[0][3] is "ACC\\"EPT"', "double quote"),
    (_set(["chains", 0, "jump", 3], "overlay.gre\\ b"), "chains[0].jump[3]", "backslash"),
    (_set(["chains", 0, "rules", 1, 0], "-p\n-A"), "chains[0].rules[1][0]", "newline"),
    (_set(["chains", 0, "rules", 1, 0], "gre\r"), "chains[0].rules[1][0]", "carriage return"),
    (_set(["chains", 0, "rules", 1, 0], "gre\0"), "chains[0].rules[1][0]", "NUL"),
    (_set(["chains", 0, "rules", 0], ["-t", "nat", "-j", "ACCEPT"]), 'chains[0].rules[0][0] is "-t"', "-t option"),
    (_set(["chains", 0, "rules", 0, 1], ""), 'chains[0].rules[0][1] is ""', "non-empty string"),
    (_set(["chains", 0, "rules", 0], []), "chains[0].rules[0] is []", "empty list"),
    (_set(["format"], 2), "format is 2", "format 1"),
    (_set(["format"], True), "format is true", "format 1"),
    (_set(["format"], None), "format is missing", ""),
    (_set(["iptables"], "nft"), 'iptables is "nft"', "iptables-legacy"),
    (_set(["chains", 2, "table"], "security"), 'chains[2].table is "security"', "filter"),
    (_set(["chains", 0, "chain"], "INPUT"), 'chains[0].chain is "INPUT"', "built-in"),
    (_set(["chains", 0, "chain"], "A" * 29), "chains[0].chain", "28"),
    (_set(["chains", 0, "chain"], "-X"), 'chains[0].chain is "-X"', "not a chain name"),
    (_set(["chains", 0, "parent"], "POSTROUTING"), 'chains[0].parent is "POSTROUTING"', "INPUT, FORWARD, OUTPUT"),
    (_set(["chains", 3, "parent"], "FORWARD"), 'chains[3].parent is "FORWARD"', "nat table"),
    (_set(["chains", 0, "position"], "top"), 'chains[0].position is "top"', "first"),
    (_set(["chains", 0, "jump"], ["-j", "OGRE-IN-gre-router_c"]), "chains[0].jump", "does not jump to OGRE-IN-gre-router_b"),
    (_set(["chains", 1], DATA["chains"][0]), 'chains[1].chain is "OGRE-IN-gre-router_b"', "twice"),
    (_set(["chains", 0, "comment"], "x"), 'chains[0] has the key "comment"', "does not know"),
    (_set(["links", 0, "name"], "gre:b"), 'links[0].name is "gre:b"', "interface name"),
    (_set(["links", 0, "name"], "a-name-too-long-"), "links[0].name", "interface name"),
    (_set(["links", 0, "create", 2], "gre-router_c"), "links[0].create", "link add gre-router_b"),
    (_set(["links", 0, "create", 8], "172.19.1.1;reboot"), 'links[0].create[8] is "172.19.1.1;reboot"', "ip -batch"),
    (_set(["links", 0, "lines", 0], ["-6", "route", "replace", "::/0", "dev", "gre-router_b"]), 'links[0].lines[0][0] is "-6"', "-6"),
    (_set(["links", 0, "lines", 1, 2], "10.0.0.1/30 dev x"), "links[0].lines[1][2]", "white space"),
    (_set(["links", 0, "lines", 1, 2], "#x"), 'links[0].lines[1][2] is "#x"', "'#'"),
    (_set(["links", 0, "lines", 1, 2], "'x'"), "links[0].lines[1][2]", "a single quote"),
    (_set(["links", 0, "lines", 1, 2], 'x"'), "links[0].lines[1][2]", "a double quote"),
    (_set(["links", 0, "lines", 1, 2], "x\\"), "links[0].lines[1][2]", "a backslash"),
    (_set(["links", 0, "lines", 1, 2], "x\0"), "links[0].lines[1][2]", "a NUL"),
    (_set(["links", 0, "lines", 1, 2], "10.0.0.1 peer 10.0.0.2/32"), 'links[0].lines[1][2] is "10.0.0.1 peer 10.0.0.2/32"', "white space"),
    (_set(["links", 1], DATA["links"][0]), 'links[1].name is "gre-router_b"', "twice"),
    (_set(["ip", 0, 0], "neigh"), 'ip[0][0] is "neigh"', "link, addr, route"),
    (_set(["ip", 0], "route replace 20.10.2.0/24 via 10.10.1.1"), "ip[0] is", "not a list"),
    (_set(["settings", 0, "path"], "/proc/sys/net/ipv4/ip_forward"), 'settings[0].path is "/proc/sys/net/ipv4/ip_forward"', "setting of an interface"),
    (_set(["settings", 0, "path"], "/proc/sys/net/ipv4/conf/../ip_forward"), "settings[0].path", "setting of an interface"),
    (_set(["settings", 0, "path"], "/proc/sys/net/ipv4/conf/all/../../../kernel/x"), "settings[0].path", "setting of an interface"),
    (_set(["settings", 0, "value"], "yes"), 'settings[0].value is "yes"', "whole number"),
    (_set(["settings", 0, "value"], 1), "settings[0].value is 1", "as a string"),
    (_set(["ipsec"], "yes"), 'ipsec is "yes"', "true nor false"),
    (_set(["tunnels"], []), 'the data has the key "tunnels"', "does not know"),
    (_set(["wait"], "60"), 'wait is "60"', "whole number of seconds"),
    (_set(["wait"], -1), "wait is -1", "from 0 to 600"),
    (_set(["wait"], 601), "wait is 601", "from 0 to 600"),
    (_set(["wait"], True), "wait is true", "whole number of seconds"),
]


@pytest.mark.parametrize("mutate, field, why", BAD, ids=[case[1].split(" ")[0] + "-" + str(index) for index, case in enumerate(BAD)])
def test_a_bad_data_file_applies_nothing_and_says_where(tmp_path, root, capsys, mutate, field, why):
    data = copy.deepcopy(DATA)
    mutate(data)
    runner = FakeRun()
    lock = FakeLock()
    assert run_main(tmp_path, root, runner, data=data, lock=lock) == 2
    assert runner.calls == [] and lock.taken == 0
    assert (root / SETTING).read_text() == "0\n"
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert str(tmp_path / "tunnels.json") in err and field in err and why in err and "nothing was applied" in err


def test_the_data_of_the_brief_is_valid():
    data = validated()
    assert data["ipsec"] is True and [chain["chain"] for chain in data["chains"]][0] == "OGRE-IN-gre-router_b"
    assert ap.validate({"format": 1}) == {"format": 1, "iptables": "iptables", "chains": [], "links": [], "ip": [],
                                          "settings": [], "ipsec": False, "wait": 0}


def test_a_lan_hosts_data_as_the_role_writes_it():
    data = ap.validate({"_comment": "Ansible managed (overlay.gre.gre_lan_host): the routes to the LANs of site_b", "format": 1,
                        "ip": [["route", "replace", "20.10.1.0/24", "via", "10.10.1.1", "proto", "4"]], "wait": 60})
    assert data["wait"] == 60 and data["ip"] == [["route", "replace", "20.10.1.0/24", "via", "10.10.1.1", "proto", "4"]]


def test_a_key_given_twice_is_refused(tmp_path):
    path = tmp_path / "tunnels.json"
    path.write_text('{"format": 1, "ipsec": true, "ipsec": false}')
    with pytest.raises(ap.ConfigError, match='the key "ipsec" is given twice'):
        ap.load_config(str(path))


def test_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "tunnels.json"
    path.write_text('{"format": 1,')
    with pytest.raises(ap.ConfigError, match="bad data file .*: not JSON"):
        ap.load_config(str(path))


def test_a_missing_file_says_what_writes_it(tmp_path, capsys):
    runner = FakeRun()
    missing = str(tmp_path / "nothing.json")
    assert ap.main(["--config", missing, "tunnels"], run=runner, lock=FakeLock()) == 2
    err = capsys.readouterr().err
    assert missing + " is missing" in err and "gre_router_state: absent" in err and "a run of the role writes it" in err
    assert runner.calls == []


def test_the_default_data_file_is_named_after_name(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(ap, "CONFIG_DIR", str(tmp_path))
    (tmp_path / "lan-routes.json").write_text(json.dumps({"format": 1, "ip": [["route", "replace", "10.0.0.0/8", "via", "10.10.1.1"]]}))
    runner = FakeRun()
    assert ap.main(["lan-routes"], run=runner, lock=FakeLock()) == 0
    assert runner.calls == [(["ip", "-batch", "-"], "route replace 10.0.0.0/8 via 10.10.1.1\n")]
    assert ap.main(["tunnels"], run=runner, lock=FakeLock()) == 2
    assert os.path.join(str(tmp_path), "tunnels.json") + " is missing" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["../etc/x"], ["a b"], ["tunnels", "reboot"], []])
def test_a_bad_command_line_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        ap.main(argv, run=FakeRun(), lock=FakeLock())
    assert caught.value.code == 2
    assert "usage: overlay-gre-apply" in capsys.readouterr().err


def test_the_program_itself_refuses_a_bad_file(tmp_path):
    data = copy.deepcopy(DATA)
    data["chains"][1]["rules"][0][1] = 'gre"x'
    bad = write_config(tmp_path, data)
    proc = subprocess.run([sys.executable, PROGRAM, "--config", bad, "tunnels"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == ("overlay.gre: bad data file %s: chains[1].rules[0][1] is \"gre\\\"x\": holds a double quote, which an "
                           "iptables-restore line cannot carry; nothing was applied\n" % bad)


# --- the guard -----------------------------------------------------------------------------------------------------

def guard_with(runner, lock=None, reload=None, data=None):
    return ap.Guard(ap.Applier(validated(data), run=runner), lock or FakeLock(), reload=reload)


def test_the_guard_leaves_rules_alone_while_any_is_in_place(capsys):
    data = validated()
    # a run of the role removed every jump but one chain's first rule: not a firewall reload
    runner = FakeRun(present=[check_argv("nat", "OGRE-NAT", data["chains"][3]["rules"][0])])
    lock = FakeLock()
    assert guard_with(runner, lock).once() == "in place"
    assert all("-C" in argv for argv in runner.commands()) and lock.taken == 0
    assert runner.commands() == [
        check_argv("filter", "INPUT", JUMP_B), check_argv("filter", "OGRE-IN-gre-router_b", data["chains"][0]["rules"][0]),
        check_argv("filter", "INPUT", JUMP_C), check_argv("filter", "OGRE-IN-gre-router_c", data["chains"][1]["rules"][0]),
        check_argv("filter", "INPUT", JUMP_DROP), check_argv("filter", "OGRE-GRE-DROP", data["chains"][2]["rules"][0]),
        check_argv("nat", "POSTROUTING", JUMP_NAT), check_argv("nat", "OGRE-NAT", data["chains"][3]["rules"][0])]
    assert capsys.readouterr().out == ""


def test_the_guard_puts_the_rules_back_when_all_are_gone(capsys):
    runner = FakeRun()
    lock = FakeLock()
    assert guard_with(runner, lock).once() == "put back"
    assert lock.taken == 1
    assert runner.input_of("iptables-nft-restore") == PAYLOAD_ALL_MISSING
    assert not any(argv[0] in ("ip", "swanctl") for argv in runner.commands())
    out = capsys.readouterr().out
    assert out.startswith("overlay.gre: the firewall rules of the GRE tunnels were gone (a firewall reload?): putting them back\n")


def test_the_guard_reads_the_data_file_again_before_putting_back():
    runner = FakeRun()
    data = copy.deepcopy(DATA)
    del data["chains"][1:]
    fresh = ap.Applier(validated(data), run=runner)
    guard = guard_with(runner, reload=lambda: fresh)
    assert guard.once() == "put back"
    assert guard.applier is fresh
    assert "OGRE-IN-gre-router_c" not in runner.input_of("iptables-nft-restore")


def test_the_guard_says_when_putting_back_failed_and_goes_on(capsys):
    runner = FakeRun(fail={"iptables-nft-restore": (1, "iptables-nft-restore: line 2 failed")})
    sleeps = []
    guard = guard_with(runner)
    guard.sleep = sleeps.append
    guard.run(iterations=3)
    assert sleeps == [1, 1, 1]
    assert [argv[0] for argv in runner.commands()].count("iptables-nft-restore") == 3
    captured = capsys.readouterr()
    assert captured.out.count("were gone (a firewall reload?): putting them back") == 3
    assert captured.err.count(ap.GUARD_FAILED + "\n") == 3
    assert "line 2 failed" in captured.err


def test_the_guard_without_chains_only_sleeps():
    runner = FakeRun()
    sleeps = []
    guard = guard_with(runner, data={"format": 1, "links": DATA["links"]})
    guard.sleep = sleeps.append
    guard.run(iterations=2)
    assert runner.calls == [] and sleeps == [1, 1]


def test_the_guard_goes_on_when_the_lock_stays_taken(tmp_path, capsys):
    path = str(tmp_path / "lock" / "netns-1.lock")
    runner = FakeRun()
    with _lock.held(1, "overlay.gre.gre_tunnel", path=path):
        guard = guard_with(runner, lock=functools.partial(ap.RouterLock, "overlay-gre-apply tunnels", timeout=0.2, path=path))
        assert guard.once() == "failed"
    assert not any(argv[0] == "iptables-nft-restore" for argv in runner.commands())
    err = capsys.readouterr().err
    assert "overlay.gre.gre_tunnel pid %d" % os.getpid() in err and ap.GUARD_FAILED in err


def test_main_guard_loops(tmp_path, root):
    runner = FakeRun()
    sleeps = []
    argv = ["--config", write_config(tmp_path, DATA), "tunnels", "guard"]
    assert ap.main(argv, run=runner, root=str(root), lock=FakeLock(), sleep=sleeps.append, iterations=2) == 0
    assert sleeps == [1, 1]
    assert [argv[0] for argv in runner.commands()].count("iptables-nft-restore") == 2


# --- the lock and the commands -------------------------------------------------------------------------------------

def test_the_lock_file_is_the_modules_one():
    assert ap.lock_path() == _lock.lock_path()
    assert ap.RouterLock("x").path == _lock.lock_path()


def test_a_lock_held_by_a_module_makes_the_run_wait_then_give_up(tmp_path, root, capsys):
    path = str(tmp_path / "lock" / "netns-1.lock")
    runner = FakeRun()
    with _lock.held(1, "overlay.gre.tunnel_firewall", path=path):
        lock = functools.partial(ap.RouterLock, "overlay-gre-apply tunnels", timeout=0.2, path=path)
        assert run_main(tmp_path, root, runner, lock=lock) == ap.EXIT_LOCKED
    assert runner.calls == []
    err = capsys.readouterr().err
    assert "another overlay.gre run holds this router's lock (%s, taken by overlay.gre.tunnel_firewall pid" % path in err
    assert "nothing was applied" in err


def test_a_module_waits_for_the_program(tmp_path):
    path = str(tmp_path / "lock" / "netns-1.lock")
    with ap.RouterLock("overlay-gre-apply tunnels", path=path):
        with pytest.raises(_lock.LockTimeout, match="taken by overlay-gre-apply tunnels pid %d" % os.getpid()):
            with _lock.held(0.2, "overlay.gre.gre_tunnel", path=path):
                pytest.fail("took a lock that the program holds")
    with _lock.held(0.2, "overlay.gre.gre_tunnel", path=path):  # released at the end of the block
        pass


def test_run_command_gives_no_stdin_unless_input():
    code = "import sys; print(repr(sys.stdin.read()))"
    assert ap.run_command([sys.executable, "-c", code]) == (0, "''\n", "")
    assert ap.run_command([sys.executable, "-c", code], input="*filter\n") == (0, "'*filter\\n'\n", "")


def test_run_command_kills_a_command_that_hangs():
    rc, _out, err = ap.run_command([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert rc is None and err == "did not end within 0.5 s and was killed"


def test_run_command_of_a_missing_program():
    rc, _out, err = ap.run_command(["/nonexistent/overlay-gre-nothing"])
    assert rc is None and err.startswith("could not be run: ")
