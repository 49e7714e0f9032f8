# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's keepalive sender (a program without a .py suffix) imported as a module, for the tests."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROGRAM = os.path.join(ROOT, "roles", "gre_router", "files", "overlay-gre-keepalive")


def load_keepalive():
    loader = importlib.machinery.SourceFileLoader("overlay_gre_keepalive", PROGRAM)
    spec = importlib.util.spec_from_loader("overlay_gre_keepalive", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
