# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keepalive sender's up/down state machine and its daemon loop, on a fake clock and fake sockets."""

from __future__ import annotations

import json

import pytest

from support.keepalive import load_keepalive

ka = load_keepalive()


def test_starts_up_and_stays_up_while_replies_come():
    st = ka.KeepaliveState(retries=3)
    for second in range(10):
        assert st.tick(second) is None
        assert st.reply(second + 0.01) is None
    assert (st.state, st.misses, st.sent, st.received, st.last_reply) == ("up", 0, 10, 10, 9.01)


@pytest.mark.parametrize("retries", [1, 3, 5])
def test_down_after_retries_periods_without_reply(retries):
    st = ka.KeepaliveState(retries=retries)
    st.tick(0)
    st.reply(0.01)
    transitions = [st.tick(t) for t in range(1, retries + 3)]  # the keepalive sent at 1 is the first unanswered
    # at tick 1 + k, k keepalives went unanswered: down at k == retries, once
    assert transitions[:retries] == [None] * retries
    assert transitions[retries] == "down"
    assert transitions[retries + 1:] == [None]
    assert st.state == "down" and st.misses == retries + 1 and st.last_change == retries + 1


def test_misses_must_be_in_a_row():
    st = ka.KeepaliveState(retries=3)
    for second in range(20):
        assert st.tick(second) is None
        if second % 3 == 2:  # two of three lost
            st.reply(second + 0.5)
    assert st.state == "up"


def test_up_at_the_first_reply_and_counter_reset():
    st = ka.KeepaliveState(retries=2)
    for second in range(5):
        st.tick(second)
    assert st.state == "down"
    assert st.reply(5.2) == "up"
    assert (st.state, st.misses, st.last_change) == ("up", 0, 5.2)
    assert st.reply(5.3) is None  # a late second reply changes nothing
    assert st.tick(6) is None


def test_bound_break_to_down_is_period_times_retries_plus_one_period():
    """Whatever the phase of the break between two keepalives, down comes within period * (retries + 1)."""
    period, retries = 1.0, 3
    for phase in (0.001, 0.25, 0.5, 0.999):
        st = ka.KeepaliveState(retries=retries)
        broken = 10 + phase
        t = 0.0
        while st.state == "up":
            st.tick(t)
            if t < broken:
                st.reply(t + 0.0005)  # the reply of a keepalive sent before the break arrives
            t += period
        assert st.last_change - broken <= period * (retries + 1)
        assert st.last_change - broken > period * (retries - 1)


def test_retries_below_one_are_refused():
    with pytest.raises(ValueError):
        ka.KeepaliveState(retries=0)


# --- the daemon loop with stand-ins for its sockets and routes -------------------------------------------------

class FakeClock(object):
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class FakeRoutes(object):
    def __init__(self):
        self.applied = []

    def apply(self, state):
        if not self.applied or self.applied[-1] != state:
            self.applied.append(state)
            return ["%s route" % state]
        return []


class FakeSocket(object):
    def __init__(self):
        self.sent = []

    def sendto(self, packet, address):
        self.sent.append((packet, address))


def make_daemon(tmp_path, **conf):
    base = {"tunnel": "gre-b", "local": "172.19.1.1", "remote": "172.19.1.2", "key": 42, "period": 1, "retries": 3,
            "routes": ["20.10.1.0/24"], "state_file": str(tmp_path / "state.json")}
    base.update(conf)
    clock = FakeClock()
    daemon = ka.Daemon(ka.normalise_config(base), route_keeper=FakeRoutes(), clock=clock, wallclock=clock)
    daemon.tx = FakeSocket()
    return daemon, clock


def reply_for(daemon):
    packet = ka.build_keepalive(daemon.conf["local"], daemon.conf["remote"], daemon.conf["key"])
    return ka.parse_gre_packet(packet)["payload"]


def test_daemon_logs_down_and_up_and_writes_the_state_file(tmp_path, capsys):
    daemon, clock = make_daemon(tmp_path)
    for _second in range(5):
        daemon.on_tick()
        clock.now += 1
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["state"] == "down" and state["misses"] == 4 and state["sent"] == 5 and state["received"] == 0
    daemon.on_packet(reply_for(daemon))
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["state"] == "up" and state["received"] == 1 and state["last_reply"] == clock.now
    out = capsys.readouterr().out.splitlines()
    assert "down: 3 keepalives missed" in out and "up" in out
    assert out.index("down: 3 keepalives missed") < out.index("up")
    assert daemon.routes.applied == ["up", "down", "up"]
    packet, address = daemon.tx.sent[0]
    assert address == ("172.19.1.2", 0) and ka.parse_gre_packet(packet)["key"] == 42


def test_daemon_ignores_packets_that_are_not_its_replies(tmp_path):
    daemon, clock = make_daemon(tmp_path)
    for _second in range(4):
        daemon.on_tick()
        clock.now += 1
    other_key = ka.parse_gre_packet(ka.build_keepalive("172.19.1.1", "172.19.1.2", 7))["payload"]
    daemon.on_packet(other_key)
    daemon.on_packet(ka.build_keepalive("172.19.1.2", "172.19.1.1", 42))  # the peer's own keepalive
    assert daemon.state.state == "down" and daemon.state.received == 0


def test_a_restart_resumes_the_state_of_the_earlier_run(tmp_path):
    daemon, clock = make_daemon(tmp_path)
    for _second in range(5):
        daemon.on_tick()
        clock.now += 1
    again, dummy = make_daemon(tmp_path)
    assert again.state.state == "down"
    (tmp_path / "state.json").unlink()
    fresh, dummy = make_daemon(tmp_path)  # after a reboot /run is empty: up, as IOS brings a tunnel up
    assert fresh.state.state == "up"


@pytest.mark.parametrize("conf, message", [
    ({"local": "2001:db8::1"}, "IPv4"),
    ({"remote": "nowhere"}, "not an IP address"),
    ({"retries": 0}, "retries"),
    ({"period": 0}, "period"),
    ({"key": 1 << 32}, "key"),
    ({"tunnel": ""}, "tunnel is missing"),
])
def test_bad_configuration_is_refused(conf, message):
    base = {"tunnel": "gre-b", "local": "172.19.1.1", "remote": "172.19.1.2"}
    base.update(conf)
    with pytest.raises(ka.ConfigError, match=message):
        ka.normalise_config(base)


def test_configuration_defaults():
    conf = ka.normalise_config({"tunnel": "gre-b", "local": "172.19.1.1", "remote": "172.19.1.2",
                                "routes": ["20.10.1.0/24", {"dest": "30.0.0.0/8", "metric": 5}]})
    assert conf["period"] == 10 and conf["retries"] == 3 and conf["key"] is None and conf["ttl"] == 255
    assert conf["routes"] == [{"dest": "20.10.1.0/24", "metric": 0, "via": None}, {"dest": "30.0.0.0/8", "metric": 5, "via": None}]
    assert conf["state_file"] == "/run/overlay-gre/keepalive-gre-b.json"
