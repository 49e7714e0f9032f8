# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""IpForward's read/compare/check/apply on a stand-in /proc/sys of plain files, and the boot-order warnings.

The kernel tests (tests/kernel/test_ip_forward.py) run the same code against real namespaces; these cover what
no kernel here shows on demand: an IPv6-less kernel's /proc/sys layout, a rename that fails after every check
passed, and sysctl.d trees of our own making.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.overlay.gre.plugins.module_utils import _sysctl
from ansible_collections.overlay.gre.plugins.module_utils._sysctl import IpForward, boot_warnings

V4 = "net.ipv4.ip_forward"
V6 = "net.ipv6.conf.all.forwarding"


class Exit(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


class FakeModule:
    """The part of AnsibleModule IpForward uses."""

    def __init__(self, check_mode=False, diff=False, **params):
        self.params = dict(family="ipv4", state="enabled", persist=True, sysctl_file=None)
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)

    def fail_json(self, **result):
        result["failed"] = True
        raise Exit(result)

    def exit_json(self, **result):
        raise Exit(result)

    def selinux_enabled(self):
        return False


def fake_proc(root, ipv4=0, ipv6=0, interfaces=("lo", "eth0"), with_ipv6=True):
    families = {"ipv4": ipv4, "ipv6": ipv6} if with_ipv6 else {"ipv4": ipv4}
    for family, value in families.items():
        for conf in ("all", "default") + tuple(interfaces):
            path = root / "net" / family / "conf" / conf
            path.mkdir(parents=True, exist_ok=True)
            (path / "forwarding").write_text("%d\n" % value)
    (root / "net" / "ipv4" / "ip_forward").write_text("%d\n" % ipv4)
    return root


def read(root, key):
    return int((root / key.replace(".", "/")).read_text())


def run(tmp_path, proc, check_mode=False, diff=False, **params):
    params.setdefault("sysctl_file", str(tmp_path / "etc" / "90-fwd.conf"))
    (tmp_path / "etc").mkdir(exist_ok=True)
    module = FakeModule(check_mode=check_mode, diff=diff, **params)
    with pytest.raises(Exit) as caught:
        IpForward(module, proc_sys=str(proc), sysctl_dirs=(str(tmp_path / "etc"),),
                  sysctl_conf=str(tmp_path / "sysctl.conf")).run()
    return caught.value.result, module.warnings


def test_enable_writes_live_and_file_then_nothing(tmp_path):
    proc = fake_proc(tmp_path / "proc")
    result, warnings = run(tmp_path, proc, diff=True)
    assert result["changed"] is True
    assert result["live"] == {V4: 1} and result["file"] == {V4: 1}
    assert read(proc, "net.ipv4.ip_forward") == 1
    assert (tmp_path / "etc" / "90-fwd.conf").read_text().endswith("net.ipv4.ip_forward = 1\n")
    assert oct((tmp_path / "etc" / "90-fwd.conf").stat().st_mode & 0o777) == "0o644"
    assert result["diff"][0]["before"] == "net.ipv4.ip_forward = 0\n"
    assert result["diff"][0]["after"] == "net.ipv4.ip_forward = 1\n"
    assert result["diff"][1]["before"] == ""
    assert warnings == []
    again, dummy = run(tmp_path, proc)
    assert again["changed"] is False


def test_no_leftover_temporary_files(tmp_path):
    proc = fake_proc(tmp_path / "proc")
    run(tmp_path, proc)
    assert os.listdir(str(tmp_path / "etc")) == ["90-fwd.conf"]


def test_existing_file_mode_is_kept(tmp_path):
    proc = fake_proc(tmp_path / "proc")
    (tmp_path / "etc").mkdir()
    conf = tmp_path / "etc" / "90-fwd.conf"
    conf.write_text("kernel.panic = 10\n")
    conf.chmod(0o600)
    run(tmp_path, proc)
    assert conf.stat().st_mode & 0o777 == 0o600
    assert conf.read_text() == "kernel.panic = 10\nnet.ipv4.ip_forward = 1\n"


def test_symlinked_file_is_written_through_and_the_link_kept(tmp_path):
    proc = fake_proc(tmp_path / "proc")
    (tmp_path / "etc").mkdir()
    target = tmp_path / "sysctl.conf"
    target.write_text("kernel.panic = 10\n")
    link = tmp_path / "etc" / "99-sysctl.conf"
    link.symlink_to(target)
    result, warnings = run(tmp_path, proc, sysctl_file=str(link))
    assert result["changed"] is True
    assert link.is_symlink()
    assert target.read_text() == "kernel.panic = 10\nnet.ipv4.ip_forward = 1\n"
    assert warnings == []


def test_both_families_and_ipv6_per_interface_values_restored_on_rollback(tmp_path, monkeypatch):
    proc = fake_proc(tmp_path / "proc", interfaces=("eth0", "eth1"))
    (proc / "net/ipv6/conf/eth1/forwarding").write_text("1\n")  # set apart before the run

    def failing_rename(tmp, path):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(_sysctl, "replace_file", failing_rename)
    result, dummy = run(tmp_path, proc, family="both")
    assert result["failed"] is True
    assert "were put back" in result["msg"] and "Input/output error" in result["msg"]
    # the stand-in does not propagate "all" to interfaces as the kernel does, but the rollback writes them all back
    assert read(proc, V4) == 0 and read(proc, V6) == 0
    assert read(proc, "net.ipv6.conf.eth1.forwarding") == 1
    assert not (tmp_path / "etc" / "90-fwd.conf").exists()
    assert os.listdir(str(tmp_path / "etc")) == []


def test_ipv6_disabled_kernel_is_refused_for_ipv6_and_both(tmp_path):
    proc = fake_proc(tmp_path / "proc", with_ipv6=False)
    for family in ("ipv6", "both"):
        result, dummy = run(tmp_path, proc, family=family)
        assert result["failed"] is True
        assert "IPv6 is disabled in this kernel" in result["msg"]
    assert read(proc, V4) == 0
    assert not (tmp_path / "etc" / "90-fwd.conf").exists()
    ok, dummy = run(tmp_path, proc, family="ipv4")
    assert ok["changed"] is True


def test_check_mode_changes_nothing_and_predicts(tmp_path):
    proc = fake_proc(tmp_path / "proc")
    result, dummy = run(tmp_path, proc, check_mode=True, diff=True, family="both")
    assert result["changed"] is True
    assert result["live"] == {V4: 1, V6: 1}
    assert result["file"] == {V4: 1, V6: 1}
    assert read(proc, V4) == 0 and read(proc, V6) == 0
    assert os.listdir(str(tmp_path / "etc")) == []


def test_persist_false_leaves_the_file_unread(tmp_path):
    proc = fake_proc(tmp_path / "proc")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "90-fwd.conf").mkdir()  # would be refused if it were read
    result, warnings = run(tmp_path, proc, persist=False, diff=True)
    assert result["changed"] is True and result["file"] is None and result["sysctl_file"] is None
    assert len(result["diff"]) == 1
    assert warnings == []


def test_a_directory_as_sysctl_file_is_refused_before_any_change(tmp_path):
    proc = fake_proc(tmp_path / "proc")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "90-fwd.conf").mkdir()
    result, dummy = run(tmp_path, proc)
    assert result["failed"] is True and "is a directory" in result["msg"]
    assert read(proc, V4) == 0


def test_missing_directory_is_refused_before_any_change(tmp_path):
    proc = fake_proc(tmp_path / "proc")
    result, dummy = run(tmp_path, proc, sysctl_file=str(tmp_path / "nowhere" / "90-fwd.conf"))
    assert result["failed"] is True and "does not exist" in result["msg"]
    assert read(proc, V4) == 0


# --- state=absent -------------------------------------------------------------------------------------------


def test_absent_after_enabled_removes_the_file_and_restores_the_kernel_default(tmp_path):
    proc = fake_proc(tmp_path / "proc")
    conf = tmp_path / "etc" / "90-fwd.conf"
    run(tmp_path, proc, family="both")
    assert read(proc, V4) == 1 and read(proc, V6) == 1
    created = conf.read_text()
    result, warnings = run(tmp_path, proc, family="both", state="absent", diff=True)
    assert result["changed"] is True
    assert result["live"] == {V4: 0, V6: 0} and result["file"] == {V4: None, V6: None}
    assert result["live_source"] == {V4: "kernel default", V6: "kernel default"}
    assert read(proc, V4) == 0 and read(proc, V6) == 0
    assert not conf.exists() and os.listdir(str(tmp_path / "etc")) == []
    live_diff, file_diff = result["diff"]
    assert live_diff["before"] == "%s = 1\n%s = 1\n" % (V4, V6) and live_diff["after"] == "%s = 0\n%s = 0\n" % (V4, V6)
    assert (file_diff["before"], file_diff["after"]) == (created, "")
    assert file_diff["after_header"].endswith("(absent)")
    assert warnings == []
    again, dummy = run(tmp_path, proc, family="both", state="absent")
    assert again["changed"] is False and again["live_source"] == {V4: "kernel default", V6: "kernel default"}


def test_absent_for_one_family_keeps_the_others_line_then_the_file_goes_with_the_last(tmp_path):
    proc = fake_proc(tmp_path / "proc")
    conf = tmp_path / "etc" / "90-fwd.conf"
    run(tmp_path, proc, family="both")
    result, dummy = run(tmp_path, proc, family="ipv4", state="absent")
    assert result["changed"] is True and result["live"] == {V4: 0} and read(proc, V6) == 1
    assert conf.read_text() == _sysctl.HEADER + "net.ipv6.conf.all.forwarding = 1\n"
    result, dummy = run(tmp_path, proc, family="ipv6", state="absent")
    assert result["changed"] is True and not conf.exists()


def test_absent_keeps_every_other_line_and_the_file(tmp_path):
    proc = fake_proc(tmp_path / "proc", ipv4=1)
    (tmp_path / "etc").mkdir()
    conf = tmp_path / "etc" / "90-fwd.conf"
    conf.write_text("# site\nkernel.panic = 10\nnet.ipv4.ip_forward = 1\n\nvm.swappiness=5\n")
    conf.chmod(0o640)
    ino = conf.stat().st_ino
    result, dummy = run(tmp_path, proc, state="absent")
    assert result["changed"] is True and result["live"] == {V4: 0}
    assert conf.read_text() == "# site\nkernel.panic = 10\n\nvm.swappiness=5\n"
    assert conf.stat().st_mode & 0o777 == 0o640 and conf.stat().st_ino != ino  # replaced by a rename
    assert sorted(os.listdir(str(tmp_path / "etc"))) == ["90-fwd.conf"]
    assert run(tmp_path, proc, state="absent")[0]["changed"] is False


def test_absent_through_a_symlink_keeps_the_link_and_rewrites_the_file_it_names(tmp_path):
    proc = fake_proc(tmp_path / "proc", ipv4=1)
    (tmp_path / "etc").mkdir()
    target = tmp_path / "fwd-target.conf"
    target.write_text(_sysctl.HEADER + "net.ipv4.ip_forward = 1\n")
    link = tmp_path / "etc" / "90-fwd.conf"
    link.symlink_to(target)
    result, dummy = run(tmp_path, proc, state="absent")
    assert result["changed"] is True and result["live_source"] == {V4: "kernel default"}
    assert link.is_symlink() and target.read_text() == _sysctl.HEADER
    assert run(tmp_path, proc, state="absent")[0]["changed"] is False


def test_absent_with_only_the_header_left_over_removes_it(tmp_path):
    proc = fake_proc(tmp_path / "proc")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "90-fwd.conf").write_text(_sysctl.HEADER + "\n")
    result, dummy = run(tmp_path, proc, state="absent")
    assert result["changed"] is True and os.listdir(str(tmp_path / "etc")) == []


def test_absent_takes_the_live_value_from_the_files_the_boot_still_applies(tmp_path):
    proc = fake_proc(tmp_path / "proc", ipv4=1, ipv6=1)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "10-site.conf").write_text("net.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 0\n")
    (etc / "90-fwd.conf").write_text(_sysctl.HEADER + "net.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n")
    result, dummy = run(tmp_path, proc, family="both", state="absent")
    assert result["live_source"] == {V4: str(etc / "10-site.conf"), V6: str(etc / "10-site.conf")}
    assert result["live"] == {V4: 1, V6: 0} and read(proc, V4) == 1 and read(proc, V6) == 0
    assert not (etc / "90-fwd.conf").exists()
    # a later file wins, the alias net.ipv4.conf.all.forwarding counts, and /etc/sysctl.conf comes last
    (etc / "95-later.conf").write_text("net/ipv4/conf/all/forwarding = 0\n")
    (tmp_path / "sysctl.conf").write_text("net.ipv6.conf.all.forwarding = 1\n")
    result, dummy = run(tmp_path, proc, family="both", state="absent")
    assert result["changed"] is True and result["live"] == {V4: 0, V6: 1}
    assert result["live_source"] == {V4: str(etc / "95-later.conf"), V6: str(tmp_path / "sysctl.conf")}


def test_absent_in_check_mode_changes_nothing_and_predicts(tmp_path):
    proc = fake_proc(tmp_path / "proc")
    run(tmp_path, proc)
    conf = tmp_path / "etc" / "90-fwd.conf"
    text = conf.read_text()
    result, dummy = run(tmp_path, proc, state="absent", check_mode=True, diff=True)
    assert result["changed"] is True and result["live"] == {V4: 0} and result["file"] == {V4: None}
    assert result["diff"][1]["after"] == ""
    assert read(proc, V4) == 1 and conf.read_text() == text


def test_absent_without_persist_ignores_the_file_and_leaves_it(tmp_path):
    proc = fake_proc(tmp_path / "proc", ipv4=1)
    (tmp_path / "etc").mkdir()
    conf = tmp_path / "etc" / "90-fwd.conf"
    conf.write_text("net.ipv4.ip_forward = 1\n")
    result, dummy = run(tmp_path, proc, state="absent", persist=False, diff=True)
    assert result["changed"] is True and result["live"] == {V4: 0} and result["file"] is None
    assert result["live_source"] == {V4: "kernel default"} and len(result["diff"]) == 1
    assert conf.read_text() == "net.ipv4.ip_forward = 1\n"


def test_absent_with_a_dangling_link_or_no_file_changes_no_file(tmp_path):
    proc = fake_proc(tmp_path / "proc")
    (tmp_path / "etc").mkdir()
    assert run(tmp_path, proc, state="absent")[0]["changed"] is False
    (tmp_path / "etc" / "90-fwd.conf").symlink_to(tmp_path / "nowhere.conf")
    assert run(tmp_path, proc, state="absent")[0]["changed"] is False
    assert (tmp_path / "etc" / "90-fwd.conf").is_symlink()


def test_absent_failed_removal_puts_the_live_value_back(tmp_path, monkeypatch):
    proc = fake_proc(tmp_path / "proc")
    run(tmp_path, proc)
    conf = tmp_path / "etc" / "90-fwd.conf"
    text = conf.read_text()

    def failing_remove(path):
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(_sysctl, "remove_file", failing_remove)
    result, dummy = run(tmp_path, proc, state="absent")
    assert result["failed"] is True
    assert "cannot remove sysctl_file" in result["msg"] and "put back (net.ipv4.ip_forward = 1)" in result["msg"]
    assert read(proc, V4) == 1 and conf.read_text() == text


# --- boot order -------------------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    dirs = [tmp_path / "etc/sysctl.d", tmp_path / "run/sysctl.d", tmp_path / "usr/lib/sysctl.d"]
    for directory in dirs:
        directory.mkdir(parents=True)
    return tmp_path, tuple(str(d) for d in dirs), str(tmp_path / "etc/sysctl.conf")


def test_no_warning_when_nothing_later_disagrees(tree):
    root, dirs, conf = tree
    (root / "etc/sysctl.d/10-early.conf").write_text("net.ipv4.ip_forward = 0\n")  # applied before ours: loses
    (root / "etc/sysctl.d/95-later.conf").write_text("net.ipv4.ip_forward = 1\nkernel.panic = 3\n")  # agrees
    ours = root / "etc/sysctl.d/90-overlay-gre.conf"
    ours.write_text("net.ipv4.ip_forward = 1\n")
    assert boot_warnings(str(ours), {V4: 1}, dirs, conf) == []


def test_a_later_file_in_any_directory_that_disagrees_is_named(tree):
    root, dirs, conf = tree
    (root / "usr/lib/sysctl.d/95-vendor.conf").write_text("net.ipv4.ip_forward = 0\n")
    ours = root / "etc/sysctl.d/90-overlay-gre.conf"
    warnings = boot_warnings(str(ours), {V4: 1}, dirs, conf)
    assert len(warnings) == 1
    assert "95-vendor.conf sets net.ipv4.ip_forward = 0" in warnings[0] and "not 1" in warnings[0]


def test_a_later_file_hidden_by_etc_does_not_count(tree):
    root, dirs, conf = tree
    (root / "usr/lib/sysctl.d/95-vendor.conf").write_text("net.ipv4.ip_forward = 0\n")
    (root / "etc/sysctl.d/95-vendor.conf").write_text("# masked by the admin\n")
    assert boot_warnings(str(root / "etc/sysctl.d/90-overlay-gre.conf"), {V4: 1}, dirs, conf) == []


def test_our_file_hidden_by_a_same_name_file_read_first(tree):
    root, dirs, conf = tree
    (root / "etc/sysctl.d/90-overlay-gre.conf").write_text("")
    warnings = boot_warnings(str(root / "usr/lib/sysctl.d/90-overlay-gre.conf"), {V4: 1}, dirs, conf)
    assert len(warnings) == 1 and "hidden at boot" in warnings[0]


def test_sysctl_conf_applied_last_by_sysctl_system(tree):
    root, dirs, conf = tree
    (root / "etc/sysctl.conf").write_text("net.ipv4.ip_forward=0\n")
    warnings = boot_warnings(str(root / "etc/sysctl.d/90-overlay-gre.conf"), {V4: 1}, dirs, conf)
    assert len(warnings) == 1 and "`sysctl --system` applies it last" in warnings[0]


def test_sysctl_conf_reported_once_when_linked_as_99_sysctl(tree):
    root, dirs, conf = tree
    (root / "etc/sysctl.conf").write_text("net.ipv4.ip_forward=0\n")
    (root / "etc/sysctl.d/99-sysctl.conf").symlink_to("../sysctl.conf")
    warnings = boot_warnings(str(root / "etc/sysctl.d/90-overlay-gre.conf"), {V4: 1}, dirs, conf)
    assert len(warnings) == 1 and "99-sysctl.conf" in warnings[0]


def test_sysctl_conf_as_our_file(tree):
    root, dirs, conf = tree
    # not linked: systemd-sysctl skips it
    warnings = boot_warnings(conf, {V4: 1}, dirs, conf)
    assert len(warnings) == 1 and "systemd-sysctl does not read it" in warnings[0]
    # linked as Debian does: read, and applied as 99-sysctl.conf
    (root / "etc/sysctl.d/99-sysctl.conf").symlink_to("../sysctl.conf")
    assert boot_warnings(conf, {V4: 1}, dirs, conf) == []


def test_a_file_outside_the_search_path_is_not_read_at_boot(tree):
    root, dirs, conf = tree
    warnings = boot_warnings(str(root / "fwd.conf"), {V4: 1}, dirs, conf)
    assert len(warnings) == 1 and "is not read at boot" in warnings[0]
    warnings = boot_warnings(str(root / "etc/sysctl.d/90-fwd.txt"), {V4: 1}, dirs, conf)
    assert len(warnings) == 1 and "is not read at boot" in warnings[0]
