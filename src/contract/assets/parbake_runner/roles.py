"""Each launch role's outcome: what a finished, timed-out or blocked ansible-playbook means for
the role's entry in status.json, and the launch's error. Pure: the entries are updated in place
and nothing is written."""

import json
import re

# Where ansible-core says its error is: up to 2.18 a sentence, from 2.19 an `Origin:` line.
ORIGINS = (
    re.compile(r"The error appears to be in '([^'\n]+)': line (\d+), column \d+"),
    re.compile(r"^Origin: (\S[^\n]*?):(\d+):\d+[ \t]*$", re.M),
)
# The start of an error in ansible-playbook's output (up to 2.18, then from 2.19).
ERROR_MARKS = ("ERROR! ", "[ERROR]: ")


def error_origin(output):
    """Where ansible-core said the error that stopped it is, as `tasks/x.yml:LINE` (or the
    file's name when it is not a role's), from the last error in `output`; None when it said
    none. Only the path and the line are taken: no value of the output."""
    start = max(output.rfind(m) for m in ERROR_MARKS)
    if start < 0:
        return None
    found = [m for rx in ORIGINS for m in rx.finditer(output, start)]
    if not found:
        return None
    first = min(found, key=lambda m: m.start())
    return "%s:%s" % (role_relative(first.group(1)), first.group(2))


def role_relative(path):
    """`tasks/x.yml` for a file of a role's tasks, handlers, meta, defaults or vars (the form
    parbake's events give), else the file's name."""
    for d in ("/tasks/", "/handlers/", "/meta/", "/defaults/", "/vars/"):
        i = path.rfind(d)
        if i >= 0:
            return path[i + 1 :]
    return path.rsplit("/", 1)[-1]


def account(todo, results, code, by_name, log, origin=None):
    """Each role's entry after ansible-playbook exited `code` (`results`: events.role_results),
    and the launch's error: (the error for status.json, parbake's sentence for the console,
    {role: parbake's sentence}); both errors None when no role failed and the code is 0.
    `origin` is where ansible-core said its error is (`error_origin`), if it said."""
    failed_msg = public_msg = None
    public = {}
    for n in todo:
        r, entry = results[n], by_name[n]
        entry["duration_s"] = r["duration_s"]
        entry["tasks"] = r["tasks"]
        if r["failed"]:
            entry["status"] = "failed"
            entry["error"] = r["failed"]
            public[n] = "failed at task %s; %s" % (json.dumps(r["failed_task"]), see_log(log))
            public_msg = public_msg or "role %s %s" % (n, public[n])
            failed_msg = failed_msg or "role %s failed at %s" % (n, r["failed"])
        elif code != 0 and failed_msg is not None:
            entry["status"] = "not-run"
        elif r["tasks"] > 0 or code == 0:
            entry["status"] = "ok"
        else:
            entry["status"] = "not-run"
    if code != 0 and failed_msg is None:
        return stopped(todo, results, code, by_name, log, origin)
    return failed_msg, public_msg, public


def stopped(todo, results, code, by_name, log, origin=None):
    """ansible-playbook exited `code` with no failed task (a parse error in an included file,
    an undefined role, a keyword templated between tasks): the role it was in failed, named
    with where (where ansible-core said, else where its last task started), never `ok`; the
    later ones did not run. Before any task started, no role ran."""
    running = [n for n in todo if results[n].get("started")]
    for n in todo:
        if by_name[n]["status"] == "ok" and results[n]["tasks"] == 0 and n not in running:
            by_name[n]["status"] = "not-run"
    if not running:
        return "ansible-playbook exited %d before any role failed; see %s" % (code, log), None, {}
    n = running[-1]
    at = origin or results[n].get("last_at")
    where = " at %s" % at if at else ""
    sentence = "ansible-playbook stopped with exit %d in %s%s" % (code, n, where)
    by_name[n].update(status="failed", error=sentence)
    for later in todo[todo.index(n) + 1 :]:
        by_name[later]["status"] = "not-run"
    public = "stopped with exit %d%s; %s" % (code, where, see_log(log))
    return "%s; see %s" % (sentence, log), "role %s %s" % (n, public), {n: public}


def see_log(log):
    return "its output is in %s (root only)" % log


def finished_before(todo, current, i, results, by_name):
    """The roles from the `current` one up to the i-th to run have finished (a task of the i-th
    started): each entry's status, tasks and duration. Returns their names."""
    done = todo[current:i]
    for n in done:
        r = results[n]
        by_name[n].update(
            duration_s=r["duration_s"],
            tasks=r["tasks"],
            status="failed" if r["failed"] else "ok",
        )
    return done


def timed_out(todo, current, results, by_name, at):
    """The launch timeout passed while the `current` role ran (`at`: ` at task "x"` or empty):
    it failed, the later ones did not run; `results` (when the playbook ran) give the tasks and
    durations so far."""
    for i, n in enumerate(todo):
        entry = by_name[n]
        if results is not None and i <= current:
            entry.update(duration_s=results[n]["duration_s"], tasks=results[n]["tasks"])
        if i == current:
            entry.update(status="failed", error="stopped by the launch timeout" + at)
        elif i > current:
            entry["status"] = "not-run"


def blocked(status, what):
    """A step blocked past the deadline: the role or the first pending check it was in failed
    (`what`), what had not started did not run."""
    for r in status["roles"]:
        if r["status"] == "running":
            r.update(status="failed", error=what)
        elif r["status"] == "pending":
            r["status"] = "not-run"
    pending = [c for c in status.get("checks", []) if c["status"] == "pending"]
    for i, c in enumerate(pending):
        if i == 0:
            c.update(status="failed", error=what)
        else:
            c.update(status="not-run")


def not_run(status):
    """A launch that failed before its roles finished: those pending or running did not run."""
    for r in status["roles"]:
        if r["status"] in ("pending", "running"):
            r["status"] = "not-run"
