//! Roles inside collections, named by their FQCN (`namespace.collection.role`): a collection
//! built offline by the real `ansible-galaxy collection build` and vendored from its tarball,
//! whose role `web` notifies its own handler and depends on the collection's `base` through
//! meta dependencies. Planned and rendered in a stack, in `basic`, promoted and at launch;
//! baked and launched by the real runner and ansible-core with its shims; and the bad names.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::util::{repo, Fixture};

const WEB: &str = "acme.kit.web";
const BASE: &str = "acme.kit.base";

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `acme.kit` 1.0.0, built by the real `ansible-galaxy collection build` into `dir`: role
/// `web` (a default, a task that notifies its handler, `dependencies: [acme.kit.base]`) and
/// role `base`, each writing a marker file under `out_dir`; and role `assets`, which installs
/// `libjs-jquery` (with apt's default Recommends, `javascript-common`) and `tzdata` (whose
/// postinst replaces /etc/localtime), notifies its handler
/// and says `min_ansible_version`. Returns the tarball.
pub(crate) fn built_kit(dir: &Path) -> PathBuf {
    let src = dir.join("acme-kit");
    let w = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "galaxy.yml",
        "namespace: acme\nname: kit\nversion: 1.0.0\nreadme: README.md\nauthors: [test]\n",
    );
    w("README.md", "acme.kit\n");
    w("meta/runtime.yml", "requires_ansible: \">=2.14\"\n");
    w(
        "roles/web/defaults/main.yml",
        "web_greeting: hello from acme.kit.web\n",
    );
    w(
        "roles/web/tasks/main.yml",
        "- name: web writes its page\n  ansible.builtin.copy:\n    content: \"{{ web_greeting }}\"\n    dest: \"{{ out_dir }}/web\"\n    mode: \"0644\"\n  notify: web restarted\n",
    );
    w(
        "roles/web/handlers/main.yml",
        "- name: web restarted\n  ansible.builtin.copy:\n    content: handled\n    dest: \"{{ out_dir }}/web-handler\"\n    mode: \"0644\"\n",
    );
    w(
        "roles/web/meta/main.yml",
        "galaxy_info:\n  author: test\ndependencies:\n  - role: acme.kit.base\n",
    );
    w(
        "roles/base/tasks/main.yml",
        "- name: base writes its mark\n  ansible.builtin.copy:\n    content: base\n    dest: \"{{ out_dir }}/base\"\n    mode: \"0644\"\n",
    );
    w("roles/base/meta/main.yml", "dependencies: []\n");
    // in the style of the public roles a team vendors: apt's default Recommends, its own
    // handler, a minimum ansible-core, facts in a condition
    w(
        "roles/assets/tasks/main.yml",
        "- name: Install jQuery and time zones for the site\n  ansible.builtin.apt:\n    name: [libjs-jquery, tzdata]\n    update_cache: true\n    cache_valid_time: 3600\n  when: ansible_facts.os_family == 'Debian'\n  notify: assets installed\n",
    );
    w(
        "roles/assets/handlers/main.yml",
        "- name: assets installed\n  ansible.builtin.copy:\n    content: jquery\n    dest: /etc/acme-assets\n    mode: \"0644\"\n",
    );
    w(
        "roles/assets/meta/main.yml",
        "galaxy_info:\n  author: test\n  min_ansible_version: \"2.14\"\ndependencies: []\n",
    );
    sh(Command::new(repo().join(".venv/bin/ansible-galaxy"))
        .args(["collection", "build", "--output-path"])
        .arg(dir)
        .arg(&src)
        .env("ANSIBLE_HOME", dir.join(".ansible-home")));
    dir.join("acme-kit-1.0.0.tar.gz")
}

/// A bare project that vendored `acme.kit` from its built tarball (`parbake vendor`).
pub(crate) fn kit_project() -> Fixture {
    let f = Fixture::bare();
    built_kit(&f.root().join("sources"));
    f.write(
        "requirements.yml",
        "collections:\n  - name: ./sources/acme-kit-1.0.0.tar.gz\n    type: file\n",
    );
    let r = f.run(&["vendor"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    f
}

fn kit_dir(f: &Fixture) -> PathBuf {
    f.root()
        .join("vendor/collections/ansible_collections/acme/kit")
}

/// The rendered files of `stack` (qemu) that carry the FQCN: each layer's playbook, shim list,
/// ansible.cfg and driver, and the launch spec; hashes filtered.
fn rendered_text(f: &Fixture, stack: &str, promote: &[&str]) -> String {
    use parbake::plan::Target;
    use parbake::render::{self, RenderOptions};
    let project = f.load();
    let plan = crate::util::plan_of(&project, stack, promote);
    assert_eq!(plan.target, Target::Qemu);
    let files = render::render_all(&project, &plan, &RenderOptions::default()).unwrap();
    let mut out = String::new();
    for file in &files {
        let keep = ["bake.yml", "shims.json", "ansible.cfg", "bake.sh"]
            .iter()
            .any(|n| file.path.ends_with(&format!("payload/{n}")))
            || file.path.ends_with("launch.json");
        if keep {
            out.push_str(&format!("===== {}\n", file.path));
            out.push_str(&String::from_utf8(file.contents.clone()).unwrap());
        }
    }
    out
}

fn snapshot(name: &str, text: &str) {
    let filters = vec![
        (r"sha256:[0-9a-f]{64}", "sha256:[ROLE-HASH]"),
        (r"[0-9a-f]{64}", "[HASH]"),
        (r"[0-9a-f]{16}", "[HASH16]"),
        (r"[0-9a-f]{12}", "[HASH12]"),
        (r"[0-9a-f]{8}", "[HASH8]"),
    ];
    insta::with_settings!({filters => filters}, {
        insta::assert_snapshot!(name, text);
    });
}

// ---- plan and render ----------------------------------------------------------------------

#[test]
fn a_collection_role_in_a_stack_resolves_with_its_dependency_and_content_hash() {
    let f = kit_project();
    f.image("img", &[], &[]).stack("s", "img", &[WEB]);
    let project = f.load();
    let web = &project.roles[WEB];
    assert_eq!(web.dir, kit_dir(&f).join("roles/web"));
    assert_eq!(web.deps, [BASE]);
    let (hash, _) =
        parbake::config::roles::hash_tree(f.root(), &kit_dir(&f).join("roles/web")).unwrap();
    assert_eq!(web.hash, hash);

    let p = f.plan("s", &[]);
    assert_eq!(p.installed[WEB], hash);
    assert!(p.installed.contains_key(BASE), "{:?}", p.installed);
    let launch: Vec<&str> = p.launch.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(launch, [BASE, WEB]);
    assert_eq!(p.launch[1].collections, ["acme.kit"]);
    assert_eq!(p.collections["acme.kit"], "1.0.0");

    // the role's content hash is among the inputs of the layer that installs it
    let inputs = &p.layers[0].inputs;
    assert!(
        inputs
            .iter()
            .any(|(k, v)| k.contains(WEB) && v.contains(&hash[7..19])),
        "{inputs:?}"
    );
}

#[test]
fn a_collection_role_renders_in_a_stack_at_launch() {
    let f = kit_project();
    f.image("img", &[], &[]).stack("s", "img", &[WEB]);
    snapshot("fqcn_stack_launch", &rendered_text(&f, "s", &[]));
}

#[test]
fn a_collection_role_renders_promoted() {
    let f = kit_project();
    f.image("img", &[], &[]).stack("s", "img", &[WEB]);
    let p = f.plan("s", &[WEB]);
    assert_eq!(p.layers[1].runs, [BASE, WEB]);
    snapshot("fqcn_promoted", &rendered_text(&f, "s", &[WEB]));
}

#[test]
fn a_collection_role_renders_in_basic_with_its_dependant_at_launch() {
    let f = kit_project();
    f.image("img", &[BASE], &[]).stack("s", "img", &[WEB]);
    let p = f.plan("s", &[]);
    assert_eq!(p.layers[0].runs, [BASE]);
    assert_eq!(p.baked(), [BASE]);
    snapshot("fqcn_basic", &rendered_text(&f, "s", &[]));
}

/// `launch_only` and `installed` take the FQCN too, and a project role reaches a collection's
/// role by `include_role` and by a meta dependency.
#[test]
fn launch_only_installed_include_role_and_meta_dependencies_take_the_fqcn() {
    let f = kit_project();
    f.write(
        "images/img.yml",
        "sources:\n  qemu:\n    disk_image: parbake:debian-12\n    ssh_user: debian\nbasic: []\nlaunch_only: [acme.kit.web]\ninstalled: [acme.kit.web, acme.kit.base, app, uses]\n",
    )
    .write(
        "roles/app/tasks/main.yml",
        "- name: the collection's role, included\n  ansible.builtin.include_role:\n    name: acme.kit.base\n",
    )
    .write("roles/uses/tasks/main.yml", "[]\n")
    .write("roles/uses/meta/main.yml", "dependencies: [acme.kit.web]\n")
    .stack("s", "img", &["app", "uses"]);
    let p = f.plan("s", &[]);
    let launch: Vec<(&str, bool)> = p
        .launch
        .iter()
        .map(|r| (r.name.as_str(), r.launch_only))
        .collect();
    assert_eq!(
        launch,
        [(BASE, false), ("app", false), (WEB, true), ("uses", false)]
    );
}

/// `parbake validate`: the real `ansible-playbook --syntax-check` resolves the FQCN through
/// the shims' overlay of the collection, baked (promoted) and at launch.
#[test]
fn validate_resolves_the_collection_role_baked_and_at_launch() {
    let f = kit_project();
    f.image("img", &[BASE], &[]).stack("s", "img", &[WEB]);
    f.write("images/stacks/s.yml", "image: img\nroles: [acme.kit.web]\n");
    let r = f.run(&["validate", "s", "--target", "qemu"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

// ---- bad input ----------------------------------------------------------------------------

fn plan_error(f: &Fixture) -> String {
    let r = f.run(&["plan", "s"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    r.stderr
}

#[test]
fn a_collection_that_is_not_vendored_is_named_with_a_requirements_hint() {
    // no requirements.yml at all
    let f = Fixture::bare();
    f.image("img", &[], &[])
        .stack("s", "img", &["devsec.hardening.os_hardening"]);
    let err = plan_error(&f);
    assert!(
        err.contains("images/stacks/s.yml:2:")
            && err.contains("role `devsec.hardening.os_hardening` is in collection `devsec.hardening`, which is not vendored")
            && err.contains("hint: add the collection to requirements.yml"),
        "{err}"
    );
    // a project that vendors another collection
    let f = kit_project();
    f.image("img", &[], &[])
        .stack("s", "img", &["devsec.hardening.os_hardening"]);
    let err = plan_error(&f);
    assert!(
        err.contains("collection `devsec.hardening`, which is not vendored"),
        "{err}"
    );
    // in a meta dependency and an include, at their lines
    let f = kit_project();
    f.image("img", &[], &[])
        .stack("s", "img", &["app"])
        .write("roles/app/tasks/main.yml", "[]\n")
        .write(
            "roles/app/meta/main.yml",
            "dependencies:\n  - devsec.hardening.ssh_hardening\n",
        );
    let err = plan_error(&f);
    assert!(
        err.contains("roles/app/meta/main.yml:2:")
            && err.contains("role `app` depends on `devsec.hardening.ssh_hardening`: role")
            && err.contains("collection `devsec.hardening`, which is not vendored")
            && err.contains("requirements.yml"),
        "{err}"
    );
    f.write("roles/app/meta/main.yml", "dependencies: []\n")
        .write(
            "roles/app/tasks/main.yml",
            "- name: x\n  ansible.builtin.import_role:\n    name: devsec.hardening.ssh_hardening\n",
        );
    let err = plan_error(&f);
    assert!(
        err.contains("roles/app/tasks/main.yml:2:")
            && err.contains("import_role of `devsec.hardening.ssh_hardening`")
            && err.contains("requirements.yml"),
        "{err}"
    );
}

#[test]
fn a_promoted_collection_role_that_does_not_resolve_says_why() {
    let f = kit_project();
    f.image("img", &[], &[]).stack("s", "img", &[WEB]);
    for (role, says) in [
        (
            "devsec.hardening.os_hardening",
            "cannot promote `devsec.hardening.os_hardening`: role `devsec.hardening.os_hardening` is in collection `devsec.hardening`, which is not vendored",
        ),
        ("acme.kit.db", "collection `acme.kit` 1.0.0 has no role `db`"),
        ("acme.kit.web.x", "`acme.kit.web.x` is not a valid role name"),
    ] {
        let r = f.run(&["plan", "s", "--promote", role]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains(says) && r.stderr.contains("hint: "), "{}", r.stderr);
    }
}

#[test]
fn a_collection_without_that_role_lists_its_roles() {
    let f = kit_project();
    f.image("img", &[], &[]).stack("s", "img", &["acme.kit.db"]);
    let err = plan_error(&f);
    assert!(
        err.contains("images/stacks/s.yml:2:")
            && err.contains("collection `acme.kit` 1.0.0 has no role `db`")
            && err.contains("roles of `acme.kit`: acme.kit.assets, acme.kit.base, acme.kit.web"),
        "{err}"
    );
}

#[test]
fn malformed_three_part_names_are_refused_with_the_rule() {
    for bad in [
        "acme..web",
        "acme.kit.",
        "acme.kit.web.extra",
        "Acme.kit.web",
        "acme.kit.Web",
    ] {
        let f = kit_project();
        f.image("img", &[], &[]).write(
            "images/stacks/s.yml",
            &format!("image: img\nroles: [\"{bad}\"]\n"),
        );
        let err = plan_error(&f);
        assert!(
            err.contains("images/stacks/s.yml:2:")
                && err.contains(&format!("`{bad}` is not a valid role name"))
                && err.contains("namespace.collection.role"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn a_collection_role_that_links_out_of_the_project_is_refused() {
    let f = kit_project();
    f.image("img", &[], &[]).stack("s", "img", &[WEB]);
    let outside = tempfile::tempdir().unwrap();
    let web = kit_dir(&f).join("roles/web");
    crate::util::copy_dir(&web, outside.path());
    std::fs::remove_dir_all(&web).unwrap();
    std::os::unix::fs::symlink(outside.path(), &web).unwrap();
    let err = plan_error(&f);
    assert!(
        err.contains("acme/kit/roles/web: is a symlink to") && err.contains("outside the project"),
        "{err}"
    );
    // and the role loader refuses it on its own, whatever vendoring says
    let content = parbake::config::VendoredContent::new(
        Default::default(),
        [(
            "acme.kit".to_string(),
            parbake::config::vendored::VendoredCollection {
                name: "acme.kit".into(),
                dir: kit_dir(&f),
                version: "1.0.0".into(),
                requires_ansible: None,
                hash: "sha256:x".into(),
            },
        )]
        .into(),
    );
    let err = parbake::config::roles::load_collection_roles(f.root(), &content, [WEB.to_string()])
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("role `acme.kit.web`") && text.contains("outside the project"),
        "{text}"
    );
}

// ---- run for real: the bake and the launch ------------------------------------------------

/// The task events' roles of a JSON-lines events file, in order, without repeats.
fn event_roles(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut roles: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "task")
        .filter_map(|e| e["role"].as_str().map(String::from))
        .collect();
    roles.dedup();
    roles
}

/// The builder's absolute paths of a rendered payload moved under `tmp` (as shims.rs does).
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

/// The stack layer of `parbake render s --promote <promote>` baked here, as a bake does: the
/// installed roles copied in (exactly what was hashed), the collections packed, its own
/// bake.sh (shims, overlay, playbook) run with the runner tier's ansible-core. Returns the
/// directory the roles wrote their marks in, the events file and the log.
fn bake_stack_layer(f: &Fixture, promote: &str) -> (PathBuf, PathBuf, String) {
    let rendered = f.root().join("rendered");
    let r = f.run(&[
        "render",
        "s",
        "--promote",
        promote,
        "-o",
        rendered.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let payload = crate::shims::layer_payloads(&rendered)[1].clone();
    let project = f.load();
    let plan = f.plan("s", &[promote]);
    for name in plan.installed.keys() {
        project.roles[name]
            .copy_to(&payload.join("all-roles").join(name))
            .unwrap();
    }
    parbake::vendoring::Vendored::verify(f.root())
        .unwrap()
        .unwrap()
        .pack_collections(&payload.join("collections.tar.gz"))
        .unwrap();
    let tmp = f.root().join("builder");
    let out = tmp.join("out");
    std::fs::create_dir_all(&out).unwrap();
    relocate(&payload, &tmp);
    let vars_path = payload.join("vars.json");
    let mut vars: Value =
        serde_json::from_str(&std::fs::read_to_string(&vars_path).unwrap()).unwrap();
    vars["out_dir"] = json!(out);
    std::fs::write(&vars_path, vars.to_string()).unwrap();
    let path = format!(
        "{}:{}",
        crate::util::ansible_bin().display(),
        std::env::var("PATH").unwrap()
    );
    let bake = Command::new("bash")
        .arg(payload.join("bake.sh"))
        .env("PATH", path)
        .env("ANSIBLE_HOME", tmp.join("ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", tmp.join("ansible-tmp"))
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&bake.stdout).into_owned() + &String::from_utf8_lossy(&bake.stderr);
    assert!(bake.status.success(), "{log}");
    let events = std::fs::read_dir(tmp.join("var-lib"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".jsonl"))
        .expect("the bake's events file");
    (out, events, log)
}

#[test]
fn at_bake_the_collection_role_runs_with_its_handler_and_dependency_under_its_fqcn() {
    let f = kit_project();
    f.image("img", &[], &[]).stack("s", "img", &[WEB]);
    let (out, events, log) = bake_stack_layer(&f, WEB);
    let read = |n: &str| std::fs::read_to_string(out.join(n)).unwrap_or_default();
    assert_eq!(read("web"), "hello from acme.kit.web", "{log}");
    assert_eq!(
        read("web-handler"),
        "handled",
        "the role's own handler ran: {log}"
    );
    assert_eq!(read("base"), "base", "its meta dependency ran: {log}");
    assert_eq!(event_roles(&events), [BASE, WEB], "{log}");
}

#[test]
fn at_bake_a_baked_collection_dependency_is_a_shim_in_the_overlay() {
    let f = kit_project();
    f.image("img", &[BASE], &[]).stack("s", "img", &[WEB]);
    let (out, events, log) = bake_stack_layer(&f, WEB);
    assert_eq!(
        std::fs::read_to_string(out.join("web-handler")).unwrap_or_default(),
        "handled",
        "{log}"
    );
    assert!(
        !out.join("base").exists(),
        "the base layer's role ran again: {log}"
    );
    assert_eq!(event_roles(&events), [WEB], "{log}");
}

/// A fake image root for the runner: the plan's installed roles under opt/parbake/roles (as
/// the bake copies them), the vendored collections under opt/parbake/collections, the
/// runtime, and a manifest of what the plan installs and bakes. Returns the root and the
/// plan's launch spec (from the real render) with `out_dir` set in its vars.
fn launch_image(f: &Fixture, root: &Path, out: &Path) -> PathBuf {
    use parbake::render::{self, RenderOptions};
    let project = f.load();
    let plan = f.plan("s", &[]);
    let home = root.join("opt/parbake");
    for name in plan.installed.keys() {
        project.roles[name]
            .copy_to(&home.join("roles").join(name))
            .unwrap();
    }
    crate::util::copy_dir(
        &f.root().join("vendor/collections"),
        &home.join("collections"),
    );
    parbake::contract::install_runtime(&home).unwrap();
    let manifest = json!({"format": 1, "layer": {"name": "img-s", "hash": plan.top().hash},
        "installed": plan.installed, "baked": plan.baked().iter()
            .map(|r| (r.clone(), json!(plan.installed[r]))).collect::<serde_json::Map<_, _>>()});
    std::fs::write(home.join("manifest.json"), manifest.to_string()).unwrap();
    let files = render::render_all(&project, &plan, &RenderOptions::default()).unwrap();
    let launch = files
        .iter()
        .find(|f| f.path.ends_with("launch.json"))
        .expect("the launch spec");
    let mut spec: Value = serde_json::from_slice(&launch.contents).unwrap();
    spec["vars"]["out_dir"] = json!(out);
    let path = root.join("launch.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

fn statuses(root: &Path) -> Vec<(String, String)> {
    let st: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("var/lib/parbake/status.json")).unwrap(),
    )
    .unwrap();
    st["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn at_launch_the_collection_role_runs_with_its_handler_and_dependency_under_its_fqcn() {
    let f = kit_project();
    f.image("img", &[], &[]).stack("s", "img", &[WEB]);
    let root = tempfile::Builder::new()
        .prefix("parbake-runner-")
        .tempdir()
        .unwrap();
    let out = root.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let spec = launch_image(&f, root.path(), &out);
    let (code, stdout) = crate::runner::run_runner(root.path(), &spec, &[], &[]);
    let log =
        std::fs::read_to_string(root.path().join("var/log/parbake/launch.log")).unwrap_or_default();
    assert_eq!(code, 0, "{stdout}\n{log}");
    let read = |n: &str| std::fs::read_to_string(out.join(n)).unwrap_or_default();
    assert_eq!(read("web"), "hello from acme.kit.web", "{log}");
    assert_eq!(read("web-handler"), "handled", "{log}");
    assert_eq!(read("base"), "base", "{log}");
    let ok = |n: &str| (n.to_string(), "ok".to_string());
    assert_eq!(statuses(root.path()), [ok(BASE), ok(WEB)], "{log}");
    assert_eq!(
        event_roles(&root.path().join("var/lib/parbake/launch-events.jsonl")),
        [BASE, WEB]
    );
    let st: Value = serde_json::from_str(
        &std::fs::read_to_string(root.path().join("var/lib/parbake/status.json")).unwrap(),
    )
    .unwrap();
    assert!(
        st["roles"][1]["tasks"].as_u64().unwrap() >= 1,
        "the runner counted the FQCN role's tasks: {st}"
    );
}

#[test]
fn at_launch_a_baked_collection_dependency_does_not_run_again() {
    let f = kit_project();
    f.image("img", &[BASE], &[]).stack("s", "img", &[WEB]);
    let root = tempfile::Builder::new()
        .prefix("parbake-runner-")
        .tempdir()
        .unwrap();
    let out = root.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let spec = launch_image(&f, root.path(), &out);
    let (code, stdout) = crate::runner::run_runner(root.path(), &spec, &[], &[]);
    let log =
        std::fs::read_to_string(root.path().join("var/log/parbake/launch.log")).unwrap_or_default();
    assert_eq!(code, 0, "{stdout}\n{log}");
    assert_eq!(
        std::fs::read_to_string(out.join("web-handler")).unwrap_or_default(),
        "handled",
        "{log}"
    );
    assert!(!out.join("base").exists(), "a baked role ran again: {log}");
    assert_eq!(statuses(root.path()), [(WEB.to_string(), "ok".to_string())]);
    // the shim stands in the overlay, the installed copy is what runs
    let overlay = root
        .path()
        .join("run/parbake/shim/.collections/ansible_collections/acme/kit/roles");
    assert_eq!(
        std::fs::read_to_string(overlay.join("base/tasks/main.yml")).unwrap(),
        SHIM_TASKS
    );
    assert_eq!(
        overlay.join("web").canonicalize().unwrap(),
        root.path()
            .join("opt/parbake/roles/acme.kit.web")
            .canonicalize()
            .unwrap()
    );
}

const SHIM_TASKS: &str =
    "# parbake shim: this role already ran in a baked layer; its entry point is a no-op.\n[]\n";

// ---- a real collection's role ---------------------------------------------------------------

/// One of Debian's collections (`ns/name`, from its `ansible` package, unpacked by
/// scripts/setup.sh into .tools/ansible-collections, never committed), vendored as a
/// directory into a bare project. None (with a SKIP line) without the unpacked package.
pub(crate) fn debian_project(which: &str) -> Option<Fixture> {
    let dir = repo()
        .join(".tools/ansible-collections/usr/lib/python3/dist-packages/ansible_collections")
        .join(which);
    if !dir.is_dir() {
        eprintln!(
            "SKIP: {} is missing; run scripts/setup.sh (it unpacks Debian's ansible package)",
            dir.display()
        );
        return None;
    }
    let f = Fixture::bare();
    crate::util::copy_dir(&dir, &f.root().join("sources").join(which));
    f.write(
        "requirements.yml",
        &format!("collections:\n  - name: ./sources/{which}\n    type: dir\n"),
    );
    let r = f.run(&["vendor"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    Some(f)
}

/// Debian's `sensu.sensu_go`: its role `agent` has a handler and includes the collection's
/// `install` by its bare name, which Ansible resolves inside the collection.
fn sensu_project() -> Option<Fixture> {
    debian_project("sensu/sensu_go")
}

#[test]
fn a_real_collection_role_from_debian_plans_renders_and_validates() {
    let Some(f) = sensu_project() else { return };
    f.image("img", &[], &[])
        .stack("s", "img", &["sensu.sensu_go.agent"]);
    let project = f.load();
    let agent = &project.roles["sensu.sensu_go.agent"];
    assert!(
        agent
            .refs
            .roles
            .iter()
            .any(|r| r.role == "sensu.sensu_go.install"),
        "the bare `install` is the collection's: {:?}",
        agent.refs.roles
    );
    let p = f.plan("s", &[]);
    let launch: Vec<&str> = p.launch.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(launch, ["sensu.sensu_go.agent"]);
    assert!(
        p.installed.contains_key("sensu.sensu_go.install"),
        "{:?}",
        p.installed
    );
    let promoted = f.plan("s", &["sensu.sensu_go.agent"]);
    assert_eq!(promoted.layers[1].runs, ["sensu.sensu_go.agent"]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("r");
    let r = f.run(&[
        "render",
        "s",
        "--promote",
        "sensu.sensu_go.agent",
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bake =
        std::fs::read_to_string(crate::shims::layer_payloads(&dir)[1].join("bake.yml")).unwrap();
    assert!(bake.contains("- sensu.sensu_go.agent"), "{bake}");
    // the real syntax check resolves the FQCN through the overlay, promoted and at launch
    let r = f.run(&["validate", "s", "--target", "qemu"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

/// Debian's `ovirt.ovirt.infra` imports nested roles of its own collection
/// (`ovirt.ovirt.infra.roles.mac_pools`), which Ansible resolves and parbake does not plan:
/// they ship with the collection, so the plan takes them and the syntax check resolves them.
#[test]
fn a_real_collection_role_importing_its_collections_nested_roles_plans_and_validates() {
    let Some(f) = debian_project("ovirt/ovirt") else {
        return;
    };
    f.image("img", &[], &[])
        .stack("s", "img", &["ovirt.ovirt.infra"]);
    let p = f.plan("s", &[]);
    let launch: Vec<&str> = p.launch.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(launch, ["ovirt.ovirt.infra"]);
    let r = f.run(&["validate", "s", "--target", "qemu"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}
