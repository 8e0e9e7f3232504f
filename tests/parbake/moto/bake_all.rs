//! `bake --all` on EC2 from two machines (two stores): one waits for the other's builder, and
//! a later run says what changed.

use parbake::bake::all::{AllReport, Outcome};

use super::support::*;

const REGION: &str = "ca-central-1";
const ALL: &[&str] = &["bake", "--all", "--target", "aws", "-j", "2", "--json"];

#[test]
fn bake_all_on_aws_waits_for_another_machines_builder_and_says_what_changed() {
    // its own region; two stores stand for two machines, so only the EC2 tags connect them
    let f = Fixture::example();
    f.replace(
        "images/debian12.yml",
        "region: us-east-1",
        &format!("region: {REGION}"),
    );
    for (stack, promote) in [("web", "nginx, webapp"), ("worker", "worker")] {
        f.replace(
            &format!("images/stacks/{stack}.yml"),
            "promote: []",
            &format!("promote: [{promote}]"),
        );
    }
    let (store_a, store_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    a_dry_run_reads_ec2_and_creates_no_store(&f, store_a.path());
    let (ra, rb) = two_machines_bake_all_at_once(&f, store_a.path(), store_b.path());
    for l in &ra.layers {
        assert_eq!(l.why, [format!("first bake of layer {}", l.name)]);
        let b_layer = rb.layers.iter().find(|x| x.hash == l.hash).unwrap();
        assert_eq!(
            b_layer.image_id, l.image_id,
            "both machines use the one AMI"
        );
        let amis = rt().block_on(async {
            ec2(REGION)
                .await
                .layer_amis(&example_scope(), &l.hash)
                .await
                .unwrap()
        });
        assert_eq!(amis.len(), 1, "{} was baked twice", l.name);
        // the bake timings travel with the AMI
        assert!(amis[0].tags["parbake:bake-seconds"].starts_with("total="));
    }
    // the machine that baked the worker layer holds its record
    let worker = |r: &AllReport| {
        r.layers
            .iter()
            .any(|l| l.name == "debian12-worker" && l.outcome == Outcome::Baked)
    };
    let store = if worker(&ra) {
        store_a.path()
    } else {
        store_b.path()
    };
    changed_bake_vars_rebake_only_their_layer_and_say_why(&f, store);
}

/// The dry run reads EC2, says what would be baked, and creates no store.
fn a_dry_run_reads_ec2_and_creates_no_store(f: &Fixture, store: &Path) {
    let dry_store = store.join("dry");
    let out = aws(f.root(), &dry_store)
        .args(&["bake", "--all", "--target", "aws", "--dry-run", "--json"])
        .run();
    let dry: AllReport = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!((dry.counts.to_bake, dry.counts.baked), (3, 0), "{dry:?}");
    assert!(!dry_store.exists(), "the dry run created the store");
}

/// Machine A bakes all; machine B starts once A's builder is up, waits for A's claims and bakes
/// nothing. Their reports.
fn two_machines_bake_all_at_once(
    f: &Fixture,
    store_a: &Path,
    store_b: &Path,
) -> (AllReport, AllReport) {
    let a = aws(f.root(), store_a)
        .args(ALL)
        .env("PARBAKE_TEST_PAUSE_SECONDS", "6");
    let child_a = a.spawn();
    a_builder_runs();
    let b = aws(f.root(), store_b)
        .args(ALL)
        .env("PARBAKE_CLAIM_POLL_SECONDS", "1");
    let child_b = b.spawn();
    let (a, b) = (a.finish(child_a), b.finish(child_b));
    let (err_a, err_b) = (&a.stderr, &b.stderr);
    let ra: AllReport = serde_json::from_str(&a.stdout).unwrap();
    let rb: AllReport = serde_json::from_str(&b.stdout).unwrap();
    // A bakes the base while B waits for it; the stack layers go to whichever claims each
    // first once the base is there (B polls every second): each layer is baked once in all
    let shown = format!("{ra:?}\n{rb:?}\n--- A ---\n{err_a}\n--- B ---\n{err_b}");
    assert_eq!(ra.layers[0].outcome, Outcome::Baked, "{shown}");
    assert_eq!(rb.layers[0].outcome, Outcome::Cached, "{shown}");
    assert_eq!(ra.counts.baked + rb.counts.baked, 3, "{shown}");
    assert_eq!(ra.counts.cached + rb.counts.cached, 3, "{shown}");
    assert!(
        err_b.contains("is being baked by another run (claim parbake-lock-"),
        "{err_b}"
    );
    assert!(
        err_b.contains("(baked by another run meanwhile)"),
        "{err_b}"
    );
    (ra, rb)
}

/// Waits until a builder instance runs in the region.
fn a_builder_runs() {
    let deadline = Instant::now() + Duration::from_secs(120);
    rt().block_on(async {
        let ec2 = ec2(REGION).await;
        loop {
            let resp = ec2
                .sdk()
                .describe_instances()
                .filters(parbake::targets::aws::ec2::filter(
                    "tag-key",
                    "parbake:building",
                ))
                .filters(parbake::targets::aws::ec2::filter(
                    "instance-state-name",
                    "running",
                ))
                .send()
                .await
                .unwrap();
            if resp
                .reservations()
                .iter()
                .any(|r| !r.instances().is_empty())
            {
                break;
            }
            assert!(Instant::now() < deadline, "no builder instance appeared");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
}

/// A stack's bake vars change: only its layer is rebaked, and the AMI tags say why.
fn changed_bake_vars_rebake_only_their_layer_and_say_why(f: &Fixture, store: &Path) {
    f.replace(
        "images/stacks/worker.yml",
        "vars: {}",
        "vars:\n  worker_interval: 5min",
    );
    let out = aws(f.root(), store).args(ALL).run();
    let err = &out.stderr;
    let r: AllReport = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!((r.counts.baked, r.counts.cached), (1, 2), "{r:?}");
    let worker = r
        .layers
        .iter()
        .find(|l| l.name == "debian12-worker")
        .unwrap();
    assert_eq!(worker.outcome, Outcome::Baked);
    assert_eq!(worker.why, ["bake vars changed"], "{err}");
}
