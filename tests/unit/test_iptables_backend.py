# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which iptables programs the engine picks, and how it explains failures, with fake programs (no kernel).

The kernel tests cover the real programs; these cover targets this machine is not: no iptables at all, an
iptables older than 1.8, a kernel that refuses nft.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.overlay.gre.plugins.module_utils._iptables import Iptables, IptablesError


@pytest.fixture
def sbin(tmp_path):
    """A fake sbin folder; make(name, target) adds a symlink like Debian's alternatives do."""
    def make(name, target):
        real = tmp_path / target
        real.touch()
        link = tmp_path / name
        if not link.exists():
            os.symlink(real, link)
    make.path = tmp_path
    return make


def finder(folder):
    def find(name):
        path = folder / name
        return str(path) if os.path.lexists(path) else None
    return find


def install(sbin, system):
    for backend in ("nft", "legacy"):
        for suffix in ("", "-save", "-restore"):
            sbin("iptables-%s%s" % (backend, suffix), "xtables-%s-multi" % backend)
    for suffix in ("", "-save", "-restore"):
        sbin("iptables" + suffix, "xtables-%s-multi" % system)


def no_run(cmd, data=None):
    raise AssertionError("nothing should run: %r" % (cmd,))


@pytest.mark.parametrize("system", ["nft", "legacy"])
def test_auto_follows_the_iptables_command(sbin, system):
    install(sbin, system)
    ipt = Iptables(find=finder(sbin.path), runner=no_run)
    assert ipt.backend == system
    assert ipt.save_cmd.endswith("iptables-%s-save" % system)
    assert ipt.restore_cmd.endswith("iptables-%s-restore" % system)


def test_auto_uses_the_iptables_command_even_when_save_points_elsewhere(sbin):
    # a machine whose iptables alternative points at legacy while iptables-save/-restore still point at nft
    for backend in ("nft", "legacy"):
        for suffix in ("", "-save", "-restore"):
            sbin("iptables-%s%s" % (backend, suffix), "xtables-%s-multi" % backend)
    sbin("iptables", "xtables-legacy-multi")
    sbin("iptables-save", "xtables-nft-multi")
    sbin("iptables-restore", "xtables-nft-multi")
    ipt = Iptables(find=finder(sbin.path), runner=no_run)
    assert ipt.backend == "legacy" and ipt.restore_cmd.endswith("iptables-legacy-restore")


def test_old_iptables_without_backend_names(sbin):
    for suffix in ("", "-save", "-restore"):
        sbin("iptables" + suffix, "xtables-multi")
    ipt = Iptables(find=finder(sbin.path), runner=no_run)
    assert ipt.backend == "legacy" and ipt.save_cmd.endswith("/iptables-save")
    assert Iptables(backend="legacy", find=finder(sbin.path), runner=no_run).save_cmd.endswith("/iptables-save")
    with pytest.raises(IptablesError, match="the nft backend of iptables is not installed"):
        Iptables(backend="nft", find=finder(sbin.path), runner=no_run)


@pytest.mark.parametrize("backend", ["auto", "nft", "legacy"])
def test_no_iptables_on_the_target(sbin, backend):
    with pytest.raises(IptablesError, match=r"iptables is not installed on the target.*install the iptables package"):
        Iptables(backend=backend, find=finder(sbin.path), runner=no_run)


def test_nft_refused_by_the_kernel_names_legacy(sbin, monkeypatch):
    install(sbin, "nft")
    monkeypatch.setattr(os.path, "exists", lambda path: path == "/proc/net/ip_tables_names")

    def runner(cmd, data=None):
        assert cmd[0].endswith("iptables-nft-restore") and cmd[1:] == ["--noflush", "-w", "10"], cmd
        return 4, "", ("iptables-nft-restore v1.8.9 (nf_tables): \nline 2: TABLE_ADD failed (Operation not supported): table nat\n")
    ipt = Iptables(find=finder(sbin.path), runner=runner)
    with pytest.raises(IptablesError) as err:
        ipt.restore("*nat\nCOMMIT\n")
    assert "the nft backend of iptables cannot run on this kernel; the legacy backend works: set backend=legacy" in str(err.value)
    assert "TABLE_ADD failed" in str(err.value)


def test_legacy_refused_by_the_kernel_suggests_nft(sbin):
    install(sbin, "legacy")

    def runner(cmd, data=None):
        return 1, "", "iptables-legacy-save: can't initialize iptables table `filter': Table does not exist (do you need to insmod?)"
    with pytest.raises(IptablesError, match="the legacy backend of iptables cannot run on this kernel; try backend=nft"):
        Iptables(backend="legacy", find=finder(sbin.path), runner=runner).save()


def test_lock_timeout(sbin):
    install(sbin, "legacy")

    def runner(cmd, data=None):
        return 4, "", "Another app is currently holding the xtables lock. Stopped waiting after 3s.\n"
    with pytest.raises(IptablesError, match="could not get the xtables lock within 3 seconds"):
        Iptables(wait=3, find=finder(sbin.path), runner=runner).restore("*nat\nCOMMIT\n")


def test_other_restore_failures_are_reported_as_they_are(sbin):
    install(sbin, "nft")

    def runner(cmd, data=None):
        return 1, "", "iptables-nft-restore: line 2 failed: Bad rule (does a matching rule exist in that chain?)."
    with pytest.raises(IptablesError) as err:
        Iptables(find=finder(sbin.path), runner=runner).restore("*nat\nCOMMIT\n")
    assert str(err.value).startswith("iptables-nft-restore --noflush failed (exit 1): iptables-nft-restore: line 2 failed")
