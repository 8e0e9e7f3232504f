"""The spec's checks, probed until each passes or its timeout passes: http, unit, port,
command and file."""

import http.client
import json
import os
import shlex
import socket
import subprocess
import threading
import time

from .base import ROOT, now, stop_group
from .deadline import DEADLINE
from .reading import MAX_CHECK_READ, PSEUDO_ROOTS, ReadRefused, read_regular
from .status import duration_text, progress


def probe_http(c, wait, log):
    """GET http://127.0.0.1:PORT/PATH (http.client: no proxy, no redirect followed): the
    status, then, only when the check names a body, up to MAX_CHECK_READ bytes of it. The whole
    exchange has one deadline, `wait`: a timer shuts the socket then, so a server that trickles
    or streams ends the probe. Nothing the server sends is ever shown: the error says the
    status, the length read and a fixed sentence."""
    where = "127.0.0.1:%d" % c["port"]
    conn = http.client.HTTPConnection("127.0.0.1", c["port"], timeout=wait)
    late = threading.Event()
    timer = threading.Timer(wait, shut, (conn, late))
    timer.start()
    try:
        conn.request("GET", c["path"], headers={"Connection": "close"})
        r = conn.getresponse()
        code = r.status
        if code != c["status"]:
            return "GET %s answered %d, expected %d" % (c["path"], code, c["status"])
        if c.get("body") is None:
            return None
        body = r.read(MAX_CHECK_READ)
    except (OSError, http.client.HTTPException, ValueError) as e:
        return http_failure(e, late.is_set(), where, wait)
    finally:
        timer.cancel()
        conn.close()
    if c["body"].encode() not in body:
        return "GET %s answered %d without %s in the body (%d bytes read)" % (
            c["path"],
            code,
            json.dumps(c["body"]),
            len(body),
        )
    return None


def http_failure(e, late, where, wait):
    """Why an HTTP probe got no answer, naming no byte the server sent."""
    if late:
        return "no complete HTTP answer from %s within %.0fs" % (where, wait)
    if isinstance(e, OSError) and not isinstance(e, socket.timeout):
        return "no HTTP answer from %s (%s)" % (where, e.strerror or type(e).__name__)
    return "no HTTP answer from %s (%s)" % (
        where,
        "timed out" if isinstance(e, socket.timeout) else "not an HTTP answer: " + type(e).__name__,
    )


def shut(conn, late):
    """Ends a connection's pending reads (from the probe's timer)."""
    late.set()
    try:
        conn.sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass


def probe_unit(c, wait, log):
    """systemctl is-active UNIT."""
    try:
        out = subprocess.run(
            ["systemctl", "is-active", c["unit"]],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=wait,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return "systemctl is-active %s did not answer (%s)" % (c["unit"], e)
    if out.returncode == 0:
        return None
    state = out.stdout.decode(errors="replace").strip()[:40] or "unknown"
    said = out.stderr.decode(errors="replace").strip().splitlines()
    return "unit %s is %s, not active%s" % (
        c["unit"],
        state,
        (" (%s)" % said[0][:200]) if said else "",
    )


def probe_port(c, wait, log):
    """A TCP connection to 127.0.0.1:PORT."""
    try:
        socket.create_connection(("127.0.0.1", c["port"]), timeout=wait).close()
    except OSError as e:
        return "nothing accepts connections on 127.0.0.1:%d (%s)" % (c["port"], e.strerror or e)
    return None


def probe_command(c, wait, log):
    """The argv, no shell, exit 0. Its output goes to launch.log, never to status.json (a failed
    launch's log tail reaches the console redacted, as a role's output does)."""
    log.write(("--- check %s: %s\n" % (c["name"], " ".join(map(shlex.quote, c["argv"])))).encode())
    log.flush()
    try:
        proc = subprocess.Popen(
            c["argv"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd="/",
            start_new_session=True,
        )
    except OSError as e:
        return "%s cannot run (%s)" % (c["argv"][0], e.strerror or e)
    try:
        code = proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        return "%s did not finish within %.0fs" % (c["argv"][0], wait)
    return (
        None
        if code == 0
        else "%s exited %d (its output is in the launch log)" % (c["argv"][0], code)
    )


def probe_file(c, wait, log):
    """The file exists, was written within max_age_s, and contains the text: a regular file
    read without blocking, up to MAX_CHECK_READ bytes (more is not looked at), its final
    symlink (if any) resolved first and held to the same rule (no FIFO, device, socket or
    pseudo-filesystem file)."""
    path = os.path.join(ROOT, c["path"].lstrip("/"))
    try:
        st = os.stat(path)
    except OSError as e:
        return "%s: %s" % (c["path"], e.strerror or e)
    age = time.time() - st.st_mtime
    if c.get("max_age_s") is not None and age > c["max_age_s"]:
        return "%s was last written %s ago, more than %s" % (
            c["path"],
            duration_text(age),
            duration_text(c["max_age_s"]),
        )
    if c.get("contains") is not None:
        try:
            data = read_check_file(path)
        except ReadRefused as e:
            return "%s: cannot read it: %s" % (c["path"], e)
        if c["contains"].encode() not in data:
            return "%s does not contain %s" % (c["path"], json.dumps(c["contains"]))
    return None


def read_check_file(path):
    """The first MAX_CHECK_READ bytes of a check's file (links resolved, inside ROOT)."""
    real, root = os.path.realpath(path), os.path.realpath(ROOT)
    rel = os.path.relpath(real, root)
    if rel == ".." or rel.startswith("../"):
        raise ReadRefused("it resolves outside the instance's root")
    if rel.split("/")[0] in PSEUDO_ROOTS:
        raise ReadRefused("it is on a pseudo-filesystem (/%s)" % rel.split("/")[0])
    return read_regular(real, MAX_CHECK_READ, truncate=True)


PROBES = {
    "http": probe_http,
    "unit": probe_unit,
    "port": probe_port,
    "command": probe_command,
    "file": probe_file,
}


CHECK_RETRY_S = 1.0


def run_check(c, until, log):
    """Probes one check until it passes or `until` passes: its result for status.json."""
    started = now()
    attempts = 0
    DEADLINE.doing = "check %s was being probed" % c["name"]
    while True:
        attempts += 1
        wait = max(1.0, min(10.0, until - now()))
        why = PROBES[c["kind"]](c, wait, log)
        if why is None or now() + CHECK_RETRY_S >= until:
            break
        time.sleep(CHECK_RETRY_S)
    result = {
        "name": c["name"],
        "kind": c["kind"],
        "status": "ok" if why is None else "failed",
        "duration_s": round(now() - started, 3),
        "attempts": attempts,
    }
    if why is not None:
        result["error"] = why
    return result


def run_all(checks, entries, deadline, log, saved):
    """Each check probed in turn until `deadline` (a check it leaves no time for does not
    run), its entry in `entries` updated, progress on stdout, and `saved()` after each."""
    for c, entry in zip(checks, entries, strict=True):
        if now() >= deadline:
            entry["status"] = "not-run"
            continue
        progress("parbake: check %s running (%s)" % (c["name"], c["kind"]))
        entry.update(run_check(c, min(now() + c["timeout_s"], deadline), log))
        progress(
            "parbake: check %s %s (%d attempts, %.1fs)%s"
            % (
                c["name"],
                entry["status"],
                entry["attempts"],
                entry["duration_s"],
                (": " + entry["error"]) if entry.get("error") else "",
            )
        )
        saved()
