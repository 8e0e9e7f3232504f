//! Hostile role trees (issue 9, "Role trees"): each class exits 1 with the role and the path
//! (or the file and line) and a hint, never a stale hash, a hang, a panic or a stack overflow.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use parbake::plan::{self, PlanError, Target, MAX_DEPENDENCY_DEPTH};

use crate::util::{request, Fixture, Run};

/// Runs the real binary in the fixture, killed and failed after `limit`: a hang is a failure,
/// not a stuck test run.
fn run_within(f: &Fixture, args: &[&str], limit: Duration) -> Run {
    crate::hostile_reads::measured(f, args, limit).run
}

const LIMIT: Duration = Duration::from_secs(120);

/// `plan web` exits 1 with a hint and nothing on stdout; returns stderr.
fn plan_fails(f: &Fixture, args: &[&str]) -> String {
    let r = run_within(f, args, LIMIT);
    assert_eq!(
        r.code, 1,
        "expected exit 1 for {args:?}; stderr:\n{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "no data on stdout: {}", r.stdout);
    assert!(r.stderr.contains("hint: "), "a hint:\n{}", r.stderr);
    r.stderr
}

fn has(stderr: &str, needles: &[&str]) {
    for n in needles {
        assert!(stderr.contains(n), "missing {n:?} in:\n{stderr}");
    }
}

fn symlink(target: &str, link: &Path) {
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn role_hash(f: &Fixture, role: &str) -> String {
    f.load().roles[role].hash.clone()
}

fn set_exec(path: &Path, exec: bool) {
    use std::os::unix::fs::PermissionsExt;
    let mode = if exec { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// --- symlinks -------------------------------------------------------------------------------

#[test]
fn symlink_in_role_is_hashed_by_what_it_resolves_to() {
    let f = Fixture::example();
    f.write("shared/motd.txt", "hello\n");
    f.write("shared/conf.d/a.conf", "a = 1\n");
    symlink(
        "../../../shared/motd.txt",
        &f.root().join("roles/base/files/motd.txt"),
    );
    symlink(
        "../../../shared/conf.d",
        &f.root().join("roles/base/files/conf.d"),
    );
    let before = role_hash(&f, "base");

    // editing a linked file's target: a new hash (the link text is unchanged)
    f.write("shared/motd.txt", "hello, world\n");
    let edited = role_hash(&f, "base");
    assert_ne!(
        before, edited,
        "editing the link target must change the role hash"
    );

    // its exec bit counts too
    set_exec(&f.root().join("shared/motd.txt"), true);
    let exec = role_hash(&f, "base");
    assert_ne!(edited, exec, "the target's exec bit is part of the hash");
    set_exec(&f.root().join("shared/motd.txt"), false);
    assert_eq!(edited, role_hash(&f, "base"));

    // a file inside a linked directory
    f.write("shared/conf.d/a.conf", "a = 2\n");
    assert_ne!(
        edited,
        role_hash(&f, "base"),
        "a linked directory's tree is hashed"
    );

    // a link hashes exactly as a copy of what it resolves to
    let g = Fixture::example();
    for (rel, from) in [
        ("roles/base/files/motd.txt", "shared/motd.txt"),
        ("roles/base/files/conf.d/a.conf", "shared/conf.d/a.conf"),
    ] {
        g.write(rel, &std::fs::read_to_string(f.root().join(from)).unwrap());
    }
    assert_eq!(role_hash(&f, "base"), role_hash(&g, "base"));
}

#[test]
fn symlink_in_role_is_copied_into_the_payload_as_what_was_hashed() {
    let f = Fixture::example();
    f.write("shared/motd.txt", "hello\n");
    symlink(
        "../../../shared/motd.txt",
        &f.root().join("roles/base/files/motd.txt"),
    );
    // editor and VCS noise is neither hashed nor shipped
    f.write("roles/base/files/motd.txt~", "backup\n");
    let project = f.load();
    let role = &project.roles["base"];
    let out = tempfile::tempdir().unwrap();
    let to = out.path().join("base");
    role.copy_to(&to).unwrap();

    let copied = to.join("files/motd.txt");
    let meta = std::fs::symlink_metadata(&copied).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the payload holds the resolved content, not a link"
    );
    assert_eq!(std::fs::read_to_string(&copied).unwrap(), "hello\n");
    assert!(!to.join("files/motd.txt~").exists());
    let (hash, _) = parbake::config::roles::hash_tree(&to, &to).unwrap();
    assert_eq!(hash, role.hash, "the payload copy has the role's hash");

    // a role edited after the plan was made fails the copy instead of shipping other bytes
    f.write("shared/motd.txt", "changed\n");
    let err = role.copy_to(&out.path().join("again")).unwrap_err();
    assert!(err.to_string().contains("changed while"), "{err}");
}

#[test]
fn symlink_leaving_the_project_is_refused_with_the_path() {
    let f = Fixture::example();
    symlink("/etc/passwd", &f.root().join("roles/base/files/passwd"));
    let e = plan_fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "role `base`",
            "roles/base/files/passwd",
            "/etc/passwd",
            "outside the project",
        ],
    );

    // through a relative link, and through a linked directory
    let g = Fixture::example();
    symlink("../../../..", &g.root().join("roles/base/files/up"));
    let e = plan_fails(&g, &["plan", "web"]);
    has(&e, &["roles/base/files/up", "outside the project"]);
}

#[test]
fn dangling_symlink_in_role_is_refused_with_the_path() {
    let f = Fixture::example();
    symlink("no-such-file", &f.root().join("roles/base/files/gone"));
    let e = plan_fails(&f, &["plan", "web"]);
    has(
        &e,
        &["role `base`", "roles/base/files/gone", "dangling symlink"],
    );
}

#[test]
fn looping_symlink_in_role_is_refused_with_the_path() {
    // a link to itself
    let f = Fixture::example();
    symlink("self", &f.root().join("roles/base/files/self"));
    let e = plan_fails(&f, &["plan", "web"]);
    has(&e, &["roles/base/files/self", "symlink loop"]);

    // a link to a directory that contains it
    let g = Fixture::example();
    symlink("..", &g.root().join("roles/base/files/parent"));
    let e = plan_fails(&g, &["plan", "web"]);
    has(&e, &["roles/base/files/parent", "symlink loop"]);
}

// --- special files --------------------------------------------------------------------------

#[test]
fn fifo_in_role_is_refused_without_hanging() {
    let f = Fixture::example();
    let fifo = f.root().join("roles/base/files/pipe");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let e = plan_fails(&f, &["plan", "web"]);
    has(&e, &["role `base`", "roles/base/files/pipe", "FIFO"]);

    // nor through a link to it
    let g = Fixture::example();
    let fifo = g.root().join("shared/pipe");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    symlink(
        "../../../shared/pipe",
        &g.root().join("roles/base/files/pipe"),
    );
    let e = plan_fails(&g, &["plan", "web"]);
    has(&e, &["roles/base/files/pipe", "FIFO"]);
}

#[test]
fn socket_in_role_is_refused() {
    let f = Fixture::example();
    let path = f.root().join("roles/base/files/sock");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let e = plan_fails(&f, &["plan", "web"]);
    has(&e, &["role `base`", "roles/base/files/sock", "a socket"]);
}

// --- dependencies missing from `installed` --------------------------------------------------

/// The example image with an explicit `installed` list.
fn installed(f: &Fixture, roles: &str) {
    let path = f.root().join("images/debian12.yml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\nbasic:", &format!("\ninstalled: [{roles}]\nbasic:"));
    std::fs::write(path, text).unwrap();
}

#[test]
fn role_missing_from_installed_needed_by_a_basic_role_is_a_located_error() {
    let f = Fixture::example();
    f.role("extra", &[]);
    f.write(
        "roles/base/meta/main.yml",
        "galaxy_info:\n  author: test\ndependencies:\n  - extra\n",
    );
    installed(&f, "base, users, identity, nginx, python, webapp, worker");
    let e = plan_fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "images/debian12.yml:",
            "field `installed`",
            "role `extra` is not installed",
            "basic role `base` needs it: base → extra",
            "| installed: [base,",
            "hint: add `extra` to `installed` in images/debian12.yml",
            "roles/base/meta/main.yml",
        ],
    );
}

#[test]
fn role_missing_from_installed_needed_by_a_launch_role_is_a_located_error() {
    let f = Fixture::example();
    installed(&f, "base, users, identity, nginx, webapp, worker");
    for args in [
        &["plan", "web"][..],
        &["plan", "web", "--promote", "webapp"],
        &["userdata", "web"],
    ] {
        let e = plan_fails(&f, args);
        has(
            &e,
            &[
                "images/debian12.yml:",
                "role `python` is not installed on image `debian12`",
                "webapp → python",
                "hint: add `python` to `installed`",
            ],
        );
    }
}

// --- dependency depth -----------------------------------------------------------------------

/// Roles `r00000` → `r00001` → ... → `r<n-1>`, an image, and a stack running the first.
fn chain_of(n: usize) -> Fixture {
    let f = Fixture::bare();
    for i in 0..n {
        let next = format!("r{:05}", i + 1);
        let deps: Vec<&str> = if i + 1 < n { vec![&next] } else { vec![] };
        f.role(&format!("r{i:05}"), &deps);
    }
    f.image("img", &[], &[]);
    f.stack("deep", "img", &["r00000"]);
    f
}

#[test]
fn dependency_chain_of_10000_roles_is_a_clear_error_not_a_stack_overflow() {
    let f = chain_of(10_000);
    let started = Instant::now();
    let e = plan_fails(&f, &["plan", "deep"]);
    has(
        &e,
        &[
            "roles/r00015/meta/main.yml:",
            &format!("more than {MAX_DEPENDENCY_DEPTH} roles deep"),
            "r00000 → r00001 → r00002 → … → r00014 → r00015 → r00016",
            "hint: flatten the chain",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "plan took {:?}",
        started.elapsed()
    );
}

#[test]
fn dependency_chain_at_the_depth_limit_plans() {
    let f = chain_of(MAX_DEPENDENCY_DEPTH);
    let p = plan::plan(&f.load(), &request("deep", &[], Target::Qemu)).unwrap();
    assert_eq!(p.launch.len(), MAX_DEPENDENCY_DEPTH);
    assert_eq!(
        p.launch[0].name,
        format!("r{:05}", MAX_DEPENDENCY_DEPTH - 1)
    );

    let g = chain_of(MAX_DEPENDENCY_DEPTH + 1);
    match plan::plan(&g.load(), &request("deep", &[], Target::Qemu)) {
        Err(PlanError::TooDeep(at)) => {
            assert_eq!(
                at.file,
                format!("roles/r{:05}/meta/main.yml", MAX_DEPENDENCY_DEPTH - 1)
            );
            assert_eq!(at.line, 4, "{at}");
        }
        other => panic!("expected TooDeep, got {other:?}"),
    }
}

#[test]
fn wide_dependency_graph_plans_in_linear_time() {
    // 12 levels of 20 roles, each depending on every role of the next level, and a
    // launch-only role reached only through the last role of level 1: the old chain() walked
    // every path below the first role of level 1 (20^10 of them) before finding it
    let f = Fixture::bare();
    let (levels, width) = (12, 20);
    let name = |l: usize, w: usize| format!("l{l:02}w{w:02}");
    for l in 0..levels {
        for w in 0..width {
            let mut deps: Vec<String> = if l + 1 < levels {
                (0..width).map(|v| name(l + 1, v)).collect()
            } else {
                vec![]
            };
            if (l, w) == (1, width - 1) {
                deps.push("lo".into());
            }
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            f.role(&name(l, w), &deps);
        }
    }
    f.role("lo", &[]);
    f.image("img", &[&name(0, 0)], &["lo"]);
    f.stack("wide", "img", &[&name(0, 1)]);
    let project = f.load();
    // in a thread: the old code does not finish, and the test must fail rather than hang
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tx.send(plan::plan(&project, &request("wide", &[], Target::Qemu)))
            .ok();
    });
    let err = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("plan of a wide dependency graph took over 30 s")
        .unwrap_err();
    match err {
        PlanError::BasicDependsOnLaunchOnly { chain, .. } => {
            assert_eq!(chain, [name(0, 0), name(1, width - 1), "lo".to_string()]);
        }
        other => panic!("expected BasicDependsOnLaunchOnly, got {other:?}"),
    }
}

// --- meta dependencies with parameters ------------------------------------------------------

#[test]
fn meta_dependency_with_vars_is_refused_at_its_line() {
    let f = Fixture::example();
    f.write(
        "roles/webapp/meta/main.yml",
        "galaxy_info:\n  author: test\ndependencies:\n  - python\n  - role: nginx\n    vars:\n      nginx_port: 8080\n",
    );
    let e = plan_fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "roles/webapp/meta/main.yml:6:5:",
            "field `dependencies[1].vars`",
            "meta dependency `nginx` sets `vars`",
            "6 |     vars:",
            "hint: list the dependency by name only",
            "in the stack's `vars:` (or, if you own `nginx`, in its defaults/main.yml)",
            "include_role",
        ],
    );
}

#[test]
fn meta_dependency_with_when_tags_or_other_parameters_is_refused() {
    for (key, value) in [
        ("when", "ansible_os_family == 'Debian'"),
        ("tags", "[web]"),
        ("become", "true"),
        ("nginx_port", "8080"),
    ] {
        let f = Fixture::example();
        f.write(
            "roles/webapp/meta/main.yml",
            &format!("dependencies:\n  - python\n  - name: nginx\n    {key}: {value}\n"),
        );
        let e = plan_fails(&f, &["plan", "web"]);
        has(
            &e,
            &[
                "roles/webapp/meta/main.yml:4:5:",
                &format!("meta dependency `nginx` sets `{key}`"),
            ],
        );
    }
    // the key first, before the name, in flow style
    let f = Fixture::example();
    f.write(
        "roles/webapp/meta/main.yml",
        "dependencies: [python, {when: false, role: nginx}]\n",
    );
    let e = plan_fails(&f, &["plan", "web"]);
    has(&e, &["roles/webapp/meta/main.yml:1:", "sets `when`"]);
}

#[test]
fn meta_dependency_by_name_or_role_key_still_loads() {
    let f = Fixture::example();
    f.write(
        "roles/webapp/meta/main.yml",
        "dependencies:\n  - role: python\n  - name: nginx\n",
    );
    let project = f.load();
    assert_eq!(project.roles["webapp"].deps, ["python", "nginx"]);
    // the seven example roles load unchanged, with their declared dependencies
    let example = Fixture::example().load();
    let deps: Vec<(&str, Vec<String>)> = example
        .roles
        .values()
        .map(|r| (r.name.as_str(), r.deps.clone()))
        .collect();
    assert_eq!(deps.len(), 7);
    assert_eq!(example.roles["webapp"].deps, ["python", "nginx"]);
    assert_eq!(example.roles["identity"].deps, Vec::<String>::new());
}
