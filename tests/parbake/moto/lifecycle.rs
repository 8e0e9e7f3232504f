//! Image lifecycle (issue 27) calls that moto 5.2.5 does not have: the real SDK, through
//! parbake's own `Ec2` methods, against a labelled local stand-in for EC2 that records each
//! request and answers with the response shape of the EC2 API reference (element names as
//! the reference and aws-sdk-ec2's deserializers have them). Checked against the API shape,
//! not a live account.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

use parbake::targets::aws::ec2::{Ec2, Endpoint};

use super::support::*;

const NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// A stand-in for EC2: every request's head and body is recorded; one whose body holds the
/// `Action=` of an entry in `answers` gets that XML body (HTTP 200); anything else a 400.
pub(super) fn stand_in(answers: Vec<(&'static str, String)>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let body = String::from_utf8_lossy(&body).to_string();
            record.lock().unwrap().push(body.clone());
            let (status, xml) = answers
                .iter()
                .find(|(action, _)| body.contains(&format!("Action={action}&")))
                .map(|(_, a)| (200, a.clone()))
                .unwrap_or((400, "<Response><Errors><Error><Code>StandInUnexpectedRequest</Code><Message>unexpected</Message></Error></Errors></Response>".into()));
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                    xml.len()
                )
                .as_bytes(),
            );
        }
    });
    (url, seen)
}

/// `<{action}Response>` with EC2's namespace and a request id around `inner`.
pub(super) fn answer(action: &str, inner: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"{NS}\"><requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>{inner}</{action}Response>")
}

pub(super) fn connect(url: &str) -> Ec2 {
    let endpoint = Endpoint {
        url: Some(url.to_string()),
        static_credentials: Some(("testing".into(), "testing".into())),
    };
    rt().block_on(Ec2::connect("us-east-1", &endpoint))
}

/// The one recorded request, as its query parameters.
pub(super) fn params(seen: &Arc<Mutex<Vec<String>>>) -> Vec<Vec<(String, String)>> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|body| {
            body.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.replace("%3A", ":")))
                .collect()
        })
        .collect()
}

pub(super) fn has(req: &[(String, String)], key: &str, value: &str) -> bool {
    req.iter().any(|(k, v)| k == key && v == value)
}

/// `deprecate_after`'s call: EnableImageDeprecation with the AMI and the time, in the ISO
/// form EC2 documents.
#[test]
fn deprecation_sends_the_ami_and_the_time() {
    let (url, seen) = stand_in(vec![(
        "EnableImageDeprecation",
        answer("EnableImageDeprecation", "<return>true</return>"),
    )]);
    let ec2 = connect(&url);
    // 2027-03-07T00:00:00Z
    rt().block_on(ec2.deprecate("ami-0123456789abcdef0", 1_804_377_600))
        .unwrap();
    let reqs = params(&seen);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(
        has(&reqs[0], "Action", "EnableImageDeprecation")
            && has(&reqs[0], "ImageId", "ami-0123456789abcdef0")
            && has(&reqs[0], "DeprecateAt", "2027-03-07T00:00:00Z"),
        "{reqs:?}"
    );
}

/// Publish and rollback's calls: protection on without the 24-hour cooldown (so it can move
/// on), and off.
#[test]
fn protection_is_enabled_without_cooldown_and_disabled() {
    let (url, seen) = stand_in(vec![
        (
            "EnableImageDeregistrationProtection",
            answer(
                "EnableImageDeregistrationProtection",
                "<return>true</return>",
            ),
        ),
        (
            "DisableImageDeregistrationProtection",
            answer(
                "DisableImageDeregistrationProtection",
                "<return>true</return>",
            ),
        ),
    ]);
    let ec2 = connect(&url);
    rt().block_on(async {
        ec2.protect("ami-1").await.unwrap();
        ec2.unprotect("ami-0").await.unwrap();
    });
    let reqs = params(&seen);
    assert!(
        has(&reqs[0], "Action", "EnableImageDeregistrationProtection")
            && has(&reqs[0], "ImageId", "ami-1")
            && has(&reqs[0], "WithCooldown", "false"),
        "{reqs:?}"
    );
    assert!(
        has(&reqs[1], "Action", "DisableImageDeregistrationProtection")
            && has(&reqs[1], "ImageId", "ami-0"),
        "{reqs:?}"
    );
}

/// Prune's DeregisterImage asks EC2 to delete the snapshots, and reads which it did: a
/// snapshot another AMI uses is `skipped`.
#[test]
fn deregister_deletes_the_snapshots_and_reports_each() {
    let (url, seen) = stand_in(vec![(
        "DeregisterImage",
        answer(
            "DeregisterImage",
            "<return>true</return><deleteSnapshotResultSet><item><snapshotId>snap-1</snapshotId><returnCode>success</returnCode></item><item><snapshotId>snap-2</snapshotId><returnCode>skipped</returnCode></item></deleteSnapshotResultSet>",
        ),
    )]);
    let ec2 = connect(&url);
    let results = rt()
        .block_on(ec2.deregister_with_snapshots("ami-old"))
        .unwrap();
    let reqs = params(&seen);
    assert!(
        has(&reqs[0], "Action", "DeregisterImage")
            && has(&reqs[0], "ImageId", "ami-old")
            && has(&reqs[0], "DeleteAssociatedSnapshots", "true"),
        "{reqs:?}"
    );
    assert_eq!(results.get("snap-1").map(String::as_str), Some("success"));
    assert_eq!(results.get("snap-2").map(String::as_str), Some("skipped"));
}

/// `prune --unused-for`'s read: DescribeImageAttribute lastLaunchedTime, and an AMI never
/// launched (no value).
#[test]
fn last_launched_time_is_read_from_the_image_attribute() {
    let launched = answer(
        "DescribeImageAttribute",
        "<imageId>ami-1</imageId><lastLaunchedTime><value>2026-11-30T08:15:00Z</value></lastLaunchedTime>",
    );
    let (url, seen) = stand_in(vec![("DescribeImageAttribute", launched)]);
    let ec2 = connect(&url);
    let at = rt().block_on(ec2.last_launched("ami-1")).unwrap();
    assert_eq!(at.as_deref(), Some("2026-11-30T08:15:00Z"));
    let reqs = params(&seen);
    assert!(
        has(&reqs[0], "Action", "DescribeImageAttribute")
            && has(&reqs[0], "ImageId", "ami-1")
            && has(&reqs[0], "Attribute", "lastLaunchedTime"),
        "{reqs:?}"
    );
    let never = answer(
        "DescribeImageAttribute",
        "<imageId>ami-2</imageId><lastLaunchedTime/>",
    );
    let (url, _) = stand_in(vec![("DescribeImageAttribute", never)]);
    assert_eq!(
        rt().block_on(connect(&url).last_launched("ami-2")).unwrap(),
        None
    );
}

/// The bake's preflight read: GetAllowedImagesSettings, its criteria parsed, and a Debian
/// source AMI refused by criteria that admit only Amazon's.
#[test]
fn allowed_images_settings_are_read_and_refuse_a_source_they_do_not_name() {
    use parbake::targets::aws::lifecycle::{allowed_images_finding, Candidate};
    let (url, seen) = stand_in(vec![(
        "GetAllowedImagesSettings",
        answer(
            "GetAllowedImagesSettings",
            "<state>enabled</state><imageCriterionSet><item><imageProviderSet><item>amazon</item><item>123456789012</item></imageProviderSet><creationDateCondition><maximumDaysSinceCreated>300</maximumDaysSinceCreated></creationDateCondition></item><item><imageNameSet><item>ubuntu-*</item></imageNameSet></item></imageCriterionSet><managedBy>declarative-policy</managedBy>",
        ),
    )]);
    let settings = rt().block_on(connect(&url).allowed_images()).unwrap();
    assert!(has(&params(&seen)[0], "Action", "GetAllowedImagesSettings"));
    assert_eq!(settings.state, "enabled");
    assert_eq!(settings.managed_by.as_deref(), Some("declarative-policy"));
    assert_eq!(settings.criteria.len(), 2);
    assert_eq!(settings.criteria[0].providers, ["amazon", "123456789012"]);
    assert_eq!(settings.criteria[0].max_days_since_created, Some(300));
    assert_eq!(settings.criteria[1].names, ["ubuntu-*"]);
    let now = 1_800_000_000;
    let debian = Candidate {
        owner: "136693071363",
        owner_alias: None,
        name: "debian-12-amd64-20260101-1",
        created: Some(now - 10 * 86_400),
        deprecated: None,
    };
    let finding = allowed_images_finding(&settings, "ami-deb", &debian, now).unwrap();
    assert!(
        finding.contains("source AMI ami-deb (owner 136693071363) matches none")
            && finding.contains("declarative policy"),
        "{finding}"
    );
    let ours = Candidate {
        owner: "123456789012",
        ..debian
    };
    assert!(allowed_images_finding(&settings, "ami-own", &ours, now).is_none());
}

/// `deprecate_after` out of range or not a duration, in an image or a stack: a located error
/// with a hint, exit 1, nothing planned.
#[test]
fn deprecate_after_out_of_range_is_refused_at_its_line() {
    use crate::util::Fixture;
    for (value, says) in [
        ("0d", "deprecate_after 0d is out of range"),
        ("12h", "deprecate_after 12h is out of range"),
        ("3651d", "deprecate_after 3651d is out of range"),
        ("90 days", "\"90 days\" is not a duration"),
    ] {
        let f = Fixture::example();
        let image = f.root().join("images/debian12.yml");
        let text = std::fs::read_to_string(&image).unwrap();
        let lines = format!("    instance_type: t3.small\n    deprecate_after: {value}");
        std::fs::write(&image, text.replace("    instance_type: t3.small", &lines)).unwrap();
        let line = lines_before(&image, "deprecate_after:");
        let r = f.parbake(&["plan", "web", "--target", "aws"]).code(1).run();
        for needle in [
            &format!("images/debian12.yml:{line}:"),
            "sources.aws.deprecate_after",
            says,
            "hint: ",
        ] {
            assert!(
                r.stderr.contains(needle),
                "{value}: {needle:?} not in {}",
                r.stderr
            );
        }
        // the same in a stack file
        let f = Fixture::example();
        let stack = f.root().join("images/stacks/web.yml");
        let text = std::fs::read_to_string(&stack).unwrap();
        std::fs::write(&stack, format!("{text}deprecate_after: {value}\n")).unwrap();
        let line = lines_before(&stack, "deprecate_after:");
        let r = f.parbake(&["plan", "web", "--target", "aws"]).code(1).run();
        assert!(
            r.stderr.contains(&format!("images/stacks/web.yml:{line}:"))
                && r.stderr.contains(says)
                && r.stderr.contains("hint: "),
            "{value}: {}",
            r.stderr
        );
    }
}

/// The 1-based line of the first line of `path` that starts (after spaces) with `key`.
fn lines_before(path: &std::path::Path, key: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .position(|l| l.trim_start().starts_with(key))
        .unwrap()
        + 1
}

/// `deprecate_after` is not in the layer hash: changing it does not rebake a layer.
#[test]
fn deprecate_after_is_not_in_the_layer_hash() {
    use crate::util::{request, Fixture};
    use parbake::plan::{self, Target};
    let hashes = |f: &Fixture| {
        let project = parbake::project::load(f.root()).unwrap();
        let mut req = request("web", &["nginx"], Target::Aws);
        req.source_identity = Some("aws:us-east-1:ami-0123".into());
        let p = plan::plan(&project, &req).unwrap();
        (p.layers[0].hash.clone(), p.layers[1].hash.clone())
    };
    let plain = Fixture::example();
    let base = hashes(&plain);
    let f = Fixture::example();
    let image = f.root().join("images/debian12.yml");
    let text = std::fs::read_to_string(&image).unwrap();
    std::fs::write(
        &image,
        text.replace(
            "    instance_type: t3.small",
            "    instance_type: t3.small\n    deprecate_after: 90d",
        ),
    )
    .unwrap();
    let stack = f.root().join("images/stacks/web.yml");
    let text = std::fs::read_to_string(&stack).unwrap();
    std::fs::write(&stack, format!("{text}deprecate_after: 30d\n")).unwrap();
    assert_eq!(hashes(&f), base);
}

/// Prune against moto: a protected AMI is never deregistered (it says why), and with
/// `--unused-for` an AMI launched within the window stays though nothing uses it now. Base
/// AMIs Bz, Ba, Bb (newest) of the example project made by hand in their own region; Bz
/// protected, Ba launched once (its instance terminated). moto_server.py stand-ins 7 and 9.
#[test]
fn prune_skips_protected_amis_and_keeps_what_was_launched_within_unused_for() {
    const REGION: &str = "ap-south-2";
    let ids = three_base_amis(REGION);
    let store = tempfile::tempdir().unwrap();
    let decide = |extra: &[&str]| -> std::collections::BTreeMap<String, serde_json::Value> {
        let mut args = vec!["prune", "--keep", "1", "--region", REGION, "--json"];
        args.extend_from_slice(extra);
        let rep = in_repo(store.path()).args(&args).json();
        rep.as_array()
            .unwrap()
            .iter()
            .map(|d| (d["ami"].as_str().unwrap().to_string(), d.clone()))
            .collect()
    };
    let kinds = |d: &serde_json::Value| -> Vec<String> {
        d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap().to_string())
            .collect()
    };
    let dry = decide(&["--dry-run"]);
    assert_eq!(dry[&ids[0]]["action"], "keep", "{}", dry[&ids[0]]);
    assert_eq!(kinds(&dry[&ids[0]]), ["protected"]);
    assert!(dry[&ids[0]]["why"]
        .as_str()
        .unwrap()
        .contains("deregistration protection is on (enabled-without-cooldown)"));
    assert_eq!(dry[&ids[1]]["action"], "remove", "{}", dry[&ids[1]]);
    let within = decide(&["--dry-run", "--unused-for", "30d"]);
    assert_eq!(within[&ids[1]]["action"], "keep", "{}", within[&ids[1]]);
    assert_eq!(kinds(&within[&ids[1]]), ["launched-recently"]);
    // for real, with --unused-for: nothing goes; without: Ba goes, protected Bz stays
    let kept = decide(&["--unused-for", "30d"]);
    assert!(kept.values().all(|d| d["action"] == "keep"), "{kept:?}");
    let done = decide(&[]);
    assert_eq!(done[&ids[1]]["action"], "removed");
    assert_eq!(done[&ids[0]]["action"], "keep");
    rt().block_on(async {
        let ec2 = ec2(REGION).await;
        assert!(ec2.image(&ids[0]).await.unwrap().lifecycle.protected());
        assert!(ec2.image(&ids[1]).await.is_err(), "Ba is deregistered");
    });
}

/// Bz (protected), Ba (launched once, terminated), Bb: base AMIs of the example project in
/// `region`, oldest first.
fn three_base_amis(region: &str) -> Vec<String> {
    use aws_sdk_ec2::types::Tag;
    rt().block_on(async {
        let ec2 = ec2(region).await;
        let c = ec2.sdk();
        let builder = debian_instance(c).await;
        let mut ids = Vec::new();
        for (i, name) in ["pl-base-1", "pl-base-2", "pl-base-3"].iter().enumerate() {
            let ami = c
                .create_image()
                .instance_id(&builder)
                .name(*name)
                .send()
                .await
                .unwrap()
                .image_id()
                .unwrap()
                .to_string();
            c.create_tags()
                .resources(&ami)
                .tags(
                    Tag::builder()
                        .key("parbake:layer-hash")
                        .value(format!("{i:0>64}"))
                        .build(),
                )
                .tags(
                    Tag::builder()
                        .key("parbake:image")
                        .value("debian12")
                        .build(),
                )
                .tags(
                    Tag::builder()
                        .key("parbake:project")
                        .value("parbake-example")
                        .build(),
                )
                .send()
                .await
                .unwrap();
            ids.push(ami);
        }
        ec2.protect(&ids[0]).await.unwrap();
        let launched = c
            .run_instances()
            .image_id(&ids[1])
            .min_count(1)
            .max_count(1)
            .send()
            .await
            .unwrap();
        let id = launched.instances()[0].instance_id().unwrap();
        c.terminate_instances()
            .instance_ids(id)
            .send()
            .await
            .unwrap();
        ids
    })
}

/// `--unused-for` that is not a duration, or under a day (EC2 updates the last launch time
/// within 24 hours), is refused before anything is read; so is the flag on the local target.
#[test]
fn unused_for_below_a_day_or_on_the_local_target_is_refused() {
    let f = crate::util::Fixture::example();
    for (value, says) in [
        (
            "12h",
            "at least 1d: EC2 updates an AMI's last launch time within 24 hours",
        ),
        ("3x", "a duration such as `30d`"),
    ] {
        f.parbake(&["prune", "--keep", "1", "--unused-for", value])
            .code(1)
            .stderr_contains(says)
            .run();
    }
    let args = [
        "prune",
        "--keep",
        "1",
        "--target",
        "qemu",
        "--unused-for",
        "30d",
    ];
    f.parbake(&args)
        .code(1)
        .stderr_contains("--unused-for does not apply to --target qemu")
        .stderr_contains("hint: ")
        .run();
}

/// A bake with `deprecate_after` (real Packer amazon-ebs against moto): the base layer's AMI is
/// deprecated the image's 90 days after its bake, the stack layer's the stack's 30 days; the
/// layer hashes are those of the same project without it. moto_server.py stand-in 10.
#[test]
fn a_bake_deprecates_each_ami_as_its_image_or_stack_says() {
    const REGION: &str = "me-south-1";
    let p = AwsProject::example(REGION, "Asia/Bahrain");
    let plain = p.json(&["plan", "web", "--target", "aws", "--json"]);
    p.f.replace(
        "images/debian12.yml",
        "    instance_type: t3.small",
        "    instance_type: t3.small\n    deprecate_after: 90d",
    );
    p.f.append("images/stacks/web.yml", "deprecate_after: 30d\n");
    let planned = p.json(&["plan", "web", "--target", "aws", "--json"]);
    assert_eq!(plain["layers"], planned["layers"], "not in the layer hash");
    let started = now();
    let bake = p.json(&[
        "bake",
        "web",
        "--target",
        "aws",
        "--promote",
        "nginx",
        "--json",
    ]);
    let layers = bake["layers"].as_array().unwrap();
    assert!(layers.len() >= 2, "{bake}");
    let deprecation = |ami: &str| -> u64 {
        rt().block_on(async {
            let a = ec2(REGION).await.image(ami).await.unwrap();
            let t = a.lifecycle.deprecation_time.expect("a deprecation time");
            parbake::targets::aws::ami::epoch_of(&t).unwrap()
        })
    };
    let base = deprecation(layers[0]["image"].as_str().unwrap());
    let stack = deprecation(layers.last().unwrap()["image"].as_str().unwrap());
    let done = now();
    let within =
        |t: u64, days: u64| (started + days * 86_400..=done + days * 86_400 + 60).contains(&t);
    assert!(
        within(base, 90),
        "base layer: {base}, baked {started}..{done}"
    );
    assert!(
        within(stack, 30),
        "stack layer: {stack}, baked {started}..{done}"
    );
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The Allowed AMIs preflight against moto (stand-in 8 answering this region's settings):
/// enabled criteria that admit only another account's AMIs refuse the Debian source before Packer
/// starts, with a hint; in audit mode the bake goes on with a warning (`--dry-run` here).
#[test]
fn a_source_ami_the_allowed_amis_settings_refuse_stops_the_bake_before_packer() {
    const REGION: &str = "af-south-1";
    let p = AwsProject::example(REGION, "Africa/Johannesburg");
    let settings = |state: &str| {
        let dir = moto().console_dir.join(REGION);
        std::fs::create_dir_all(&dir).unwrap();
        let json = serde_json::json!({
            "State": state,
            "ImageCriteria": [{"ImageProviders": ["111122223333"]}],
            "ManagedBy": "account",
        });
        std::fs::write(dir.join("allowed-images.json"), json.to_string()).unwrap();
    };
    settings("enabled");
    let stderr = p.fails(&["bake", "web", "--target", "aws"]);
    for want in [
        "(owner 136693071363) matches none of the account's Allowed AMIs criteria",
        "EC2 refuses to launch it",
        "hint: add a criterion that admits it (e.g. its owner 136693071363 as an image provider)",
    ] {
        assert!(stderr.contains(want), "{want:?} not in {stderr}");
    }
    assert!(!stderr.contains("packer"), "Packer never ran: {stderr}");
    rt().block_on(async {
        let amis = ec2(REGION).await.parbake_amis().await.unwrap();
        assert!(amis.is_empty(), "nothing baked: {amis:?}");
    });
    settings("audit-mode");
    p.parbake(&["bake", "--all", "--target", "aws", "--dry-run"])
        .stderr_contains("warning: source AMI")
        .stderr_contains("they are in audit mode now")
        .run();
}
