"""status: the console's lines, the summary, the public status and the timing."""

import json

import pytest
from parbake_runner import status


@pytest.mark.parametrize(
    "seconds, text",
    [(0, "0s"), (59, "59s"), (90, "1m30s"), (600, "10m"), (5400, "1h30m"), (3601, "1h1s")],
)
def test_duration_text(seconds, text):
    assert status.duration_text(seconds) == text


def test_a_console_line_is_one_line(tmp_path, monkeypatch, capsys):
    console = tmp_path / "console"
    monkeypatch.setattr(status, "CONSOLE", str(console))
    status.console("a\nb\rc\x1bd\u2028e")
    assert console.read_text() == "a b c d e\n"
    assert capsys.readouterr().out == "a b c d e\n"


def launch_status(**over):
    doc = {
        "roles": [
            {"name": "base", "status": "baked"},
            {"name": "a", "status": "ok"},
            {"name": "b", "status": "skipped"},
            {"name": "c", "status": "failed", "error": "c: role output"},
            {"name": "d", "status": "not-run"},
        ],
        "duration_s": 12.34,
        "error": "role c failed at c: role output",
    }
    doc.update(over)
    return doc


def test_the_summary_line_counts_roles_and_checks():
    checks = [{"status": "ok"}, {"status": "failed"}]
    line = status.summary_line("failed", "web", 5, launch_status(checks=checks), "role c failed")
    assert line == (
        "parbake: launch failed stack=web roles=5 ok=1 skipped=2 failed=1 failed_role=c "
        'checks=1/2 total=12.3s error="role c failed"'
    )
    done = launch_status(roles=[{"name": "a", "status": "ok"}])
    assert status.summary_line("done", "web", 1, done, None) == (
        "parbake: launch done stack=web roles=1 ok=1 skipped=0 failed=0 total=12.3s"
    )


def test_the_public_status_carries_parbakes_sentences_only():
    st = launch_status()
    shown = status.public_status(st, "role c failed at task", {"c": "failed at task x"})
    assert shown["error"] == "role c failed at task"
    assert [r.get("error") for r in shown["roles"]][3] == "failed at task x"
    assert "role output" not in json.dumps(shown)
    assert st["roles"][3]["error"] == "c: role output", "status.json keeps the message"


def test_the_breakdown_splits_facts_roles_and_handlers(monkeypatch):
    monkeypatch.setattr(status, "UPTIME_AT_START", 20.04)
    monkeypatch.setattr(status, "STARTED_AT", 100.0)
    ran = [
        {"event": "task", "role": None, "task": "Gathering Facts", "t": 103.0},
        {"event": "ok", "t": 104.0},
        {"event": "task", "role": "a", "task": "x", "t": 104.0},
        {"event": "changed", "t": 106.5},
        {"event": "task", "role": "a", "task": "h", "handler": True, "t": 107.0},
        {"event": "ok", "t": 107.5},
    ]
    assert status.breakdown(ran, 101.0, 110.0) == {
        "boot_to_runner_s": 20.0,
        "runner_to_playbook_s": 1.0,
        "playbook_start_s": 2.0,
        "facts_s": 1.0,
        "roles_s": 2.5,
        "handlers_s": 0.5,
        "other_s": 3.0,
    }
