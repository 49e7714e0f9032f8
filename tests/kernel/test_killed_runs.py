# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each module killed with SIGKILL at random points of its work, 20 times: the next run converges to the state of a
clean run, and the run after it reports no change.

A run is started in a forked child (the module's main(), in the namespace, as run_module_direct does) and killed in
turn: after a random share of a clean run's duration, with its whole process group (its `ip -batch` or
`iptables-restore` dies too) or alone (its orphaned children finish first), so that the kills land before the read,
between the read and the apply, during a file's write, or after the apply; and, for the modules that apply through
`ip -batch` or `iptables-restore`, inside that program's input: a cut shim, which the module finds instead of the
program, passes a random share of the input's lines to the real one, then kills the module. Each test prints how
many kills left the state untouched, part-way and complete. The modules that need no GRE run on the host, gre_tunnel
in the lab (marked gre); service_files' write script (the action's shell) is killed the same way, in a temporary
folder.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from support import lab
from support.lab import ip_json, sh
from ansible_collections.overlay.gre.plugins.module_utils._gre_tunnel import stale_batches

KILLS = 20


CUT_SHIM = """#!%(python)s
# test shim for %(name)s: only the first share (OVERLAY_TEST_CUT) of its input's lines reach the real %(name)s (an
# `ip -batch FILE`'s file, or iptables-restore's stdin), then the module that started it is killed with SIGKILL, as
# if the machine stopped it part way through its apply
import os, signal, subprocess, sys
argv, share = sys.argv[1:], float(os.environ["OVERLAY_TEST_CUT"])
if "-batch" in argv:
    path = argv[argv.index("-batch") + 1]
    with open(path) as handle:
        lines = handle.readlines()
    with open(path + ".cut", "w") as handle:
        handle.writelines(lines[:int(share * len(lines))])
    argv[argv.index("-batch") + 1] = path + ".cut"
    subprocess.call(["%(real)s"] + argv)
    os.unlink(path + ".cut")
else:
    lines = sys.stdin.read().splitlines(True)
    subprocess.run(["%(real)s"] + argv, input="".join(lines[:int(share * len(lines))]), text=True, check=False)
os.kill(os.getppid(), signal.SIGKILL)
sys.exit(1)
"""


def cut_shims(folder, names):
    """A folder of cut shims for the programs NAMES (found by the module through get_bin_path: see start)."""
    folder.mkdir(exist_ok=True)
    for name in names:
        real = shutil.which(name, path=os.pathsep.join([os.environ["PATH"], "/usr/sbin", "/sbin"]))
        shim = folder / name
        shim.write_text(CUT_SHIM % {"python": sys.executable, "name": name, "real": real}, encoding="utf-8")
        shim.chmod(0o755)
    return str(folder)


def _use_shims(folder):
    """In the forked child: the module's get_bin_path answers with the shim where there is one."""
    from ansible.module_utils.basic import AnsibleModule
    original = AnsibleModule.get_bin_path

    def get_bin_path(self, arg, required=False, opt_dirs=None):
        shim = os.path.join(folder, arg)
        return shim if os.path.exists(shim) else original(self, arg, required=required, opt_dirs=opt_dirs)

    AnsibleModule.get_bin_path = get_bin_path


def start(netns, module, args, env=None):
    """Fork a child that enters NETNS, starts a process group of its own and runs MODULE's main() with ARGS."""
    lab.ensure_collection_path()
    full = dict(args, _ansible_check_mode=False, _ansible_diff=False)
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.setsid()
            os.environ.update(env or {})
            if "OVERLAY_TEST_SHIMS" in os.environ:
                _use_shims(os.environ["OVERLAY_TEST_SHIMS"])
            lab._setns(netns)  # pylint: disable=protected-access
            lab.call_module(module, full)
        finally:
            os._exit(0)  # pylint: disable=protected-access
    return pid


def wait_group(pgid):
    """Until no process of group PGID is left (orphaned ip or iptables-restore children finish their input)."""
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


def killed_run(netns, module, args, delay, whole_group, env=None):
    """Start MODULE, SIGKILL it after DELAY seconds (DELAY None: a cut shim named in ENV kills it during its apply).

    A module killed alone may leave its `ip -batch` or `iptables-restore` running: that program holds the router's
    lock (it inherits it), so the next run waits for it by itself. Only the next kill waits for the group to end."""
    pid = start(netns, module, args, env)
    if delay is not None:
        time.sleep(delay)
        try:
            if whole_group:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.waitpid(pid, 0)
    return pid


def clean_run(netns, module, args):
    started = time.monotonic()
    result = lab.run_module_direct(netns, module, args)
    assert not result.get("failed"), result
    return result, time.monotonic() - started


def exercise(netns, module, args, reset, snapshot, seed, shim=None, batches=False):
    """The 20 kills of MODULE; returns {outcome: count} with outcome untouched / part-way / complete.

    The kills take turns: after a random delay, the whole process group; after a random delay, the module alone;
    and, given SHIM (a folder of cut shims: the program the module applies with), inside that program's input.
    """
    reset()
    empty = snapshot()
    first, duration = clean_run(netns, module, args)
    assert first["changed"] is True
    reference = snapshot()
    assert reference != empty
    rng = random.Random(seed)
    outcomes = {"untouched": 0, "part-way": 0, "complete": 0}
    for number in range(KILLS):
        reset()
        assert snapshot() == empty
        if number:
            wait_group(previous)  # before the reset, so that no orphan of the last kill changes the state after it
        how = number % 3 if shim else number % 2
        if how == 2:
            env = {"OVERLAY_TEST_SHIMS": shim, "OVERLAY_TEST_CUT": str(rng.random())}
            previous = killed_run(netns, module, args, None, whole_group=True, env=env)
        else:
            previous = killed_run(netns, module, args, rng.uniform(0, duration * 1.1), whole_group=how == 0)
        left = snapshot()
        outcomes["untouched" if left == empty else "complete" if left == reference else "part-way"] += 1
        again, _duration = clean_run(netns, module, args)
        assert snapshot() == reference, "kill %d: the run after it did not converge to a clean run's state (%s)" % (number + 1, again)
        if batches:  # nor is the `ip -batch` file of a killed run left behind: the run after it removed it
            assert stale_batches(tempfile.gettempdir()) == [], "kill %d" % (number + 1)
        third, _duration = clean_run(netns, module, args)
        assert third["changed"] is False, "kill %d: the second run after it still changed something: %s" % (number + 1, third)
    print("%s: %d kills over a %.2f s run: %s" % (module, KILLS, duration, json.dumps(outcomes)))
    assert sum(outcomes.values()) == KILLS and outcomes["untouched"] + outcomes["part-way"] > 0, outcomes  # kills landed before the end
    return outcomes


# --- the modules that need no GRE ---------------------------------------------------------------------------------


def iptables_snapshot(netns, backend):
    out = sh(netns, "iptables-%s-save" % backend).stdout
    return sorted(line for line in out.splitlines() if line.startswith(("-A", ":OVERLAY", ":OGRE")))


def iptables_reset(netns, backend):
    ipt = "iptables-%s" % backend
    return lambda: sh(netns, " && ".join("%s -t %s -F && %s -t %s -X" % (ipt, t, ipt, t) for t in ("filter", "nat", "mangle")))


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_nat_masquerade_killed_at_random_points(netns, backend, tmp_path):
    sh(netns, "ip link add wan0 type veth peer name wan0p")
    rules = [{"source": "10.%d.0.0/16" % i, "out_interface": "wan0"} for i in range(1, 25)]
    exercise(netns, "nat_masquerade", {"rules": rules, "purge": True, "backend": backend},
             iptables_reset(netns, backend), lambda: iptables_snapshot(netns, backend), seed=1,
             shim=cut_shims(tmp_path / "shim", ["iptables-%s-restore" % backend]))


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_tunnel_firewall_killed_at_random_points(netns, backend, tmp_path):
    args = {"tunnel": "gre-router_b", "peer_underlay": "172.19.1.2", "backend": backend,
            "local_networks": ["10.10.%d.0/24" % i for i in range(1, 9)], "peer_networks": ["20.10.%d.0/24" % i for i in range(1, 9)]}
    exercise(netns, "tunnel_firewall", args, iptables_reset(netns, backend), lambda: iptables_snapshot(netns, backend), seed=2,
             shim=cut_shims(tmp_path / "shim", ["iptables-%s-restore" % backend]))


def test_ip_route_killed_at_random_points(netns, tmp_path):
    sh(netns, "ip link add eth0 type veth peer name peer0 && ip link set peer0 up && ip link set eth0 up && ip addr add 10.10.1.5/24 dev eth0")
    routes = [{"dest": "172.%d.%d.0/24" % (16 + i // 200, i % 200), "via": "10.10.1.%d" % (1 + i % 3), "table": 100 + i % 2}
              for i in range(60)]
    exercise(netns, "ip_route", {"routes": routes, "purge": True},
             lambda: sh(netns, "ip route flush table 100; ip route flush table 101; true"),
             lambda: sorted(json.dumps(r, sort_keys=True) for r in ip_json(netns, "route", "show", "table", "all", "proto", "71")), seed=3,
             shim=cut_shims(tmp_path / "shim", ["ip"]), batches=True)


def test_ip_forward_killed_at_random_points(netns, tmp_path):
    folder = tmp_path / "sysctl.d"
    folder.mkdir()
    (folder / "90-overlay-gre.conf").write_text("# the router's own line\nnet.core.somaxconn = 1024\n", encoding="utf-8")
    original = (folder / "90-overlay-gre.conf").read_text(encoding="utf-8")

    def reset():
        sh(netns, "sysctl -qw net.ipv4.ip_forward=0")
        for entry in folder.iterdir():
            entry.unlink()
        (folder / "90-overlay-gre.conf").write_text(original, encoding="utf-8")

    def snapshot():  # the live value, and every file of the folder (a stray temporary file shows here)
        return [sh(netns, "sysctl -n net.ipv4.ip_forward").stdout.strip(),
                sorted((entry.name, entry.read_text(encoding="utf-8")) for entry in folder.iterdir())]

    exercise(netns, "ip_forward", {"state": "enabled", "sysctl_file": str(folder / "90-overlay-gre.conf")}, reset, snapshot, seed=4)


# --- gre_tunnel, in the lab --------------------------------------------------------------------------------------


@pytest.mark.gre
def test_gre_tunnel_killed_at_random_points(netns, tmp_path):
    sh(netns, "ip link add up0 type dummy && ip link set up0 up && ip addr add 172.19.1.1/24 dev up0")
    tunnels = [{"name": "t%d" % i, "local": "172.19.1.1", "remote": "172.19.%d.2" % (10 + i), "key": i + 1,
                "addresses": ["192.168.%d.1/30" % i], "routes": ["20.%d.0.0/16" % i, "21.%d.0.0/16" % i]} for i in range(12)]

    def reset():
        sh(netns, "for l in $(ip -o link show type gre | cut -d: -f2 | cut -d@ -f1); do "
                  "case $l in gre0) ;; *) ip link del $l ;; esac; done")

    def snapshot():
        links = [{k: v for k, v in link.items() if k not in ("ifindex", "operstate")}
                 for link in ip_json(netns, "-d", "link", "show", "type", "gre") if link["ifname"] != "gre0"]
        addresses = [(a["ifname"], [x["local"] for x in a["addr_info"] if x.get("scope") != "link"]) for a in ip_json(netns, "addr")]
        routes = sorted(json.dumps(r, sort_keys=True) for r in ip_json(netns, "route"))
        return json.dumps([sorted(links, key=lambda x: x["ifname"]), sorted(addresses), routes])

    exercise(netns, "gre_tunnel", {"tunnels": tunnels, "purge": True}, reset, snapshot, seed=5, shim=cut_shims(tmp_path / "shim", ["ip"]),
             batches=True)


# --- service_files' write script (the action's shell), killed during its file writes --------------------------------


def test_service_files_write_script_killed_at_random_points(tmp_path):
    from ansible_collections.overlay.gre.plugins.module_utils import _service_files as sf
    folder = tmp_path / "etc"
    params = {"files": [{"path": str(folder / ("f%d.sh" % i)), "content": ("echo %d\n" % i) * 400, "mode": "0755"} for i in range(8)]}
    files, units, prune = sf.validate(params)

    def run_once(kill_after=None, whole_group=False):
        read = subprocess.run(["sh", "-c", sf.read_script(files, units)], capture_output=True, text=True, check=True).stdout
        steps = sf.plan(files, units, prune, sf.parse_read(read, files, units))
        script = sf.write_script(steps).replace("/run/overlay-gre", str(tmp_path / "lock"))
        proc = subprocess.Popen(["sh", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        if kill_after is None:
            assert proc.wait() == 0, proc.stderr.read()
        else:
            time.sleep(kill_after)
            (os.killpg if whole_group else os.kill)(proc.pid, signal.SIGKILL)
            proc.wait()
            wait_group(proc.pid)
        return sf.is_changed(steps)

    def snapshot():
        return sorted((p.name, p.read_text(encoding="utf-8"), oct(p.stat().st_mode)) for p in folder.iterdir()) if folder.exists() else []

    started = time.monotonic()
    assert run_once() is True
    duration = time.monotonic() - started
    reference = snapshot()
    rng = random.Random(6)
    outcomes = {"untouched": 0, "part-way": 0, "complete": 0}
    for number in range(KILLS):
        for entry in folder.iterdir():
            entry.unlink()
        run_once(kill_after=rng.uniform(0, duration), whole_group=number % 2 == 0)
        left = snapshot()
        outcomes["untouched" if not left else "complete" if left == reference else "part-way"] += 1
        run_once()
        assert snapshot() == reference, "kill %d: a temporary file or a partial file was left: %s" % (number + 1, [x[0] for x in snapshot()])
        assert run_once() is False
    print("service_files write script: %d kills over a %.2f s run: %s" % (KILLS, duration, json.dumps(outcomes)))
    assert outcomes["untouched"] + outcomes["part-way"] > 0, outcomes
