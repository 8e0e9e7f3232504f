//! Planner tables for the two hashes beside the layer hash: the run hash (what running a
//! layer's roles depends on) and the payload hash (what every image carries for launch). Each
//! row edits one file of the example project and says which run hashes change.

use crate::util::Fixture;

/// (base layer run hash, web's stack layer promoting webapp, worker's promoting worker,
/// payload hash)
fn hashes(f: &Fixture) -> (String, String, String, String) {
    let web = f.plan("web", &["webapp"]);
    let worker = f.plan("worker", &["worker"]);
    assert_eq!(web.layers[0].run_hash, worker.layers[0].run_hash);
    assert_eq!(web.layers[0].payload_hash, web.layers[1].payload_hash);
    assert_eq!(web.layers[1].payload_hash, worker.layers[1].payload_hash);
    (
        web.layers[0].run_hash.clone(),
        web.layers[1].run_hash.clone(),
        worker.layers[1].run_hash.clone(),
        web.layers[0].payload_hash.clone(),
    )
}

fn append(f: &Fixture, rel: &str, text: &str) {
    let path = f.root().join(rel);
    let mut old = std::fs::read_to_string(&path).unwrap_or_default();
    old.push_str(text);
    f.write(rel, &old);
}

#[test]
fn each_edit_changes_the_run_hashes_of_the_layers_that_run_it_and_only_those() {
    // (what is edited, the file, base run changes, web run changes, worker run changes)
    let table: [(&str, &str, &str, bool, bool, bool); 11] = [
        (
            "a launch-only role",
            "roles/identity/tasks/main.yml",
            "\n",
            false,
            false,
            false,
        ),
        (
            "a basic role",
            "roles/base/tasks/main.yml",
            "\n",
            true,
            true,
            true,
        ),
        (
            "a basic role no promoted role needs",
            "roles/users/tasks/main.yml",
            "\n",
            true,
            true,
            true,
        ),
        (
            "a promoted role",
            "roles/webapp/tasks/main.yml",
            "\n",
            false,
            true,
            false,
        ),
        (
            "a promoted role's dependency",
            "roles/nginx/tasks/main.yml",
            "\n",
            false,
            true,
            false,
        ),
        (
            "a dependency of both stacks' promoted roles",
            "roles/python/defaults/main.yml",
            "\n",
            false,
            true,
            true,
        ),
        (
            "the other stack's promoted role",
            "roles/worker/tasks/main.yml",
            "\n",
            false,
            false,
            true,
        ),
        (
            "what a launch role stages (the base downloads it)",
            "roles/nginx/meta/parbake.yml",
            "stage_pip: [gunicorn==23.0.0]\n",
            true,
            true,
            true,
        ),
        (
            "a comment in a staging file (the staged lists are the same)",
            "roles/worker/meta/parbake.yml",
            "\n# restaged\n",
            false,
            false,
            true,
        ),
        (
            "group_vars of one stack",
            "group_vars/web.yml",
            "web_tuning: 1\n",
            false,
            true,
            false,
        ),
        (
            "group_vars of every host",
            "group_vars/all.yml",
            "fleet_tuning: 1\n",
            true,
            true,
            true,
        ),
    ];
    for (what, file, text, base, web, worker) in table {
        let f = Fixture::example();
        let before = hashes(&f);
        append(&f, file, text);
        let after = hashes(&f);
        assert_eq!(
            (
                before.0 != after.0,
                before.1 != after.1,
                before.2 != after.2
            ),
            (base, web, worker),
            "{what} ({file}): which run hashes changed (base, web, worker)"
        );
        // every installed role is in the payload; group_vars are bake vars, not payload
        let payload_changes = file.starts_with("roles/");
        assert_eq!(before.3 != after.3, payload_changes, "{what}: payload");
    }
}

#[test]
fn a_launch_only_edit_changes_the_layer_hash_but_no_run_hash() {
    // today's cache key still covers every installed role: this is what a payload refresh
    // (issue 15) will avoid rebaking
    let f = Fixture::example();
    let before = f.plan("web", &["webapp"]);
    append(&f, "roles/identity/tasks/main.yml", "\n");
    let after = f.plan("web", &["webapp"]);
    for (a, b) in before.layers.iter().zip(&after.layers) {
        assert_ne!(a.hash, b.hash, "{}", a.name);
        assert_eq!(a.run_hash, b.run_hash, "{}", a.name);
        assert_ne!(a.payload_hash, b.payload_hash, "{}", a.name);
    }
}

#[test]
fn a_role_a_promoted_role_includes_by_name_counts_as_run() {
    let f = Fixture::bare();
    f.role("base", &[])
        .role("app", &[])
        .role("helper", &[])
        .role("late", &[]);
    f.write(
        "roles/app/tasks/main.yml",
        "- name: helper's tasks\n  ansible.builtin.include_role:\n    name: helper\n",
    );
    for file in ["disk.qcow2", "vmlinuz", "initrd.img"] {
        f.write(&format!("base/{file}"), "fake");
    }
    f.write(
        "images/img.yml",
        "sources:\n  qemu:\n    disk_image: base/disk.qcow2\n    ssh_user: debian\nbasic: [base]\n",
    );
    f.write("images/stacks/s.yml", "image: img\nroles: [app, late]\n");
    let run = |f: &Fixture| f.plan("s", &["app"]).layers[1].run_hash.clone();
    let before = run(&f);
    append(&f, "roles/helper/tasks/main.yml", "\n");
    assert_ne!(
        before,
        run(&f),
        "an included role's content is part of the run"
    );
    let before = run(&f);
    append(&f, "roles/late/tasks/main.yml", "\n");
    assert_eq!(before, run(&f), "a role only run at launch is not");
}

/// A vendored collection counts in a layer's run hash only when a role the layer runs uses it;
/// every image carries it, so the payload hash changes with it everywhere. Bumping acme.kit,
/// which only the stack layer's role comes from, refreshes the base layer and rebakes the
/// stack layer.
#[test]
fn a_collection_counts_in_the_run_hash_of_the_layers_whose_roles_use_it() {
    let f = crate::collection_roles::kit_project();
    f.role("base", &[]);
    f.image("img", &["base"], &[])
        .stack("s", "img", &["acme.kit.web"]);
    let before = f.plan("s", &["acme.kit.web"]);
    let src = f.root().join("sources/acme-kit");
    std::fs::write(
        src.join("roles/web/defaults/main.yml"),
        "web_greeting: bumped\n",
    )
    .unwrap();
    let built = std::process::Command::new(crate::util::repo().join(".venv/bin/ansible-galaxy"))
        .args(["collection", "build", "--force", "--output-path"])
        .arg(f.root().join("sources"))
        .arg(&src)
        .env("ANSIBLE_HOME", f.root().join("sources/.ansible-home"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    let r = f.run(&["vendor", "--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after = f.plan("s", &["acme.kit.web"]);
    let (b, a) = (&before.layers, &after.layers);
    assert_eq!(a[0].run_hash, b[0].run_hash, "base runs no collection role");
    assert_ne!(
        a[0].payload_hash, b[0].payload_hash,
        "every image carries it"
    );
    assert_ne!(
        a[1].run_hash, b[1].run_hash,
        "the stack layer runs acme.kit.web"
    );
    // a filter or lookup by its dotted name is a use too
    f.write(
        "roles/base/templates/motd.j2",
        "{{ 'hi' | acme.kit.shout }}\n",
    );
    let project = f.load();
    assert!(project.roles["base"]
        .dotted_collections
        .contains("acme.kit"));
}
