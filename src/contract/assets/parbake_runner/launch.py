"""One launch of a spec: the roles in one ansible-playbook, followed as they go, then the
spec's checks, then the result (status.json, the console, the status tag)."""

import json
import os
import shutil
import subprocess
import time

from . import roles
from .base import (
    DEFAULT_LAUNCH_TIMEOUT_S,
    HOME,
    LOGS,
    RUN,
    STATE,
    Failure,
    now,
    stop_group,
    write_json,
)
from .checks import run_all
from .deadline import DEADLINE, DeadlinePassed
from .ec2 import tag_instance
from .events import EventTail, owner, read_events, role_results
from .playbook import ansible_playbook, launch_env, launch_play, mark_apt_lists_fresh, play_vars
from .resume import already_done, boot_id, plan_roles, previous_status, resume_reason, take_lock
from .secret import RESOLVED, redact
from .shims import build_shims
from .spec import check_image, read_manifest, read_spec
from .status import (
    announce,
    breakdown,
    console,
    duration_text,
    new_status,
    open_log,
    progress,
    public_status,
    report_early_failure,
    summary_line,
    write_status,
)

# the resolved values, only in these two root-only files, removed whatever happens
VARS_PATH = os.path.join(RUN, "vars.json")
SECRETS_PATH = os.path.join(RUN, "secrets.json")


def launch(args):
    try:
        spec, digest = read_spec(args.spec)
    except Failure as e:
        return report_early_failure(str(e))
    if not args.force and already_done(spec, previous_status(digest)):
        return 0
    for d in (STATE, LOGS, RUN):
        os.makedirs(d, exist_ok=True)
    os.chmod(RUN, 0o700)
    lock = take_lock()
    if lock is None:
        console("parbake: another parbake-roles run is in progress; not starting a second one")
        return 1
    # the lock is ours: a status of this spec still `running` is a run that was interrupted
    old = None if args.force else previous_status(digest)
    if already_done(spec, old):
        return 0
    return Launch(spec, digest, old).run()


class Launch:
    """One launch of a spec: a new one, a re-run after a failure (roles that succeeded are
    skipped), or the resumption of an interrupted one (`old` still `running`: the deadline
    counts from its first start, done roles stay done, the role that was running runs again)."""

    def __init__(self, spec, digest, old):
        self.spec = spec
        self.names = [r["name"] for r in spec["roles"]]
        self.old = old
        self.resuming = old is not None and old.get("state") == "running"
        self.previous = (
            {r.get("name"): r for r in old.get("roles", []) if isinstance(r, dict)} if old else {}
        )
        first = old.get("started_at") if self.resuming else None
        self.started = first if isinstance(first, (int, float)) else now()
        self.timeout = spec.get("launch_timeout_s") or DEFAULT_LAUNCH_TIMEOUT_S
        self.deadline = self.started + self.timeout
        self.status = self.first_status(digest)
        self.by_name = {r["name"]: r for r in self.status["roles"]}
        self.todo, self.current, self.task = [], 0, None
        # role name -> the console's sentence for its error (status.json has the message)
        self.public = {}

    def first_status(self, digest):
        """status.json as the run starts: every role pending."""
        resumed = (self.old.get("resumed") or 0) + 1 if self.resuming else 0
        return new_status(
            self.spec, digest, self.started, self.timeout, resumed, self.names, boot_id()
        )

    def run(self):
        write_status(self.status)
        DEADLINE.arm(self.deadline)
        try:
            self.plan_roles(read_manifest())
            write_status(self.status)
            if not self.todo:
                return self.done()
            if now() >= self.deadline:
                return self.timed_out()
            return self.run_roles()
        except Failure as e:
            roles.not_run(self.status)
            return self.finish("failed", str(e))
        except DeadlinePassed as e:
            return self.blocked_past_deadline(str(e))

    def blocked_past_deadline(self, doing):
        """A step blocked past the deadline (Deadline's backstop): the role or check it was in
        failed, what had not started did not run."""
        roles.blocked(self.status, "stopped by the launch timeout (%s)" % doing)
        return self.finish(
            "failed",
            "launch timeout: %s (launch_timeout) passed since the launch started, while %s"
            % (duration_text(self.timeout), doing),
        )

    def plan_roles(self, manifest):
        """Which roles run (resume.plan_roles), once the image is checked against the spec."""
        check_image(self.spec, manifest)
        why = resume_reason(self.old, self.status["boot_id"])
        self.todo, interrupted = plan_roles(
            self.spec, manifest.get("baked", {}), self.previous, self.resuming, why, self.by_name
        )
        if self.resuming:
            progress(
                "parbake: resuming the launch of stack %s (resume %d, %s); %s"
                % (
                    self.spec["stack"],
                    self.status["resumed"],
                    why,
                    ("run again: " + ", ".join(interrupted))
                    if interrupted
                    else "no role was running",
                )
            )

    def run_roles(self):
        """The roles to run, in one ansible-playbook, followed as it goes."""
        manifest, env, playbook, events = self.prepare()
        mark_apt_lists_fresh(manifest, self.todo)
        self.start_role(0)
        code = self.play(playbook, env, events)
        ran = read_events(events)
        self.status["timing"] = breakdown(ran, self.spawned, now())
        if code is None:
            return self.timed_out(role_results(ran, self.todo))
        return self.account(code, role_results(ran, self.todo))

    def prepare(self):
        """The shims, the playbook and a fresh events file's place: (manifest, env, playbook,
        events)."""
        # Baked and already-run roles resolve to shims, so a launch role's meta
        # dependency on them does not run them again (build_shims).
        shim = os.path.join(RUN, "shim")
        shutil.rmtree(shim, ignore_errors=True)
        skip = [n for n in self.names if n not in self.todo]
        manifest = read_manifest()
        collections = os.path.join(HOME, "collections")
        build_shims(
            os.path.join(HOME, "roles"),
            shim,
            set(manifest.get("baked", {})) | set(skip),
            collections if os.path.isdir(collections) else None,
        )
        playbook = os.path.join(RUN, "launch.yml")
        with open(playbook, "w") as f:
            json.dump([launch_play(self.spec, VARS_PATH, self.todo)], f, indent=2)
        events = os.path.join(STATE, "launch-events.jsonl")
        if os.path.exists(events):
            os.unlink(events)
        return manifest, launch_env(shim, events, SECRETS_PATH), playbook, events

    def play(self, playbook, env, events):
        """The secrets resolved into the vars files, then ansible-playbook: its exit status, or
        None when the launch timed out. The vars files are removed whatever happens."""
        DEADLINE.doing = "the launch's secrets were being resolved"
        try:
            write_json(VARS_PATH, play_vars(self.spec), mode=0o600)
            write_json(SECRETS_PATH, RESOLVED, mode=0o600)
            with open_log(os.path.join(LOGS, "launch.log")) as log:
                log.write(self.log_header().encode())
                log.flush()
                DEADLINE.doing = "role %s was running" % self.todo[self.current]
                argv = [ansible_playbook(), "-i", "localhost,", "-c", "local", playbook]
                return self.follow_playbook(argv, env, log, EventTail(events))
        finally:
            for path in (VARS_PATH, SECRETS_PATH, VARS_PATH + ".tmp", SECRETS_PATH + ".tmp"):
                if os.path.exists(path):
                    os.unlink(path)

    def log_header(self):
        return "\n=== parbake launch %s at %s with %s: %s\n" % (
            self.spec["stack"],
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            ansible_playbook(),
            " ".join(self.todo),
        )

    def follow_playbook(self, argv, env, log, tail):
        """ansible-playbook's exit status, or None when the launch timed out (it was stopped).
        Meanwhile status.json follows the roles as they finish."""
        self.spawned = now()
        try:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=RUN, start_new_session=True
            )
        except OSError as e:
            raise Failure("cannot start %s: %s" % (argv[0], e.strerror or e)) from None
        try:
            while True:
                try:
                    code = proc.wait(timeout=0.5)
                    self.follow(tail)
                    return code
                except subprocess.TimeoutExpired:
                    pass
                self.follow(tail)
                if now() >= self.deadline:
                    stop_group(proc)
                    return None
        except BaseException:
            stop_group(proc)
            raise

    def follow(self, tail):
        """A task of a later role started: the roles before it are finished."""
        for ev in tail.new_events():
            if ev.get("event") != "task" or ev.get("handler"):
                continue
            planned = owner(ev, self.todo)
            if planned is not None:
                i = self.todo.index(planned)
                self.task = ev.get("task")
                if i > self.current:
                    self.finished_before(i, role_results(read_events(tail.path), self.todo))
                    self.start_role(i)

    def finished_before(self, i, results):
        """The roles from the current one up to the i-th to run have finished."""
        for n in roles.finished_before(self.todo, self.current, i, results, self.by_name):
            r, entry = results[n], self.by_name[n]
            progress(
                "parbake: role %s %s (%d tasks, %.1fs)"
                % (n, entry["status"], r["tasks"], r["duration_s"])
            )

    def start_role(self, i):
        self.current = i
        n = self.todo[i]
        DEADLINE.doing = "role %s was running" % n
        self.by_name[n]["status"] = "running"
        write_status(self.status)
        progress("parbake: role %s running (%d of %d to run)" % (n, i + 1, len(self.todo)))

    def account(self, code, results):
        """The result of a finished ansible-playbook, per role."""
        log = self.status["log"]
        origin = roles.error_origin(log_tail(log)) if code else None
        error, public, self.public = roles.account(
            self.todo, results, code, self.by_name, log, origin
        )
        if code == 0:
            return self.done()
        return self.finish("failed", error, public)

    def done(self):
        """The roles succeeded: the spec's checks, in order, decide the result. Each is probed
        until it passes, its timeout passes or the launch's deadline does."""
        checks = self.spec["checks"]
        if not checks:
            return self.finish("done")
        entries = [{"name": c["name"], "kind": c["kind"], "status": "pending"} for c in checks]
        self.status["checks"] = entries
        write_status(self.status)
        started = now()
        self.run_checks(checks, entries)
        self.status.setdefault("timing", {})["checks_s"] = round(now() - started, 1)
        failed = [e for e in entries if e["status"] == "failed"]
        if failed:
            return self.finish(
                "failed", "check %s failed: %s" % (failed[0]["name"], failed[0]["error"])
            )
        unrun = [e["name"] for e in entries if e["status"] == "not-run"]
        if unrun:
            return self.finish(
                "failed",
                "launch timeout: %s (launch_timeout) passed before check %s ran"
                % (duration_text(self.timeout), unrun[0]),
            )
        return self.finish("done")

    def run_checks(self, checks, entries):
        """Each check probed in turn, status.json written after each (checks.run_all)."""
        with open_log(os.path.join(LOGS, "launch.log")) as log:
            run_all(checks, entries, self.deadline, log, lambda: write_status(self.status))

    def timed_out(self, results=None):
        """The launch timeout passed: the running role failed, the later ones did not run."""
        role = self.todo[self.current]
        at = (" at task %s" % json.dumps(self.task)) if self.task else ""
        error = (
            "launch timeout: %s (launch_timeout) passed since the launch started, while role %s "
            "was running%s" % (duration_text(self.timeout), role, at)
        )
        roles.timed_out(self.todo, self.current, results, self.by_name, at)
        return self.finish("failed", error)

    def finish(self, state, error=None, public=None):
        """The result: status.json (role messages redacted), the console and the tag (parbake's
        own sentences only: no role output, see public_status)."""
        DEADLINE.disarm()
        status = self.status
        error = redact(error, RESOLVED)
        public = redact(public, RESOLVED) if public else error
        for r in status["roles"] + status.get("checks", []):
            if "error" in r:
                r["error"] = redact(r["error"], RESOLVED)
        status["state"] = state
        status["error"] = error
        status["finished_at"] = now()
        status["duration_s"] = round(status["finished_at"] - self.started, 3)
        write_status(status)
        summary = summary_line(state, self.spec["stack"], len(self.names), status, public)
        announce(
            public_status(status, public, self.public),
            summary,
            state != "done" and roles.see_log(self.status["log"]),
        )
        if self.spec.get("status_tag"):
            tag_instance(status)
        return 0 if state == "done" else 1


def log_tail(path, size=65536):
    """The last `size` bytes of the launch log as text ('' when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
