//! Hostile input, one test per class of issue 9: values that would leave their field in a
//! generated file, names that are not names, tags and keys YAML would read another way.
//! Each exits 1 with the place and a hint, or goes through with the value kept a value.

use std::collections::BTreeSet;

use crate::util::{launch_spec, repo, Fixture};

/// Runs parbake and requires a user error: exit 1, no data, a hint; returns stderr.
pub(crate) fn fails(f: &Fixture, args: &[&str]) -> String {
    let r = f.run(args);
    assert_eq!(r.code, 1, "expected exit 1 for {args:?}:\n{}", r.stderr);
    assert!(r.stdout.is_empty(), "no data after an error: {}", r.stdout);
    assert!(r.stderr.contains("hint: "), "a hint:\n{}", r.stderr);
    r.stderr
}

pub(crate) fn has(stderr: &str, needles: &[&str]) {
    for n in needles {
        assert!(stderr.contains(n), "missing {n:?} in:\n{stderr}");
    }
}

/// The user-data as cloud-init reads it (its own `util.load_yaml`, from the unpacked Debian
/// package): the top-level keys, and each write_files entry's path and decoded content.
pub fn cloud_init_view(user_data: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user-data");
    std::fs::write(&path, user_data).unwrap();
    cloud_init_views(&[path]).remove(0)
}

/// [`cloud_init_view`] of many files, in one Python process.
pub fn cloud_init_views(paths: &[std::path::PathBuf]) -> Vec<serde_json::Value> {
    python_views(
        std::path::Path::new("/usr/bin/python3"),
        CLOUD_INIT_VIEW,
        paths,
        &[(
            "PYTHONPATH",
            repo().join(".tools/cloud-init/usr/lib/python3/dist-packages"),
        )],
    )
}

/// Runs `script` with the files as arguments; it prints a JSON list, one view per file.
pub fn python_views(
    python: &std::path::Path,
    script: &str,
    paths: &[std::path::PathBuf],
    env: &[(&str, std::path::PathBuf)],
) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(paths)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Reads each file named on the command line with cloud-init's YAML loader; prints a JSON
/// list with, for each, the sorted top-level keys, the write_files entries decoded (as cloud-init
/// decodes `b64`), and runcmd.
pub const CLOUD_INIT_VIEW: &str = r#"
import base64, json, sys
from cloudinit import util
out = []
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        doc = util.load_yaml(f.read())
    files = []
    for e in doc.get("write_files", []):
        content = e.get("content", "")
        if e.get("encoding") == "b64":
            content = base64.b64decode(content).decode("utf-8")
        files.append({"path": e.get("path"), "permissions": e.get("permissions"), "content": content})
    out.append({"keys": sorted(doc), "files": files, "runcmd": doc.get("runcmd")})
json.dump(out, sys.stdout)
"#;

pub fn assert_only_parbake_keys(view: &serde_json::Value) {
    let keys: BTreeSet<&str> = view["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, BTreeSet::from(["runcmd", "write_files"]), "{view}");
    let paths: Vec<&str> = view["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["/var/lib/parbake/launch.json", "/var/lib/parbake/boot.sh"]
    );
    assert_eq!(
        view["runcmd"],
        serde_json::json!([["/bin/sh", "/var/lib/parbake/boot.sh"]])
    );
}

const BREAKOUT: &str = "x\u{85}bootcmd: [id]\u{2028}runcmd: [[touch, /pwned]]\u{2029}#cloud-config\n  - x: |\n\"'{{ lookup('pipe','id') }}";

#[test]
fn launch_var_with_yaml_line_breaks_stays_in_its_field() {
    let f = Fixture::example();
    let stack = serde_yaml::to_string(&serde_json::json!({
        "image": "debian12",
        "roles": ["nginx", "webapp", "identity"],
        "launch_vars": {"motd": BREAKOUT, "nested": [BREAKOUT, {"k\u{2028}": BREAKOUT}]},
    }))
    .unwrap();
    f.write("images/stacks/web.yml", &stack);
    let r = f.run(&["userdata", "web"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let view = cloud_init_view(&r.stdout);
    assert_only_parbake_keys(&view);
    let spec: serde_json::Value =
        serde_json::from_str(view["files"][0]["content"].as_str().unwrap()).unwrap();
    assert_eq!(spec["vars"]["motd"], BREAKOUT);
    assert_eq!(spec["vars"]["nested"][1]["k\u{2028}"], BREAKOUT);
    assert_eq!(spec, launch_spec(&r.stdout));
    // and the real validator agrees it is a cloud-config with nothing else in it
    let v = f.run(&["validate", "web"]);
    assert_eq!(v.code, 0, "{}", v.stderr);
}

#[test]
fn stack_name_with_a_newline_is_refused() {
    let f = Fixture::example();
    f.write(
        "images/stacks/we\nb.yml",
        "image: debian12\nroles: [nginx]\n",
    );
    let e = fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "images/stacks/we\nb.yml",
            "not a valid stack name",
            "rename",
        ],
    );
}

#[test]
fn image_name_with_a_space_is_refused() {
    let f = Fixture::example();
    let text = std::fs::read_to_string(f.root().join("images/debian12.yml")).unwrap();
    f.write("images/deb ian.yml", &text);
    let e = fails(&f, &["plan", "web"]);
    has(&e, &["images/deb ian.yml", "not a valid image name"]);
}

#[test]
fn stage_apt_entry_that_is_an_apt_option_is_refused() {
    let f = Fixture::example();
    f.write(
        "roles/nginx/meta/parbake.yml",
        "stage_apt: [nginx, --allow-unauthenticated]\n",
    );
    let e = fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "roles/nginx/meta/parbake.yml:1:",
            "--allow-unauthenticated",
            "not a Debian package name",
        ],
    );
}

#[test]
fn ssh_user_that_would_add_yaml_keys_is_refused() {
    let f = Fixture::example();
    let path = f.root().join("images/debian12.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "ssh_user: debian",
            "ssh_user: \"debian\\nruncmd: [[touch, /pwned]]\"",
        ),
    )
    .unwrap();
    let e = fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "images/debian12.yml:",
            "sources.qemu.ssh_user",
            "not a valid user name",
        ],
    );
}

#[test]
fn aws_source_fields_are_validated_at_their_line() {
    let f = Fixture::example();
    let path = f.root().join("images/debian12.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    for (from, to, field) in [
        (
            "region: us-east-1",
            "region: \"us-east-1\\u2028x\"",
            "sources.aws.region",
        ),
        (
            "instance_type: t3.small",
            "instance_type: \"t3.small; id\"",
            "sources.aws.instance_type",
        ),
        (
            "instance_type: t3.small",
            "instance_type: t3.small\n    imds: sometimes",
            "sources.aws.imds",
        ),
        (
            "instance_type: t3.small",
            "instance_type: t3.small\n    instance_profile: \"arn:aws:iam::1:instance-profile/x\"",
            "sources.aws.instance_profile",
        ),
        (
            "ami_name: parbake-{layer}-{hash}",
            "ami_name: \"a\\nb: c\"",
            "sources.aws.ami_name",
        ),
    ] {
        std::fs::write(&path, text.replace(from, to)).unwrap();
        let e = fails(&f, &["plan", "web", "--target", "aws"]);
        has(&e, &["images/debian12.yml:", field]);
    }
}

#[test]
fn double_bang_secret_is_refused_not_read_as_a_string() {
    let f = Fixture::example();
    f.write(
        "images/stacks/web.yml",
        "image: debian12\nroles: [nginx, webapp, identity]\nlaunch_vars:\n  db_password: !!secret hunter2\n",
    );
    let e = fails(&f, &["userdata", "web"]);
    has(
        &e,
        &[
            "images/stacks/web.yml:4:",
            "YAML tag `!!secret` is not accepted",
        ],
    );
}

#[test]
fn unknown_yaml_tags_are_refused_anywhere() {
    let f = Fixture::example();
    for doc in [
        "image: !!python/object/apply:os.system [id]\nroles: [nginx]\n",
        "image: debian12\nroles: !custom [nginx]\n",
        "image: debian12\nroles: [nginx]\nvars:\n  a: [1, !vault x]\n",
    ] {
        f.write("images/stacks/web.yml", doc);
        let e = fails(&f, &["plan", "web"]);
        has(&e, &["images/stacks/web.yml:", "is not accepted"]);
    }
}

#[test]
fn duplicate_key_inside_vars_is_an_error_at_its_line() {
    let f = Fixture::example();
    f.write(
        "images/stacks/web.yml",
        "image: debian12\nroles: [nginx]\nvars:\n  a: 1\n  b: 2\n  a: 3\n",
    );
    let e = fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "images/stacks/web.yml:6:3",
            "`a` is written twice",
            "first at line 4",
        ],
    );
}

#[test]
fn duplicate_top_level_key_is_an_error_at_its_line() {
    let f = Fixture::example();
    f.write(
        "images/stacks/web.yml",
        "image: debian12\nroles: [nginx]\nvars: {}\nroles: [webapp]\n",
    );
    let e = fails(&f, &["plan", "web"]);
    has(
        &e,
        &["images/stacks/web.yml:4:1", "`roles` is written twice"],
    );
}

#[test]
fn utf8_bom_is_accepted() {
    let f = Fixture::example();
    // a BOM right before the first key (not a comment) is where it used to bite
    f.write(
        "images/stacks/web.yml",
        "\u{feff}image: debian12\nroles: [nginx, webapp, identity]\n",
    );
    let r = f.run(&["plan", "web"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn merge_keys_are_refused() {
    let f = Fixture::example();
    f.write(
        "images/stacks/web.yml",
        "image: debian12\nroles: [nginx]\nlaunch_vars:\n  common: &c {a: 1}\n  more:\n    <<: *c\n    b: 2\n",
    );
    let e = fails(&f, &["userdata", "web"]);
    has(&e, &["images/stacks/web.yml:6:5", "merge keys"]);
}

#[test]
fn non_finite_numbers_and_ansible_encoding_keys_in_vars_are_refused() {
    let f = Fixture::example();
    for (doc, needle) in [
        ("vars:\n  x: .inf\n", "not a finite number"),
        ("vars:\n  x: .nan\n", "not a finite number"),
        (
            "launch_vars:\n  x: {__ansible_unsafe: '{{ 1 }}'}\n",
            "`__ansible_unsafe` is reserved",
        ),
    ] {
        f.write(
            "images/stacks/web.yml",
            &format!("image: debian12\nroles: [nginx]\n{doc}"),
        );
        let e = fails(&f, &["userdata", "web"]);
        has(&e, &["images/stacks/web.yml:", needle]);
    }
}

#[test]
fn unsafe_tag_marks_a_literal_var_in_the_spec_and_the_bake_vars() {
    let f = Fixture::example();
    f.write(
        "images/stacks/web.yml",
        "image: debian12\nroles: [nginx, webapp, identity]\npromote: [nginx]\nvars:\n  banner: !unsafe '{{ not_a_template }}'\nlaunch_vars:\n  motd: !unsafe '{% raw %}'\n  greeting: '{{ banner }}'\n",
    );
    let r = f.run(&["userdata", "web"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let spec = launch_spec(&r.stdout);
    assert_eq!(spec["format"], 2);
    assert_eq!(spec["literal"], serde_json::json!(["banner", "motd"]));
    assert_eq!(spec["vars"]["motd"], "{% raw %}");
    assert_eq!(spec["vars"]["greeting"], "{{ banner }}");
    let out = f.root().join("render");
    let r = f.run(&["render", "web", "-o", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let vars: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("layers/2-debian12-web/payload/vars.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        vars["banner"],
        serde_json::json!({"__ansible_unsafe": "{{ not_a_template }}"})
    );
}

#[test]
fn an_empty_file_points_at_docs_that_exist() {
    let f = Fixture::example();
    f.write("images/stacks/web.yml", "\n");
    let e = fails(&f, &["plan", "web"]);
    assert!(!e.contains("images/README.md"), "{e}");
    has(&e, &["the file is empty", "README"]);
}

#[test]
fn userdata_explain_decodes_what_the_user_data_carries() {
    let f = Fixture::example();
    let r = f.run(&["userdata", "web"]);
    let e = f.run(&["userdata", "web", "--explain"]);
    assert_eq!(e.code, 0, "{}", e.stderr);
    assert!(e.stdout.contains(&r.stdout), "the cloud-config as sent");
    let decoded = e
        .stdout
        .split("# decoded /var/lib/parbake/launch.json (mode 0600):\n")
        .nth(1)
        .and_then(|rest| rest.split("\n# decoded").next())
        .unwrap();
    let decoded: serde_json::Value = serde_json::from_str(decoded).unwrap();
    assert_eq!(decoded, launch_spec(&r.stdout));
    assert!(e.stdout.contains("exec \"$runner\" launch"));
}
