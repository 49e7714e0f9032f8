# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay.gre.service_files (an action: shell on the target, no Python) through Ansible on a namespace host."""

from __future__ import annotations

import json
import os
import stat

from support.lab import run_module, run_playbook


def files_arg(tmp_path, script="#!/bin/sh\necho one\n"):
    return {"files": [{"path": str(tmp_path / "etc" / "ogre" / "t.sh"), "content": script, "mode": "0755"},
                      {"path": str(tmp_path / "etc" / "t.conf"), "content": "key = 1\n"}],
            "prune": [str(tmp_path / "etc" / "ogre")]}


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_then_changes_nothing_then_only_what_differs(netns, tmp_path):
    script, conf = tmp_path / "etc" / "ogre" / "t.sh", tmp_path / "etc" / "t.conf"
    checked = run_module(netns, "overlay.gre.service_files", files_arg(tmp_path), check=True, diff=True)
    assert checked["changed"] is True and not script.exists() and not (tmp_path / "etc").exists()
    assert [d["after"] for d in checked["diff"]] == ["#!/bin/sh\necho one\n", "key = 1\n"]
    first = run_module(netns, "overlay.gre.service_files", files_arg(tmp_path))
    assert first["changed"] is True
    assert first["files"] == {str(script): "written", str(conf): "written"}
    assert script.read_text() == "#!/bin/sh\necho one\n" and mode(script) == 0o755
    assert conf.read_text() == "key = 1\n" and mode(conf) == 0o644
    assert first["systemd"] is False  # the host's namespaces run no systemd of their own: units are left alone
    again = run_module(netns, "overlay.gre.service_files", files_arg(tmp_path))
    assert again["changed"] is False and again["files"] == {}
    # content and mode changed behind Ansible's back: each is put back, and the diff shows before and after
    conf.write_text("key = 2\n")
    os.chmod(script, 0o700)
    mended = run_module(netns, "overlay.gre.service_files", files_arg(tmp_path), diff=True)
    assert mended["files"] == {str(script): "mode changed", str(conf): "written"}
    assert {(d["before"], d["after"]) for d in mended["diff"]} == {("mode 0700\n", "mode 0755\n"), ("key = 2\n", "key = 1\n")}
    assert conf.read_text() == "key = 1\n" and mode(script) == 0o755


def test_absent_removes_and_prunes_the_emptied_folder(netns, tmp_path):
    run_module(netns, "overlay.gre.service_files", files_arg(tmp_path))
    gone = files_arg(tmp_path)
    for entry in gone["files"]:
        entry["state"] = "absent"
    checked = run_module(netns, "overlay.gre.service_files", gone, check=True)
    assert checked["changed"] is True and (tmp_path / "etc" / "ogre" / "t.sh").exists()
    removed = run_module(netns, "overlay.gre.service_files", gone)
    assert removed["changed"] is True and removed["done"][-1] == "prune: %s" % (tmp_path / "etc" / "ogre")
    assert not (tmp_path / "etc" / "ogre").exists() and not (tmp_path / "etc" / "t.conf").exists()
    assert run_module(netns, "overlay.gre.service_files", gone)["changed"] is False


def test_bad_input_is_refused_before_anything_is_written(netns, tmp_path):
    args = files_arg(tmp_path)
    args["files"].append({"path": "relative/x.conf", "content": "x\n"})
    refused = run_module(netns, "overlay.gre.service_files", args)
    assert refused["failed"] is True and refused["msg"].startswith("files[2].path: 'relative/x.conf' is not an absolute"), refused["msg"]
    args = files_arg(tmp_path)
    args["files"][0]["mode"] = "rwx"
    refused = run_module(netns, "overlay.gre.service_files", args)
    assert refused["msg"] == "files[0].mode: 'rwx' is not an octal file mode such as '0644'"
    args = files_arg(tmp_path)
    args["units"] = [{"name": "not a unit", "enabled": True}]
    refused = run_module(netns, "overlay.gre.service_files", args)
    assert refused["msg"].startswith("units[0].name: 'not a unit' is not a systemd unit name")
    assert not (tmp_path / "etc").exists()
    # a folder where a file should be is not replaced
    (tmp_path / "etc" / "t.conf").mkdir(parents=True)
    refused = run_module(netns, "overlay.gre.service_files", files_arg(tmp_path))
    assert refused["failed"] is True and "is there but is not a regular file" in refused["msg"]
    assert not (tmp_path / "etc" / "ogre").exists()


def test_a_file_larger_than_a_command_line_is_written_and_read_back(netns, tmp_path):
    """Linux refuses one argument over 128 KiB (E2BIG): the contents travel on the connection's stdin, so a large
    hub's boot data of several hundred kilobytes is written, and compared on the next run, like a small file."""
    big = tmp_path / "etc" / "big.sh"
    content = "".join("# line %06d of a boot script larger than one command line may be\n" % n for n in range(6000))
    assert len(content) > 3 * 128 * 1024
    playbook = tmp_path / "big.yml"
    playbook.write_text(json.dumps([{
        "hosts": "all", "gather_facts": False, "vars": {"ansible_connection": "overlay.gre.netns"},
        "tasks": [{"name": "write", "overlay.gre.service_files": {"files": [{"path": str(big), "content": content}]}},
                  {"name": "again", "overlay.gre.service_files": {"files": [{"path": str(big), "content": content}]}}],
    }]), encoding="utf-8")
    run = run_playbook(str(playbook), "%s," % netns)
    assert run.returncode == 0, run.output[-3000:]
    assert [r["result"].get("changed") for r in run.results] == [True, False], run.output[-3000:]
    assert big.read_text() == content
