//! Issue 12 in the planner: Galaxy-style `namespace.name` roles through every code path,
//! `include_role`/`import_role` as dependencies (checked and ordered), templated names as
//! warnings, and the collections each launch role uses.

use crate::util::Fixture;

/// A project whose roles include a Galaxy-installed `acme.web` (namespaced), a basic
/// `acme.base`, a launch-only `acme.id`, and `app`, which includes `acme.web`'s task file.
fn galaxy() -> Fixture {
    let f = Fixture::bare();
    f.role("acme.base", &[])
        .role("acme.web", &["acme.base"])
        .role("acme.id", &[])
        .write(
            "roles/acme.web/tasks/vhost.yml",
            "- name: a vhost\n  ansible.builtin.debug: {msg: vhost}\n",
        )
        .write(
            "roles/app/tasks/main.yml",
            "- name: sysctl from a collection\n  ansible.posix.sysctl: {name: vm.swappiness, value: '10'}\n\
             - name: the vhost of acme.web\n  ansible.builtin.include_role:\n    name: acme.web\n    tasks_from: vhost\n",
        )
        .write("roles/app/meta/main.yml", "dependencies: [acme.base]\n")
        .image("img", &["acme.base"], &["acme.id"])
        .stack("s", "img", &["acme.web", "app", "acme.id"]);
    f
}

#[test]
fn namespaced_roles_go_through_plan_promote_render_and_userdata() {
    let f = galaxy();
    let p = f.plan("s", &["acme.web"]);
    assert_eq!(p.layers[0].runs, ["acme.base"]);
    assert_eq!(p.layers[1].runs, ["acme.web"]);
    let launch: Vec<&str> = p.launch.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(launch, ["app", "acme.id"]);
    assert!(p.installed.contains_key("acme.web"));

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let r = f.run(&["render", "s", "--promote", "acme.web", "--output", dir]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let launch_json = std::fs::read_to_string(out.path().join("launch.json")).unwrap();
    assert!(launch_json.contains("\"acme.id\""), "{launch_json}");
    let ud = f.run(&["userdata", "s", "--promote", "acme.web", "--explain"]);
    assert_eq!(ud.code, 0, "{}", ud.stderr);
    assert!(ud.stdout.contains("acme.id"), "{}", ud.stdout);
}

#[test]
fn role_names_other_than_name_or_namespace_name_are_refused_with_the_rule() {
    for bad in ["ns.coll.role", "a..b", "a.-b"] {
        let f = Fixture::bare();
        f.role(bad, &[])
            .image("img", &[], &[])
            .stack("s", "img", &[]);
        let r = f.run(&["plan", "s"]);
        assert_eq!(r.code, 1, "{bad}: {}", r.stderr);
        assert!(
            r.stderr.contains("not a valid role name") && r.stderr.contains("namespace.name"),
            "{bad}: {}",
            r.stderr
        );
    }
}

#[test]
fn an_included_role_in_the_stack_is_ordered_before_the_role_that_includes_it() {
    let f = Fixture::bare();
    f.role("x", &[])
        .write(
            "roles/a/tasks/main.yml",
            "- ansible.builtin.import_role:\n    name: x\n",
        )
        .image("img", &[], &[])
        .stack("s", "img", &["a", "x"]);
    let p = f.plan("s", &[]);
    let launch: Vec<&str> = p.launch.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(launch, ["x", "a"]);
    // an included role that the stack does not list is not run on its own
    let f = Fixture::bare();
    f.role("x", &[])
        .write("roles/a/tasks/main.yml", "- include_role: {name: x}\n")
        .image("img", &[], &[])
        .stack("s", "img", &["a"]);
    let launch: Vec<String> = f
        .plan("s", &[])
        .launch
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(launch, ["a"]);
}

#[test]
fn an_include_of_an_unknown_role_is_an_error_at_the_task_with_a_suggestion() {
    let f = galaxy();
    f.write(
        "roles/app/tasks/more.yml",
        "- name: fine\n  ansible.builtin.debug: {msg: x}\n- name: typo\n  include_role:\n    name: acme.wbe\n",
    );
    let r = f.run(&["plan", "s"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("roles/app/tasks/more.yml:4")
            && r.stderr.contains("include_role of unknown role `acme.wbe`")
            && r.stderr.contains("did you mean `acme.web`"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_include_of_a_role_not_installed_on_the_image_is_an_error() {
    let f = galaxy();
    f.role("extra", &[]).write(
        "roles/app/tasks/main.yml",
        "- ansible.builtin.import_role: {name: extra}\n",
    );
    f.write(
        "images/img.yml",
        &(std::fs::read_to_string(f.root().join("images/img.yml")).unwrap()
            + "installed: [acme.base, acme.web, acme.id, app]\n"),
    );
    let r = f.run(&["plan", "s"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("roles/app/tasks/main.yml:1")
            && r.stderr.contains("not installed on image `img`")
            && r.stderr.contains("add `extra` to `installed`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_templated_include_is_a_warning_naming_the_file_and_line() {
    let f = galaxy();
    f.write(
        "roles/app/tasks/dyn.yml",
        "- name: which\n  include_role:\n    name: \"{{ app_flavour }}\"\n",
    );
    let r = f.run(&["plan", "s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("warning: roles/app/tasks/dyn.yml:2: include_role with a templated name ({{ app_flavour }})"),
        "{}",
        r.stdout
    );
    let j = f.run(&["plan", "s", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert!(v["warnings"][0]
        .as_str()
        .unwrap()
        .starts_with("roles/app/tasks/dyn.yml:2:"));
}

#[test]
fn including_the_entry_point_of_a_baked_role_is_a_warning() {
    let f = galaxy();
    f.write(
        "roles/app/tasks/main.yml",
        "- include_role:\n    name: acme.base\n- include_role: {name: acme.web, tasks_from: vhost}\n",
    );
    let p = f.plan("s", &[]);
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(
        p.warnings[0].starts_with("roles/app/tasks/main.yml:1: include_role of `acme.base` runs its tasks/main.yml, which is a no-op")
            && p.warnings[0].contains("baked in layer 1 (img)"),
        "{}",
        p.warnings[0]
    );
}

#[test]
fn plan_shows_the_collections_each_launch_role_uses() {
    let f = galaxy();
    let p = f.plan("s", &[]);
    let app = p.launch.iter().find(|r| r.name == "app").unwrap();
    assert_eq!(app.collections, ["ansible.posix"]);
    let r = f.run(&["plan", "s"]);
    assert!(
        r.stdout.contains("collections: ansible.posix"),
        "{}",
        r.stdout
    );
}

#[test]
fn group_vars_all_and_the_stack_group_layer_under_the_stack_files_vars() {
    let f = galaxy();
    f.write("group_vars/all.yml", "colour: grey\nsize: 1\nshared: all\n")
        .write("group_vars/all/20-more.yml", "size: 2\n")
        .write("group_vars/s/main.yml", "colour: blue\n")
        .write("group_vars/nobody.yml", "colour: never\n");
    let stack = std::fs::read_to_string(f.root().join("images/stacks/s.yml")).unwrap();
    f.write(
        "images/stacks/s.yml",
        &(stack + "vars: {shared: stack}\nlaunch_vars: {late: true}\n"),
    );
    let before = {
        let g = galaxy();
        g.plan("s", &["acme.web"])
    };
    let p = f.plan("s", &["acme.web"]);
    let show = |v: &parbake::config::Vars, k: &str| serde_json::to_string(&v[k]).unwrap();
    // the base layer is shared by every stack: it sees group `all` only
    assert_eq!(show(&p.layers[0].vars, "colour"), "\"grey\"");
    assert_eq!(show(&p.layers[0].vars, "size"), "2");
    assert!(!p.layers[0].vars.contains_key("late"));
    // the stack layer and the launch see the stack's group, then the stack file's vars
    assert_eq!(show(&p.layers[1].vars, "colour"), "\"blue\"");
    assert_eq!(show(&p.layers[1].vars, "shared"), "\"stack\"");
    assert_eq!(show(&p.launch_vars, "colour"), "\"blue\"");
    assert_eq!(show(&p.launch_vars, "late"), "true");
    // hashed into the layers that run roles
    assert_ne!(p.layers[0].hash, before.layers[0].hash);
    assert_ne!(p.layers[1].hash, before.layers[1].hash);
}

#[test]
fn group_vars_errors_are_located_and_secrets_are_refused_there() {
    let f = galaxy();
    f.write("group_vars/all.yml", "ok: 1\nbad-name: 2\n");
    let r = f.run(&["plan", "s"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("group_vars/all.yml:2")
            && r.stderr.contains("not a valid Ansible variable name"),
        "{}",
        r.stderr
    );
    f.write("group_vars/all.yml", "token: !secret ssm:/x\n");
    let r = f.run(&["plan", "s"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("group_vars/all.yml:1"), "{}", r.stderr);
    f.write(
        "group_vars/all.yml",
        "token: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n",
    );
    let r = f.run(&["plan", "s"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("group_vars/all.yml:1"), "{}", r.stderr);
}

#[test]
fn an_ansible_core_pin_is_an_exact_release_and_part_of_the_base_hash() {
    let f = galaxy();
    let before = f.plan("s", &[]).layers[0].hash.clone();
    let image = std::fs::read_to_string(f.root().join("images/img.yml")).unwrap();
    f.write(
        "images/img.yml",
        &format!("{image}ansible: {{core: \"2.17.7\"}}\n"),
    );
    let p = f.plan("s", &[]);
    assert_ne!(p.layers[0].hash, before);
    assert_eq!(p.ansible_core.as_deref(), Some("2.17.7"));
    assert_eq!(p.layers[0].inputs["ansible-core"], "2.17.7");
    for (bad, says) in [
        ("\">=2.17\"", "not an exact ansible-core release"),
        ("\"2.12.10\"", "older than 2.14.0"),
        ("latest", "not an exact"),
        // Debian 12's Python 3.11 runs 2.19 at most: refused before a bake, naming both
        (
            "\"2.21.5\"",
            "ansible-core 2.21.5 runs on Python 3.12 to 3.14, but the qemu source parbake:debian-12 has Python 3.11",
        ),
    ] {
        f.write(
            "images/img.yml",
            &format!("{image}ansible: {{core: {bad}}}\n"),
        );
        let r = f.run(&["plan", "s"]);
        assert_eq!(r.code, 1, "{bad}: {}", r.stderr);
        assert!(
            r.stderr.contains("images/img.yml")
                && r.stderr.contains("ansible.core")
                && r.stderr.contains(says),
            "{bad}: {}",
            r.stderr
        );
    }
    f.write(
        "images/img.yml",
        &format!("{image}ansible: {{core: \"2.17.7\", extras: 1}}\n"),
    );
    assert_eq!(f.run(&["plan", "s"]).code, 1);
}

#[test]
fn setup_pins_the_venv_to_the_images_ansible_core_pin() {
    let pin = |f: &Fixture| {
        std::process::Command::new("python3")
            .arg(crate::util::repo().join("scripts/ansible-pin.py"))
            .arg(f.root())
            .output()
            .unwrap()
    };
    let f = galaxy();
    let out = pin(&f);
    assert!(out.status.success() && out.stdout.is_empty());
    let image = std::fs::read_to_string(f.root().join("images/img.yml")).unwrap();
    f.write(
        "images/img.yml",
        &format!("{image}ansible:\n  core: \"2.17.7\"\n"),
    );
    assert_eq!(String::from_utf8_lossy(&pin(&f).stdout), "2.17.7\n");
    f.write("images/other.yml", "ansible: {core: 2.16.1}\n");
    let out = pin(&f);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2.16.1 in images/other.yml"));
}
