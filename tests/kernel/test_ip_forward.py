# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.gre.ip_forward against the real kernel, in namespaces the tests make (on the host, and in the lab).

Only the namespaces' own values are ever written. The root namespace's forwarding is read, never written, and
every test checks it did not move. The sysctl files live under tmp_path, except in the tests of the default path
and of state=absent, which mount private tmpfs over the boot's sysctl.d directories (and an empty file over
/etc/sysctl.conf) in a mount namespace of their own.
Five tests go through real Ansible (run_module); the rest run the module in-process (run_module_direct).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess

import pytest

from support import lab
from support.lab import run_module, run_module_direct, sh

# imported here so that the forked children of run_module_direct start with them loaded (much faster in the lab)
from ansible_collections.overlay.gre.plugins.module_utils import _sysctl
from ansible_collections.overlay.gre.plugins.modules import ip_forward  # noqa: F401  pylint: disable=unused-import


V4 = "net.ipv4.ip_forward"
V6 = "net.ipv6.conf.all.forwarding"
HOST_V4 = "/proc/sys/net/ipv4/ip_forward"
HOST_V6 = "/proc/sys/net/ipv6/conf/all/forwarding"

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18


def host_value(path):
    """The root namespace's value, read by this (root-namespace) process: READ ONLY."""
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return int(handle.read())


@pytest.fixture(autouse=True)
def host_untouched():
    before = (host_value(HOST_V4), host_value(HOST_V6))
    yield
    assert (host_value(HOST_V4), host_value(HOST_V6)) == before, "the root namespace's forwarding changed"


@pytest.fixture(scope="module")
def has_ipv6():
    return os.path.exists(HOST_V6)


def warnings_of(result):
    """Warning texts: plain strings through Ansible, WarningSummary records from an in-process run (ansible-core 2.19)."""
    return [w if isinstance(w, str) else w.get("event", {}).get("msg", repr(w)) for w in result.get("warnings", [])]


def ns_value(netns, key):
    return int(sh(netns, "cat /proc/sys/%s" % key.replace(".", "/")).stdout)


def ns_set(netns, key, value):
    sh(netns, "echo %d > /proc/sys/%s" % (value, key.replace(".", "/")))


def in_private_mounts(netns, setup, run):
    """Call RUN() in a child that entered NETNS and a private mount namespace prepared by the shell SETUP.

    The mounts SETUP makes (read-only binds, tmpfs) exist only in that child's mount namespace, which is made
    private recursively first, so nothing propagates to the machine's mounts. Returns RUN's result (JSON-able).
    """
    def work():
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
            raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
        subprocess.run(["sh", "-ec", setup], check=True, capture_output=True)
        return json.dumps({"ok": run()})

    outcome = json.loads(lab.in_child(netns, work))
    assert not outcome.get("failed"), outcome.get("msg")
    return outcome["ok"]


# --- through real Ansible (3 of the 4 runs) ----------------------------------------------------------------------


def test_enable_then_unchanged_rerun_through_ansible(netns, tmp_path):
    conf = tmp_path / "90-overlay-gre.conf"
    ns_set(netns, V4, 0)
    first = run_module(netns, "overlay.gre.ip_forward", {"sysctl_file": str(conf)}, diff=True)
    assert not first.get("failed"), first
    assert first["changed"] is True
    assert first["live"] == {V4: 1} and first["file"] == {V4: 1}
    assert first["sysctl_file"] == str(conf)
    live_diff, file_diff = first["diff"]
    assert (live_diff["before"], live_diff["after"]) == ("net.ipv4.ip_forward = 0\n", "net.ipv4.ip_forward = 1\n")
    assert file_diff["before"] == "" and file_diff["after"] == conf.read_text()
    assert ns_value(netns, V4) == 1
    text = conf.read_text()
    assert text.startswith("# Ansible managed") and text.endswith("\nnet.ipv4.ip_forward = 1\n")
    # a file under tmp_path is not one the boot reads: the module says so
    assert any("is not read at boot" in w for w in warnings_of(first)), first

    again = run_module(netns, "overlay.gre.ip_forward", {"sysctl_file": str(conf)})
    assert not again.get("failed"), again
    assert again["changed"] is False
    assert again["live"] == {V4: 1} and again["file"] == {V4: 1}
    assert conf.read_text() == text


def test_check_mode_through_ansible_changes_nothing(netns, tmp_path):
    conf = tmp_path / "fwd.conf"
    conf.write_text("kernel.panic = 10\n")
    ns_set(netns, V4, 0)
    result = run_module(netns, "overlay.gre.ip_forward", {"sysctl_file": str(conf)}, check=True, diff=True)
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert result["live"] == {V4: 1} and result["file"] == {V4: 1}
    assert result["diff"][1]["after"] == "kernel.panic = 10\nnet.ipv4.ip_forward = 1\n"
    assert ns_value(netns, V4) == 0
    assert conf.read_text() == "kernel.panic = 10\n"
    assert sorted(os.listdir(str(tmp_path))) == ["fwd.conf"]


def test_unwritable_file_is_refused_and_nothing_changes(netns, tmp_path):
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("")
    ns_set(netns, V4, 0)
    result = run_module_direct(netns, "ip_forward", {"sysctl_file": str(not_a_dir / "90-fwd.conf")})
    assert result.get("failed") is True, result
    assert "is not a directory" in result["msg"]
    assert ns_value(netns, V4) == 0


# --- in-process runs ----------------------------------------------------------------------------------------


def test_disable_writes_zero_lines(netns, tmp_path):
    conf = tmp_path / "fwd.conf"
    conf.write_text("net.ipv4.ip_forward = 1\n")
    ns_set(netns, V4, 1)
    result = run_module_direct(netns, "ip_forward", {"state": "disabled", "sysctl_file": str(conf)})
    assert result["changed"] is True, result
    assert result["live"] == {V4: 0} and result["file"] == {V4: 0}
    assert ns_value(netns, V4) == 0
    assert conf.read_text() == "net.ipv4.ip_forward = 0\n"
    assert run_module_direct(netns, "ip_forward", {"state": "disabled", "sysctl_file": str(conf)})["changed"] is False


def test_live_and_file_are_compared_separately(netns, tmp_path):
    conf = tmp_path / "fwd.conf"
    conf.write_text("net.ipv4.ip_forward = 1\n")
    ns_set(netns, V4, 0)
    result = run_module_direct(netns, "ip_forward", {"sysctl_file": str(conf)}, diff=True)
    assert result["changed"] is True
    assert result["diff"][1]["before"] == result["diff"][1]["after"]  # the file already agreed
    assert conf.read_text() == "net.ipv4.ip_forward = 1\n"
    # now only the file disagrees: the live value is left alone, the file replaced
    conf.write_text("net.ipv4.ip_forward = 0\n")
    ino = os.stat(str(conf)).st_ino
    result = run_module_direct(netns, "ip_forward", {"sysctl_file": str(conf)}, diff=True)
    assert result["changed"] is True
    assert result["diff"][0]["before"] == result["diff"][0]["after"] == "net.ipv4.ip_forward = 1\n"
    assert conf.read_text() == "net.ipv4.ip_forward = 1\n"
    assert os.stat(str(conf)).st_ino != ino  # replaced by a rename, not rewritten in place


def test_both_families(netns, tmp_path, has_ipv6):
    if not has_ipv6:
        pytest.skip("this kernel has no IPv6")
    conf = tmp_path / "fwd.conf"
    sh(netns, "ip link add fw0 type veth peer name fw1")
    ns_set(netns, V4, 0)
    ns_set(netns, V6, 0)
    result = run_module_direct(netns, "ip_forward", {"family": "both", "sysctl_file": str(conf)})
    assert result["changed"] is True, result
    assert result["live"] == {V4: 1, V6: 1} and result["file"] == {V4: 1, V6: 1}
    assert ns_value(netns, V4) == 1 and ns_value(netns, V6) == 1
    # the kernel copies "all" to every interface (the documented note)
    assert ns_value(netns, "net.ipv6.conf.fw0.forwarding") == 1
    assert ns_value(netns, "net.ipv4.conf.fw0.forwarding") == 1
    assert conf.read_text().endswith("net.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n")
    assert run_module_direct(netns, "ip_forward", {"family": "both", "sysctl_file": str(conf)})["changed"] is False

    result = run_module_direct(netns, "ip_forward", {"family": "ipv6", "state": "disabled", "sysctl_file": str(conf)})
    assert result["changed"] is True and result["live"] == {V6: 0}
    assert ns_value(netns, V6) == 0 and ns_value(netns, V4) == 1  # the other family is not the module's this time
    assert conf.read_text().endswith("net.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 0\n")


def test_file_with_other_settings_keeps_them(netns, tmp_path):
    conf = tmp_path / "60-site.conf"
    original = ("# site settings\n"
                "kernel.panic = 10\n"
                "net.ipv4.ip_forward = 0\n"
                "\n"
                "; keep me\n"
                "vm.swappiness=5\n")
    conf.write_text(original)
    conf.chmod(0o640)
    ns_set(netns, V4, 0)
    result = run_module_direct(netns, "ip_forward", {"sysctl_file": str(conf)})
    assert result["changed"] is True
    assert conf.read_text() == original.replace("net.ipv4.ip_forward = 0", "net.ipv4.ip_forward = 1")
    assert conf.stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(str(tmp_path))) == ["60-site.conf"]  # no temporary file left behind


def test_check_mode_direct_and_persist_false(netns, tmp_path):
    conf = tmp_path / "fwd.conf"
    ns_set(netns, V4, 1)
    result = run_module_direct(netns, "ip_forward", {"state": "disabled", "sysctl_file": str(conf)}, check=True)
    assert result["changed"] is True and result["live"] == {V4: 0}
    assert ns_value(netns, V4) == 1 and not conf.exists()
    result = run_module_direct(netns, "ip_forward", {"state": "disabled", "persist": False, "sysctl_file": str(conf)})
    assert result["changed"] is True and result["file"] is None and result["sysctl_file"] is None
    assert ns_value(netns, V4) == 0 and not conf.exists()
    assert not result.get("warnings")


def test_acts_on_its_own_namespace_only(netns_factory, tmp_path):
    """A namespace set apart from the host and from a sibling: only the target moves (the host is checked by host_untouched)."""
    target = netns_factory("fa")
    sibling = netns_factory("fb")
    host = host_value(HOST_V4)
    wanted = 1 - host
    ns_set(target, V4, host)
    ns_set(sibling, V4, host)
    result = run_module_direct(target, "ip_forward", {"state": "enabled" if wanted else "disabled", "persist": False})
    assert result["changed"] is True and result["live"] == {V4: wanted}
    assert ns_value(target, V4) == wanted
    assert ns_value(sibling, V4) == host
    assert host_value(HOST_V4) == host
    # and back the other way, from a namespace that now differs from the host
    result = run_module_direct(target, "ip_forward", {"state": "disabled" if wanted else "enabled", "persist": False})
    assert result["changed"] is True and ns_value(target, V4) == host


def test_end_to_end_acts_on_its_own_namespace_only(netns_factory, tmp_path):
    """The same through Ansible and the netns connection (ip netns exec remounts /sys, /proc/sys/net follows the task)."""
    target = netns_factory("ea")
    sibling = netns_factory("eb")
    host = host_value(HOST_V4)
    wanted = 1 - host
    ns_set(sibling, V4, host)
    ns_set(target, V4, host)
    result = run_module(target, "overlay.gre.ip_forward", {"state": "enabled" if wanted else "disabled", "persist": False})
    assert not result.get("failed"), result
    assert result["changed"] is True and result["live"] == {V4: wanted}
    assert ns_value(target, V4) == wanted and ns_value(sibling, V4) == host and host_value(HOST_V4) == host


# --- refusals -----------------------------------------------------------------------------------------------


def test_read_only_proc_sys_is_refused_and_nothing_changes(netns, tmp_path):
    conf = tmp_path / "fwd.conf"
    ns_set(netns, V4, 0)
    result = in_private_mounts(netns, "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys",
                               lambda: run_module_direct(netns, "ip_forward", {"sysctl_file": str(conf)}))
    assert result.get("failed") is True, result
    assert "read-only" in result["msg"] and "/proc/sys/net/ipv4/ip_forward" in result["msg"]
    assert ns_value(netns, V4) == 0
    assert not conf.exists()
    # where the live value already agrees, a read-only /proc/sys is no obstacle: only the file is written
    ns_set(netns, V4, 1)
    result = in_private_mounts(netns, "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys",
                               lambda: run_module_direct(netns, "ip_forward", {"sysctl_file": str(conf)}))
    assert result["changed"] is True and conf.read_text().endswith("net.ipv4.ip_forward = 1\n")


def test_read_only_directory_is_refused_and_nothing_changes(netns, tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    conf = etc / "90-fwd.conf"
    conf.write_text("kernel.panic = 10\n")
    ns_set(netns, V4, 0)
    result = in_private_mounts(netns, "mount --bind %s %s && mount -o remount,bind,ro %s" % (etc, etc, etc),
                               lambda: run_module_direct(netns, "ip_forward", {"sysctl_file": str(conf)}))
    assert result.get("failed") is True, result
    assert "not writable" in result["msg"] and str(etc) in result["msg"]
    assert ns_value(netns, V4) == 0
    assert conf.read_text() == "kernel.panic = 10\n"


def test_ipv6_disabled_is_refused(netns, tmp_path, has_ipv6):
    """A kernel without IPv6 has no /proc/sys/net/ipv6 entries: shown here by an empty tmpfs over that directory."""
    if has_ipv6:
        setup = "mount -t tmpfs overlay-gre-no-ipv6 /proc/sys/net/ipv6"
    else:
        setup = "true"
    conf = tmp_path / "fwd.conf"
    ns_set(netns, V4, 0)

    def both():
        return [run_module_direct(netns, "ip_forward", {"family": family, "sysctl_file": str(conf)}) for family in ("ipv6", "both")]

    for result in in_private_mounts(netns, setup, both):
        assert result.get("failed") is True, result
        assert "IPv6 is disabled in this kernel" in result["msg"]
    assert ns_value(netns, V4) == 0 and not conf.exists()


def test_failed_rename_puts_the_live_value_back(netns, tmp_path, monkeypatch):
    """Every check passed, then the rename failed (a race, a full disk): no kernel here fails a rename on demand,
    so replace_file is replaced by one that raises; the live write and its rollback are real."""
    def failing_rename(tmp, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_sysctl, "replace_file", failing_rename)
    conf = tmp_path / "fwd.conf"
    conf.write_text("kernel.panic = 10\n")
    sh(netns, "ip link add rb0 type veth peer name rb1")
    ns_set(netns, V4, 0)
    ns_set(netns, "net.ipv4.conf.rb0.forwarding", 0)
    result = run_module_direct(netns, "ip_forward", {"sysctl_file": str(conf)})
    assert result.get("failed") is True, result
    assert "No space left on device" in result["msg"] and "put back (net.ipv4.ip_forward = 0)" in result["msg"]
    assert ns_value(netns, V4) == 0
    assert ns_value(netns, "net.ipv4.conf.rb0.forwarding") == 0
    assert conf.read_text() == "kernel.panic = 10\n"
    assert sorted(os.listdir(str(tmp_path))) == ["fwd.conf"]


# --- the default file, in a private /etc/sysctl.d -------------------------------------------------------------


def test_default_file_and_a_later_file_that_overrides_it(netns):
    """The default sysctl_file, written into a tmpfs mounted over /etc/sysctl.d in a private mount namespace."""
    setup = ("mount -t tmpfs overlay-gre-sysctl-d /etc/sysctl.d && "
             "printf 'net.ipv4.ip_forward = 0\\n' > /etc/sysctl.d/95-later.conf && "
             "printf 'kernel.panic = 10\\n' > /etc/sysctl.d/10-early.conf")

    def run():
        # refuse to go on unless /etc/sysctl.d is the private tmpfs, never the machine's directory
        if subprocess.run(["mountpoint", "-q", "/etc/sysctl.d"], check=False).returncode != 0:
            raise AssertionError("/etc/sysctl.d is not the private tmpfs")
        result = run_module_direct(netns, "ip_forward", {})
        with open("/etc/sysctl.d/90-overlay-gre.conf") as handle:
            result["_written"] = handle.read()
        result["_listing"] = sorted(os.listdir("/etc/sysctl.d"))
        return result

    ns_set(netns, V4, 0)
    result = in_private_mounts(netns, setup, run)
    assert result["changed"] is True, result
    assert result["sysctl_file"] == "/etc/sysctl.d/90-overlay-gre.conf"
    assert result["_written"].endswith("net.ipv4.ip_forward = 1\n")
    assert result["_listing"] == ["10-early.conf", "90-overlay-gre.conf", "95-later.conf"]
    warnings = warnings_of(result)
    assert any("/etc/sysctl.d/95-later.conf sets net.ipv4.ip_forward = 0" in w for w in warnings), warnings
    assert ns_value(netns, V4) == 1
    assert not os.path.exists("/etc/sysctl.d/90-overlay-gre.conf")


# --- state=absent, against a boot configuration of the test's making ---------------------------------------------


def clean_boot_setup(tmp_path, files=None):
    """Shell for in_private_mounts: an empty tmpfs over every sysctl.d directory the boot reads, an empty file over
    /etc/sysctl.conf, then FILES (name -> text) written into the private /etc/sysctl.d."""
    empty = tmp_path / "empty-sysctl.conf"
    empty.write_text("")
    setup = ['for d in %s; do if [ -d "$d" ]; then mount -t tmpfs overlay-gre-sysctl-d "$d"; fi; done' % " ".join(_sysctl.SYSCTL_DIRS),
             "if [ -e {0} ]; then mount --bind {1} {0}; fi".format(_sysctl.SYSCTL_CONF, empty)]
    for name, text in sorted((files or {}).items()):
        setup.append("printf '%%s' '%s' > /etc/sysctl.d/%s" % (text, name))
    return " && ".join(setup)


def private_sysctl_d():
    """Refuse to go on unless /etc/sysctl.d is the private tmpfs, never the machine's directory."""
    if subprocess.run(["mountpoint", "-q", "/etc/sysctl.d"], check=False).returncode != 0:
        raise AssertionError("/etc/sysctl.d is not the private tmpfs")


def test_absent_after_enabled_restores_the_kernel_default_and_removes_the_file(netns, tmp_path):
    """Nothing else sets the key: absent puts the kernel default back and removes the file the module created."""
    def run():
        private_sysctl_d()
        enabled = run_module_direct(netns, "ip_forward", {})
        live_enabled = ns_value(netns, V4)
        absent = run_module(netns, "overlay.gre.ip_forward", {"state": "absent"}, diff=True)
        return {"enabled": enabled, "live_enabled": live_enabled, "absent": absent, "live": ns_value(netns, V4),
                "listing": sorted(os.listdir("/etc/sysctl.d")),
                "again": run_module_direct(netns, "ip_forward", {"state": "absent"}, check=True)}

    ns_set(netns, V4, 0)
    out = in_private_mounts(netns, clean_boot_setup(tmp_path), run)
    assert out["enabled"]["changed"] is True and out["live_enabled"] == 1, out["enabled"]
    absent = out["absent"]
    assert not absent.get("failed"), absent
    assert absent["changed"] is True and absent["live"] == {V4: 0} and absent["file"] == {V4: None}
    assert absent["live_source"] == {V4: "kernel default"}
    live_diff, file_diff = absent["diff"]
    assert (live_diff["before"], live_diff["after"]) == ("net.ipv4.ip_forward = 1\n", "net.ipv4.ip_forward = 0\n")
    assert file_diff["before"].endswith("net.ipv4.ip_forward = 1\n") and file_diff["after"] == ""
    assert out["live"] == 0 and out["listing"] == []
    assert out["again"]["changed"] is False, out["again"]
    assert ns_value(netns, V4) == 0
    assert not os.path.exists("/etc/sysctl.d/90-overlay-gre.conf")


def test_absent_keeps_the_value_another_boot_file_sets(netns, tmp_path):
    """Another file the boot applies sets forwarding on: absent removes the module's file and leaves forwarding on."""
    def run():
        private_sysctl_d()
        enabled = run_module_direct(netns, "ip_forward", {})
        absent = run_module_direct(netns, "ip_forward", {"state": "absent"})
        return {"enabled": enabled, "absent": absent, "live": ns_value(netns, V4), "listing": sorted(os.listdir("/etc/sysctl.d"))}

    ns_set(netns, V4, 0)
    out = in_private_mounts(netns, clean_boot_setup(tmp_path, {"10-site.conf": "kernel.panic = 10\nnet.ipv4.ip_forward = 1\n"}), run)
    assert out["enabled"]["changed"] is True, out["enabled"]
    absent = out["absent"]
    assert absent["changed"] is True and absent["live"] == {V4: 1}, absent
    assert absent["live_source"] == {V4: "/etc/sysctl.d/10-site.conf"}
    assert out["live"] == 1 and out["listing"] == ["10-site.conf"]


def test_absent_refusals_change_nothing(netns, tmp_path):
    """A live change with /proc/sys read-only, and a file in a read-only directory, are refused before any change;
    a read-only /proc/sys is no obstacle where the live value already is the boot's."""
    etc = tmp_path / "etc"
    etc.mkdir()
    conf = etc / "90-fwd.conf"
    created = _sysctl.HEADER + "net.ipv4.ip_forward = 1\n"
    conf.write_text(created)
    args = {"state": "absent", "sysctl_file": str(conf)}
    read_only_proc = " && mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys"
    read_only_etc = " && mount --bind {0} {0} && mount -o remount,bind,ro {0}".format(etc)

    ns_set(netns, V4, 1)
    result = in_private_mounts(netns, clean_boot_setup(tmp_path) + read_only_proc, lambda: run_module_direct(netns, "ip_forward", args))
    assert result.get("failed") is True and "read-only" in result["msg"], result
    assert ns_value(netns, V4) == 1 and conf.read_text() == created

    result = in_private_mounts(netns, clean_boot_setup(tmp_path) + read_only_etc, lambda: run_module_direct(netns, "ip_forward", args))
    assert result.get("failed") is True and "not writable" in result["msg"], result
    assert ns_value(netns, V4) == 1 and conf.read_text() == created

    ns_set(netns, V4, 0)
    result = in_private_mounts(netns, clean_boot_setup(tmp_path) + read_only_proc, lambda: run_module_direct(netns, "ip_forward", args))
    assert result["changed"] is True and result["live"] == {V4: 0}, result
    assert not conf.exists() and sorted(os.listdir(str(tmp_path))) == ["empty-sysctl.conf", "etc"]
