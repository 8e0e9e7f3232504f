"""secret: the one redact() and the forms of a secret it looks for."""

import base64
import json
import shlex
import urllib.parse

import pytest
from parbake_runner import secret
from parbake_runner.base import Failure

PW = 'hunter2 it\'s "quoted" \\ wörd\nsecond line'
S = {"pw": PW}


@pytest.mark.parametrize(
    "shown",
    [
        PW,
        shlex.quote(PW),
        json.dumps(PW),
        json.dumps(json.dumps(PW)),
        urllib.parse.quote(PW, safe=""),
        repr(PW),
        "second line",
    ],
)
def test_every_shown_form_is_replaced_by_the_marker(shown):
    got = secret.redact("a " + shown + " b", S)
    assert "<secret pw>" in got
    assert PW not in got and "second line" not in got


def test_base64_of_a_secret_is_found():
    value = "correct horse battery"
    text = base64.b64encode(("pre" + value).encode()).decode()
    assert "<secret k>" in secret.redact(text, {"k": value})


def test_a_short_secret_withholds_the_whole_text():
    assert secret.redact("port 4242", {"pin": "42"}) == secret.SHORT_WITHHELD
    assert secret.redact("no pin", {"pin": "42"}) == "no pin"


def test_redacting_twice_changes_nothing_and_markers_stay():
    once = secret.redact("x p4ssw0rd! y", {"x": "p4ssw0rd!"})
    assert once == "x <secret x> y"
    assert secret.redact(once, {"x": "p4ssw0rd!"}) == once


def test_overlapping_secrets_are_hidden_together():
    got = secret.redact("xabcdefghy", {"a": "xabcdefgh", "b": "abcdefghy"})
    assert got == "<secret a><secret b>"


def test_non_text_and_empty_secrets_pass_through():
    assert secret.redact(None, S) is None
    assert secret.redact("text", {}) == "text"
    assert secret.redact("text", {"e": "", "w": "  "}) == "text"


def test_forms_are_bounded():
    forms = secret.secret_forms({"k": "a'b\"c\\d$e`f" * 3})
    assert 0 < len(forms) <= secret.MAX_FORMS


def test_a_file_secret_is_read_less_its_trailing_newlines(tmp_path, monkeypatch):
    monkeypatch.setattr(secret, "RESOLVED", {})
    path = tmp_path / "token"
    path.write_text("s3cr3t-value\n\n")
    assert secret.resolve_secret("token", "file:" + str(path)) == "s3cr3t-value"
    assert secret.RESOLVED == {"token": "s3cr3t-value"}


def test_a_bad_secret_reference_is_refused_without_its_bytes(tmp_path):
    path = tmp_path / "bin"
    path.write_bytes(b"\xffsecret")
    with pytest.raises(Failure, match="is not UTF-8 text") as e:
        secret.resolve_secret("b", "file:" + str(path))
    assert "secret" in str(e.value) and "\\xff" not in str(e.value)
    with pytest.raises(Failure, match="unknown reference"):
        secret.resolve_secret("b", "vault:/x")
    with pytest.raises(Failure, match="must be a string"):
        secret.resolve_secret("b", 1)
