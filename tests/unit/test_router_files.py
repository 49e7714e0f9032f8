# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a GRE router keeps across reboots, as planned for overlay.gre.service_files (plugins/module_utils/_router_files.py):
boot data from the modules' results, keepalive senders, held pairs, absent, migration from boot scripts."""

from __future__ import annotations

import json

from ansible_collections.overlay.gre.plugins.module_utils import _router_files as rf

DATA = "/etc/overlay-gre/boot/tunnels.json"
PROGRAM = "/usr/local/sbin/overlay-gre-apply"
SENDER = "/usr/local/sbin/overlay-gre-keepalive"
SENDER_UNIT = "/etc/systemd/system/overlay-gre-keepalive@.service"


def pair(peer, keepalive=False):
    name = "gre-" + peer
    return {"peer": peer, "tunnel": {"name": name, "local": "172.19.0.1", "remote": "172.19.0.2", "key": None, "ttl": 64,
                                     "routes": ["10.2.0.0/24"]},
            "keepalive": {"period": 10, "retries": 3} if keepalive else None}


def link(name):
    return {"name": name, "create": ["link", "add", name, "type", "gre"], "lines": [["link", "set", name, "up"]]}


def chains(name):
    return [{"table": "filter", "chain": "OGRE-IN-" + name, "parent": "INPUT", "position": "first",
             "jump": ["-m", "comment", "--comment", "overlay.gre " + name, "-j", "OGRE-IN-" + name], "rules": [["-j", "ACCEPT"]]}]


DROP = {"table": "filter", "chain": "OGRE-GRE-DROP", "parent": "INPUT", "position": "last",
        "jump": ["-m", "comment", "--comment", "overlay.gre", "-j", "OGRE-GRE-DROP"], "rules": [["-p", "gre", "-j", "DROP"]]}


def setting(name):
    return {"path": "/proc/sys/net/ipv4/conf/%s/rp_filter" % name, "value": "2"}


def results(*names, ipsec=False):
    return {"tunnel": {"boot": [link(name) for name in names]},
            "firewall": {"boot": {"iptables": "iptables", "chains": [c for name in names for c in chains(name)] + [DROP],
                                  "settings": [setting(name) for name in names]}},
            "nat": {},
            "ipsec": {"results": [{"replay": ["x"]}]} if ipsec else {}}


def inputs(pairs, state="present", persist=True, sending=(), held=(), probe=None, res=None):
    return {"state": state, "persist": persist, "boot": "tunnels", "program": PROGRAM, "sender_program": SENDER,
            "sender_unit_file": SENDER_UNIT, "managed": "Ansible managed",
            "contents": {"program": "#!prog", "unit": "[Unit]\n", "guard_unit": "[Unit] guard\n",
                         "sender_program": "#!sender\n", "sender_unit": "[Unit] sender\n"},
            "pairs": pairs, "sending": list(sending), "held_tunnels": list(held), "probe": probe or {},
            "results": res if res is not None else results(*[p["tunnel"]["name"] for p in pairs])}


def files_by_path(plan):
    return dict((entry["path"], entry) for entry in plan["files"])


def units_by_name(plan):
    return dict((entry["name"], entry) for entry in plan["units"])


def data_of(plan):
    return json.loads(files_by_path(plan)[DATA]["content"])


def test_present_writes_the_boot_data_its_program_and_units_in_apply_order():
    pairs = [pair("site2"), pair("site3")]
    plan = rf.service_files(inputs(pairs))
    data = data_of(plan)
    assert [entry["name"] for entry in data["links"]] == ["gre-site2", "gre-site3"]
    assert [c["chain"] for c in data["chains"]] == ["OGRE-IN-gre-site2", "OGRE-IN-gre-site3", "OGRE-GRE-DROP"]
    assert data["format"] == 1 and data["iptables"] == "iptables" and data["ipsec"] is False
    assert data["_comment"].startswith("Ansible managed (overlay.gre.gre_router)")
    files = files_by_path(plan)
    assert files[PROGRAM] == {"path": PROGRAM, "content": "#!prog\n", "mode": "0755"}
    assert files[rf.UNIT]["content"] == "[Unit]\n" and files[rf.GUARD_UNIT]["content"] == "[Unit] guard\n"
    units = units_by_name(plan)
    assert units["overlay-gre@tunnels.service"] == {"name": "overlay-gre@tunnels.service", "enabled": True, "started": True,
                                                    "restart_on": []}
    assert units["overlay-gre-guard@tunnels.service"]["restart_on"] == [DATA, PROGRAM]
    # no sender: its unit file goes, the program stays while the role is on the router, /run/overlay-gre is pruned
    assert files[SENDER_UNIT] == {"path": SENDER_UNIT, "state": "absent"} and SENDER not in files
    assert plan["prune"] == ["/etc/overlay-gre/boot", "/etc/overlay-gre", "/run/overlay-gre"]
    assert plan["sending"] is False


def test_the_boot_data_is_stable_json():
    one = rf.service_files(inputs([pair("site2")]))
    two = rf.service_files(inputs([pair("site2")]))
    assert files_by_path(one)[DATA]["content"] == files_by_path(two)[DATA]["content"]
    assert files_by_path(one)[DATA]["content"].endswith("}\n")


def test_ipsec_is_on_in_the_boot_data_when_the_ipsec_tasks_replayed_something():
    assert data_of(rf.service_files(inputs([pair("site2")], res=results("gre-site2", ipsec=True))))["ipsec"] is True


def test_keepalive_senders_their_configuration_and_units():
    sending = pair("site2", keepalive=True)
    plan = rf.service_files(inputs([sending, pair("site3")], sending=[sending], probe={"keepalives": ["gre-site3"]}))
    files = files_by_path(plan)
    config = json.loads(files["/etc/overlay-gre/keepalive-gre-site2.json"]["content"])
    assert config["tunnel"] == "gre-site2" and config["period"] == 10 and config["retries"] == 3 and config["ttl"] == 64
    assert config["routes"] == ["10.2.0.0/24"] and config["state_file"] == "/run/overlay-gre/keepalive-gre-site2.json"
    units = units_by_name(plan)
    assert units["overlay-gre-keepalive@gre-site2.service"]["restart_on"] == [
        SENDER, "/etc/overlay-gre/keepalive-gre-site2.json", SENDER_UNIT]
    # site3's sender (keepalives turned off) stops, its files go
    stopped = {"name": "overlay-gre-keepalive@gre-site3.service", "enabled": False, "started": False}
    assert units["overlay-gre-keepalive@gre-site3.service"] == stopped
    assert files["/etc/overlay-gre/keepalive-gre-site3.json"]["state"] == "absent"
    assert files[SENDER]["content"] == "#!sender\n" and files[SENDER_UNIT]["content"] == "[Unit] sender\n"
    assert plan["prune"] == ["/etc/overlay-gre/boot", "/etc/overlay-gre"] and plan["sending"] is True


def test_absent_removes_everything_with_the_last_boot_data():
    pairs = [pair("site2", keepalive=True)]
    plan = rf.service_files(inputs(pairs, state="absent", res={}, probe={"scripts": [DATA], "keepalives": ["gre-site2"]}))
    files = files_by_path(plan)
    for path in (DATA, PROGRAM, rf.UNIT, rf.GUARD_UNIT, SENDER, SENDER_UNIT, "/etc/overlay-gre/keepalive-gre-site2.json"):
        assert files[path]["state"] == "absent", path
    units = units_by_name(plan)
    assert not units["overlay-gre@tunnels.service"]["enabled"] and not units["overlay-gre-guard@tunnels.service"]["started"]
    assert not units["overlay-gre-keepalive@gre-site2.service"]["enabled"]


def test_absent_keeps_the_program_and_unit_while_a_lan_host_boot_data_is_there():
    plan = rf.service_files(inputs([pair("site2")], state="absent", res={},
                                   probe={"scripts": [DATA, "/etc/overlay-gre/boot/lan-routes.json"]}))
    files = files_by_path(plan)
    assert files[DATA]["state"] == "absent"
    assert PROGRAM not in files and rf.UNIT not in files and rf.GUARD_UNIT not in files


def test_persist_off_removes_the_boot_data():
    plan = rf.service_files(inputs([pair("site2")], persist=False, probe={"scripts": [DATA]}))
    assert files_by_path(plan)[DATA] == {"path": DATA, "state": "absent"}
    assert not units_by_name(plan)["overlay-gre@tunnels.service"]["enabled"]


def test_boot_scripts_of_older_versions_go():
    probe = {"scripts": ["/etc/overlay-gre/tunnels.sh", "/etc/overlay-gre/gre-site2.sh", "/etc/overlay-gre/other.sh"],
             "tunnels": ["gre-site2"]}
    plan = rf.service_files(inputs([pair("site2")], probe=probe))
    files = files_by_path(plan)
    assert files["/etc/overlay-gre/tunnels.sh"]["state"] == "absent" and files["/etc/overlay-gre/gre-site2.sh"]["state"] == "absent"
    assert "/etc/overlay-gre/other.sh" not in files
    units = units_by_name(plan)
    assert units["overlay-gre@gre-site2.service"] == {"name": "overlay-gre@gre-site2.service", "enabled": False}
    assert "overlay-gre-guard@gre-site2.service" in units
    assert units["overlay-gre@tunnels.service"]["enabled"] is True  # the old tunnels.sh's own unit instance stays ours


def test_a_held_pair_keeps_its_boot_entries_as_the_last_run_wrote_them_and_the_others_are_updated():
    old = {"format": 1, "iptables": "iptables", "links": [link("gre-site2"), dict(link("gre-site3"), lines=[["old"]])],
           "chains": chains("gre-site2") + [dict(chains("gre-site3")[0], rules=[["old"]])] + [DROP],
           "settings": [setting("gre-site2"), dict(setting("gre-site3"), value="1")], "ipsec": False}
    pairs = [pair("site2"), pair("site3"), pair("site4")]
    # site3 is held: the modules ran for site2 and site4 only
    plan = rf.service_files(inputs(pairs, held=["gre-site3"], probe={"scripts": [DATA], "boot_data": {DATA: old}},
                                   res=results("gre-site2", "gre-site4")))
    data = data_of(plan)
    assert [entry["name"] for entry in data["links"]] == ["gre-site2", "gre-site4", "gre-site3"]
    assert data["links"][2]["lines"] == [["old"]]
    assert [c["chain"] for c in data["chains"]] == ["OGRE-IN-gre-site3", "OGRE-IN-gre-site2", "OGRE-IN-gre-site4", "OGRE-GRE-DROP"]
    assert data["chains"][0]["rules"] == [["old"]]
    assert dict((s["path"], s["value"]) for s in data["settings"]) == {
        "/proc/sys/net/ipv4/conf/gre-site3/rp_filter": "1", "/proc/sys/net/ipv4/conf/gre-site2/rp_filter": "2",
        "/proc/sys/net/ipv4/conf/gre-site4/rp_filter": "2"}


def test_a_held_pair_never_built_has_nothing_to_keep():
    plan = rf.service_files(inputs([pair("site2"), pair("site3")], held=["gre-site3"], res=results("gre-site2")))
    assert [entry["name"] for entry in data_of(plan)["links"]] == ["gre-site2"]


def test_a_held_pair_keeps_its_ipsec_at_boot():
    old = {"links": [link("gre-site3")], "ipsec": True}
    probe = {"scripts": [DATA], "boot_data": {DATA: old}, "ipsec": ["gre-site3"]}
    plan = rf.service_files(inputs([pair("site2"), pair("site3")], held=["gre-site3"], probe=probe, res=results("gre-site2")))
    assert data_of(plan)["ipsec"] is True


def test_a_held_pair_keeps_its_keepalive_sender_untouched():
    site2 = pair("site2", keepalive=True)
    probe = {"scripts": [DATA], "boot_data": {DATA: {}}, "keepalives": ["gre-site2", "gre-site3"]}
    plan = rf.service_files(inputs([site2, pair("site3", keepalive=True)], sending=[site2], held=["gre-site3"], probe=probe,
                                   res=results("gre-site2")))
    files = files_by_path(plan)
    units = units_by_name(plan)
    assert "overlay-gre-keepalive@gre-site3.service" not in units
    assert not [path for path in files if "gre-site3" in path]
    # the only sender is the held pair's: its program, unit file and state folder stay
    only_held = rf.service_files(inputs([site2, pair("site3", keepalive=True)], held=["gre-site3"], probe=probe,
                                        res=results("gre-site2")))
    files = files_by_path(only_held)
    assert SENDER_UNIT not in files and SENDER not in files
    assert "/run/overlay-gre" not in only_held["prune"]
    assert "overlay-gre-keepalive@gre-site2.service" in units_by_name(only_held)  # site2's, no longer sending, stops


def test_held_pairs_behind_a_boot_script_of_an_older_version_leave_it_all_as_it_is():
    probe = {"scripts": ["/etc/overlay-gre/tunnels.sh"], "tunnels": ["gre-site2", "gre-site3"]}
    plan = rf.service_files(inputs([pair("site2"), pair("site3")], held=["gre-site3"], probe=probe, res=results("gre-site2")))
    assert plan == {"files": [], "units": [], "prune": [], "sending": False}


def test_senders_to_stop():
    assert rf.senders_to_stop(["gre-a", "gre-b", "gre-c"], ["gre-a"], ["gre-c"]) == ["gre-b"]
    stop = rf.sender_stop(["gre-b"])
    assert stop == {"units": [{"name": "overlay-gre-keepalive@gre-b.service", "enabled": False, "started": False}],
                    "files": [{"path": "/etc/overlay-gre/keepalive-gre-b.json", "state": "absent"}]}
