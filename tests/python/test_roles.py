"""roles: what a finished, timed-out or blocked run means for each role's entry."""

from parbake_runner import roles

LOG = "/var/log/parbake/launch.log"


def result(tasks=1, duration=1.0, failed=None, task=None):
    return {"tasks": tasks, "duration_s": duration, "failed": failed, "failed_task": task}


def entries(*names):
    return {n: {"name": n, "status": "pending"} for n in names}


def test_a_clean_run_marks_every_role_ok():
    by_name = entries("a", "b")
    got = roles.account(["a", "b"], {"a": result(), "b": result(0)}, 0, by_name, LOG)
    assert got == (None, None, {})
    assert [e["status"] for e in by_name.values()] == ["ok", "ok"]


def test_a_failed_role_fails_the_launch_and_the_later_ones_did_not_run():
    by_name = entries("a", "b", "c")
    results = {"a": result(), "b": result(2, 3.0, "boom: secret detail", "boom"), "c": result(0)}
    error, public, sentences = roles.account(["a", "b", "c"], results, 2, by_name, LOG)
    assert error == "role b failed at boom: secret detail"
    assert public == 'role b failed at task "boom"; its output is in %s (root only)' % LOG
    assert sentences == {"b": 'failed at task "boom"; its output is in %s (root only)' % LOG}
    assert [e["status"] for e in by_name.values()] == ["ok", "failed", "not-run"]
    assert by_name["b"]["error"] == "boom: secret detail"


def test_a_playbook_that_fails_before_any_role_names_its_exit_code():
    by_name = entries("a")
    error, public, _ = roles.account(["a"], {"a": result(0)}, 4, by_name, LOG)
    assert error == "ansible-playbook exited 4 before any role failed; see %s" % LOG
    assert public is None
    assert by_name["a"]["status"] == "not-run"


def test_a_playbook_that_stops_inside_a_role_fails_that_role_naming_where():
    by_name = entries("a", "b", "c")
    results = {"a": result(), "b": result(4, 2.0), "c": result(0)}
    results["a"].update(started=1, last_at="tasks/main.yml:2")
    results["b"].update(started=5, last_at="tasks/setup-Debian.yml:30")
    error, public, sentences = roles.account(["a", "b", "c"], results, 4, by_name, LOG)
    assert (
        error
        == "ansible-playbook stopped with exit 4 in b at tasks/setup-Debian.yml:30; see %s" % LOG
    )
    assert (
        public == "role b stopped with exit 4 at tasks/setup-Debian.yml:30; "
        "its output is in %s (root only)" % LOG
    )
    assert sentences == {
        "b": "stopped with exit 4 at tasks/setup-Debian.yml:30; its output is in %s (root only)"
        % LOG
    }
    assert [e["status"] for e in by_name.values()] == ["ok", "failed", "not-run"]
    assert (
        by_name["b"]["error"]
        == "ansible-playbook stopped with exit 4 in b at tasks/setup-Debian.yml:30"
    )


def test_a_timeout_fails_the_running_role_only():
    by_name = entries("a", "b", "c")
    results = {"a": result(), "b": result(3, 9.0), "c": result(0)}
    roles.timed_out(["a", "b", "c"], 1, results, by_name, ' at task "wait"')
    assert by_name["b"] == {
        "name": "b",
        "status": "failed",
        "error": 'stopped by the launch timeout at task "wait"',
        "duration_s": 9.0,
        "tasks": 3,
    }
    assert by_name["c"]["status"] == "not-run"
    assert by_name["a"]["status"] == "pending", "an earlier role keeps what follow() set"


def test_a_blocked_step_fails_the_first_pending_check():
    status = {
        "roles": [{"status": "ok"}, {"status": "pending"}],
        "checks": [{"status": "ok"}, {"status": "pending"}, {"status": "pending"}],
    }
    roles.blocked(status, "stopped")
    assert [r["status"] for r in status["roles"]] == ["ok", "not-run"]
    assert [c["status"] for c in status["checks"]] == ["ok", "failed", "not-run"]
    assert status["checks"][1]["error"] == "stopped"


def test_roles_finished_before_a_later_role_started():
    by_name = entries("a", "b", "c")
    results = {"a": result(2, 1.5), "b": result(1, 0.5, "x: y"), "c": result(0)}
    done = roles.finished_before(["a", "b", "c"], 0, 2, results, by_name)
    assert done == ["a", "b"]
    assert by_name["a"]["status"] == "ok" and by_name["b"]["status"] == "failed"
    assert by_name["c"]["status"] == "pending"


OLD = """ERROR! couldn't resolve module/action 'nosuch.collection.module'.

The error appears to be in '/opt/parbake/roles/pb/tasks/setup.yml': line 1, column 3, but may
be elsewhere in the file depending on the exact syntax problem.
"""
NEW = """[WARNING]: a warning first
Origin: /opt/parbake/roles/pb/tasks/main.yml:9:3

[ERROR]: couldn't resolve module/action 'nosuch.collection.module'.
Origin: /opt/parbake/collections/ansible_collections/ns/c/roles/r/tasks/setup.yml:12:3

<<< caused by >>>
Origin: /opt/parbake/roles/pb/tasks/other.yml:40:1
"""


def test_the_error_origin_is_read_in_both_forms_of_ansible_core():
    assert roles.error_origin(OLD) == "tasks/setup.yml:1"
    # 2.19 on: the first Origin after the last error, not a warning's before it
    assert roles.error_origin(NEW) == "tasks/setup.yml:12"
    assert roles.error_origin("Origin: /x/tasks/a.yml:3:1\n") is None
    assert roles.error_origin("PLAY RECAP\nok=1\n") is None
    assert roles.error_origin("ERROR! no location said\n") is None
    assert roles.error_origin("[ERROR]: x\nOrigin: /run/parbake/launch.yml:4:3\n") == "launch.yml:4"


def test_a_stop_between_tasks_is_named_where_ansible_core_said():
    by_name = entries("a", "b")
    results = {"a": result(1, 1.0), "b": result(0)}
    results["a"].update(started=3, last_at="tasks/main.yml:33")
    error, public, _ = roles.account(["a", "b"], results, 2, by_name, LOG, "tasks/main.yml:52")
    assert error == "ansible-playbook stopped with exit 2 in a at tasks/main.yml:52; see %s" % LOG
    assert public.startswith("role a stopped with exit 2 at tasks/main.yml:52; ")
    # no origin: where the last task started, as before
    by_name = entries("a", "b")
    error, _, _ = roles.account(["a", "b"], results, 2, by_name, LOG)
    assert " at tasks/main.yml:33;" in error
