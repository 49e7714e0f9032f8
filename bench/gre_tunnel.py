#!/usr/bin/env python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench of overlay.gre.gre_tunnel against its peers, all in one run, in a kernel that can make GRE links.

    lab/run --results bench/output/gre -- .venv/bin/python bench/gre_tunnel.py [--tunnels 1000] [--loop 100]

1. 1,000 tunnels (each with a peer address and a route) in one task, against one `ip -batch` creating the same.
   Goal: the module's work within 3x.
2. The unchanged re-run of that task, against `ip -d -j link show` of the same namespace. Goal: within 3x.
3. The cost per tunnel of an Ansible task loop of `ansible.builtin.command: ip tunnel add` over 100 tunnels,
   against one overlay.gre.gre_tunnel task creating the same 100, both through ansible-playbook.

"The module's work" is what the module itself does in the namespace: read the kernel, compare, plan, apply, re-read
and build the result (GreTunnelManager.run). Each ratio is also shown for the whole main(), which adds what every
Ansible module pays for its input and output: AnsibleModule's argument validation of the 1,000 entries, and
exit_json's scrubbing and JSON encoding of the 1,000 returned tunnels plus the echoed arguments. Both are timed in a
forked child that entered the namespace with Python and Ansible already imported, so that neither side pays an
interpreter start; section 3 shows what a whole Ansible task costs on top.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from support import lab  # noqa: E402  pylint: disable=wrong-import-position


def spoke(i):
    """The i-th spoke: distinct remote and key, a /32 peer address pair and one route."""
    return {
        "name": "b%d" % i,
        "local": "172.19.1.1",
        "remote": "172.20.%d.%d" % (i // 250, i % 250 + 1),
        "key": i + 1,
        "ttl": 64,
        "addresses": [{"address": "10.200.%d.%d" % (i // 128, (i % 128) * 2), "peer": "10.200.%d.%d" % (i // 128, (i % 128) * 2 + 1)}],
        "routes": ["10.%d.%d.0/24" % (i // 250 + 1, i % 250)],
    }


def peer_batch_lines(spokes):
    lines = []
    for s in spokes:
        a = s["addresses"][0]
        lines.append("link add %s type gre local %s remote %s key %d ttl %d" % (s["name"], s["local"], s["remote"], s["key"], s["ttl"]))
        lines.append("link set %s up" % s["name"])
        lines.append("addr add %s peer %s dev %s" % (a["address"], a["peer"], s["name"]))
        lines.append("route add %s dev %s" % (s["routes"][0], s["name"]))
    return lines


def timed(func, *args, **kwargs):
    start = time.perf_counter()
    value = func(*args, **kwargs)
    return time.perf_counter() - start, value


def ip_batch(netns, lines):
    proc = subprocess.run(["ip", "-n", netns, "-batch", "-"], input="\n".join(lines) + "\n", capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("peer ip -batch failed: %s" % proc.stderr)


def ip_show(netns):
    subprocess.run(["ip", "-n", netns, "-d", "-j", "link", "show"], capture_output=True, check=True)


def module(netns, args):
    """Run the module's main() in a forked child inside NETNS; return (seconds of main(), seconds of run(), result)."""
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.overlay.gre.plugins.module_utils import _gre_tunnel
    from ansible_collections.overlay.gre.plugins.modules import gre_tunnel

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_fd)
            lab._setns(netns)  # pylint: disable=protected-access
            timings = {}
            real_run = _gre_tunnel.GreTunnelManager.run

            def timed_run(self):
                start = time.perf_counter()
                try:
                    return real_run(self)
                finally:
                    timings["run"] = time.perf_counter() - start

            _gre_tunnel.GreTunnelManager.run = timed_run
            buf = io.StringIO()
            start = time.perf_counter()
            with contextlib.redirect_stdout(buf), patch_module_args(dict(args, _ansible_check_mode=False, _ansible_diff=False)):
                try:
                    gre_tunnel.main()
                except SystemExit:
                    pass
            timings["main"] = time.perf_counter() - start
            os.write(write_fd, (json.dumps(timings) + "\n" + buf.getvalue()).encode())
        finally:
            os.close(write_fd)
            os._exit(0)  # pylint: disable=protected-access
    os.close(write_fd)
    chunks = []
    while True:
        chunk = os.read(read_fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    timings_line, _sep, output = b"".join(chunks).decode().partition("\n")
    timings = json.loads(timings_line)
    result = json.loads(output)
    if result.get("failed"):
        raise SystemExit("module failed: %s" % result.get("msg"))
    return timings["main"], timings["run"], result


def tunnel_count(netns):
    out = subprocess.run(["ip", "-n", netns, "-j", "-d", "link", "show", "type", "gre"], capture_output=True, text=True, check=True).stdout
    return len([entry for entry in json.loads(out) if entry["ifname"] != "gre0"])


def playbook(netns, tasks, workdir):
    path = os.path.join(workdir, "play-%d.yml" % time.monotonic_ns())
    with open(path, "w", encoding="utf-8") as handle:
        json.dump([{"hosts": "all", "gather_facts": False, "connection": "overlay.gre.netns", "tasks": tasks}], handle)
    seconds, run = timed(lab.run_playbook, path, "%s," % netns)
    if run.returncode != 0:
        raise SystemExit("playbook failed:\n%s" % run.output[-3000:])
    return seconds


def write_report(report):
    out_dir = os.environ.get("LAB_RESULTS") or os.path.join(ROOT, "bench", "output", "gre")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "gre_tunnel.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tunnels", type=int, default=1000)
    parser.add_argument("--loop", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="runs of sections 1 and 2; the median counts")
    args = parser.parse_args(argv)
    if not lab.kernel_can_gre():
        raise SystemExit("this kernel cannot make GRE links: run me with lab/run")
    lab.ensure_collection_path()
    importlib.import_module("ansible_collections.overlay.gre.plugins.modules.gre_tunnel")
    spokes = [spoke(i) for i in range(args.tunnels)]
    lines = peer_batch_lines(spokes)
    report = {"tunnels": args.tunnels, "loop": args.loop, "runs": []}

    for _round in range(args.repeat):
        peer_ns = lab.netns_add(lab.new_netns_name("bp"))
        ours_ns = lab.netns_add(lab.new_netns_name("bo"))
        try:
            peer_create = timed(ip_batch, peer_ns, lines)[0]
            main_create, ours_create, result = module(ours_ns, {"tunnels": spokes})
            assert result["changed"] and tunnel_count(ours_ns) == args.tunnels == tunnel_count(peer_ns)
            peer_show = timed(ip_show, ours_ns)[0]
            main_rerun, ours_rerun, result = module(ours_ns, {"tunnels": spokes})
            assert not result["changed"], result["commands"][:5]
            report["runs"].append({"peer_create": peer_create, "ours_create": ours_create, "main_create": main_create,
                                   "peer_show": peer_show, "ours_rerun": ours_rerun, "main_rerun": main_rerun})
            print("   run: ip -batch %.2f s, module %.2f s (main %.2f s); ip -d -j link show %.2f s, re-run %.2f s (main %.2f s)"
                  % (peer_create, ours_create, main_create, peer_show, ours_rerun, main_rerun), flush=True)
        finally:
            lab.netns_del(peer_ns)
            lab.netns_del(ours_ns)

    def median(key):
        values = sorted(run[key] for run in report["runs"])
        return values[len(values) // 2]

    create_ratio = median("ours_create") / median("peer_create")
    rerun_ratio = median("ours_rerun") / median("peer_show")
    print("1. %d tunnels in one task: module's work %.2f s, ip -batch %.2f s: ratio %.2fx (goal <= 3x) %s; whole main() %.2f s: %.2fx"
          % (args.tunnels, median("ours_create"), median("peer_create"), create_ratio, "OK" if create_ratio <= 3 else "MISSED",
             median("main_create"), median("main_create") / median("peer_create")))
    print("2. unchanged re-run: module's work %.2f s, ip -d -j link show %.2f s: ratio %.2fx (goal <= 3x) %s; whole main() %.2f s: %.2fx"
          % (median("ours_rerun"), median("peer_show"), rerun_ratio, "OK" if rerun_ratio <= 3 else "MISSED",
             median("main_rerun"), median("main_rerun") / median("peer_show")))
    sys.stdout.flush()
    goals_met = create_ratio <= 3 and rerun_ratio <= 3
    report.update(create_ratio=create_ratio, rerun_ratio=rerun_ratio)
    if args.loop <= 0:
        write_report(report)
        return 0 if goals_met else 1

    loop_spokes = spokes[:args.loop]
    with tempfile.TemporaryDirectory(prefix="bench-gre-") as workdir:
        loop_ns = lab.netns_add(lab.new_netns_name("bl"))
        ours_ns = lab.netns_add(lab.new_netns_name("bt"))
        try:
            loop_task = {
                "name": "ip tunnel add, one item at a time",
                "ansible.builtin.command": ("ip tunnel add {{ item.name }} mode gre local {{ item.local }} remote {{ item.remote }}"
                                            " key {{ item.key }} ttl {{ item.ttl }}"),
                "loop": [{k: s[k] for k in ("name", "local", "remote", "key", "ttl")} for s in loop_spokes],
            }
            loop_seconds = playbook(loop_ns, [loop_task], workdir)
            ours_task = {"name": "one gre_tunnel task", "overlay.gre.gre_tunnel": {
                "tunnels": [{k: s[k] for k in ("name", "local", "remote", "key", "ttl")} for s in loop_spokes]}}
            ours_seconds = playbook(ours_ns, [ours_task], workdir)
            assert tunnel_count(loop_ns) == tunnel_count(ours_ns) == args.loop
        finally:
            lab.netns_del(loop_ns)
            lab.netns_del(ours_ns)
    per_loop = loop_seconds / args.loop
    per_ours = ours_seconds / args.loop
    report.update(loop_playbook=loop_seconds, ours_playbook=ours_seconds, loop_ratio=per_loop / per_ours)
    print("3. %d tunnels through ansible-playbook: command loop %.1f s (%.3f s per tunnel), one gre_tunnel task %.1f s (%.3f s per tunnel):"
          " the loop costs %.1fx as much per tunnel" % (args.loop, loop_seconds, per_loop, ours_seconds, per_ours, per_loop / per_ours))
    write_report(report)
    return 0 if goals_met else 1


if __name__ == "__main__":
    sys.exit(main())
