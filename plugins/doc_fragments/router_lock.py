# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    """The lock_timeout option of every module and action that changes a router."""

    DOCUMENTATION = r"""
options:
  lock_timeout:
    description:
      - How many seconds to wait for the router's lock, which one overlay.gre change at a time holds from its read of
        the kernel to the end of its apply (a file under C(/run/overlay-gre), one per network namespace). The
        P(overlay.gre.service_files#module) action holds it for its write, after checking under it that each file it
        changes is still as its read found it.
      - Two runs against the same router at once (two people, or a person and a pipeline) then take turns, and a
        plan is never applied over a state that another run changed meanwhile.
      - When the lock is still held after that long, the task fails without changing anything and says which run
        holds it. A run killed halfway never leaves the lock behind.
    type: int
    default: 300
"""
