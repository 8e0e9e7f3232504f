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
      - With PARBAKE_SECRETS=PATH (a JSON object, name to value) it shows each of those values
        as <secret NAME> in every line, and its quoted forms too. If PATH cannot be read, task
        names and messages are withheld.
    requirements:
      - enable it in callbacks_enabled
"""

import json
import os
import shlex
import time

from ansible.plugins.callback import CallbackBase


WITHHELD = "<withheld: parbake could not read the secrets to redact>"
# fields that name structure (event kinds, role names from the image), never free text
STRUCTURAL = ("event", "role", "t")


def secret_forms(secrets):
    """{form: name}: each way a secret value can be shown: the value, the value shell-quoted
    and, for a multi-line one, each line (as is and stripped); each of those as is,
    JSON-escaped (ASCII or not) and in a Python repr (ascii() too)."""
    forms = {}
    for name, value in sorted(secrets.items()):
        if not isinstance(value, str) or not value:
            continue
        bases = [value, shlex.quote(value)]
        lines = value.splitlines()
        if len(lines) > 1:
            bases += lines + [line.strip() for line in lines]
        for base in bases:
            if not base.strip():
                continue
            for form in (base, json.dumps(base)[1:-1], json.dumps(base, ensure_ascii=False)[1:-1],
                         repr(base)[1:-1], ascii(base)[1:-1]):
                forms.setdefault(form, name)
    return forms


def redact(text, secrets):
    """text with every shown form of each secret replaced by <secret NAME>. Overlapping
    matches (of one secret or several) are hidden together, so no part of either remains.
    The same function as in parbake-roles; tests/fixtures/check_redact.py keeps them so."""
    if not isinstance(text, str) or not secrets:
        return text
    spans = []
    for form, name in secret_forms(secrets).items():
        i = text.find(form)
        while i != -1:
            spans.append((i, i + len(form), name))
            i = text.find(form, i + 1)
    if not spans:
        return text
    spans.sort()
    out, pos, cur = [], 0, None
    for start, end, name in spans + [(len(text) + 1, 0, None)]:
        if cur is not None and start < cur[1]:
            cur[1] = max(cur[1], end)
            if name not in cur[2]:
                cur[2].append(name)
            continue
        if cur is not None:
            out.append(text[pos:cur[0]])
            out.append("".join("<secret %s>" % n for n in cur[2]))
            pos = cur[1]
        cur = [start, end, [name]]
    out.append(text[pos:])
    return "".join(out)


def load_secrets(path):
    """{name: value} from the runner's secrets file; None when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            secrets = json.load(f)
    except (OSError, ValueError):
        return None
    return secrets if isinstance(secrets, dict) else None


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
        secrets = os.environ.get("PARBAKE_SECRETS")
        self._secrets = load_secrets(secrets) if secrets else {}

    def _clean(self, key, value):
        """A field's value with the secrets redacted (withheld if they could not be read)."""
        if key in STRUCTURAL or not isinstance(value, str):
            return value
        if self._secrets is None:
            return WITHHELD
        return redact(value, self._secrets)

    def _emit(self, **event):
        event = {k: self._clean(k, v) for k, v in event.items()}
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
        msg = str(result._result.get("msg") or result._result.get("stderr") or "")
        self._result("ignored" if ignore_errors else "failed", result, msg=self._short(msg))

    def v2_runner_on_unreachable(self, result):
        self._result("failed", result, msg=self._short(str(result._result.get("msg", ""))))

    def _short(self, msg):
        """The first 800 characters, cut after redaction so no secret is cut in two."""
        return self._clean("msg", msg)[:800]

    def v2_playbook_on_stats(self, stats):
        self._emit(event="end", failures=sum(stats.failures.values()) + sum(stats.dark.values()))
