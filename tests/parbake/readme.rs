//! Every command the README shows works as shown.
//!
//! - Each line of a `sh` block is a `parbake`, `make` or `cargo install` command; a new shape
//!   fails here until this test learns it.
//! - `parbake` commands, in blocks and inline in backticks: the offline, cheap ones (`plan`,
//!   `userdata`, `images`) run for real on a copy of the example project and must exit 0; the
//!   others (a bake, a launch) run with `--help` appended, which clap reaches only after every
//!   argument before it parsed (a misspelt flag, a bad value or a stray word is exit 1).
//! - Each `make X` in a block or inline names a target of the Makefile.
//! - The `yaml` block for "your own repository" is written into an empty project (its files
//!   named by their `# path:` comments, with `packer/` and `scripts/` copied as the README says
//!   and a one-task role for each role it names) and each stack in it plans.
//! - Every relative link of the README and docs/*.md leads to a file, and to a heading there.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::util::{copy_dir, repo, Fixture};

/// The README's fenced blocks: (language, lines).
fn blocks(readme: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in readme.lines() {
        match (line.strip_prefix("```"), current.take()) {
            (Some(_), Some(block)) => out.push(block),
            (Some(lang), None) => current = Some((lang.trim().to_string(), Vec::new())),
            (None, Some((lang, mut lines))) => {
                lines.push(line.to_string());
                current = Some((lang, lines));
            }
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "README.md: a code block is not closed");
    out
}

/// A shell line without its trailing `# comment`.
fn command_of(line: &str) -> &str {
    line.split(" #").next().unwrap_or(line).trim()
}

/// Inline code spans that start with `prefix ` (`parbake plan web`, `make e2e`).
fn inline(readme: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for block_free in readme.split("```").step_by(2) {
        for (i, span) in block_free.split('`').enumerate() {
            if i % 2 == 1 && span.starts_with(&format!("{prefix} ")) {
                out.push(span.to_string());
            }
        }
    }
    out
}

struct Shown {
    parbake: Vec<String>,
    make: BTreeSet<String>,
}

fn shown(readme: &str) -> Shown {
    let mut parbake = Vec::new();
    let mut make = BTreeSet::new();
    for (lang, lines) in blocks(readme).into_iter().filter(|(l, _)| l == "sh") {
        for line in lines
            .iter()
            .map(|l| command_of(l))
            .filter(|l| !l.is_empty())
        {
            assert!(
                !line.contains(['\'', '"', '|', ';', '&', '$', '<', '>']),
                "README.md ({lang} block): `{line}`: teach tests/parbake/readme.rs its shell syntax"
            );
            if let Some(target) = line.strip_prefix("make ") {
                make.insert(target.to_string());
            } else if line.starts_with("parbake ") {
                parbake.push(line.to_string());
            } else {
                assert!(
                    line.starts_with("cargo install "),
                    "README.md: `{line}` is no parbake, make or cargo install command: teach \
                     tests/parbake/readme.rs to check it"
                );
            }
        }
    }
    parbake.extend(inline(readme, "parbake"));
    make.extend(
        inline(readme, "make")
            .iter()
            .map(|m| m["make ".len()..].to_string()),
    );
    Shown { parbake, make }
}

fn makefile_targets() -> BTreeSet<String> {
    std::fs::read_to_string(repo().join("Makefile"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(['\t', '#', '.']) && !l.contains(":="))
        .filter_map(|l| l.split_once(':').map(|(t, _)| t.trim().to_string()))
        .filter(|t| !t.is_empty() && !t.contains(' '))
        .collect()
}

/// Runs parbake in `dir` with a store of its own: (exit code, stdout, stderr).
fn parbake(dir: &Path, store: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parbake"))
        .args(args)
        .current_dir(dir)
        .env("PARBAKE_STORE", store)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("PARBAKE_PROJECT")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Offline and cheap on the example project: run as shown.
fn runs_for_real(args: &[&str]) -> bool {
    matches!(args.first(), Some(&"plan") | Some(&"userdata"))
        || (args.first() == Some(&"images") && args.windows(2).any(|w| w == ["--target", "qemu"]))
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

#[test]
fn every_parbake_command_the_readme_shows_works_as_shown() {
    let shown = shown(&readme());
    assert!(
        shown.parbake.len() >= 5,
        "too few commands found: {:?}",
        shown.parbake
    );
    let project = Fixture::example();
    let store = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for line in &shown.parbake {
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        let real = runs_for_real(&args);
        let mut argv = args.clone();
        if !real {
            argv.push("--help");
        }
        let (code, stdout, stderr) = parbake(project.root(), store.path(), &argv);
        assert_eq!(code, 0, "README.md: `{line}` (run as {argv:?}):\n{stderr}");
        assert!(!stdout.is_empty(), "README.md: `{line}` printed nothing");
        ran += usize::from(real);
    }
    assert!(
        ran >= 2,
        "no README command ran for real: {:?}",
        shown.parbake
    );
}

#[test]
fn every_make_target_the_readme_shows_exists() {
    let shown = shown(&readme());
    for two in ["demo", "test"] {
        assert!(shown.make.contains(two), "the README shows `make {two}`");
    }
    let targets = makefile_targets();
    let missing: Vec<_> = shown.make.difference(&targets).collect();
    assert!(
        missing.is_empty(),
        "README.md shows make targets the Makefile lacks: {missing:?}"
    );
}

#[test]
fn the_readmes_own_repository_example_plans() {
    let yaml: Vec<String> = blocks(&readme())
        .into_iter()
        .filter(|(lang, _)| lang == "yaml")
        .flat_map(|(_, lines)| lines)
        .collect();
    assert!(
        !yaml.is_empty(),
        "README.md has no yaml block for your own repository"
    );
    // files by their `# path: ...` comments
    let mut files: Vec<(String, String)> = Vec::new();
    for line in &yaml {
        let path = line
            .strip_prefix("# ")
            .and_then(|rest| rest.split_once(':'))
            .map(|(path, _)| path)
            .filter(|p| p.ends_with(".yml"));
        match (path, files.last_mut()) {
            (Some(path), _) => files.push((path.to_string(), String::new())),
            (None, Some((_, text))) => text.push_str(&format!("{line}\n")),
            (None, None) => panic!("README.md: yaml before a `# path:` comment: {line}"),
        }
    }
    let f = Fixture::bare();
    copy_dir(&repo().join("scripts"), &f.root().join("scripts"));
    let mut roles = BTreeSet::new();
    for (path, text) in &files {
        f.write(path, text);
        let doc: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        for key in ["basic", "launch_only", "roles"] {
            for r in doc[key].as_sequence().into_iter().flatten() {
                roles.insert(r.as_str().unwrap().to_string());
            }
        }
    }
    for r in &roles {
        f.role(r, &[]);
    }
    let stacks: Vec<&str> = files
        .iter()
        .filter_map(|(p, _)| p.strip_prefix("images/stacks/")?.strip_suffix(".yml"))
        .collect();
    assert!(
        !stacks.is_empty(),
        "the yaml block has no stack file: {files:?}"
    );
    let store = tempfile::tempdir().unwrap();
    for stack in stacks {
        let (code, stdout, stderr) = parbake(f.root(), store.path(), &["plan", stack]);
        assert_eq!(
            code, 0,
            "plan {stack} on the README's own-repository files:\n{stderr}"
        );
        assert!(
            stdout.contains(&format!("stack {stack} on image")),
            "{stdout}"
        );
    }
}

/// A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The relative links of a Markdown text outside its code blocks: `[text](target)`.
fn links(text: &str) -> Vec<String> {
    text.split("```")
        .step_by(2)
        .flat_map(|prose| prose.split("](").skip(1))
        .filter_map(|rest| rest.split_once(')').map(|(link, _)| link.to_string()))
        .filter(|l| !l.starts_with("http") && !l.contains(' '))
        .collect()
}

#[test]
fn every_link_of_the_readme_and_docs_resolves() {
    let mut pages = vec![repo().join("README.md")];
    for e in std::fs::read_dir(repo().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p);
        }
    }
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in links(&text) {
            let (file, frag) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            let headings = std::fs::read_to_string(&target).unwrap_or_default();
            let ok = target.exists()
                && (frag.is_empty()
                    || headings
                        .lines()
                        .filter(|l| l.starts_with('#'))
                        .any(|h| anchor(h.trim_start_matches('#')) == frag));
            if !ok {
                broken.push(format!("{}: {link}", page.display()));
            }
        }
    }
    assert!(pages.len() > 10, "{pages:?}");
    assert!(
        broken.is_empty(),
        "links that lead nowhere:\n{}",
        broken.join("\n")
    );
}
