"""What every part of the runner shares: the image's paths, the contract's format numbers and
the launch timeout's default and maximum (the same as parbake's: tests/parbake/contract.rs and
runner.rs compare them), the runner's one error, the clock, the atomic JSON write and stopping a
process group."""

import json
import os
import signal
import subprocess
import time

STATUS_FORMAT = 1
MANIFEST_FORMAT = 1
SPEC_FORMATS = (1, 2)

# where things are on the image (under PARBAKE_ROOT in tests)
ROOT = os.environ.get("PARBAKE_ROOT", "/")
HOME = os.path.join(ROOT, "opt/parbake")
STATE = os.path.join(ROOT, "var/lib/parbake")
LOGS = os.path.join(ROOT, "var/log/parbake")
RUN = os.path.join(ROOT, "run/parbake")
STATUS_PATH = os.path.join(STATE, "status.json")

# The launch timeout when a spec has none (specs before `launch_timeout_s`), and how long
# ansible-playbook gets to stop after SIGTERM before SIGKILL.
DEFAULT_LAUNCH_TIMEOUT_S = 3600
MAX_LAUNCH_TIMEOUT_S = 86400
KILL_GRACE_S = 10


def now():
    return round(time.time(), 3)


def write_json(path, data, mode=0o644):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


class Failure(Exception):
    pass


def stop_group(proc):
    """Stops ansible-playbook and everything it started (its own process group: workers and
    the modules they run): SIGTERM, then SIGKILL after KILL_GRACE_S."""
    for sig, grace in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; a straggler in its group is not left running
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return
