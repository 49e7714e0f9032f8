# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A transit hub with thirty spokes on a real router (lab/topologies/large-hub.yml): its boot data is larger than
one command line may be (Linux refuses one argument over 128 KiB: "Argument list too long"), and still the run
converges, a second run changes nothing, and a real reboot brings the thirty tunnels back.

The spokes are routers outside the inventory (mappings in the hub's gre_router_peers, named remoteN: the lab's
inventory lists its light hosts spokeN) that answer on the underlay.
The tests of this module run in order on one lab.
"""

from __future__ import annotations

import pytest

from support.vmlab import boot_sites, converged, kernel_state, lab_name, no_failed_unit, playbook, reboot_routers

pytestmark = pytest.mark.vm

LAB = lab_name("large-hub")
SPOKES = range(2, 32)
HUB = {
    "gre_router_site_id": 1,
    "gre_router_underlay_ip": "172.19.0.1",
    "gre_router_lan_cidrs": ["10.1.0.0/16"],
    "gre_router_transit": True,
    "gre_router_tunnel_pool": "10.255.0.0/16",
    # the spokes answer on the underlay but terminate no GRE: nothing would cross the tunnels to prove them
    "gre_router_verify": False,
    "gre_router_peers": [{"name": "remote%d" % n, "underlay_ip": "172.19.0.%d" % n, "lan_cidrs": ["10.%d.0.0/16" % n],
                          "site_id": n, "key": n} for n in SPOKES],
}
STATE = {}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from boot_sites(LAB, tmp_path_factory.mktemp("inventory"), HUB, topology="lab/topologies/large-hub.yml",
                          sites=None, routers=("hub",))


def tunnels(state):
    return sorted(link["name"] for link in state["links"] if link["kind"] == "gre" and link["name"] != "gre0")


def boot_data_size(lab):
    """The bytes the hub keeps under /etc/overlay-gre to rebuild its tunnels at boot."""
    out = lab.run("hub", ["sh", "-c", "find /etc/overlay-gre -type f -exec cat {} + | wc -c"], check=True).stdout
    return int(out.strip())


def test_converge_builds_every_tunnel_and_keeps_boot_data_larger_than_a_command_line(lab):
    converged(playbook(lab), changed=True)
    STATE["converged"] = kernel_state(lab, "hub")
    assert tunnels(STATE["converged"]) == sorted("gre-remote%d" % n for n in SPOKES)
    # more than one command line may carry (128 KiB), base64 making it a third larger still
    assert boot_data_size(lab) * 4 // 3 > 128 * 1024, boot_data_size(lab)
    no_failed_unit(lab, "hub")


def test_a_second_run_changes_nothing(lab):
    converged(playbook(lab), changed=False)


def test_a_real_reboot_brings_every_tunnel_back(lab):
    reboot_routers(lab)
    assert kernel_state(lab, "hub") == STATE["converged"]
    converged(playbook(lab), changed=False)
