# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.gre.peer_probe's reading of ip and ping, its verdicts, and its probing of every peer at once."""

from __future__ import annotations

import threading

import pytest

from ansible_collections.overlay.gre.plugins.module_utils import _peer_probe as pp


def test_route_device_only_for_a_directly_connected_peer():
    assert pp.route_device("172.19.1.2 from 172.19.1.1 dev bond0") == "bond0"
    assert pp.route_device("172.19.9.2 from 172.19.1.1 via 172.19.1.254 dev bond0") is None
    assert pp.clean_route("172.19.1.2 from 172.19.1.1 dev bond0 uid 0 \n    cache \n") == "172.19.1.2 from 172.19.1.1 dev bond0"


def test_verdicts_say_how_the_peer_answered():
    assert pp.underlay_verdict("p", 0, "2 received", "r", "bond0", "") == "answered: ICMP echo (2 received)"
    assert pp.underlay_verdict("p", 1, "0 received", "r", "bond0", "REACHABLE").startswith("answered: ARP on bond0 (neighbour entry REACHABLE)")
    verdict = pp.underlay_verdict("p", 1, "0 received", "r", "bond0", "FAILED")
    assert verdict.startswith("no answer: no ICMP echo reply (0 received), and no ARP answer on bond0 (neighbour entry FAILED")
    assert "is not on a directly connected network" in pp.underlay_verdict("p", 1, "x", "r", None, "")


def test_ping_summary_and_neighbour_state():
    out = "PING x\n\n--- x ping statistics ---\n2 packets transmitted, 0 received, 100% packet loss, time 51ms\n"
    assert pp.ping_summary(out) == "2 packets transmitted, 0 received, 100% packet loss, time 51ms"
    assert pp.ping_summary("ping: bind: Cannot assign requested address\n") == "ping: bind: Cannot assign requested address"
    assert pp.neighbour_state("\n172.19.1.2 lladdr 02:00:00:00:00:01 REACHABLE\n") == "REACHABLE"
    assert pp.neighbour_state("") == ""


def test_every_peer_is_probed_at_once(tmp_path):
    """Fifteen peers whose pings each wait for all the others: they only finish when they all run together."""
    barrier = threading.Barrier(15, timeout=20)

    def run(argv):
        if argv[0] == "ping":
            barrier.wait()
            return 0, "2 packets transmitted, 2 received\n", ""
        if argv[1] == "route":
            return 0, "%s from 172.19.0.1 via 172.19.0.254 dev eth0 uid 0\n" % argv[3], ""
        return 0, "", ""
    prober = pp.Prober(run, sysfs=str(tmp_path))
    peers = [{"name": "s%d" % n, "underlay_ip": "172.19.0.%d" % n} for n in range(2, 17)]
    result = prober.probe("172.19.0.1", peers, underlay=True, tunnels=True)
    assert sorted(result) == sorted(p["name"] for p in peers)
    assert all(r["underlay"].startswith("answered: ICMP echo") and r["tunnel"] is None for r in result.values())


def test_tunnel_ping_only_through_a_tunnel_that_exists(tmp_path):
    (tmp_path / "gre-s2").mkdir()
    calls = []

    def run(argv):
        calls.append(argv)
        return (0 if argv[-1] == "10.255.0.2" else 1), "", ""
    prober = pp.Prober(run, sysfs=str(tmp_path))
    peers = [{"name": "s2", "tunnel": "gre-s2", "tunnel_peer_address": "10.255.0.2"},
             {"name": "s3", "tunnel": "gre-s3", "tunnel_peer_address": "10.255.0.6"}]
    result = prober.probe(None, peers, underlay=False, tunnels=True)
    assert result == {"s2": {"underlay": None, "tunnel": "answered", "underlay_mtu": None},
                      "s3": {"underlay": None, "tunnel": None, "underlay_mtu": None}}
    assert [c for c in calls if "gre-s3" in c] == []


def test_a_tunnel_that_answers_stands_for_its_underlay_and_the_others_are_probed(tmp_path):
    for name in ("gre-s2", "gre-s3"):
        (tmp_path / name).mkdir()
    calls = []

    def run(argv):
        calls.append(argv)
        if argv[0] == "ping":
            return (0 if argv[-1] in ("10.255.0.2", "172.19.0.4") else 1), "2 packets transmitted\n", ""
        if argv[1] == "route":
            return 0, "%s from 172.19.0.1 via 172.19.0.254 dev eth0\n" % argv[3], ""
        return 0, "", ""
    peers = [{"name": "s2", "underlay_ip": "172.19.0.2", "tunnel": "gre-s2", "tunnel_peer_address": "10.255.0.2"},
             {"name": "s3", "underlay_ip": "172.19.0.3", "tunnel": "gre-s3", "tunnel_peer_address": "10.255.0.6"},
             {"name": "s4", "underlay_ip": "172.19.0.4", "tunnel": "gre-s4", "tunnel_peer_address": "10.255.0.10"}]
    result = pp.Prober(run, sysfs=str(tmp_path)).probe("172.19.0.1", peers, underlay=True, tunnels=True)
    assert result["s2"]["underlay"].startswith("answered: through the tunnel gre-s2") and result["s2"]["tunnel"] == "answered"
    assert result["s3"]["tunnel"] == "no answer" and result["s3"]["underlay"].startswith("no answer:")
    assert result["s4"]["tunnel"] is None and result["s4"]["underlay"].startswith("answered: ICMP echo")
    assert not [c for c in calls if c[-1] == "172.19.0.2"]  # s2's underlay was not probed again


def test_underlay_mtu_is_the_mtu_of_the_device_that_routes_to_the_peer(tmp_path):
    (tmp_path / "ppp0").mkdir()
    (tmp_path / "ppp0" / "mtu").write_text("1492\n")

    def run(argv):
        if argv[1:3] == ["route", "get"]:
            if argv[3] == "172.19.0.9":
                return 2, "", "RTNETLINK answers: Network is unreachable\n"
            return 0, "%s from 172.19.0.1 via 100.64.0.1 dev ppp0 uid 0\n    cache\n" % argv[3], ""
        return 1, "", ""
    prober = pp.Prober(run, sysfs=str(tmp_path))
    assert prober.underlay_mtu("172.19.0.1", "172.19.0.2") == 1492
    assert prober.underlay_mtu("172.19.0.1", "172.19.0.9") is None
    peers = [{"name": "s2", "underlay_ip": "172.19.0.2"}, {"name": "s9", "underlay_ip": "172.19.0.9"}]
    result = prober.probe("172.19.0.1", peers, underlay=False, tunnels=False)
    assert result["s2"]["underlay_mtu"] == 1492 and result["s9"]["underlay_mtu"] is None


def test_arp_answer_is_waited_for(monkeypatch):
    monkeypatch.setattr(pp.time, "sleep", lambda s: None)
    states = iter(["INCOMPLETE", "INCOMPLETE", "REACHABLE"])

    def run(argv):
        if argv[0] == "ping":
            return 1, "2 packets transmitted, 0 received\n", ""
        if argv[1:3] == ["route", "get"]:
            return 0, "172.19.1.2 from 172.19.1.1 dev bond0 uid 0\n", ""
        if argv[1:3] == ["neigh", "show"]:
            return 0, "172.19.1.2 dev bond0 %s\n" % next(states), ""
        return 0, "", ""
    verdict = pp.Prober(run).underlay("172.19.1.1", "172.19.1.2")
    assert verdict.startswith("answered: ARP on bond0 (neighbour entry REACHABLE)")


def test_our_tunnels_and_leftovers(tmp_path):
    sysfs, etc = tmp_path / "net", tmp_path / "etc"
    for name, alias in (("gre-s2", "overlay.gre.gre_tunnel"), ("gre-x", "someone else"), ("eth0", "")):
        (sysfs / name).mkdir(parents=True)
        (sysfs / name / "ifalias").write_text(alias + "\n")
    etc.mkdir()
    for name in ("router.sh", "keepalive-gre-s2.json", "other.txt", "boot/tunnels.json", "boot/other.txt"):
        (etc / name).parent.mkdir(exist_ok=True)
        (etc / name).write_text("")
    swanctl = tmp_path / "swanctl"
    swanctl.mkdir()
    (swanctl / "overlay-gre-gre-s2.conf").write_text("")
    (swanctl / "other.conf").write_text("")
    prober = pp.Prober(None, sysfs=str(sysfs), etc=str(etc), swanctl=str(swanctl))
    assert prober.our_tunnels() == ["gre-s2"]
    assert prober.leftovers() == ([str(etc / "boot" / "tunnels.json"), str(etc / "router.sh")], ["gre-s2"], ["gre-s2"])


@pytest.mark.parametrize("peers, message", [
    ([{"name": ""}], "peers[0].name: is required"),
    ([{"name": "a", "tunnel": "a/b"}], "peers[0].tunnel: 'a/b' is not a valid interface name"),
])
def test_bad_input_is_named(peers, message):
    with pytest.raises(pp.ProbeInputError) as exc:
        pp.validate({"peers": peers})
    assert str(exc.value).startswith(message)


def test_a_tcp_probe_counts_a_connection_or_a_reset_as_an_answer():
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    prober = pp.Prober(lambda argv: (1, "", ""))
    try:
        assert prober.underlay("127.0.0.1", "127.0.0.1", port) == "answered: TCP port %d (connected)" % port
    finally:
        listener.close()
    # nothing listens there any more: the kernel answers with a reset
    assert prober.underlay("127.0.0.1", "127.0.0.1", port) == (
        "answered: TCP port %d (refused: the peer's kernel answered with a reset)" % port)


def test_a_tcp_probe_without_an_answer(monkeypatch):
    import errno
    import socket

    class Silent(object):
        def __init__(self, *args):
            pass

        def settimeout(self, seconds):
            pass

        def bind(self, address):
            pass

        def connect_ex(self, address):
            raise socket.timeout()

        def close(self):
            pass

    monkeypatch.setattr(pp.socket, "socket", Silent)
    prober = pp.Prober(lambda argv: (1, "", ""))
    assert prober.underlay("172.19.0.1", "172.19.0.2", 22) == "no answer: no TCP answer from port 22 within 2 s"
    Silent.connect_ex = lambda self, address: errno.EHOSTUNREACH
    assert prober.underlay("172.19.0.1", "172.19.0.2", 22) == "no answer: TCP port 22: No route to host"


def test_a_port_that_is_not_one_is_named():
    with pytest.raises(pp.ProbeInputError, match=r"peers\[0\].port: 0 is not a TCP port"):
        pp.validate({"peers": [{"name": "s2", "port": 0}]})
