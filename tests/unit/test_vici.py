# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""strongSwan's vici encoding, byte for byte as its README describes it (src/libcharon/plugins/vici/README.md).
That charon understands it is proven on real routers (tests/vm/test_ipsec_pair.py)."""

from __future__ import annotations

import struct

import pytest

from ansible_collections.overlay.gre.plugins.module_utils import _vici


def test_elements_are_encoded_as_the_protocol_says():
    message = {"key": "value", "list": ["a", "bc"], "section": {"inner": b"\x00\x01"}}
    assert _vici.encode(message) == (
        b"\x03" + b"\x03key" + b"\x00\x05value"
        + b"\x04" + b"\x04list" + b"\x05\x00\x01a" + b"\x05\x00\x02bc" + b"\x06"
        + b"\x01" + b"\x07section" + b"\x03" + b"\x05inner" + b"\x00\x02\x00\x01" + b"\x02")


def test_a_request_is_its_length_its_type_its_name_and_its_message():
    packet = _vici.request_packet("unload-conn", {"name": "x"})
    body = b"\x00" + b"\x0bunload-conn" + b"\x03\x04name\x00\x01x"
    assert packet == struct.pack("!I", len(body)) + body


def test_decode_reads_back_what_encode_wrote():
    message = {"success": "yes", "conns": ["overlay-gre-gre-b", "other"], "child": {"sa": {"state": "INSTALLED"}}}
    assert _vici.decode(_vici.encode(message)) == message
    assert _vici.decode(b"") == {}


@pytest.mark.parametrize("data, why", [
    (b"\x03\x03key\x00\x09va", "in the middle of an element"),
    (b"\x02", "never started"),
    (b"\x01\x01s", "does not end"),
    (b"\x05\x00\x01a", "outside of a list"),
    (b"\x09", "unknown element type 9"),
])
def test_decode_refuses_what_is_not_vici(data, why):
    with pytest.raises(_vici.ViciError, match=why):
        _vici.decode(data)


def test_names_and_values_beyond_the_protocols_lengths_are_refused():
    with pytest.raises(_vici.ViciError, match="longer than 255"):
        _vici.encode({"k" * 256: "v"})
    with pytest.raises(_vici.ViciError, match="longer than 65535"):
        _vici.encode({"k": "v" * 65536})


def test_no_charon_says_which_socket_it_tried(tmp_path):
    with pytest.raises(_vici.ViciError, match="cannot reach charon's vici socket %s" % tmp_path):
        _vici.Session(str(tmp_path / "charon.vici"))
