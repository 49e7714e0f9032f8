# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note: this module_utils is private to the overlay.gre collection; its API may change at any time.

"""The router's lock: one overlay.gre change at a time on a router, whoever runs it.

Every module that changes the kernel holds it from its read of the live state to the end of its apply, so a plan is
never computed from a state that another run is changing, nor applied over one that another run changed meanwhile.
It is an flock(2) on a file under /run/overlay-gre, one per network namespace (the lab's routers are namespaces of
one kernel and share /run), so a run killed halfway leaves no stale lock: the kernel drops it with the process.
The service_files action takes the same lock from the shell (``flock``), with the path lock_shell() prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

LOCK_DIR = "/run/overlay-gre"
DEFAULT_TIMEOUT = 300
POLL = 0.05
ARGUMENT_SPEC = dict(lock_timeout=dict(type="int", default=DEFAULT_TIMEOUT))
_HELD = []  # the descriptors of the locks this process holds


def held_fds():
    """The descriptors of the locks this process holds, for the programs it runs to inherit (``pass_fds``): a module
    killed while its ``ip -batch`` or ``iptables-restore`` runs leaves the lock held until that program ends, so the
    next run never reads a state in the middle of its change."""
    return tuple(_HELD)


def timeout_error(timeout):
    """The message that refuses lock_timeout=TIMEOUT, or None when it is a number of seconds."""
    return "lock_timeout: %d is not a number of seconds (0 or more)" % timeout if timeout < 0 else None


class LockTimeout(Exception):
    """Another run held the router's lock for longer than lock_timeout."""


def lock_path():
    """The lock file of this process's network namespace (the router)."""
    try:
        namespace = "netns-%d" % os.stat("/proc/self/ns/net").st_ino
    except OSError:
        namespace = "router"
    return os.path.join(LOCK_DIR, namespace + ".lock")


def lock_shell(timeout, what):
    """Shell lines that take the same lock on file descriptor 9 for the rest of the script, or exit 75 saying why."""
    return ("lock=%s/netns-$(stat -L -c %%i /proc/self/ns/net).lock\n"
            "mkdir -p %s && exec 9>>\"$lock\" || exit 1\n"
            "flock -w %d 9 || { echo \"another overlay.gre run ($(cat \"$lock\")) held this router's lock for %d s (lock_timeout): %s was not done; "
            "wait for it to end, then run again\" >&2; exit 75; }\n"
            "echo \"overlay.gre.service_files pid $$\" > \"$lock\""
            % (LOCK_DIR, LOCK_DIR, timeout, timeout, what))


@contextlib.contextmanager
def held(timeout, holder, path=None):
    """Hold the router's lock while the block runs; wait for it up to TIMEOUT seconds, then raise LockTimeout.

    HOLDER (for example "overlay.gre.gre_tunnel") is written into the file, so a run that waits can say who holds it.
    """
    path = path or lock_path()
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout("another overlay.gre run held this router's lock (%s, taken by %s) for more than lock_timeout=%d s: "
                                      "nothing was changed. Wait for that run to end and run again, or raise lock_timeout"
                                      % (path, _holder(fd), timeout))
                time.sleep(POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, ("%s pid %d\n" % (holder, os.getpid())).encode(), 0)
        _HELD.append(fd)
        yield path
    finally:
        if fd in _HELD:
            _HELD.remove(fd)
        os.close(fd)  # releases the lock, unless a program started meanwhile still holds it


def _holder(fd):
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "an unknown process"
    except OSError:
        return "an unknown process"


@contextlib.contextmanager
def router_lock(module, holder):
    """held() for an Ansible module: its lock_timeout, and a failure (nothing changed) that says who holds the lock.

    In check mode a lock that cannot be made (no root, a read-only /run) is done without: check mode changes nothing.
    """
    timeout = module.params["lock_timeout"]
    if timeout_error(timeout):
        module.fail_json(msg=timeout_error(timeout), changed=False)
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(held(timeout, holder))
    except LockTimeout as exc:
        module.fail_json(msg=str(exc), changed=False)
    except OSError as exc:
        if not module.check_mode:
            module.fail_json(msg="could not take the router's lock %s: %s" % (lock_path(), exc.strerror or exc), changed=False)
    with stack:
        yield
