# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keepalive sender's wire format, byte by byte, against Cisco's description of a GRE keepalive.

Cisco ("How GRE Keepalives Work"): router A sends to B an outer IP header A -> B, a GRE header of protocol type IP
(0x0800), then the reply already built - an inner IP header B -> A of protocol GRE (47), and a GRE header of
protocol type 0. B decapsulates and routes the inner packet back; A takes GRE of type 0 as the reply.
"""

from __future__ import annotations

import socket
import struct

import pytest

from support.keepalive import load_keepalive

ka = load_keepalive()

A, B = "172.19.1.1", "172.19.1.2"


def hexbytes(*fields):
    return bytes.fromhex("".join(fields))


def ones_complement_ok(header):
    """A header whose checksum is right sums to 0xFFFF."""
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def test_unkeyed_keepalive_byte_by_byte():
    packet = ka.build_keepalive(A, B, key=None, ident=0x1234, ttl=64)
    assert len(packet) == 20 + 4 + 20 + 4
    outer, outer_gre, inner, inner_gre = packet[:20], packet[20:24], packet[24:44], packet[44:]
    assert outer == hexbytes(
        "45",        # version 4, header length 5 words
        "00",        # DSCP/ECN
        "0030",      # total length 48
        "1234",      # identification
        "0000",      # no flags, fragment offset 0
        "40",        # TTL 64 (the tunnel's)
        "2f",        # protocol 47, GRE
        "%04x" % ka.checksum(outer[:10] + b"\0\0" + outer[12:]),
        "ac130101",  # source A
        "ac130102",  # destination B
    )
    assert ones_complement_ok(outer)
    assert outer_gre == hexbytes("0000", "0800")  # no flags, version 0; protocol type IPv4
    assert inner[:10] == hexbytes(
        "45", "00",
        "0018",      # total length 24: the reply is 20 + 4 bytes
        "1234",      # the same identification, which numbers the keepalives
        "0000",
        "ff",        # TTL 255, as IOS builds it
        "2f",        # protocol 47: the reply is itself a GRE packet
    )
    assert inner[12:16] == socket.inet_aton(B) and inner[16:20] == socket.inet_aton(A)  # from the peer back to us
    assert ones_complement_ok(inner)
    assert inner_gre == hexbytes("0000", "0000")  # protocol type 0: a keepalive


def test_keyed_keepalive_carries_the_key_in_both_gre_headers():
    packet = ka.build_keepalive(A, B, key=42, ident=7, ttl=64)
    assert len(packet) == 20 + 8 + 20 + 8
    assert packet[2:4] == struct.pack("!H", 56)
    assert packet[20:28] == hexbytes("2000", "0800", "0000002a")  # K bit; type IPv4; key 42
    inner = packet[28:48]
    assert inner[2:4] == struct.pack("!H", 28)
    assert inner[12:16] == socket.inet_aton(B) and inner[16:20] == socket.inet_aton(A)
    assert ones_complement_ok(packet[:20]) and ones_complement_ok(inner)
    assert packet[48:] == hexbytes("2000", "0000", "0000002a")  # K bit; type 0; key 42


def test_a_dotted_quad_sized_key_uses_all_32_bits():
    packet = ka.build_keepalive(A, B, key=0xFFFFFFFE)
    assert packet[24:28] == b"\xff\xff\xff\xfe"


def test_checksum_matches_rfc1071_example():
    # RFC 1071's worked example: 0001 f203 f4f5 f6f7 sums to ddf2, the checksum is its complement
    assert ka.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2


def test_parser_round_trip_outer_and_inner():
    packet = ka.build_keepalive(A, B, key=42, ident=99, ttl=64)
    outer = ka.parse_gre_packet(packet)
    assert (outer["src"], outer["dst"], outer["ttl"], outer["ident"], outer["key"], outer["protocol"]) == (A, B, 64, 99, 42, 0x0800)
    inner = ka.parse_gre_packet(outer["payload"])
    assert (inner["src"], inner["dst"], inner["ttl"], inner["key"], inner["protocol"], inner["payload"]) == (B, A, 255, 42, 0, b"")


@pytest.mark.parametrize("key", [None, 42])
def test_the_reflected_packet_is_recognised(key):
    reflected = ka.parse_gre_packet(ka.build_keepalive(A, B, key=key))["payload"]  # what B routes back to A
    assert ka.is_keepalive_reply(reflected, A, B, key)


def test_foreign_gre_is_not_a_reply():
    reflected = ka.parse_gre_packet(ka.build_keepalive(A, B, key=42))["payload"]
    assert not ka.is_keepalive_reply(reflected, A, B, 43)  # another keyed tunnel between the same addresses
    assert not ka.is_keepalive_reply(reflected, A, B, None)
    assert not ka.is_keepalive_reply(reflected, A, "172.19.1.3", 42)  # another peer
    assert not ka.is_keepalive_reply(reflected, "172.19.1.9", B, 42)
    # the peer's own keepalive arriving here (type IPv4 with a reply inside) is not a reply to ours
    assert not ka.is_keepalive_reply(ka.build_keepalive(B, A, key=42), A, B, 42)
    # tunnel traffic: GRE type IPv4 around an ICMP packet
    icmp = ka.ipv4_header("20.10.1.10", "10.10.1.10", 8, protocol=1) + bytes(8)
    data = ka.ipv4_header(B, A, 8 + len(icmp)) + ka.gre_header(0x0800, 42) + icmp
    assert not ka.is_keepalive_reply(data, A, B, 42)
    # GRE version 1 (PPTP), truncated packets, not IPv4, not GRE
    pptp = ka.ipv4_header(B, A, 8) + struct.pack("!HH", 0x3001, 0x880B) + bytes(4)
    assert ka.parse_gre_packet(pptp) is None
    assert ka.parse_gre_packet(reflected[:22]) is None
    assert ka.parse_gre_packet(b"\x60" + reflected[1:]) is None
    assert ka.parse_gre_packet(ka.ipv4_header(B, A, 4, protocol=17) + bytes(4)) is None
    keyed_but_cut = ka.ipv4_header(B, A, 6) + struct.pack("!HH", 0x2000, 0) + b"\0\0"
    assert ka.parse_gre_packet(keyed_but_cut) is None


def test_gre_with_checksum_and_sequence_fields_is_parsed():
    gre = struct.pack("!HH", 0x8000 | 0x2000 | 0x1000, 0) + b"\0\0\0\0" + struct.pack("!I", 42) + struct.pack("!I", 5)
    packet = ka.ipv4_header(B, A, len(gre)) + gre
    parsed = ka.parse_gre_packet(packet)
    assert parsed["key"] == 42 and parsed["protocol"] == 0 and parsed["payload"] == b""
    assert ka.is_keepalive_reply(packet, A, B, 42)


def test_socket_filter_program_checks_source_and_gre_type():
    program = ka.reply_filter(B)
    assert program[0] == (0x20, 0, 0, 12)
    assert program[1] == (0x15, 0, 4, struct.unpack("!I", socket.inet_aton(B))[0])
    assert program[-2][0] == 0x06 and program[-2][3] > 0 and program[-1] == (0x06, 0, 0, 0)
