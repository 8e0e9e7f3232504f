# parbake_events: an Ansible callback that records one JSON line per task event, so parbake
# can report per-role status and durations without scraping Ansible's human output.
# Installed on every parbake image at /opt/parbake/lib/callback_plugins/; what it writes is
# parbake_runner.events (the runner's package, at /opt/parbake/lib/parbake_runner/), with the
# runner's one redact().
from __future__ import annotations

import os
import sys

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: parbake_events
    type: aggregate
    short_description: per-role task events for parbake
    description:
      - Appends one JSON object per line to the file named by $PARBAKE_EVENTS.
      - With PARBAKE_EVENTS_STDOUT=1 it also prints each as a line starting with PARBAKE-EVENT.
      - With PARBAKE_EVENTS_MIRROR=PATH it also appends each such line to PATH (e.g. /dev/console),
        less a failure's message (no role output reaches the console).
      - With PARBAKE_SECRETS=PATH (a JSON object, name to value) it shows each of those values
        as <secret NAME> in every line, and its escaped, quoted and encoded forms too (a line
        holding a secret shorter than 8 characters is withheld whole). If PATH cannot be read,
        task names and messages are withheld.
    requirements:
      - enable it in callbacks_enabled
"""


def _package_parent():
    """The directory that holds the parbake_runner package: beside this file (the repository),
    in lib/ beside its directory (the bake's payload: runtime/ and lib/), or its parent (the
    image: lib/callback_plugins/ and lib/parbake_runner/)."""
    here = os.path.dirname(os.path.realpath(__file__))
    up = os.path.dirname(here)
    for d in (here, os.path.join(up, "lib"), up):
        if os.path.isfile(os.path.join(d, "parbake_runner", "__init__.py")):
            return d
    raise ImportError("parbake_events: the parbake_runner package is not beside %s" % here)


if _package_parent() not in sys.path:
    sys.path.insert(0, _package_parent())
_write_bytecode = sys.dont_write_bytecode
sys.dont_write_bytecode = True  # the image's /opt/parbake stays as the bake installed it
try:
    from parbake_runner import events
finally:
    sys.dont_write_bytecode = _write_bytecode


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "parbake_events"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        path = os.environ.get("PARBAKE_EVENTS")
        self._fh = open(path, "a", buffering=1) if path else None  # noqa: SIM115
        self._stdout = os.environ.get("PARBAKE_EVENTS_STDOUT") == "1"
        # a second copy of each line, e.g. /dev/console, so a host can follow a launch
        mirror = os.environ.get("PARBAKE_EVENTS_MIRROR")
        try:
            self._mirror = open(mirror, "a", buffering=1) if mirror else None  # noqa: SIM115
        except OSError:
            self._mirror = None
        secrets = os.environ.get("PARBAKE_SECRETS")
        self._secrets = events.load_secrets(secrets) if secrets else {}

    def _emit(self, **event):
        rec = events.record(event, self._secrets)
        line = events.line(rec)
        if self._fh:
            self._fh.write(line + "\n")
        if self._stdout:
            self._display.display(events.PREFIX + line)
        if self._mirror:
            # the console copy carries no role output: a failure's message stays in the file
            try:
                self._mirror.write(events.console_line(rec) + "\n")
            except OSError:
                pass

    @staticmethod
    def _role(task):
        role = getattr(task, "_role", None)
        # a collection's role by its FQCN (`ns.collection.role`), as the plan names it; any
        # other role by its directory's name (`web`, `ns.name`)
        return role.get_name(include_role_fqcn=True) if role else None

    @staticmethod
    def _chain(task):
        """The roles a task runs in, innermost first: its own, then the roles that include or
        import it and those whose meta dependencies brought it in (events.owner picks the
        first one the plan runs)."""
        names = []

        def add(role):
            name = role.get_name(include_role_fqcn=True)
            if name not in names:
                names.append(name)

        node = task
        for _ in range(200):
            if node is None:
                break
            if getattr(node, "_role", None) is not None:
                add(node._role)
            for role in reversed(getattr(node, "_dep_chain", None) or []):
                add(role)
            node = getattr(node, "_parent", None)
        return names

    @staticmethod
    def _where(task):
        """`tasks/file.yml:LINE` inside its role (or the path Ansible gives), for a failure."""
        path = task.get_path() or ""
        for part in ("/tasks/", "/handlers/"):
            if part in path:
                return part.lstrip("/") + path.rsplit(part, 1)[1]
        return path

    def _task_event(self, task, **extra):
        chain = self._chain(task)
        if len(chain) > 1:
            extra["chain"] = chain
        self._emit(
            event="task", role=self._role(task), task=task.get_name(), at=self._where(task), **extra
        )

    def v2_playbook_on_play_start(self, play):
        self._emit(event="play", name=play.get_name())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_event(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task_event(task, handler=True)

    def _result(self, kind, result, **extra):
        chain = self._chain(result._task)
        if len(chain) > 1:
            extra["chain"] = chain
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
        return events.short_msg(msg, self._secrets)

    def v2_playbook_on_stats(self, stats):
        self._emit(event="end", failures=sum(stats.failures.values()) + sum(stats.dark.values()))
