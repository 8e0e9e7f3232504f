//! `verify`'s record, `publish`, `rollback` and `launch --published` on the local store,
//! without a VM: the stack's top layer is put in the store by hand (an empty disk and its
//! record), and verdicts are written as `verify` writes them. The e2e tier verifies,
//! publishes and launches the published minimal stack for real.

use serde_json::Value;

use crate::util::Fixture;
use parbake::store::{LayerRecord, Store, Verification};

/// The example project on a base disk named by path (no cached base image needed), with the
/// web stack's top layer "baked" into its store.
fn fixture() -> (Fixture, Store, String) {
    let f = Fixture::example();
    let image = std::fs::read_to_string(f.root().join("images/debian12.yml")).unwrap();
    f.write(
        "images/debian12.yml",
        &image.replace(
            "disk_image: parbake:debian-12",
            "disk_image: /srv/base.qcow2",
        ),
    );
    let plan = f.plan("web", &[]);
    let top = plan.top().clone();
    let store = Store {
        root: f.root().join(".parbake"),
    };
    let dir = store.layer_dir(&top.hash);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("disk.qcow2"), b"").unwrap();
    let record = LayerRecord {
        format: 1,
        parbake_version: plan.parbake_version.clone(),
        target: "qemu".into(),
        image: plan.image.clone(),
        stack: None,
        index: top.index,
        name: top.name.clone(),
        hash: top.hash.clone(),
        parent: top.parent.clone(),
        runs: top.runs.clone(),
        baked: top.baked.clone(),
        kernel: "/srv/vmlinuz".into(),
        initrd: "/srv/initrd".into(),
        accelerator: "tcg".into(),
        created_at: 1,
        bake_duration_s: 1.0,
        roles: Vec::new(),
        inputs: Default::default(),
    };
    std::fs::write(
        dir.join("record.json"),
        serde_json::to_string(&record).unwrap(),
    )
    .unwrap();
    assert!(store.layer(&top.hash).is_some());
    (f, store, top.hash)
}

/// What `verify` would record for the web stack's current user-data.
fn verdict(f: &Fixture, layer_hash: &str, passed: bool) -> Verification {
    let ud = f.run(&["userdata", "web"]);
    assert_eq!(ud.code, 0, "{}", ud.stderr);
    Verification {
        stack: "web".into(),
        layer: "debian12".into(),
        layer_hash: layer_hash.into(),
        userdata_sha256: parbake::plan::sha256_hex(ud.stdout.as_bytes()),
        passed,
        at: 1,
        boot_to_ready_s: 100.0,
        accelerator: "tcg".into(),
        instance_id: "i-0".into(),
        checks: Vec::new(),
        error: (!passed).then(|| "launch failed at check `http :80/`: GET / answered 502".into()),
    }
}

fn json(f: &Fixture, args: &[&str]) -> Value {
    let r = f.run(args);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

fn refused(f: &Fixture, args: &[&str], says: &[&str]) {
    let r = f.run(args);
    assert_eq!(r.code, 1, "{args:?}: {}{}", r.stdout, r.stderr);
    for s in says {
        assert!(r.stderr.contains(s), "{s:?} in:\n{}", r.stderr);
    }
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);
}

#[test]
fn publish_asks_for_a_passed_verify_with_exactly_its_user_data() {
    let (f, store, hash) = fixture();
    refused(
        &f,
        &["publish", "web"],
        &["has not passed `verify`", "verify it: parbake verify web"],
    );
    store
        .record_verification(&verdict(&f, &hash, false))
        .unwrap();
    refused(
        &f,
        &["publish", "web"],
        &["its last verification failed: launch failed at check `http :80/`"],
    );
    store
        .record_verification(&verdict(&f, &hash, true))
        .unwrap();
    let r = json(&f, &["publish", "web", "--json"]);
    assert_eq!(r["published"]["version"], 1, "{r}");
    assert_eq!(r["published"]["verified"], true);
    assert_eq!(r["published"]["layer_hash"], hash.as_str());
    assert!(r["previous"].is_null());
    // a launch-time change (a check) keeps the layer but changes the user-data: not verified
    let web = std::fs::read_to_string(f.root().join("images/stacks/web.yml")).unwrap();
    f.write(
        "images/stacks/web.yml",
        &web.replace(
            "  - unit: nginx.service\n",
            "  - unit: nginx.service\n  - port: 80\n",
        ),
    );
    refused(
        &f,
        &["publish", "web"],
        &["it was verified with other user-data"],
    );
    // --unverified publishes it anyway and says so in the record
    let r = json(&f, &["publish", "web", "--unverified", "--json"]);
    assert_eq!(r["published"]["version"], 2);
    assert_eq!(r["published"]["verified"], false);
    assert_eq!(r["previous"]["version"], 1);
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(f.root().join(".parbake/published/web.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["default_version"], 2);
    // each published user-data is kept byte for byte
    let ud = f.run(&["userdata", "web"]).stdout;
    let sha = parbake::plan::sha256_hex(ud.as_bytes());
    assert_eq!(r["published"]["userdata_sha256"], sha.as_str());
    assert_eq!(
        std::fs::read_to_string(
            f.root()
                .join(format!(".parbake/published/web/{sha}.user-data"))
        )
        .unwrap(),
        ud
    );
}

#[test]
fn rollback_moves_the_default_back_and_launch_published_needs_the_layer() {
    let (f, store, hash) = fixture();
    refused(
        &f,
        &["rollback", "web"],
        &["stack web has never been published"],
    );
    refused(
        &f,
        &["launch", "web", "--published"],
        &["has never been published on the local target"],
    );
    refused(
        &f,
        &["rollback", "wbe"],
        &["unknown stack `wbe`", "did you mean `web`?"],
    );
    store
        .record_verification(&verdict(&f, &hash, true))
        .unwrap();
    json(&f, &["publish", "web", "--json"]);
    refused(&f, &["rollback", "web"], &["no earlier published version"]);
    json(&f, &["publish", "web", "--json"]);
    let r = json(&f, &["rollback", "web", "--json"]);
    assert_eq!(
        (r["from"]["version"].as_u64(), r["to"]["version"].as_u64()),
        (Some(2), Some(1))
    );
    let text = f.run(&["rollback", "web"]);
    assert_eq!(
        text.code, 1,
        "only one step back was recorded: {}",
        text.stderr
    );
    // the published layer gone from the store: launch --published says so before booting
    std::fs::remove_dir_all(store.layer_dir(&hash)).unwrap();
    refused(
        &f,
        &["launch", "web", "--published"],
        &["is no longer in the store", "parbake rollback web"],
    );
    // publishing is local-only in this release, and --published does not take promotions
    refused(
        &f,
        &["publish", "web", "--target", "aws"],
        &["--target aws"],
    );
    let r = f.run(&["launch", "web", "--published", "--promote", "nginx"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
}
