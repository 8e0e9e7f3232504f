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
      - With PARBAKE_EVENTS_MIRROR=PATH it also appends each such line to PATH (e.g. /dev/console),
        less a failure's message (no role output reaches the console).
      - With PARBAKE_SECRETS=PATH (a JSON object, name to value) it shows each of those values
        as <secret NAME> in every line, and its escaped, quoted and encoded forms too (a line
        holding a secret shorter than 8 characters is withheld whole). If PATH cannot be read,
        task names and messages are withheld.
    requirements:
      - enable it in callbacks_enabled
"""

import base64
import json
import os
import re
import shlex
import time
import urllib.parse

from ansible.plugins.callback import CallbackBase


WITHHELD = "<withheld: parbake could not read the secrets to redact>"
# fields that name structure (event kinds, role names from the image), never free text
STRUCTURAL = ("event", "role", "t")


# --- redaction: begin (the same text in parbake-roles and parbake_events.py;
# tests/fixtures/check_redact.py keeps the two copies identical)
# A secret shorter than SHORT_SECRET characters is never shown in place: a text that holds any
# form of it is withheld whole, since a marker where it stood would show where, and so what,
# the short value is. A line of a multi-line secret that short is not looked for on its own.
SHORT_SECRET = 8
SHORT_WITHHELD = "<withheld: it holds a short secret>"
# a marker already in a text (from an earlier redaction) is kept as it is, never redacted
# again, so redacting twice changes nothing
SECRET_MARKER = re.compile(r"<secret ([A-Za-z0-9_.-]{1,128})>")
# nested escapings looked for: JSON escaping alone up to JSON_LEVELS deep; any mixture of the
# escapings up to MIXED_LEVELS deep, then JSON-escaped up to MIXED_LEVELS more times; at most
# MAX_FORMS forms per secret
JSON_LEVELS = 8
MIXED_LEVELS = 3
MAX_FORMS = 8192


def _json_escapes(s):
    return (json.dumps(s)[1:-1], json.dumps(s, ensure_ascii=False)[1:-1])


def _escapes(s):
    """s as it shows after one more escaping: JSON (ASCII or not), a Python repr and ascii()
    (each with its own choice of quotes, and inside single quotes when the text around it has
    both kinds), inside shell single quotes and inside shell double quotes."""
    return _json_escapes(s) + (repr(s)[1:-1], ascii(s)[1:-1], repr(s + '"')[1:-2],
                               ascii(s + '"')[1:-2], s.replace("'", "'\"'\"'"),
                               re.sub(r'([\\"$`])', r"\\\1", s))


def _nested(bases, step, levels, forms):
    """forms, plus what `step` makes of bases, then of those, up to `levels` deep (a fixed
    point ends it earlier), bounded by MAX_FORMS."""
    level, seen = list(bases), set(bases)
    for _ in range(levels):
        nxt = []
        for f in level:
            for e in step(f):
                if e not in seen and len(forms) < MAX_FORMS:
                    seen.add(e)
                    forms.add(e)
                    nxt.append(e)
        if not nxt:
            break
        level = nxt
    return forms


def _base64_forms(value):
    """The characters of value's base64 (standard and URL-safe) that depend on its bytes only,
    at each of the three alignments it can have inside a longer base64 text."""
    data = value.encode("utf-8")
    forms = set()
    for k in range(3):
        end = (k + len(data)) * 8 // 6
        start = -(-k * 8 // 6)
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            part = enc(b"\0" * k + data).decode()[start:end]
            if len(part) >= SHORT_SECRET:
                forms.add(part)
    return forms


def _value_forms(value):
    """Every form of one secret value that redaction looks for."""
    bases = {value, shlex.quote(value)}
    lines = value.splitlines()
    if len(lines) > 1:
        bases |= {l for line in lines for l in (line, line.strip()) if len(l.strip()) >= SHORT_SECRET}
    forms = set(bases)
    _nested(bases, _json_escapes, JSON_LEVELS, forms)
    mixed = _nested(bases, _escapes, MIXED_LEVELS, set(bases))
    forms |= mixed
    _nested(mixed, _json_escapes, MIXED_LEVELS, forms)
    # URL-encoded: the value, its lines, and those after one escaping
    for base in {e for b in bases for e in _escapes(b)} | bases:
        for q in (urllib.parse.quote(base, safe=""), urllib.parse.quote(base),
                  urllib.parse.quote_plus(base)):
            forms.add(q)
    forms |= _base64_forms(value)
    return {f for f in forms if f.strip()}


_FORMS_CACHE = {}


def secret_forms(secrets):
    """{form: name}: each way a secret value can be shown: the value, its lines (a multi-line
    one), shell-quoted, under nested JSON, repr and shell escapings and mixtures of them,
    URL-encoded and in base64."""
    key = tuple(sorted((n, v) for n, v in secrets.items() if isinstance(v, str)))
    if key not in _FORMS_CACHE:
        forms = {}
        for name, value in key:
            if value.strip():
                for form in sorted(_value_forms(value)):
                    forms.setdefault(form, name)
        _FORMS_CACHE.clear()
        _FORMS_CACHE[key] = forms
    return _FORMS_CACHE[key]


def redact(text, secrets):
    """text with every shown form of each secret replaced by <secret NAME>; a text holding a
    short secret (SHORT_SECRET) is withheld whole. Overlapping matches (of one secret or
    several, or of a marker already there) are hidden together, so no part of either remains;
    a marker already in the text stays as it is."""
    if not isinstance(text, str) or not secrets or text == SHORT_WITHHELD:
        return text
    spans = []
    short = {n for n, v in secrets.items() if isinstance(v, str) and len(v) < SHORT_SECRET}
    for form, name in secret_forms(secrets).items():
        i = text.find(form)
        if i != -1 and name in short:
            return SHORT_WITHHELD
        while i != -1:
            spans.append((i, i + len(form), name))
            i = text.find(form, i + 1)
    if not spans:
        return text
    spans += [(m.start(), m.end(), m.group(1)) for m in SECRET_MARKER.finditer(text)]
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
# --- redaction: end


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
            # the console copy carries no role output: a failure's message stays in the file
            shown = json.dumps({k: v for k, v in event.items() if k != "msg"}, sort_keys=True)
            try:
                self._mirror.write("PARBAKE-EVENT " + shown + "\n")
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
