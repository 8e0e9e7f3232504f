"""events: the callback's lines and the runner's reading of them."""

import json

from parbake_runner import events


def test_a_record_is_redacted_but_its_structure_is_not():
    secrets = {"pw": "hunter2-long"}
    rec = events.record(
        {"event": "failed", "role": "hunter2-long", "task": "use hunter2-long", "msg": 1},
        secrets,
        t=1.5,
    )
    assert rec == {
        "event": "failed",
        "role": "hunter2-long",
        "task": "use <secret pw>",
        "msg": 1,
        "t": 1.5,
    }


def test_unreadable_secrets_withhold_every_text():
    rec = events.record({"event": "task", "task": "anything"}, None, t=0)
    assert rec["task"] == events.WITHHELD and rec["event"] == "task"


def test_lines_are_sorted_json_and_the_console_copy_has_no_message():
    rec = {"t": 2.0, "event": "failed", "msg": "role output", "role": "r"}
    assert events.line(rec) == json.dumps(rec, sort_keys=True)
    shown = events.console_line(rec)
    assert shown.startswith(events.PREFIX)
    assert "role output" not in shown
    assert json.loads(shown[len(events.PREFIX) :]) == {"event": "failed", "role": "r", "t": 2.0}


def test_a_message_is_cut_after_redaction():
    value = "x" * 790 + "secretvalue"
    got = events.short_msg(value, {"s": "secretvalue"})
    assert len(got) == 800 and got.endswith("<secret s>"[:10])
    assert "secretvalue" not in got


def evs(*items):
    return [dict(zip(("event", "role", "task", "t"), item, strict=True)) for item in items]


def test_role_results_sum_tasks_and_take_the_first_failure():
    ran = evs(
        ("task", "a", "one", 1.0),
        ("ok", "a", "one", 1.5),
        ("task", "a", "two", 2.0),
        ("failed", "a", "two", 4.0),
        ("task", "b", "x", 5.0),
        ("skipped", "b", "x", 5.25),
        ("task", None, "Gathering Facts", 6.0),
        ("ok", None, "Gathering Facts", 7.0),
    )
    got = events.role_results(ran, ["a", "b", "c"])
    assert got["a"]["tasks"] == 2 and got["a"]["duration_s"] == 2.5
    assert got["a"]["failed"] == "two: " and got["a"]["failed_task"] == "two"
    assert got["b"] == {
        "tasks": 1,
        "duration_s": 0.25,
        "failed": None,
        "failed_task": None,
        "started": 1,
        "last_at": None,
    }
    assert got["c"]["tasks"] == 0


def test_the_tail_returns_whole_lines_only(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = events.EventTail(str(path))
    assert tail.new_events() == []
    path.write_text('{"event": "task"}\n{"event": "o')
    assert tail.new_events() == [{"event": "task"}]
    with open(path, "a") as f:
        f.write('k"}\nnot json\n')
    assert tail.new_events() == [{"event": "ok"}]
    assert events.read_events(str(tmp_path / "missing")) == []


def test_a_task_of_an_included_role_or_a_dependency_counts_toward_the_planned_role():
    ran = [
        {"event": "task", "role": "wrapper", "task": "include", "t": 1.0, "at": "tasks/main.yml:1"},
        {"event": "ok", "role": "wrapper", "task": "include", "t": 1.5},
        {
            "event": "task",
            "role": "inner",
            "chain": ["inner", "wrapper"],
            "task": "x",
            "t": 2.0,
            "at": "tasks/x.yml:3",
        },
        {
            "event": "failed",
            "role": "inner",
            "chain": ["inner", "wrapper"],
            "task": "x",
            "t": 2.5,
            "msg": "boom",
        },
    ]
    got = events.role_results(ran, ["first", "wrapper"])
    assert got["wrapper"]["tasks"] == 2 and got["wrapper"]["started"] == 2
    assert got["wrapper"]["failed"] == "x (inner/tasks/x.yml:3): boom"
    assert got["wrapper"]["last_at"] == "tasks/x.yml:3"
    # a role the plan runs itself keeps its own tasks
    assert (
        events.owner({"role": "inner", "chain": ["inner", "wrapper"]}, ["inner", "wrapper"])
        == "inner"
    )
    assert events.owner({"role": "other"}, ["wrapper"]) is None
