//! `parbake vendor` and `Vendored::load`, with the real ansible-galaxy, git and
//! ansible-playbook, offline: a role from a local git repository pinned to a tag, a collection
//! built by `ansible-galaxy collection build` and installed from its tarball, and Debian's
//! ansible.posix from `.tools/ansible-collections` (scripts/setup.sh unpacks it).

use std::path::{Path, PathBuf};
use std::process::Command;

use parbake::vendor::{self, Lock, SourceKind, Vendored};

use crate::util::{repo, Fixture};

fn galaxy() -> PathBuf {
    repo().join(".venv/bin/ansible-galaxy")
}

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

fn git(dir: &Path, args: &[&str]) {
    sh(Command::new("git")
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .current_dir(dir));
}

/// A role in its own git repository: tag v1.0.0 says "hello v1", a later commit "hello v2".
fn git_role(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("tasks")).unwrap();
    std::fs::create_dir_all(dir.join("meta")).unwrap();
    std::fs::write(
        dir.join("meta/main.yml"),
        "galaxy_info:\n  author: test\ndependencies: []\n",
    )
    .unwrap();
    let tasks = |v: &str| format!("- name: hello\n  ansible.builtin.debug:\n    msg: hello {v}\n");
    std::fs::write(dir.join("tasks/main.yml"), tasks("v1")).unwrap();
    git(dir, &["init", "-q"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-qm", "v1"]);
    git(dir, &["tag", "v1.0.0"]);
    std::fs::write(dir.join("tasks/main.yml"), tasks("v2")).unwrap();
    git(dir, &["commit", "-qam", "v2"]);
    format!("git+file://{}", dir.display())
}

/// `acme.tools` 1.0.0 (a module, a filter plugin, `requires_ansible: ">=2.14"`), built by the
/// real `ansible-galaxy collection build`; returns the tarball.
fn built_collection(dir: &Path) -> PathBuf {
    let src = dir.join("acme-tools");
    let w = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "galaxy.yml",
        "namespace: acme\nname: tools\nversion: 1.0.0\nreadme: README.md\nauthors: [test]\n",
    );
    w("README.md", "acme.tools\n");
    w("meta/runtime.yml", "requires_ansible: \">=2.14\"\n");
    w(
        "plugins/modules/ping_file.py",
        "#!/usr/bin/python\nfrom ansible.module_utils.basic import AnsibleModule\n\ndef main():\n    m = AnsibleModule(argument_spec=dict(path=dict(type='str', required=True)))\n    with open(m.params['path'], 'w') as f:\n        f.write('pong\\n')\n    m.exit_json(changed=True)\n\nif __name__ == '__main__':\n    main()\n",
    );
    w(
        "plugins/filter/shout.py",
        "def shout(s):\n    return str(s).upper() + '!'\n\nclass FilterModule(object):\n    def filters(self):\n        return {'shout': shout}\n",
    );
    sh(Command::new(galaxy())
        .args(["collection", "build", "--output-path"])
        .arg(dir)
        .arg(&src)
        .env("ANSIBLE_HOME", dir.join(".ansible-home")));
    dir.join("acme-tools-1.0.0.tar.gz")
}

/// A bare project whose requirements.yml names the git role and the built collection.
struct Vendoring {
    project: Fixture,
    _sources: tempfile::TempDir,
}

fn vendoring() -> Vendoring {
    let sources = tempfile::tempdir().unwrap();
    let role = git_role(&sources.path().join("hello"));
    let tarball = built_collection(sources.path());
    let project = Fixture::bare();
    project.write(
        "requirements.yml",
        &format!(
            "roles:\n  - src: {role}\n    version: v1.0.0\n    name: acme.hello\ncollections:\n  - name: {}\n    type: file\n",
            tarball.display()
        ),
    );
    Vendoring {
        project,
        _sources: sources,
    }
}

fn vendor_ok(f: &Fixture, args: &[&str]) -> String {
    let mut all = vec!["vendor"];
    all.extend_from_slice(args);
    let r = f.run(&all);
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    r.stdout
}

fn lock_of(root: &Path) -> Lock {
    Lock::read(root).unwrap().expect("a lock")
}

fn load_error(root: &Path) -> (String, Vec<String>) {
    let e = Vendored::load(root).expect_err("a stale vendor dir is refused");
    assert_eq!(e.exit_code(), 1, "{e}");
    (e.to_string(), e.hints())
}

#[test]
fn vendor_installs_a_tagged_git_role_and_a_built_collection_and_locks_them() {
    let v = vendoring();
    let root = v.project.root();
    let out = vendor_ok(&v.project, &[]);
    assert!(
        out.contains("vendored 1 role(s) and 1 collection(s)"),
        "{out}"
    );

    // the role, at its tag, under its namespaced name, with no install time in it
    let role = root.join("vendor/roles/acme.hello");
    let tasks = std::fs::read_to_string(role.join("tasks/main.yml")).unwrap();
    assert!(
        tasks.contains("hello v1") && !tasks.contains("v2"),
        "{tasks}"
    );
    let info = std::fs::read_to_string(role.join("meta/.galaxy_install_info")).unwrap();
    assert!(
        !info.contains("install_date") && info.contains("v1.0.0"),
        "{info}"
    );
    let coll = root.join("vendor/collections/ansible_collections/acme/tools");
    assert!(coll.join("plugins/filter/shout.py").is_file());

    let lock = lock_of(root);
    assert_eq!(lock.format, vendor::lock::LOCK_FORMAT);
    assert_eq!(lock.roles.len(), 1);
    let r = &lock.roles[0];
    assert_eq!(
        (r.name.as_str(), r.version.as_deref()),
        ("acme.hello", Some("v1.0.0"))
    );
    let req = r.requested.as_ref().unwrap();
    assert_eq!(
        (req.source, req.version.as_deref()),
        (SourceKind::Git, Some("v1.0.0"))
    );
    assert!(r.hash.starts_with("sha256:"));
    let c = &lock.collections[0];
    assert_eq!(
        (c.name.as_str(), c.version.as_str()),
        ("acme.tools", "1.0.0")
    );
    assert_eq!(c.requires_ansible.as_deref(), Some(">=2.14"));
    assert_eq!(c.requested.as_ref().unwrap().source, SourceKind::File);
    assert_eq!(lock.entries.len(), 2);

    // load: the lock and the trees only
    let loaded = Vendored::load(root).unwrap().unwrap();
    assert_eq!(loaded.roles()["acme.hello"].dir, role);
    assert_eq!(loaded.collections()["acme.tools"].dir, coll);
    assert_eq!(loaded.collections_path(), root.join("vendor/collections"));
    let verified = Vendored::verify(root).unwrap().unwrap();
    assert_eq!(verified.collections_hash(), loaded.collections_hash());

    // again: up to date; forced: the same lock (the install is deterministic)
    let again = vendor_ok(&v.project, &["--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(report["up_to_date"], true);
    assert_eq!(report["lock"]["collections"][0]["name"], "acme.tools");
    vendor_ok(&v.project, &["--force"]);
    assert_eq!(lock_of(root), lock);
}

#[test]
fn vendored_role_and_collection_run_under_the_real_ansible_playbook() {
    let v = vendoring();
    let root = v.project.root();
    vendor_ok(&v.project, &[]);
    let marker = root.join("pong.txt");
    let playbook = root.join("use.yml");
    std::fs::write(
        &playbook,
        serde_json::to_string(&serde_json::json!([{
            "hosts": "localhost", "connection": "local", "gather_facts": false,
            "roles": ["acme.hello"],
            "tasks": [
                {"acme.tools.ping_file": {"path": marker}},
                {"ansible.builtin.copy": {"dest": root.join("shout.txt"), "content": "{{ 'hi' | acme.tools.shout }}"}}
            ]
        }]))
        .unwrap(),
    )
    .unwrap();
    let out = sh(Command::new(repo().join(".venv/bin/ansible-playbook"))
        .args(["-i", "localhost,"])
        .arg(&playbook)
        .env("ANSIBLE_ROLES_PATH", root.join("vendor/roles"))
        .env("ANSIBLE_COLLECTIONS_PATH", root.join("vendor/collections"))
        .env("ANSIBLE_HOME", root.join(".ansible-home"))
        .env("ANSIBLE_NOCOLOR", "1"));
    assert!(out.contains("hello v1"), "{out}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "pong\n");
    assert_eq!(
        std::fs::read_to_string(root.join("shout.txt")).unwrap(),
        "HI!"
    );
}

/// Debian's `ansible` package, unpacked by scripts/setup.sh.
fn debian_collections() -> Option<PathBuf> {
    let dir =
        repo().join(".tools/ansible-collections/usr/lib/python3/dist-packages/ansible_collections");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: {} is missing; run scripts/setup.sh (it unpacks Debian's ansible package)",
            dir.display()
        );
        None
    }
}

/// A bare project that vendored one of Debian's collections (`ns/name`) as a directory, and
/// where Debian's collections are; None (with a message) without .tools/ansible-collections.
fn debian_collection_vendored(which: &str) -> Option<(Fixture, PathBuf)> {
    let collections = debian_collections()?;
    let f = Fixture::bare();
    f.write(
        "requirements.yml",
        &format!(
            "collections:\n  - name: {}\n    type: dir\n",
            collections.join(which).display()
        ),
    );
    vendor_ok(&f, &[]);
    Some((f, collections))
}

#[test]
fn vendor_installs_ansible_posix_from_debians_ansible_package() {
    let Some((f, collections)) = debian_collection_vendored("ansible/posix") else {
        return;
    };
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(collections.join("ansible/posix/MANIFEST.json")).unwrap(),
    )
    .unwrap();
    let lock = lock_of(f.root());
    let c = &lock.collections[0];
    assert_eq!(c.name, "ansible.posix");
    assert_eq!(
        c.version,
        manifest["collection_info"]["version"].as_str().unwrap()
    );
    assert_eq!(c.requires_ansible.as_deref(), Some(">=2.9"));
    assert_eq!(c.requested.as_ref().unwrap().source, SourceKind::Dir);
    let loaded = Vendored::load(f.root()).unwrap().unwrap();
    let posix = &loaded.collections()["ansible.posix"];
    assert!(posix.dir.join("plugins/modules/sysctl.py").is_file());
}

#[test]
fn load_refuses_a_missing_or_stale_vendor_dir_naming_the_entry() {
    let v = vendoring();
    let root = v.project.root();
    // no lock yet
    let (msg, hints) = load_error(root);
    assert!(msg.contains("no requirements.lock.json"), "{msg}");
    assert!(
        hints.iter().any(|h| h.contains("parbake vendor")),
        "{hints:?}"
    );
    vendor_ok(&v.project, &[]);
    let reqs = std::fs::read_to_string(root.join("requirements.yml")).unwrap();

    // requirements.yml edited after vendoring: a new entry is named; any edit is seen
    v.project.write(
        "requirements.yml",
        &format!("{reqs}  - community.general\n"),
    );
    let (msg, _) = load_error(root);
    assert!(
        msg.contains("collection `community.general`")
            && msg.contains("is not in requirements.lock.json"),
        "{msg}"
    );
    v.project
        .write("requirements.yml", &format!("# pinned\n{reqs}"));
    let (msg, _) = load_error(root);
    assert!(msg.contains("requirements.yml changed since"), "{msg}");
    v.project.write("requirements.yml", &reqs);
    Vendored::load(root).unwrap().unwrap();

    // a vendored tree edited: stale, naming it (with the cache warm, the same size)
    let tasks = root.join("vendor/roles/acme.hello/tasks/main.yml");
    let text = std::fs::read_to_string(&tasks).unwrap();
    std::fs::write(&tasks, text.replace("v1", "v9")).unwrap();
    let (msg, hints) = load_error(root);
    assert!(msg.contains("vendored role `acme.hello` is stale"), "{msg}");
    assert!(
        hints.iter().any(|h| h.contains("parbake vendor")),
        "{hints:?}"
    );
    std::fs::write(&tasks, text).unwrap();
    Vendored::load(root).unwrap().unwrap();

    // a file added to a collection, then the collection removed
    let coll = root.join("vendor/collections/ansible_collections/acme/tools");
    std::fs::write(coll.join("extra.txt"), "x").unwrap();
    let (msg, _) = load_error(root);
    assert!(
        msg.contains("vendored collection `acme.tools` is stale"),
        "{msg}"
    );
    std::fs::remove_dir_all(&coll).unwrap();
    let (msg, _) = load_error(root);
    assert!(
        msg.contains("vendored collection `acme.tools` is missing"),
        "{msg}"
    );

    // the lock removed
    std::fs::remove_file(root.join("requirements.lock.json")).unwrap();
    let (msg, _) = load_error(root);
    assert!(msg.contains("no requirements.lock.json"), "{msg}");

    // no requirements.yml: nothing vendored
    std::fs::remove_file(root.join("requirements.yml")).unwrap();
    assert!(Vendored::load(root).unwrap().is_none());
}

/// Every file under `dir` with its bytes, for before/after comparisons.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                pending.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_failed_vendor_leaves_the_previous_vendor_dir_and_lock() {
    let v = vendoring();
    let root = v.project.root();
    vendor_ok(&v.project, &[]);
    let lock_before = std::fs::read(root.join("requirements.lock.json")).unwrap();
    let tree_before = snapshot(&root.join("vendor"));
    v.project.write(
        "requirements.yml",
        "roles:\n  - src: git+file:///nonexistent/parbake-test/repo\n    version: v1.0.0\n    name: acme.gone\n",
    );
    let r = v.project.run(&["vendor"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("install the roles of requirements.yml failed"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(root.join("requirements.lock.json")).unwrap(),
        lock_before
    );
    assert_eq!(snapshot(&root.join("vendor")), tree_before);
    let leftovers: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".parbake-vendor"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn bad_requirements_entries_are_located_errors() {
    let cases = [
        (
            "roles:\n  - src: git+file:///x\n    name: acme.hello\n    versoin: v1\n",
            "requirements.yml:4:5",
            "unknown field `versoin`",
        ),
        (
            "roles:\n  - src: git+file:///x\n    name: ../../etc\n",
            "requirements.yml:3:11",
            "is not a valid role name",
        ),
        (
            "collections:\n  - name: acme.tools\n    version: [1]\n",
            "requirements.yml:3:14",
            "invalid type",
        ),
        (
            "collections:\n  - name: acme.tools\n    type: subdirs\n",
            "requirements.yml:3:11",
            "collection type `subdirs` is not supported",
        ),
    ];
    for (text, place, message) in cases {
        let f = Fixture::bare();
        f.write("requirements.yml", text);
        let r = f.run(&["vendor"]);
        assert_eq!(r.code, 1, "{text}\n{}", r.stderr);
        assert!(r.stderr.contains(place), "{text}\n{}", r.stderr);
        assert!(r.stderr.contains(message), "{text}\n{}", r.stderr);
        assert!(r.stderr.contains("hint:"), "{text}\n{}", r.stderr);
        assert!(r.stdout.is_empty() && !f.root().join("vendor").exists());
    }
}

/// `cargo test --test parbake vendored_load_speed -- --ignored --nocapture`: `Vendored::load`
/// on community.general (Debian's copy), cold (no cache), warm, and verified (every byte).
#[test]
#[ignore]
fn vendored_load_speed_on_community_general() {
    let Some((f, _)) = debian_collection_vendored("community/general") else {
        return;
    };
    let root = f.root();
    let files = snapshot(&root.join("vendor/collections")).len();
    // past the cache's racy window, so that the cold load fills the cache
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let cache = root.join("vendor").join(vendor::hash::CACHE_FILE);
    let _ = std::fs::remove_file(&cache);
    let time = |label: &str, f: &dyn Fn() -> Option<Vendored>| {
        let t = std::time::Instant::now();
        let v = f().unwrap();
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        eprintln!("{label:<28} {ms:8.1} ms");
        v
    };
    eprintln!("community.general: {files} files");
    time("cold (no cache)", &|| Vendored::load(root).unwrap());
    assert!(cache.is_file());
    for _ in 0..3 {
        time("warm (cache)", &|| Vendored::load(root).unwrap());
    }
    time("verify (every byte)", &|| Vendored::verify(root).unwrap());
}

/// The vendored project with a stack: a local role `app` that depends on the vendored
/// `acme.hello` and uses the collection's module, baked by promotion or run at launch.
fn vendored_stack() -> Vendoring {
    let v = vendoring();
    vendor_ok(&v.project, &[]);
    v.project
        .write(
            "roles/app/tasks/main.yml",
            "- name: the collection's module\n  acme.tools.ping_file: {path: /tmp/parbake-ping}\n",
        )
        .write("roles/app/meta/main.yml", "dependencies: [acme.hello]\n")
        .image("img", &[], &[])
        .stack("s", "img", &["app"]);
    v
}

#[test]
fn vendored_roles_and_collections_go_through_plan_render_and_validate() {
    let v = vendored_stack();
    let f = &v.project;
    let p = f.plan("s", &["app"]);
    assert!(p.installed.contains_key("acme.hello"), "{:?}", p.installed);
    assert_eq!(p.layers[1].runs, ["acme.hello", "app"]);
    assert_eq!(p.collections["acme.tools"], "1.0.0");
    assert!(p.layers[0].inputs.contains_key("collections"));
    let launch = f.plan("s", &[]).launch;
    assert_eq!(launch[1].collections, ["acme.tools"]);

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("r");
    let r = f.run(&[
        "render",
        "s",
        "--promote",
        "app",
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let payloads = crate::shims::layer_payloads(&dir);
    let base_sh = std::fs::read_to_string(payloads[0].join("bake.sh")).unwrap();
    assert!(
        base_sh.contains(
            "tar -xzf /tmp/parbake-payload/collections.tar.gz -C /opt/parbake/collections"
        ),
        "{base_sh}"
    );
    // a stack layer may build on a run layer that carries an older payload: it unpacks them too
    let stack_sh = std::fs::read_to_string(payloads[1].join("bake.sh")).unwrap();
    assert!(
        stack_sh.contains(
            "tar -xzf /tmp/parbake-payload/collections.tar.gz -C /opt/parbake/collections"
        ),
        "{stack_sh}"
    );
    let cfg = std::fs::read_to_string(payloads[1].join("ansible.cfg")).unwrap();
    assert!(
        cfg.contains("collections_path = /opt/parbake/collections"),
        "{cfg}"
    );

    // the real syntax check resolves the collection's module and the vendored role
    let r = f.run(&["validate", "s", "--target", "qemu"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn a_collection_the_images_ansible_core_cannot_run_is_refused_naming_both_versions() {
    let v = vendored_stack();
    let f = &v.project;
    let image = std::fs::read_to_string(f.root().join("images/img.yml")).unwrap();
    // the built collection says >=2.14; pretend the lock read a newer floor
    let lock_path = f.root().join("requirements.lock.json");
    let lock = std::fs::read_to_string(&lock_path).unwrap();
    std::fs::write(&lock_path, lock.replace("\">=2.14\"", "\">=2.15.0\"")).unwrap();
    let r = f.run(&["plan", "s"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("collection acme.tools 1.0.0 requires ansible-core >=2.15.0")
            && r.stderr
                .contains("runs ansible-core 2.14.18 (the distribution's")
            && r.stderr.contains("ansible: {core:"),
        "{}",
        r.stderr
    );
    f.write(
        "images/img.yml",
        &format!("{image}ansible: {{core: \"2.17.7\"}}\n"),
    );
    let r = f.run(&["plan", "s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn a_role_both_local_and_vendored_is_refused() {
    let v = vendored_stack();
    v.project.role("acme.hello", &[]);
    let r = v.project.run(&["plan", "s"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("`acme.hello` is both a role under roles/ and a vendored role"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_project_with_only_collections_vendored_plans() {
    let sources = tempfile::tempdir().unwrap();
    let tarball = built_collection(sources.path());
    let f = Fixture::bare();
    f.role("app", &[])
        .image("img", &["app"], &[])
        .stack("s", "img", &[])
        .write(
            "requirements.yml",
            &format!(
                "collections:\n  - name: {}\n    type: file\n",
                tarball.display()
            ),
        );
    vendor_ok(&f, &[]);
    let p = f.plan("s", &[]);
    assert_eq!(p.collections["acme.tools"], "1.0.0");
    assert!(!f.root().join("vendor/roles").exists());
}

/// Planner table row for vendored collections: any role may call a collection's modules, so a
/// changed collection changes every layer's run hash, and the payload hash; the roles'
/// content does not move.
#[test]
fn a_changed_vendored_collection_changes_every_run_hash_and_the_payload() {
    let v = vendored_stack();
    let f = &v.project;
    let before = f.plan("s", &["app"]);
    // the same version rebuilt with one plugin changed, then vendored again
    let src = v._sources.path().join("acme-tools/plugins/filter/shout.py");
    let text = std::fs::read_to_string(&src).unwrap();
    std::fs::write(&src, text.replace("'!'", "'!!'")).unwrap();
    sh(Command::new(galaxy())
        .args(["collection", "build", "--force", "--output-path"])
        .arg(v._sources.path())
        .arg(v._sources.path().join("acme-tools"))
        .env("ANSIBLE_HOME", v._sources.path().join(".ansible-home")));
    vendor_ok(f, &["--force"]);
    let after = f.plan("s", &["app"]);
    assert_ne!(
        before.layers[0].inputs["collections"], after.layers[0].inputs["collections"],
        "the collection was vendored again"
    );
    for (a, b) in before.layers.iter().zip(&after.layers) {
        assert_ne!(a.run_hash, b.run_hash, "{}", a.name);
        assert_ne!(a.payload_hash, b.payload_hash, "{}", a.name);
    }
    assert_eq!(before.installed, after.installed, "no role changed");
}
