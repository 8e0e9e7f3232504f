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
        run_hash: String::new(),
        payload_hash: String::new(),
        refresh_of: None,
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
    f.parbake(args).json()
}

fn refused(f: &Fixture, args: &[&str], says: &[&str]) {
    says.iter()
        .fold(f.parbake(args).code(1), |t, s| t.stderr_contains(s))
        .stderr_contains("hint: ")
        .run();
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
    // on aws the stack names its launch template; --published does not take promotions
    refused(
        &f,
        &["publish", "web", "--target", "aws"],
        &[
            "names no launch template to publish to",
            "publish: {launch_template: web-fleet}",
        ],
    );
    let r = f.run(&["launch", "web", "--published", "--promote", "nginx"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
}

/// `launch --container` where systemd-nspawn is missing: said once on stderr, then the VM
/// launch goes on (here it stops at the fixture's empty disk, with the VM path's own error,
/// exit 2 as an I/O error is).
#[test]
fn launch_container_without_nspawn_says_why_once_and_boots_the_vm() {
    let (f, _store, _hash) = fixture();
    // PATH: every program of /usr/bin and /usr/sbin but systemd-nspawn
    let bin = f.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for dir in ["/usr/bin", "/usr/sbin"] {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name();
            if name != "systemd-nspawn" && !bin.join(&name).exists() {
                std::os::unix::fs::symlink(e.path(), bin.join(&name)).unwrap();
            }
        }
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parbake"))
        .args(["launch", "web", "--container", "--json"])
        .current_dir(f.root())
        .env("PATH", &bin)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let said = "parbake: --container: systemd-nspawn is not installed (Debian's systemd-container; `make setup` installs it); launching in a VM instead";
    assert_eq!(err.matches(said).count(), 1, "{err}");
    // the VM path's own check of the layer's (empty) disk
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("read the qcow2 header"), "{err}");
    assert!(!err.contains("natively"), "{err}");
}

/// A layer record like the fixture's, for an older bake of the same base layer.
fn older_base(store: &Store, current: &str, hash: &str, at: u64) {
    let mut r = store.layer(current).unwrap();
    r.hash = hash.into();
    r.created_at = at;
    let dir = store.layer_dir(hash);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("disk.qcow2"), vec![1u8; 8192]).unwrap();
    std::fs::write(dir.join("record.json"), serde_json::to_string(&r).unwrap()).unwrap();
}

#[test]
fn the_local_store_lists_its_layers_and_prune_keeps_what_is_published_or_running() {
    let (f, store, current) = fixture();
    let (old, older) = ("a".repeat(64), "b".repeat(64));
    older_base(&store, &current, &old, 0);
    older_base(&store, &current, &older, 0);
    // web: version 1 on `old` (now the rollback target), version 2 on the current layer
    let v = |hash: &str| parbake::published::Publication {
        version: 0,
        image: "debian12".into(),
        layer_index: 1,
        layer: "debian12".into(),
        layer_hash: hash.into(),
        launch_roles: 4,
        userdata_sha256: parbake::plan::sha256_hex(hash.as_bytes()),
        at: 1,
        verified: true,
    };
    parbake::published::publish(&store, "web", v(&old), old.as_bytes()).unwrap();
    parbake::published::publish(&store, "web", v(&current), current.as_bytes()).unwrap();
    store
        .record_verification(&verdict(&f, &current, true))
        .unwrap();
    let images = json(&f, &["images", "--target", "qemu", "--json"]);
    let all: Vec<&Value> = images.as_array().unwrap().iter().collect();
    assert_eq!(all.len(), 3, "{images}");
    let node = |h: &str| *all.iter().find(|n| n["layer_hash"] == h).unwrap();
    assert_eq!(node(&current)["published"][0], "web v2 default");
    assert_eq!(node(&current)["verified"], "passed (web)");
    assert_eq!(node(&old)["published"][0], "web v1 rollback target");
    assert!(node(&older)["published"].as_array().unwrap().is_empty());
    let text = f.run(&["images", "--target", "qemu"]);
    assert!(
        text.stdout.contains("published web v2 default"),
        "{}",
        text.stdout
    );
    // a VM still running on `older` (launch --keep): its overlay is backed by the layer's disk
    let run = store.runs().join("web-i-0123");
    std::fs::create_dir_all(&run).unwrap();
    let backing = store.layer_dir(&older).join("disk.qcow2");
    let made = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(&backing)
        .arg(run.join("overlay.qcow2"))
        .arg("1G")
        .status()
        .unwrap();
    assert!(made.success());
    let dry = json(
        &f,
        &[
            "prune",
            "--target",
            "qemu",
            "--keep",
            "1",
            "--dry-run",
            "--json",
        ],
    );
    let why = |h: &str| {
        let d = dry
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["layer_hash"] == h)
            .unwrap();
        (
            d["action"].as_str().unwrap().to_string(),
            d["why"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(why(&current).0, "keep");
    assert_eq!(
        why(&old),
        ("keep".into(), "rollback target of web (version 1)".into())
    );
    assert_eq!(
        why(&older),
        ("keep".into(), "backs the disk of a VM in web-i-0123".into())
    );
    // the VM gone, the older layer goes; a dry run removed nothing
    std::fs::remove_dir_all(&run).unwrap();
    assert!(store.layer(&older).is_some());
    let done = json(&f, &["prune", "--target", "qemu", "--keep", "1", "--json"]);
    let removed: Vec<&str> = done
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] == "removed")
        .map(|d| d["layer_hash"].as_str().unwrap())
        .collect();
    assert_eq!(removed, [older.as_str()]);
    assert!(!store.layer_dir(&older).exists());
    assert!(store.layer(&old).is_some() && store.layer(&current).is_some());
    refused(
        &f,
        &["prune", "--target", "qemu", "--keep", "1", "--region", "x"],
        &["--region"],
    );
}

/// A publish target belongs to one stack: two stack files naming one launch template (or one
/// SSM parameter) are refused when the project loads, naming both files and lines, so that
/// `rollback web` can never land on worker's version.
#[test]
fn two_stacks_naming_one_launch_template_or_ssm_parameter_are_refused_naming_both_files() {
    let f = Fixture::example();
    let add = |stack: &str, publish: &str| {
        let path = format!("images/stacks/{stack}.yml");
        let text = std::fs::read_to_string(f.root().join(&path)).unwrap();
        f.write(&path, &format!("{text}publish:\n{publish}"));
    };
    add(
        "web",
        "  launch_template: shared-fleet\n  ssm_parameter: /parbake/shared\n",
    );
    add("worker", "  launch_template: shared-fleet\n");
    let line_of = |stack: &str, key: &str| {
        let text =
            std::fs::read_to_string(f.root().join(format!("images/stacks/{stack}.yml"))).unwrap();
        text.lines().position(|l| l.contains(key)).unwrap() + 1
    };
    // every command that loads the project refuses it, plan included
    let r = f.run(&["plan", "web"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let (web, worker) = (
        line_of("web", "launch_template"),
        line_of("worker", "launch_template"),
    );
    assert!(
        r.stderr.contains(&format!(
            "images/stacks/worker.yml:{worker}:3: field `publish.launch_template`: launch template `shared-fleet` is also named by stack `web` (images/stacks/web.yml:{web})"
        )) && r.stderr.contains("hint: publish and rollback move it for one stack only; give stack `worker` its own, e.g. `launch_template: worker-fleet`"),
        "{}",
        r.stderr
    );
    // the same for an SSM parameter
    let text = std::fs::read_to_string(f.root().join("images/stacks/worker.yml")).unwrap();
    f.write(
        "images/stacks/worker.yml",
        &text.replace(
            "launch_template: shared-fleet\n",
            "launch_template: worker-fleet\n  ssm_parameter: /parbake/shared\n",
        ),
    );
    let r = f.run(&["plan", "worker"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "images/stacks/worker.yml:{}:3: field `publish.ssm_parameter`: SSM parameter `/parbake/shared` is also named by stack `web` (images/stacks/web.yml:{})",
            line_of("worker", "ssm_parameter"),
            line_of("web", "ssm_parameter")
        )),
        "{}",
        r.stderr
    );
    // each its own: fine
    f.write(
        "images/stacks/worker.yml",
        &text.replace(
            "launch_template: shared-fleet\n",
            "launch_template: worker-fleet\n",
        ),
    );
    let r = f.run(&["plan", "worker"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}
