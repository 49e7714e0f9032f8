# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rtnetlink reader on the namespaces a new user meets: a new one (no main table, no address, lo down), IPv6 off
(by sysctl, and at boot with ipv6.disable=1), tens of thousands of routes, 15-character names with dots and dashes,
links that come and go while it reads. Each case checks the reader against `ip -j` of the same namespace.

The reader needs no GRE for these cases, so most run on the host (with veth links: the host has no dummy); the
tunnel-making ones are marked gre (the lab), and the ipv6.disable=1 one boots the lab's kernel with that parameter (lab/run --kernel-arg).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from support import lab
from support.lab import ROOT, in_child, ip_json, run_module, sh

TUNNEL = {"name": "gre1", "local": "192.0.2.1", "remote": "192.0.2.2"}


def bare_netns(netns_factory):
    """A namespace as `ip netns add` leaves it, like a new container: lo down, no address, no main table."""
    name = netns_factory("bare")
    sh(name, "ip link set lo down")
    return name


def read_both(netns, table=0):
    """(reader, ip) in NETNS: links with addresses, and unicast routes (TABLE 0: every table, numeric as ip -N)."""

    def work():
        from ansible_collections.overlay.gre.plugins.module_utils import _rtnetlink
        links, routes = _rtnetlink.read(table=table, numeric=True)
        return json.dumps([links, routes])

    links, routes = json.loads(in_child(netns, work))
    ip_links = ip_json(netns, "-d", "addr", "show")
    ip_routes = ip_json(netns, "-N", "route", "show", "table", "all" if table == 0 else str(table), "type", "unicast")
    return (links, routes), (ip_links, ip_routes)


def same_links(ours, theirs):
    def view(links):
        return sorted((x["ifindex"], x["ifname"], x["mtu"], "UP" in x["flags"], (x.get("linkinfo") or {}).get("info_kind"),
                       sorted((a["family"], a["local"], a["prefixlen"]) for a in x["addr_info"])) for x in links)
    assert view(ours) == view(theirs)


def reads_as_ip_does(netns):
    """Read every table of NETNS with the reader and with `ip -j`, assert that links and routes agree, return ours."""
    (links, routes), (ip_links, ip_routes) = read_both(netns, 0)
    same_links(links, ip_links)
    assert route_keys(routes) == route_keys(ip_routes)
    return links, routes


def route_keys(routes):
    def dst(x):
        if x["dst"] == "default":
            return "::/0" if ":" in x.get("gateway", "") or x.get("pref") else "0.0.0.0/0"
        return x["dst"] if "/" in x["dst"] else x["dst"] + ("/128" if ":" in x["dst"] else "/32")
    return sorted((int(x.get("table", 254)), dst(x), x.get("dev"), x.get("gateway"), int(x.get("metric", 0))) for x in routes)


def test_a_new_namespace_reads_as_no_routes_and_only_lo(netns_factory):
    netns = bare_netns(netns_factory)
    for table in (254, 0):
        (links, routes), (ip_links, ip_routes) = read_both(netns, table)
        same_links(links, ip_links)
        assert [x["ifname"] for x in links] == ["lo"] and routes == [] and ip_routes == []


def test_ipv6_disabled_by_sysctl(netns_factory):
    netns = netns_factory("nov6")
    sh(netns, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 && "
              "ip link add d0 type veth peer name d0p && ip link set d0p up && ip link set d0 up && "
              "ip addr add 10.7.0.1/24 dev d0 && ip route add 10.8.0.0/16 via 10.7.0.2")
    _links, routes = reads_as_ip_does(netns)
    assert (254, "10.8.0.0/16", "d0", "10.7.0.2", 0) in route_keys(routes)


def test_tens_of_thousands_of_routes_in_several_tables(netns_factory):
    netns = netns_factory("many")
    batch = ["link add d0 type veth peer name d0p", "link set d0p up", "link set d0 up", "addr add 10.0.0.1/16 dev d0", "addr add 2001:db8::1/64 dev d0 nodad"]
    batch += ["route add 172.%d.%d.0/24 via 10.0.0.2 table %d" % (16 + i // 256, i % 256, 254 if i % 3 else 1000) for i in range(15000)]
    batch += ["route add 2001:db8:%x::/48 via 2001:db8::2 metric %d" % (i + 1, i % 7) for i in range(5000)]
    subprocess.run(["ip", "-n", netns, "-batch", "-"], input="\n".join(batch) + "\n", text=True, check=True, capture_output=True)
    (links, routes), (_ip_links, ip_routes) = read_both(netns, 0)
    assert len(routes) >= 20000 and route_keys(routes) == route_keys(ip_routes)
    (_links, main), _ip = read_both(netns, 254)
    assert len(main) == len([x for x in routes if x["table"] == 254])


def test_fifteen_character_names_with_dots_and_dashes(netns_factory):
    netns = netns_factory("names")
    # no IPv6 on the links: the kernel adds their fe80::/64 routes on its own time, which could fall between the two reads
    sh(netns, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
    sh(netns, "ip link add up.0-dash.x1234 type veth peer name a-b.c_d.e-f.123 && "
              "ip link set a-b.c_d.e-f.123 up && ip link set up.0-dash.x1234 up && ip addr add 10.4.0.1/24 dev up.0-dash.x1234 && "
              "ip route add 10.5.0.0/24 dev up.0-dash.x1234")
    links, _routes = reads_as_ip_does(netns)
    assert {"up.0-dash.x1234", "a-b.c_d.e-f.123"} <= {x["ifname"] for x in links}


def test_links_that_come_and_go_while_it_reads(netns_factory):
    """Links and addresses made and removed by another process during 200 reads: every read succeeds (the kernel's
    interrupted dumps are read again, a link gone between two dumps is left out) and sees the links change; once
    the churn stops, a read equals `ip -j` of the same namespace."""
    netns = netns_factory("churn")
    churn = subprocess.Popen(["ip", "netns", "exec", netns, "sh", "-c",
                              "i=0; while :; do i=$(( (i + 1) % 50 )); ip link add c$i type veth peer name p$i 2>/dev/null; ip link set c$i up 2>/dev/null; "
                              "ip addr add 10.9.$i.1/24 dev c$i 2>/dev/null; ip link del c$((i / 2)) 2>/dev/null; done"],
                             start_new_session=True)
    try:
        def work():
            from ansible_collections.overlay.gre.plugins.module_utils import _rtnetlink
            seen = []
            for _read in range(200):
                links, _routes = _rtnetlink.read(table=0, numeric=True)
                seen.append(len(links))
            return json.dumps(seen)

        seen = json.loads(in_child(netns, work))
    finally:
        # the loop and the `ip` it runs at that moment: an `ip` left running would change the links after the churn
        # "stopped", between the two reads compared below
        os.killpg(churn.pid, signal.SIGKILL)
        churn.wait()
        while True:
            try:
                os.killpg(churn.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.01)
    assert len(seen) == 200 and len(set(seen)) > 1  # every read succeeded, and the links really did change between reads
    reads_as_ip_does(netns)


# --- the tunnel module where the reader used to fail (in the lab: it makes GRE links) ---------------------------------


@pytest.mark.gre
@pytest.mark.parametrize("case", ["new namespace", "ipv6 off by sysctl"])
def test_gre_tunnel_creates_the_tunnel_in_a_namespace_with_no_main_table(netns_factory, case):
    """The issue's command, as a new user runs it: ansible -c overlay.gre.netns -m overlay.gre.gre_tunnel -a '...'."""
    netns = bare_netns(netns_factory)
    if case == "ipv6 off by sysctl":
        sh(netns, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
    first = run_module(netns, "overlay.gre.gre_tunnel", TUNNEL)
    assert not first.get("failed"), first
    assert first["changed"] is True
    made = ip_json(netns, "-d", "link", "show", "dev", "gre1")[0]["linkinfo"]["info_data"]
    assert (made["local"], made["remote"]) == ("192.0.2.1", "192.0.2.2")
    again = run_module(netns, "overlay.gre.gre_tunnel", TUNNEL)
    assert again["changed"] is False and not again.get("failed"), again


@pytest.mark.gre
def test_gre_tunnel_named_with_dots_and_dashes_on_an_underlay_so_named(netns_factory):
    from support.lab import run_module_direct
    netns = netns_factory("gnames")
    sh(netns, "ip link add up.0-dash.x1234 type dummy && ip link set up.0-dash.x1234 up && ip addr add 192.0.2.1/24 dev up.0-dash.x1234")
    args = dict(TUNNEL, name="gre-a.b_c-d.123", link="up.0-dash.x1234", addresses=["10.3.0.1/30"], routes=["10.6.0.0/24"])
    first = run_module_direct(netns, "gre_tunnel", args)
    assert first["changed"] is True and not first.get("failed"), first
    assert ip_json(netns, "-d", "link", "show", "dev", "gre-a.b_c-d.123")[0]["linkinfo"]["info_data"]["link"] == "up.0-dash.x1234"
    assert run_module_direct(netns, "gre_tunnel", args)["changed"] is False


# --- a kernel booted with ipv6.disable=1: no IPv6 at all, not even the rtnetlink family (boots the lab's kernel) ----


def test_reader_and_module_in_a_kernel_booted_without_ipv6(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("lab/run needs root", pytrace=False)
    results = tmp_path / "results"
    job = """
        set -e
        ! test -e /proc/sys/net/ipv6
        ip netns add fresh
        ip -n fresh link add d0 type dummy
        ip -n fresh link set d0 up
        ip -n fresh addr add 192.0.2.1/24 dev d0
        ip -n fresh route add 10.8.0.0/16 via 192.0.2.9
        ip netns exec fresh "$PY" -c '
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.overlay.gre.plugins.module_utils import _rtnetlink
links, routes = _rtnetlink.read(table=0, numeric=True)
print(json.dumps([[x["ifname"] for x in links], [[x["dst"], x.get("dev"), x.get("gateway")] for x in routes]]))
' "$COLLECTIONS" > "$RESULTS/read.json"
        ansible all -i fresh, -c overlay.gre.netns -m overlay.gre.gre_tunnel -a 'name=gre1 local=192.0.2.1 remote=192.0.2.2' > "$RESULTS/first.txt"
        ansible all -i fresh, -c overlay.gre.netns -m overlay.gre.gre_tunnel -a 'name=gre1 local=192.0.2.1 remote=192.0.2.2' > "$RESULTS/again.txt"
        ip -n fresh -j -d link show dev gre1 > "$RESULTS/link.json"
        ip netns del fresh
    """
    env = lab.ansible_env()
    env.update(PY=os.path.join(ROOT, ".venv", "bin", "python"), COLLECTIONS=lab.ensure_collection_path(), RESULTS=str(results),
               PATH=os.path.join(ROOT, ".venv", "bin") + os.pathsep + env["PATH"], ANSIBLE_STDOUT_CALLBACK="default")
    proc = subprocess.run([os.path.join(ROOT, "lab", "run"), "--kernel-arg", "ipv6.disable=1", "--results", str(results), "--",
                           "bash", "-c", job], capture_output=True, text=True, check=False, cwd=ROOT, env=env)
    assert proc.returncode == 0, "the job in the kernel booted with ipv6.disable=1 failed: %s%s" % (proc.stdout, proc.stderr)
    names, routes = json.loads((results / "read.json").read_text(encoding="utf-8"))
    assert names[0] == "lo" and "d0" in names and ["10.8.0.0/16", "d0", "192.0.2.9"] in routes
    assert '"changed": true' in (results / "first.txt").read_text(encoding="utf-8")
    assert '"changed": false' in (results / "again.txt").read_text(encoding="utf-8")
    assert json.loads((results / "link.json").read_text(encoding="utf-8"))[0]["linkinfo"]["info_data"]["remote"] == "192.0.2.2"
