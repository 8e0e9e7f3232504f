# parbake_events: an Ansible callback that records one JSON line per task event, so parbake
# can report per-role status and durations without scraping Ansible's human output.
# Installed on every parbake image at /opt/parbake/lib/callback_plugins/.
from __future__ import annotations

DOCUMENTATION = """
    name: parbake_events
    type: aggregate
    short_description: per-role task events for parbake
    description:
      - Appends one JSON object per line to the file named by $PARBAKE_EVENTS.
      - With PARBAKE_EVENTS_STDOUT=1 it also prints each as a line starting with PARBAKE-EVENT.
      - With PARBAKE_EVENTS_MIRROR=PATH it also appends each such line to PATH (e.g. /dev/console).
    requirements:
      - enable it in callbacks_enabled
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "parbake_events"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        path = os.environ.get("PARBAKE_EVENTS")
        self._fh = open(path, "a", buffering=1) if path else None
        self._stdout = os.environ.get("PARBAKE_EVENTS_STDOUT") == "1"
        # a second copy of each line, e.g. /dev/console, so a host can follow a launch
        mirror = os.environ.get("PARBAKE_EVENTS_MIRROR")
        try:
            self._mirror = open(mirror, "a", buffering=1) if mirror else None
        except OSError:
            self._mirror = None

    def _emit(self, **event):
        event["t"] = round(time.time(), 3)
        line = json.dumps(event, sort_keys=True)
        if self._fh:
            self._fh.write(line + "\n")
        if self._stdout:
            self._display.display("PARBAKE-EVENT " + line)
        if self._mirror:
            try:
                self._mirror.write("PARBAKE-EVENT " + line + "\n")
            except OSError:
                pass

    @staticmethod
    def _role(task):
        role = getattr(task, "_role", None)
        return role.get_name(include_role_fqcn=False) if role else None

    def v2_playbook_on_play_start(self, play):
        self._emit(event="play", name=play.get_name())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._emit(event="task", role=self._role(task), task=task.get_name())

    def v2_playbook_on_handler_task_start(self, task):
        self._emit(event="task", role=self._role(task), task=task.get_name(), handler=True)

    def _result(self, kind, result, **extra):
        self._emit(event=kind, role=self._role(result._task), task=result._task.get_name(), **extra)

    def v2_runner_on_ok(self, result):
        self._result("changed" if result._result.get("changed") else "ok", result)

    def v2_runner_on_skipped(self, result):
        self._result("skipped", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        msg = str(result._result.get("msg") or result._result.get("stderr") or "")[:800]
        self._result("ignored" if ignore_errors else "failed", result, msg=msg)

    def v2_runner_on_unreachable(self, result):
        self._result("failed", result, msg=str(result._result.get("msg", ""))[:800])

    def v2_playbook_on_stats(self, stats):
        self._emit(event="end", failures=sum(stats.failures.values()) + sum(stats.dark.values()))
