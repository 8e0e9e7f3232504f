"""The launch spec (formats 1 and 2) and the image manifest, read and checked: every field a run
uses, each check's fields by the same rules as parbake's, and the image against the spec."""

import hashlib
import json
import os
import re

from .base import HOME, MANIFEST_FORMAT, MAX_LAUNCH_TIMEOUT_S, SPEC_FORMATS, Failure
from .reading import MAX_DOC_BYTES, ReadRefused, read_regular

# keys Ansible's JSON decoder turns into unsafe or vault values: a literal holding one as a
# map key cannot be passed through unchanged, so it is refused
ANSIBLE_JSON_TAGS = ("__ansible_unsafe", "__ansible_vault")


def read_spec(path):
    """The launch spec and its digest. Formats 1 and 2; a field a format 1 spec lacks is empty."""
    try:
        raw = read_regular(path, MAX_DOC_BYTES)
    except ReadRefused as e:
        raise Failure("cannot read the launch spec %s: %s" % (path, e)) from None
    spec = parse_spec(path, raw)
    check_fields(path, spec)
    check_run_settings(path, spec)
    spec["checks"] = read_checks(path, spec.get("checks"))
    check_entries(path, spec)
    return spec, hashlib.sha256(raw).hexdigest()


def parse_spec(path, raw):
    """The spec's JSON object, of a format this runner reads."""
    try:
        spec = json.loads(raw)
    except ValueError as e:
        raise Failure("the launch spec %s is not JSON: %s" % (path, e)) from None
    if not isinstance(spec, dict):
        raise Failure("the launch spec %s is not a JSON object" % path)
    fmt = spec.get("format")
    if type(fmt) is not int or fmt not in SPEC_FORMATS:
        raise Failure(
            "the launch spec %s has format %s; this runner reads formats %s. Generate the "
            "user-data with the parbake release that baked this image (parbake userdata), "
            "or rebake" % (path, json.dumps(fmt), " and ".join(map(str, SPEC_FORMATS)))
        )
    return spec


# (field, its JSON type, its value when absent; None: required)
SPEC_FIELDS = (
    ("stack", str, None),
    ("image", str, None),
    ("roles", list, None),
    ("baked", dict, {}),
    ("vars", dict, {}),
    ("literal", list, []),
    ("secrets", dict, {}),
)


def check_fields(path, spec):
    """Each field of SPEC_FIELDS of its type; an optional one absent (or null) made empty."""
    for field, kind, empty in SPEC_FIELDS:
        if spec.get(field) is None and empty is not None:
            spec[field] = type(empty)()
        if not isinstance(spec.get(field), kind):
            raise Failure(
                "the launch spec %s: field %s must be a JSON %s"
                % (path, field, {str: "string", list: "array", dict: "object"}[kind])
            )


def check_run_settings(path, spec):
    """launch_timeout_s within parbake's bounds, facts a list of gather_subset names."""
    timeout = spec.get("launch_timeout_s")
    if timeout is not None and (
        type(timeout) is not int or not 0 < timeout <= MAX_LAUNCH_TIMEOUT_S
    ):
        raise Failure(
            "the launch spec %s: field launch_timeout_s must be a whole number of seconds "
            "from 1 to %d (24h, parbake's maximum; parbake-launch.service allows that "
            "and a margin)" % (path, MAX_LAUNCH_TIMEOUT_S)
        )
    facts = spec.get("facts")
    if facts is not None and not (
        isinstance(facts, list)
        and all(isinstance(f, str) and re.fullmatch(r"!?[a-z_]+", f) for f in facts)
    ):
        raise Failure(
            "the launch spec %s: field facts must be a list of Ansible gather_subset names" % path
        )


def check_entries(path, spec):
    """Each role a name and a hash, each secret a reference, each literal a var without a key
    Ansible reserves."""
    for role in spec["roles"]:
        if not (
            isinstance(role, dict)
            and valid_role_name(role.get("name"))
            and isinstance(role.get("hash"), str)
        ):
            raise Failure(
                'the launch spec %s: each of roles must be {"name": ..., "hash": ...}' % path
            )
    for name, ref in spec["secrets"].items():
        if not isinstance(ref, str):
            raise Failure(
                "the launch spec %s: secret %s must be a reference string (ssm:/... or "
                "file:/...)" % (path, name)
            )
    for name in spec["literal"]:
        if not isinstance(name, str) or name not in spec["vars"]:
            raise Failure(
                "the launch spec %s: literal %s names no entry of vars" % (path, json.dumps(name))
            )
        tag = ansible_json_tag(spec["vars"][name])
        if tag:
            raise Failure(
                "literal var %s holds a map key %s, which Ansible reserves for its own "
                "encoding; rename that key" % (name, tag)
            )


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
    return (
        isinstance(v, str)
        and re.fullmatch(r"[A-Za-z0-9:_.@][A-Za-z0-9:_.@-]{0,254}", v) is not None
    )


def is_text(v, optional=False):
    """a value a check matches or runs: 1 to MAX_TEXT bytes of UTF-8, no control character"""
    return (optional and v is None) or (
        isinstance(v, str)
        and 0 < len(v.encode("utf-8", "surrogatepass")) <= MAX_TEXT
        and not CONTROL_CHARS.search(v)
    )


def valid_file_path(v):
    """text, absolute, with no `..` component"""
    return is_text(v) and v.startswith("/") and ".." not in v.split("/")


def valid_argv(v):
    """1 to 64 texts, the first an absolute path"""
    return (
        isinstance(v, list)
        and 0 < len(v) <= 64
        and all(is_text(a) for a in v)
        and v[0].startswith("/")
    )


def in_range(v, low, high):
    return type(v) is int and low <= v <= high


def is_port(v):
    return in_range(v, 1, 65535)


# field -> its rule, as tests/fixtures/check_names.py and names.json name them
FIELD_RULES = {
    "name": valid_check_name,
    "http": valid_http_path,
    "unit": valid_unit,
    "text": is_text,
    "file": valid_file_path,
    "role": lambda v: valid_role_name(v),
}


def http_fields(c):
    return (
        is_port(c.get("port"))
        and valid_http_path(c.get("path"))
        and in_range(c.get("status"), 100, 599)
        and is_text(c.get("body"), True)
    )


def file_fields(c):
    return (
        valid_file_path(c.get("path"))
        and is_text(c.get("contains"), True)
        and (c.get("max_age_s") is None or in_range(c["max_age_s"], 1, 86400))
    )


# kind -> whether a check of that kind has the fields it needs
KIND_FIELDS = {
    "http": http_fields,
    "unit": lambda c: valid_unit(c.get("unit")),
    "port": lambda c: is_port(c.get("port")),
    "command": lambda c: valid_argv(c.get("argv")),
    "file": file_fields,
}


def read_checks(path, checks):
    """The spec's checks, each with the fields its kind needs; absent: none."""
    if checks is None:
        return []
    if not isinstance(checks, list) or len(checks) > MAX_CHECKS:
        raise Failure(
            "the launch spec %s: field checks must be a JSON array of at most %d"
            % (path, MAX_CHECKS)
        )
    names = set()
    for c in checks:
        if not isinstance(c, dict) or c.get("kind") not in CHECK_KINDS:
            raise Failure(
                "the launch spec %s: each check needs a kind, one of %s"
                % (path, ", ".join(CHECK_KINDS))
            )
        name = c.get("name")
        if not valid_check_name(name) or name in names:
            raise Failure(
                "the launch spec %s: each check needs a unique name (%s)" % (path, json.dumps(name))
            )
        names.add(name)
        kind = c["kind"]
        fields_ok = in_range(c.get("timeout_s"), 1, 3600) and KIND_FIELDS[kind](c)
        if not fields_ok:
            raise Failure(
                "the launch spec %s: check %s (%s) has a missing or malformed field"
                % (path, json.dumps(name), kind)
            )
    return checks


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


# A role name: `name` or Galaxy's `namespace.name`; never a path (no `/`, no `..`, no
# leading dot), since it becomes a directory name under the shim dir.
# The same rule as parbake's (src/config/names.rs, valid_role_name; FIELD_RULES["role"]):
# each part letters, digits, `_` and `-`, not starting with `-`, at most 64 characters in all.
ROLE_NAME = re.compile(
    r"(?=.{1,64}\Z)[A-Za-z0-9_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_][A-Za-z0-9_-]*)?\Z"
)
# A role of a collection by its FQCN, `namespace.collection.role` (names.rs,
# valid_collection_role): three parts of lowercase letters, digits and `_`; the namespace and
# collection start with a letter, the role with a letter or `_` (community.sops._install_age);
# at most 64 characters in all. Installed under that name like any role; Ansible finds
# it through the collection overlay the shims build (shims.build_overlay).
COLLECTION_ROLE = re.compile(r"(?=.{1,64}\Z)[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z_][a-z0-9_]*\Z")


def valid_collection_role(v):
    return isinstance(v, str) and COLLECTION_ROLE.match(v) is not None


def valid_role_name(v):
    return isinstance(v, str) and (
        ROLE_NAME.match(v) is not None or COLLECTION_ROLE.match(v) is not None
    )


def read_manifest():
    manifest_path = os.path.join(HOME, "manifest.json")
    try:
        manifest = json.loads(read_regular(manifest_path, MAX_DOC_BYTES))
    except ReadRefused:
        raise Failure(
            "this image has no parbake manifest (%s); was it baked by parbake?" % manifest_path
        ) from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise Failure(
            "image manifest format %r, this runner reads %d"
            % (manifest.get("format"), MANIFEST_FORMAT)
        )
    return manifest


def check_image(spec, manifest):
    """The image and the user-data must agree: every launch role installed with the same
    hash, every role the user-data expects baked really baked with the same hash."""
    image = "%s (layer %s)" % (
        manifest.get("layer", {}).get("name", "?"),
        manifest.get("layer", {}).get("hash", "?")[:12],
    )
    installed = manifest.get("installed", {})
    baked = manifest.get("baked", {})
    problems = []
    for role in spec["roles"]:
        have = installed.get(role["name"])
        if have is None:
            problems.append("role %s is not installed on image %s" % (role["name"], image))
        elif have != role["hash"]:
            problems.append(
                "role %s on image %s has hash %s, user-data expects %s"
                % (role["name"], image, have, role["hash"])
            )
    for name, want in sorted(spec.get("baked", {}).items()):
        have = baked.get(name)
        if have is None:
            problems.append(
                "role %s is not baked into image %s, user-data expects it baked" % (name, image)
            )
        elif have != want:
            problems.append(
                "baked role %s on image %s has hash %s, user-data expects %s"
                % (name, image, have, want)
            )
    if problems:
        raise Failure(
            "image and user-data disagree: "
            + "; ".join(problems)
            + ". Regenerate the user-data for this image (parbake userdata) or rebake."
        )
