# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's programs (files without a .py suffix: the keepalive sender, the apply program) imported as modules,
for the tests."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = os.path.join(ROOT, "roles", "gre_router", "files")
PROGRAM = os.path.join(FILES, "overlay-gre-keepalive")


def load_program(name):
    """roles/gre_router/files/NAME as a module."""
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), os.path.join(FILES, name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def load_keepalive():
    return load_program("overlay-gre-keepalive")
