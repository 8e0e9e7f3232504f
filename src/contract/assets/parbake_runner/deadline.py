"""The launch's deadline over everything the runner does, with its SIGALRM backstop."""

import signal
import time

from .base import DEFAULT_LAUNCH_TIMEOUT_S


class DeadlinePassed(Exception):
    """The launch's deadline passed while something blocked past it (Deadline's backstop)."""


class Deadline:
    """The launch's deadline (launch_timeout_s from its first start), over everything the
    runner does: secrets, roles, checks. Each step is bounded by it (the aws CLI's timeout, the
    playbook's stop, each probe's wait); a step that blocks anyway (a read that hangs) is
    interrupted BACKSTOP_S after it by SIGALRM, and the launch fails naming what it was doing."""

    BACKSTOP_S = 30

    def __init__(self):
        self.at, self.doing = None, "starting"

    def left(self):
        return DEFAULT_LAUNCH_TIMEOUT_S if self.at is None else self.at - time.time()

    def arm(self, at):
        """The backstop, BACKSTOP_S after the deadline `at`. A resume that starts after the
        deadline arms none: it runs nothing, only plans its roles from local files (bounded by
        the reading rule) and fails naming the interrupted one, and an alarm already due would
        cut that short at random ("while starting")."""
        self.at = at
        left = at - time.time()
        if left <= 0:
            return
        signal.signal(signal.SIGALRM, self.fire)
        signal.setitimer(signal.ITIMER_REAL, left + self.BACKSTOP_S)

    def disarm(self):
        signal.setitimer(signal.ITIMER_REAL, 0)

    def fire(self, signum, frame):
        raise DeadlinePassed(self.doing)


DEADLINE = Deadline()
