//! `parbake vendor` and `Vendored::load`, with the real ansible-galaxy, git and
//! ansible-playbook, offline: a role from a local git repository pinned to a tag, a collection
//! built by `ansible-galaxy collection build` and installed from its tarball, and Debian's
//! ansible.posix from `.tools/ansible-collections` (scripts/setup.sh unpacks it).

use std::path::{Path, PathBuf};
use std::process::Command;

use parbake::vendoring::{self, Lock, SourceKind, Vendored};

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
    let project = Fixture::bare();
    // a local source must be inside the project
    built_collection(&project.root().join("sources"));
    project.write(
        "requirements.yml",
        &format!(
            "roles:\n  - src: {role}\n    version: v1.0.0\n    name: acme.hello\ncollections:\n  - name: ./sources/acme-tools-1.0.0.tar.gz\n    type: file\n"
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
    let e = parbake::Error::from(Vendored::load(root).expect_err("a stale vendor dir is refused"));
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
    assert_eq!(lock.format, vendoring::lock::LOCK_FORMAT);
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
    // a local source must be inside the project
    crate::util::copy_dir(
        &collections.join(which),
        &f.root().join("sources").join(which),
    );
    f.write(
        "requirements.yml",
        &format!("collections:\n  - name: ./sources/{which}\n    type: dir\n"),
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
    let cache = root.join("vendor").join(vendoring::hash::CACHE_FILE);
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
                .contains("runs ansible-core 2.14.18 (Debian 12's package")
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
    let f = Fixture::bare();
    built_collection(&f.root().join("sources"));
    f.role("app", &[])
        .image("img", &["app"], &[])
        .stack("s", "img", &[])
        .write(
            "requirements.yml",
            "collections:\n  - name: ./sources/acme-tools-1.0.0.tar.gz\n    type: file\n",
        );
    vendor_ok(&f, &[]);
    let p = f.plan("s", &[]);
    assert_eq!(p.collections["acme.tools"], "1.0.0");
    assert!(!f.root().join("vendor/roles").exists());
}

/// Planner table row for vendored collections: a changed collection changes the run hash of
/// the layers whose roles use it (here the stack layer's `app` calls acme.tools.ping_file;
/// the base layer's roles use no collection) and every payload hash; the roles' content does
/// not move.
#[test]
fn a_changed_vendored_collection_changes_every_run_hash_and_the_payload() {
    let v = vendored_stack();
    let f = &v.project;
    let before = f.plan("s", &["app"]);
    // the same version rebuilt with one plugin changed, then vendored again
    let sources = f.root().join("sources");
    let src = sources.join("acme-tools/plugins/filter/shout.py");
    let text = std::fs::read_to_string(&src).unwrap();
    std::fs::write(&src, text.replace("'!'", "'!!'")).unwrap();
    sh(Command::new(galaxy())
        .args(["collection", "build", "--force", "--output-path"])
        .arg(&sources)
        .arg(sources.join("acme-tools"))
        .env("ANSIBLE_HOME", sources.join(".ansible-home")));
    vendor_ok(f, &["--force"]);
    let after = f.plan("s", &["app"]);
    assert_ne!(
        before.layers[0].inputs["collections"], after.layers[0].inputs["collections"],
        "the collection was vendored again"
    );
    let (b, a) = (&before.layers, &after.layers);
    assert_eq!(
        a[0].run_hash, b[0].run_hash,
        "the base layer uses no collection"
    );
    assert_ne!(
        a[1].run_hash, b[1].run_hash,
        "app calls acme.tools.ping_file"
    );
    for (a, b) in before.layers.iter().zip(&after.layers) {
        assert_ne!(a.payload_hash, b.payload_hash, "{}", a.name);
    }
    assert_eq!(before.installed, after.installed, "no role changed");
}

// ---- issue 21: vendor writes only under vendor/, packs what it hashes ----

/// `vendor` in `f`: (exit code, stderr), expecting a refusal.
fn vendor_refused(f: &Fixture) -> String {
    let r = f.run(&["vendor"]);
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    r.stderr
}

/// Every file under `dir` whose content holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                pending.push(e.path());
            } else if ft.is_file()
                && String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).contains(needle)
            {
                out.push(e.path());
            }
        }
    }
    out
}

/// A collection source tree `acme.leak` at `dir` whose `plugins/creds` links to `secret`.
fn leaky_collection(dir: &Path, secret: &Path) {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::write(
        dir.join("galaxy.yml"),
        "namespace: acme\nname: leak\nversion: 1.0.0\nreadme: README.md\nauthors: [test]\n",
    )
    .unwrap();
    std::fs::write(dir.join("README.md"), "acme.leak\n").unwrap();
    std::os::unix::fs::symlink(secret, dir.join("plugins/creds")).unwrap();
}

#[test]
fn a_collection_symlink_out_of_its_tree_is_refused_from_a_dir_and_from_git() {
    let host = tempfile::tempdir().unwrap();
    let secret = host.path().join("credentials");
    std::fs::write(&secret, "aws_secret_access_key = HOSTSECRET123\n").unwrap();
    // a `type: dir` collection inside the project
    let f = Fixture::bare();
    leaky_collection(&f.root().join("sources/leak"), &secret);
    f.write(
        "requirements.yml",
        "collections:\n  - name: ./sources/leak\n    type: dir\n",
    );
    let err = vendor_refused(&f);
    assert!(
        err.contains("./sources/leak"),
        "names the collection: {err}"
    );
    assert!(
        err.contains("plugins/creds"),
        "names the path inside: {err}"
    );
    assert!(err.contains("outside its own tree"), "{err}");
    assert!(!f.root().join("vendor").exists());
    assert_eq!(
        files_holding(f.root(), "HOSTSECRET123"),
        Vec::<PathBuf>::new()
    );
    // the same collection from a git repository: galaxy clones and copies it itself
    let repo_dir = host.path().join("leak-git");
    leaky_collection(&repo_dir, &secret);
    git(&repo_dir, &["init", "-q"]);
    git(&repo_dir, &["add", "."]);
    git(&repo_dir, &["commit", "-qm", "v1"]);
    let g = Fixture::bare();
    g.write(
        "requirements.yml",
        &format!(
            "collections:\n  - name: git+file://{}\n    type: git\n",
            repo_dir.display()
        ),
    );
    let err = vendor_refused(&g);
    assert!(err.contains("plugins/creds"), "{err}");
    assert!(err.contains("outside its own tree"), "{err}");
    assert_eq!(
        files_holding(g.root(), "HOSTSECRET123"),
        Vec::<PathBuf>::new()
    );
}

/// The entries of a directory, recursively, relative to it (dirs end in `/`).
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                out.push(format!("{rel}/"));
                pending.push(e.path());
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn vendor_writes_only_under_vendor_and_refuses_sources_outside_the_project() {
    // sources/a/p is the project: `../../x.tar.gz` is sources/x.tar.gz
    let top = tempfile::tempdir().unwrap();
    let role = top.path().join("x");
    std::fs::create_dir_all(role.join("tasks")).unwrap();
    std::fs::create_dir_all(role.join("meta")).unwrap();
    std::fs::write(
        role.join("tasks/main.yml"),
        "- ansible.builtin.debug: {msg: x}\n",
    )
    .unwrap();
    std::fs::write(role.join("meta/main.yml"), "galaxy_info: {author: t}\n").unwrap();
    sh(Command::new("tar")
        .args(["-czf", "x.tar.gz", "x"])
        .current_dir(top.path()));
    let root = top.path().join("a/p");
    std::fs::create_dir_all(root.join("roles")).unwrap();
    std::fs::create_dir_all(root.join("images")).unwrap();
    crate::util::copy_dir(&repo().join("packer"), &root.join("packer"));
    let before = listing(top.path());
    for (reqs, says) in [
        // galaxy would name the role by its path and install it at staging/roles/../../x
        ("roles:\n  - src: ../../x.tar.gz\n", "name:"),
        (
            "roles:\n  - src: ../../x.tar.gz\n    name: acme.x\n",
            "outside the project",
        ),
        (
            "collections:\n  - name: /usr/lib\n    type: dir\n",
            "outside the project",
        ),
    ] {
        std::fs::write(root.join("requirements.yml"), reqs).unwrap();
        let err = vendor_refused_in(&root);
        assert!(err.contains(says), "{reqs}: {err}");
        assert!(err.contains("requirements.yml:"), "located: {err}");
        std::fs::remove_file(root.join("requirements.yml")).unwrap();
        assert_eq!(listing(top.path()), before, "{reqs}: nothing written");
    }
}

#[test]
fn a_local_source_that_is_a_fifo_or_the_wrong_kind_is_refused_without_waiting() {
    let f = Fixture::bare();
    let fifo = f.root().join("x.tar.gz");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    f.write("plain", "not a directory\n");
    for (reqs, says) in [
        (
            "collections:\n  - name: ./x.tar.gz\n    type: file\n",
            "is a FIFO (named pipe), not a regular file",
        ),
        (
            "collections:\n  - name: ./plain\n    type: dir\n",
            "is a regular file, not a directory",
        ),
    ] {
        f.write("requirements.yml", reqs);
        let mut child = Command::new(env!("CARGO_BIN_EXE_parbake"))
            .arg("vendor")
            .current_dir(f.root())
            .env("PARBAKE_ANSIBLE_GALAXY", galaxy())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > until {
                let _ = child.kill();
                panic!("{reqs}: vendor waited on it");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(says) && err.contains("requirements.yml:2"),
            "{err}"
        );
    }
}

fn vendor_refused_in(root: &Path) -> String {
    let r = crate::util::run_in(root, &["vendor"]);
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    r.stderr
}

#[test]
fn a_git_source_that_git_would_read_as_an_option_is_refused_before_git_runs() {
    let f = Fixture::bare();
    let marker = f.root().join("pwned");
    for reqs in [
        format!(
            "collections:\n  - name: git+--upload-pack=touch${{IFS}}{}\n    type: git\n",
            marker.display()
        ),
        format!(
            "roles:\n  - src: git+--upload-pack=touch${{IFS}}{}\n    name: acme.x\n",
            marker.display()
        ),
        "roles:\n  - src: git+file:///x,-v\n    name: acme.x\n".to_string(),
    ] {
        f.write("requirements.yml", &reqs);
        let err = vendor_refused(&f);
        assert!(err.contains("starts with `-`"), "{reqs}: {err}");
        assert!(err.contains("requirements.yml:"), "located: {err}");
        assert!(!marker.exists(), "{reqs}");
    }
}

#[test]
fn bake_packs_exactly_the_files_the_lock_hashes() {
    let v = vendored_stack();
    let f = &v.project;
    let cols = f.root().join("vendor/collections");
    // a local base image, as the pipeline tier's fake bakes use
    for file in ["disk.qcow2", "vmlinuz", "initrd.img"] {
        f.write(&format!("base/{file}"), "fake");
    }
    f.write(
        "images/img.yml",
        "sources:\n  qemu:\n    disk_image: base/disk.qcow2\n    ssh_user: debian\nbasic: []\nlaunch_only: []\n",
    );
    std::fs::write(cols.join("loose.txt"), "loose").unwrap();
    std::fs::write(cols.join("ansible_collections/.hidden"), "hidden").unwrap();
    std::fs::write(cols.join("ansible_collections/acme/.hidden"), "hidden").unwrap();
    std::fs::create_dir_all(cols.join("ansible_collections/acme/zz-9.9.9.info")).unwrap();
    std::fs::write(
        cols.join("ansible_collections/acme/zz-9.9.9.info/GALAXY.yml"),
        "planted",
    )
    .unwrap();
    // a fake Packer that keeps the payload's archive
    let tmp = tempfile::tempdir().unwrap();
    let kept = tmp.path().join("collections.tar.gz");
    let packer = tmp.path().join("packer");
    std::fs::write(
        &packer,
        format!(
            "#!/bin/sh\n[ -f payload/collections.tar.gz ] && cp payload/collections.tar.gz {}\nexec {} \"$@\"\n",
            kept.display(),
            repo().join("tests/fixtures/fake-packer.py").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&packer, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parbake"))
        .args(["bake", "s", "--target", "qemu"])
        .current_dir(f.root())
        .env("PARBAKE_PACKER", &packer)
        .env("PARBAKE_ACCEL", "tcg")
        .env("PARBAKE_STORE", tmp.path().join("store"))
        .env("FAKE_PACKER_LOG", tmp.path().join("log"))
        .env("FAKE_PACKER_SECONDS", "0")
        .env_remove("PARBAKE_PROJECT")
        .output()
        .unwrap();
    assert!(
        kept.is_file(),
        "bake packed no collections: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = sh(Command::new("tar").arg("-tzf").arg(&kept));
    let mut packed: Vec<&str> = listed.lines().filter(|l| !l.ends_with('/')).collect();
    packed.sort();
    for planted in ["loose.txt", ".hidden", "zz-9.9.9.info"] {
        assert!(
            !packed.iter().any(|p| p.contains(planted)),
            "{planted} was packed: {packed:?}"
        );
    }
    let hashed = Vendored::verify(f.root())
        .unwrap()
        .unwrap()
        .collection_files()
        .unwrap();
    assert!(!hashed.is_empty());
    assert_eq!(
        packed,
        hashed.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[test]
fn the_lock_refuses_control_characters_and_duplicates_at_their_line() {
    let v = vendoring();
    let f = &v.project;
    vendor_ok(f, &[]);
    let lock_path = f.root().join("requirements.lock.json");
    let good = std::fs::read_to_string(&lock_path).unwrap();
    assert!(good.contains("\"requires_ansible\": \">=2.14\""), "{good}");
    // an escape sequence in requires_ansible
    let bad = good.replace("\">=2.14\"", "\">=2.14\\u001b[2J\"");
    std::fs::write(&lock_path, &bad).unwrap();
    let line = bad
        .lines()
        .position(|l| l.contains("u001b"))
        .map(|i| i + 1)
        .unwrap();
    let (msg, hints) = load_error(f.root());
    assert!(
        msg.contains(&format!("requirements.lock.json:{line}:")),
        "{msg}"
    );
    assert!(msg.contains("control character"), "{msg}");
    assert!(!msg.contains('\u{1b}'), "printed raw: {msg:?}");
    assert!(!hints.is_empty());
    // the same collection listed twice
    let mut lock: serde_json::Value = serde_json::from_str(&good).unwrap();
    let c = lock["collections"][0].clone();
    lock["collections"].as_array_mut().unwrap().push(c);
    std::fs::write(&lock_path, serde_json::to_string_pretty(&lock).unwrap()).unwrap();
    let (msg, _) = load_error(f.root());
    assert!(msg.contains("twice"), "{msg}");
    assert!(msg.contains("requirements.lock.json:"), "{msg}");
}

#[test]
fn a_collections_requires_ansible_with_an_escape_sequence_is_refused_at_vendor() {
    let f = Fixture::bare();
    let src = f.root().join("sources/esc");
    std::fs::create_dir_all(src.join("meta")).unwrap();
    std::fs::write(
        src.join("galaxy.yml"),
        "namespace: acme\nname: esc\nversion: 1.0.0\nreadme: README.md\nauthors: [test]\n",
    )
    .unwrap();
    std::fs::write(src.join("README.md"), "x\n").unwrap();
    std::fs::write(
        src.join("meta/runtime.yml"),
        "requires_ansible: \">=2.14\\e[2J\\e]0;pwned\\a\"\n",
    )
    .unwrap();
    f.write(
        "requirements.yml",
        "collections:\n  - name: ./sources/esc\n    type: dir\n",
    );
    let r = f.run(&["vendor"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("control character"), "{}", r.stderr);
    assert!(!r.stderr.contains('\u{1b}') && !r.stdout.contains('\u{1b}'));
}

#[test]
fn vendor_clean_up_leaves_a_staging_dir_of_a_live_process_it_cannot_signal() {
    // as root, kill(1, 0) succeeds; run parbake as nobody, for whom pid 1 answers EPERM
    let is_root = unsafe { libc::geteuid() } == 0;
    let setpriv = Path::new("/usr/bin/setpriv");
    if !is_root || !setpriv.exists() {
        eprintln!("SKIP: needs root and setpriv to run parbake as another user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::bare();
    let open = |p: &Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777));
    open(f.root()).unwrap();
    open(f.dir.path()).unwrap();
    f.write(
        "requirements.yml",
        "roles:\n  - src: git+file:///nonexistent/parbake-test/repo\n    name: acme.gone\n",
    );
    let live = f.root().join(".parbake-vendor-1-live");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join("half-installed"), "x").unwrap();
    open(&live).unwrap();
    let out = Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_parbake"))
        .arg("vendor")
        .current_dir(f.root())
        .env("PARBAKE_ANSIBLE_GALAXY", "/bin/false")
        .env_remove("PARBAKE_PROJECT")
        .env("HOME", f.root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        live.join("half-installed").exists(),
        "pid 1 is alive (EPERM): its staging dir must stay; {stderr}"
    );
}

#[test]
fn vendor_runs_the_projects_own_tools_only_when_asked() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::bare();
    f.write(
        "requirements.yml",
        "roles:\n  - src: git+file:///nonexistent/parbake-test/repo\n    name: acme.gone\n",
    );
    let tools = tempfile::tempdir().unwrap();
    let script = |path: &Path, marker: &Path| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            path,
            format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let planted = tools.path().join("planted-ran");
    let on_path = tools.path().join("path-ran");
    script(&f.root().join(".venv/bin/ansible-galaxy"), &planted);
    script(&tools.path().join("bin/ansible-galaxy"), &on_path);
    let run = |project_tools: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_parbake"));
        c.arg("vendor")
            .current_dir(f.root())
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", tools.path().join("bin").display()),
            )
            .env_remove("PARBAKE_ANSIBLE_GALAXY")
            .env_remove("PARBAKE_ANSIBLE_PLAYBOOK")
            .env_remove("PARBAKE_PROJECT")
            .env_remove("PARBAKE_PROJECT_TOOLS");
        if project_tools {
            c.env("PARBAKE_PROJECT_TOOLS", "1");
        }
        let out = c.output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = run(false);
    assert!(!planted.exists(), "the project's .venv ran: {stderr}");
    assert!(on_path.exists(), "PATH's ansible-galaxy ran: {stderr}");
    assert!(
        stderr.contains(
            &tools
                .path()
                .join("bin/ansible-galaxy")
                .display()
                .to_string()
        ),
        "says which: {stderr}"
    );
    run(true);
    assert!(
        planted.exists(),
        "PARBAKE_PROJECT_TOOLS=1 runs the project's own"
    );
}

/// A Galaxy source with no reachable server (here a local port nothing listens on, named in
/// the project's ansible.cfg as Ansible users name a mirror): exit 1, ansible-galaxy's lines,
/// and a hint on vendoring with no network. Nothing is written.
#[test]
fn a_galaxy_source_without_a_network_says_what_to_do() {
    let f = Fixture::bare();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    f.write(
        "ansible.cfg",
        &format!("[galaxy]\nserver_list = mirror\n\n[galaxy_server.mirror]\nurl = http://127.0.0.1:{port}/api/\n"),
    );
    f.write(
        "requirements.yml",
        "roles:\n  - name: geerlingguy.docker\n    version: 8.0.0\n",
    );
    let r = f.run(&["vendor"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("Connection refused"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("hint: ansible-galaxy could not reach its server")
            && r.stderr
                .contains("commit vendor/ and requirements.lock.json"),
        "{}",
        r.stderr
    );
    assert!(!f.root().join("vendor").exists());
    assert!(!f.root().join("requirements.lock.json").exists());
}
