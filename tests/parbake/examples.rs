//! The pipeline examples under examples/ must not drift from the CLI: every `parbake` command
//! line in them is parsed with parbake's own argument parser.

use clap::Parser;
use parbake::cli::Cli;

use crate::util::repo;

/// `parbake` invocations in a shell text: the words from the binary up to a pipe or redirect,
/// with the example's variables filled in.
fn invocations(text: &str, binary: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let at = l.find(binary)?;
            let words: Vec<String> = l[at + binary.len()..]
                .split_whitespace()
                .take_while(|w| {
                    !w.starts_with('|')
                        && !w.starts_with('>')
                        && *w != "||"
                        && *w != "&&"
                        && *w != ";"
                })
                .map(|w| {
                    w.trim_matches('"')
                        .replace("$TARGET", "aws")
                        .replace("$JOBS", "2")
                        .replace("$KEEP", "3")
                })
                .collect();
            let mut argv = vec!["parbake".to_string()];
            argv.extend(words);
            Some(argv)
        })
        .collect()
}

fn parses(argv: &[String]) {
    if let Err(e) = Cli::try_parse_from(argv) {
        panic!("example command `{}` does not parse:\n{e}", argv.join(" "));
    }
}

#[test]
fn the_nightly_script_uses_real_commands() {
    let text = std::fs::read_to_string(repo().join("examples/nightly.sh")).unwrap();
    let cmds = invocations(&text, "\"$PARBAKE\"");
    let names: Vec<&str> = cmds.iter().map(|c| c[1].as_str()).collect();
    assert_eq!(names, ["bake", "publish", "prune", "gc"], "{cmds:?}");
    assert!(cmds[0].contains(&"--all".to_string()) && cmds[0].contains(&"--json".to_string()));
    assert!(cmds[0].contains(&"--verify".to_string()), "{cmds:?}");
    cmds.iter().for_each(|c| parses(c));
}

#[test]
fn the_github_workflow_is_valid_yaml_with_real_commands() {
    let text = std::fs::read_to_string(repo().join("examples/github-actions/parbake-nightly.yml"))
        .unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert!(doc["on"]["schedule"][0]["cron"].is_string());
    assert_eq!(
        doc["concurrency"]["cancel-in-progress"],
        serde_yaml::Value::Bool(false)
    );
    let steps = doc["jobs"]["bake"]["steps"].as_sequence().unwrap();
    let runs: String = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let cmds = invocations(&runs, "./target/release/parbake");
    let names: Vec<&str> = cmds.iter().map(|c| c[1].as_str()).collect();
    assert_eq!(names, ["bake", "publish", "prune", "gc"], "{cmds:?}");
    cmds.iter().for_each(|c| parses(c));
}

#[test]
fn the_cron_line_runs_the_nightly_script() {
    let text = std::fs::read_to_string(repo().join("examples/cron/parbake-nightly")).unwrap();
    let line = text
        .lines()
        .find(|l| !l.starts_with('#') && l.split_whitespace().count() > 6)
        .unwrap();
    assert!(line.starts_with("0 2 * * * "), "{line}");
    assert!(line.contains("examples/nightly.sh"), "{line}");
    let service =
        std::fs::read_to_string(repo().join("examples/systemd/parbake-nightly.service")).unwrap();
    assert!(service.contains("ExecStart=/srv/images/examples/nightly.sh"));
}
