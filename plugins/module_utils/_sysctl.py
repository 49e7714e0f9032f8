# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note: this module_utils is private to the overlay.gre collection; its API may change at any time.

"""IP forwarding through sysctl: the live value under /proc/sys and a persistent sysctl.d file, compared and changed separately.

Read everything once, compare with what was asked, check that every change can be made, then apply: live
values first (they can be put back), the file last (an atomic rename, or its removal), and put the live values
back if that fails, so that a failed run leaves nothing half-applied.

state=absent undoes the module's work: its lines leave the file (the file too, when only the header it wrote is
left), and the live value becomes the one the rest of the boot configuration gives, or the kernel's default.
"""

from __future__ import annotations

import errno
import glob
import os
import tempfile

from ansible_collections.overlay.gre.plugins.module_utils._diff import DifferenceTracker

PROC_SYS = "/proc/sys"

# systemd-sysctl's search path, highest priority first: a file name found in an earlier directory hides the
# same name in a later one; the surviving files are applied in lexical order of their names, so a later name
# wins for a key both set. procps' `sysctl --system` reads the same directories and /etc/sysctl.conf last.
SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
SYSCTL_CONF = "/etc/sysctl.conf"

DEFAULT_SYSCTL_FILE = "/etc/sysctl.d/90-overlay-gre.conf"

KEYS = {
    "ipv4": "net.ipv4.ip_forward",
    "ipv6": "net.ipv6.conf.all.forwarding",
}
FAMILIES = {
    "ipv4": ("ipv4",),
    "ipv6": ("ipv6",),
    "both": ("ipv4", "ipv6"),
}
# Writing the "all" key makes the kernel copy the value to every interface and to "default" (devinet's
# inet_forward_change, addrconf_fixup_forwarding): these are the values a rollback has to put back as well.
PER_INTERFACE_GLOB = {
    "ipv4": "net/ipv4/conf/*/forwarding",
    "ipv6": "net/ipv6/conf/*/forwarding",
}

HEADER = (
    "# Ansible managed: overlay.gre.ip_forward keeps the forwarding lines of this file\n"
    "# (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding); it leaves every other line alone.\n"
)

STATE_VALUES = {"enabled": 1, "disabled": 0}

# What the kernel boots with when no sysctl file sets the key (and what a namespace gets with
# net.core.devconf_inherit_init_net=2); state=absent falls back to it.
KERNEL_DEFAULTS = {"net.ipv4.ip_forward": 0, "net.ipv6.conf.all.forwarding": 0}
KERNEL_DEFAULT = "kernel default"
# Names under which a sysctl file sets the same kernel value: net.ipv4.conf.all.forwarding is ip_forward.
BOOT_NAMES = {
    "net.ipv4.ip_forward": ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding"),
    "net.ipv6.conf.all.forwarding": ("net.ipv6.conf.all.forwarding",),
}


class SysctlError(Exception):
    """A refusal: something cannot be read or changed; nothing has been changed when it is raised before apply."""


# --- sysctl.d syntax ---------------------------------------------------------------------------------------


def normalize_key(key):
    """The dotted form of a sysctl key as systemd-sysctl and procps read it.

    A leading '-' (ignore a failure to set it) is not part of the key; a key whose first separator is '/'
    uses '/' between components and may hold dots inside one (net/ipv4/conf/eth0.5/forwarding).
    """
    key = key.strip()
    if key.startswith("-"):
        key = key[1:].lstrip()
    slash, dot = key.find("/"), key.find(".")
    if slash != -1 and (dot == -1 or slash < dot):
        key = ".".join(part.replace(".", "/") for part in key.split("/"))
    return key


class SysctlLine(object):
    """One line of a sysctl file: an assignment (key, value) or anything else (comment, blank, foreign text)."""

    __slots__ = ("text", "key", "value", "ignore_failure")

    def __init__(self, text, key=None, value=None, ignore_failure=False):
        self.text = text
        self.key = key
        self.value = value
        self.ignore_failure = ignore_failure

    @classmethod
    def parse(cls, text):
        stripped = text.strip()
        if not stripped or stripped[0] in "#;" or "=" not in stripped:
            return cls(text)
        raw_key, value = stripped.split("=", 1)
        key = normalize_key(raw_key)
        if not key:
            return cls(text)
        return cls(text, key=key, value=value.strip(), ignore_failure=raw_key.strip().startswith("-"))


class SysctlFile(object):
    """The lines of one sysctl file, able to say what it sets and to set keys while keeping every other line."""

    def __init__(self, text=None):
        self.exists = text is not None
        self.text = text if text is not None else ""
        self.lines = [SysctlLine.parse(line) for line in self.text.splitlines()]

    def value(self, key):
        """The value the file gives KEY: its last assignment wins, as when the file is applied; None if unset."""
        found = None
        for line in self.lines:
            if line.key == key:
                found = line.value
        return found

    def values(self, keys):
        return dict((key, self.value(key)) for key in keys)

    def render(self, wanted):
        """The text of this file with every key of WANTED (key -> value) set, and nothing else changed.

        A key's first assignment is rewritten in place (keeping a leading '-'), later assignments of the same
        key are dropped since they would win over it, and a key the file does not set is appended. A file
        that does not exist yet starts with a header saying who keeps which lines.
        """
        out = []
        done = set()
        for line in self.lines:
            if line.key in wanted:
                if line.key not in done:
                    out.append("%s%s = %s" % ("-" if line.ignore_failure else "", line.key, wanted[line.key]))
                    done.add(line.key)
                continue
            out.append(line.text)
        missing = [key for key in wanted if key not in done]
        text = "\n".join(out)
        if text and not text.endswith("\n"):
            text += "\n"
        if not self.exists:
            text = HEADER + text
        for key in missing:
            text += "%s = %s\n" % (key, wanted[key])
        return text

    def without(self, keys):
        """The text of this file with every assignment of KEYS dropped and every other line kept."""
        text = "\n".join(line.text for line in self.lines if line.key not in keys)
        if text and not text.endswith("\n"):
            text += "\n"
        return text


def only_header(text):
    """True when TEXT holds nothing but the header the module writes into a file it creates (and blank lines)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines == [line.strip() for line in HEADER.splitlines()]


def same_value(current, wanted):
    """True when a sysctl value (str or int, as read) means the integer WANTED."""
    if current is None:
        return False
    try:
        return int(str(current).strip()) == wanted
    except ValueError:
        return False


# --- which file wins at boot -------------------------------------------------------------------------------


def _read_text(path):
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", errors="surrogateescape")


def _boot_files(sysctl_dirs):
    """Name -> path of every file systemd-sysctl applies, a name in an earlier directory hiding a later one."""
    files = {}
    seen_dirs = set()
    for directory in sysctl_dirs:
        real = os.path.realpath(directory)
        if real in seen_dirs or not os.path.isdir(directory):
            continue
        seen_dirs.add(real)
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if name.endswith(".conf") and name not in files:
                files[name] = os.path.join(directory, name)
    return files


def boot_warnings(sysctl_file, wanted, sysctl_dirs=SYSCTL_DIRS, sysctl_conf=SYSCTL_CONF):
    """Warnings about SYSCTL_FILE at boot: not read at all, hidden by a file of the same name, or overridden.

    WANTED maps each key to the integer the module wrote. Files that set a key to another value and are
    applied after SYSCTL_FILE are reported; files applied before it lose and are left unmentioned.
    """
    warnings = []
    ours = os.path.realpath(sysctl_file)
    files = _boot_files(sysctl_dirs)
    # the names under which the boot applies our file: itself, or symlinks to it (Debian's 99-sysctl.conf)
    our_names = sorted(name for name, path in files.items() if os.path.realpath(path) == ours)
    name = os.path.basename(sysctl_file)
    in_search_path = os.path.realpath(os.path.dirname(os.path.abspath(sysctl_file))) in set(
        os.path.realpath(d) for d in sysctl_dirs)
    if in_search_path and name.endswith(".conf"):
        if name in files and os.path.realpath(files[name]) != ours:
            warnings.append("%s is hidden at boot by %s, which has the same name in a directory systemd-sysctl reads first; "
                            "the boot never applies %s" % (sysctl_file, files[name], sysctl_file))
            return warnings
        # in check mode the file may not exist yet: it will be read under its own name
        our_names = sorted(set(our_names) | set([name]))
    is_sysctl_conf = ours == os.path.realpath(sysctl_conf)
    if not our_names:
        if is_sysctl_conf:
            warnings.append("%s is read by `sysctl -p` and `sysctl --system`, but systemd-sysctl does not read it at boot "
                            "here (no link to it in %s); a file in /etc/sysctl.d is read by both" % (sysctl_file, ", ".join(sysctl_dirs)))
        else:
            warnings.append("%s is not read at boot: systemd-sysctl and `sysctl --system` read only *.conf files in %s"
                            % (sysctl_file, ", ".join(sysctl_dirs)))
            return warnings
    later = [n for n in sorted(files) if our_names and n > our_names[-1] and os.path.realpath(files[n]) != ours]
    reported = set()
    candidates = [(files[n], "systemd-sysctl applies it after %s" % sysctl_file) for n in later]
    if not is_sysctl_conf and os.path.exists(sysctl_conf):
        candidates.append((sysctl_conf, "`sysctl --system` applies it last"))
    for path, why in candidates:
        real = os.path.realpath(path)
        if real in reported:
            continue
        try:
            other = SysctlFile(_read_text(path))
        except (OSError, IOError):
            continue
        for key in sorted(wanted):
            value = other.value(key)
            if value is not None and not same_value(value, wanted[key]):
                warnings.append("%s sets %s = %s and %s, so the value after a reboot is %s, not %s"
                                % (path, key, value, why, value, wanted[key]))
                reported.add(real)
    return warnings


def boot_sequence(sysctl_dirs=SYSCTL_DIRS, sysctl_conf=SYSCTL_CONF):
    """The files the boot applies, in order: systemd-sysctl's, then SYSCTL_CONF, which `sysctl --system` reads
    last, unless a file in SYSCTL_DIRS already links to it (Debian's 99-sysctl.conf)."""
    files = _boot_files(sysctl_dirs)
    paths = [files[name] for name in sorted(files)]
    if os.path.isfile(sysctl_conf) and os.path.realpath(sysctl_conf) not in set(os.path.realpath(path) for path in paths):
        paths.append(sysctl_conf)
    return paths


def boot_values(keys, sysctl_file, replacement, sysctl_dirs=SYSCTL_DIRS, sysctl_conf=SYSCTL_CONF):
    """Key -> (value, source) the boot would set for each of KEYS, SYSCTL_FILE read as REPLACEMENT.

    REPLACEMENT is the SysctlFile SYSCTL_FILE will hold after the run, or None to leave it out. The last file
    that sets a key to an integer gives the value and is the source; where none does, the kernel's default.
    """
    ours = os.path.realpath(sysctl_file)
    found = dict((key, (KERNEL_DEFAULTS[key], KERNEL_DEFAULT)) for key in keys)
    for path in boot_sequence(sysctl_dirs, sysctl_conf):
        if os.path.realpath(path) == ours:
            content = replacement
        else:
            try:
                content = SysctlFile(_read_text(path))
            except (OSError, IOError):
                continue
        if content is None:
            continue
        for line in content.lines:
            for key in keys:
                if line.key in BOOT_NAMES[key]:
                    try:
                        found[key] = (int(line.value), path)
                    except ValueError:
                        pass  # the kernel refuses it at boot
    return found


# --- the live values ----------------------------------------------------------------------------------------


def proc_path(key, proc_sys=PROC_SYS):
    return os.path.join(proc_sys, *key.split("."))


def read_int(path):
    with open(path) as handle:
        return int(handle.read().strip())


def write_int(path, value):
    with open(path, "w") as handle:
        handle.write("%d\n" % value)


def os_error_text(exc):
    if exc.errno == errno.EROFS:
        return "/proc/sys is mounted read-only (as in most containers: set it from the host or the container runtime, e.g. `--sysctl`)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (not root, or a user namespace that does not own this network namespace)"
    return os.strerror(exc.errno) if exc.errno else str(exc)


def restore_values(saved):
    """Write back SAVED, a list of (path, value); returns the paths that could not be restored."""
    failed = []
    for path, value in saved:
        try:
            write_int(path, value)
        except (OSError, IOError):
            failed.append(path)
    return failed


def probe_writable(path):
    """Raise SysctlError unless PATH can be opened for writing; opening a sysctl without writing changes nothing."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        raise SysctlError("cannot change %s: %s" % (path, os_error_text(exc)))
    os.close(fd)


# --- the module's work --------------------------------------------------------------------------------------


class IpForward(object):
    """Read, compare, check, apply for overlay.gre.ip_forward. MODULE is the AnsibleModule (params, check mode)."""

    def __init__(self, module, proc_sys=PROC_SYS, sysctl_dirs=SYSCTL_DIRS, sysctl_conf=SYSCTL_CONF):
        self.module = module
        self.proc_sys = proc_sys
        self.sysctl_dirs = sysctl_dirs
        self.sysctl_conf = sysctl_conf
        params = module.params
        self.families = FAMILIES[params["family"]]
        self.keys = [KEYS[family] for family in self.families]
        self.absent = params["state"] == "absent"
        # key -> the live value wanted; for state=absent, known once the file's future is (compare)
        self.wanted = {} if self.absent else dict((key, STATE_VALUES[params["state"]]) for key in self.keys)
        self.live_source = None
        self.persist = params["persist"]
        self.sysctl_file = params["sysctl_file"]
        self.live = {}
        self.file = None
        self.new_text = None
        self.remove_file = False
        self.differences = DifferenceTracker()

    # read --------------------------------------------------------------------------------------------------

    def read(self):
        for family in self.families:
            path = proc_path(KEYS[family], self.proc_sys)
            if not os.path.exists(path):
                if family == "ipv6":
                    raise SysctlError("IPv6 is disabled in this kernel (no %s: booted with ipv6.disable=1, or built without IPv6), "
                                      "so its forwarding cannot be set; use family=ipv4" % path)
                raise SysctlError("no %s: cannot read IPv4 forwarding (is /proc mounted?)" % path)
        for key in self.keys:
            path = proc_path(key, self.proc_sys)
            try:
                self.live[key] = read_int(path)
            except (OSError, IOError, ValueError) as exc:
                raise SysctlError("cannot read %s: %s" % (path, exc))
        if self.persist:
            path = self.sysctl_file
            if os.path.isdir(path):
                raise SysctlError("sysctl_file %s is a directory, not a file" % path)
            if os.path.lexists(path) and not os.path.exists(path) and not self.absent:
                raise SysctlError("sysctl_file %s is a dangling symbolic link" % path)
            text = None
            if os.path.exists(path):
                try:
                    text = _read_text(path)
                except (OSError, IOError) as exc:
                    raise SysctlError("cannot read sysctl_file %s: %s" % (path, exc))
            self.file = SysctlFile(text)

    # compare -----------------------------------------------------------------------------------------------

    def compare(self):
        if self.absent:
            self._compare_absent_file()
            after = self._file_after() if self.persist else None
            boot = boot_values(self.keys, self.sysctl_file, after, self.sysctl_dirs, self.sysctl_conf)
            self.wanted = dict((key, boot[key][0]) for key in self.keys)
            self.live_source = dict((key, boot[key][1]) for key in self.keys)
        for key in self.keys:
            self.differences.compare("live " + key, self.live[key], self.wanted[key])
        if self.persist and not self.absent:
            stale = {}
            for key in self.keys:
                current = self.file.value(key)
                if not same_value(current, self.wanted[key]):
                    self.differences.add("file " + key, active=current, wanted=str(self.wanted[key]))
                    stale[key] = str(self.wanted[key])
            if stale:
                self.new_text = self.file.render(stale)

    def _compare_absent_file(self):
        """Drop the module's lines; drop the file when only its header is left, unless it is a symbolic link
        (someone else's arrangement: the file it names is rewritten instead, the link kept)."""
        if not self.persist or not self.file.exists:
            return
        kept = self.file.without(self.keys)
        removed = False
        for key in self.keys:
            current = self.file.value(key)
            if current is not None:
                self.differences.add("file " + key, active=current, wanted=None)
                removed = True
        if only_header(kept) and not os.path.islink(self.sysctl_file):
            self.differences.add("file", active=self.sysctl_file, wanted=None)
            self.remove_file = True
        elif removed:
            self.new_text = kept

    def live_changes(self):
        return [key for key in self.keys if self.differences.has_difference_for("live " + key)]

    @property
    def file_changes(self):
        return self.new_text is not None or self.remove_file

    # check -------------------------------------------------------------------------------------------------

    def check(self):
        """Refuse now, before anything is changed, if a change that is needed could not be made."""
        for key in self.live_changes():
            probe_writable(proc_path(key, self.proc_sys))
        if self.file_changes:
            path = self._write_target()
            directory = os.path.dirname(path)
            if not os.path.exists(directory):
                raise SysctlError("cannot write sysctl_file %s: directory %s does not exist" % (self.sysctl_file, directory))
            if not os.path.isdir(directory):
                raise SysctlError("cannot write sysctl_file %s: %s is not a directory" % (self.sysctl_file, directory))
            if not os.access(directory, os.W_OK | os.X_OK):
                raise SysctlError("cannot write sysctl_file %s: directory %s is not writable (read-only file system or permission denied)"
                                  % (self.sysctl_file, directory))
            if os.path.exists(path) and not os.access(path, os.W_OK):
                raise SysctlError("cannot write sysctl_file %s: the file is not writable (immutable, read-only file system or permission denied)"
                                  % self.sysctl_file)

    def _write_target(self):
        """Where the file's bytes go: through a symlink to the file it names (keeping the link)."""
        return os.path.realpath(self.sysctl_file)

    # apply -------------------------------------------------------------------------------------------------

    def _prepare_file(self):
        """Write the new content next to the target; returns the temporary path, renamed over the target last."""
        path = self._write_target()
        directory = os.path.dirname(path)
        _remove_stale_temporaries(path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=".%s.%d." % (os.path.basename(path), os.getpid()), suffix=".tmp", dir=directory)
        except OSError as exc:
            raise SysctlError("cannot write sysctl_file %s: %s" % (self.sysctl_file, os_error_text(exc)))
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(self.new_text.encode("utf-8", errors="surrogateescape"))
                handle.flush()
                os.fsync(handle.fileno())
            if os.path.exists(path):
                st = os.stat(path)
                os.chmod(tmp, st.st_mode & 0o7777)
                try:
                    os.chown(tmp, st.st_uid, st.st_gid)
                except OSError:
                    pass
            else:
                os.chmod(tmp, 0o644)
            module = self.module
            if module.selinux_enabled():
                context = module.selinux_context(path) if os.path.exists(path) else module.selinux_default_context(path)
                module.set_context_if_different(tmp, context, False)
        except (OSError, IOError) as exc:
            _unlink(tmp)
            raise SysctlError("cannot write sysctl_file %s: %s" % (self.sysctl_file, exc))
        return tmp

    def _snapshot(self, key):
        family = "ipv6" if key == KEYS["ipv6"] else "ipv4"
        saved = [(proc_path(key, self.proc_sys), self.live[key])]
        for path in sorted(glob.glob(os.path.join(self.proc_sys, PER_INTERFACE_GLOB[family]))):
            if os.path.basename(os.path.dirname(path)) == "all":
                continue
            try:
                saved.append((path, read_int(path)))
            except (OSError, IOError, ValueError):
                pass
        return saved

    def apply(self):
        tmp = self._prepare_file() if self.new_text is not None else None
        saved = []
        try:
            for key in self.live_changes():
                saved.extend(self._snapshot(key))
                path = proc_path(key, self.proc_sys)
                try:
                    write_int(path, self.wanted[key])
                except (OSError, IOError) as exc:
                    raise SysctlError("cannot change %s: %s" % (path, os_error_text(exc) if isinstance(exc, OSError) else exc))
            if tmp:
                try:
                    replace_file(tmp, self._write_target())
                except OSError as exc:
                    raise SysctlError("cannot write sysctl_file %s: %s" % (self.sysctl_file, os_error_text(exc)))
                tmp = None
            elif self.remove_file:
                try:
                    remove_file(self.sysctl_file)
                except OSError as exc:
                    raise SysctlError("cannot remove sysctl_file %s: %s" % (self.sysctl_file, os_error_text(exc)))
        except SysctlError as exc:
            if tmp:
                _unlink(tmp)
            if saved:
                failed = restore_values(saved)
                if failed:
                    raise SysctlError("%s; putting the live values back failed too for %s, check them by hand" % (exc, ", ".join(failed)))
                raise SysctlError("%s; the live values changed before it were put back (%s)"
                                  % (exc, ", ".join("%s = %s" % (key, self.live[key]) for key in self.live_changes())))
            raise

    # result ------------------------------------------------------------------------------------------------

    def _file_after(self):
        if self.remove_file:
            return SysctlFile(None)
        return SysctlFile(self.new_text) if self.new_text is not None else self.file

    def after(self):
        live = dict(self.live)
        for key in self.live_changes():
            live[key] = self.wanted[key]
        if not self.persist:
            return live, None
        source = self._file_after()
        held = {}
        for key in self.keys:
            value = source.value(key)
            try:
                held[key] = int(value) if value is not None else None
            except ValueError:
                held[key] = value
        return live, held

    def diff(self):
        def live_text(values):
            return "".join("%s = %s\n" % (key, values[key]) for key in self.keys)

        live_after, dummy = self.after()
        entries = [{
            "before_header": "%s (live)" % self.proc_sys,
            "after_header": "%s (live)" % self.proc_sys,
            "before": live_text(self.live),
            "after": live_text(live_after),
        }]
        if self.persist:
            before = self.file.text if self.file.exists else ""
            entries.append({
                "before_header": self.sysctl_file if self.file.exists else "%s (absent)" % self.sysctl_file,
                "after_header": "%s (absent)" % self.sysctl_file if self.remove_file else self.sysctl_file,
                "before": before,
                "after": self._file_after().text,
            })
        return entries

    def run(self):
        module = self.module
        try:
            self.read()
            self.compare()
            self.check()
            if not self.differences.empty and not module.check_mode:
                self.apply()
        except SysctlError as exc:
            module.fail_json(msg=str(exc))
        if self.persist and not self.absent:
            for warning in boot_warnings(self.sysctl_file, self.wanted, self.sysctl_dirs, self.sysctl_conf):
                module.warn(warning)
        live, held = self.after()
        result = {
            "changed": not self.differences.empty,
            "live": live,
            "file": held,
            "sysctl_file": self.sysctl_file if self.persist else None,
        }
        if self.absent:
            result["live_source"] = self.live_source
        if module._diff:  # pylint: disable=protected-access
            result["diff"] = self.diff()
        module.exit_json(**result)


def _sync_dir(path):
    """Make a rename or unlink in PATH's folder durable (fsync the folder); best effort."""
    try:
        dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _remove_stale_temporaries(path):
    """Remove the temporary files of PATH (.NAME.PID.XXXXXXXX.tmp) that a run killed before its rename left behind:
    those whose process is gone. Another live run's (in the lab, routers share a filesystem) is left alone."""
    prefix = ".%s." % os.path.basename(path)
    for tmp in glob.glob(os.path.join(glob.escape(os.path.dirname(path)), glob.escape(prefix) + "*.tmp")):
        pid = os.path.basename(tmp)[len(prefix):].split(".", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            _unlink(tmp)
        except OSError:
            pass  # it exists (EPERM: another user's)


def replace_file(tmp, path):
    """Atomically put TMP in place of PATH and make the rename durable."""
    os.rename(tmp, path)
    _sync_dir(path)


def remove_file(path):
    """Remove PATH and make the removal durable."""
    os.unlink(path)
    _sync_dir(path)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass
