# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action overlay.gre.service_files: files and systemd units through at most two shell runs, no Python on the target.

Each run's script, the files' contents included, reaches the target on stdin, never in a command line."""

from __future__ import annotations

import shlex

from ansible.plugins.action import ActionBase

from ansible_collections.overlay.gre.plugins.module_utils._service_files import (
    ARGUMENT_SPEC, ServiceFilesError, diff, done_lines, is_changed, parse_read, plan, read_script, step_labels, summary, validate,
    write_script)


# the command the target runs: its /bin/sh reads the whole script from stdin, then runs it with stdin closed
# (eval as a command of its own, not in an && list, where the script's `set -e` would not apply)
READ_THEN_RUN = "/bin/sh -c %s" % shlex.quote('script=$(cat) || exit 1; exec < /dev/null; eval "$script"')


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        validation, params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        del validation
        try:
            files, units, prune = validate(params)
            read = self._shell_run(read_script(files, units))
            if read["rc"] != 0:
                raise ServiceFilesError("could not read the files on the target (rc %d): %s"
                                        % (read["rc"], (read["stderr"] or read["stdout"]).strip()))
            live = parse_read(read["stdout"], files, units)
            steps = plan(files, units, prune, live)
        except ServiceFilesError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result.update(changed=is_changed(steps), systemd=live["systemd"], **summary(steps))
        if self._task.diff and result["changed"]:
            result["diff"] = diff(files, live, steps)
        if not result["changed"] or self._task.check_mode:
            return result
        run = self._shell_run(write_script(steps, params["lock_timeout"]))
        result["done"] = done_lines(run["stdout"], steps)
        if run["rc"] != 0:
            # a file already written is not written again by the next run, so say what is still to do by hand
            pending = [label for label in step_labels(steps) if label not in result["done"]]
            result.update(failed=True, msg="stopped after %d of the changes (%s): %s. Not done: %s. Mend the cause, then run again; "
                          "a reload or restart listed as not done is not retried for files already written (run it by hand)"
                          % (len(result["done"]), ", ".join(result["done"]) or "none done", (run["stderr"] or run["stdout"]).strip(),
                             ", ".join(pending) or "nothing"))
        return result

    def _shell_run(self, script):
        """Run SCRIPT with the target's /bin/sh; the script travels on the connection's stdin, never in a command line
        (one argument over 128 KiB is refused by Linux with E2BIG, and a command line shows in ps and sudo's log).
        The shell reads all of it before it runs any of it, so no command of the script can read the rest."""
        connection = self._connection
        if not connection.has_pipelining or (connection.become and not connection.become.pipelining):
            raise ServiceFilesError("the connection %s%s cannot pass data to a command's stdin, which this action needs "
                                    "(ssh, local and most connections can): use one of those"
                                    % (connection.transport, " with become method %s" % connection.become.name
                                       if connection.become else ""))
        return self._low_level_execute_command(READ_THEN_RUN, in_data=script.encode("utf-8"))
