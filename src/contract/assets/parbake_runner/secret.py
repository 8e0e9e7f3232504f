"""Secrets: references (`file:`, `ssm:`) resolved on the instance, and the one redact() that
hides every shown form of their values, used by the runner and by the Ansible callback."""

import base64
import json
import re
import shlex
import shutil
import subprocess
import urllib.parse

from .base import Failure
from .deadline import DEADLINE
from .reading import MAX_SECRET_BYTES, ReadRefused, no_link_path, read_regular

# name -> value of every secret resolved in this run; redact() hides them wherever shown
RESOLVED = {}

# --- redaction: the one redact(), for the runner and the Ansible callback alike
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
    return _json_escapes(s) + (
        repr(s)[1:-1],
        ascii(s)[1:-1],
        repr(s + '"')[1:-2],
        ascii(s + '"')[1:-2],
        s.replace("'", "'\"'\"'"),
        re.sub(r'([\\"$`])', r"\\\1", s),
    )


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
        bases |= {
            form
            for line in lines
            for form in (line, line.strip())
            if len(form.strip()) >= SHORT_SECRET
        }
    forms = set(bases)
    _nested(bases, _json_escapes, JSON_LEVELS, forms)
    mixed = _nested(bases, _escapes, MIXED_LEVELS, set(bases))
    forms |= mixed
    _nested(mixed, _json_escapes, MIXED_LEVELS, forms)
    # URL-encoded: the value, its lines, and those after one escaping
    for base in {e for b in bases for e in _escapes(b)} | bases:
        for q in (
            urllib.parse.quote(base, safe=""),
            urllib.parse.quote(base),
            urllib.parse.quote_plus(base),
        ):
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
            out.append(text[pos : cur[0]])
            out.append("".join("<secret %s>" % n for n in cur[2]))
            pos = cur[1]
        cur = [start, end, [name]]
    out.append(text[pos:])
    return "".join(out)


def secret_text(name, where, data):
    """The secret's bytes as text, or a Failure that shows none of them."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Failure(
            "secret %s: %s is not UTF-8 text (byte %d); Ansible vars are text"
            % (name, where, e.start)
        ) from None


def resolve_secret(name, ref):
    """The secret's value, exactly: a file's content or an SSM parameter's value, less its
    trailing newlines. Recorded in RESOLVED, so that redact() hides it from then on."""
    if not isinstance(ref, str):
        raise Failure(
            "secret %s: the reference must be a string, not %s" % (name, type(ref).__name__)
        )
    DEADLINE.doing = "secret %s was being resolved" % name
    if ref.startswith("file:"):
        value = file_secret(name, ref[5:])
    elif ref.startswith("ssm:"):
        value = ssm_secret(name, ref)
    else:
        raise Failure("secret %s: unknown reference %s" % (name, ref))
    RESOLVED[name] = value
    return value


def file_secret(name, path):
    """A `file:` secret: the file's text less its trailing newlines."""
    try:
        data = read_regular(no_link_path(path), MAX_SECRET_BYTES)
    except ReadRefused as e:
        raise Failure(
            "secret %s: cannot read %s: %s (a file secret is a regular file of at "
            "most %d KiB, named by a path with no symbolic link)"
            % (name, path, e, MAX_SECRET_BYTES >> 10)
        ) from None
    return secret_text(name, path, data).rstrip("\n")


def ssm_secret(name, ref):
    """An `ssm:` secret: the parameter's value (decrypted, by the image's aws CLI, within the
    launch's deadline) less its trailing newlines."""
    aws = shutil.which("aws")
    if not aws:
        raise Failure(
            "secret %s: %s needs the aws CLI on the image to read SSM Parameter Store" % (name, ref)
        )
    argv = [aws, "ssm", "get-parameter", "--with-decryption", "--name", ref[4:]]
    argv += ["--query", "Parameter.Value", "--output", "text"]
    try:
        out = subprocess.run(
            argv,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=max(1.0, DEADLINE.left()),
        )
    except subprocess.TimeoutExpired:
        raise Failure(
            "secret %s: aws ssm get-parameter did not answer before the launch timeout" % name
        ) from None
    if len(out.stdout) > MAX_SECRET_BYTES:
        raise Failure(
            "secret %s: the SSM parameter is larger than %d KiB" % (name, MAX_SECRET_BYTES >> 10)
        )
    if out.returncode != 0:
        raise Failure(
            "secret %s: aws ssm get-parameter failed: %s"
            % (name, out.stderr.decode("utf-8", "replace").strip()[-300:])
        )
    return secret_text(name, ref, out.stdout).rstrip("\n")
