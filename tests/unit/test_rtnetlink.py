# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rtnetlink reader's decoding, on messages built here: whole conversations, the kernel's errors, and a fuzz test.

tests/kernel/test_gre_tunnel.py and test_ip_route.py compare the reader with `ip -d -j` on a real kernel, and
tests/kernel/test_rtnetlink_sweep.py reads the odd namespaces (no main table, no IPv6, many routes) there.
"""

from __future__ import annotations

import errno
import random
import socket
import struct

import pytest

from ansible_collections.overlay.gre.plugins.module_utils import _rtnetlink as r
from ansible_collections.overlay.gre.plugins.module_utils._gre_tunnel import LiveState
from ansible_collections.overlay.gre.plugins.module_utils._ip_route import LiveRoutes


def attr(kind, payload):
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def message(seq, msg_type, payload, flags=0x2):
    data = struct.pack("=IHHII", 16 + len(payload), msg_type, flags, seq, 0) + payload
    return data + b"\0" * (-len(data) % 4)


def done(seq, error=0):
    return message(seq, r.NLMSG_DONE, struct.pack("=i", error))


def u32(value):
    return struct.pack("=I", value)


def ipv4(text):
    return socket.inet_pton(socket.AF_INET, text)


def ipv6(text):
    return socket.inet_pton(socket.AF_INET6, text)


def link(index, name, link_type=1, up=True, mtu=1500, kind=None, data=b"", alias=None):
    body = struct.pack("=BxHiII", 0, link_type, index, 1 if up else 0, 0) + attr(r.IFLA_IFNAME, name.encode() + b"\0") + attr(r.IFLA_MTU, u32(mtu))
    if alias:
        body += attr(r.IFLA_IFALIAS, alias.encode() + b"\0")
    if kind:
        body += attr(r.IFLA_LINKINFO, attr(r.IFLA_INFO_KIND, kind.encode() + b"\0") + (attr(r.IFLA_INFO_DATA, data) if data else b""))
    return body


def address(family, index, prefixlen, local, peer=None):
    raw = ipv4 if family == socket.AF_INET else ipv6
    return struct.pack("=BBBBI", family, prefixlen, 0, 0, index) + attr(r.IFA_LOCAL, raw(local)) + attr(r.IFA_ADDRESS, raw(peer or local))


def route(family, dst, dst_len, oif, table=254, protocol=4, scope=0, metric=None, gateway=None, flags=0, tos=0):
    raw = ipv4 if family == socket.AF_INET else ipv6
    body = struct.pack("=BBBBBBBBI", family, dst_len, 0, tos, min(table, 252) if table >= 256 else table, protocol, scope, r.RTN_UNICAST, flags)
    body += attr(r.RTA_TABLE, u32(table)) + attr(r.RTA_DST, raw(dst)) + attr(r.RTA_OIF, u32(oif))
    if metric is not None:
        body += attr(r.RTA_PRIORITY, u32(metric))
    if gateway:
        body += attr(r.RTA_GATEWAY, raw(gateway))
    return body


GRE_DATA = b"".join([attr(r.IFLA_GRE_LOCAL, ipv4("172.19.1.1")), attr(r.IFLA_GRE_REMOTE, ipv4("172.19.1.2")), attr(r.IFLA_GRE_TTL, b"\x40"),
                     attr(r.IFLA_GRE_PMTUDISC, b"\x01"), attr(r.IFLA_GRE_IFLAGS, struct.pack("!H", r.GRE_KEY)),
                     attr(r.IFLA_GRE_IKEY, struct.pack("!I", 42)), attr(r.IFLA_GRE_OFLAGS, struct.pack("!H", r.GRE_KEY)),
                     attr(r.IFLA_GRE_OKEY, struct.pack("!I", 42))])


def conversation(v4_routes_error=None, v6_routes_error=None):
    """The kernel's answers to read()'s four dumps (links, addresses, IPv4 routes, IPv6 routes), one datagram each."""
    links = [link(1, "lo", 772, mtu=65536), link(2, "up0.10-x_15chrs", kind="veth"),
             link(5, "gre1", 778, mtu=1472, kind="gre", data=GRE_DATA, alias="overlay.gre.gre_tunnel")]
    addresses = [address(socket.AF_INET, 2, 24, "172.19.1.1"), address(socket.AF_INET, 5, 32, "192.168.8.1", "192.168.8.2"),
                 address(socket.AF_INET6, 2, 64, "2001:db8::1"), address(socket.AF_INET, 99, 24, "10.9.9.9")]
    v4 = [route(socket.AF_INET, "10.1.0.0", 24, 5, metric=7), route(socket.AF_INET, "10.2.0.0", 24, 99),
          route(socket.AF_INET, "10.3.0.0", 24, 2, table=1000, protocol=71, gateway="172.19.1.9", flags=r.RTNH_F_ONLINK, tos=0x10)]
    v6 = [route(socket.AF_INET6, "2001:db8:5::", 48, 5, metric=1024)]
    return [
        b"".join(message(1, r.RTM_NEWLINK, m) for m in links) + done(1),
        b"".join(message(2, r.RTM_NEWADDR, m) for m in addresses) + done(2),
        done(3, v4_routes_error) if v4_routes_error else b"".join(message(3, r.RTM_NEWROUTE, m) for m in v4) + done(3),
        done(4, v6_routes_error) if v6_routes_error else b"".join(message(4, r.RTM_NEWROUTE, m) for m in v6) + done(4),
    ]


class FakeSocket(object):
    """Answers with the datagrams given, in order, as the kernel does for a dump; times out when they run out."""

    def __init__(self, datagrams):
        self.datagrams = list(datagrams)
        self.sent = []

    def send(self, data):
        self.sent.append(data)

    def recvmsg_into(self, buffers):
        if not self.datagrams:
            raise socket.timeout("timed out")
        data = self.datagrams.pop(0)
        size = min(len(data), len(buffers[0]))
        buffers[0][:size] = data[:size]
        return size, [], socket.MSG_TRUNC if size < len(data) else 0, None

    def close(self):
        pass


def read_from(datagrams, **kwargs):
    sockets = []

    def factory():
        sockets.append(FakeSocket(datagrams))
        return sockets[-1]

    return r.read(sock_factory=factory, **kwargs), sockets


def test_a_whole_read_gives_links_addresses_and_the_main_tables_routes_as_ip_prints_them():
    (links, routes), sockets = read_from(conversation())
    by_name = {entry["ifname"]: entry for entry in links}
    assert set(by_name) == {"lo", "up0.10-x_15chrs", "gre1"}
    assert by_name["gre1"]["linkinfo"] == {"info_kind": "gre", "info_data": {
        "local": "172.19.1.1", "remote": "172.19.1.2", "ttl": 64, "pmtudisc": True, "ikey": "0.0.0.42", "okey": "0.0.0.42"}}
    assert by_name["gre1"]["addr_info"] == [{"family": "inet", "local": "192.168.8.1", "address": "192.168.8.2", "prefixlen": 32}]
    assert by_name["up0.10-x_15chrs"]["addr_info"][1] == {"family": "inet6", "local": "2001:db8::1", "prefixlen": 64}
    # the table-1000 route is another table's: a kernel without strict checking sends it, the reader drops it
    assert routes == [
        {"dst": "10.1.0.0/24", "type": "unicast", "table": "main", "protocol": "static", "flags": [], "dev": "gre1", "metric": 7},
        {"dst": "10.2.0.0/24", "type": "unicast", "table": "main", "protocol": "static", "flags": [], "dev": "if99"},
        {"dst": "2001:db8:5::/48", "type": "unicast", "table": "main", "protocol": "static", "flags": [], "dev": "gre1", "metric": 1024}]
    requests = [struct.unpack_from("=IHHII", sent) for sent in sockets[0].sent]
    assert [(kind, flags, seq) for _length, kind, flags, seq, _port in requests] == [
        (r.RTM_GETLINK, 0x301, 1), (r.RTM_GETADDR, 0x301, 2), (r.RTM_GETROUTE, 0x301, 3), (r.RTM_GETROUTE, 0x301, 4)]
    state = LiveState(links, routes)
    assert state.tunnels["gre1"]["routes"] == [("10.1.0.0/24", 7, None), ("2001:db8:5::/48", 1024, None)]


def test_every_table_read_numerically_as_ip_N_prints_them():
    (links, routes), _sockets = read_from(conversation(), table=r.RT_TABLE_UNSPEC, numeric=True)
    assert routes[2] == {"dst": "10.3.0.0/24", "type": "unicast", "table": 1000, "protocol": 71, "scope": 0, "tos": 0x10,
                         "flags": ["onlink"], "dev": "up0.10-x_15chrs", "gateway": "172.19.1.9"}
    live = LiveRoutes(routes, links)
    expected = [(254, "10.1.0.0/24", "gre1"), (254, "10.2.0.0/24", "if99"), (254, "2001:db8:5::/48", "gre1")]  # a TOS route is never ours
    assert [(x["table"], x["dest"], x["dev"]) for x in live.routes] == expected
    assert live.interfaces["gre1"] == {"up": True, "addresses": ["192.168.8.1"]}


@pytest.mark.parametrize("family", ["v4", "v6", "both"])
def test_a_main_table_that_does_not_exist_yet_reads_as_empty(family):
    """A new network namespace has no main table until its first route: the kernel answers the dump with ENOENT."""
    errors = {"v4": (-errno.ENOENT, None), "v6": (None, -errno.ENOENT), "both": (-errno.ENOENT, -errno.ENOENT)}[family]
    (links, routes), _sockets = read_from(conversation(*errors))
    assert len(links) == 3
    assert [x["dst"] for x in routes] == {"v4": ["2001:db8:5::/48"], "v6": ["10.1.0.0/24", "10.2.0.0/24"], "both": []}[family]


def test_any_other_error_of_the_kernel_is_one_clear_error():
    with pytest.raises(r.NetlinkError, match="Operation not supported") as caught:
        read_from(conversation(v4_routes_error=-errno.EOPNOTSUPP))
    assert caught.value.errno == errno.EOPNOTSUPP
    # ENOENT means an absent table only where a table was asked for; for a dump of every table it is an error
    with pytest.raises(r.NetlinkError, match="No such file"):
        read_from(conversation(v4_routes_error=-errno.ENOENT), table=r.RT_TABLE_UNSPEC)


def test_an_interrupted_dump_is_read_again_and_a_dump_that_keeps_changing_gives_up():
    answers = conversation()
    interrupted = [answers[0][:6] + b"\x12" + answers[0][7:]] + answers[1:]  # NLM_F_MULTI | NLM_F_DUMP_INTR on the first link
    calls = []

    def flaky():
        calls.append(1)
        return FakeSocket(interrupted if len(calls) == 1 else answers)

    links, _routes = r.read(sock_factory=flaky)
    assert len(calls) == 2 and len(links) == 3
    with pytest.raises(r.NetlinkError, match="kept changing") as caught:
        read_from(interrupted)
    assert caught.value.errno == errno.EINTR


def test_a_message_larger_than_the_buffer_is_read_again_with_a_larger_one(monkeypatch):
    monkeypatch.setattr(r, "RECEIVE_SIZE", 64)
    (links, _routes), sockets = read_from(conversation())
    assert len(links) == 3 and len(sockets) > 1


def test_a_gre_attribute_shorter_than_its_type_is_a_clear_error():
    short_ttl = attr(r.IFLA_GRE_TTL, b"")
    answers = conversation()
    answers[0] = message(1, r.RTM_NEWLINK, link(5, "gre1", 778, kind="gre", data=short_ttl)) + done(1)
    with pytest.raises(r.NetlinkError, match="malformed"):
        read_from(answers)


def test_a_kernel_that_never_ends_the_dump_is_an_error_not_a_hang():
    answers = conversation()
    with pytest.raises(r.NetlinkError, match="did not answer") as caught:
        read_from([answers[0][:-20]] + answers[1:])  # the first dump's DONE is missing: the next datagrams are another seq's
    assert caught.value.errno == errno.ETIMEDOUT


def _mutations(seed, count):
    """COUNT conversations derived from a valid one: bytes flipped, cut short, lengths changed, garbage appended."""
    rng = random.Random(seed)
    base = conversation()
    for _mutation in range(count):
        datagrams = list(base)
        target = rng.randrange(len(datagrams))
        data = bytearray(datagrams[target])
        how = rng.choice(["flip", "cut", "length", "garbage", "random"])
        if how == "flip":
            for _flip in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif how == "cut":
            data = data[:rng.randrange(len(data))]
        elif how == "length":  # a message or attribute length field: the first two or four bytes at an aligned offset
            offset = rng.randrange(0, len(data) - 4, 4)
            struct.pack_into("=H", data, offset, rng.choice([0, 1, 3, 4, 5, 17, 0xffff, rng.randrange(65536)]))
        elif how == "garbage":
            data += bytes(rng.randrange(256) for _byte in range(rng.randint(1, 40)))
        else:
            data = bytearray(rng.randrange(256) for _byte in range(rng.randint(0, 200)))
        datagrams[target] = bytes(data)
        yield how, datagrams


def test_fuzz_random_truncated_and_corrupted_answers_end_in_one_clear_error_or_a_usable_state():
    """3,000 corrupted conversations: read() either returns records the parsers take, or raises NetlinkError; never another
    exception, never a hang (FakeSocket times out like the real socket when the kernel's answer ends without DONE)."""
    outcomes = {"read": 0, "refused": 0}
    for how, datagrams in _mutations(seed=16, count=3000):
        try:
            (links, routes), _sockets = read_from(datagrams)
        except r.NetlinkError as exc:
            assert str(exc), how
            outcomes["refused"] += 1
            continue
        LiveState(links, routes)  # what gre_tunnel makes of it must not raise either
        outcomes["read"] += 1
    assert outcomes["read"] > 100 and outcomes["refused"] > 100, outcomes  # both paths were exercised
