# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""strongSwan's vici, the control protocol that swanctl itself speaks to charon, with Python's standard library only.

Used to load and unload one connection and its secret by name: `swanctl --load-all` makes charon hold exactly what
the swanctl files say, so it unloads the connections and secrets that other tools (NetworkManager, a VPN manager, an
administrator's own `swanctl --file`) loaded over vici. Debian ships no Python binding of vici.

The protocol (strongSwan's src/libcharon/plugins/vici/README.md): over a stream socket, each packet is a 32-bit
big-endian length and that many bytes; a packet is a type byte, a name (for requests: one length byte, then the
name) and a message. A message is a sequence of elements: a section (start with its name, end), a key with a value
(the name, then a 16-bit length and the value), a list (start with its name, items of 16-bit length and value, end).
Requests are answered by one response; "unknown command" has a type of its own.
"""

from __future__ import annotations

import socket
import struct

SOCKET = "/var/run/charon.vici"  # strongSwan's default (charon.plugins.vici.socket)

CMD_REQUEST, CMD_RESPONSE, CMD_UNKNOWN = 0, 1, 2
SECTION_START, SECTION_END, KEY_VALUE, LIST_START, LIST_ITEM, LIST_END = 1, 2, 3, 4, 5, 6
MAX_PACKET = 512 * 1024  # charon's own limit


class ViciError(Exception):
    """charon could not be reached, or answered what this client does not understand."""


def _name(name):
    raw = name.encode("utf-8")
    if not 0 < len(raw) < 256:
        raise ViciError("vici: name %r is empty or longer than 255 bytes" % (name,))
    return struct.pack("!B", len(raw)) + raw


def _value(value):
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ViciError("vici: a value of %d bytes is longer than 65535" % len(raw))
    return struct.pack("!H", len(raw)) + raw


def encode(message):
    """MESSAGE (a dict, in order: str -> str | bytes | int | list of those | dict) as vici's elements."""
    out = []
    for key, value in message.items():
        if isinstance(value, dict):
            out += [struct.pack("!B", SECTION_START), _name(key), encode(value), struct.pack("!B", SECTION_END)]
        elif isinstance(value, (list, tuple)):
            out += [struct.pack("!B", LIST_START), _name(key)]
            out += [struct.pack("!B", LIST_ITEM) + _value(item) for item in value]
            out.append(struct.pack("!B", LIST_END))
        else:
            out += [struct.pack("!B", KEY_VALUE), _name(key), _value(value)]
    return b"".join(out)


def decode(data):
    """vici's elements in DATA as a dict (values as text; a key or list repeated keeps its last value)."""
    stack = [{}]
    pos = 0
    current_list = None

    def take(count):
        nonlocal pos
        if pos + count > len(data):
            raise ViciError("vici: a message ends in the middle of an element")
        chunk = data[pos:pos + count]
        pos += count
        return chunk

    def name():
        return take(take(1)[0]).decode("utf-8", "replace")

    def value():
        return take(struct.unpack("!H", take(2))[0]).decode("utf-8", "replace")

    while pos < len(data):
        kind = take(1)[0]
        if kind == SECTION_START:
            section = {}
            stack[-1][name()] = section
            stack.append(section)
        elif kind == SECTION_END:
            if len(stack) == 1:
                raise ViciError("vici: a section ends that never started")
            stack.pop()
        elif kind == KEY_VALUE:
            key = name()
            stack[-1][key] = value()
        elif kind == LIST_START:
            current_list = []
            stack[-1][name()] = current_list
        elif kind == LIST_ITEM:
            if current_list is None:
                raise ViciError("vici: a list item outside of a list")
            current_list.append(value())
        elif kind == LIST_END:
            current_list = None
        else:
            raise ViciError("vici: unknown element type %d" % kind)
    if len(stack) != 1:
        raise ViciError("vici: a section does not end")
    return stack[0]


def request_packet(command, message=None):
    """The bytes that send COMMAND with MESSAGE (length prefix included)."""
    packet = struct.pack("!B", CMD_REQUEST) + _name(command) + encode(message or {})
    return struct.pack("!I", len(packet)) + packet


class Session(object):
    """One connection to charon's vici socket; `request` sends a command and returns its answer as a dict."""

    def __init__(self, path=SOCKET, timeout=30.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as exc:
            self.sock.close()
            raise ViciError("cannot reach charon's vici socket %s: %s" % (path, exc.strerror or exc))

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read(self, count):
        chunks = []
        while count > 0:
            chunk = self.sock.recv(count)
            if not chunk:
                raise ViciError("charon closed its vici socket %s in the middle of an answer" % self.path)
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def request(self, command, message=None):
        try:
            self.sock.sendall(request_packet(command, message))
            length = struct.unpack("!I", self._read(4))[0]
            if length > MAX_PACKET:
                raise ViciError("charon answered %s with a packet of %d bytes, more than vici allows" % (command, length))
            packet = self._read(length)
        except (OSError, socket.timeout) as exc:
            raise ViciError("vici %s over %s: %s" % (command, self.path, getattr(exc, "strerror", None) or exc))
        if not packet:
            raise ViciError("charon answered %s with an empty packet" % command)
        if packet[0] == CMD_UNKNOWN:
            raise ViciError("charon does not know the vici command %s (is its strongSwan older than 5.5?)" % command)
        if packet[0] != CMD_RESPONSE:
            raise ViciError("charon answered %s with a packet of type %d, not a response" % (command, packet[0]))
        return decode(packet[1:])

    def must(self, command, message=None):
        """request(), failing unless charon answers success=yes."""
        answer = self.request(command, message)
        if answer.get("success") != "yes":
            raise ViciError("charon refused vici %s: %s" % (command, answer.get("errmsg") or answer))
        return answer
