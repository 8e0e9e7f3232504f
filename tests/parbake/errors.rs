//! Bad input: each case exits 1 with the file, line, column and field (or the role), and a hint.

use crate::util::Fixture;

fn fails(f: &Fixture, args: &[&str]) -> String {
    let r = f.run(args);
    assert_eq!(
        r.code, 1,
        "expected exit 1 for {args:?}; stderr:\n{}",
        r.stderr
    );
    assert!(
        r.stdout.is_empty(),
        "no data on stdout after an error: {}",
        r.stdout
    );
    assert!(
        r.stderr.contains("hint: "),
        "every error carries a hint:\n{}",
        r.stderr
    );
    r.stderr
}

fn has(stderr: &str, needles: &[&str]) {
    for n in needles {
        assert!(stderr.contains(n), "missing {n:?} in:\n{stderr}");
    }
}

#[test]
fn yaml_syntax_error_names_file_line_and_column() {
    let f = Fixture::example();
    f.write(
        "images/stacks/web.yml",
        "image: debian12\nroles: [nginx, webapp\npromote: []\n",
    );
    let e = fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "error: images/stacks/web.yml:3:",
            "YAML syntax",
            "3 | promote: []",
        ],
    );
}

#[test]
fn unknown_field_names_the_field_path_and_shows_the_line() {
    let f = Fixture::example();
    let path = f.root().join("images/debian12.yml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("    instance_type: t3.small", "    instnace_type: t3.small");
    std::fs::write(&path, text).unwrap();
    let e = fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "images/debian12.yml:",
            "field `sources.aws`",
            "unknown field `instnace_type`",
            "instnace_type: t3.small\n",
            "^",
        ],
    );
}

#[test]
fn unknown_role_in_a_stack_points_at_the_item_and_suggests() {
    let f = Fixture::example();
    f.write(
        "images/stacks/web.yml",
        "image: debian12\nroles: [nginx, webap, identity]\n",
    );
    let e = fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "images/stacks/web.yml:2:16: field `roles`: unknown role `webap`",
            "did you mean `webapp`?",
        ],
    );
}

#[test]
fn unknown_stack_on_the_command_line_suggests() {
    let e = fails(&Fixture::example(), &["plan", "wbe"]);
    has(&e, &["unknown stack `wbe`", "did you mean `web`?"]);
}

#[test]
fn unknown_dependency_in_meta_points_at_the_role_file() {
    let f = Fixture::example();
    f.write(
        "roles/nginx/meta/main.yml",
        "galaxy_info:\n  author: x\ndependencies:\n  - bsae\n",
    );
    let e = fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "roles/nginx/meta/main.yml:4:5",
            "depends on unknown role `bsae`",
            "did you mean `base`?",
        ],
    );
}

#[test]
fn role_without_tasks_main_yml_is_named() {
    let f = Fixture::example();
    f.write("roles/half/defaults/main.yml", "x: 1\n");
    let e = fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "role `half`",
            "has no tasks/main.yml",
            "create roles/half/tasks/main.yml",
        ],
    );
}

#[test]
fn promoting_a_launch_only_role_is_refused() {
    let e = fails(
        &Fixture::example(),
        &["plan", "web", "--promote", "identity"],
    );
    has(
        &e,
        &["cannot promote launch-only role `identity`", "launch_only"],
    );
}

#[test]
fn a_dependency_cycle_is_refused_with_the_cycle() {
    let f = Fixture::example();
    f.write(
        "roles/base/meta/main.yml",
        "galaxy_info:\n  author: x\ndependencies: [users]\n",
    );
    let e = fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "dependency cycle between roles: base → users → base",
            "meta/main.yml",
        ],
    );
}

#[test]
fn a_literal_secret_is_refused_because_it_would_land_in_user_data() {
    let f = Fixture::example();
    f.write("images/stacks/web.yml", "image: debian12\nroles: [nginx, webapp, identity]\nlaunch_vars:\n  db_password: !secret hunter2\n");
    let e = fails(&f, &["userdata", "web"]);
    has(
        &e,
        &[
            "images/stacks/web.yml:4:3",
            "field `launch_vars.db_password`",
            "would be written into user-data",
            "!secret ssm:",
        ],
    );
    assert!(!e.contains("hunter2\n") || e.contains("db_password: !secret hunter2"));
}

/// A `!secret` deep in a structure (geerlingguy.postgresql's `postgresql_users[].password`) is
/// refused at the tag's own line, naming `!secret` and showing the whole-var pattern.
#[test]
fn a_secret_inside_a_structure_is_refused_at_its_own_line() {
    let f = Fixture::example();
    f.write(
        "images/stacks/web.yml",
        "image: debian12\nroles: [nginx, webapp, identity]\nlaunch_vars:\n  postgresql_users:\n    - name: example_user\n      password: !secret ssm:/db/example_user\n",
    );
    let e = fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "images/stacks/web.yml:6:17",
            "`!secret` inside the value of `postgresql_users`: only a whole var can be a secret",
            "postgresql_users_password: !secret ssm:",
            "{{ postgresql_users_password }}",
        ],
    );
    assert!(!e.contains("!!secret"), "{e}");
    // a nested `!unsafe` likewise (any other tag is refused by the lint, anywhere)
    f.write(
        "images/stacks/web.yml",
        "image: debian12\nroles: [nginx, webapp, identity]\nvars:\n  motd:\n    text: !unsafe '{{ x }}'\n",
    );
    let e = fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "images/stacks/web.yml:5:11",
            "`!unsafe` inside the value of `motd`",
            "motd: !unsafe",
        ],
    );
}

#[test]
fn a_secret_in_bake_vars_is_refused() {
    let f = Fixture::example();
    f.write("images/stacks/web.yml", "image: debian12\nroles: [nginx, webapp, identity]\nvars:\n  api_key: !secret ssm:/web/api_key\n");
    let e = fails(&f, &["plan", "web"]);
    has(
        &e,
        &[
            "field `vars.api_key`",
            "secret `api_key` is a bake-time var",
            "launch_vars",
        ],
    );
}

#[test]
fn a_secret_reference_reaches_user_data_as_a_reference_only() {
    let f = Fixture::example();
    f.write("images/stacks/web.yml", "image: debian12\nroles: [nginx, webapp, identity]\nlaunch_vars:\n  db_password: !secret ssm:/web/db_password\n");
    let r = f.run(&["userdata", "web"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let spec = crate::util::launch_spec(&r.stdout);
    assert_eq!(spec["secrets"]["db_password"], "ssm:/web/db_password");
    assert!(spec["vars"].get("db_password").is_none());
}

#[test]
fn user_data_over_budget_even_gzipped_reports_each_part() {
    let f = Fixture::example();
    // incompressible: 40 KiB of hex of a pseudo-random sequence
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let blob: String = (0..5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{:016x}", x)
        })
        .collect();
    f.write(
        "images/stacks/web.yml",
        &format!(
            "image: debian12\nroles: [nginx, webapp, identity]\nlaunch_vars:\n  blob: \"{blob}\"\n"
        ),
    );
    let out = f.root().join("ud.bin");
    let e = fails(&f, &["userdata", "web", "-o", out.to_str().unwrap()]);
    has(
        &e,
        &[
            "even gzipped",
            "EC2 allows 16384",
            "size of each part",
            "var blob",
            "launch spec",
        ],
    );
    assert!(!out.exists(), "no partial output");
}

#[test]
fn large_compressible_user_data_is_gzipped_automatically() {
    let f = Fixture::example();
    let blob = "abcdefgh".repeat(4000);
    f.write(
        "images/stacks/web.yml",
        &format!(
            "image: debian12\nroles: [nginx, webapp, identity]\nlaunch_vars:\n  blob: \"{blob}\"\n"
        ),
    );
    let out = f.root().join("ud.gz");
    let r = f.run(&["userdata", "web", "-o", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.len() <= 16_384);
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
    let mut text = String::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.starts_with("#cloud-config\n"));
    assert_eq!(
        crate::util::launch_spec(&text)["vars"]["blob"],
        blob.as_str()
    );
    assert!(r.stderr.contains("gzipped"));
}

#[test]
fn a_failed_render_leaves_the_previous_render_untouched() {
    let f = Fixture::example();
    let out = f.root().join("out");
    let ok = f.run(&["render", "web", "-o", out.to_str().unwrap()]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let before = std::fs::read(out.join("user-data")).unwrap();
    let mut x: u64 = 7;
    let blob: String = (0..5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{:016x}", x)
        })
        .collect();
    f.write(
        "images/stacks/web.yml",
        &format!(
            "image: debian12\nroles: [nginx, webapp, identity]\nlaunch_vars:\n  blob: \"{blob}\"\n"
        ),
    );
    fails(&f, &["render", "web", "-o", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("user-data")).unwrap(), before);
    let stray: Vec<_> = std::fs::read_dir(f.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".parbake"))
        .collect();
    assert!(stray.is_empty(), "temp dirs left: {stray:?}");
}

#[test]
fn render_refuses_to_replace_a_directory_it_did_not_write() {
    let f = Fixture::example();
    f.write("precious/notes.txt", "mine");
    let e = fails(
        &f,
        &[
            "render",
            "web",
            "-o",
            f.root().join("precious").to_str().unwrap(),
        ],
    );
    has(&e, &["is not an earlier parbake render"]);
    assert_eq!(
        std::fs::read_to_string(f.root().join("precious/notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn a_bad_launch_timeout_is_located_with_a_hint_and_a_good_one_reaches_the_spec() {
    stack_field_errors(
        "launch_timeout",
        "launch_timeout: 20m",
        &[
            ("600", "600 has no unit"),
            ("20 minutes", "\"20 minutes\" is not a duration"),
            ("5s", "\"5s\" is outside 1m to 24h"),
            ("25h", "\"25h\" is outside 1m to 24h"),
            ("[20m]", "a launch timeout is a duration"),
        ],
    );
    let f = Fixture::example();
    f.write(
        "images/stacks/web.yml",
        "image: debian12\nroles: [nginx, webapp]\nlaunch_timeout: 1h30m\n",
    );
    assert_eq!(f.plan("web", &[]).launch_timeout_s, 5400);
    let spec = parbake::render::userdata::spec(&f.plan("web", &[]));
    assert_eq!(spec.launch_timeout_s, Some(5400));
    f.write(
        "images/stacks/web.yml",
        "image: debian12\nroles: [nginx, webapp]\n",
    );
    assert_eq!(
        f.plan("web", &[]).launch_timeout_s,
        parbake::config::DEFAULT_LAUNCH_TIMEOUT_S
    );
}

#[test]
fn a_bad_launch_facts_is_located_with_a_hint_and_a_good_one_reaches_the_spec() {
    stack_field_errors(
        "launch_facts",
        "launch_facts: min",
        &[
            ("hardwre", "\"hardwre\" is not a fact subset"),
            ("[min, \"!netwrk\"]", "\"!netwrk\" is not a fact subset"),
            ("[]", "an empty list gathers nothing"),
            ("[[min]]", "each fact subset is a name"),
            ("{min: true}", "`all`, `min`, `none` or a list of subsets"),
        ],
    );
    let f = Fixture::example();
    for (value, facts) in [
        ("min", Some(vec!["min"])),
        ("none", Some(vec![])),
        ("all", None),
        ("[all, \"!hardware\"]", Some(vec!["all", "!hardware"])),
    ] {
        f.write(
            "images/stacks/web.yml",
            &format!("image: debian12\nroles: [nginx, webapp]\nlaunch_facts: {value}\n"),
        );
        let spec = parbake::render::userdata::spec(&f.plan("web", &[]));
        let want = facts.map(|v| v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(spec.facts, want, "{value}");
    }
    // launch-time only: the layer hashes do not move
    let layer_hashes = |stack: &str| -> Vec<String> {
        f.write("images/stacks/web.yml", stack);
        let plan = f.plan("web", &[]);
        plan.layers.iter().map(|l| l.hash.clone()).collect()
    };
    let stack = "image: debian12\nroles: [nginx, webapp]\npromote: [nginx]\n";
    assert_eq!(
        layer_hashes(stack),
        layer_hashes(&format!("{stack}launch_facts: min\n"))
    );
}

/// Each (value, message) of a stack field, as line 3 of the web stack file, fails `plan` with
/// the file, line and field, the message and a hint holding `hint`.
fn stack_field_errors(field: &str, hint: &str, cases: &[(&str, &str)]) {
    for (value, says) in cases {
        let f = Fixture::example();
        f.write(
            "images/stacks/web.yml",
            &format!("image: debian12\nroles: [nginx, webapp]\n{field}: {value}\n"),
        );
        let e = fails(&f, &["plan", "web"]);
        has(
            &e,
            &[
                "images/stacks/web.yml:3:",
                &format!("field `{field}`"),
                says,
                "hint: ",
                hint,
            ],
        );
    }
}

#[test]
fn a_bad_check_is_located_at_its_field_with_a_hint() {
    // (the `checks:` block from line 3, the line and field the error names, what it says)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "  - http: /\n    stauts: 200\n",
            ":5:",
            "stauts",
            "unknown field `stauts`",
        ),
        (
            "  - name: page\n",
            ":4:",
            "checks[0].kind",
            "a check names its kind",
        ),
        (
            "  - http: /\n    file: /x\n",
            ":4:",
            "checks[0].kind",
            "this one has http and file",
        ),
        (
            "  - unit: nginx\n    status: 200\n",
            ":5:",
            "checks[0].status",
            "`status` does not belong to a unit check",
        ),
        (
            "  - unit: nginx\n  - http: health\n",
            ":5:",
            "checks[1].http",
            "\"health\" is not a URL path",
        ),
        (
            "  - http: /a b\n",
            ":4:",
            "checks[0].http",
            "is not a URL path",
        ),
        (
            "  - port: 70000\n",
            ":4:",
            "checks[0].port",
            "70000 is not a TCP port",
        ),
        (
            "  - port: 0\n",
            ":4:",
            "checks[0].port",
            "0 is not a TCP port",
        ),
        (
            "  - http: /\n    status: 700\n",
            ":5:",
            "checks[0].status",
            "700 is not an HTTP status",
        ),
        (
            "  - unit: \"nginx; reboot\"\n",
            ":4:",
            "checks[0].unit",
            "is not a systemd unit name",
        ),
        (
            "  - command: [test, -f, /x]\n",
            ":4:",
            "checks[0].command",
            "\"test\" is not an absolute path",
        ),
        (
            "  - command: []\n",
            ":4:",
            "checks[0].command",
            "the command is empty",
        ),
        (
            "  - command: /usr/bin/true\n",
            ":4:",
            "checks",
            "expected a sequence",
        ),
        (
            "  - file: var/x\n",
            ":4:",
            "checks[0].file",
            "is not an absolute path",
        ),
        (
            "  - file: /var/../etc/shadow\n",
            ":4:",
            "checks[0].file",
            "is not an absolute path",
        ),
        (
            "  - file: /x\n    max_age: 5\n",
            ":5:",
            "checks[0].max_age",
            "5 has no unit",
        ),
        (
            "  - port: 22\n    timeout: 2h\n",
            ":5:",
            "checks[0].timeout",
            "\"2h\" is out of range",
        ),
        (
            "  - port: 22\n    timeout: soon\n",
            ":5:",
            "checks[0].timeout",
            "\"soon\" is not a duration",
        ),
        (
            "  - http: /\n    body: \"a\\u0007b\"\n",
            ":5:",
            "checks[0].body",
            "no control characters",
        ),
        (
            "  - port: 22\n  - port: 22\n",
            ":5:",
            "checks[1].name",
            "two checks are named `port 22`",
        ),
        (
            "  - port: 22\n    name: \" padded\"\n",
            ":5:",
            "checks[0].name",
            "is not a check name",
        ),
    ];
    for (block, line, field, says) in cases {
        let f = Fixture::example();
        f.write(
            "images/stacks/web.yml",
            &format!("image: debian12\nroles: [nginx, webapp]\nchecks:\n{block}"),
        );
        let e = fails(&f, &["plan", "web"]);
        has(
            &e,
            &[
                &format!("images/stacks/web.yml{line}"),
                &format!("field `{field}"),
                says,
            ],
        );
        if *field != "checks" {
            has(&e, &["hint: "]);
        }
    }
    // a flow-style list still names the file and field, at the `checks:` line
    let f = Fixture::example();
    f.write(
        "images/stacks/web.yml",
        "image: debian12\nroles: [nginx, webapp]\nchecks: [{port: 99999}]\n",
    );
    has(
        &fails(&f, &["plan", "web"]),
        &["images/stacks/web.yml:3:", "99999 is not a TCP port"],
    );
    // a secret is never a check's value: a tagged scalar is refused where a string is expected
    f.write(
        "images/stacks/web.yml",
        "image: debian12\nroles: [nginx, webapp]\nchecks:\n  - http: /\n    body: !secret ssm:/x\n",
    );
    has(
        &fails(&f, &["plan", "web"]),
        &[
            "images/stacks/web.yml:5",
            "field `checks[0].body`",
            "cannot be tagged `!secret`",
        ],
    );
    // too many
    let many: String = (1..=65).map(|p| format!("  - port: {p}\n")).collect();
    f.write(
        "images/stacks/web.yml",
        &format!("image: debian12\nroles: [nginx, webapp]\nchecks:\n{many}"),
    );
    has(&fails(&f, &["plan", "web"]), &["65 checks; at most 64"]);
}

#[test]
fn good_checks_reach_the_spec_with_defaults_and_move_no_layer_hash() {
    let f = Fixture::example();
    let stack = "image: debian12\nroles: [nginx, webapp]\npromote: [nginx]\n";
    f.write(
        "images/stacks/web.yml",
        &format!(
            "{stack}checks:\n  - http: /healthz\n    port: 8080\n    status: 204\n  - unit: nginx.service\n    name: proxy\n    timeout: 2m\n  - port: 8000\n  - command: [/usr/bin/test, -s, /etc/app.conf]\n  - file: /var/lib/x\n    contains: ok\n    max_age: 90s\n"
        ),
    );
    let plan = f.plan("web", &[]);
    let spec = parbake::render::userdata::spec(&plan);
    let checks = serde_json::to_value(&spec.checks).unwrap();
    assert_eq!(
        checks,
        serde_json::json!([
            {"name": "http :8080/healthz", "kind": "http", "port": 8080, "path": "/healthz", "status": 204, "timeout_s": 30},
            {"name": "proxy", "kind": "unit", "unit": "nginx.service", "timeout_s": 120},
            {"name": "port 8000", "kind": "port", "port": 8000, "timeout_s": 30},
            {"name": "command /usr/bin/test", "kind": "command", "argv": ["/usr/bin/test", "-s", "/etc/app.conf"], "timeout_s": 30},
            {"name": "file /var/lib/x", "kind": "file", "path": "/var/lib/x", "contains": "ok", "max_age_s": 90, "timeout_s": 30},
        ])
    );
    let with: Vec<String> = plan.layers.iter().map(|l| l.hash.clone()).collect();
    f.write("images/stacks/web.yml", stack);
    let plan = f.plan("web", &[]);
    assert!(parbake::render::userdata::spec(&plan).checks.is_empty());
    let without: Vec<String> = plan.layers.iter().map(|l| l.hash.clone()).collect();
    assert_eq!(with, without, "checks are launch-time only");
}

#[test]
fn a_bad_publish_section_is_located_with_a_hint() {
    for (block, line, says) in [
        (
            "publish:\n  launch_template: \"web fleet\"\n",
            ":4:",
            "\"web fleet\" is not a launch template name",
        ),
        (
            "publish:\n  launch_template: ab\n",
            ":4:",
            "\"ab\" is not a launch template name",
        ),
        (
            "publish:\n  launch_templat: web\n",
            ":4:",
            "unknown field `launch_templat`",
        ),
        (
            "publish:\n  launch_template: web\n  ssm: /x\n",
            ":5:",
            "unknown field `ssm`",
        ),
        (
            "publish:\n  launch_template: web\n  ssm_parameter: parbake/web\n",
            ":5:",
            "\"parbake/web\" is not an SSM parameter name",
        ),
        (
            "publish:\n  launch_template: web\n  ssm_parameter: /aws/service/x\n",
            ":5:",
            "\"/aws/service/x\" is not an SSM parameter name",
        ),
    ] {
        let f = Fixture::example();
        f.write(
            "images/stacks/web.yml",
            &format!("image: debian12\nroles: [nginx, webapp]\n{block}"),
        );
        let e = fails(&f, &["plan", "web"]);
        has(
            &e,
            &[&format!("images/stacks/web.yml{line}"), says, "hint: "],
        );
    }
}

/// parbake.yml, each class of bad input: an id the rule refuses (a wildcard EC2 filters would
/// read, upper case, too long), an unknown key, not a mapping, an empty file, a link out of the
/// project and a FIFO. Each names the file (and line where there is one) with a hint; `plan`
/// never gets as far as planning.
#[test]
fn a_bad_project_file_names_the_file_line_and_rule() {
    let long = format!("project: {}\n", "a".repeat(33));
    let cases: &[(&str, &[&str])] = &[
        (
            "project: team-*\n",
            &[
                "parbake.yml:1:",
                "`team-*` is not a valid project id",
                "hint: a project id is 1 to 32",
            ],
        ),
        (
            "# ours\nproject: Team-A\n",
            &["parbake.yml:2:", "`Team-A` is not a valid project id"],
        ),
        (&long, &["parbake.yml:1:", "is not a valid project id"]),
        (
            "project: a\nprojct: b\n",
            &["parbake.yml:2:", "unknown field `projct`"],
        ),
        ("- project: a\n", &["parbake.yml:1:"]),
        ("\n", &["parbake.yml:1:1", "the file is empty"]),
    ];
    for (text, needles) in cases {
        let f = Fixture::example();
        f.write("parbake.yml", text);
        let e = fails(&f, &["plan", "web"]);
        has(&e, needles);
    }
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("p.yml"), "project: theirs\n").unwrap();
    let f = Fixture::example();
    std::fs::remove_file(f.root().join("parbake.yml")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("p.yml"), f.root().join("parbake.yml")).unwrap();
    has(&fails(&f, &["plan", "web"]), &["parbake.yml", "outside"]);
    let f = Fixture::example();
    std::fs::remove_file(f.root().join("parbake.yml")).unwrap();
    let fifo = std::ffi::CString::new(f.root().join("parbake.yml").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    has(&fails(&f, &["plan", "web"]), &["parbake.yml"]);
}

/// Without parbake.yml the project has no id and still plans (only the AWS target's prune
/// needs one).
#[test]
fn a_project_without_a_project_file_plans() {
    let f = Fixture::example();
    std::fs::remove_file(f.root().join("parbake.yml")).unwrap();
    let r = f.run(&["plan", "web"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(f.load().id, None);
    assert_eq!(
        Fixture::example().load().id.as_deref(),
        Some("parbake-example")
    );
}
