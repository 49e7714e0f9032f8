# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decisions of overlay.gre.service_files where systemd runs (the lab has none): units, reloads, order."""

from __future__ import annotations

import base64
import subprocess

from ansible_collections.overlay.gre.plugins.module_utils import _service_files as sf

UNIT_FILE = {"path": "/etc/systemd/system/x@.service", "content": "[Service]\n", "mode": "0644"}
SCRIPT = {"path": "/etc/x/a.sh", "content": "echo a\n", "mode": "0755"}


def live_of(files, systemd=True, units=(), contents=None):
    contents = contents or {}
    out = ["systemd %s" % ("yes" if systemd else "no")]
    for index, entry in enumerate(files):
        if entry["path"] in contents:
            out += ["file %d %s" % (index, entry["mode"][1:]), base64.b64encode(contents[entry["path"]]).decode(), "end"]
        else:
            out.append("none %d" % index)
    for index, (enabled, active) in enumerate(units):
        out.append("unit %d %s|%s" % (index, enabled, active))
    return "\n".join(out) + "\n"


def decide(params, read_text):
    files, units, prune = sf.validate(params)
    return sf.plan(files, units, prune, sf.parse_read(read_text, files, units))


def test_a_new_unit_file_reloads_systemd_then_enables_and_starts():
    params = {"files": [UNIT_FILE, SCRIPT], "units": [{"name": "x@a.service", "enabled": True, "started": True}]}
    steps = decide(params, live_of([UNIT_FILE, SCRIPT], units=[("disabled", "inactive")]))
    assert steps["reload"] is True
    assert steps["units"] == [("enable", "x@a.service"), ("start", "x@a.service")]
    script = sf.write_script(steps)
    assert script.index("systemctl daemon-reload") < script.index("systemctl enable x@a.service")


def test_a_running_unit_restarts_when_a_file_changed_and_not_otherwise():
    params = {"files": [SCRIPT], "units": [{"name": "x@a.service", "enabled": True, "started": True}]}
    changed = decide(params, live_of([SCRIPT], units=[("enabled", "active")], contents={"/etc/x/a.sh": b"echo old\n"}))
    assert changed["units"] == [("restart", "x@a.service")] and changed["reload"] is False
    same = decide(params, live_of([SCRIPT], units=[("enabled", "active")], contents={"/etc/x/a.sh": b"echo a\n"}))
    assert not sf.is_changed(same)


def test_stop_and_disable_come_before_the_files_go():
    params = {"files": [dict(UNIT_FILE, state="absent")], "units": [{"name": "x@a.service", "enabled": False, "started": False}]}
    steps = decide(params, live_of([UNIT_FILE], units=[("enabled", "active")], contents={UNIT_FILE["path"]: b"[Service]\n"}))
    script = sf.write_script(steps)
    assert script.index("systemctl stop") < script.index("rm -f /etc/systemd/system/x@.service") < script.index("daemon-reload")


def test_without_systemd_units_are_left_alone():
    params = {"files": [SCRIPT], "units": [{"name": "x@a.service", "enabled": True, "started": True}]}
    steps = decide(params, live_of([SCRIPT], systemd=False))
    assert steps["units"] == [] and steps["files"][0][0] == "write"


def test_the_write_script_writes_exact_bytes(tmp_path):
    content = "line 'quoted' $HOME `x`\n\u00e9\n"
    entry = {"path": str(tmp_path / "d" / "f.txt"), "content": content, "mode": "0600"}
    steps = decide({"files": [entry]}, live_of([entry], systemd=False))
    subprocess.run(["sh", "-c", sf.write_script(steps)], check=True, capture_output=True)
    assert (tmp_path / "d" / "f.txt").read_text(encoding="utf-8") == content
    read = subprocess.run(["sh", "-c", sf.read_script(*sf.validate({"files": [entry]})[:2])], check=True, capture_output=True, text=True)
    files, units, prune = sf.validate({"files": [entry]})
    assert not sf.is_changed(sf.plan(files, units, prune, sf.parse_read(read.stdout, files, units)))


def test_restart_on_limits_what_restarts_a_unit():
    conf = {"path": "/etc/x/a.json", "content": "{}\n", "mode": "0644"}
    params = {"files": [SCRIPT, conf], "units": [{"name": "x@a.service", "started": True, "restart_on": ["/etc/x/a.json"]}]}
    other_changed = decide(params, live_of([SCRIPT, conf], units=[("enabled", "active")], contents={"/etc/x/a.json": b"{}\n"}))
    assert other_changed["files"][0][0] == "write" and other_changed["units"] == []
    own_changed = decide(params, live_of([SCRIPT, conf], units=[("enabled", "active")], contents={"/etc/x/a.sh": b"echo a\n"}))
    assert own_changed["units"] == [("restart", "x@a.service")]


def test_two_runs_writing_the_same_file_at_once_both_succeed(tmp_path):
    """Hosts that share a filesystem (the lab's routers share /usr/local/sbin) may write one file at the same moment."""
    entry = {"path": str(tmp_path / "sbin" / "tool"), "content": "x" * 20000 + "\n", "mode": "0755"}
    script = sf.write_script(decide({"files": [entry]}, live_of([entry], systemd=False))).replace("/run/overlay-gre", str(tmp_path / "lock"))
    for _round in range(10):
        runs = [subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _run in range(4)]
        assert [run.wait() for run in runs] == [0, 0, 0, 0], [run.stderr.read() for run in runs]
    assert (tmp_path / "sbin" / "tool").read_text() == entry["content"]
    assert sorted(p.name for p in (tmp_path / "sbin").iterdir()) == ["tool"]


def test_a_unit_with_an_empty_state_field_is_read_right():
    """is-enabled prints nothing for a unit whose file is gone; is-active still says it runs: it must be stopped."""
    params = {"units": [{"name": "x@a.service", "enabled": False, "started": False}]}
    files, units, prune = sf.validate(params)
    live = sf.parse_read("systemd yes\nunit 0 |active\n", files, units)
    assert live["units"] == [{"enabled": "", "active": "active"}]
    assert sf.plan(files, units, prune, live)["units"] == [("stop", "x@a.service")]


def test_an_unquoted_yaml_mode_is_the_number_yaml_read():
    files = sf.validate({"files": [{"path": "/etc/x", "content": "x", "mode": 0o644}, {"path": "/etc/y", "content": "y", "mode": "0755"}]})[0]
    assert [entry["mode"] for entry in files] == [0o644, 0o755]


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "d" / "f"
    entry = {"path": str(target), "content": "new\n", "mode": "0644"}
    steps = decide({"files": [entry]}, live_of([entry], systemd=False))
    (tmp_path / "d").mkdir()
    target.mkdir()  # a folder where the file goes: mv puts the temporary file inside it
    (target / "blocker").mkdir()
    steps["expect"] = []  # the folder came after the read; without this, the recheck refuses before the write (exit 76)
    script = sf.write_script(steps).replace("mv -f", "mv -T -f").replace("/run/overlay-gre", str(tmp_path / "lock"))  # GNU mv -T refuses
    run = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    assert run.returncode == 1
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["f"]


def test_a_file_a_running_program_rewrites_is_removed_whatever_it_holds_by_then(tmp_path):
    """check: false (a sender's state under /run, rewritten every second): no recheck, so no refusal (exit 76)."""
    state = tmp_path / "state.json"
    state.write_text('{"sent": 1}\n')
    checked = {"path": str(state), "state": "absent"}
    unchecked = dict(checked, check=False)
    for entry, expected in ((checked, 76), (unchecked, 0)):
        steps = decide({"files": [entry]}, live_of([dict(entry, mode="0644")], systemd=False,
                                                   contents={str(state): b'{"sent": 1}\n'}))
        state.write_text('{"sent": 2}\n')  # the program wrote again between the read and the change
        script = sf.write_script(steps).replace("/run/overlay-gre", str(tmp_path / "lock"))
        run = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
        assert run.returncode == expected, run.stderr
    assert not state.exists()


def test_a_unit_that_does_not_start_fails_the_script_with_its_log():
    params = {"units": [{"name": "x@a.service", "started": True}]}
    script = sf.write_script(decide(params, live_of([], units=[("enabled", "inactive")])))
    assert "systemctl reset-failed x@a.service" in script
    # journald has written what the program sent before its log is read
    assert "systemctl start x@a.service || { journalctl --sync 2>/dev/null || true; journalctl -u x@a.service -n 20" in script


def test_the_routers_lock_is_released_after_the_files_and_before_any_unit_starts():
    """A unit's program may take the router's lock itself (overlay-gre-apply does): were the run still holding it, the
    unit's start would wait for the run, and the run for the start."""
    params = {"files": [UNIT_FILE, SCRIPT], "units": [{"name": "x@a.service", "enabled": True, "started": True}]}
    script = sf.write_script(decide(params, live_of([UNIT_FILE, SCRIPT], units=[("disabled", "inactive")])))
    assert script.index("exec 9>>") < script.index("base64 -d > ") < script.index("exec 9>&-") < script.index("systemctl enable x@a.service")
    assert script.count("exec 9>&-") == 1
