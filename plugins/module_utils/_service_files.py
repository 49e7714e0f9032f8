# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note: this module_utils is private to the overlay.gre collection; its API may change at any time.

"""The logic of the action overlay.gre.service_files: small files and the systemd units they make up.

The action runs on the controller and talks to the target through two POSIX shell runs at most: one reads every
file (its mode and content, in base64) and the state of every unit, one writes exactly what differs. Everything
between (what to write, remove, enable, start; the diff) is decided here, in plain functions the unit tests call.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import shlex

from ansible_collections.overlay.gre.plugins.module_utils._lock import DEFAULT_TIMEOUT as DEFAULT_LOCK_TIMEOUT
from ansible_collections.overlay.gre.plugins.module_utils._lock import lock_shell, timeout_error

ARGUMENT_SPEC = dict(
    files=dict(type="list", elements="dict", default=[], options=dict(
        path=dict(type="str", required=True),
        content=dict(type="str"),
        mode=dict(type="raw", default="0644"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        check=dict(type="bool", default=True),
    )),
    units=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        enabled=dict(type="bool"),
        started=dict(type="bool"),
        restart_on=dict(type="list", elements="str"),
    )),
    prune=dict(type="list", elements="str", default=[]),
    lock_timeout=dict(type="int", default=DEFAULT_LOCK_TIMEOUT),
)

UNIT_SUFFIXES = (".service", ".socket", ".timer", ".target", ".path", ".mount")


class ServiceFilesError(ValueError):
    pass


def validate(params):
    """Normalised FILES, UNITS and PRUNE from the task's arguments; every error names the option and the value."""
    if timeout_error(params.get("lock_timeout", 0)):
        raise ServiceFilesError(timeout_error(params["lock_timeout"]))
    files, seen = [], set()
    for index, entry in enumerate(params.get("files") or []):
        where = "files[%d]" % index
        path = entry["path"]
        if not path.startswith("/") or posixpath.normpath(path) != path or path == "/":
            raise ServiceFilesError("%s.path: %r is not an absolute, normalised path to a file" % (where, path))
        if path in seen:
            raise ServiceFilesError("%s.path: %r is listed twice" % (where, path))
        seen.add(path)
        state = entry.get("state") or "present"
        if state == "present" and entry.get("content") is None:
            raise ServiceFilesError("%s.content: a file with state present needs its content (%s)" % (where, path))
        mode = entry.get("mode")
        if mode is None:
            mode = "0644"
        if isinstance(mode, int) and not isinstance(mode, bool):
            mode_value = mode  # YAML read an unquoted 0644 as the octal number it is
        else:
            try:
                mode_value = int(str(mode), 8)
            except ValueError:
                mode_value = -1
        if not 0 <= mode_value <= 0o7777:
            raise ServiceFilesError("%s.mode: %r is not an octal file mode such as '0644'" % (where, mode))
        files.append({"path": path, "state": state, "mode": mode_value, "check": entry.get("check") is not False,
                      "content": entry["content"].encode("utf-8") if state == "present" else None})
    units = []
    for index, entry in enumerate(params.get("units") or []):
        name = entry["name"]
        if not name or any(c in name for c in "/ \t\n'\"\\$`") or not name.endswith(UNIT_SUFFIXES):
            raise ServiceFilesError("units[%d].name: %r is not a systemd unit name (such as overlay-gre@tun0.service)" % (index, name))
        restart_on = entry.get("restart_on")
        units.append({"name": name, "enabled": entry.get("enabled"), "started": entry.get("started"),
                      "restart_on": None if restart_on is None else set(restart_on)})
    prune = []
    for index, folder in enumerate(params.get("prune") or []):
        if not folder.startswith("/") or posixpath.normpath(folder) != folder or folder == "/":
            raise ServiceFilesError("prune[%d]: %r is not an absolute, normalised folder path" % (index, folder))
        prune.append(folder)
    return files, units, prune


# --- reading -----------------------------------------------------------------------------------------------------


def read_script(files, units):
    """A POSIX shell script printing every file's state and content, whether systemd runs, and every unit's state."""
    lines = ["if [ -d /run/systemd/system ]; then echo 'systemd yes'; else echo 'systemd no'; fi"]
    for index, entry in enumerate(files):
        path = shlex.quote(entry["path"])
        # One read of the content, its sum taken from what was read: a file that another run (on a router sharing the
        # filesystem) removes meanwhile reads as missing, never as a failed read.
        lines.append("if [ -f %s ] && [ ! -L %s ] && m=$(stat -c %%a %s 2>/dev/null) && c=$(base64 < %s 2>/dev/null); then "
                     "printf 'file %d %%s %%s\\n' \"$m\" \"$(printf '%%s\\n' \"$c\" | base64 -d | cksum | tr ' ' :)\"; "
                     "printf '%%s\\n' \"$c\"; echo end; "
                     "elif [ -e %s ] || [ -L %s ]; then echo 'other %d'; else echo 'none %d'; fi"
                     % (path, path, path, path, index, path, path, index, index))
    for index, unit in enumerate(units):
        name = shlex.quote(unit["name"])
        lines.append("if [ -d /run/systemd/system ]; then printf 'unit %d %%s|%%s\\n' \"$(systemctl is-enabled %s 2>/dev/null)\" "
                     "\"$(systemctl is-active %s 2>/dev/null)\"; fi" % (index, name, name))
    return "\n".join(lines) + "\n"


def parse_read(text, files, units):
    """The target as read_script printed it: {"systemd": bool, "files": [...], "units": [...]}."""
    state = {"systemd": False, "files": [None] * len(files), "units": [None] * len(units)}
    lines = text.splitlines()
    position = 0
    while position < len(lines):
        words = lines[position].split()
        position += 1
        if not words:
            continue
        if words[0] == "systemd":
            state["systemd"] = words[1] == "yes"
        elif words[0] == "file":
            chunk = []
            while position < len(lines) and lines[position] != "end":
                chunk.append(lines[position])
                position += 1
            position += 1
            try:
                content = base64.b64decode("".join(chunk).encode("ascii"), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ServiceFilesError("could not read %s on the target: %s" % (files[int(words[1])]["path"], exc))
            state["files"][int(words[1])] = {"kind": "file", "mode": int(words[2], 8), "content": content,
                                             "cksum": words[3] if len(words) > 3 else None}
        elif words[0] in ("other", "none"):
            state["files"][int(words[1])] = {"kind": words[0]}
        elif words[0] == "unit":
            # "unit N ENABLED|ACTIVE": either may be empty (a unit whose file is gone)
            fields = lines[position - 1].split(" ", 2)
            enabled, active = (fields[2].split("|", 1) + [""])[:2] if len(fields) > 2 else ("", "")
            state["units"][int(words[1])] = {"enabled": enabled.strip(), "active": active.strip()}
    missing = [files[i]["path"] for i, found in enumerate(state["files"]) if found is None]
    if missing:
        raise ServiceFilesError("could not read %s on the target (output: %r)" % (", ".join(missing), text[-300:]))
    return state


# --- comparing ---------------------------------------------------------------------------------------------------


def plan(files, units, prune, live):
    """What to do: {"files": [(action, entry)], "units": [(action, name)], "reload": bool, "prune": [...]}.

    A file is written when it is missing or its content differs, chmod'ed when only its mode differs, removed when
    it should be absent; a path that is there but is not a regular file is an error (nothing is replaced blindly).
    Units act only where systemd runs; a unit that should run is restarted when a file of the task changed (any file,
    or one of its restart_on paths).
    """
    steps = []
    expect = []  # (action, entry, cksum or None for absent) of every file a step changes, rechecked under the router's lock
    for entry, current in zip(files, live["files"]):
        if current["kind"] == "other":
            raise ServiceFilesError("%s is there but is not a regular file; move it away, then run again" % entry["path"])
        if entry["state"] == "absent":
            action = "remove" if current["kind"] == "file" else None
        elif current["kind"] == "none" or current["content"] != entry["content"]:
            action = "write"
        elif current["mode"] != entry["mode"]:
            action = "chmod"
        else:
            action = None
        if action:
            steps.append((action, entry))
            if entry.get("check", True):
                expect.append((action, entry, current.get("cksum") if current["kind"] == "file" else None))
    changed_files = [entry["path"] for action, entry in steps if action in ("write", "remove")]
    unit_steps = []
    reload_units = False
    if live["systemd"]:
        reload_units = any("/systemd/" in path for path in changed_files)
        for unit, current in zip(units, live["units"]):
            enabled = (current or {}).get("enabled", "")
            active = (current or {}).get("active", "")
            if unit["enabled"] is True and enabled not in ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated"):
                unit_steps.append(("enable", unit["name"]))
            elif unit["enabled"] is False and enabled in ("enabled", "enabled-runtime"):
                unit_steps.append(("disable", unit["name"]))
            if unit["started"] is True:
                if active not in ("active", "activating", "reloading"):
                    unit_steps.append(("start", unit["name"]))
                elif [path for path in changed_files if unit["restart_on"] is None or path in unit["restart_on"]]:
                    unit_steps.append(("restart", unit["name"]))
            elif unit["started"] is False and active in ("active", "activating", "reloading"):
                unit_steps.append(("stop", unit["name"]))
    # stopping and disabling go before the files of the units go away
    unit_steps.sort(key=lambda step: 0 if step[0] in ("stop", "disable") else 1)
    return {"files": steps, "units": unit_steps, "reload": reload_units, "prune": list(prune), "expect": expect}


def is_changed(steps):
    return bool(steps["files"] or steps["units"])


def _commands(steps):
    """[(shell, label)] in the order they run: stops and disables, the files, the reload, the other unit actions.

    Each shell line echoes its label once done (a prune only when the folder was empty).
    """
    def unit_command(action, name):
        quoted = shlex.quote(name)
        if action not in ("start", "restart"):
            return "systemctl %s %s" % (action, quoted)
        # A run asks for it to run: a unit that failed before (its start limit hit) gets a new chance; one that does
        # not start fails the run with the reason, the end of its log. journald reads a program's output after the
        # program has gone: --sync waits until it has written what it has been sent (a traceback, say) before the read.
        return ("systemctl reset-failed %s 2>/dev/null || true\n"
                "systemctl %s %s || { journalctl --sync 2>/dev/null || true; "
                "journalctl -u %s -n 20 --no-pager -o cat >&2 || true; echo %s >&2; exit 1; }"
                % (quoted, action, quoted, quoted, shlex.quote("%s did not %s; the end of its log is above (journalctl -u %s)"
                                                               % (name, action, name))))

    def unit_commands(stopping):
        return [("%s\necho %s" % (unit_command(action, name), shlex.quote("%s: %s" % (action, name))), "%s: %s" % (action, name))
                for action, name in steps["units"] if (action in ("stop", "disable")) == stopping]

    out = unit_commands(stopping=True)
    for action, entry in steps["files"]:
        path = shlex.quote(entry["path"])
        mode = "%04o" % entry["mode"]
        label = "%s: %s" % (action, entry["path"])
        if action == "write":
            tmp = shlex.quote(entry["path"] + ".overlay-gre-tmp") + ".$$"  # this shell's own, should two runs write at once
            encoded = base64.b64encode(entry["content"]).decode("ascii")
            # first the temporary files of runs killed before their mv (their process is gone)
            stale = ("for t in %s.*; do [ -e \"$t\" ] || continue; kill -0 \"${t##*.}\" 2>/dev/null || rm -f \"$t\"; done"
                     % shlex.quote(entry["path"] + ".overlay-gre-tmp"))
            shell = ("mkdir -p %s\n%s\n{ printf '%%s' '%s' | base64 -d > %s && chmod %s %s && mv -f %s %s; } || { rm -f %s; exit 1; }"
                     % (shlex.quote(posixpath.dirname(entry["path"])), stale, encoded, tmp, mode, tmp, tmp, path, tmp))
        elif action == "chmod":
            shell = "chmod %s %s" % (mode, path)
        else:
            shell = "rm -f %s" % path
        out.append(("%s\necho %s" % (shell, shlex.quote(label)), label))
    if steps["reload"]:
        out.append(("systemctl daemon-reload\necho 'reload: systemd'", "reload: systemd"))
    starting = unit_commands(stopping=False)
    if starting:
        # The files are in place: the router's lock (descriptor 9, write_script) goes before any unit starts, since a
        # unit's program may take it itself (overlay-gre-apply does) and would wait for this run to end.
        starting[0] = ("exec 9>&-\n" + starting[0][0], starting[0][1])
    out.extend(starting)
    for folder in steps["prune"]:
        label = "prune: " + folder
        out.append(("rmdir %s 2>/dev/null && echo %s || true" % (shlex.quote(folder), shlex.quote(label)), label))
    return out


def _crc_table():
    table = []
    for index in range(256):
        crc = index << 24
        for _bit in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
        table.append(crc)
    return table


CRC_TABLE = _crc_table()


def posix_cksum(data):
    """What ``cksum < FILE | tr ' ' :`` prints for a file holding DATA (POSIX cksum: a CRC-32, then the length)."""
    crc = 0
    for byte in bytearray(data):
        crc = ((crc << 8) & 0xFFFFFFFF) ^ CRC_TABLE[(crc >> 24) ^ byte]
    length = len(data)
    while length:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ CRC_TABLE[(crc >> 24) ^ (length & 0xFF)]
        length >>= 8
    return "%d:%d" % (~crc & 0xFFFFFFFF, len(data))


def write_script(steps, lock_timeout=DEFAULT_LOCK_TIMEOUT):
    """The one shell run that applies STEPS, printing each action as it completes; it stops at the first failure.

    It takes the router's lock first (the modules' lock, see _lock.py), then checks that every file it changes is
    still as the read found it, or already as wanted (another router sharing the filesystem wrote the same file), and
    exits 76 otherwise, before any change: a plan is never applied over another run's. It lets the lock go once the
    files are in place, before any unit starts (a unit's program may take the lock itself).
    """
    checks = []
    for action, entry, cksum in steps.get("expect", []):
        quoted = shlex.quote(entry["path"])
        # absent by the same look as the sum: a file another router writes between two looks must not be both
        absent = "{ [ -z \"$sum\" ] && [ ! -L %s ]; }" % quoted
        found = "[ \"$sum\" = %s ]" % shlex.quote(cksum) if cksum else absent
        if action == "write":
            found += " || [ \"$sum\" = %s ]" % posix_cksum(entry["content"])
        elif action == "remove":
            found += " || " + absent
        checks.append("sum=$(cksum < %s 2>/dev/null | tr ' ' :) || true\n%s || { echo %s >&2; exit 76; }" % (quoted, found, shlex.quote(
            "%s changed since this run read it (another run at the same time?): nothing was changed; run again" % entry["path"])))
    return "\n".join(["set -e", "umask 022", lock_shell(lock_timeout, "the change of files and units")] + checks
                     + [shell for shell, label in _commands(steps)]) + "\n"


def step_labels(steps):
    """Every change of STEPS as write_script reports it once done ("write: PATH", "restart: UNIT", ...), in order."""
    return [label for shell, label in _commands(steps) if not label.startswith("prune: ")]


def done_lines(stdout, steps):
    """The lines of write_script's output that report a step of STEPS done."""
    labels = set(label for shell, label in _commands(steps))
    return [line for line in stdout.splitlines() if line in labels]


# --- reporting ---------------------------------------------------------------------------------------------------


def _text(content):
    return content.decode("utf-8", "replace") if content is not None else ""


def diff(files, live, steps):
    """One Ansible diff per file that changes."""
    out = []
    current_of = dict((entry["path"], current) for entry, current in zip(files, live["files"]))
    for action, entry in steps["files"]:
        current = current_of[entry["path"]]
        before = _text(current.get("content")) if current["kind"] == "file" else ""
        after = _text(entry["content"]) if action != "remove" else ""
        if action == "chmod":
            before, after = "mode %04o\n" % current["mode"], "mode %04o\n" % entry["mode"]
        out.append({"before": before, "after": after,
                    "before_header": "%s (%s)" % (entry["path"], "absent" if current["kind"] == "none" else "before"),
                    "after_header": "%s (%s)" % (entry["path"], "absent" if action == "remove" else "after")})
    for action, name in steps["units"]:
        out.append({"before": "", "after": "", "prepared": "systemctl %s %s" % (action, name)})
    return out


def summary(steps):
    """The result's lists: what was (or would be) done to each file and unit."""
    return {
        "files": dict((entry["path"], {"write": "written", "chmod": "mode changed", "remove": "removed"}[action])
                      for action, entry in steps["files"]),
        "units": ["%s %s" % (action, name) for action, name in steps["units"]],
    }
