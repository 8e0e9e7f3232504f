//! The command line: a flag that does not apply to the chosen target, or a format a command
//! does not print, is an error with a hint, never silently ignored.

use crate::util::Fixture;

fn refused(f: &Fixture, args: &[&str], needle: &str) {
    let r = f.run(args);
    assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
    assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    assert!(r.stderr.contains("hint: "), "{args:?}: {}", r.stderr);
    // nothing on stdout but, with --json, the error as JSON
    if args.contains(&"--json") || args.contains(&"json") {
        let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert!(
            doc["error"]["message"].as_str().unwrap().contains(needle) || r.stderr.contains(needle),
            "{doc}"
        );
    } else {
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
}

/// Each flag of `launch` on each target: honoured (exercised by the e2e, moto and bench
/// runs, named here) or refused before anything starts.
#[test]
fn every_launch_flag_is_honoured_or_refused_on_each_target() {
    let f = Fixture::example();
    // qemu honours --keep, --no-roles, --offline, --timeout, --container and --host-link
    // (e2e.rs, scripts/bench.py);
    // refuses these:
    refused(
        &f,
        &["launch", "web", "--ami", "ami-0123"],
        "--ami does not apply to --target qemu",
    );
    refused(
        &f,
        &["launch", "web", "--wait-ready"],
        "--wait-ready does not apply to --target qemu",
    );
    // aws honours --ami, --wait-ready and --timeout (moto.rs); refuses these, before any EC2 call:
    refused(
        &f,
        &["launch", "web", "--target", "aws", "--keep"],
        "--keep does not apply to --target aws",
    );
    refused(
        &f,
        &["launch", "web", "--target", "aws", "--no-roles"],
        "--no-roles does not apply to --target aws",
    );
    refused(
        &f,
        &["launch", "web", "--target", "aws", "--offline"],
        "--offline does not apply to --target aws",
    );
    // --container (a native boot of a layer in the local store, e2e.rs) is the local target's
    refused(
        &f,
        &["launch", "web", "--target", "aws", "--container"],
        "--container does not apply to --target aws",
    );
    refused(
        &f,
        &["verify", "web", "--target", "aws", "--container"],
        "--container does not apply to --target aws",
    );
    refused(
        &f,
        &[
            "bake",
            "--all",
            "--verify",
            "--container",
            "--target",
            "aws",
        ],
        "--container does not apply to --target aws",
    );
    // --host-link is --container's network
    let r = f.run(&["launch", "web", "--host-link"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("--container"), "{}", r.stderr);
    // userdata --ami is for AMIs only
    refused(
        &f,
        &["userdata", "web", "--ami", "ami-0123"],
        "--ami does not apply to --target qemu",
    );
}

#[test]
fn json_is_refused_where_a_command_prints_no_report() {
    let f = Fixture::example();
    refused(
        &f,
        &["userdata", "web", "--json"],
        "userdata has no JSON output",
    );
    let out = f.root().join("r");
    refused(
        &f,
        &[
            "render",
            "web",
            "-o",
            out.to_str().unwrap(),
            "--format",
            "json",
        ],
        "render has no JSON output",
    );
}

#[test]
fn format_json_and_the_json_alias_print_the_same() {
    let f = Fixture::example();
    let a = f.run(&["plan", "web", "--json"]);
    let b = f.run(&["plan", "web", "--format", "json"]);
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert_eq!(a.stdout, b.stdout);
    let v: serde_json::Value = serde_json::from_str(&a.stdout).unwrap();
    assert_eq!(v["stack"], "web");
}

#[test]
fn quiet_silences_notes() {
    let f = Fixture::example();
    let r = f.run(&["userdata", "web", "-q"]);
    assert_eq!(r.code, 0);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}

/// A `--json` run that fails before printing its result prints the error as one JSON document
/// on stdout (a pipeline parses stdout), with its place when it has one; the text report still
/// goes to stderr, and without `--json` stdout stays empty.
#[test]
fn a_failed_json_run_prints_its_error_as_json() {
    let f = Fixture::bare();
    f.role("base", &[]).image("img", &["base"], &[]);
    f.write(
        "images/stacks/s.yml",
        "image: img\nroles: [base]\nnosuch: 1\n",
    );
    let r = f.run(&["plan", "s", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let e = &doc["error"];
    assert_eq!(
        (&e["file"], &e["line"], &e["exit_code"]),
        (&"images/stacks/s.yml".into(), &3.into(), &1.into()),
        "{doc}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `nosuch`"),
        "{doc}"
    );
    assert!(!e["hints"].as_array().unwrap().is_empty(), "{doc}");
    assert!(
        r.stderr.contains("error: images/stacks/s.yml:3:1"),
        "{}",
        r.stderr
    );
    f.write("images/stacks/s.yml", "image: img\nroles: [base]\n");
    let r = f.run(&["plan", "nosuch", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["error"]["message"], "unknown stack `nosuch`", "{doc}");
    assert!(f.run(&["plan", "nosuch"]).stdout.is_empty());
}
