# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The router's lock (_lock.py) and the service_files action's recheck under it, on files in a temporary folder.

tests/kernel/test_concurrent_runs.py runs two site.yml at once against the lab's routers.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess

import pytest

from ansible_collections.overlay.gre.plugins.module_utils import _lock
from ansible_collections.overlay.gre.plugins.module_utils import _service_files as sf


def _hold(path, ready, release):
    with _lock.held(5, "overlay.gre.test_holder", path=path):
        ready.set()
        release.wait(30)


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock file tmp_path/lock/netns-<this namespace>.lock until the test ends."""
    path = str(tmp_path / "lock" / os.path.basename(_lock.lock_path()))
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    process = multiprocessing.Process(target=_hold, args=(path, ready, release))
    process.start()
    assert ready.wait(30)
    yield path
    release.set()
    process.join()


def test_a_second_run_waits_then_fails_naming_the_holder(holder):
    with pytest.raises(_lock.LockTimeout) as caught:
        with _lock.held(0.3, "overlay.gre.gre_tunnel", path=holder):
            pytest.fail("took a lock that another process holds")
    assert "overlay.gre.test_holder pid" in str(caught.value) and "lock_timeout=0" in str(caught.value)
    assert "nothing was changed" in str(caught.value)


def test_a_holder_killed_with_sigkill_leaves_no_lock_behind(tmp_path):
    path = str(tmp_path / "lock" / "netns-1.lock")
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    process = multiprocessing.Process(target=_hold, args=(path, ready, release))
    process.start()
    assert ready.wait(30)
    process.kill()
    process.join()
    with _lock.held(1, "second", path=path):
        with open(path, encoding="utf-8") as handle:
            assert handle.read() == "second pid %d\n" % os.getpid()


def test_the_actions_shell_takes_the_same_lock_as_the_modules(tmp_path, holder):
    """service_files' write script waits for the lock a module holds, then refuses with exit 75 and says why."""
    entry = {"path": str(tmp_path / "f"), "content": "new\n", "mode": "0644"}
    files, units, prune = sf.validate({"files": [entry]})
    steps = sf.plan(files, units, prune, {"systemd": False, "files": [{"kind": "none"}], "units": []})
    script = sf.write_script(steps, lock_timeout=1).replace("/run/overlay-gre", os.path.dirname(holder))
    run = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    assert run.returncode == 75 and "held this router's lock for 1 s" in run.stderr
    assert "(overlay.gre.test_holder pid" in run.stderr  # who holds it
    assert not (tmp_path / "f").exists()


def test_the_actions_shell_says_it_holds_the_lock_and_a_negative_timeout_is_refused(tmp_path):
    entry = {"path": str(tmp_path / "f"), "content": "new\n", "mode": "0644"}
    files, units, prune = sf.validate({"files": [entry]})
    steps = sf.plan(files, units, prune, {"systemd": False, "files": [{"kind": "none"}], "units": []})
    script = sf.write_script(steps).replace("/run/overlay-gre", str(tmp_path / "lock"))
    subprocess.run(["sh", "-c", script + "cat \"$lock\" > %s\n" % (tmp_path / "holder")], check=True)
    assert (tmp_path / "holder").read_text(encoding="utf-8").startswith("overlay.gre.service_files pid ")
    with pytest.raises(sf.ServiceFilesError, match="lock_timeout: -5 is not a number of seconds"):
        sf.validate({"files": [entry], "lock_timeout": -5})


@pytest.mark.parametrize("meanwhile,code", [("other\n", 76), ("new\n", 0), (None, 0)], ids=["changed by another run", "already as wanted", "still as read"])
def test_the_write_rechecks_each_file_under_the_lock(tmp_path, meanwhile, code):
    """The read saw "old"; if another run changed the file before this one's write, nothing is written (exit 76),
    unless the other run wrote exactly what this one wants (routers of the lab share a filesystem)."""
    target = tmp_path / "f"
    target.write_text("old\n", encoding="utf-8")
    read = subprocess.run(["sh", "-c", sf.read_script([{"path": str(target)}], [])], capture_output=True, text=True, check=True).stdout
    files, units, prune = sf.validate({"files": [{"path": str(target), "content": "new\n", "mode": "0644"}]})
    steps = sf.plan(files, units, prune, sf.parse_read(read, files, units))
    if meanwhile is not None:
        target.write_text(meanwhile, encoding="utf-8")
    script = sf.write_script(steps).replace("/run/overlay-gre", str(tmp_path / "lock"))
    run = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    assert run.returncode == code, run.stderr
    assert target.read_text(encoding="utf-8") == ("other\n" if code else "new\n")
    if code:
        assert "changed since this run read it" in run.stderr


@pytest.mark.parametrize("data", [b"", b"a", b"new\n", bytes(range(256)) * 300])
def test_posix_cksum_is_what_the_cksum_tool_prints(data):
    printed = subprocess.run(["sh", "-c", "cksum | tr ' ' :"], input=data, capture_output=True, check=True).stdout.decode().strip()
    assert sf.posix_cksum(data) == printed


def test_a_program_started_under_the_lock_keeps_it_after_the_module_is_gone(tmp_path):
    """A module killed while its ip -batch or iptables-restore runs: that program (given held_fds()) still holds the
    lock, so the next run waits until it ends instead of reading a state in the middle of its change."""
    path = str(tmp_path / "lock" / "netns-1.lock")
    release = tmp_path / "release"
    with _lock.held(1, "module", path=path):
        program = subprocess.Popen(["sh", "-c", "while [ ! -e %s ]; do sleep 0.05; done" % release], pass_fds=_lock.held_fds())
    assert _lock.held_fds() == ()
    with pytest.raises(_lock.LockTimeout):
        with _lock.held(0.3, "next run", path=path):
            pytest.fail("took the lock while the program still holds it")
    release.touch()
    program.wait()
    with _lock.held(1, "next run", path=path):
        pass
