"""The record of a launch: status.json (one writer), the console lines (parbake's own
sentences only), progress on stdout, launch.log, and where the boot's time went."""

import json
import os
import re
import time

from .base import LOGS, ROOT, STATE, STATUS_FORMAT, STATUS_PATH, write_json
from .events import task_results
from .secret import RESOLVED, redact

CONSOLE = os.environ.get("PARBAKE_CONSOLE", "/dev/console")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def console(line):
    """stdout, and the console (serial on a VM, EC2's console output): one line, whatever
    it holds (control characters and line breaks become spaces), so no text inside it can
    start a console line of its own."""
    line = CONTROL.sub(" ", line)
    print(line, flush=True)
    try:
        with open(CONSOLE, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def progress(line):
    """A progress line: stdout only (the journal under parbake-launch.service)."""
    print(line, flush=True)


def duration_text(seconds):
    """600 -> 10m, 5400 -> 1h30m, 90 -> 1m30s."""
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return "".join("%d%s" % (v, u) for v, u in ((h, "h"), (m, "m"), (s, "s")) if v) or "0s"


def write_status(status):
    """The one writer of status.json: each state of a launch and its result, or an early
    failure. (The user-data's bootstrap writes an early failure's document itself when the
    image has no runner; tests/parbake/contract.rs keeps the two alike.)"""
    os.makedirs(STATE, exist_ok=True)
    write_json(STATUS_PATH, status)


def public_status(status, error, role_errors):
    """status.json as the console shows it: a failed role's error is parbake's sentence
    (`failed at task "x"; its output is in /var/log/parbake/launch.log (root only)`), never the
    role's message, and so is the launch's error. The console (GetConsoleOutput) and the tags
    are readable by anyone with ec2:Describe*, and no redaction can be proven complete against
    every encoding a role may give its output."""
    shown = json.loads(json.dumps(status))
    shown["error"] = error
    for r in shown["roles"]:
        if r["name"] in role_errors:
            r["error"] = role_errors[r["name"]]
    return shown


def announce(status, summary, log=None):
    """The result on the console: the summary line, where the output of a failed launch is,
    then the whole status on one line, the boot result contract a host reads. No role output:
    each line is parbake's own."""
    console(summary)
    if log:
        console("parbake: %s" % log)
    console("parbake-status " + json.dumps(status, sort_keys=True, separators=(",", ":")))


def report_early_failure(error):
    """When there is no launch to report on (unreadable spec, crash): a failed status.json and
    the same console lines as a failed launch, with secrets redacted; the console lines even
    when status.json cannot be written."""
    error = redact(error, RESOLVED)
    status = {
        "format": STATUS_FORMAT,
        "phase": "launch",
        "state": "failed",
        "error": error,
        "roles": [],
    }
    try:
        write_status(status)
    finally:
        announce(
            status,
            "parbake: launch failed error=%s" % json.dumps(error),
            "see %s (root only)" % os.path.join(LOGS, "launch.log"),
        )
    return 1


def open_log(path):
    """launch.log, appended to; root-only, as it holds Ansible's unredacted output."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


def uptime():
    """Seconds since the machine booted (None where /proc/uptime cannot be read). In a
    container (systemd writes /run/systemd/container) /proc/uptime is the host's: the
    container booted when its PID 1 started, so that start is taken off."""
    try:
        with open(os.path.join(ROOT, "proc/uptime")) as f:
            up = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if not os.path.exists(os.path.join(ROOT, "run/systemd/container")):
        return up
    started = pid1_start()
    return None if started is None else max(0.0, up - started)


def pid1_start():
    """When PID 1 started, in seconds since the host booted (field 22 of /proc/1/stat, after
    the command name in parentheses), or None."""
    try:
        with open(os.path.join(ROOT, "proc/1/stat")) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


UPTIME_AT_START = uptime()
STARTED_AT = time.time()


def tenths(x):
    """Seconds rounded to 0.1, or None."""
    return None if x is None else round(x, 1)


def breakdown(events, spawned, exited):
    """Where this run's time went, from the runner's start and the task events: the boot up to
    the runner (kernel uptime), the runner up to ansible-playbook, ansible-playbook's start
    (up to its first event), fact gathering, the roles' tasks, the handlers, and the rest
    (the gaps between tasks, and ansible-playbook's end). Seconds, rounded to 0.1."""
    facts = roles = handlers = 0.0
    for started, ev in task_results(events):
        if started is None:
            continue
        took = ev["t"] - started["t"]
        if started.get("handler"):
            handlers += took
        elif started.get("role") is None and started.get("task") == "Gathering Facts":
            facts += took
        else:
            roles += took
    first = events[0]["t"] if events else exited
    timing = {
        "boot_to_runner_s": tenths(UPTIME_AT_START),
        "runner_to_playbook_s": tenths(spawned - STARTED_AT),
        "playbook_start_s": tenths(first - spawned),
        "facts_s": tenths(facts),
        "roles_s": tenths(roles),
        "handlers_s": tenths(handlers),
    }
    timing["other_s"] = tenths(
        max(0.0, (exited - spawned) - (first - spawned) - facts - roles - handlers)
    )
    return timing


def summary_line(state, stack, roles, status, public):
    """The launch's result on one console line: counts of the roles by status, the first
    failed role, the checks passed, the time taken and parbake's sentence for the error."""
    counts = {}
    for r in status["roles"]:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    failed = [r["name"] for r in status["roles"] if r["status"] == "failed"]
    checks = status.get("checks") or []
    checked = (
        (" checks=%d/%d" % (sum(c["status"] == "ok" for c in checks), len(checks)))
        if checks
        else ""
    )
    return "parbake: launch %s stack=%s roles=%d ok=%d skipped=%d failed=%d%s%s total=%.1fs%s" % (
        state,
        stack,
        roles,
        counts.get("ok", 0),
        counts.get("skipped", 0) + counts.get("baked", 0),
        len(failed),
        (" failed_role=" + failed[0]) if failed else "",
        checked,
        status["duration_s"],
        (" error=" + json.dumps(public)) if public else "",
    )


def new_status(spec, digest, started, timeout, resumed, names, boot=None):
    """status.json as a launch run starts: every role pending."""
    return {
        "format": STATUS_FORMAT,
        "phase": "launch",
        "stack": spec["stack"],
        "image": spec["image"],
        "spec_digest": digest,
        "state": "running",
        "started_at": started,
        "finished_at": None,
        "duration_s": None,
        "error": None,
        "log": os.path.join(LOGS, "launch.log"),
        "launch_timeout_s": timeout,
        "boot_id": boot,
        "resumed": resumed,
        "roles": [{"name": n, "status": "pending", "duration_s": None} for n in names],
    }
