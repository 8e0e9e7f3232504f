//! Snapshots of every rendered artifact for both example stacks, with and without promotion,
//! for both targets. Hashes are filtered so a role edit does not churn them; hash behaviour
//! is tested in hashing.rs.

use parbake::contract as runtime;
use parbake::plan::{self, Target};
use parbake::render::{self, RenderOptions};

use crate::util::{request, Fixture};

fn render_text(stack: &str, promote: &[&str], target: Target) -> String {
    let f = Fixture::example();
    let project = f.load();
    let plan = plan::plan(&project, &request(stack, promote, target)).unwrap();
    let files = render::render_all(&project, &plan, &RenderOptions::default()).unwrap();
    files_text(&files, target)
}

/// Rendered files as one text, the verbatim copies (runtime, units, template) compared instead.
fn files_text(files: &[render::RenderedFile], target: Target) -> String {
    let mut out = String::new();
    for file in files {
        // verbatim copies are compared, not snapshotted
        if file.path.ends_with("runtime/parbake-roles") {
            assert_eq!(file.contents, runtime::RUNNER.as_bytes());
            continue;
        }
        if file.path.ends_with("runtime/parbake_events.py") {
            assert_eq!(file.contents, runtime::CALLBACK.as_bytes());
            continue;
        }
        let package = format!("payload/lib/{}/", runtime::RUNNER_PACKAGE_NAME);
        if let Some((_, name)) = file.path.rsplit_once(&package) {
            let (_, text) = runtime::RUNNER_PACKAGE
                .iter()
                .find(|(n, _)| *n == name)
                .expect("a file of the runner's package");
            assert_eq!(file.contents, text.as_bytes());
            continue;
        }
        if file
            .path
            .ends_with(&format!("runtime/{}", runtime::LAUNCH_UNIT_NAME))
        {
            assert_eq!(file.contents, runtime::LAUNCH_UNIT.as_bytes());
            continue;
        }
        if file
            .path
            .ends_with(&format!("runtime/{}", runtime::READY_TARGET_NAME))
        {
            assert_eq!(file.contents, runtime::READY_TARGET.as_bytes());
            continue;
        }
        if file.path.ends_with("template.pkr.hcl") {
            let src = match target {
                Target::Qemu => "packer/qemu.pkr.hcl",
                Target::Aws => "packer/amazon-ebs.pkr.hcl",
            };
            assert_eq!(
                file.contents,
                std::fs::read(crate::util::repo().join(src)).unwrap()
            );
            continue;
        }
        out.push_str(&format!(
            "===== {}{}\n",
            file.path,
            if file.executable { " (executable)" } else { "" }
        ));
        out.push_str(&String::from_utf8(file.contents.clone()).expect("text"));
    }
    out
}

/// Hashes and digests in rendered files, longest first, as snapshots name them.
const HASH_FILTERS: [(&str, &str); 5] = [
    (r"sha256:[0-9a-f]{64}", "sha256:[ROLE-HASH]"),
    (r"[0-9a-f]{64}", "[HASH]"),
    (r"[0-9a-f]{16}", "[HASH16]"),
    (r"[0-9a-f]{12}", "[HASH12]"),
    (r"[0-9a-f]{8}", "[HASH8]"),
];

/// A payload refresh of the web stack layer: Packer starts from a disk with its run cached,
/// the driver installs the payload and the manifest, and nothing else runs (no playbook).
#[test]
fn refresh_payload_snapshot() {
    let f = Fixture::example();
    let project = f.load();
    let plan = plan::plan(&project, &request("web", &["nginx"], Target::Qemu)).unwrap();
    let mut opts = RenderOptions {
        refresh: true,
        ..RenderOptions::default()
    };
    opts.qemu.build_on = Some("<build>/build-on.qcow2".into());
    let files = render::render_layer(&project, &plan, &plan.layers[1], &opts);
    assert!(files.iter().all(|f| !f.path.ends_with("bake.yml")));
    let text = files_text(&files, Target::Qemu);
    assert!(!text.contains("ansible-playbook"), "{text}");
    insta::with_settings!({filters => HASH_FILTERS.to_vec()}, {
        insta::assert_snapshot!(text);
    });
}

macro_rules! snap {
    ($name:ident, $stack:expr, $promote:expr, $target:expr) => {
        #[test]
        fn $name() {
            let text = render_text($stack, $promote, $target);
            // the user-data's base64 parts: launch.json is in the snapshot decoded, and the
            // hostile tests check that the two agree
            let mut filters = vec![(r"content: [A-Za-z0-9+/=]{40,}", "content: [BASE64]")];
            filters.extend_from_slice(&HASH_FILTERS);
            insta::with_settings!({filters => filters}, {
                insta::assert_snapshot!(text);
            });
        }
    };
}

snap!(web_qemu, "web", &[], Target::Qemu);
snap!(web_qemu_promoted, "web", &["nginx", "webapp"], Target::Qemu);
snap!(worker_qemu, "worker", &[], Target::Qemu);
snap!(worker_qemu_promoted, "worker", &["worker"], Target::Qemu);
snap!(web_aws, "web", &[], Target::Aws);
snap!(web_aws_promoted, "web", &["nginx", "webapp"], Target::Aws);
snap!(worker_aws, "worker", &[], Target::Aws);
snap!(worker_aws_promoted, "worker", &["worker"], Target::Aws);

/// The aws var-files with an EC2 endpoint override (moto, LocalStack): the region and
/// credential checks are skipped, which the snapshots above, with none, keep on.
#[test]
fn aws_var_files_with_an_endpoint_override() {
    let f = Fixture::example();
    let project = f.load();
    let plan = plan::plan(&project, &request("web", &["nginx"], Target::Aws)).unwrap();
    let opts = RenderOptions {
        aws: render::AwsOptions {
            ec2_endpoint: "http://127.0.0.1:5000".into(),
            ..Default::default()
        },
        ..RenderOptions::default()
    };
    let mut out = String::new();
    for file in render::render_all(&project, &plan, &opts).unwrap() {
        if file.path.ends_with(render::packer::VAR_FILE) {
            out.push_str(&format!("===== {}\n", file.path));
            out.push_str(&String::from_utf8(file.contents).expect("text"));
        }
    }
    insta::with_settings!({filters => vec![
        (r"[0-9a-f]{64}", "[HASH]"),
        (r"[0-9a-f]{16}", "[HASH16]"),
        (r"[0-9a-f]{12}", "[HASH12]"),
        (r"[0-9a-f]{8}", "[HASH8]"),
    ]}, {
        insta::assert_snapshot!(out);
    });
}

#[test]
fn plan_table_snapshot() {
    let f = Fixture::example();
    // no base disk cached: the parent is the declared source, whatever this machine has built
    let cache = tempfile::tempdir().unwrap();
    let r = f
        .parbake(&["plan", "web", "--promote", "nginx"])
        .env("PARBAKE_CACHE", cache.path())
        .run();
    insta::with_settings!({filters => vec![(r"[0-9a-f]{64}", "[HASH]"), (r"[0-9a-f]{12}", "[HASH12]"), (r"[0-9a-f]{8}", "[HASH8]")]}, {
        insta::assert_snapshot!(r.stdout);
    });
}
