# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only stdout callback: writes every task result, whole (diff included), as JSON lines."""

from __future__ import annotations

DOCUMENTATION = r"""
name: record_results
type: stdout
short_description: Write every task result as a JSON line (tests only)
description:
  - Writes each task result, diff included, to the file named by E(OVERLAY_GRE_RESULTS_FILE), one JSON object a line.
  - Prints what the default callback prints as well, with its options.
extends_documentation_fragment:
  - default_callback
  - result_format_callback
"""

import json
import os
import time

from ansible.plugins.callback.default import CallbackModule as DefaultCallback


class CallbackModule(DefaultCallback):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "record_results"

    def _record(self, status, result):
        path = os.environ.get("OVERLAY_GRE_RESULTS_FILE")
        if not path:
            return
        recorded = dict(result._result)
        if status == "failed":
            recorded.setdefault("failed", True)  # ansible-core 2.19 keeps it out of the recorded result
        entry = {
            "host": result._host.get_name(),
            "task": result._task.get_name(),
            "action": result._task.action,
            "end": time.time(),
            "status": status,
            "result": recorded,
        }
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._record("ok", result)
        super().v2_runner_on_ok(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record("failed", result)
        super().v2_runner_on_failed(result, ignore_errors=ignore_errors)

    def v2_runner_on_unreachable(self, result):
        self._record("unreachable", result)
        super().v2_runner_on_unreachable(result)

    def v2_runner_on_skipped(self, result):
        self._record("skipped", result)
        super().v2_runner_on_skipped(result)
