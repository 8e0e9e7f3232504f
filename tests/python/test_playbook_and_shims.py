"""playbook: values Ansible never templates, and the play; shims: the stand-ins of baked roles."""

import os

import pytest
from parbake_runner import playbook, shims
from parbake_runner.base import Failure


def test_only_string_leaves_are_wrapped_unsafe():
    value = {"a": ["{{ x }}", 1, None, True], "b": {"c": "y"}}
    assert playbook.unsafe(value) == {
        "a": [{"__ansible_unsafe": "{{ x }}"}, 1, None, True],
        "b": {"c": {"__ansible_unsafe": "y"}},
    }


def test_play_vars_wrap_literals_and_add_parbakes_own():
    spec = {
        "vars": {"plain": "{{ 1 + 1 }}", "lit": "{{ shop }}"},
        "literal": ["lit"],
        "secrets": {},
        "stack": "web",
        "image": "img",
    }
    got = playbook.play_vars(spec)
    assert got["plain"] == "{{ 1 + 1 }}"
    assert got["lit"] == {"__ansible_unsafe": "{{ shop }}"}
    assert got["parbake_phase"] == "launch" and got["parbake_layer"] == ""


@pytest.mark.parametrize(
    "facts, gather, subset",
    [(None, True, None), ([], False, None), (["network"], True, ["network"])],
)
def test_the_play_gathers_the_facts_the_spec_names(facts, gather, subset):
    spec = {"stack": "web"} if facts is None else {"stack": "web", "facts": facts}
    play = playbook.launch_play(spec, "/run/vars.json", ["a"])
    assert play["gather_facts"] is gather
    assert play.get("gather_subset") == subset
    assert play["roles"] == ["a"] and play["vars_files"] == ["/run/vars.json"]
    assert play["vars"] == {"ansible_python_interpreter": "/usr/bin/python3"}


def role(root, name, tasks=("main.yml", "extra.yml"), extra=("defaults", "handlers")):
    d = root / name
    (d / "tasks").mkdir(parents=True)
    (d / "meta").mkdir()
    for t in tasks:
        (d / "tasks" / t).write_text("- debug: msg=%s\n" % t)
    (d / "meta" / "main.yml").write_text("dependencies: [other]\n")
    (d / "meta" / "argument_specs.yml").write_text("argument_specs: {}\n")
    for e in extra:
        (d / e).mkdir()
    return d


def test_a_shim_keeps_everything_but_the_entry_point_and_dependencies(tmp_path):
    roles = tmp_path / "roles"
    role(roles, "dep")
    out = tmp_path / "shim"
    shims.build_shims(str(roles), str(out), ["dep"])
    shim = out / "dep"
    assert (shim / "tasks" / "main.yml").read_text() == shims.SHIM_TASKS
    assert (shim / "meta" / "main.yml").read_text() == shims.SHIM_META
    assert sorted(os.listdir(shim / "meta")) == ["main.yml"]
    assert (shim / "tasks" / "extra.yml").is_symlink()
    assert not os.path.isabs(os.readlink(shim / "defaults"))
    assert (shim / "handlers").resolve() == (roles / "dep" / "handlers").resolve()


@pytest.mark.parametrize(
    "names, needle",
    [
        (["../x"], "not a role name"),
        (["a.b.c.d"], "not a role name"),
        (["absent"], "it is not installed"),
    ],
)
def test_a_bad_shim_list_is_refused(tmp_path, names, needle):
    with pytest.raises(Failure, match=needle):
        shims.build_shims(str(tmp_path), str(tmp_path / "out"), names)


def test_shims_are_built_only_into_an_empty_directory(tmp_path):
    roles = tmp_path / "roles"
    role(roles, "dep")
    out = tmp_path / "shim"
    out.mkdir()
    (out / "x").write_text("")
    with pytest.raises(Failure, match="exists and is not an empty directory"):
        shims.build_shims(str(roles), str(out), ["dep"])


def collection(root, ns, name, roles):
    top = root / "ansible_collections" / ns / name
    (top / "plugins" / "modules").mkdir(parents=True)
    (top / "MANIFEST.json").write_text("{}")
    for r in roles:
        role(top / "roles", r)
    return top


def test_a_collection_with_installed_roles_is_overlaid(tmp_path):
    """The overlay of acme.kit: its other entries linked, `web` (installed, not baked) is the
    installed copy, `base` (baked) a shim of the installed copy, `db` (not installed) the
    collection's own."""
    real = collection(tmp_path / "collections", "acme", "kit", ["web", "base", "db"])
    roles = tmp_path / "roles"
    role(roles, "acme.kit.web")
    role(roles, "acme.kit.base")
    role(roles, "plain")
    out = tmp_path / "shim"
    shims.build_shims(
        str(roles), str(out), ["acme.kit.base", "plain"], str(tmp_path / "collections")
    )
    top = out / shims.OVERLAY / "ansible_collections" / "acme" / "kit"
    assert (top / "MANIFEST.json").is_symlink() and (top / "plugins").is_symlink()
    assert not os.path.isabs(os.readlink(top / "plugins"))
    assert (top / "roles" / "web").resolve() == (roles / "acme.kit.web").resolve()
    assert (top / "roles" / "db").resolve() == (real / "roles" / "db").resolve()
    base = top / "roles" / "base"
    assert (base / "tasks" / "main.yml").read_text() == shims.SHIM_TASKS
    assert (base / "handlers").resolve() == (roles / "acme.kit.base" / "handlers").resolve()
    # a collection role is shimmed only in the overlay, a plain one on the roles path
    assert (out / "plain" / "tasks" / "main.yml").read_text() == shims.SHIM_TASKS
    assert not (out / "acme.kit.base").exists()


def test_a_collection_role_needs_the_collections_to_be_shimmed(tmp_path):
    roles = tmp_path / "roles"
    role(roles, "acme.kit.base")
    with pytest.raises(Failure, match="--collections-dir"):
        shims.build_shims(str(roles), str(tmp_path / "out"), ["acme.kit.base"])
    with pytest.raises(Failure, match="cannot overlay collection acme.kit"):
        shims.build_shims(
            str(roles), str(tmp_path / "out2"), ["acme.kit.base"], str(tmp_path / "none")
        )
