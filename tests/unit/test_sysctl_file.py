# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sysctl.d syntax: what a file sets, and rewriting the module's lines while keeping every other line."""

from __future__ import annotations

import pytest

from ansible_collections.overlay.gre.plugins.module_utils._sysctl import HEADER, SysctlFile, normalize_key, only_header, same_value

V4 = "net.ipv4.ip_forward"
V6 = "net.ipv6.conf.all.forwarding"


@pytest.mark.parametrize("raw, key", [
    ("net.ipv4.ip_forward", V4),
    ("  net.ipv4.ip_forward  ", V4),
    ("-net.ipv4.ip_forward", V4),
    ("net/ipv4/ip_forward", V4),
    ("net/ipv6/conf/all/forwarding", V6),
    # a slash-separated key may hold a dot inside one component (a VLAN interface)
    ("net/ipv4/conf/eth0.5/forwarding", "net.ipv4.conf.eth0/5.forwarding"),
    ("net.ipv4.conf.eth0/5.forwarding", "net.ipv4.conf.eth0/5.forwarding"),
])
def test_keys_are_read_as_systemd_and_procps_read_them(raw, key):
    assert normalize_key(raw) == key


def test_the_last_assignment_is_the_value():
    text = "net.ipv4.ip_forward = 0\n# net.ipv4.ip_forward = 1\nnet/ipv4/ip_forward=1\n"
    assert SysctlFile(text).value(V4) == "1"
    assert SysctlFile(text).value(V6) is None


@pytest.mark.parametrize("line", ["# net.ipv4.ip_forward = 1", "; net.ipv4.ip_forward = 1", "net.ipv4.ip_forward", "", "   "])
def test_comments_blank_lines_and_lines_without_value_set_nothing(line):
    assert SysctlFile(line + "\n").value(V4) is None


def test_rewrite_keeps_foreign_lines_comments_and_order():
    text = ("# Kernel settings of the site\n"
            "kernel.panic = 10\n"
            "\n"
            "; an old-style comment\n"
            "net.ipv4.ip_forward = 0\n"
            "vm.swappiness=5\n"
            "net.ipv4.conf.*.rp_filter = 2\n")
    new = SysctlFile(text).render({V4: "1"})
    assert new == text.replace("net.ipv4.ip_forward = 0", "net.ipv4.ip_forward = 1")


def test_later_duplicates_of_an_owned_key_are_dropped_others_kept():
    text = "net.ipv4.ip_forward = 0\nkernel.panic = 10\nnet/ipv4/ip_forward = 0\nkernel.panic = 20\n"
    assert SysctlFile(text).render({V4: "1"}) == "net.ipv4.ip_forward = 1\nkernel.panic = 10\nkernel.panic = 20\n"


def test_ignore_failure_prefix_is_kept():
    assert SysctlFile("-net.ipv6.conf.all.forwarding = 0\n").render({V6: "1"}) == "-net.ipv6.conf.all.forwarding = 1\n"


def test_missing_keys_are_appended_after_the_last_line_even_without_newline():
    text = "kernel.panic = 10"
    assert SysctlFile(text).render({V4: "1", V6: "1"}) == "kernel.panic = 10\nnet.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n"


def test_an_empty_existing_file_gets_no_header():
    assert SysctlFile("").render({V4: "0"}) == "net.ipv4.ip_forward = 0\n"


def test_a_new_file_starts_with_the_managed_header():
    new = SysctlFile(None).render({V4: "1"})
    assert new == HEADER + "net.ipv4.ip_forward = 1\n"
    assert new.startswith("# Ansible managed")
    # the header is a comment: it sets nothing
    assert SysctlFile(new).values([V4, V6]) == {V4: "1", V6: None}


def test_keys_of_the_other_family_are_not_touched():
    text = "net.ipv6.conf.all.forwarding = 0\nnet.ipv4.ip_forward = 0\n"
    assert SysctlFile(text).render({V4: "1"}) == "net.ipv6.conf.all.forwarding = 0\nnet.ipv4.ip_forward = 1\n"


def test_crlf_and_non_utf8_bytes_survive_as_foreign_lines():
    text = b"kernel.hostname = caf\xe9\nnet.ipv4.ip_forward = 0\n".decode("utf-8", errors="surrogateescape")
    new = SysctlFile(text).render({V4: "1"})
    assert new.encode("utf-8", errors="surrogateescape") == b"kernel.hostname = caf\xe9\nnet.ipv4.ip_forward = 1\n"


@pytest.mark.parametrize("current, wanted, same", [
    ("1", 1, True), (" 1 ", 1, True), (1, 1, True), ("0", 1, False), (None, 0, False), ("1 # comment", 1, False), ("01", 1, True),
])
def test_values_compare_as_integers(current, wanted, same):
    assert same_value(current, wanted) is same


# --- state=absent: dropping the module's lines --------------------------------------------------------------


def test_without_drops_every_assignment_of_the_keys_and_keeps_the_rest():
    text = ("# site\n"
            "net.ipv4.ip_forward = 1\n"
            "kernel.panic = 10\n"
            "-net/ipv4/ip_forward=0\n"
            "net.ipv6.conf.all.forwarding = 1\n"
            "; net.ipv4.ip_forward = 1\n")
    assert SysctlFile(text).without([V4]) == ("# site\nkernel.panic = 10\nnet.ipv6.conf.all.forwarding = 1\n"
                                              "; net.ipv4.ip_forward = 1\n")
    assert SysctlFile(text).without([V4, V6]) == "# site\nkernel.panic = 10\n; net.ipv4.ip_forward = 1\n"


def test_what_the_module_created_is_only_the_header_once_its_lines_are_gone():
    created = SysctlFile(None).render({V4: "1", V6: "1"})
    assert only_header(SysctlFile(created).without([V4, V6]))
    assert not only_header(SysctlFile(created).without([V4]))  # the IPv6 line is still there
    assert only_header(HEADER + "\n\n")


@pytest.mark.parametrize("text", ["", "\n", "kernel.panic = 10\n", HEADER + "kernel.panic = 10\n", HEADER + "# the admin's note\n",
                                  HEADER.splitlines()[0] + "\n"])
def test_anything_beyond_the_header_or_a_file_without_it_is_not_only_the_header(text):
    assert not only_header(text)
