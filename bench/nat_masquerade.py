# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark overlay.gre.nat_masquerade: 100 MASQUERADE rules, first run and unchanged re-run.

1. Through ansible-playbook (netns connection), against an ansible.builtin.iptables loop over the same 100 rules;
   goal: at least 30 times faster.
2. The module's own work (main() in a process already inside the namespace, imports done) against one
   iptables-restore --noflush of the same rules; goal: within 3 times.

Runs as root on the host, in namespaces it makes and removes. Usage: .venv/bin/python bench/nat_masquerade.py [--rules N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests"), os.path.join(ROOT, "lab")]

from support import lab  # noqa: E402  pylint: disable=wrong-import-position

lab.ensure_collection_path()

from ansible.module_utils.testing import patch_module_args  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.overlay.gre.plugins.module_utils import _iptables  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.overlay.gre.plugins.modules import nat_masquerade  # noqa: E402  pylint: disable=wrong-import-position

GOAL_ANSIBLE = 30.0
GOAL_RESTORE = 3.0


def sources(count):
    return ["10.%d.%d.0/24" % (100 + n // 256, n % 256) for n in range(count)]


@contextlib.contextmanager
def namespace(tag):
    name = lab.netns_add(lab.new_netns_name(tag))
    try:
        yield name
    finally:
        lab.netns_del(name)


def in_netns(netns, func):
    """Run FUNC() in a forked child that entered NETNS; return what it returns (JSON-able)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            lab._setns(netns)  # pylint: disable=protected-access
            os.write(write_fd, json.dumps(func()).encode())
        finally:
            os._exit(0)  # pylint: disable=protected-access
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as handle:
        data = handle.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def module_seconds(args):
    """Time main() whole (argument checks, engine, JSON result): the child is in the namespace, imports done."""
    def run():
        out = io.StringIO()
        with contextlib.redirect_stdout(out), patch_module_args(dict(args, _ansible_check_mode=False, _ansible_diff=False)):
            start = time.perf_counter()
            try:
                nat_masquerade.main()
            except SystemExit:
                pass
            elapsed = time.perf_counter() - start
        result = json.loads(out.getvalue())
        assert not result.get("failed"), result
        return {"seconds": elapsed, "changed": result["changed"]}
    return run


def engine_seconds(entries, backend):
    """Time the module's own work: one iptables-save, the comparison, the restore payload, one iptables-restore."""
    def run():
        start = time.perf_counter()
        iptables = _iptables.Iptables(backend=backend)
        changes = _iptables.plan(iptables.save(), nat_masquerade.chain_specs(entries, False))
        if changes.changed:
            iptables.restore(changes.restore_payload())
        return {"seconds": time.perf_counter() - start, "changed": changes.changed}
    return run


def restore_seconds(payload, backend):
    def run():
        start = time.perf_counter()
        subprocess.run(["iptables-%s-restore" % backend, "--noflush"], input=payload, text=True, check=True)
        return {"seconds": time.perf_counter() - start}
    return run


def own_work(count, backend, forward, repeat):
    args = {"rules": [{"source": src} for src in sources(count)], "out_interface": "eth1", "forward": forward, "backend": backend}
    params = dict(args, source=None, state="present", comment=nat_masquerade.JUMP_COMMENT, purge=False, wait=10)
    entries, _warnings = nat_masquerade.requested_entries(params)
    payload = _iptables.plan({}, nat_masquerade.chain_specs(entries, False)).restore_payload()
    samples = {"engine_first": [], "engine_rerun": [], "main_first": [], "main_rerun": [], "restore": []}
    for _round in range(repeat):
        with namespace("br") as netns:
            samples["restore"].append(in_netns(netns, restore_seconds(payload, backend))["seconds"])
        for kind, measure in (("engine", engine_seconds(entries, backend)), ("main", module_seconds(args))):
            with namespace("bo") as netns:
                for run in ("first", "rerun"):
                    result = in_netns(netns, measure)
                    assert result["changed"] is (run == "first"), (kind, run, result)
                    samples["%s_%s" % (kind, run)].append(result["seconds"])
    # the best of N: the machine is shared, and the least disturbed run is the closest to each side's own cost
    best = dict((key, min(values)) for key, values in samples.items())
    best["lines"] = payload.count("\n-A ") + payload.count("\n-I ")
    return best


def playbook_seconds(netns, tasks, workdir, name):
    inventory = os.path.join(workdir, "inventory.ini")
    with open(inventory, "w", encoding="utf-8") as handle:
        handle.write("bench ansible_connection=overlay.gre.netns ansible_host=%s\n" % netns)
    playbook = os.path.join(workdir, name + ".yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        json.dump([{"hosts": "bench", "gather_facts": False, "tasks": tasks}], handle)
    start = time.perf_counter()
    run = lab.run_playbook(playbook, inventory)
    elapsed = time.perf_counter() - start
    assert run.returncode == 0, run.output
    return elapsed, run


def through_ansible(count, workdir):
    ours_task = [{"name": "ours", "overlay.gre.nat_masquerade": {
        "out_interface": "eth1", "forward": False, "rules": [{"source": src} for src in sources(count)]}}]
    loop_task = [{"name": "builtin", "ansible.builtin.iptables": {
        "table": "nat", "chain": "POSTROUTING", "source": "{{ item }}", "out_interface": "eth1", "jump": "MASQUERADE",
        "comment": "bench builtin"}, "loop": sources(count)}]
    empty = [{"name": "nothing", "ansible.builtin.meta": "noop"}]
    times = {"startup": [], "ours_first": [], "ours_rerun": []}
    for _round in range(3):  # ours takes seconds, so the best of three; the builtin loop takes a minute a run
        with namespace("ba") as netns:
            times["startup"].append(playbook_seconds(netns, empty, workdir, "empty")[0])
            seconds, run = playbook_seconds(netns, ours_task, workdir, "ours")
            assert run.task("ours")["changed"] is True
            times["ours_first"].append(seconds)
            seconds, run = playbook_seconds(netns, ours_task, workdir, "ours")
            assert run.task("ours")["changed"] is False
            times["ours_rerun"].append(seconds)
            made = sum(1 for line in lab.sh(netns, "iptables-save -t nat").stdout.splitlines() if "-j MASQUERADE" in line)
            assert made == count, made
    times = dict((key, min(values)) for key, values in times.items())
    with namespace("bb") as netns:
        times["builtin_first"], _run = playbook_seconds(netns, loop_task, workdir, "builtin")
        times["builtin_rerun"], run = playbook_seconds(netns, loop_task, workdir, "builtin")
        made = sum(1 for line in lab.sh(netns, "iptables-save -t nat").stdout.splitlines() if "-j MASQUERADE" in line)
        assert made == count, made
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=15, help="runs of the own-work measurement (best of)")
    parser.add_argument("--skip-ansible", action="store_true", help="only measure the module's own work")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/nat_masquerade.py must run as root (it makes network namespaces)")
    ok = True
    version = subprocess.run(["iptables", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    system_backend = "nft" if "nf_tables" in version else "legacy"
    print("nat_masquerade bench: %d MASQUERADE rules, %s" % (opts.rules, version))

    if not opts.skip_ansible:
        with tempfile.TemporaryDirectory(prefix="bench-nat-") as workdir:
            times = through_ansible(opts.rules, workdir)
        print("\n1. ansible-playbook wall time, netns connection; ours best of 3 (ansible start-up alone: %.2f s)" % times["startup"])
        print("   %-34s %9s %9s" % ("", "first", "re-run"))
        print("   %-34s %8.2fs %8.2fs" % ("overlay.gre.nat_masquerade (1 task)", times["ours_first"], times["ours_rerun"]))
        print("   %-34s %8.2fs %8.2fs" % ("ansible.builtin.iptables loop", times["builtin_first"], times["builtin_rerun"]))
        for run in ("first", "rerun"):
            ratio = times["builtin_" + run] / times["ours_" + run]
            task_ratio = (times["builtin_" + run] - times["startup"]) / max(times["ours_" + run] - times["startup"], 1e-3)
            met = ratio >= GOAL_ANSIBLE
            ok = ok and met
            print("   %-6s ratio builtin/ours: %6.1fx (goal >= %.0fx: %s); tasks only, start-up subtracted: %.1fx"
                  % (run, ratio, GOAL_ANSIBLE, "met" if met else "NOT MET", task_ratio))

    print("\n2. the module's own work (one iptables-save, compare, one iptables-restore; in the namespace, imports done)\n"
          "   vs one iptables-restore --noflush of the same rules; best of %d. main() adds AnsibleModule's argument\n"
          "   checks and the JSON result, which every module pays." % opts.repeat)
    for backend in ("nft", "legacy"):
        for forward in (False, True):
            m = own_work(opts.rules, backend, forward, opts.repeat)
            ratio = m["engine_first"] / m["restore"]
            met = ratio <= GOAL_RESTORE
            if not forward:
                ok = ok and met
            print("   %-6s forward=%-5s %3d rules: iptables-restore %.4f s | own work first %.4f s, re-run %.4f s | "
                  "main() first %.4f s, re-run %.4f s | own work first/restore %.2fx%s"
                  % (backend, forward, m["lines"], m["restore"], m["engine_first"], m["engine_rerun"], m["main_first"],
                     m["main_rerun"], ratio, " (goal <= %.0fx: %s)" % (GOAL_RESTORE, "met" if met else "NOT MET") if not forward else ""))
    print("\n(system iptables backend: %s)" % system_backend)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
