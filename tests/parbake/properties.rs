//! Property and mutation tiers for issue 9. Cases are generated with proptest's strategies and
//! checked in batches against the real consumers (cloud-init's YAML loader, Ansible's vars
//! loader, `packer console`), one process per batch. `PARBAKE_PROPTEST_CASES` and
//! `PARBAKE_MUTATION_CASES` raise the counts (defaults: 256 and 200).

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRng, TestRunner};
use serde_json::{json, Value};

use crate::hostile::{assert_only_parbake_keys, cloud_init_views, python_views};
use crate::util::{repo, Fixture};

pub(crate) fn cases(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Characters that end or open something in one of the formats parbake writes.
const NASTY: &[char] = &[
    '\n', '\r', '\u{85}', '\u{2028}', '\u{2029}', '\t', '\0', '\u{1b}', '\u{7f}', '\u{feff}', '"',
    '\'', '\\', '{', '}', '%', '#', ':', '-', '!', '&', '*', '|', '>', '$', '`', ';', ' ',
];

/// Fragments that mean something to YAML, cloud-init, Jinja, the shell or HCL.
const FRAGMENTS: &[&str] = &[
    "#cloud-config\n",
    "\nbootcmd: [[touch, /pwned]]\n",
    "\u{2028}runcmd: [id]",
    "{{ lookup('pipe','id') }}",
    "{% raw %}",
    "${var.x}",
    "%{ if true }",
    "$(id)",
    "'; id; '",
    "\n---\n",
    "... ",
    "- ",
    ": ",
    "!!python/object:os.system",
    "\u{1F600}",
];

fn nasty_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => any::<char>().prop_map(String::from),
        3 => proptest::sample::select(NASTY).prop_map(String::from),
        2 => proptest::sample::select(FRAGMENTS).prop_map(String::from),
        1 => "[a-z]{1,8}",
    ];
    prop_oneof![
        20 => proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat()),
        1 => (proptest::sample::select(NASTY), 2000usize..6000).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

/// A var value: strings, and lists and maps of them, two levels deep.
fn var_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        6 => nasty_string().prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                nasty_string().prop_filter("reserved by Ansible", |k| !k.starts_with("__ansible_")),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
struct Case {
    description: String,
    vars: BTreeMap<String, Value>,
    launch_vars: BTreeMap<String, Value>,
    literal: BTreeMap<String, Value>,
    secret_path: String,
}

fn case() -> impl Strategy<Value = Case> {
    let names = |prefix: &'static str| {
        proptest::collection::btree_map(
            "[a-z][a-z0-9_]{0,6}".prop_map(move |n| format!("{prefix}{n}")),
            var_value(),
            0..4,
        )
    };
    (
        nasty_string(),
        names("b_"),
        names("l_"),
        names("u_"),
        nasty_string(),
    )
        .prop_map(|(description, vars, launch_vars, literal, secret)| Case {
            description,
            vars,
            launch_vars,
            literal,
            secret_path: format!("/run/secrets/{secret}"),
        })
}

pub(crate) fn generate<S: Strategy>(strategy: S, n: usize, seed: u64) -> Vec<S::Value> {
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &seed_bytes),
    );
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

pub(crate) fn seed() -> u64 {
    std::env::var("PARBAKE_PROPTEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_9a7b)
}

/// The stack file a user would write for `case`, through a YAML serializer (tags included).
fn stack_yaml(c: &Case) -> String {
    use serde_yaml::value::{Tag, TaggedValue};
    let to_yaml = |v: &Value| serde_yaml::to_value(v).unwrap();
    let mut launch = serde_yaml::Mapping::new();
    for (k, v) in &c.launch_vars {
        launch.insert(k.clone().into(), to_yaml(v));
    }
    for (k, v) in &c.literal {
        launch.insert(
            k.clone().into(),
            serde_yaml::Value::Tagged(Box::new(TaggedValue {
                tag: Tag::new("unsafe"),
                value: to_yaml(v),
            })),
        );
    }
    launch.insert(
        "s_secret".into(),
        serde_yaml::Value::Tagged(Box::new(TaggedValue {
            tag: Tag::new("secret"),
            value: format!("file:{}", c.secret_path).into(),
        })),
    );
    let mut doc = serde_yaml::Mapping::new();
    doc.insert("image".into(), "debian12".into());
    doc.insert("description".into(), c.description.clone().into());
    doc.insert(
        "roles".into(),
        serde_yaml::to_value(["nginx", "webapp", "identity"]).unwrap(),
    );
    doc.insert("promote".into(), serde_yaml::to_value(["nginx"]).unwrap());
    doc.insert("vars".into(), to_yaml(&json!(c.vars)));
    doc.insert("launch_vars".into(), serde_yaml::Value::Mapping(launch));
    serde_yaml::to_string(&doc).unwrap()
}

/// Renders every case; returns (case, user-data text, bake vars.json of the stack layer) for
/// those that fit EC2's limit. A case too large must fail with that error and nothing else.
fn render_cases(cases: &[Case]) -> Vec<(Case, String, String)> {
    let f = Fixture::example();
    let mut out = Vec::new();
    for c in cases {
        f.write("images/stacks/web.yml", &stack_yaml(c));
        let project = f.load();
        let plan = parbake::plan::plan(
            &project,
            &crate::util::request("web", &[], parbake::plan::Target::Qemu),
        )
        .unwrap();
        match parbake::render::render_all(&project, &plan, &Default::default()) {
            Ok(files) => {
                let get = |p: &str| {
                    let f = files.iter().find(|f| f.path == p).unwrap();
                    String::from_utf8(f.contents.clone()).unwrap()
                };
                let ud = files.iter().find(|f| f.path == "user-data").unwrap();
                let text = if ud.contents.starts_with(&[0x1f, 0x8b]) {
                    get("user-data.txt")
                } else {
                    get("user-data")
                };
                out.push((
                    c.clone(),
                    text,
                    get("layers/2-debian12-web/payload/vars.json"),
                ));
            }
            Err(parbake::render::RenderError::UserDataTooLarge { .. }) => {}
        }
    }
    out
}

fn write_batch(dir: &std::path::Path, texts: &[&str]) -> Vec<std::path::PathBuf> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let p = dir.join(format!("case-{i}"));
            std::fs::write(&p, t).unwrap();
            p
        })
        .collect()
}

#[test]
fn no_value_leaves_its_field_in_the_user_data_or_the_bake_vars() {
    let n = cases("PARBAKE_PROPTEST_CASES", 256);
    let rendered = render_cases(&generate(case(), n, seed()));
    assert!(
        rendered.len() * 10 >= n * 9,
        "most cases fit: {}",
        rendered.len()
    );
    let dir = tempfile::tempdir().unwrap();

    // the user-data, read by cloud-init's own loader
    let texts: Vec<&str> = rendered.iter().map(|(_, t, _)| t.as_str()).collect();
    let views = cloud_init_views(&write_batch(dir.path(), &texts));
    for ((c, _, _), view) in rendered.iter().zip(&views) {
        assert_only_parbake_keys(view);
        let spec: Value =
            serde_json::from_str(view["files"][0]["content"].as_str().unwrap()).unwrap();
        for (k, v) in c.vars.iter().chain(&c.launch_vars).chain(&c.literal) {
            assert_eq!(&spec["vars"][k], v, "var {k} of {c:?}");
        }
        let literal: Vec<&String> = c.literal.keys().collect();
        assert_eq!(spec["literal"], json!(literal), "{c:?}");
        assert_eq!(
            spec["secrets"]["s_secret"],
            format!("file:{}", c.secret_path)
        );
        assert!(spec["vars"].get("s_secret").is_none());
    }

    // the stack layer's bake vars, read by Ansible's own vars loader
    let texts: Vec<&str> = rendered.iter().map(|(_, _, v)| v.as_str()).collect();
    let views = python_views(
        &repo().join(".venv/bin/python"),
        ANSIBLE_VARS_VIEW,
        &write_batch(dir.path(), &texts),
        &[],
    );
    for ((c, _, _), view) in rendered.iter().zip(&views) {
        for (k, v) in &c.vars {
            assert_eq!(&view["values"][k], v, "bake var {k} of {c:?}");
            assert_eq!(view["unsafe"][k], false);
        }
    }
}

/// Loads each vars file as Ansible does (DataLoader); prints each value as JSON and whether
/// Ansible holds it as unsafe (never templated).
const ANSIBLE_VARS_VIEW: &str = r#"
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.utils.unsafe_proxy import AnsibleUnsafe
loader = DataLoader()
out = []
for path in sys.argv[1:]:
    data = loader.load_from_file(path)
    out.append({"values": json.loads(json.dumps(data)), "unsafe": {k: isinstance(v, AnsibleUnsafe) for k, v in data.items()}})
json.dump(out, sys.stdout)
"#;

/// One-line free text (what kernel_append and the AMI name pattern accept).
fn one_line_string() -> impl Strategy<Value = String> {
    nasty_string().prop_map(|s| {
        s.chars()
            .filter(|c| !c.is_control() && *c != '\u{2028}' && *c != '\u{2029}')
            .take(120)
            .collect::<String>()
    })
}

/// The var-file values a user controls: the kernel command line, and the base disk's path
/// (a local `disk_image` reaches the var-file as the resolved path). Packer must read both back
/// as the same strings: JSON var-files are literal to HCL (no `${}` or `%{}` evaluation).
#[test]
fn packer_reads_the_var_file_values_back_unchanged() {
    let n = cases("PARBAKE_PROPTEST_CASES", 256) / 4;
    let values = generate((one_line_string(), one_line_string()), n, seed() ^ 1);
    let f = Fixture::example();
    let path = f.root().join("images/debian12.yml");
    let original = std::fs::read_to_string(&path).unwrap();
    let packer = parbake::tools::Tools::locate(&repo())
        .packer
        .into_os_string();
    for (kernel_append, disk) in values {
        let mut doc: serde_yaml::Value = serde_yaml::from_str(&original).unwrap();
        doc["sources"]["qemu"]["kernel_append"] = kernel_append.clone().into();
        std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
        let project = f.load();
        let plan = parbake::plan::plan(
            &project,
            &crate::util::request("web", &[], parbake::plan::Target::Qemu),
        )
        .unwrap();
        let opts = parbake::render::RenderOptions {
            qemu: parbake::render::QemuOptions {
                base_disk: format!("/srv/disks/{disk}"),
                ..Default::default()
            },
            ..Default::default()
        };
        let files = parbake::render::packer::render(&project, &plan, &plan.layers[0], &opts);
        let dir = tempfile::tempdir().unwrap();
        for file in &files {
            let p = dir.path().join(&file.path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, &file.contents).unwrap();
        }
        let out = duct::cmd!(
            &packer,
            "console",
            "-var-file=parbake.pkrvars.json",
            "template.pkr.hcl"
        )
        .dir(dir.path())
        .stdin_bytes("jsonencode([var.kernel_append, var.base_disk])\n")
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let got: Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("packer console said {text:?} ({e}) for {kernel_append:?}"));
        assert_eq!(got, json!([kernel_append, format!("/srv/disks/{disk}")]));
    }
}

/// One random edit of a YAML text: the classes of mistake and malice a config file meets.
fn mutate(text: &str, rng: &mut u64) -> String {
    let mut next = |n: usize| {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        (*rng % n.max(1) as u64) as usize
    };
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let i = next(lines.len());
    const INSERTS: &[&str] = &[
        "!!python/object/apply:os.system [id] ",
        "!secret ",
        "!unsafe ",
        "!!str ",
        "!custom ",
        "[1, 2] ",
        "{a: 1} ",
        "&a ",
        "*a ",
        "\u{2028}",
        "\u{85}",
        "\t",
        "\"",
        "'",
        "{{ x }} ",
        "<<: ",
        "- ",
        "? ",
        "%YAML 1.1\n",
        "---\n",
        "\u{feff}",
        ".inf ",
        "~ ",
        "0x1F ",
        "1e999 ",
    ];
    match next(8) {
        0 => {
            lines.remove(i);
        }
        1 => {
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        2 => {
            let ins = INSERTS[next(INSERTS.len())];
            let l = &mut lines[i];
            let at = l
                .char_indices()
                .map(|(b, _)| b)
                .nth(next(l.chars().count() + 1))
                .unwrap_or(l.len());
            l.insert_str(at, ins);
        }
        3 => {
            // swap a value's type
            if let Some((k, _)) = lines[i].clone().split_once(": ") {
                let v = [
                    "[]",
                    "{}",
                    "42",
                    "true",
                    "null",
                    "[[x]]",
                    "{a: {b: c}}",
                    "''",
                ][next(8)];
                lines[i] = format!("{k}: {v}");
            }
        }
        4 => {
            let j = next(lines.len());
            lines.swap(i, j);
        }
        5 => {
            // re-indent
            let l = lines[i].trim_start().to_string();
            lines[i] = format!("{}{l}", " ".repeat(next(6)));
        }
        6 => {
            let cut = next(text.len());
            let mut cut = cut.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            return text[..cut].to_string();
        }
        _ => {
            let l = lines[i].clone();
            lines.push(l);
        }
    }
    lines.join("\n") + "\n"
}

#[test]
fn mutated_config_files_exit_0_or_1_never_crash() {
    let n = cases("PARBAKE_MUTATION_CASES", 200);
    let targets = [
        "images/debian12.yml",
        "images/stacks/web.yml",
        "images/stacks/worker.yml",
        "roles/nginx/meta/parbake.yml",
    ];
    let f = Fixture::example();
    let originals: Vec<String> = targets
        .iter()
        .map(|t| std::fs::read_to_string(f.root().join(t)).unwrap())
        .collect();
    let mut rng = seed() | 1;
    let mut codes: BTreeMap<i32, usize> = BTreeMap::new();
    for case in 0..n {
        let which = case % targets.len();
        let mut text = originals[which].clone();
        for _ in 0..1 + (case / targets.len()) % 3 {
            text = mutate(&text, &mut rng);
        }
        f.write(targets[which], &text);
        for args in [&["plan", "web"][..], &["userdata", "worker"][..]] {
            let r = f.run(args);
            *codes.entry(r.code).or_default() += 1;
            assert!(
                r.code == 0 || r.code == 1,
                "exit {} for {args:?} with {}:\n{text}\n---\n{}",
                r.code,
                targets[which],
                r.stderr
            );
            if r.code == 1 {
                assert!(r.stderr.contains("error: "), "{}", r.stderr);
            }
        }
        f.write(targets[which], &originals[which]);
    }
    eprintln!("mutation tier: {n} cases, exit codes {codes:?}");
}

/// A value for a check's text field: printable ASCII, the characters that end something,
/// any character, and lengths about each rule's bound.
fn check_field_value() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => "[ -~]{1,6}",
        3 => proptest::sample::select(NASTY).prop_map(String::from),
        2 => any::<char>().prop_map(String::from),
        1 => proptest::sample::select(&['\u{80}', '\u{9f}', '\u{a0}', 'é', '.', '/', '-', '@'][..])
            .prop_map(String::from),
    ];
    let edge = (
        proptest::sample::select(&["x", "é", "/", "-", " ", ".", ".."][..]),
        proptest::sample::select(
            &[
                127usize, 128, 129, 254, 255, 256, 1023, 1024, 1025, 2048, 4095, 4096, 4097,
            ][..],
        ),
        proptest::sample::select(&["", "/", "x", "\n", " "][..]),
    )
        .prop_map(|(c, n, lead)| format!("{lead}{}", c.repeat(n)));
    prop_oneof![
        12 => proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat()),
        2 => proptest::collection::vec(piece_path(), 1..6).prop_map(|v| v.concat()),
        1 => edge,
    ]
}

fn piece_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_string()),
        Just("/..".to_string()),
        Just("..".to_string()),
        "[a-z.@:_-]{1,5}",
    ]
}

#[test]
fn parbake_and_the_runner_agree_on_every_check_field_value() {
    // the same random values through parbake's rule and the runner's, per field (issue 21:
    // a name parbake accepted and the runner refused failed every launch at boot)
    let n = cases("PARBAKE_PROPTEST_CASES", 256) * 4;
    let started = std::time::Instant::now();
    let fields = ["name", "http", "unit", "text", "file", "role"];
    let values = generate(check_field_value(), n, seed());
    let pairs: Vec<(String, String)> = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| (fields[i % fields.len()].to_string(), v))
        .collect();
    let runner = crate::contract::runner_field_verdicts(&pairs);
    let mut accepted = 0;
    for ((field, value), runner_ok) in pairs.iter().zip(&runner) {
        let ok = parbake::config::health_checks::field_rule(field).unwrap()(value);
        assert_eq!(
            ok, *runner_ok,
            "{field} {value:?}: parbake {ok}, runner {runner_ok}"
        );
        accepted += ok as usize;
    }
    eprintln!(
        "check field tier: {n} values, {accepted} accepted by both, {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// A role name or something close to one: one to five dot-separated parts of letters (both
/// cases), digits, `_` and `-`, some empty, some long, so the collection rule's edges
/// (`ns.collection.role`, three lowercase parts, 64 characters) are hit often.
fn role_name_like() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        6 => "[a-z][a-z0-9_]{0,9}",
        2 => "[A-Za-z0-9_-]{0,6}",
        1 => "[a-z]{20,30}",
        1 => proptest::sample::select(NASTY).prop_map(String::from),
    ];
    proptest::collection::vec(part, 1..6).prop_map(|v| v.join("."))
}

#[test]
fn parbake_and_the_runner_agree_on_every_role_name() {
    // a role name (a spec's role, a shim list's entry) that parbake plans must be one the
    // runner takes, and the reverse: the FQCN of a collection's role above all
    let n = cases("PARBAKE_PROPTEST_CASES", 256) * 4;
    let started = std::time::Instant::now();
    let pairs: Vec<(String, String)> = generate(role_name_like(), n, seed())
        .into_iter()
        .map(|v| ("role".to_string(), v))
        .collect();
    let runner = crate::contract::runner_field_verdicts(&pairs);
    let (mut accepted, mut fqcn) = (0, 0);
    for ((_, value), runner_ok) in pairs.iter().zip(&runner) {
        let ok = parbake::config::names::valid_role_ref(value);
        assert_eq!(
            ok, *runner_ok,
            "{value:?}: parbake {ok}, runner {runner_ok}"
        );
        accepted += ok as usize;
        fqcn += parbake::config::names::valid_collection_role(value) as usize;
    }
    assert!(fqcn > 0, "no collection role name was generated");
    eprintln!(
        "role name tier: {n} values, {accepted} accepted by both ({fqcn} collection roles), {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// One task of the offline-verdict property: its module, arguments, and what it means for the
/// network (installs packages, refreshes the lists every run, pip, downloads, or cannot be
/// read).
struct VerdictTask {
    module: &'static str,
    args: &'static str,
    installs: bool,
    refresh: bool,
    pip: bool,
    fetch: bool,
    opaque: bool,
}

const fn vt(module: &'static str, args: &'static str, f: [bool; 5]) -> VerdictTask {
    VerdictTask {
        module,
        args,
        installs: f[0],
        refresh: f[1],
        pip: f[2],
        fetch: f[3],
        opaque: f[4],
    }
}

const VERDICT_TASKS: &[VerdictTask] = &[
    vt("debug", "{msg: hi}", [false; 5]),
    vt("copy", "{content: x, dest: /x}", [false; 5]),
    vt("user", "{name: x, shell: /bin/sh}", [false; 5]),
    vt("apt", "{name: x}", [true, false, false, false, false]),
    vt(
        "apt",
        "{name: x, update_cache: true}",
        [true, true, false, false, false],
    ),
    vt(
        "apt",
        "{name: x, update_cache: true, cache_valid_time: 3600}",
        [true, false, false, false, false],
    ),
    vt(
        "apt",
        "name=x update_cache=yes cache_valid_time=0",
        [true, true, false, false, false],
    ),
    vt("package", "{name: x}", [true, false, false, false, false]),
    vt("pip", "{name: [a==1]}", [false, false, true, false, false]),
    vt(
        "get_url",
        "{url: 'https://x', dest: /x}",
        [false, false, false, true, false],
    ),
    vt(
        "uri",
        "{url: 'https://x'}",
        [false, false, false, true, false],
    ),
    vt("command", "hostname x", [false, false, false, false, true]),
    vt("shell", "echo x", [false, false, false, false, true]),
    vt(
        "include_role",
        "{name: \"{{ which }}\"}",
        [false, false, false, false, true],
    ),
];

/// A role's tasks from (task, prefix, nesting) choices, and the role.
fn verdict_role(name: &str, tasks: &[(usize, usize, usize)]) -> parbake::config::Role {
    let mut text = String::new();
    for &(t, prefix, nest) in tasks {
        let task = &VERDICT_TASKS[t];
        let key = match prefix {
            0 => task.module.to_string(),
            1 => format!("ansible.builtin.{}", task.module),
            _ => format!("ansible.legacy.{}", task.module),
        };
        text += &match nest {
            0 => format!("- name: t\n  {key}: {}\n", task.args),
            1 => format!("- block:\n    - {key}: {}\n", task.args),
            _ => format!(
                "- block: []\n  rescue:\n    - name: r\n      {key}: {}\n",
                task.args
            ),
        };
    }
    let mut refs = parbake::config::role_refs::RoleRefs::default();
    let file =
        parbake::config::yaml::SourceFile::ansible(format!("roles/{name}/tasks/main.yml"), text);
    parbake::config::role_refs::scan(&file, &mut refs).unwrap();
    parbake::config::Role {
        name: name.into(),
        dir: std::path::PathBuf::from("/nonexistent"),
        deps: vec![],
        hash: String::new(),
        meta: Default::default(),
        files: vec![],
        meta_file: None,
        refs,
        min_ansible: None,
        words: Default::default(),
        dotted_collections: Default::default(),
    }
}

/// The offline verdict of a launch role and the role it includes, for any mix of tasks (in
/// any prefix and nesting), staging and `offline: true`: never "offline" while a task reaches
/// the network unstaged, never "offline" on plan's word while a task cannot be read, and the
/// verdict agrees with what each task means.
#[test]
fn the_offline_verdict_agrees_with_every_task_it_reads() {
    use parbake::plan::{offline_verdict, Staged, Verdict};
    let task = (0..VERDICT_TASKS.len(), 0..3usize, 0..3usize);
    let strategy = (
        proptest::collection::vec(task.clone(), 0..5),
        proptest::collection::vec(task, 0..5),
        any::<[bool; 4]>(),
    );
    let n = cases("PARBAKE_PROPTEST_CASES", 256) * 2;
    let mut counts = BTreeMap::new();
    for (outer, inner, [apt, pip, declared_outer, declared_inner]) in generate(strategy, n, seed())
    {
        let roles = [verdict_role("outer", &outer), verdict_role("inner", &inner)];
        let staged = [
            Staged {
                apt: if apt { vec!["x".into()] } else { vec![] },
                pip: if pip { vec!["a==1".into()] } else { vec![] },
                recommends: true,
                declared_offline: declared_outer,
            },
            Staged {
                declared_offline: declared_inner,
                ..Staged::default()
            },
        ];
        let (verdict, reason) = offline_verdict(&[&roles[0], &roles[1]], &staged);
        let tasks = |i: usize| if i == 0 { &outer } else { &inner };
        let any = |f: &dyn Fn(&VerdictTask) -> bool| {
            (0..2).any(|i| tasks(i).iter().any(|&(t, _, _)| f(&VERDICT_TASKS[t])))
        };
        let network = any(&|t| t.refresh || t.fetch || (t.installs && !apt) || (t.pip && !pip));
        let unread = (0..2).any(|i| {
            !(declared_outer || (i == 1 && declared_inner))
                && tasks(i).iter().any(|&(t, _, _)| VERDICT_TASKS[t].opaque)
        });
        let expected = match (network, unread) {
            (true, _) => Verdict::Network,
            (false, true) => Verdict::Unknown,
            (false, false) => Verdict::Offline,
        };
        assert_eq!(
            verdict, expected,
            "{outer:?} {inner:?} apt={apt} pip={pip}: {reason}"
        );
        *counts.entry(format!("{verdict:?}")).or_insert(0) += 1;
    }
    eprintln!("offline verdicts over {n} cases: {counts:?}");
    assert!(counts.len() == 3, "every verdict was reached: {counts:?}");
}
