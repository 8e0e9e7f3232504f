//! `!unsafe` literals and secrets on the pinned `.venv` (2.14, Debian 12's minor) and on a
//! newer ansible-core: the one `PARBAKE_TEST_ANSIBLE` chooses (util::ansible_bin), else the
//! newest of the matrix (2.21, in the Debian 13 root `make setup` makes). From 2.19 on, a vars
//! file with one wrapped number, list or map is re-read as YAML and every wrapper in it is
//! templated, secrets included; the wrapper must hold strings only. Each value must arrive with
//! its type and bytes, and nothing that is a literal or a secret may be templated.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use crate::runner::Image;
use crate::util::repo;

/// The ansible-core venvs the tier runs on, by name; a missing one fails the test (it is
/// installed by `make setup`), it never passes silently.
fn venvs() -> Vec<(&'static str, PathBuf)> {
    let pinned = repo().join(".venv/bin");
    let newer = match std::env::var_os("PARBAKE_TEST_ANSIBLE") {
        Some(_) => crate::util::ansible_bin(),
        None => repo().join(".tools/ansible-core/2.21/bin"),
    };
    for bin in [&pinned, &newer] {
        assert!(
            bin.join("ansible-playbook").exists(),
            "{} is missing: run `make setup`",
            bin.display()
        );
    }
    if newer == pinned {
        return vec![("pinned", pinned)];
    }
    vec![("pinned", pinned), ("newer", newer)]
}

/// A role that writes every named var as base64 of its JSON, one file (base64 so that no
/// template result can look like a list, a dict or a boolean to Ansible's type conversion).
fn dump_role(names: &[String]) -> String {
    let items: Vec<String> = names.iter().map(|n| format!("'{n}': {n}")).collect();
    format!(
        "- name: dump the vars\n  ansible.builtin.copy:\n    content: \"{{{{ {{{}}} | to_json | b64encode }}}}\"\n    dest: \"{{{{ out_dir }}}}/dump\"\n    mode: \"0600\"\n",
        items.join(", ")
    )
}

/// Runs the runner on `venv` with `literals` (name → value, all `!unsafe`) and one `file:`
/// secret holding `secret`; returns what the role saw, by name, and whether a marker file that
/// any evaluated template would create exists.
fn run_on(venv: &Path, literals: &serde_json::Map<String, Value>, secret: &str) -> Value {
    let mut names: Vec<String> = literals.keys().cloned().collect();
    names.push("token".to_string());
    let img = Image::new(&[("keep", &[], &dump_role(&names))], &[]);
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let secret_file = img.path("secret.txt");
    std::fs::write(&secret_file, secret).unwrap();
    let mut vars = literals.clone();
    vars.insert("out_dir".into(), json!(out));
    let spec = img.spec_with(
        &["keep"],
        Value::Object(vars),
        json!({"token": format!("file:{}", secret_file.display())}),
        json!({"format": 2, "literal": literals.keys().collect::<Vec<_>>()}),
    );
    let path = format!("{}:{}", venv.display(), std::env::var("PATH").unwrap());
    let (code, stdout) = img.run_env(&spec, &[], &[("PATH", &path)]);
    assert_eq!(code, 0, "{}: {stdout}", venv.display());
    let b64 = std::fs::read_to_string(out.join("dump")).unwrap();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Template text that would show if evaluated: arithmetic, a lookup, a comment, a block.
fn jinja(marker: &str) -> Vec<String> {
    vec![
        "{{ 6*7 }}".into(),
        format!("{{{{ lookup('pipe', 'touch {marker}') }}}}"),
        "{# c #}".into(),
        "{% if true %}yes{% endif %}".into(),
        "{{ undefined_var }}".into(),
    ]
}

#[test]
fn a_secret_beside_an_unsafe_number_list_and_map_is_never_templated_on_any_ansible_core() {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("MARKER");
    let t = jinja(&marker.display().to_string());
    let secret = format!("{} {} \u{e9}\"q\" \\ end", t[0], t[1]);
    let literals: serde_json::Map<String, Value> = json!({
        "n": 5,
        "f": 1.5,
        "b": true,
        "z": null,
        "l": [1, t[0], [t[1], false]],
        "m": {"k": t[0], "inner": {"x": [t[3], 7]}, "key {{ 6*7 }}": t[4]},
        "s": t[2],
    })
    .as_object()
    .unwrap()
    .clone();
    for (name, venv) in venvs() {
        let seen = run_on(&venv, &literals, &secret);
        for (k, v) in &literals {
            assert_eq!(&seen[k], v, "{name}: `{k}` changed");
        }
        assert_eq!(seen["token"], json!(secret), "{name}: the secret changed");
        assert!(!marker.exists(), "{name}: a template was evaluated");
    }
}

/// Arbitrary JSON values whose strings mix template syntax, quotes, backslashes and Unicode.
fn value() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        Just("{{ 6*7 }}".to_string()),
        Just("{% raw %}".to_string()),
        Just("{#".to_string()),
        Just("}}".to_string()),
        "[ -~]{0,12}",
        "\\PC{0,6}",
    ];
    let leaf = prop_oneof![
        text.prop_map(Value::String),
        any::<i64>().prop_map(|n| json!(n)),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z{}% ]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Equal, with a float allowed its last bit: serde_json's default float reader (this test's,
/// reading Python's shortest repr back) may land one unit in the last place off. Types must
/// match exactly: an integer stays an integer, a string a string.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() && y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn cases() -> u32 {
    std::env::var("PARBAKE_UNSAFE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

/// One generated batch of literals per ansible-core, all in one launch (an ansible-playbook
/// start costs seconds; the values are what varies): each arrives unchanged, the secret too.
#[test]
fn arbitrary_nested_literals_and_a_secret_arrive_unchanged_on_every_ansible_core() {
    let seed = std::env::var("PARBAKE_PROPTEST_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(21);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &bytes,
        ),
    );
    let strategy = value();
    let literals: serde_json::Map<String, Value> = (0..cases())
        .map(|i| {
            let v = strategy.new_tree(&mut runner).unwrap().current();
            (format!("v{i}"), v)
        })
        .collect();
    let secret = "{{ 6*7 }}{% raw %}\"\\\u{2028}";
    let started = std::time::Instant::now();
    for (name, venv) in venvs() {
        let seen = run_on(&venv, &literals, secret);
        for (k, v) in &literals {
            assert!(
                same(&seen[k], v),
                "{name}: `{k}` changed: {} != {v}",
                seen[k]
            );
        }
        assert_eq!(seen["token"], json!(secret), "{name}: the secret changed");
    }
    eprintln!(
        "unsafe values: {} generated literals on {} ansible-cores in {:.1}s",
        cases(),
        venvs().len(),
        started.elapsed().as_secs_f64()
    );
}
