# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note: this module_utils is private to the overlay.gre collection; its API may change at any time.

"""Track the differences between what the kernel has and what was asked, for --diff and for applying."""

from __future__ import annotations


class DifferenceTracker(object):
    """Records (name, active, wanted) triples; yields the before/after mappings Ansible's --diff shows."""

    def __init__(self):
        self._diff = []

    def add(self, name, active=None, wanted=None):
        self._diff.append({"name": name, "active": active, "wanted": wanted})

    def compare(self, name, active, wanted):
        """Record NAME when WANTED is set (not None) and differs from ACTIVE; return True if it differs."""
        if wanted is None or active == wanted:
            return False
        self.add(name, active=active, wanted=wanted)
        return True

    def merge(self, other):
        self._diff.extend(other._diff)

    @property
    def empty(self):
        return not self._diff

    def names(self):
        return [item["name"] for item in self._diff]

    def has_difference_for(self, name):
        return any(item["name"] == name for item in self._diff)

    def get_before_after(self):
        before = {}
        after = {}
        for item in self._diff:
            before[item["name"]] = item["active"]
            after[item["name"]] = item["wanted"]
        return before, after
