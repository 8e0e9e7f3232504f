"""spec: the launch spec and the image manifest, read and checked."""

import json

import pytest
from parbake_runner import spec
from parbake_runner.base import MAX_LAUNCH_TIMEOUT_S, Failure


def minimal(**over):
    doc = {
        "format": 2,
        "stack": "web",
        "image": "img",
        "roles": [{"name": "nginx", "hash": "sha256:1"}],
    }
    doc.update(over)
    return doc


def write(tmp_path, doc):
    path = tmp_path / "launch.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def test_a_minimal_spec_gets_its_optional_fields_empty(tmp_path):
    got, digest = spec.read_spec(write(tmp_path, minimal()))
    assert got["baked"] == {} and got["vars"] == {} and got["secrets"] == {}
    assert got["literal"] == [] and got["checks"] == []
    assert len(digest) == 64


def test_the_digest_is_of_the_bytes(tmp_path):
    a = spec.read_spec(write(tmp_path, json.dumps(minimal())))[1]
    b = spec.read_spec(write(tmp_path, json.dumps(minimal(), indent=1)))[1]
    assert a != b


@pytest.mark.parametrize(
    "doc, needle",
    [
        ("{not json", "is not JSON"),
        ("[]", "is not a JSON object"),
        (minimal(format=3), "has format 3; this runner reads formats 1 and 2"),
        (minimal(format="2"), 'has format "2"'),
        (minimal(format=True), "has format true"),
        (minimal(stack=None), "field stack must be a JSON string"),
        (minimal(roles={}), "field roles must be a JSON array"),
        (minimal(vars=[]), "field vars must be a JSON object"),
        (minimal(launch_timeout_s=0), "launch_timeout_s must be a whole number"),
        (minimal(launch_timeout_s=MAX_LAUNCH_TIMEOUT_S + 1), "from 1 to 86400"),
        (minimal(launch_timeout_s=1.5), "launch_timeout_s"),
        (minimal(facts=["network", "Bad"]), "field facts must be a list"),
        (minimal(roles=[{"name": "../x", "hash": "h"}]), "each of roles must be"),
        (minimal(roles=[{"name": "x"}]), "each of roles must be"),
        (minimal(secrets={"s": 1}), "secret s must be a reference string"),
        (minimal(literal=["missing"]), 'literal "missing" names no entry of vars'),
        (
            minimal(vars={"v": {"a": [{"__ansible_unsafe": 1}]}}, literal=["v"]),
            "holds a map key __ansible_unsafe",
        ),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(tmp_path, doc, needle):
    with pytest.raises(Failure) as e:
        spec.read_spec(write(tmp_path, doc))
    assert needle in str(e.value)


def test_a_spec_that_is_not_a_regular_file_is_refused(tmp_path):
    with pytest.raises(Failure, match="cannot read the launch spec .*: it is not a regular file"):
        spec.read_spec(str(tmp_path))


def check(**over):
    c = {"name": "web up", "kind": "http", "port": 80, "path": "/", "status": 200}
    c["timeout_s"] = 30
    c.update(over)
    return c


@pytest.mark.parametrize(
    "c",
    [
        check(),
        check(body="ok"),
        {"name": "u", "kind": "unit", "unit": "nginx.service", "timeout_s": 1},
        {"name": "p", "kind": "port", "port": 5432, "timeout_s": 3600},
        {"name": "c", "kind": "command", "argv": ["/bin/true"], "timeout_s": 5},
        {"name": "f", "kind": "file", "path": "/etc/x", "contains": "y", "timeout_s": 5},
        {"name": "f", "kind": "file", "path": "/etc/x", "max_age_s": 60, "timeout_s": 5},
    ],
)
def test_well_formed_checks_are_read(c):
    assert spec.read_checks("p", [c]) == [c]


@pytest.mark.parametrize(
    "c",
    [
        check(timeout_s=0),
        check(timeout_s=3601),
        check(port=0),
        check(path="no-slash"),
        check(status=600),
        check(body=""),
        check(body="a\nb"),
        {"name": "c", "kind": "command", "argv": ["true"], "timeout_s": 5},
        {"name": "c", "kind": "command", "argv": [], "timeout_s": 5},
        {"name": "u", "kind": "unit", "unit": "-x", "timeout_s": 1},
        {"name": "f", "kind": "file", "path": "/a/../b", "timeout_s": 5},
        {"name": "f", "kind": "file", "path": "/a", "max_age_s": 0, "timeout_s": 5},
    ],
)
def test_a_check_with_a_malformed_field_is_refused(c):
    with pytest.raises(Failure, match="has a missing or malformed field"):
        spec.read_checks("p", [c])


def test_check_names_are_unique_and_kinds_known():
    with pytest.raises(Failure, match="unique name"):
        spec.read_checks("p", [check(), check()])
    with pytest.raises(Failure, match="needs a kind"):
        spec.read_checks("p", [check(kind="ping")])
    with pytest.raises(Failure, match="at most 64"):
        spec.read_checks("p", [check(name="c%d" % i) for i in range(65)])


@pytest.mark.parametrize(
    "field, value, ok",
    [
        ("name", "db's up", True),
        ("name", " leading space", False),
        ("name", "x" * 129, False),
        ("http", "/health?x=1", True),
        ("http", "/a b", False),
        ("unit", "nginx@1.service", True),
        ("role", "ns.role_name", True),
        ("role", "a.b.c", True),
        ("role", "acme.kit.web", True),
        ("role", "acme.kit.web.x", False),
        ("role", "Acme.kit.web", False),
        ("role", "acme..web", False),
        ("role", ".hidden", False),
        ("text", "é" * 4096, False),
        ("file", "/var/run/x", True),
    ],
)
def test_field_rules(field, value, ok):
    assert bool(spec.FIELD_RULES[field](value)) is ok


def test_the_image_must_have_the_roles_the_spec_expects():
    doc = minimal(baked={"base": "sha256:b"})
    manifest = {"installed": {"nginx": "sha256:1"}, "baked": {"base": "sha256:b"}}
    spec.check_image(doc, manifest)
    with pytest.raises(Failure, match="role nginx on image .* has hash sha256:2"):
        spec.check_image(doc, {**manifest, "installed": {"nginx": "sha256:2"}})
    with pytest.raises(Failure, match="role base is not baked into image"):
        spec.check_image(doc, {**manifest, "baked": {}})
