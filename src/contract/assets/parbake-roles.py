#!/usr/bin/python3
"""parbake-roles: runs a stack's launch roles on the instance, from the copies on the image.

Installed by parbake at /opt/parbake/bin/parbake-roles; started by parbake-launch.service
on every boot while /var/lib/parbake/launch.json exists (and, on images baked before the unit,
by the user-data's bootstrap). Re-running it by hand is safe: roles that already succeeded for
the same launch spec are skipped (use --force to run them again); once the launch of a spec
succeeded, a run does nothing. A run that was killed or stopped mid-role (a reboot) leaves
status.json `running`: the next run resumes it, skipping the roles done, running the
interrupted one again, under the same deadline (`launch_timeout_s` in the spec, counted from
the launch's first start), and records the resume (`resumed`, the role's `note`). Progress
lines go to stdout (the journal); the result lines to the console too.

After the roles, the spec's `checks` (the stack file's `checks:`) decide the result: each is
probed until it passes or its timeout passes (http, unit, port, command, file; see
run_check). A failed check fails the launch, naming it; a later run probes them again.

  parbake-roles launch /var/lib/parbake/launch.json [--force]
  parbake-roles shim --roles-dir DIR --out DIR --list ROLES.json

`shim` builds the stand-ins of roles baked by an earlier layer (see build_shims); the bake of
a stack layer, `parbake validate` and scripts/chroot-roles.sh call it, `launch` calls the
function.

Writes /var/lib/parbake/status.json (per-role status and duration), logs to
/var/log/parbake/, prints one summary line to the console, exits 1 on failure. The console
and the status tag carry parbake's own sentences only, never role output (public_status).
launch_timeout bounds everything it does, secrets and checks included (Deadline); every file
it reads is a regular file, read without blocking and to a bound (read_regular). With
`status_tag` in the launch spec (EC2), it also tags its instance `parbake:status`, signing
CreateTags with the instance profile's credentials from IMDSv2; best effort.
Python standard library only.

Values and templating (launch spec format 2; format 1 specs are read with no `literal`):
- `vars` are plain vars: Ansible templates them as usual, so `{{ 1 + 1 }}` becomes 2.
- `literal` names vars the user tagged `!unsafe`; `secrets` are references (`ssm:`, `file:`)
  resolved here. Both reach the roles byte for byte and are never templated: the vars file
  carries them in Ansible's own encoding of unsafe values, {"__ansible_unsafe": value}.
  A `file:` secret loses its trailing newlines, nothing else. (Ansible still turns the result
  of a template that is exactly a list, dict, True or False literal into that type; that is
  Ansible's type conversion of a template's output, and it evaluates nothing.)
- Secret values never reach status.json or the events file: each is shown as <secret NAME>,
  as are its escaped, quoted and encoded forms (secret_forms) and, for a multi-line secret,
  each of its lines; a text holding a secret shorter than 8 characters is withheld whole.
  launch.log itself holds Ansible's full output and is readable by root only.
"""
import argparse
import base64
import errno
import fcntl
import hashlib
import hmac
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

STATUS_FORMAT = 1
MANIFEST_FORMAT = 1
SPEC_FORMATS = (1, 2)
# keys Ansible's JSON decoder turns into unsafe or vault values: a literal holding one as a
# map key cannot be passed through unchanged, so it is refused
ANSIBLE_JSON_TAGS = ("__ansible_unsafe", "__ansible_vault")
ROOT = os.environ.get("PARBAKE_ROOT", "/")
HOME = os.path.join(ROOT, "opt/parbake")
STATE = os.path.join(ROOT, "var/lib/parbake")
LOGS = os.path.join(ROOT, "var/log/parbake")
RUN = os.path.join(ROOT, "run/parbake")
STATUS_PATH = os.path.join(STATE, "status.json")


def now():
    return round(time.time(), 3)


def write_json(path, data, mode=0o644):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


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


class Failure(Exception):
    pass


# Every file the runner reads is read by read_regular: opened without following a final
# symlink and without blocking (a FIFO, a device or a socket is refused before any read: the
# open does not wait for a writer), fstat'ed as a regular file, and read up to a bound (more
# is an error, never a partial value). What blocks anyway (a slow filesystem) is bounded by
# the launch's deadline (Deadline).
MAX_SECRET_BYTES = 64 << 10
MAX_CHECK_READ = 1 << 20
MAX_DOC_BYTES = 16 << 20
# pseudo-filesystems: their files are not data (/proc/kmsg blocks and drains the kernel log,
# /dev/zero never ends); a secret or a check's `contains` never reads one
PSEUDO_ROOTS = ("proc", "sys", "dev")


class ReadRefused(Exception):
    """Why a file was not read: a sentence naming no byte of it."""


def read_regular(path, limit, truncate=False):
    """The bytes of the regular file at path, at most `limit` of them (more: ReadRefused, or
    with `truncate` the first `limit`), or ReadRefused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ReadRefused("it is a symbolic link") from None
        raise ReadRefused(e.strerror or str(e)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReadRefused("it is not a regular file (%s)" % file_kind(st.st_mode))
        chunks, size = [], 0
        while size <= limit:
            try:
                chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            except BlockingIOError:
                raise ReadRefused("reading it would block") from None
            except OSError as e:
                raise ReadRefused(e.strerror or str(e)) from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit and not truncate:
            raise ReadRefused("it is larger than %d bytes" % limit)
        return b"".join(chunks)[:limit]
    finally:
        os.close(fd)


def file_kind(mode):
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a file"


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
        self.at = at
        signal.signal(signal.SIGALRM, self.fire)
        signal.setitimer(signal.ITIMER_REAL, max(0.01, at + self.BACKSTOP_S - time.time()))

    def disarm(self):
        signal.setitimer(signal.ITIMER_REAL, 0)

    def fire(self, signum, frame):
        raise DeadlinePassed(self.doing)


DEADLINE = Deadline()


def no_link_path(path, root="/"):
    """An absolute path with no symlink in any component (each one is lstat'ed), not `..`,
    and not under a pseudo-filesystem, as ROOT/path; else ReadRefused."""
    parts = path.split("/")[1:]
    if not path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ReadRefused("the path must be absolute and normal (no //, . or ..)")
    if parts[0] in PSEUDO_ROOTS:
        raise ReadRefused("/%s is a pseudo-filesystem" % parts[0])
    at = root
    for part in parts[:-1]:
        at = os.path.join(at, part)
        try:
            st = os.lstat(at)
        except OSError as e:
            raise ReadRefused(e.strerror or str(e)) from None
        if stat.S_ISLNK(st.st_mode):
            raise ReadRefused("/%s is a symbolic link" % os.path.relpath(at, root))
    return os.path.join(at, parts[-1])


# name -> value of every secret resolved in this run; redact() hides them wherever shown
RESOLVED = {}


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


IMDS = os.environ.get("PARBAKE_IMDS", "http://169.254.169.254")


def sigv4_headers(method, url, region, service, body, key_id, secret, token=None, when=None):
    """AWS Signature Version 4 headers for a request with a form body (EC2's query API)."""
    when = when or time.gmtime()
    amzdate = time.strftime("%Y%m%dT%H%M%SZ", when)
    date = amzdate[:8]
    u = urllib.parse.urlsplit(url)
    headers = {"content-type": "application/x-www-form-urlencoded; charset=utf-8",
               "host": u.netloc, "x-amz-date": amzdate}
    if token:
        headers["x-amz-security-token"] = token
    signed = ";".join(sorted(headers))
    query = "&".join("%s=%s" % (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~"))
                     for k, v in sorted(urllib.parse.parse_qsl(u.query, keep_blank_values=True)))
    canonical = "\n".join([method, urllib.parse.quote(u.path or "/", safe="/-_.~"), query,
                           "".join("%s:%s\n" % (k, " ".join(headers[k].split())) for k in sorted(headers)),
                           signed, hashlib.sha256(body).hexdigest()])
    scope = "%s/%s/%s/aws4_request" % (date, region, service)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        key_id, scope, signed, signature)
    return headers


def tag_instance(status):
    """Tags this EC2 instance parbake:status (and -detail). Never changes the launch result."""
    try:
        token = urllib.request.urlopen(urllib.request.Request(
            IMDS + "/latest/api/token", method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"}), timeout=2).read().decode()

        def imds(path):
            req = urllib.request.Request(IMDS + "/latest/meta-data/" + path,
                                         headers={"X-aws-ec2-metadata-token": token})
            return urllib.request.urlopen(req, timeout=2).read().decode()

        instance = imds("instance-id")
        region = imds("placement/region")
        roles = imds("iam/security-credentials/").split()
        if not roles:
            raise RuntimeError("the instance has no instance profile")
        creds = json.loads(imds("iam/security-credentials/" + roles[0]))
        endpoint = os.environ.get("PARBAKE_EC2_ENDPOINT") or "https://ec2.%s.amazonaws.com/" % region
        failed = [r["name"] for r in status["roles"] if r["status"] == "failed"]
        detail = "%s%s total=%.1fs" % (status["state"], (" role=" + failed[0]) if failed else "",
                                        status["duration_s"] or 0)
        body = urllib.parse.urlencode(sorted({
            "Action": "CreateTags", "Version": "2016-11-15", "ResourceId.1": instance,
            "Tag.1.Key": "parbake:status", "Tag.1.Value": status["state"],
            "Tag.2.Key": "parbake:status-detail", "Tag.2.Value": redact(detail, RESOLVED)[:255],
        }.items())).encode()
        headers = sigv4_headers("POST", endpoint, region, "ec2", body, creds["AccessKeyId"],
                                creds["SecretAccessKey"], creds.get("Token"))
        urllib.request.urlopen(urllib.request.Request(endpoint, data=body, headers=headers,
                                                      method="POST"), timeout=10).read()
        console("parbake: tagged instance %s parbake:status=%s" % (instance, status["state"]))
    except Exception as e:  # IAM may not allow it, or this is not EC2: the result stands
        console("parbake: could not tag the instance with its status (%s); status.json and "
                "this console line are the record" % redact(str(e), RESOLVED))


def check_image(spec, manifest):
    """The image and the user-data must agree: every launch role installed with the same
    hash, every role the user-data expects baked really baked with the same hash."""
    image = "%s (layer %s)" % (manifest.get("layer", {}).get("name", "?"),
                               manifest.get("layer", {}).get("hash", "?")[:12])
    installed = manifest.get("installed", {})
    baked = manifest.get("baked", {})
    problems = []
    for role in spec["roles"]:
        have = installed.get(role["name"])
        if have is None:
            problems.append("role %s is not installed on image %s" % (role["name"], image))
        elif have != role["hash"]:
            problems.append("role %s on image %s has hash %s, user-data expects %s"
                            % (role["name"], image, have, role["hash"]))
    for name, want in sorted(spec.get("baked", {}).items()):
        have = baked.get(name)
        if have is None:
            problems.append("role %s is not baked into image %s, user-data expects it baked"
                            % (name, image))
        elif have != want:
            problems.append("baked role %s on image %s has hash %s, user-data expects %s"
                            % (name, image, have, want))
    if problems:
        raise Failure("image and user-data disagree: " + "; ".join(problems)
                      + ". Regenerate the user-data for this image (parbake userdata) or rebake.")


def secret_text(name, where, data):
    """The secret's bytes as text, or a Failure that shows none of them."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Failure("secret %s: %s is not UTF-8 text (byte %d); Ansible vars are text"
                      % (name, where, e.start)) from None


def resolve_secret(name, ref):
    """The secret's value, exactly: a file's content or an SSM parameter's value, less its
    trailing newlines. Recorded in RESOLVED, so that redact() hides it from then on."""
    if not isinstance(ref, str):
        raise Failure("secret %s: the reference must be a string, not %s" % (name, type(ref).__name__))
    DEADLINE.doing = "secret %s was being resolved" % name
    if ref.startswith("file:"):
        try:
            data = read_regular(no_link_path(ref[5:]), MAX_SECRET_BYTES)
        except ReadRefused as e:
            raise Failure("secret %s: cannot read %s: %s (a file secret is a regular file of at "
                          "most %d KiB, named by a path with no symbolic link)"
                          % (name, ref[5:], e, MAX_SECRET_BYTES >> 10)) from None
        value = secret_text(name, ref[5:], data).rstrip("\n")
    elif ref.startswith("ssm:"):
        aws = shutil.which("aws")
        if not aws:
            raise Failure("secret %s: %s needs the aws CLI on the image to read SSM Parameter Store"
                          % (name, ref))
        try:
            out = subprocess.run([aws, "ssm", "get-parameter", "--with-decryption", "--name", ref[4:],
                                  "--query", "Parameter.Value", "--output", "text"],
                                 capture_output=True, stdin=subprocess.DEVNULL,
                                 timeout=max(1.0, DEADLINE.left()))
        except subprocess.TimeoutExpired:
            raise Failure("secret %s: aws ssm get-parameter did not answer before the launch "
                          "timeout" % name) from None
        if len(out.stdout) > MAX_SECRET_BYTES:
            raise Failure("secret %s: the SSM parameter is larger than %d KiB" % (name, MAX_SECRET_BYTES >> 10))
        if out.returncode != 0:
            raise Failure("secret %s: aws ssm get-parameter failed: %s"
                          % (name, out.stderr.decode("utf-8", "replace").strip()[-300:]))
        value = secret_text(name, ref, out.stdout).rstrip("\n")
    else:
        raise Failure("secret %s: unknown reference %s" % (name, ref))
    RESOLVED[name] = value
    return value


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
RESULTS = ("ok", "changed", "skipped", "failed", "ignored")


def read_events(events_path):
    """The parbake_events lines of a run (none if the file is not there)."""
    try:
        with open(events_path) as f:
            return [json.loads(l) for l in f if l.strip()]
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
    r = lambda x: None if x is None else round(x, 1)
    timing = {
        "boot_to_runner_s": r(UPTIME_AT_START),
        "runner_to_playbook_s": r(spawned - STARTED_AT),
        "playbook_start_s": r(first - spawned),
        "facts_s": r(facts),
        "roles_s": r(roles),
        "handlers_s": r(handlers),
    }
    timing["other_s"] = r(max(0.0, (exited - spawned) - (first - spawned) - facts - roles - handlers))
    return timing


def role_results(events, names):
    """Per-role status and summed task durations from parbake_events lines."""
    res = {n: {"tasks": 0, "duration_s": 0.0, "failed": None, "failed_task": None} for n in names}
    for started, ev in task_results(events):
        r = res.get(ev.get("role"))
        if r is None:
            continue
        r["tasks"] += 1
        if started is not None:
            r["duration_s"] = round(r["duration_s"] + ev["t"] - started["t"], 3)
        if ev.get("event") == "failed" and r["failed"] is None:
            r["failed"] = "%s: %s" % (ev.get("task"), ev.get("msg", ""))
            r["failed_task"] = ev.get("task")
    return res


def read_spec(path):
    """The launch spec and its digest. Formats 1 and 2; a field a format 1 spec lacks is empty."""
    try:
        raw = read_regular(path, MAX_DOC_BYTES)
    except ReadRefused as e:
        raise Failure("cannot read the launch spec %s: %s" % (path, e)) from None
    try:
        spec = json.loads(raw)
    except ValueError as e:
        raise Failure("the launch spec %s is not JSON: %s" % (path, e)) from None
    if not isinstance(spec, dict):
        raise Failure("the launch spec %s is not a JSON object" % path)
    fmt = spec.get("format")
    if type(fmt) is not int or fmt not in SPEC_FORMATS:
        raise Failure("the launch spec %s has format %s; this runner reads formats %s. Generate the "
                      "user-data with the parbake release that baked this image (parbake userdata), "
                      "or rebake" % (path, json.dumps(fmt), " and ".join(map(str, SPEC_FORMATS))))
    for field, kind, empty in (("stack", str, None), ("image", str, None), ("roles", list, None),
                               ("baked", dict, {}), ("vars", dict, {}), ("literal", list, []),
                               ("secrets", dict, {})):
        if spec.get(field) is None and empty is not None:
            spec[field] = type(empty)()
        if not isinstance(spec.get(field), kind):
            raise Failure("the launch spec %s: field %s must be a JSON %s" % (
                path, field, {str: "string", list: "array", dict: "object"}[kind]))
    timeout = spec.get("launch_timeout_s")
    if timeout is not None and (type(timeout) is not int or not 0 < timeout <= MAX_LAUNCH_TIMEOUT_S):
        raise Failure("the launch spec %s: field launch_timeout_s must be a whole number of seconds "
                      "from 1 to %d (24h, parbake's maximum; parbake-launch.service allows that "
                      "and a margin)" % (path, MAX_LAUNCH_TIMEOUT_S))
    facts = spec.get("facts")
    if facts is not None and not (isinstance(facts, list) and all(
            isinstance(f, str) and re.fullmatch(r"!?[a-z_]+", f) for f in facts)):
        raise Failure("the launch spec %s: field facts must be a list of Ansible gather_subset "
                      "names" % path)
    spec["checks"] = read_checks(path, spec.get("checks"))
    for role in spec["roles"]:
        if not (isinstance(role, dict) and valid_role_name(role.get("name"))
                and isinstance(role.get("hash"), str)):
            raise Failure("the launch spec %s: each of roles must be {\"name\": ..., \"hash\": ...}" % path)
    for name, ref in spec["secrets"].items():
        if not isinstance(ref, str):
            raise Failure("the launch spec %s: secret %s must be a reference string (ssm:/... or "
                          "file:/...)" % (path, name))
    for name in spec["literal"]:
        if not isinstance(name, str) or name not in spec["vars"]:
            raise Failure("the launch spec %s: literal %s names no entry of vars" % (path, json.dumps(name)))
        tag = ansible_json_tag(spec["vars"][name])
        if tag:
            raise Failure("literal var %s holds a map key %s, which Ansible reserves for its own "
                          "encoding; rename that key" % (name, tag))
    return spec, hashlib.sha256(raw).hexdigest()


CHECK_KINDS = ("http", "unit", "port", "command", "file")
# One rule per field, the same as parbake's (src/config/health_checks.rs): tests/fixtures/contract/
# names.json holds examples each side must accept or refuse, and a property test sends the
# same random values through both. A hand-edited spec is held to them.
MAX_CHECKS = 64
MAX_TEXT = 4096
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def valid_check_name(v):
    """printable ASCII, 1 to 128 characters, not starting with a space"""
    return isinstance(v, str) and re.fullmatch(r"[\x21-\x7e][\x20-\x7e]{0,127}", v) is not None


def valid_http_path(v):
    """`/` then printable ASCII but the space, at most 1024 bytes"""
    return isinstance(v, str) and re.fullmatch(r"/[\x21-\x7e]{0,1023}", v) is not None


def valid_unit(v):
    """as systemctl takes it: letters, digits and `:_.@-`, 1 to 255, not starting with `-`"""
    return isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9:_.@][A-Za-z0-9:_.@-]{0,254}", v) is not None


def is_text(v, optional=False):
    """a value a check matches or runs: 1 to MAX_TEXT bytes of UTF-8, no control character"""
    return (optional and v is None) or (
        isinstance(v, str) and 0 < len(v.encode("utf-8", "surrogatepass")) <= MAX_TEXT
        and not CONTROL_CHARS.search(v))


def valid_file_path(v):
    """text, absolute, with no `..` component"""
    return is_text(v) and v.startswith("/") and ".." not in v.split("/")


def valid_argv(v):
    """1 to 64 texts, the first an absolute path"""
    return (isinstance(v, list) and 0 < len(v) <= 64 and all(is_text(a) for a in v)
            and v[0].startswith("/"))


def in_range(v, low, high):
    return type(v) is int and low <= v <= high


def is_port(v):
    return in_range(v, 1, 65535)


# field -> its rule, as tests/fixtures/check_names.py and names.json name them
FIELD_RULES = {"name": valid_check_name, "http": valid_http_path, "unit": valid_unit,
               "text": is_text, "file": valid_file_path,
               "role": lambda v: valid_role_name(v)}


def read_checks(path, checks):
    """The spec's checks, each with the fields its kind needs; absent: none."""
    if checks is None:
        return []
    if not isinstance(checks, list) or len(checks) > MAX_CHECKS:
        raise Failure("the launch spec %s: field checks must be a JSON array of at most %d"
                      % (path, MAX_CHECKS))
    names = set()
    for c in checks:
        if not isinstance(c, dict) or c.get("kind") not in CHECK_KINDS:
            raise Failure("the launch spec %s: each check needs a kind, one of %s" % (path, ", ".join(CHECK_KINDS)))
        name = c.get("name")
        if not valid_check_name(name) or name in names:
            raise Failure("the launch spec %s: each check needs a unique name (%s)" % (path, json.dumps(name)))
        names.add(name)
        kind, t = c["kind"], c.get("timeout_s")
        fields_ok = in_range(t, 1, 3600) and {
            "http": lambda: is_port(c.get("port")) and valid_http_path(c.get("path"))
            and in_range(c.get("status"), 100, 599) and is_text(c.get("body"), True),
            "unit": lambda: valid_unit(c.get("unit")),
            "port": lambda: is_port(c.get("port")),
            "command": lambda: valid_argv(c.get("argv")),
            "file": lambda: valid_file_path(c.get("path")) and is_text(c.get("contains"), True)
            and (c.get("max_age_s") is None or in_range(c["max_age_s"], 1, 86400)),
        }[kind]()
        if not fields_ok:
            raise Failure("the launch spec %s: check %s (%s) has a missing or malformed field" % (
                path, json.dumps(name), kind))
    return checks


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
        if late.is_set():
            return "no complete HTTP answer from %s within %.0fs" % (where, wait)
        if isinstance(e, OSError) and not isinstance(e, socket.timeout):
            return "no HTTP answer from %s (%s)" % (where, e.strerror or type(e).__name__)
        return "no HTTP answer from %s (%s)" % (where, "timed out" if isinstance(e, socket.timeout)
                                                  else "not an HTTP answer: " + type(e).__name__)
    finally:
        timer.cancel()
        conn.close()
    if c["body"].encode() not in body:
        return "GET %s answered %d without %s in the body (%d bytes read)" % (
            c["path"], code, json.dumps(c["body"]), len(body))
    return None


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
        out = subprocess.run(["systemctl", "is-active", c["unit"]], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=wait)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "systemctl is-active %s did not answer (%s)" % (c["unit"], e)
    if out.returncode == 0:
        return None
    state = out.stdout.decode(errors="replace").strip()[:40] or "unknown"
    said = out.stderr.decode(errors="replace").strip().splitlines()
    return "unit %s is %s, not active%s" % (c["unit"], state, (" (%s)" % said[0][:200]) if said else "")


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
        proc = subprocess.Popen(c["argv"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                cwd="/", start_new_session=True)
    except OSError as e:
        return "%s cannot run (%s)" % (c["argv"][0], e.strerror or e)
    try:
        code = proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        return "%s did not finish within %.0fs" % (c["argv"][0], wait)
    return None if code == 0 else "%s exited %d (its output is in the launch log)" % (c["argv"][0], code)


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
            c["path"], duration_text(age), duration_text(c["max_age_s"]))
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


PROBES = {"http": probe_http, "unit": probe_unit, "port": probe_port, "command": probe_command,
          "file": probe_file}
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
    result = {"name": c["name"], "kind": c["kind"], "status": "ok" if why is None else "failed",
              "duration_s": round(now() - started, 3), "attempts": attempts}
    if why is not None:
        result["error"] = why
    return result


def ansible_json_tag(value):
    """The first key of ANSIBLE_JSON_TAGS that a map anywhere in value uses, or None."""
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, dict):
            for k, x in v.items():
                if k in ANSIBLE_JSON_TAGS:
                    return k
                todo.append(x)
        elif isinstance(v, list):
            todo.extend(v)
    return None


def unsafe(value):
    """Ansible's JSON encoding of a value it must never template (ansible/parsing/ajson.py
    maps it through wrap_var); vars files are read with that decoder first. Only string
    leaves are wrapped, lists and maps are rebuilt around them, and numbers, booleans and
    null pass as they are (they cannot be templated): ansible-core 2.19 and later accept only
    a string in the wrapper, and one wrapped number, list or map makes them re-read the whole
    file as YAML, where every wrapper becomes an ordinary map whose content is templated."""
    if isinstance(value, str):
        return {"__ansible_unsafe": value}
    if isinstance(value, list):
        return [unsafe(v) for v in value]
    if isinstance(value, dict):
        return {k: unsafe(v) for k, v in value.items()}
    return value


def play_vars(spec):
    """The vars file's content: plain vars as they are (Ansible templates them), literal vars
    and resolved secrets wrapped unsafe (never templated), and parbake's own vars."""
    out = dict(spec["vars"])
    for name in spec["literal"]:
        out[name] = unsafe(spec["vars"][name])
    for name, ref in sorted(spec["secrets"].items()):
        out[name] = unsafe(resolve_secret(name, ref))
    out.update(parbake_stack=spec["stack"], parbake_image=spec["image"],
               parbake_phase="launch", parbake_layer=spec.get("layer", ""))
    return out


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
    status = {"format": STATUS_FORMAT, "phase": "launch", "state": "failed", "error": error,
              "roles": []}
    try:
        write_status(status)
    finally:
        announce(status, "parbake: launch failed error=%s" % json.dumps(error),
                 "see %s (root only)" % os.path.join(LOGS, "launch.log"))
    return 1


def open_log(path):
    """launch.log, appended to; root-only, as it holds Ansible's unredacted output."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


# A role name: `name` or Galaxy's `namespace.name`; never a path (no `/`, no `..`, no
# leading dot), since it becomes a directory name under the shim dir.
# The same rule as parbake's (src/config/names.rs, valid_role_name; FIELD_RULES["role"]):
# each part letters, digits, `_` and `-`, not starting with `-`, at most 64 characters in all.
ROLE_NAME = re.compile(r"(?=.{1,64}\Z)[A-Za-z0-9_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_][A-Za-z0-9_-]*)?\Z")


def valid_role_name(v):
    return isinstance(v, str) and ROLE_NAME.match(v) is not None
# The entry points Ansible looks for in a role's tasks/ and meta/ (ansible-core's
# playbook/role/__init__.py, _load_role_yaml): main, main.yml, main.yaml, main.json.
ROLE_MAIN = ("main", "main.yml", "main.yaml", "main.json")
SHIM_TASKS = "# parbake shim: this role already ran in a baked layer; its entry point is a no-op.\n[]\n"
SHIM_META = ("# parbake shim: this role already ran in a baked layer; its dependencies did too.\n"
             "dependencies: []\n")


def ansible_playbook():
    """The image's pinned ansible-core (a venv the bake made), else the distribution's."""
    pinned = os.path.join(HOME, "ansible", "bin", "ansible-playbook")
    return pinned if os.access(pinned, os.X_OK) else "ansible-playbook"


def mark_apt_lists_fresh(manifest, todo):
    """When a role of this launch has packages staged (stage_apt), the apt lists the bake
    downloaded them with are the ones to install from: refresh their time so they count as
    fresh. Ansible's apt module (2.14, get_cache_mtime) takes the age of
    /var/lib/apt/periodic/update-success-stamp, else of /var/lib/apt/lists, so a role with
    update_cache and cache_valid_time then reaches no mirror; with update_cache and no
    cache_valid_time it refreshes whatever the age."""
    if not set(todo) & set(manifest.get("staged_apt") or {}):
        return
    for rel in ("var/lib/apt/periodic/update-success-stamp", "var/lib/apt/lists"):
        if os.path.exists(os.path.join(ROOT, rel)):
            os.utime(os.path.join(ROOT, rel))


def build_shims(roles_dir, out, names):
    """The shim of each role in `names` (its real copy at roles_dir/NAME) at out/NAME, for a
    roles path that lists `out` before `roles_dir`. A shim stops a baked role from running
    again, and only that: Ansible follows a meta dependency on it into a no-op
    tasks/main.yml and `dependencies: []`, while its defaults, vars, handlers, files,
    templates, plugins and every other task file (`include_role ... tasks_from`) are the
    real ones. `out` must not exist or be empty."""
    for name in names:
        if not valid_role_name(name):
            raise Failure("cannot shim role %s: not a role name (name or namespace.name)" % json.dumps(name))
    names = sorted(set(names))
    for name in names:
        if not os.path.isdir(os.path.join(roles_dir, name)):
            raise Failure("cannot shim role %s: it is not installed in %s" % (name, roles_dir))
    if os.path.lexists(out) and not (os.path.isdir(out) and not os.path.islink(out) and not os.listdir(out)):
        raise Failure("cannot build shims in %s: it exists and is not an empty directory" % out)
    try:
        os.makedirs(out, exist_ok=True)
        for name in names:
            build_shim(os.path.join(roles_dir, name), os.path.join(out, name))
    except OSError as e:
        raise Failure("cannot build the shims in %s: %s" % (out, e)) from None


def build_shim(real, shim):
    """One role's shim: a directory of relative symlinks to the real role's entries (relative,
    so a shim built outside a chroot works inside it), but for tasks/, a directory of links
    to every task file except the entry point, which is a no-op, and meta/, whose main.yml
    is `dependencies: []`. The rest of meta/ is dropped: Ansible reads only meta/main and
    meta/argument_specs there, and a role's argument specs would add a validation task to
    the no-op entry point that checks options its dependants never passed (the real run,
    at bake, had them)."""
    real = os.path.realpath(real)
    os.makedirs(os.path.join(shim, "tasks"))
    os.makedirs(os.path.join(shim, "meta"))
    for entry in sorted(os.listdir(real)):
        if entry not in ("tasks", "meta"):
            link_into(os.path.join(real, entry), shim)
    tasks = os.path.join(real, "tasks")
    if os.path.isdir(tasks):
        for entry in sorted(os.listdir(tasks)):
            if entry not in ROLE_MAIN:
                link_into(os.path.join(tasks, entry), os.path.join(shim, "tasks"))
    with open(os.path.join(shim, "tasks", "main.yml"), "w") as f:
        f.write(SHIM_TASKS)
    with open(os.path.join(shim, "meta", "main.yml"), "w") as f:
        f.write(SHIM_META)


def link_into(target, directory):
    """A relative symlink directory/<basename of target> -> target (target a real path)."""
    where = os.path.realpath(directory)
    os.symlink(os.path.relpath(target, where), os.path.join(directory, os.path.basename(target)))


def read_shim_list(path):
    """The role names of a shim list file: a JSON array of strings."""
    try:
        with open(path) as f:
            names = json.load(f)
    except OSError as e:
        raise Failure("cannot read the shim list %s: %s" % (path, e.strerror or e)) from None
    except ValueError as e:
        raise Failure("the shim list %s is not JSON: %s" % (path, e)) from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise Failure("the shim list %s must be a JSON array of role names" % path)
    return names


def shim(args):
    try:
        build_shims(args.roles_dir, args.out, read_shim_list(args.list))
    except Failure as e:
        print("parbake-roles shim: %s" % e, file=sys.stderr)
        return 1
    return 0


# The launch timeout when a spec has none (specs before `launch_timeout_s`), and how long
# ansible-playbook gets to stop after SIGTERM before SIGKILL.
DEFAULT_LAUNCH_TIMEOUT_S = 3600
MAX_LAUNCH_TIMEOUT_S = 86400
KILL_GRACE_S = 10


class Stopped(BaseException):
    """SIGTERM or SIGINT (a shutdown, `systemctl stop`): the launch stops, stays `running` in
    status.json, and resumes at the next start."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def on_signal(signum, frame):
    raise Stopped(signum)


def progress(line):
    """A progress line: stdout only (the journal under parbake-launch.service)."""
    print(line, flush=True)


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


def duration_text(seconds):
    """600 -> 10m, 5400 -> 1h30m, 90 -> 1m30s."""
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return "".join("%d%s" % (v, u) for v, u in ((h, "h"), (m, "m"), (s, "s")) if v) or "0s"


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
    lock = open(os.path.join(RUN, "lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        console("parbake: another parbake-roles run is in progress; not starting a second one")
        return 1
    # the lock is ours: a status of this spec still `running` is a run that was interrupted
    old = None if args.force else previous_status(digest)
    if already_done(spec, old):
        return 0
    return Launch(spec, digest, old).run()


def already_done(spec, old):
    """The fast path of every boot after a successful launch: say so (stdout) and stop."""
    if old is None or old.get("state") != "done":
        return False
    progress("parbake: launch of stack %s already done for this spec (finished at %s); nothing to do"
             % (spec["stack"], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(old.get("finished_at") or 0))))
    return True


class Launch:
    """One launch of a spec: a new one, a re-run after a failure (roles that succeeded are
    skipped), or the resumption of an interrupted one (`old` still `running`: the deadline
    counts from its first start, done roles stay done, the role that was running runs again)."""

    def __init__(self, spec, digest, old):
        self.spec = spec
        self.names = [r["name"] for r in spec["roles"]]
        self.old = old
        self.resuming = old is not None and old.get("state") == "running"
        self.previous = {r.get("name"): r for r in old.get("roles", []) if isinstance(r, dict)} if old else {}
        first = old.get("started_at") if self.resuming else None
        self.started = first if isinstance(first, (int, float)) else now()
        self.timeout = spec.get("launch_timeout_s") or DEFAULT_LAUNCH_TIMEOUT_S
        self.deadline = self.started + self.timeout
        self.status = {
            "format": STATUS_FORMAT, "phase": "launch", "stack": spec["stack"], "image": spec["image"],
            "spec_digest": digest, "state": "running", "started_at": self.started, "finished_at": None,
            "duration_s": None, "error": None, "log": os.path.join(LOGS, "launch.log"),
            "launch_timeout_s": self.timeout, "boot_id": boot_id(),
            "resumed": (old.get("resumed") or 0) + 1 if self.resuming else 0,
            "roles": [{"name": n, "status": "pending", "duration_s": None} for n in self.names],
        }
        self.by_name = {r["name"]: r for r in self.status["roles"]}
        self.todo, self.current, self.task = [], 0, None
        # role name -> the console's sentence for its error (status.json has the message)
        self.public = {}

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
            for r in self.status["roles"]:
                if r["status"] in ("pending", "running"):
                    r["status"] = "not-run"
            return self.finish("failed", str(e))
        except DeadlinePassed as e:
            return self.blocked_past_deadline(str(e))

    def blocked_past_deadline(self, doing):
        """A step blocked past the deadline (Deadline's backstop): the role or check it was in
        failed, what had not started did not run."""
        what = "stopped by the launch timeout (%s)" % doing
        for r in self.status["roles"]:
            if r["status"] == "running":
                r.update(status="failed", error=what)
            elif r["status"] == "pending":
                r["status"] = "not-run"
        pending = [c for c in self.status.get("checks", []) if c["status"] == "pending"]
        for i, c in enumerate(pending):
            c.update(status="failed", error=what) if i == 0 else c.update(status="not-run")
        return self.finish("failed", "launch timeout: %s (launch_timeout) passed since the launch "
                           "started, while %s" % (duration_text(self.timeout), doing))

    def plan_roles(self, manifest):
        """Which roles run: not those baked, nor those that succeeded for this spec before
        (in a resumed launch they keep their entries); a role interrupted runs again."""
        check_image(self.spec, manifest)
        why = "the run was stopped"
        if self.old and self.old.get("boot_id") not in (None, self.status["boot_id"]):
            why = "the machine rebooted"
        interrupted = []
        for role in self.spec["roles"]:
            n, entry = role["name"], self.by_name[role["name"]]
            prev = self.previous.get(n, {})
            if manifest.get("baked", {}).get(n) == role["hash"]:
                entry["status"] = "baked"
            elif prev.get("status") in ("ok", "skipped") and self.resuming:
                entry.update(prev)
            elif prev.get("status") in ("ok", "skipped"):
                entry.update(status="skipped", duration_s=0.0, note="succeeded in an earlier run")
            else:
                self.todo.append(n)
                if self.resuming and prev.get("status") == "running":
                    entry["note"] = "interrupted (%s); run again" % why
                    interrupted.append(n)
        if self.resuming:
            progress("parbake: resuming the launch of stack %s (resume %d, %s); %s" % (
                self.spec["stack"], self.status["resumed"], why,
                ("run again: " + ", ".join(interrupted)) if interrupted else "no role was running"))

    def run_roles(self):
        """The roles to run, in one ansible-playbook, followed as it goes."""
        spec, todo = self.spec, self.todo
        # Baked and already-run roles resolve to shims, so a launch role's meta
        # dependency on them does not run them again (build_shims).
        shim = os.path.join(RUN, "shim")
        shutil.rmtree(shim, ignore_errors=True)
        skip = [n for n in self.names if n not in todo]
        manifest = read_manifest()
        build_shims(os.path.join(HOME, "roles"), shim, set(manifest.get("baked", {})) | set(skip))
        vars_path = os.path.join(RUN, "vars.json")
        secrets_path = os.path.join(RUN, "secrets.json")
        playbook = os.path.join(RUN, "launch.yml")
        with open(playbook, "w") as f:
            json.dump([launch_play(spec, vars_path, todo)], f, indent=2)
        events = os.path.join(STATE, "launch-events.jsonl")
        if os.path.exists(events):
            os.unlink(events)
        env = launch_env(shim, events, secrets_path)
        mark_apt_lists_fresh(manifest, todo)
        self.start_role(0)
        DEADLINE.doing = "the launch's secrets were being resolved"
        try:
            # resolved values only in these two root-only files, removed whatever happens
            write_json(vars_path, play_vars(spec), mode=0o600)
            write_json(secrets_path, RESOLVED, mode=0o600)
            with open_log(os.path.join(LOGS, "launch.log")) as log:
                log.write(("\n=== parbake launch %s at %s with %s: %s\n" % (spec["stack"], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), ansible_playbook(), " ".join(todo))).encode())
                log.flush()
                DEADLINE.doing = "role %s was running" % todo[self.current]
                code = self.follow_playbook([ansible_playbook(), "-i", "localhost,", "-c", "local", playbook],
                                            env, log, EventTail(events))
        finally:
            for path in (vars_path, secrets_path, vars_path + ".tmp", secrets_path + ".tmp"):
                if os.path.exists(path):
                    os.unlink(path)
        ran = read_events(events)
        self.status["timing"] = breakdown(ran, self.spawned, now())
        if code is None:
            return self.timed_out(role_results(ran, todo))
        return self.account(code, role_results(ran, todo))

    def follow_playbook(self, argv, env, log, tail):
        """ansible-playbook's exit status, or None when the launch timed out (it was stopped).
        Meanwhile status.json follows the roles as they finish."""
        self.spawned = now()
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=RUN,
                                    start_new_session=True)
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
            if ev.get("role") in self.todo:
                i = self.todo.index(ev["role"])
                self.task = ev.get("task")
                if i > self.current:
                    results = role_results(read_events(tail.path), self.todo)
                    for n in self.todo[self.current:i]:
                        r, entry = results[n], self.by_name[n]
                        entry.update(duration_s=r["duration_s"], tasks=r["tasks"],
                                     status="failed" if r["failed"] else "ok")
                        progress("parbake: role %s %s (%d tasks, %.1fs)" % (n, entry["status"], r["tasks"], r["duration_s"]))
                    self.start_role(i)

    def start_role(self, i):
        self.current = i
        n = self.todo[i]
        DEADLINE.doing = "role %s was running" % n
        self.by_name[n]["status"] = "running"
        write_status(self.status)
        progress("parbake: role %s running (%d of %d to run)" % (n, i + 1, len(self.todo)))

    def account(self, code, results):
        """The result of a finished ansible-playbook, per role."""
        failed_msg = public_msg = None
        for n in self.todo:
            r, entry = results[n], self.by_name[n]
            entry["duration_s"] = r["duration_s"]
            entry["tasks"] = r["tasks"]
            if r["failed"]:
                entry["status"] = "failed"
                entry["error"] = r["failed"]
                self.public[n] = "failed at task %s; %s" % (json.dumps(r["failed_task"]), self.see_log())
                public_msg = public_msg or "role %s %s" % (n, self.public[n])
                failed_msg = failed_msg or "role %s failed at %s" % (n, r["failed"])
            elif code != 0 and failed_msg is not None:
                entry["status"] = "not-run"
            elif r["tasks"] > 0 or code == 0:
                entry["status"] = "ok"
            else:
                entry["status"] = "not-run"
        if code == 0:
            return self.done()
        if failed_msg is None:
            failed_msg = "ansible-playbook exited %d before any role failed; see %s" % (
                code, self.status["log"])
            for n in self.todo:
                if self.by_name[n]["status"] == "ok" and results[n]["tasks"] == 0:
                    self.by_name[n]["status"] = "not-run"
        return self.finish("failed", failed_msg, public_msg)

    def see_log(self):
        return "its output is in %s (root only)" % self.status["log"]

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
        with open_log(os.path.join(LOGS, "launch.log")) as log:
            for c, entry in zip(checks, entries):
                if now() >= self.deadline:
                    entry["status"] = "not-run"
                    continue
                progress("parbake: check %s running (%s)" % (c["name"], c["kind"]))
                entry.update(run_check(c, min(now() + c["timeout_s"], self.deadline), log))
                progress("parbake: check %s %s (%d attempts, %.1fs)%s" % (
                    c["name"], entry["status"], entry["attempts"], entry["duration_s"],
                    (": " + entry["error"]) if entry.get("error") else ""))
                write_status(self.status)
        self.status.setdefault("timing", {})["checks_s"] = round(now() - started, 1)
        failed = [e for e in entries if e["status"] == "failed"]
        if failed:
            return self.finish("failed", "check %s failed: %s" % (failed[0]["name"], failed[0]["error"]))
        unrun = [e["name"] for e in entries if e["status"] == "not-run"]
        if unrun:
            return self.finish("failed", "launch timeout: %s (launch_timeout) passed before check %s ran" % (
                duration_text(self.timeout), unrun[0]))
        return self.finish("done")

    def timed_out(self, results=None):
        """The launch timeout passed: the running role failed, the later ones did not run."""
        role = self.todo[self.current]
        at = (" at task %s" % json.dumps(self.task)) if self.task else ""
        error = "launch timeout: %s (launch_timeout) passed since the launch started, while role %s was running%s" % (
            duration_text(self.timeout), role, at)
        for i, n in enumerate(self.todo):
            entry = self.by_name[n]
            if results is not None and i <= self.current:
                entry.update(duration_s=results[n]["duration_s"], tasks=results[n]["tasks"])
            if i == self.current:
                entry.update(status="failed", error="stopped by the launch timeout" + at)
            elif i > self.current:
                entry["status"] = "not-run"
        return self.finish("failed", error)

    def finish(self, state, error=None, public=None):
        """The result: status.json (role messages redacted), the console and the tag (parbake's
        own sentences only: no role output, see public_status)."""
        DEADLINE.disarm()
        spec, status = self.spec, self.status
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
        counts = {}
        for r in status["roles"]:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        failed = [r["name"] for r in status["roles"] if r["status"] == "failed"]
        checks = status.get("checks") or []
        checked = (" checks=%d/%d" % (sum(c["status"] == "ok" for c in checks), len(checks))) if checks else ""
        summary = ("parbake: launch %s stack=%s roles=%d ok=%d skipped=%d failed=%d%s%s total=%.1fs%s"
                   % (state, spec["stack"], len(self.names), counts.get("ok", 0),
                      counts.get("skipped", 0) + counts.get("baked", 0), len(failed),
                      (" failed_role=" + failed[0]) if failed else "", checked, status["duration_s"],
                      (" error=" + json.dumps(public)) if public else ""))
        announce(public_status(status, public, self.public), summary,
                 state != "done" and self.see_log())
        if spec.get("status_tag"):
            tag_instance(status)
        return 0 if state == "done" else 1


def launch_play(spec, vars_path, todo):
    """The launch's one play: the roles to run, with the spec's fact gathering (all facts when
    the spec says nothing, none when its list is empty, else that gather_subset)."""
    play = {"name": "parbake launch %s" % spec["stack"], "hosts": "localhost",
            "connection": "local", "gather_facts": spec.get("facts") != [],
            "vars_files": [vars_path], "roles": todo}
    if spec.get("facts"):
        play["gather_subset"] = spec["facts"]
    return play


def read_manifest():
    manifest_path = os.path.join(HOME, "manifest.json")
    try:
        manifest = json.loads(read_regular(manifest_path, MAX_DOC_BYTES))
    except ReadRefused:
        raise Failure("this image has no parbake manifest (%s); was it baked by parbake?" % manifest_path)
    if manifest.get("format") != MANIFEST_FORMAT:
        raise Failure("image manifest format %r, this runner reads %d" % (manifest.get("format"), MANIFEST_FORMAT))
    return manifest


def launch_env(shim, events, secrets_path):
    """ansible-playbook's environment at launch."""
    env = dict(os.environ,
               ANSIBLE_ROLES_PATH=shim + ":" + os.path.join(HOME, "roles"),
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(HOME, "lib", "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="parbake_events",
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0",
               ANSIBLE_LOCAL_TEMP=os.path.join(RUN, "tmp"), PARBAKE_EVENTS=events,
               # named, not discovered: discovery warns on newer Pythons (python3.13) and
               # can pick another interpreter than the image's; the bake names the same one
               ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
               PARBAKE_EVENTS_MIRROR=CONSOLE, PARBAKE_SECRETS=secrets_path,
               PYTHONUNBUFFERED="1")
    # vendored collections and a pinned ansible-core, where the image has them
    collections = os.path.join(HOME, "collections")
    if os.path.isdir(collections):
        env["ANSIBLE_COLLECTIONS_PATH"] = collections
    # wheels staged at bake (stage_pip): every pip of the launch uses them, no index
    if os.path.isfile(os.path.join(HOME, "pip.conf")):
        env["PIP_CONFIG_FILE"] = os.path.join(HOME, "pip.conf")
    return env


def stopped(e):
    """After SIGTERM/SIGINT: ansible-playbook is stopped and the resolved values removed;
    status.json still says `running`, so the next start resumes. The signal is raised again,
    so the runner ends as killed by it."""
    progress("parbake: launch stopped by %s; it resumes at the next start" % e)
    signal.signal(e.signum, signal.SIG_DFL)
    os.kill(os.getpid(), e.signum)
    return 128 + e.signum


def main():
    p = argparse.ArgumentParser(prog="parbake-roles", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    l = sub.add_parser("launch", help="run the launch roles named in a launch spec")
    l.add_argument("spec")
    l.add_argument("--force", action="store_true", help="run roles that already succeeded again")
    m = sub.add_parser("shim", help="build the shims of roles baked by an earlier layer")
    m.add_argument("--roles-dir", required=True, help="where the real roles are")
    m.add_argument("--out", required=True, help="the shim directory to make (absent or empty)")
    m.add_argument("--list", required=True, help="a JSON file: an array of the role names to shim")
    args = p.parse_args()
    if args.cmd == "shim":
        return shim(args)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        return launch(args)
    except Stopped as e:
        return stopped(e)
    except Exception as e:  # last resort: the status must still say failed
        return report_early_failure("parbake-roles crashed: %r" % (e,))


if __name__ == "__main__":
    sys.exit(main())
