# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note: this module_utils is private to the overlay.gre collection; its API may change at any time.

"""Owned iptables rules, in the form iptables-save prints them: read once, compare, apply in one iptables-restore.

The engine knows nothing about NAT. A caller describes chains it owns (``ChainSpec``): the table, the chain's
name, the built-in chain that jumps to it and where that jump must sit, the rules wanted in it and the rules
that must go. ``plan()`` compares them with one ``iptables-save`` read and yields a ``Plan``: the lines for one
``iptables-restore --noflush`` run, the rules added and removed, and the owned rules before and after as
``iptables-save`` text for ``--diff``. Rules outside the owned chains are never deleted or reordered; the only
line this engine writes into a built-in chain is the jump to an owned chain.

``iptables-restore`` commits each table on its ``COMMIT`` line: one run is atomic per table, not across tables
(legacy and nft alike).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

from ansible_collections.overlay.gre.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.overlay.gre.plugins.module_utils._lock import held_fds

COLLECTION_TAG = "overlay.gre"
BACKENDS = ("nft", "legacy")

_NO_QUOTE = re.compile(r"^[A-Za-z0-9_-]+$")


# --- rules as tokens -----------------------------------------------------------------------------------------

_SIMPLE_TOKEN = re.compile(r'"([^"]*)"|([^\s"]+)')
_SIMPLE_RULE = re.compile(r'(?:"[^"]*"|[^\s"]+)(?: +(?:"[^"]*"|[^\s"]+))*')


def split_rule(text):
    """Tokens of a rule's arguments as iptables-save prints them (quotes removed).

    shlex is exact but slow (about 50 us a line); iptables-save's usual lines, whose double-quoted strings are
    whole tokens without escapes, take a regular expression instead.
    """
    if '"' not in text and "'" not in text and "\\" not in text:
        return tuple(text.split())
    if "\\" not in text and "'" not in text and _SIMPLE_RULE.fullmatch(text):
        return tuple(quoted or bare for quoted, bare in _SIMPLE_TOKEN.findall(text))
    try:
        return tuple(shlex.split(text))
    except ValueError:
        return tuple(text.split())


_SAFE = re.compile(r"^[^\s\"'\\]+$")


def quote_token(token, string_option=False):
    """Quote one token as iptables-save does: a string option (a comment) as xtables_save_string does, quoted
    unless it is only letters, digits, '_' and '-'; anything else only when it needs quotes to stay one token."""
    if (_NO_QUOTE if string_option else _SAFE).match(token):
        return token
    return '"%s"' % token.replace("\\", "\\\\").replace('"', '\\"')


_quoted = {}


def join_rule(tokens):
    out = []
    string_option = False
    for token in tokens:
        key = (token, string_option)
        text = _quoted.get(key)
        if text is None:
            text = _quoted[key] = quote_token(token, string_option)
        out.append(text)
        string_option = token == "--comment"
    return " ".join(out)


def comment_of(tokens):
    """The text of the rule's first comment match, or None."""
    for index in range(len(tokens) - 1):
        if tokens[index] == "--comment":
            return tokens[index + 1]
    return None


def without_comment(tokens):
    """The rule with its comment match removed: what identifies a rule whatever its tag."""
    try:
        index = tokens.index("--comment")
    except ValueError:
        return tokens
    if index >= 2 and tokens[index - 2] == "-m" and tokens[index - 1] == "comment" and index + 1 < len(tokens):
        return tokens[:index - 2] + tokens[index + 2:]
    return tokens


def jump_target(tokens):
    for index in range(len(tokens) - 1):
        if tokens[index] in ("-j", "--jump", "-g", "--goto"):
            return tokens[index + 1]
    return None


def is_collection_rule(tokens):
    comment = comment_of(tokens)
    return comment is not None and (comment == COLLECTION_TAG or comment.startswith(COLLECTION_TAG + " "))


class Rule(object):
    """One ``-A CHAIN ...`` line of iptables-save: the chain, the raw argument text and its tokens."""

    __slots__ = ("chain", "text", "_tokens")

    def __init__(self, chain, text, tokens=None):
        self.chain = chain
        self.text = text
        self._tokens = tokens

    @property
    def tokens(self):
        if self._tokens is None:
            self._tokens = split_rule(self.text)
        return self._tokens

    def __repr__(self):
        return "Rule(%r, %r)" % (self.chain, self.text)


class Table(object):
    """A table as iptables-save shows it: chains (name -> policy, '-' for user chains) and rules in order."""

    def __init__(self, name):
        self.name = name
        self.chains = {}
        self.rules = []

    def rules_in(self, chain):
        return [rule for rule in self.rules if rule.chain == chain]


def parse_save(text):
    """Parse iptables-save output into {table name: Table}; comments and counters are ignored."""
    tables = {}
    table = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table = tables.setdefault(line[1:].strip(), Table(line[1:].strip()))
        elif table is None:
            raise ValueError("iptables-save output has a rule outside any table: %r" % line)
        elif line == "COMMIT":
            table = None
        elif line.startswith(":"):
            parts = line[1:].split()
            table.chains[parts[0]] = parts[1] if len(parts) > 1 else "-"
        elif line.startswith("[") and "] -A " in line:  # iptables-save -c
            chain, _sep, rest = line.split("] -A ", 1)[1].partition(" ")
            table.rules.append(Rule(chain, rest))
        elif line.startswith("-A "):
            chain, _sep, rest = line[3:].partition(" ")
            table.rules.append(Rule(chain, rest))
        else:
            raise ValueError("unexpected line in iptables-save output: %r" % line)
    return tables


# --- what a caller owns --------------------------------------------------------------------------------------

class ChainSpec(object):
    """A chain owned by the caller, and what must (not) be in it.

    table, chain: where the owned rules live; chain is created when it gets its first rule and removed, with the
        jump to it, when its last rule goes.
    parent, position: the built-in chain that jumps to it; 'first' keeps the jump ahead of every rule that this
        collection did not make (so a DROP policy or a reject-all rule at the end cannot shadow it), 'last'
        appends it once and leaves it where it is.
    wanted: rules (token tuples, iptables-save form) that must be in the chain; a rule that differs only in its
        comment is replaced.
    unwanted: rules whose comment-less form must not be in the chain.
    purge: remove every rule in the chain that is not wanted.
    jump_comment: the comment of the jump rule.
    """

    def __init__(self, table, chain, parent, position="first", wanted=(), unwanted=(), purge=False, jump_comment=COLLECTION_TAG):
        if position not in ("first", "last"):
            raise ValueError("position must be 'first' or 'last'")
        self.table = table
        self.chain = chain
        self.parent = parent
        self.position = position
        self.wanted = [tuple(rule) for rule in wanted]
        self.unwanted = [tuple(rule) for rule in unwanted]
        self.purge = purge
        self.jump = ("-m", "comment", "--comment", jump_comment, "-j", chain)


class TableChange(object):
    def __init__(self, name):
        self.name = name
        self.lines = []
        self.adds = False

    @property
    def empty(self):
        return not self.lines


class Plan(object):
    """Everything one run changes: restore lines per table, and the owned rules before and after."""

    def __init__(self):
        self.tables = []
        self.added = []
        self.removed = []
        self.before = []
        self.after = []
        self.replay = []  # (table, chain, parent, position, jump tokens, rules) of every owned chain that stays
        self.tracker = DifferenceTracker()

    @property
    def changed(self):
        return any(not change.empty for change in self.tables)

    def restore_payload(self):
        """One iptables-restore --noflush input. Tables that only lose rules go first, tables that gain rules
        last: restore commits table by table, so should a later table fail, what was already committed removes
        permissions before it grants them (e.g. MASQUERADE before its FORWARD accept, not the other way)."""
        changes = [change for change in self.tables if not change.empty]
        changes.sort(key=lambda change: change.adds)
        out = []
        for change in changes:
            out.append("*%s" % change.name)
            out.extend(change.lines)
            out.append("COMMIT")
        return "\n".join(out) + "\n" if out else ""

    def replay_lines(self, prog="iptables"):
        """Shell lines that rebuild the owned chains, and the jumps to them, on a machine that has just booted.

        Running them again changes nothing: a chain that exists is flushed and filled again, and a jump is added
        only where it is missing. Run them after the machine's own firewall is loaded (a 'first' jump goes on top).
        """
        lines = []
        for table, chain, parent, position, jump, rules in self.replay:
            ipt = "%s -w -t %s" % (prog, table)
            lines.append("%s -N %s 2>/dev/null || %s -F %s" % (ipt, chain, ipt, chain))
            lines.extend("%s -A %s %s" % (ipt, chain, _shell_words(tokens)) for tokens in rules)
            where = "-I %s 1" % parent if position == "first" else "-A %s" % parent
            lines.append("%s -C %s %s 2>/dev/null || %s %s %s" % (ipt, parent, _shell_words(jump), ipt, where, _shell_words(jump)))
        return lines

    def boot_chains(self):
        """The owned chains that stay (as they are after the run), as data for the router's apply program
        (roles/gre_router/files/overlay-gre-apply), which rebuilds them after a boot or a firewall reload as
        replay_lines does: each chain made or flushed and filled, each jump added where it is missing, in this order."""
        return [{"table": table, "chain": chain, "parent": parent, "position": position, "jump": list(jump),
                 "rules": [list(tokens) for tokens in rules]}
                for table, chain, parent, position, jump, rules in self.replay]

    def check_lines(self, prog="iptables"):
        """Shell commands that all succeed only while the owned rules are in place: each jump to an owned chain, and
        each owned chain's first rule. A firewall reload that flushed the tables (``flush ruleset`` in
        /etc/nftables.conf, ``iptables-restore`` of saved tables, ``firewall-cmd --reload``) makes one fail; the role's
        firewall guard then runs the replay again."""
        lines = []
        for table, chain, parent, _position, jump, rules in self.replay:
            ipt = "%s -w -t %s" % (prog, table)
            lines.append("%s -C %s %s" % (ipt, parent, _shell_words(jump)))
            if rules:
                lines.append("%s -C %s %s" % (ipt, chain, _shell_words(rules[0])))
        return lines

    def diff(self):
        return {
            "before": _save_text(self.before),
            "after": _save_text(self.after),
            "before_header": "owned rules (iptables-save), before",
            "after_header": "owned rules (iptables-save), after",
        }


def _shell_words(tokens):
    return " ".join(shlex.quote(token) for token in tokens)


def _save_text(sections):
    out = []
    for table, chains, rules in sections:
        if not rules and not chains:
            continue
        out.append("*%s" % table)
        out.extend(":%s - [0:0]" % chain for chain in chains)
        out.extend("-A %s %s" % (chain, join_rule(tokens)) for chain, tokens in rules)
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def rule_line(table, chain, tokens):
    """A rule as an iptables command line fragment: '-t nat -A CHAIN ...' (what results report)."""
    return "-t %s -A %s %s" % (table, chain, join_rule(tokens))


def plan(tables, specs):
    """Compare the owned chains of SPECS with TABLES (from parse_save) and return the Plan that reconciles them."""
    result = Plan()
    by_table = {}
    for spec in specs:
        if spec.table not in by_table:
            by_table[spec.table] = TableChange(spec.table)
            result.tables.append(by_table[spec.table])
        _plan_chain(tables.get(spec.table) or Table(spec.table), spec, by_table[spec.table], result)
    return result


def _plan_chain(table, spec, change, result):
    exists = spec.chain in table.chains
    current = [rule.tokens for rule in table.rules_in(spec.chain)] if exists else []
    jumps = [rule for rule in table.rules_in(spec.parent) if jump_target(rule.tokens) == spec.chain]

    wanted_by_key = {}
    for tokens in spec.wanted:
        wanted_by_key.setdefault(without_comment(tokens), tokens)
    unwanted_keys = set(without_comment(tokens) for tokens in spec.unwanted) - set(wanted_by_key)

    final = []
    deleted = []
    kept_keys = set()
    for tokens in current:
        key = without_comment(tokens)
        if key in wanted_by_key:
            if key in kept_keys or tokens != wanted_by_key[key]:
                deleted.append(tokens)
            else:
                kept_keys.add(key)
                final.append(tokens)
        elif spec.purge or key in unwanted_keys:
            deleted.append(tokens)
        else:
            final.append(tokens)
    appended = [tokens for key, tokens in wanted_by_key.items() if key not in kept_keys]
    final.extend(appended)

    lines = []
    jump_deleted = []
    jump_added = None
    if final:
        if not exists:
            lines.append(":%s - [0:0]" % spec.chain)
        if exists:
            lines.extend("-D %s %s" % (spec.chain, join_rule(tokens)) for tokens in deleted)
        lines.extend("-A %s %s" % (spec.chain, join_rule(tokens)) for tokens in appended)
        keep_jump = _jump_to_keep(table, spec, jumps)
        for rule in jumps:
            if rule is not keep_jump:
                jump_deleted.append(rule)
                lines.append("-D %s %s" % (spec.parent, rule.text))
        if keep_jump is None:
            jump_added = spec.jump
            if spec.position == "first":
                lines.append("-I %s 1 %s" % (spec.parent, join_rule(spec.jump)))
            else:
                lines.append("-A %s %s" % (spec.parent, join_rule(spec.jump)))
    elif exists:
        for rule in jumps:
            jump_deleted.append(rule)
            lines.append("-D %s %s" % (spec.parent, rule.text))
        lines.append("-F %s" % spec.chain)
        lines.append("-X %s" % spec.chain)
        deleted = current

    change.lines.extend(lines)
    change.adds = change.adds or bool(appended) or jump_added is not None

    before_rules = [(spec.parent, rule.tokens) for rule in jumps] + [(spec.chain, tokens) for tokens in current]
    after_jumps = [(spec.parent, rule.tokens) for rule in jumps if rule not in jump_deleted]
    if jump_added is not None:
        after_jumps.insert(0, (spec.parent, jump_added))
    after_rules = (after_jumps + [(spec.chain, tokens) for tokens in final]) if final else []
    if final:
        kept_jump = after_jumps[0][1] if after_jumps else spec.jump
        result.replay.append((table.name, spec.chain, spec.parent, spec.position, kept_jump, final))
    result.before.append((table.name, [spec.chain] if exists else [], before_rules))
    result.after.append((table.name, [spec.chain] if final else [], after_rules))

    result.removed.extend(rule_line(table.name, spec.parent, rule.tokens) for rule in jump_deleted)
    result.removed.extend(rule_line(table.name, spec.chain, tokens) for tokens in deleted)
    if jump_added is not None:
        result.added.append(rule_line(table.name, spec.parent, jump_added))
    result.added.extend(rule_line(table.name, spec.chain, tokens) for tokens in appended)
    if before_rules != after_rules:
        result.tracker.add("%s %s" % (table.name, spec.chain),
                           active=["-A %s %s" % (chain, join_rule(tokens)) for chain, tokens in before_rules],
                           wanted=["-A %s %s" % (chain, join_rule(tokens)) for chain, tokens in after_rules])


def _jump_to_keep(table, spec, jumps):
    """The existing jump to keep (None to insert one): the first, if it is where the spec wants it."""
    if not jumps:
        return None
    first = jumps[0]
    if spec.position == "last":
        return first
    for rule in table.rules_in(spec.parent):
        if rule is first:
            return first
        if not is_collection_rule(rule.tokens):
            return None  # a foreign rule comes first: move the jump to the top
    return first


# --- running iptables ----------------------------------------------------------------------------------------

class IptablesError(Exception):
    pass


_UNSUPPORTED = ("Operation not supported", "Protocol not supported", "TABLE_ADD failed", "Address family not supported",
                "Could not fetch rule set generation id", "Table does not exist", "can't initialize iptables table")


def run(cmd, data=None):
    """Run CMD (no shell) with DATA on stdin; (rc, stdout, stderr).

    Not AnsibleModule.run_command: its preexec_fn makes Python fork the whole module process (about 6 ms each
    here) where subprocess otherwise uses vfork; with two programs a run, that was most of the module's time.
    """
    env = dict(os.environ, LC_ALL="C")
    try:
        # the router's lock goes with the program (see _lock.held_fds)
        proc = subprocess.run(cmd, input=data, capture_output=True, text=True, env=env, check=False, pass_fds=held_fds())
    except OSError as exc:
        return 127, "", "cannot run %s: %s" % (cmd[0], exc)
    return proc.returncode, proc.stdout, proc.stderr


def which(name):
    """The program's path, looking in the sbin folders too (a non-login PATH may miss them), or None."""
    path = os.environ.get("PATH", os.defpath)
    return shutil.which(name, path=os.pathsep.join([path, "/usr/sbin", "/sbin", "/usr/local/sbin"]))


class Iptables(object):
    """The iptables-save/iptables-restore pair of one backend on the target."""

    def __init__(self, module=None, backend="auto", wait=10, family="ipv4", runner=run, find=None):
        """MODULE (an AnsibleModule, optional) finds the programs with get_bin_path; FIND and RUNNER replace the
        program lookup and runner (tests)."""
        if find is None:
            find = which if module is None else (lambda name: module.get_bin_path(name, opt_dirs=["/usr/sbin", "/sbin", "/usr/local/sbin"]))
        self.run = runner
        self.find = find
        self.wait = wait
        self.prog = "iptables" if family == "ipv4" else "ip6tables"
        self.backend, self.save_cmd, self.restore_cmd = self._resolve(backend)

    def _bin(self, name):
        return self.find(name)

    @property
    def command_name(self):
        """The iptables command of the backend in use (``iptables-nft``, ``iptables-legacy``), for boot scripts."""
        return os.path.basename(self.restore_cmd)[:-len("-restore")]

    def _resolve(self, backend):
        if backend == "auto":
            main = self._bin(self.prog)
            plain_save, plain_restore = self._bin(self.prog + "-save"), self._bin(self.prog + "-restore")
            if not main and not (plain_save and plain_restore):
                raise IptablesError("%s is not installed on the target: no %s, %s-save or %s-restore in PATH "
                                    "(install the iptables package)" % (self.prog, self.prog, self.prog, self.prog))
            detected = self._backend_of(main or plain_save)
            save, restore = self._bin("%s-%s-save" % (self.prog, detected)), self._bin("%s-%s-restore" % (self.prog, detected))
            if save and restore:
                return detected, save, restore
            if plain_save and plain_restore:
                return detected, plain_save, plain_restore
            raise IptablesError("%s-save and %s-restore are not installed on the target (install the iptables package)"
                                % (self.prog, self.prog))
        save, restore = self._bin("%s-%s-save" % (self.prog, backend)), self._bin("%s-%s-restore" % (self.prog, backend))
        if save and restore:
            return backend, save, restore
        plain_save, plain_restore = self._bin(self.prog + "-save"), self._bin(self.prog + "-restore")
        if plain_save and plain_restore and self._backend_of(plain_save) == backend:  # iptables before 1.8
            return backend, plain_save, plain_restore
        if not (plain_save or self._bin(self.prog)):
            raise IptablesError("%s is not installed on the target (install the iptables package)" % self.prog)
        raise IptablesError("the %s backend of %s is not installed on the target: no %s-%s-save / %s-%s-restore in PATH"
                            % (backend, self.prog, self.prog, backend, self.prog, backend))

    def _backend_of(self, path):
        real = os.path.basename(os.path.realpath(path))
        if "nft" in real:
            return "nft"
        if "legacy" in real or real == "xtables-multi":
            return "legacy"
        rc, out, err = self.run([path, "--version"])
        return "nft" if "nf_tables" in (out + err) else "legacy"

    def save(self):
        """Read every table once; returns {table: Table}."""
        rc, out, err = self.run([self.save_cmd])
        if rc != 0:
            raise IptablesError(self._explain("%s failed (exit %d): %s" % (os.path.basename(self.save_cmd), rc, (err or out).strip()),
                                              err or out))
        try:
            return parse_save(out)
        except ValueError as exc:
            raise IptablesError("cannot read the output of %s: %s" % (self.save_cmd, exc))

    def restore(self, payload):
        """Apply PAYLOAD with one iptables-restore --noflush; nothing changes when it fails (per table)."""
        cmd = [self.restore_cmd, "--noflush", "-w", str(self.wait)]
        rc, out, err = self.run(cmd, data=payload)
        if rc == 0:
            return
        text = (err or out).strip()
        if "xtables lock" in text or "Can't lock" in text:
            raise IptablesError("could not get the xtables lock within %d seconds (another iptables program holds it; "
                                "raise 'wait' to wait longer); nothing was changed: %s" % (self.wait, text))
        message = "%s --noflush failed (exit %d): %s" % (os.path.basename(self.restore_cmd), rc, text)
        if payload.count("\nCOMMIT\n") > 1:
            message += (" (iptables-restore commits table by table: a table before the failing line may be applied; "
                        "run again to complete)")
        raise IptablesError(self._explain(message, text))

    def _explain(self, message, output):
        """Name the backend that works when this one cannot run on the kernel."""
        if not any(marker in output for marker in _UNSUPPORTED):
            return message
        other = "legacy" if self.backend == "nft" else "nft"
        other_save = self._bin("%s-%s-save" % (self.prog, other))
        if not other_save:
            return message
        # Probes that change nothing: running iptables-legacy-save would instantiate its tables in the namespace,
        # and iptables-nft-save succeeds even where the kernel cannot load a single nft rule.
        names = "/proc/net/ip_tables_names" if self.prog == "iptables" else "/proc/net/ip6_tables_names"
        works = other == "legacy" and os.path.exists(names)
        if works:
            return ("the %s backend of %s cannot run on this kernel; the %s backend works: set backend=%s. (%s)"
                    % (self.backend, self.prog, other, other, message))
        return "the %s backend of %s cannot run on this kernel; try backend=%s. (%s)" % (self.backend, self.prog, other, message)
