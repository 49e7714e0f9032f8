# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's promise, checked from the host: nothing the guest writes reaches the host but the results folder.

Boots the lab's own User-Mode Linux kernel (lab/run --uml) with a job that creates, appends to, truncates, renames
and deletes host files and folders, then checks on the host that every one of them is as it was, and that what the
job wrote into the results folder arrived.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from support.lab import ROOT

LAB_RUN = os.path.join(ROOT, "lab", "run")


@pytest.fixture
def host_files(tmp_path):
    """Files and a folder on the host, outside the results folder, with known content."""
    victims = tmp_path / "host"
    victims.mkdir()
    (victims / "keep.txt").write_text("host\n", encoding="utf-8")
    (victims / "truncate.txt").write_text("host\n", encoding="utf-8")
    (victims / "rename.txt").write_text("host\n", encoding="utf-8")
    (victims / "folder").mkdir()
    (victims / "folder" / "inside.txt").write_text("host\n", encoding="utf-8")
    return victims


def snapshot(folder):
    return {str(path.relative_to(folder)): (path.read_text(encoding="utf-8") if path.is_file() else "<dir>")
            for path in sorted(folder.rglob("*"))}


def test_guest_writes_reach_only_the_results_folder(tmp_path, host_files):
    if os.geteuid() != 0:
        pytest.fail("lab/run needs root", pytrace=False)
    before = snapshot(host_files)
    mode = os.stat(host_files / "keep.txt").st_mode & 0o777
    results = tmp_path / "results"
    in_checkout = os.path.join(ROOT, "tests", "output", "lab-isolation-probe-%d" % os.getpid())
    job = """
        set -x
        h=%(host)s
        echo guest > "$h/new.txt"
        echo guest >> "$h/keep.txt"
        : > "$h/truncate.txt"
        mv "$h/rename.txt" "$h/renamed.txt"
        rm -rf "$h/folder"
        mkdir "$h/made-by-guest"
        echo guest > %(in_checkout)s
        chmod 000 "$h/keep.txt"
        cat "$h/new.txt" > %(results)s/from-guest.txt
        grep ' / overlay ' /proc/mounts > %(results)s/root-mount.txt
    """ % {"host": host_files, "in_checkout": in_checkout, "results": results}
    try:
        proc = subprocess.run([LAB_RUN, "--uml", "--results", str(results), "--", "sh", "-e", "-c", job],
                              capture_output=True, text=True, check=False, cwd=ROOT)
        leaked = os.path.exists(in_checkout)
    finally:
        if os.path.exists(in_checkout):
            os.unlink(in_checkout)
    assert proc.returncode == 0, "the guest's job failed: %s%s" % (proc.stdout, proc.stderr)
    # the guest saw its own writes, on an overlay root ...
    assert (results / "from-guest.txt").read_text(encoding="utf-8") == "guest\n"
    assert (results / "root-mount.txt").read_text(encoding="utf-8").startswith("overlay / overlay ")
    # ... and the host saw none of them
    assert snapshot(host_files) == before
    assert os.stat(host_files / "keep.txt").st_mode & 0o777 == mode
    assert not leaked
