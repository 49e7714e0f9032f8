# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note: this module_utils is private to the overlay.gre collection; its API may change at any time.

"""overlay.gre's rtnetlink reader: the links with their addresses, and the unicast routes, as ``ip -d -j`` prints them.

It reads through one NETLINK_ROUTE socket in this process: a dump of the links, one of the addresses and one of the
routes per family, with no process started. It is small on purpose and only ever reads. Measured on a host with
1,000 links: pyroute2's link dump alone took 0.47 s, this reader 0.034 s for links, addresses and routes together,
``ip -d -j link show`` 0.012 s (see bench/README.md). The messages become records of the shape ``ip -d -j addr show``
and ``ip -d -j route show`` print (``ip -N`` for the numeric route fields), with only the fields overlay.gre reads,
spelled as ip spells them, so that one parser serves both; tests/kernel compares the two readings in the lab.

Everything that can go wrong ends in NetlinkError, with a message that says which dump failed and why.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

NLMSG_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
NLA_HEADER = struct.Struct("=HH")  # nlattr: length, type
IFINFOMSG = struct.Struct("=BxHiII")  # family, type (ARPHRD_*), index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst len, src len, tos, table, protocol, scope, type, flags
ERRNO = struct.Struct("=i")
U32 = struct.Struct("=I")
BE32 = struct.Struct("!I")
BE16 = struct.Struct("!H")
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP, NLM_F_DUMP_INTR = 0x1, 0x300, 0x10
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE = 16, 18, 20, 22, 24, 26
SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12  # strict checking makes the kernel apply a dump's filters itself
IFF_UP = 0x1
IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_EXT_MASK = 3, 4, 18, 20, 29
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
(IFLA_GRE_LINK, IFLA_GRE_IFLAGS, IFLA_GRE_OFLAGS, IFLA_GRE_IKEY, IFLA_GRE_OKEY, IFLA_GRE_LOCAL, IFLA_GRE_REMOTE, IFLA_GRE_TTL,
 IFLA_GRE_TOS, IFLA_GRE_PMTUDISC) = range(1, 11)
IFLA_GRE_FLOWINFO, IFLA_GRE_FLAGS, IFLA_GRE_COLLECT_METADATA = 12, 13, 18
GRE_KEY = 0x2000
IP6_TNL_F_USE_ORIG_TCLASS = 0x2
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_MULTIPATH, RTA_TABLE = 1, 4, 5, 6, 9, 15
RT_TABLE_UNSPEC, RT_TABLE_MAIN, RTN_UNICAST = 0, 254, 1
RTNH_F_ONLINK = 0x4
# The GRE kinds whose IFLA_INFO_DATA is decoded, and the family of their endpoints.
GRE_KINDS = {"gre": socket.AF_INET, "gretap": socket.AF_INET, "ip6gre": socket.AF_INET6, "ip6gretap": socket.AF_INET6}
FAMILY_NAMES = {socket.AF_INET: "inet", socket.AF_INET6: "inet6"}
ADDRESS_SIZE = {socket.AF_INET: 4, socket.AF_INET6: 16}
# iproute2's names (rt_protos) of the route protocols, among them those overlay.gre leaves alone.
PROTOCOL_NAMES = {1: "redirect", 2: "kernel", 3: "boot", 4: "static", 9: "ra"}
# iproute2's names of the link types (lib/ll_types.c) an interface without a kind is likely to have.
LINK_TYPE_NAMES = {1: "ether", 32: "infiniband", 256: "slip", 512: "ppp", 768: "ipip", 769: "tunnel6", 772: "loopback", 776: "sit",
                   778: "gre", 801: "ieee802.11", 803: "ieee802.11/radiotap", 823: "gre6", 824: "netlink", 65534: "none", 65535: "void"}
RECEIVE_SIZE = 256 * 1024  # a dump's datagrams are 32 KiB at most, unless a single message is larger
ATTEMPTS = 5
ANSWER_TIMEOUT = 30.0  # seconds the kernel may take to send the next datagram of a dump; it answers in microseconds


class NetlinkError(Exception):
    """The kernel's state could not be read: the message says which dump and why."""

    def __init__(self, message, code=None):
        super(NetlinkError, self).__init__(message)
        self.errno = code


class _Truncated(Exception):
    """A datagram did not fit the receive buffer: the dump is lost and must be asked for again with a larger one."""


class _Interrupted(Exception):
    """The kernel's lists changed during a dump (NLM_F_DUMP_INTR): it may be inconsistent and must be asked for again."""


class _Malformed(Exception):
    """A message or attribute whose lengths do not add up."""


def _attributes(data, start, end):
    """The netlink attributes in DATA[START:END], as {type: (start, end)} of their payloads."""
    found = {}
    while start + 4 <= end:
        length, kind = NLA_HEADER.unpack_from(data, start)
        if length < 4 or start + length > end:
            raise _Malformed("an attribute of type %d claims %d bytes where %d are left" % (kind & 0x3fff, length, end - start))
        found[kind & 0x3fff] = (start + 4, start + length)
        start += (length + 3) & ~3
    return found


def _text(data, span):
    return bytes(data[span[0]:span[1]]).split(b"\0", 1)[0].decode("utf-8", "replace")


def _u32(data, span):
    return U32.unpack_from(data, span[0])[0]


def _u8(data, span):
    if span[1] <= span[0]:
        raise _Malformed("an empty attribute where one byte was expected")
    return data[span[0]]


def _address_text(family, data, span):
    return socket.inet_ntop(family, bytes(data[span[0]:span[1]]))


class _Netlink(object):
    """One NETLINK_ROUTE socket and its dumps; only ever reads. SOCK is given by the tests."""

    def __init__(self, receive_size, sock=None):
        if sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            try:
                sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
            except OSError:
                pass  # a kernel before 4.20 sends everything; the records are filtered here as well
            sock.settimeout(ANSWER_TIMEOUT)
            sock.bind((0, 0))
        self.sock = sock
        self.buf = bytearray(receive_size)
        self.seq = 0

    def close(self):
        self.sock.close()

    def dump(self, kind, body, absent_is_empty=False):
        """Send one dump request; yield (data, start, end) of each message of the answer, data being valid until the next.

        ABSENT_IS_EMPTY: the kernel's ENOENT means that what was asked for (a routing table) does not exist yet, which
        is read as empty: a new network namespace has no main table until its first route.
        """
        self.seq += 1
        self.sock.send(NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, self.seq, 0) + body)
        buf = self.buf
        interrupted = False
        while True:
            size, _ancillary, flags, _address = self.sock.recvmsg_into([buf])
            if flags & socket.MSG_TRUNC:
                raise _Truncated()
            if size == 0:
                raise _Malformed("an empty datagram")
            start = 0
            while start < size:
                if start + NLMSG_HEADER.size > size:
                    raise _Malformed("%d bytes after the last message, too few for a header" % (size - start))
                length, msg_type, msg_flags, seq, _port = NLMSG_HEADER.unpack_from(buf, start)
                if length < NLMSG_HEADER.size or start + length > size:
                    raise _Malformed("a message claims %d bytes where %d are left" % (length, size - start))
                if seq == self.seq:
                    interrupted = interrupted or bool(msg_flags & NLM_F_DUMP_INTR)
                    if msg_type == NLMSG_DONE or msg_type == NLMSG_ERROR:
                        error = ERRNO.unpack_from(buf, start + NLMSG_HEADER.size)[0] if length >= NLMSG_HEADER.size + 4 else 0
                        if error == -errno.ENOENT and absent_is_empty:
                            return
                        if error < 0:
                            raise NetlinkError(os.strerror(-error), -error)
                        if interrupted:
                            raise _Interrupted()
                        return
                    yield buf, start + NLMSG_HEADER.size, start + length
                start += (length + 3) & ~3


def _gre_info_data(kind, data, span, names):
    """info_data of one GRE tunnel of KIND, from its IFLA_INFO_DATA attributes, as ``ip -d -j`` prints it."""
    attrs = _attributes(data, span[0], span[1])
    family = GRE_KINDS[kind]
    info = {"external": True} if IFLA_GRE_COLLECT_METADATA in attrs else {}
    for field, attr in (("remote", IFLA_GRE_REMOTE), ("local", IFLA_GRE_LOCAL)):
        raw = bytes(data[attrs[attr][0]:attrs[attr][1]]) if attr in attrs else b""
        info[field] = socket.inet_ntop(family, raw) if len(raw) == ADDRESS_SIZE[family] and raw.strip(b"\0") else "any"
    if IFLA_GRE_LINK in attrs and _u32(data, attrs[IFLA_GRE_LINK]):
        index = _u32(data, attrs[IFLA_GRE_LINK])
        info["link"] = names.get(index, "if%d" % index)
    info["ttl"] = _u8(data, attrs[IFLA_GRE_TTL]) if IFLA_GRE_TTL in attrs else 0
    if family == socket.AF_INET:
        tos = _u8(data, attrs[IFLA_GRE_TOS]) if IFLA_GRE_TOS in attrs else 0
        if tos:
            info["tos"] = tos
        if IFLA_GRE_PMTUDISC in attrs:
            info["pmtudisc"] = bool(_u8(data, attrs[IFLA_GRE_PMTUDISC]))
    else:
        flags = _u32(data, attrs[IFLA_GRE_FLAGS]) if IFLA_GRE_FLAGS in attrs else 0
        if flags & IP6_TNL_F_USE_ORIG_TCLASS:
            info["ip6_tnl_f_use_orig_tclass"] = True
        else:
            flowinfo = BE32.unpack_from(data, attrs[IFLA_GRE_FLOWINFO][0])[0] if IFLA_GRE_FLOWINFO in attrs else 0
            info["tclass"] = (flowinfo >> 20) & 0xff
    for field, flags_attr, key_attr in (("ikey", IFLA_GRE_IFLAGS, IFLA_GRE_IKEY), ("okey", IFLA_GRE_OFLAGS, IFLA_GRE_OKEY)):
        flags = BE16.unpack_from(data, attrs[flags_attr][0])[0] if flags_attr in attrs else 0
        if flags & GRE_KEY and key_attr in attrs:
            info[field] = socket.inet_ntop(socket.AF_INET, bytes(data[attrs[key_attr][0]:attrs[key_attr][1]]))
    return info


def _read_links(netlink):
    """Every link, with its addresses, in the shape of ``ip -d -j addr show``'s entries; and {index: name}."""
    links = []
    gre = []  # (record, kind, raw info_data): decoded once every name is known, as IFLA_GRE_LINK is an index
    request = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + NLA_HEADER.pack(8, IFLA_EXT_MASK) + U32.pack(RTEXT_FILTER_SKIP_STATS)
    for data, start, end in netlink.dump(RTM_GETLINK, request):
        _family, link_type, index, flags, _change = IFINFOMSG.unpack_from(data, start)
        attrs = _attributes(data, start + IFINFOMSG.size, end)
        if IFLA_IFNAME not in attrs:
            continue
        record = {"ifindex": index, "ifname": _text(data, attrs[IFLA_IFNAME]), "flags": ["UP"] if flags & IFF_UP else [],
                  "mtu": _u32(data, attrs[IFLA_MTU]) if IFLA_MTU in attrs else 0,
                  "link_type": LINK_TYPE_NAMES.get(link_type, "[%d]" % link_type), "addr_info": []}
        if IFLA_IFALIAS in attrs:
            record["ifalias"] = _text(data, attrs[IFLA_IFALIAS])
        if IFLA_LINKINFO in attrs:
            info = _attributes(data, *attrs[IFLA_LINKINFO])
            record["linkinfo"] = {}
            if IFLA_INFO_KIND in info:
                kind = _text(data, info[IFLA_INFO_KIND])
                record["linkinfo"]["info_kind"] = kind
                if kind in GRE_KINDS and IFLA_INFO_DATA in info:
                    span = info[IFLA_INFO_DATA]
                    gre.append((record, kind, bytes(data[span[0]:span[1]])))
        links.append(record)
    names = dict((link["ifindex"], link["ifname"]) for link in links)
    for record, kind, raw in gre:
        record["linkinfo"]["info_data"] = _gre_info_data(kind, raw, (0, len(raw)), names)
    by_index = dict((link["ifindex"], link) for link in links)
    for data, start, end in netlink.dump(RTM_GETADDR, IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
        family, prefixlen, _flags, _scope, index = IFADDRMSG.unpack_from(data, start)
        link = by_index.get(index)
        if link is None or family not in FAMILY_NAMES:
            continue  # a link made after the link dump, or an address family that is not IP
        if prefixlen > ADDRESS_SIZE[family] * 8:
            raise _Malformed("an address with a prefix length of %d" % prefixlen)
        attrs = _attributes(data, start + IFADDRMSG.size, end)
        local = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
        if local is None:
            continue
        entry = {"family": FAMILY_NAMES[family], "local": _address_text(family, data, local), "prefixlen": prefixlen}
        peer = attrs.get(IFA_ADDRESS)
        if peer is not None and data[peer[0]:peer[1]] != data[local[0]:local[1]]:
            entry["address"] = _address_text(family, data, peer)
        link["addr_info"].append(entry)
    return links, names


def _read_routes(netlink, names, table, numeric):
    """The unicast routes of TABLE (RT_TABLE_UNSPEC: every table) of both families, as ``ip -d -j route show`` prints them."""
    routes = []
    for family in (socket.AF_INET, socket.AF_INET6):
        request = RTMSG.pack(family, 0, 0, 0, table if table < 256 else 0, 0, 0, RTN_UNICAST, 0)
        if table >= 256:
            request += NLA_HEADER.pack(8, RTA_TABLE) + U32.pack(table)
        for data, start, end in netlink.dump(RTM_GETROUTE, request, absent_is_empty=table != RT_TABLE_UNSPEC):
            route_family, dst_len, _src_len, tos, route_table, protocol, scope, route_type, flags = RTMSG.unpack_from(data, start)
            if route_family != family or route_type != RTN_UNICAST:
                continue  # a kernel without IPv6 may answer an AF_INET6 dump with every family's routes
            if dst_len > ADDRESS_SIZE[family] * 8:
                raise _Malformed("a route with a prefix length of %d" % dst_len)
            attrs = _attributes(data, start + RTMSG.size, end)
            if RTA_TABLE in attrs:
                route_table = _u32(data, attrs[RTA_TABLE])
            if table != RT_TABLE_UNSPEC and route_table != table:
                continue  # a kernel without strict checking sends every table
            dst = _address_text(family, data, attrs[RTA_DST]) if RTA_DST in attrs else ("0.0.0.0" if family == socket.AF_INET else "::")
            route = {"dst": "%s/%d" % (dst, dst_len), "type": "unicast"}
            if numeric:
                route.update(table=route_table, protocol=protocol, scope=scope)
                if tos:
                    route["tos"] = tos
            else:
                route.update(table="main" if route_table == RT_TABLE_MAIN else str(route_table), protocol=PROTOCOL_NAMES.get(protocol, str(protocol)))
            route["flags"] = ["onlink"] if flags & RTNH_F_ONLINK else []
            if RTA_OIF in attrs:
                index = _u32(data, attrs[RTA_OIF])
                route["dev"] = names.get(index, "if%d" % index)
            if RTA_GATEWAY in attrs:
                route["gateway"] = _address_text(family, data, attrs[RTA_GATEWAY])
            if RTA_PRIORITY in attrs:
                route["metric"] = _u32(data, attrs[RTA_PRIORITY])
            if RTA_MULTIPATH in attrs:
                route["nexthops"] = []
            routes.append(route)
    return routes


def read(table=RT_TABLE_MAIN, numeric=False, sock_factory=None):
    """(links, routes) of this network namespace: every link with its addresses, and TABLE's unicast routes.

    TABLE is a table number, RT_TABLE_UNSPEC (0) for every table; a table that does not exist reads as empty.
    NUMERIC spells the routes' table, protocol and scope as numbers, as ``ip -N`` does. SOCK_FACTORY is for tests.
    A dump that the kernel marks as interrupted (its lists changed meanwhile) is read again, up to ATTEMPTS times.
    """
    receive_size = RECEIVE_SIZE
    for attempt in range(ATTEMPTS):
        last = attempt == ATTEMPTS - 1
        netlink = None
        try:
            netlink = _Netlink(receive_size, sock_factory() if sock_factory else None)
            links, names = _read_links(netlink)
            return links, _read_routes(netlink, names, table, numeric)
        except _Truncated:
            if last:
                raise NetlinkError("a netlink message was larger than %d bytes" % receive_size, errno.EMSGSIZE)
            receive_size *= 4
        except _Interrupted:
            if last:
                raise NetlinkError("the kernel's links, addresses or routes kept changing while they were read (%d tries)" % ATTEMPTS, errno.EINTR)
        except socket.timeout:
            raise NetlinkError("the kernel did not answer within %d s" % ANSWER_TIMEOUT, errno.ETIMEDOUT)
        except (_Malformed, ValueError, IndexError, KeyError, TypeError, struct.error) as exc:
            raise NetlinkError("a malformed answer from the kernel: %s" % (exc or type(exc).__name__))
        except OSError as exc:
            raise NetlinkError(os.strerror(exc.errno) if exc.errno else str(exc), exc.errno)
        finally:
            if netlink is not None:
                netlink.close()
    raise NetlinkError("no attempt was made")  # not reached: ATTEMPTS > 0
