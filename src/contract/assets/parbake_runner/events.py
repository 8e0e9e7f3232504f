"""Task events: the lines of the parbake_events Ansible callback (its shared part: the callback
file, parbake_events.py, is Ansible's glue around it), and the runner's reading of them:
per-role results and a running tail. One JSON object per line, secrets redacted."""

import json
import time

from .secret import redact

RESULTS = ("ok", "changed", "skipped", "failed", "ignored")


def read_events(events_path):
    """The parbake_events lines of a run (none if the file is not there)."""
    try:
        with open(events_path) as f:
            return [json.loads(ln) for ln in f if ln.strip()]
    except OSError:
        return []


def task_results(events):
    """(task start, its result) for each task that reported one, in order."""
    started = None
    for ev in events:
        kind = ev.get("event")
        if kind == "task":
            started = ev
        elif kind in RESULTS:
            yield started, ev
            started = None


def owner(ev, names):
    """The planned role an event counts toward: the innermost of its roles that the plan runs
    (a task of an included role or a meta dependency counts toward the role that brought it
    in), else None."""
    for name in ev.get("chain") or [ev.get("role")]:
        if name in names:
            return name
    return None


def failed_where(started, ev):
    """` (role/tasks/x.yml:LINE)` for a failed task whose start said where, else empty."""
    at = (started or {}).get("at")
    if not at:
        return ""
    return " (%s/%s)" % (ev.get("role"), at) if ev.get("role") else " (%s)" % at


def role_results(events, names):
    """Per-role status and summed task durations from parbake_events lines; `last_at` is
    where the role's last task started (`tasks/x.yml:LINE`) and `started` how many did."""
    res = {
        n: {
            "tasks": 0,
            "duration_s": 0.0,
            "failed": None,
            "failed_task": None,
            "started": 0,
            "last_at": None,
        }
        for n in names
    }
    for ev in events:
        if ev.get("event") == "task" and owner(ev, names) is not None:
            r = res[owner(ev, names)]
            r["started"] += 1
            r["last_at"] = ev.get("at") or r["last_at"]
    for started, ev in task_results(events):
        r = res.get(owner(ev, names))
        if r is None:
            continue
        r["tasks"] += 1
        if started is not None:
            r["duration_s"] = round(r["duration_s"] + ev["t"] - started["t"], 3)
        if ev.get("event") == "failed" and r["failed"] is None:
            where = failed_where(started, ev)
            r["failed"] = "%s%s: %s" % (ev.get("task"), where, ev.get("msg", ""))
            r["failed_task"] = ev.get("task")
    return res


class EventTail:
    """The events file read as it grows: the role of each task started."""

    def __init__(self, path):
        self.path, self.offset, self.partial = path, 0, b""

    def new_events(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out


WITHHELD = "<withheld: parbake could not read the secrets to redact>"
# fields that name structure (event kinds, role names from the image), never free text
STRUCTURAL = ("event", "role", "t")


def load_secrets(path):
    """{name: value} from the runner's secrets file; None when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            secrets = json.load(f)
    except (OSError, ValueError):
        return None
    return secrets if isinstance(secrets, dict) else None


# a bake's output line, or a console line, that carries an event (parbake's contract::events)
PREFIX = "PARBAKE-EVENT "
# a failure's message is cut to this many characters, after redaction
MAX_MSG = 800


def clean(key, value, secrets):
    """A field's value with the secrets redacted (withheld when `secrets` is None: they could
    not be read)."""
    if key in STRUCTURAL or not isinstance(value, str):
        return value
    if secrets is None:
        return WITHHELD
    return redact(value, secrets)


def record(event, secrets, t=None):
    """An event's fields redacted, stamped with its time (now, unless `t`)."""
    out = {k: clean(k, v, secrets) for k, v in event.items()}
    out["t"] = round(time.time(), 3) if t is None else t
    return out


def line(rec):
    """An event's line in the events file (and, after PREFIX, on a bake's output)."""
    return json.dumps(rec, sort_keys=True)


def console_line(rec):
    """An event's copy on the console: PREFIX and the event less a failure's message (no role
    output reaches the console)."""
    return PREFIX + json.dumps({k: v for k, v in rec.items() if k != "msg"}, sort_keys=True)


def short_msg(msg, secrets):
    """A failure's message: the first MAX_MSG characters, cut after redaction so no secret is
    cut in two."""
    return clean("msg", msg, secrets)[:MAX_MSG]
