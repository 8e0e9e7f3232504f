"""Locking and resuming: one run at a time (a lock under /run/parbake), the fast path once a
spec's launch is done, and the resumption of a run that was stopped or rebooted."""

import fcntl
import json
import os
import signal
import time

from .base import RUN, STATUS_PATH
from .reading import MAX_DOC_BYTES, ReadRefused, read_regular
from .status import progress


class Stopped(BaseException):
    """SIGTERM or SIGINT (a shutdown, `systemctl stop`): the launch stops, stays `running` in
    status.json, and resumes at the next start."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def on_signal(signum, frame):
    raise Stopped(signum)


def stopped(e):
    """After SIGTERM/SIGINT: ansible-playbook is stopped and the resolved values removed;
    status.json still says `running`, so the next start resumes. The signal is raised again,
    so the runner ends as killed by it."""
    progress("parbake: launch stopped by %s; it resumes at the next start" % e)
    signal.signal(e.signum, signal.SIG_DFL)
    os.kill(os.getpid(), e.signum)
    return 128 + e.signum


def boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def previous_status(digest):
    """status.json of an earlier run of the same spec, or None."""
    try:
        old = json.loads(read_regular(STATUS_PATH, MAX_DOC_BYTES))
    except (ReadRefused, ValueError):
        return None
    return old if isinstance(old, dict) and old.get("spec_digest") == digest else None


def already_done(spec, old):
    """The fast path of every boot after a successful launch: say so (stdout) and stop."""
    if old is None or old.get("state") != "done":
        return False
    progress(
        "parbake: launch of stack %s already done for this spec (finished at %s); nothing to do"
        % (
            spec["stack"],
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(old.get("finished_at") or 0)),
        )
    )
    return True


def take_lock():
    """The lock of a launch run (RUN/lock), held while the file returned stays open; None when
    another run holds it."""
    lock = open(os.path.join(RUN, "lock"), "w")  # noqa: SIM115 (held open for the whole run)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return None
    return lock


def resume_reason(old, boot):
    """Why an interrupted run stopped: the machine rebooted (its boot id changed), else the run
    was stopped."""
    if old and old.get("boot_id") not in (None, boot):
        return "the machine rebooted"
    return "the run was stopped"


def plan_roles(spec, baked, previous, resuming, why, by_name):
    """Which roles run, in order, and which of them were interrupted: not those baked (`baked`:
    the manifest's name -> hash), nor those that succeeded for this spec before (in a resumed
    launch they keep their entries); a role interrupted runs again. Updates each role's entry
    in `by_name` (status.json's)."""
    todo, interrupted = [], []
    for role in spec["roles"]:
        n, entry = role["name"], by_name[role["name"]]
        prev = previous.get(n, {})
        if baked.get(n) == role["hash"]:
            entry["status"] = "baked"
        elif prev.get("status") in ("ok", "skipped") and resuming:
            entry.update(prev)
        elif prev.get("status") in ("ok", "skipped"):
            entry.update(status="skipped", duration_s=0.0, note="succeeded in an earlier run")
        else:
            todo.append(n)
            if resuming and prev.get("status") == "running":
                entry["note"] = "interrupted (%s); run again" % why
                interrupted.append(n)
    return todo, interrupted
