//! Shims of baked roles (`parbake-roles shim`, one builder for the launch, the bake of a stack
//! layer, `parbake validate` and scripts/chroot-roles.sh): only the entry point and the meta
//! dependencies of a baked role become no-ops; its defaults, handlers, templates and other
//! task files stay. Run for real with the pinned ansible-core.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::runner::Image;
use crate::util::{copy_dir, repo, Fixture};

/// `dep`, as baked: defaults, a handler, templates, an entry point that must not run again and
/// a second task file; and `app`, which depends on it, reads its default, notifies its handler
/// and runs its second task file. Every effect is a file in `{{ out_dir }}`.
fn write_dep_and_app(roles: &Path) {
    let files = [
        ("dep/defaults/main.yml", "dep_port: 8123\n"),
        (
            "dep/handlers/main.yml",
            "- name: restart dep\n  ansible.builtin.copy:\n    content: \"restarted\\n\"\n    dest: \"{{ out_dir }}/dep-handler\"\n    mode: \"0644\"\n",
        ),
        (
            "dep/tasks/main.yml",
            "- name: dep entry point\n  ansible.builtin.copy:\n    content: \"ran\\n\"\n    dest: \"{{ out_dir }}/dep-main\"\n    mode: \"0644\"\n",
        ),
        (
            "dep/tasks/extra.yml",
            "- name: dep extra\n  ansible.builtin.template:\n    src: extra.j2\n    dest: \"{{ out_dir }}/dep-extra\"\n    mode: \"0644\"\n",
        ),
        ("dep/templates/extra.j2", "extra on {{ dep_port }}\n"),
        ("dep/meta/main.yml", "dependencies: []\n"),
        ("app/meta/main.yml", "dependencies:\n  - dep\n"),
        (
            "app/tasks/main.yml",
            "- name: app reads dep's default\n  ansible.builtin.copy:\n    content: \"port {{ dep_port }}\"\n    dest: \"{{ out_dir }}/app-port\"\n    mode: \"0644\"\n  notify: restart dep\n\
             - name: app runs dep's other task file\n  ansible.builtin.include_role:\n    name: dep\n    tasks_from: extra\n",
        ),
    ];
    for (rel, text) in files {
        let p = roles.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// What `app` must leave when `dep` is baked: dep's default read, its handler run, its extra
/// task file run with its template, and its entry point not run again.
fn assert_app_effects(out: &Path, context: &str) {
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_default();
    assert_eq!(read("app-port"), "port 8123", "dep's default: {context}");
    assert_eq!(
        read("dep-handler"),
        "restarted\n",
        "dep's handler: {context}"
    );
    assert_eq!(
        read("dep-extra"),
        "extra on 8123\n",
        "dep's extra.yml: {context}"
    );
    assert!(
        !out.join("dep-main").exists(),
        "dep's tasks/main.yml ran again: {context}"
    );
}

#[test]
fn at_launch_a_baked_dependency_keeps_its_defaults_handlers_and_task_files() {
    let img = Image::new(&[("dep", &[], ""), ("app", &["dep"], "")], &["dep"]);
    write_dep_and_app(&img.path("opt/parbake/roles"));
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let spec = img.spec(&["app"], &["dep"], json!({"out_dir": out}), json!({}));
    let (code, stdout) = img.run(&spec, &[]);
    let log = std::fs::read_to_string(img.path("var/log/parbake/launch.log")).unwrap_or_default();
    assert_eq!(code, 0, "{stdout}\n{log}");
    assert_eq!(img.status()["state"], "done");
    assert_eq!(img.role_status("app"), "ok");
    assert_app_effects(&out, &log);
}

/// A rendered payload's absolute paths on the builder, moved under `tmp` so the payload runs
/// here unprivileged.
fn relocate(payload: &Path, tmp: &Path) {
    let moves = [
        ("/tmp/parbake-payload", payload.to_path_buf()),
        ("/var/lib/parbake", tmp.join("var-lib")),
        ("/var/log/parbake", tmp.join("var-log")),
        ("/opt/parbake", tmp.join("opt-parbake")),
        ("/etc/systemd/system", tmp.join("etc-systemd")),
    ];
    std::fs::create_dir_all(tmp.join("opt-parbake/layers")).unwrap();
    for name in ["bake.sh", "install.sh", "bake.yml", "ansible.cfg"] {
        let p = payload.join(name);
        let mut text = std::fs::read_to_string(&p).unwrap();
        for (from, to) in &moves {
            text = text.replace(from, to.to_str().unwrap());
        }
        std::fs::write(&p, text).unwrap();
    }
}

/// The rendered bake of a stack layer (`parbake render --promote app`: dep baked by the base
/// layer, app run in the stack layer), run here: its own bake.sh (which builds the shims from
/// shims.json with the payload's runner), ansible.cfg and bake.yml, with the builder's
/// absolute paths moved into a temp dir (relocate) and the roles copied in as a bake does.
#[test]
fn at_bake_a_stack_layer_keeps_a_baked_dependencys_defaults_handlers_and_task_files() {
    let f = Fixture::bare();
    write_dep_and_app(&f.root().join("roles"));
    f.image("img", &["dep"], &[]).stack("web", "img", &["app"]);
    let rendered = f.root().join("rendered");
    let r = f.run(&[
        "render",
        "web",
        "--promote",
        "app",
        "-o",
        rendered.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let payload = stack_layer_payload(&rendered);
    let shims: Value =
        serde_json::from_str(&std::fs::read_to_string(payload.join("shims.json")).unwrap())
            .unwrap();
    assert_eq!(shims, json!(["dep"]));
    copy_dir(&f.root().join("roles"), &payload.join("all-roles"));
    let tmp = f.root().join("builder");
    let out = tmp.join("out");
    std::fs::create_dir_all(&out).unwrap();
    relocate(&payload, &tmp);
    let vars_path = payload.join("vars.json");
    let mut vars: Value =
        serde_json::from_str(&std::fs::read_to_string(&vars_path).unwrap()).unwrap();
    vars["out_dir"] = json!(out);
    std::fs::write(&vars_path, vars.to_string()).unwrap();
    let bake = Command::new("bash")
        .arg(payload.join("bake.sh"))
        .env("PATH", venv_path())
        .env("ANSIBLE_HOME", tmp.join("ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", tmp.join("ansible-tmp"))
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&bake.stdout).into_owned() + &String::from_utf8_lossy(&bake.stderr);
    assert!(bake.status.success(), "{log}");
    assert_app_effects(&out, &log);
    assert!(
        payload.join("shim/dep/handlers").is_symlink(),
        "bake.sh built the shims"
    );
    assert!(
        tmp.join("opt-parbake/manifest.json").is_file(),
        "the whole bake.yml ran: {log}"
    );
    // install.sh put the runner's package beside the runner, as on an image
    for (name, text) in parbake::contract::RUNNER_PACKAGE {
        let installed = tmp.join("opt-parbake/lib/parbake_runner").join(name);
        assert_eq!(
            std::fs::read_to_string(&installed).unwrap(),
            *text,
            "{name}"
        );
    }
}

fn stack_layer_payload(rendered: &Path) -> PathBuf {
    let payloads = layer_payloads(rendered);
    assert_eq!(payloads.len(), 2, "{payloads:?}");
    payloads[1].clone()
}

/// The payload directory of each layer of a `parbake render` output, base first.
pub(crate) fn layer_payloads(rendered: &Path) -> Vec<PathBuf> {
    let mut layers: Vec<PathBuf> = std::fs::read_dir(rendered.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    layers.sort();
    layers.into_iter().map(|l| l.join("payload")).collect()
}

fn venv_path() -> String {
    format!(
        "{}:{}",
        crate::util::ansible_bin().display(),
        std::env::var("PATH").unwrap()
    )
}

// ---- the builder itself -------------------------------------------------------------------

/// `parbake-roles shim` from the repo's runner: exit code and stderr.
fn shim(roles: &Path, out: &Path, list: &Value) -> (i32, String) {
    let list_path = roles.parent().unwrap().join("shims.json");
    std::fs::write(&list_path, list.to_string()).unwrap();
    let o = Command::new("python3")
        .arg(repo().join("src/contract/assets/parbake-roles.py"))
        .args(["shim", "--roles-dir"])
        .arg(roles)
        .arg("--out")
        .arg(out)
        .arg("--list")
        .arg(&list_path)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// A shim entry is a relative symlink to the real role's entry (so a shim built outside a
/// chroot works inside it).
fn assert_links_to(shim_entry: &Path, real: &Path) {
    let target = std::fs::read_link(shim_entry)
        .unwrap_or_else(|e| panic!("{} is not a symlink: {e}", shim_entry.display()));
    assert!(target.is_relative(), "{}", target.display());
    assert_eq!(
        shim_entry.canonicalize().unwrap(),
        real.canonicalize().unwrap()
    );
}

fn assert_no_op_entry_points(shim: &Path) {
    assert!(!shim.join("tasks").is_symlink() && shim.join("tasks").is_dir());
    let tasks: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(shim.join("tasks/main.yml")).unwrap())
            .unwrap();
    assert_eq!(tasks, serde_yaml::Value::Sequence(vec![]));
    let meta: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(shim.join("meta/main.yml")).unwrap())
            .unwrap();
    assert_eq!(meta["dependencies"], serde_yaml::Value::Sequence(vec![]));
    let meta_entries: Vec<_> = std::fs::read_dir(shim.join("meta"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        meta_entries,
        ["main.yml"],
        "meta/ holds only the no-op main.yml"
    );
}

#[test]
fn the_shim_builder_links_everything_but_the_entry_points() {
    let tmp = tempfile::tempdir().unwrap();
    let roles = tmp.path().join("roles");
    write(
        &roles,
        &[
            ("full/tasks/main.yml", "- ansible.builtin.fail:\n"),
            ("full/tasks/extra.yml", "[]\n"),
            ("full/tasks/sub/deep.yml", "[]\n"),
            ("full/handlers/main.yml", "[]\n"),
            ("full/defaults/main.yml", "x: 1\n"),
            ("full/vars/main.yml", "y: 1\n"),
            ("full/templates/t.j2", "t\n"),
            ("full/files/f", "f\n"),
            ("full/library/m.py", "\n"),
            ("full/filter_plugins/p.py", "\n"),
            ("full/meta/main.yml", "dependencies: [other]\n"),
            ("full/meta/argument_specs.yml", "argument_specs: {}\n"),
            ("yaml/tasks/main.yaml", "- ansible.builtin.fail:\n"),
            ("yaml/tasks/main.json", "[]"),
            ("notasks/defaults/main.yml", "z: 1\n"),
            ("ns.role/tasks/main.yml", "- ansible.builtin.fail:\n"),
            ("ns.role/handlers/main.yml", "[]\n"),
        ],
    );
    let out = tmp.path().join("shim");
    let (code, stderr) = shim(&roles, &out, &json!(["full", "yaml", "notasks", "ns.role"]));
    assert_eq!(code, 0, "{stderr}");

    let full = out.join("full");
    assert_no_op_entry_points(&full);
    for entry in [
        "tasks/extra.yml",
        "tasks/sub",
        "handlers",
        "defaults",
        "vars",
        "templates",
        "files",
        "library",
        "filter_plugins",
    ] {
        assert_links_to(&full.join(entry), &roles.join("full").join(entry));
    }
    // the main.yaml variant is replaced as well, and no other entry point is left
    let yaml = out.join("yaml");
    assert_no_op_entry_points(&yaml);
    let tasks: Vec<_> = std::fs::read_dir(yaml.join("tasks"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(tasks, ["main.yml"]);
    // a role with no tasks/ gets the no-op entry point and keeps the rest
    assert_no_op_entry_points(&out.join("notasks"));
    assert_links_to(
        &out.join("notasks/defaults"),
        &roles.join("notasks/defaults"),
    );
    // a namespaced name is a directory like any other
    assert_no_op_entry_points(&out.join("ns.role"));
    assert_links_to(
        &out.join("ns.role/handlers"),
        &roles.join("ns.role/handlers"),
    );
}

#[test]
fn the_shim_builder_refuses_bad_input_with_a_clear_message_and_no_partial_output() {
    let tmp = tempfile::tempdir().unwrap();
    let roles = tmp.path().join("roles");
    write(&roles, &[("dep/tasks/main.yml", "[]\n")]);
    let out = tmp.path().join("shim");
    let cases: [(Value, &str); 7] = [
        (
            json!(["dep", "gone"]),
            "cannot shim role gone: it is not installed in",
        ),
        (json!(["../dep"]), "not a role name"),
        (json!(["a/b"]), "not a role name"),
        (json!([".hidden"]), "not a role name"),
        (json!([""]), "not a role name"),
        (
            json!({"roles": ["dep"]}),
            "must be a JSON array of role names",
        ),
        (json!([1]), "must be a JSON array of role names"),
    ];
    for (list, message) in cases {
        let (code, stderr) = shim(&roles, &out, &list);
        assert_eq!(code, 1, "{list}: {stderr}");
        assert!(
            stderr.starts_with("parbake-roles shim: ") && stderr.contains(message),
            "{list}: {stderr}"
        );
        assert!(!stderr.contains("Traceback"), "{stderr}");
        assert!(!out.exists(), "{list}: partial output");
    }
    // an output dir that holds something already is not overwritten
    write(&out, &[("keep", "mine\n")]);
    let (code, stderr) = shim(&roles, &out, &json!(["dep"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is not an empty directory"), "{stderr}");
    assert_eq!(std::fs::read_to_string(out.join("keep")).unwrap(), "mine\n");
}
