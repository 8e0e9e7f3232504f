"""resume: the roles a run plans, why a run resumes, the fast path and the lock."""

import json

from parbake_runner import resume

SPEC = {
    "stack": "web",
    "roles": [{"name": n, "hash": "h-" + n} for n in ("base", "a", "b", "c")],
}


def entries():
    return {r["name"]: {"name": r["name"], "status": "pending"} for r in SPEC["roles"]}


def test_a_new_run_runs_every_role_not_baked():
    by_name = entries()
    todo, interrupted = resume.plan_roles(SPEC, {"base": "h-base"}, {}, False, "x", by_name)
    assert todo == ["a", "b", "c"] and interrupted == []
    assert by_name["base"]["status"] == "baked"


def test_a_role_baked_with_another_hash_runs():
    todo, _ = resume.plan_roles(SPEC, {"base": "old"}, {}, False, "x", entries())
    assert todo == ["base", "a", "b", "c"]


def test_a_rerun_skips_what_succeeded():
    previous = {"a": {"name": "a", "status": "ok", "duration_s": 3.0}, "b": {"status": "failed"}}
    by_name = entries()
    todo, _ = resume.plan_roles(SPEC, {}, previous, False, "x", by_name)
    assert todo == ["base", "b", "c"]
    assert by_name["a"] == {
        "name": "a",
        "status": "skipped",
        "duration_s": 0.0,
        "note": "succeeded in an earlier run",
    }


def test_a_resumed_run_keeps_done_roles_and_reruns_the_interrupted_one():
    previous = {"a": {"name": "a", "status": "ok", "duration_s": 3.0}, "b": {"status": "running"}}
    by_name = entries()
    todo, interrupted = resume.plan_roles(SPEC, {}, previous, True, "the machine rebooted", by_name)
    assert todo == ["base", "b", "c"] and interrupted == ["b"]
    assert by_name["a"]["duration_s"] == 3.0 and by_name["a"]["status"] == "ok"
    assert by_name["b"]["note"] == "interrupted (the machine rebooted); run again"


def test_the_resume_reason_is_a_reboot_only_when_the_boot_id_changed():
    assert resume.resume_reason({"boot_id": "1"}, "2") == "the machine rebooted"
    assert resume.resume_reason({"boot_id": "1"}, "1") == "the run was stopped"
    assert resume.resume_reason({"boot_id": None}, "1") == "the run was stopped"
    assert resume.resume_reason(None, "1") == "the run was stopped"


def test_previous_status_is_that_of_the_same_spec_only(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    monkeypatch.setattr(resume, "STATUS_PATH", str(path))
    assert resume.previous_status("d1") is None
    path.write_text(json.dumps({"spec_digest": "d1", "state": "done"}))
    assert resume.previous_status("d1")["state"] == "done"
    assert resume.previous_status("d2") is None
    path.write_text("[not a status")
    assert resume.previous_status("d1") is None


def test_the_fast_path_is_taken_once_the_launch_is_done(capsys):
    assert not resume.already_done(SPEC, None)
    assert not resume.already_done(SPEC, {"state": "failed"})
    assert resume.already_done(SPEC, {"state": "done", "finished_at": 0})
    assert (
        "already done for this spec (finished at 1970-01-01T00:00:00Z)" in capsys.readouterr().out
    )


def test_one_run_holds_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(resume, "RUN", str(tmp_path))
    first = resume.take_lock()
    assert first is not None
    assert resume.take_lock() is None
    first.close()
    again = resume.take_lock()
    assert again is not None
    again.close()
