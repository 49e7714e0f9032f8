# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures shared by every test: namespaces the test owns (removed also on failure) and the lab topology."""

from __future__ import annotations

import os

import pytest

from support import lab


def pytest_configure(config):
    lab.ensure_collection_path()


@pytest.fixture(scope="session")
def gre_kernel():
    """Tests marked 'gre' need a kernel that can make GRE links; elsewhere they fail and say where to run them."""
    if not lab.kernel_can_gre():
        pytest.fail("this kernel cannot make GRE links: run GRE tests inside the lab, e.g. "
                    "`lab/run -- .venv/bin/pytest -m gre` (make test does this)", pytrace=False)
    return True


@pytest.fixture(autouse=True)
def _gre_marker(request):
    if request.node.get_closest_marker("gre"):
        request.getfixturevalue("gre_kernel")


@pytest.fixture
def netns_factory():
    """Make namespaces on demand; every one made is removed after the test, whatever its outcome."""
    if os.geteuid() != 0:
        pytest.fail("tests that use network namespaces must run as root", pytrace=False)
    made = []

    def make(tag="t"):
        name = lab.netns_add(lab.new_netns_name(tag))
        made.append(name)
        return name

    yield make
    for name in made:
        lab.netns_del(name)


@pytest.fixture
def netns(netns_factory):
    return netns_factory()


@pytest.fixture
def howto_topology():
    """The how-to's topology (router_a, router_b, host_a, host_b) under a unique prefix; removed afterwards."""
    if os.geteuid() != 0:
        pytest.fail("tests that use network namespaces must run as root", pytrace=False)
    import topology  # lab/topology.py

    topo = topology.Topology.load(prefix=lab.new_netns_name("h") + "-")
    topo.up()
    try:
        yield topo
    finally:
        topo.down()
