//! Offline launch: `stage_pip` entries are exact pins or a located error; `plan` says per
//! launch role whether it runs with no network; the real runner installs staged wheels in a
//! network namespace with no route (pip asks no index), and makes staged apt lists count as
//! fresh for Ansible's apt module.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::hostile::{fails, has};
use crate::runner::Image;
use crate::util::{repo, Fixture};

// --- stage_pip validation -------------------------------------------------------------------

/// `plan` on the example project with webapp's meta/parbake.yml replaced: exit 1, no data, a
/// hint, and the stderr.
fn refused(meta: &str) -> String {
    let f = Fixture::example();
    f.write("roles/webapp/meta/parbake.yml", meta);
    fails(&f, &["plan", "web"])
}

#[test]
fn stage_pip_refuses_a_range_with_its_line_and_how_to_pin() {
    let e = refused("description: x\nstage_pip:\n  - Django==4.2.16\n  - gunicorn>=23\n");
    has(
        &e,
        &[
            "roles/webapp/meta/parbake.yml:4:",
            "gunicorn>=23",
            "a version range",
            "name==version",
        ],
    );
}

#[test]
fn stage_pip_refuses_an_unpinned_name_and_a_wildcard() {
    has(
        &refused("stage_pip: [Django]\n"),
        &["\"Django\" is not pinned"],
    );
    has(
        &refused("stage_pip: [Django==4.2.*]\n"),
        &["not an exact version"],
    );
}

#[test]
fn stage_pip_refuses_urls_and_paths() {
    for bad in [
        "https://example.com/x-1.0-py3-none-any.whl",
        "Django @ https://example.com/django.tar.gz",
        "./vendor/x.whl",
    ] {
        let e = refused(&format!("stage_pip: [\"{bad}\"]\n"));
        has(
            &e,
            &[
                "roles/webapp/meta/parbake.yml:1:",
                "a URL or a path",
                "package index",
            ],
        );
    }
}

#[test]
fn stage_pip_refuses_pip_options_markers_and_bad_names_or_versions() {
    has(
        &refused("stage_pip: [\"--index-url=http://evil/simple\"]\n"),
        &["is a pip option", "parbake runs pip with its own options"],
    );
    has(
        &refused("stage_pip: [\"Django==4.2.16; python_version > '3'\"]\n"),
        &["environment marker"],
    );
    has(
        &refused("stage_pip: [\"_django==4.2.16\"]\n"),
        &["not a Python package name", "PEP 508"],
    );
    has(
        &refused("stage_pip: [Django==latest]\n"),
        &["\"latest\" is not a release version", "PEP 440"],
    );
}

// --- plan: the offline verdict --------------------------------------------------------------

/// A role with these tasks and meta/parbake.yml.
fn role(f: &Fixture, name: &str, tasks: &str, meta: &str) {
    f.role(name, &[]);
    f.write(&format!("roles/{name}/tasks/main.yml"), tasks);
    f.write(
        &format!("roles/{name}/meta/parbake.yml"),
        &format!("description: {name}\n{meta}"),
    );
}

#[test]
fn plan_says_per_launch_role_whether_it_runs_offline_and_why_not() {
    let f = Fixture::bare();
    f.role("base", &[]);
    let apt = "- ansible.builtin.apt: {name: x, update_cache: true, cache_valid_time: 3600}\n";
    let pip = "- ansible.builtin.pip: {name: [Django==4.2.16], virtualenv: /opt/v}\n";
    #[rustfmt::skip]
    let table: [(&str, String, &str, bool, &str); 14] = [
        ("plain", "- ansible.builtin.debug: {msg: hi}\n".into(), "", true, "offline: none of its modules reaches the network"),
        ("aptstaged", apt.into(), "stage_apt: [nginx]\n", true, "offline: packages staged"),
        ("aptbare", apt.into(), "", false, "needs the network: installs packages (roles/aptbare/tasks/main.yml:1) and stages none"),
        ("pkgbare", "- package: {name: x}\n".into(), "", false, "needs the network: installs packages (roles/pkgbare/tasks/main.yml:1) and stages none"),
        ("aptalways", "- apt: {name: x, update_cache: yes}\n".into(), "stage_apt: [nginx]\n", false,
         "needs the network: refreshes the apt lists on every run (update_cache with no cache_valid_time, or 0, in roles/aptalways/tasks/main.yml)"),
        ("aptzero", "- apt: {name: x, update_cache: yes, cache_valid_time: 0}\n".into(), "stage_apt: [nginx]\n", false,
         "needs the network: refreshes the apt lists on every run (update_cache with no cache_valid_time, or 0, in roles/aptzero/tasks/main.yml)"),
        ("pipstaged", pip.into(), "stage_pip: [Django==4.2.16]\n", true, "offline: wheels staged"),
        ("pipbare", pip.into(), "", false, "needs the network: installs with pip (roles/pipbare/tasks/main.yml:1) and stages no wheels"),
        ("both", format!("{apt}{pip}"), "stage_apt: [python3-venv]\nstage_pip: [Django==4.2.16]\n", true, "offline: packages and wheels staged"),
        ("fetch", "- block:\n    - get_url: {url: 'https://x', dest: /x}\n  rescue:\n    - ansible.builtin.git: {repo: x, dest: /y}\n".into(),
         "stage_apt: [nginx]\n", false, "needs the network: downloads at launch (get_url at roles/fetch/tasks/main.yml:2, git at roles/fetch/tasks/main.yml:4)"),
        ("several", format!("{apt}{pip}- uri: {{url: 'https://x'}}\n"), "", false,
         "needs the network: installs packages (roles/several/tasks/main.yml:1) and stages none; installs with pip (roles/several/tasks/main.yml:2) and stages no wheels; downloads at launch (uri at roles/several/tasks/main.yml:3)"),
        // what plan cannot read is never "offline" on its word: unknown, until someone says
        ("cmd", "- name: x\n  ansible.builtin.shell: curl -fsS https://x | sh\n".into(), "", false,
         "unknown: runs `shell` (roles/cmd/tasks/main.yml:2), which plan does not read; if that needs no network, say `offline: true` in the role's meta/parbake.yml or in `staging:` for it"),
        ("dyn", "- include_role: {name: \"{{ which }}\"}\n".into(), "", false,
         "unknown: includes a role named `{{ which }}` (roles/dyn/tasks/main.yml:1), which plan does not read; if that needs no network, say `offline: true` in the role's meta/parbake.yml or in `staging:` for it"),
        ("said", "- command: hostname x\n".into(), "offline: true\n", true, "offline: declared (`offline: true`)"),
    ];
    for (name, tasks, meta, _, _) in &table {
        role(&f, name, tasks, meta);
    }
    let names: Vec<&str> = table.iter().map(|t| t.0).collect();
    f.image("img", &["base"], &[]).stack("all", "img", &names);
    let plan = f.plan("all", &[]);
    for (name, _, _, offline, reason) in &table {
        let r = plan.launch.iter().find(|r| r.name == *name).unwrap();
        assert_eq!(
            (r.offline, r.offline_reason.as_str()),
            (*offline, *reason),
            "{name}"
        );
    }
    // the base layer stages the wheels of the launch roles that declare them
    assert_eq!(
        plan.layers[0].stage_pip.keys().collect::<Vec<_>>(),
        ["both", "pipstaged"]
    );
    // text and JSON say the same
    let text = f.run(&["plan", "all"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout
            .contains("pipstaged    offline: wheels staged; wheels: Django==4.2.16"),
        "{}",
        text.stdout
    );
    let json = f.run(&["plan", "all", "--json"]);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    let fetch = doc["launch"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "fetch")
        .unwrap();
    assert_eq!(fetch["offline"], json!(false));
    assert_eq!(
        fetch["offline_reason"],
        json!("needs the network: downloads at launch (get_url at roles/fetch/tasks/main.yml:2, git at roles/fetch/tasks/main.yml:4)")
    );
    assert_eq!(fetch["offline_verdict"], json!("network"));
    let verdict = |name: &str| {
        doc["launch"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()["offline_verdict"]
            .clone()
    };
    assert_eq!(
        [
            verdict("cmd"),
            verdict("dyn"),
            verdict("said"),
            verdict("plain")
        ],
        [
            json!("unknown"),
            json!("unknown"),
            json!("offline"),
            json!("offline")
        ]
    );
}

/// A wrapper role is judged with the roles it includes or imports (and their dependencies):
/// devsec's os_hardening behind a wrapper installed auditd at launch while plan said "offline".
/// A role's staging covers the roles it includes; an included role baked in the layer is a
/// shim at launch and needs nothing.
#[test]
fn a_wrapper_is_offline_only_when_the_roles_it_includes_are() {
    let f = Fixture::bare();
    f.role("base", &[]);
    let apt = "- ansible.builtin.apt: {name: auditd, update_cache: true, cache_valid_time: 3600}\n";
    role(&f, "hardening", apt, "");
    role(
        &f,
        "fetcher",
        "- get_url: {url: 'https://x', dest: /x}\n",
        "",
    );
    f.write("roles/hardening/meta/main.yml", "dependencies: [fetcher]\n");
    let include = |what: &str, r: &str| format!("- ansible.builtin.{what}: {{name: {r}}}\n");
    role(&f, "wrapper", &include("include_role", "hardening"), "");
    role(
        &f,
        "staged",
        &include("import_role", "hardening"),
        "stage_apt: [auditd]\n",
    );
    f.image("img", &["base"], &[])
        .stack("s", "img", &["wrapper"])
        .stack("t", "img", &["staged"]);
    let verdict = |stack: &str, promote: &[&str]| {
        let plan = f.plan(stack, promote);
        let r = plan
            .launch
            .iter()
            .find(|r| r.name != "fetcher" && r.name != "hardening")
            .unwrap()
            .clone();
        (r.offline, r.offline_reason)
    };
    assert_eq!(
        verdict("s", &[]),
        (false, "needs the network: installs packages (roles/hardening/tasks/main.yml:1) and stages none (in hardening, which it includes); downloads at launch (get_url at roles/fetcher/tasks/main.yml:1) (in fetcher, which it includes)".into())
    );
    // the wrapper's staging covers what it includes; the dependency still downloads
    assert_eq!(
        verdict("t", &[]),
        (
            false,
            "needs the network: downloads at launch (get_url at roles/fetcher/tasks/main.yml:1) (in fetcher, which it includes)"
                .into()
        )
    );
}

/// Staging downloads what the role's install takes: apt's default is to install Recommends
/// (geerlingguy.postgresql failed offline on e2fsprogs, logsave, exim4-config: all
/// Recommends), so a role that installs with them stages with them; one whose apt tasks all say
/// `install_recommends: false` stages without; `stage_apt_recommends` decides over both.
#[test]
fn stage_apt_takes_recommends_as_the_roles_own_install_does() {
    let f = Fixture::bare();
    f.role("base", &[]);
    let apt = |extra: &str| {
        format!("- ansible.builtin.apt: {{name: postgresql, update_cache: true, cache_valid_time: 3600{extra}}}\n")
    };
    role(&f, "db", &apt(""), "stage_apt: [postgresql]\n");
    role(
        &f,
        "lean",
        &apt(", install_recommends: false"),
        "stage_apt: [nginx]\n",
    );
    role(
        &f,
        "mixed",
        &format!("{}{}", apt(", install_recommends: no"), apt("")),
        "stage_apt: [redis]\n",
    );
    role(
        &f,
        "chosen",
        &apt(""),
        "stage_apt: [curl]\nstage_apt_recommends: false\n",
    );
    f.image("img", &["base"], &[])
        .stack("s", "img", &["db", "lean", "mixed", "chosen"]);
    let project = f.load();
    let plan = parbake::plan::plan(
        &project,
        &crate::util::request("s", &[], parbake::plan::Target::Qemu),
    )
    .unwrap();
    let bare: Vec<&String> = plan.layers[0].stage_apt_without_recommends.iter().collect();
    assert_eq!(bare, ["chosen", "lean"]);
    let files = parbake::render::render_all(&project, &plan, &Default::default()).unwrap();
    let bake = files
        .iter()
        .find(|f| f.path.ends_with("bake.yml"))
        .map(|f| String::from_utf8_lossy(&f.contents).into_owned())
        .unwrap();
    let with = bake
        .find("Stage packages of launch roles (db, mixed) so launch")
        .expect(&bake);
    let without = bake
        .find("Stage packages of launch roles (chosen, lean) without Recommends")
        .expect(&bake);
    let (first, second) = bake.split_at(without);
    assert!(with < without);
    assert!(!first.contains("--no-install-recommends"), "{first}");
    assert!(second.contains("--no-install-recommends"), "{second}");
}

/// A role the team does not own (a vendored one: editing its meta/parbake.yml makes the vendor
/// tree stale) gets its staging from the image or stack file: `staging: {ROLE: {apt, pip}}`.
/// It counts for the offline verdict, the base layer downloads it, and it is in the layer
/// hash; a bad entry is refused at its line.
#[test]
fn an_image_or_stack_file_stages_for_a_role_it_does_not_own() {
    let f = Fixture::bare();
    f.role("base", &[]);
    let apt =
        "- ansible.builtin.apt: {name: postgresql, update_cache: true, cache_valid_time: 3600}\n";
    role(&f, "postgresql", apt, "");
    role(
        &f,
        "wrapper",
        "- ansible.builtin.include_role: {name: postgresql}\n",
        "",
    );
    f.image("img", &["base"], &[])
        .stack("db", "img", &["wrapper"]);
    let before = f.plan("db", &[]);
    assert!(!before.launch[0].offline, "{:?}", before.launch[0]);
    f.append(
        "images/stacks/db.yml",
        "staging:\n  postgresql:\n    apt: [postgresql, postgresql-contrib]\n",
    );
    let after = f.plan("db", &[]);
    assert_eq!(
        (
            after.launch[0].offline,
            after.launch[0].offline_reason.as_str()
        ),
        (true, "offline: packages staged")
    );
    assert_eq!(
        after.layers[0].stage_apt["postgresql"],
        ["postgresql", "postgresql-contrib"]
    );
    assert_ne!(before.layers[0].hash, after.layers[0].hash);
    // the image file can say it too, and says the same base layer for every stack
    f.write("images/stacks/db.yml", "image: img\nroles: [wrapper]\n");
    f.append(
        "images/img.yml",
        "staging:\n  postgresql: {apt: [postgresql, postgresql-contrib]}\n",
    );
    assert!(f.plan("db", &[]).launch[0].offline);
    // refused at the line: a role not on the image, a package that is not one, an unknown key
    for (text, needle) in [
        ("staging:\n  nosuch: {apt: [x]}\n", "images/stacks/db.yml:4:3: field `staging.nosuch`: `staging` names role `nosuch`, which is not installed on image `img`"),
        ("staging:\n  postgresql:\n    apt: [\"-o=Dpkg::x\"]\n", "images/stacks/db.yml:5:"),
        ("staging:\n  postgresql: {debs: [x]}\n", "unknown field `debs`"),
    ] {
        f.write("images/stacks/db.yml", &format!("image: img\nroles: [wrapper]\n{text}"));
        let r = f.run(&["plan", "db"]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains(needle), "{needle}\n{}", r.stderr);
    }
}

#[test]
fn the_example_web_stack_runs_offline_except_what_it_cannot_stage() {
    let plan = Fixture::example().plan("web", &[]);
    let verdicts: Vec<(&str, bool, &str)> = plan
        .launch
        .iter()
        .map(|r| (r.name.as_str(), r.offline, r.offline_reason.as_str()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("nginx", true, "offline: packages staged"),
            ("python", true, "offline: packages staged"),
            ("webapp", true, "offline: wheels staged"),
            // `hostname NAME`: a command, which the role says needs no network
            ("identity", true, "offline: declared (`offline: true`)"),
        ]
    );
    assert_eq!(
        plan.layers[0].stage_pip["webapp"],
        ["Django==4.2.30", "gunicorn==23.0.0"]
    );
    // what the role installs is what it stages
    let defaults = std::fs::read_to_string(repo().join("roles/webapp/defaults/main.yml")).unwrap();
    for pin in [
        "webapp_django_version: \"4.2.30\"",
        "webapp_gunicorn_version: \"23.0.0\"",
    ] {
        assert!(defaults.contains(pin), "{pin}");
    }
}

#[test]
fn what_a_launch_role_stages_is_an_input_of_the_base_layer() {
    let f = Fixture::example();
    let before = f.plan("web", &[]);
    f.write(
        "roles/webapp/meta/parbake.yml",
        "description: x\nstage_pip: [Django==4.2.29, gunicorn==23.0.0]\n",
    );
    let after = f.plan("web", &[]);
    assert_ne!(before.layers[0].hash, after.layers[0].hash);
    // through the role's content hash, and reported as the role's change
    assert_eq!(
        parbake::plan::changed_inputs(&before.layers[0].inputs, &after.layers[0].inputs),
        ["role webapp changed"]
    );
}

// --- the runner, for real, with no network ----------------------------------------------------

/// Whether this host can make a network namespace (root, or unprivileged user namespaces).
fn netns_available() -> bool {
    Command::new("unshare")
        .args(["--net", "--", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// The runner run for real like `runner::run_runner`, inside a new network namespace: only a
/// loopback, and that down, so no name resolves and no address routes. The caller's PIP_*
/// variables are dropped (they would override any pip configuration), as on an image.
fn run_offline(image: &Image, spec: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let root = image.path("");
    let path = format!(
        "{}:{}",
        crate::util::ansible_bin().display(),
        std::env::var("PATH").unwrap()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--", "python3"])
        .arg(repo().join("src/contract/assets/parbake-roles.py"))
        .arg("launch")
        .arg(spec)
        .env("PARBAKE_ROOT", &root)
        .env("PARBAKE_CONSOLE", root.join("console.log"))
        .env("PATH", path)
        .env("ANSIBLE_HOME", root.join("ansible-home"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("PIP_")) {
        cmd.env_remove(k);
    }
    let out = cmd.envs(env.iter().copied()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A pure-Python wheel `name-version-py3-none-any.whl` in `dest`, made here (no index, no
/// build backend): one module whose VALUE is the distribution name, and its requirements.
fn build_wheel(dest: &Path, name: &str, version: &str, requires: &[&str]) {
    const MAKE_WHEEL: &str = r#"
import base64, hashlib, os, sys, zipfile
dest, name, version, requires = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
mod = name.replace("-", "_")
dist = "%s-%s" % (mod, version)
files = {
    mod + "/__init__.py": "VALUE = %r\n" % name,
    dist + ".dist-info/METADATA": "Metadata-Version: 2.1\nName: %s\nVersion: %s\n%s"
        % (name, version, "".join("Requires-Dist: %s\n" % r for r in requires)),
    dist + ".dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: parbake-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
with zipfile.ZipFile(os.path.join(dest, dist + "-py3-none-any.whl"), "w") as z:
    for path, text in files.items():
        data = text.encode()
        z.writestr(path, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
    record.append(dist + ".dist-info/RECORD,,")
    z.writestr(dist + ".dist-info/RECORD", "\n".join(record) + "\n")
"#;
    let ok = Command::new("python3")
        .args(["-c", MAKE_WHEEL])
        .arg(dest)
        .args([name, version])
        .args(requires)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// An image whose launch role `app` pip-installs `parbake-tiny==1.0` (which requires
/// `parbake-tinydep==1.0`) into a venv and imports both; with `staged`, both wheels at
/// /opt/parbake/wheels and the bake's pip.conf (its find-links moved under the fake root).
fn pip_image(staged: bool) -> Image {
    let tasks = "- name: install the staged package into a venv\n  ansible.builtin.pip:\n    name: [parbake-tiny==1.0]\n    virtualenv: \"{{ out_dir }}/venv\"\n    virtualenv_command: python3 -m venv\n\
                 - name: import it\n  ansible.builtin.command:\n    argv: [\"{{ out_dir }}/venv/bin/python\", \"-c\", \"import parbake_tiny as t, parbake_tinydep as d; open('{{ out_dir }}/imported', 'w').write(t.VALUE + ' ' + d.VALUE)\"]\n";
    let image = Image::new(&[("app", &[], tasks)], &[]);
    if staged {
        let wheels = image.path("opt/parbake/wheels");
        std::fs::create_dir_all(&wheels).unwrap();
        build_wheel(&wheels, "parbake-tiny", "1.0", &["parbake-tinydep==1.0"]);
        build_wheel(&wheels, "parbake-tinydep", "1.0", &[]);
        let conf = parbake::render::playbook::PIP_CONF.replace(
            parbake::render::playbook::WHEELS_DIR,
            wheels.to_str().unwrap(),
        );
        std::fs::write(image.path("opt/parbake/pip.conf"), conf).unwrap();
    }
    image
}

#[test]
fn a_pip_staged_role_installs_from_the_wheels_with_the_network_blocked() {
    if !netns_available() {
        eprintln!("SKIPPED: cannot create a network namespace here (`unshare --net` failed)");
        return;
    }
    let image = pip_image(true);
    let out = image.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let spec = image.spec(&["app"], &[], json!({"out_dir": out}), json!({}));
    let (code, stdout) = run_offline(&image, &spec, &[]);
    let log = std::fs::read_to_string(image.path("var/log/parbake/launch.log")).unwrap();
    assert_eq!(code, 0, "{stdout}\n{log}");
    assert_eq!(image.role_status("app"), "ok");
    assert_eq!(
        std::fs::read_to_string(out.join("imported")).unwrap(),
        "parbake-tiny parbake-tinydep"
    );
}

#[test]
fn without_the_staged_pip_config_the_same_launch_fails_offline() {
    if !netns_available() {
        eprintln!("SKIPPED: cannot create a network namespace here (`unshare --net` failed)");
        return;
    }
    let image = pip_image(false);
    let out = image.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let spec = image.spec(&["app"], &[], json!({"out_dir": out}), json!({}));
    // no retries: pip's first attempt at the index fails at once with no route
    let (code, stdout) = run_offline(&image, &spec, &[("PIP_RETRIES", "0")]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(image.role_status("app"), "failed");
    assert!(!out.join("imported").exists());
    let log = std::fs::read_to_string(image.path("var/log/parbake/launch.log")).unwrap();
    assert!(
        log.contains("No matching distribution found for parbake-tiny==1.0"),
        "{log}"
    );
}

/// Sets a file's or directory's mtime to `seconds` ago.
fn age(path: &Path, seconds: u64) {
    let ok = Command::new("touch")
        .arg("-d")
        .arg(format!("@{}", now() - seconds))
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// How old Ansible's own apt module (ansible.modules.apt.get_cache_mtime, the pinned
/// ansible-core) finds the apt cache under `root`, in seconds.
fn apt_cache_age(root: &Path) -> u64 {
    let script = "import sys, time, ansible.modules.apt as m\n\
                  m.APT_UPDATE_SUCCESS_STAMP_PATH = sys.argv[1] + '/var/lib/apt/periodic/update-success-stamp'\n\
                  m.APT_LISTS_PATH = sys.argv[1] + '/var/lib/apt/lists'\n\
                  print(int(time.time() - m.get_cache_mtime()))\n";
    let out = Command::new(repo().join(".venv/bin/python"))
        .args(["-c", script])
        .arg(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn staged_apt_lists_count_as_fresh_for_the_apt_module_at_launch_and_only_then() {
    let two_days = 2 * 24 * 3600;
    // (the launch role has staged packages, the image has apt's update-success-stamp)
    for (staged, stamp) in [(true, false), (true, true), (false, true)] {
        let image = Image::new(&[("app", &[], "- ansible.builtin.debug: {msg: hi}\n")], &[]);
        let lists = image.path("var/lib/apt/lists");
        std::fs::create_dir_all(&lists).unwrap();
        age(&lists, two_days);
        if stamp {
            let periodic = image.path("var/lib/apt/periodic");
            std::fs::create_dir_all(&periodic).unwrap();
            std::fs::write(periodic.join("update-success-stamp"), "").unwrap();
            age(&periodic.join("update-success-stamp"), two_days);
        }
        if staged {
            let path = image.path("opt/parbake/manifest.json");
            let mut manifest: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            manifest["staged_apt"] = json!({"app": ["nginx"]});
            std::fs::write(&path, manifest.to_string()).unwrap();
        }
        assert!(apt_cache_age(image.path("").as_path()) >= two_days);
        let spec = image.spec(&["app"], &[], json!({}), json!({}));
        let (code, stdout) = image.run(&spec, &[]);
        assert_eq!(code, 0, "{stdout}");
        let seen = apt_cache_age(image.path("").as_path());
        if staged {
            // fresh for any cache_valid_time a role gives, even a minute
            assert!(seen < 60, "staged={staged} stamp={stamp}: {seen}s old");
        } else {
            assert!(seen >= two_days, "nothing staged, yet refreshed: {seen}s");
        }
    }
}

/// A bake-time var that names a launch-only var (the whole-var secret pattern, with the
/// structure left in `vars`) is warned about once a layer runs roles at bake with it: a baked
/// role that reads it would template a var that exists only at launch.
#[test]
fn a_bake_var_naming_a_launch_var_is_warned_about_when_roles_bake_with_it() {
    let f = Fixture::bare();
    f.role("base", &[]).role("db", &[]).role("app", &[]);
    f.image("img", &["base"], &[]);
    f.write(
        "images/stacks/s.yml",
        "image: img\nroles: [db, app]\nvars:\n  postgresql_users: [{name: app, password: \"{{ db_password }}\"}]\n  greeting: \"{{ motd | default('hi') }}\"\nlaunch_vars:\n  db_password: !secret ssm:/db/app\n",
    );
    // nothing promoted: the stack's vars reach only the launch, where db_password exists
    assert!(f.plan("s", &[]).warnings.is_empty());
    let plan = f.plan("s", &["db"]);
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    assert!(
        plan.warnings[0].starts_with("var `postgresql_users` names launch var `db_password`, which exists only at launch; layer 2 (img-s) runs db at bake"),
        "{:?}",
        plan.warnings
    );
    let r = f.run(&["plan", "s", "--promote", "db"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("warning: var `postgresql_users` names launch var `db_password`"),
        "{}",
        r.stdout
    );
}

/// Real roles from collections Debian's `ansible` package ships, judged as a team would meet
/// them. community.sops's `_install_age` installs `age` with `package`: it needs the network
/// until the stack file stages it (staging for a role the team does not own), then it is
/// offline, and the base layer downloads `age`. community.zabbix's `zabbix_agent` refreshes
/// the apt lists on every run (`cache_valid_time: 0`) and fetches the Zabbix key and
/// repository: no staging makes it offline, and plan says where.
#[test]
fn real_debian_collection_roles_get_the_verdict_their_tasks_earn() {
    let Some(f) = crate::collection_roles::debian_project("community/sops") else {
        return;
    };
    let sops = "community.sops._install_age";
    f.role("base", &[]);
    f.image("img", &["base"], &[]).stack("s", "img", &[sops]);
    let verdict = |stack: &str| {
        let plan = f.plan(stack, &[]);
        let r = plan
            .launch
            .iter()
            .find(|r| r.name != "base")
            .unwrap()
            .clone();
        (
            r.offline_verdict,
            r.offline_reason,
            plan.layers[0].stage_apt.clone(),
        )
    };
    let (v, reason, staged) = verdict("s");
    assert_eq!(v, parbake::plan::Verdict::Network, "{reason}");
    assert!(
        reason.starts_with("needs the network: installs packages (vendor/collections/ansible_collections/community/sops/roles/_install_age/tasks/main.yml:"),
        "{reason}"
    );
    assert!(staged.is_empty(), "{staged:?}");
    let text = f.run(&["plan", "s"]).stdout;
    assert!(
        text.contains("hint: to run community.sops._install_age with no network, name the packages it installs in images/stacks/s.yml: `staging: {community.sops._install_age: {apt: [PACKAGE, ...]}}`"),
        "{text}"
    );
    f.append(
        "images/stacks/s.yml",
        &format!("staging:\n  {sops}: {{apt: [age]}}\n"),
    );
    let (v, reason, staged) = verdict("s");
    assert_eq!(
        (v, reason.as_str()),
        (parbake::plan::Verdict::Offline, "offline: packages staged")
    );
    assert_eq!(staged[sops], ["age"]);

    // zabbix_agent's collection needs others from Galaxy; its role directory is read as the
    // team would vendor it alone (the verdict reads its task files the same way)
    let z = Fixture::bare();
    let agent = "zabbix_agent";
    crate::util::copy_dir(
        &repo().join(".tools/ansible-collections/usr/lib/python3/dist-packages/ansible_collections/community/zabbix/roles/zabbix_agent"),
        &z.root().join("roles/zabbix_agent"),
    );
    z.role("base", &[]);
    z.image("img", &["base"], &[]).stack("z", "img", &[agent]);
    z.append(
        "images/stacks/z.yml",
        &format!("staging:\n  {agent}: {{apt: [zabbix-agent]}}\n"),
    );
    let plan = z.plan("z", &[]);
    let r = plan.launch.iter().find(|r| r.name == agent).unwrap();
    assert_eq!(
        r.offline_verdict,
        parbake::plan::Verdict::Network,
        "{}",
        r.offline_reason
    );
    for needle in [
        "refreshes the apt lists on every run (update_cache with no cache_valid_time, or 0, in roles/zabbix_agent/tasks/Debian.yml",
        "apt_key at roles/zabbix_agent/tasks/Debian.yml:",
    ] {
        assert!(r.offline_reason.contains(needle), "{needle}\n{}", r.offline_reason);
    }
}

/// Hints name where a role really lives: a role on the roles path of `ansible.cfg` is pointed
/// at there, not under roles/, and the list of known roles does not claim they are all there.
#[test]
fn hints_name_where_a_role_lives() {
    let f = Fixture::bare();
    f.role("base", &[])
        .role("needed", &[])
        .role("app", &["needed"]);
    std::fs::rename(f.root().join("roles"), f.root().join("team_roles")).unwrap();
    f.write("ansible.cfg", "[defaults]\nroles_path = team_roles\n");
    f.image("img", &["base"], &[])
        .append("images/img.yml", "installed: [base, app]\n")
        .stack("s", "img", &["app"]);
    let r = f.run(&["plan", "s"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("hint: `app` depends on `needed` in team_roles/app/meta/main.yml"),
        "{}",
        r.stderr
    );
    f.stack("t", "img", &["nosuch"]);
    let r = f.run(&["plan", "t"]);
    assert!(
        r.stderr.contains(
            "hint: the project's roles (its roles path, vendor/roles and vendored collections): app, base, needed"
        ),
        "{}",
        r.stderr
    );
}

/// Stack vars meant for a basic role never reach it (the base layer runs without them), and a
/// misspelt one is read by no one: plan notes both, and stays quiet about a var another var
/// names, or one a stack role names.
#[test]
fn plan_notes_stack_vars_no_role_of_the_stack_reads() {
    let f = Fixture::bare();
    role(&f, "base", "- debug: {msg: \"{{ base_motd }}\"}\n", "");
    role(
        &f,
        "app",
        "- debug: {msg: \"{{ app_port }} {{ app_url }}\"}\n",
        "",
    );
    f.image("img", &["base"], &[]).stack("s", "img", &["app"]);
    f.append(
        "images/stacks/s.yml",
        "vars:\n  app_port: 8080\n  base_motd: hello\n  app_prot: 8081\n  origin: example.com\nlaunch_vars:\n  app_url: \"https://{{ origin }}\"\n",
    );
    let plan = f.plan("s", &[]);
    let notes: Vec<&String> = plan
        .notes
        .iter()
        .filter(|n| n.starts_with("stack var"))
        .collect();
    assert_eq!(
        notes,
        [
            "stack var `app_prot`: no role of stack `s` names it; check its spelling against the roles' defaults",
            "stack var `base_motd` is read only by basic role(s) base, which run in the base layer, where stack vars never reach; set it in images/img.yml `vars:` instead",
        ],
        "{:?}",
        plan.notes
    );
}

/// The fixture collection's `assets` (apt with its default Recommends) behind a team's
/// wrapper: plan follows the include into the collection, names the file and line, and once
/// the stack file stages the one package the base layer downloads it with its Recommends
/// (the team step of the e2e tier launches this offline).
#[test]
fn a_wrapped_collection_role_stages_with_recommends_from_the_stack_file() {
    let f = crate::collection_roles::kit_project();
    f.role("base", &[]);
    role(
        &f,
        "frontend",
        "- ansible.builtin.include_role: {name: acme.kit.assets}\n",
        "",
    );
    f.image("img", &["base"], &[])
        .stack("s", "img", &["frontend"]);
    let verdict = || {
        let plan = f.plan("s", &[]);
        let r = plan
            .launch
            .iter()
            .find(|r| r.name == "frontend")
            .unwrap()
            .clone();
        (r.offline_reason, plan.layers[0].clone())
    };
    let (reason, _) = verdict();
    assert_eq!(
        reason,
        "needs the network: installs packages (vendor/collections/ansible_collections/acme/kit/roles/assets/tasks/main.yml:2) and stages none (in acme.kit.assets, which it includes)"
    );
    f.append(
        "images/stacks/s.yml",
        "staging:\n  acme.kit.assets: {apt: [libjs-jquery, tzdata]}\n",
    );
    let (reason, base) = verdict();
    assert_eq!(reason, "offline: packages staged");
    assert_eq!(
        base.stage_apt["acme.kit.assets"],
        ["libjs-jquery", "tzdata"]
    );
    assert!(
        !base
            .stage_apt_without_recommends
            .contains("acme.kit.assets"),
        "apt installs its Recommends, so staging takes them: {:?}",
        base.stage_apt_without_recommends
    );
}

/// A module called by a bare name that is not ansible.builtin's (geerlingguy.postgresql's
/// `postgresql_user`) comes from a collection ansible-core's routing picks: plan warns at the
/// task, since it cannot list or check that collection. With the role's `collections:`
/// keyword, the collection is listed and there is nothing to warn about.
#[test]
fn bare_collection_module_names_are_warned_about_unless_a_keyword_names_the_collection() {
    let f = Fixture::bare();
    f.role("base", &[]);
    role(
        &f,
        "db",
        "- name: user\n  postgresql_user: {name: app}\n- locale_gen: {name: C.UTF-8}\n",
        "",
    );
    f.image("img", &["base"], &[]).stack("s", "img", &["db"]);
    let plan = f.plan("s", &[]);
    assert_eq!(
        plan.warnings,
        ["roles/db/tasks/main.yml:3: role `db` calls `locale_gen`, `postgresql_user` by a bare name that is not ansible.builtin's; ansible-core's routing picks its collection, which plan does not list or check: write each as `namespace.collection.module`, or list the collection in the role's `collections:`"]
    );
    f.write(
        "roles/db/meta/main.yml",
        "dependencies: []\ncollections: [community.postgresql, community.general]\n",
    );
    let plan = f.plan("s", &[]);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    assert_eq!(
        plan.launch[0].collections,
        ["community.general", "community.postgresql"]
    );
}
