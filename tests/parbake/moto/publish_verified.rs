//! Publish asks for a verified AMI with exactly the stack's user-data; rollback moves the
//! default back; images and prune see what publishes each AMI (us-east-1, a base layer of its
//! own).

use parbake::targets::aws::ssm::Ssm;

use super::support::*;

const REGION: &str = "us-east-1";
const TEMPLATE: &str = "worker-fleet-test";
const PARAM: &str = "/parbake/test/worker-ami";

#[test]
fn publish_to_a_launch_template_asks_for_a_verified_ami_and_rollback_moves_the_default_back() {
    let p = AwsProject::new(Fixture::example());
    // a layer no other test bakes (tests share one moto server), and a launch template
    p.f.replace(
        "images/debian12.yml",
        "base_timezone: Etc/UTC",
        "base_timezone: America/Lima",
    );
    p.f.append(
        WORKER,
        &format!("publish:\n  launch_template: {TEMPLATE}\n  ssm_parameter: {PARAM}\n"),
    );
    let older = an_older_ami_nothing_uses();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let bake = p.json(&["bake", "worker", "--target", "aws", "--json"]);
    let ami = bake["layers"][0]["image"].as_str().unwrap().to_string();
    a_verify_with_no_report_terminates_and_tags_no_verdict(&p, &ami);
    publish_is_refused_and_creates_nothing_unverified(&p);
    let ud = publish_is_refused_for_a_verdict_on_other_user_data(&p, &ami);
    publish_creates_version_1_with_that_ami_and_user_data(&p, &ami, &ud);
    publish_unverified_then_rollback_to_version_1(&p, &ami);
    images_names_the_versions_that_publish_the_ami(&p, &ami);
    prune_keeps_what_the_template_and_the_parameter_name(&p, &ami, &older);
}

/// An older parbake AMI of the same image that nothing uses (prune would remove it): its id.
fn an_older_ami_nothing_uses() -> String {
    rt().block_on(async {
        let ec2 = ec2(REGION).await;
        let c = ec2.sdk();
        let amazon = c.describe_images().owners("amazon").send().await.unwrap();
        let id = c
            .copy_image()
            .source_image_id(amazon.images()[0].image_id().unwrap())
            .source_region(REGION)
            .name("parbake-debian12-older-for-publish-test")
            .send()
            .await
            .unwrap()
            .image_id()
            .unwrap()
            .to_string();
        let tags = [
            ("parbake:layer-hash", "e".repeat(64)),
            ("parbake:layer", "debian12".to_string()),
            ("parbake:image", "debian12".to_string()),
            ("parbake:project", "parbake-example".to_string()),
        ];
        let tags: Vec<(String, String)> = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        ec2.tag(&id, &tags).await.unwrap();
        id
    })
}

/// verify on EC2: moto's console never shows the runner's status, so the launch does not
/// report; the instance is terminated all the same and no verdict is tagged.
fn a_verify_with_no_report_terminates_and_tags_no_verdict(p: &AwsProject, ami: &str) {
    p.parbake(&["verify", "worker", "--target", "aws", "--timeout", "6"])
        .code(1)
        .stderr_contains("did not report within 6s")
        .stderr_contains("was terminated; no verdict was recorded")
        .run();
    rt().block_on(async {
        let ec2 = ec2(REGION).await;
        let used = ec2
            .instances_using(&[ami.to_string()].into_iter().collect())
            .await
            .unwrap();
        // (instances_using lists only instances not terminated or shutting down)
        assert!(used.is_empty(), "verify left an instance: {used:?}");
        let (tags, _) = tags_of_image(&ec2, ami).await;
        assert!(!tags.contains_key("parbake:verified-userdata"), "{tags:?}");
    });
}

/// Not verified: refused, and nothing is created.
fn publish_is_refused_and_creates_nothing_unverified(p: &AwsProject) {
    p.parbake(&["publish", "worker", "--target", "aws"])
        .code(1)
        .stderr_contains("has not passed `verify`")
        .stderr_contains("hint:")
        .run();
    rt().block_on(async {
        let ec2 = ec2(REGION).await;
        assert!(ec2.launch_template(TEMPLATE).await.unwrap().is_none());
    });
}

/// Verified with other user-data (the stack's launch settings changed since): refused. Then
/// verify's tag with exactly the user-data `userdata --target aws` gives: that user-data.
fn publish_is_refused_for_a_verdict_on_other_user_data(p: &AwsProject, ami: &str) -> String {
    let ud = p.ok(&["userdata", "worker", "--target", "aws"]);
    let sha = parbake::plan::sha256_hex(ud.as_bytes());
    rt().block_on(async {
        let ec2 = ec2(REGION).await;
        ec2.tag(ami, &[("parbake:verified-userdata".into(), "0".repeat(64))])
            .await
            .unwrap();
    });
    p.parbake(&["publish", "worker", "--target", "aws"])
        .code(1)
        .stderr_contains("it was verified with other user-data")
        .run();
    rt().block_on(async {
        let ec2 = ec2(REGION).await;
        ec2.tag(ami, &[("parbake:verified-userdata".into(), sha.clone())])
            .await
            .unwrap();
    });
    ud
}

async fn ssm() -> Ssm {
    Ssm::connect(
        REGION,
        &Endpoint {
            url: Some(moto().url.clone()),
            static_credentials: Some(("testing".into(), "testing".into())),
        },
    )
    .await
}

/// publish creates the template with that AMI and user-data as version 1, the default, and
/// points the parameter at the AMI.
fn publish_creates_version_1_with_that_ami_and_user_data(p: &AwsProject, ami: &str, ud: &str) {
    let sha = parbake::plan::sha256_hex(ud.as_bytes());
    rt().block_on(async {
        ssm().await.put_ami(PARAM, "ami-00000000").await.unwrap();
    });
    let rep = p.json(&["publish", "worker", "--target", "aws", "--json"]);
    assert_eq!(rep["published"]["version"], 1, "{rep}");
    assert_eq!(rep["ssm_parameter"]["ami"], ami, "{rep}");
    rt().block_on(async {
        let got = ssm().await.get(PARAM).await.unwrap();
        assert_eq!(got.as_deref(), Some(ami));
    });
    assert_eq!(rep["published"]["ami"], ami);
    assert_eq!(rep["verified"], true);
    assert!(rep["previous_default"].is_null());
    // the published default carries deregistration protection (moto_server.py stand-in 7)
    assert_eq!(
        rep["protection"]["protected"],
        serde_json::json!([ami]),
        "{rep}"
    );
    rt().block_on(async {
        let a = ec2(REGION).await.image(ami).await.unwrap();
        assert!(a.lifecycle.protected(), "{:?}", a.lifecycle);
    });
    rt().block_on(async {
        let ec2 = ec2(REGION).await;
        let t = ec2.launch_template(TEMPLATE).await.unwrap().unwrap();
        assert_eq!(t.default_version, 1);
        let v = template_version(REGION, TEMPLATE, "1").await;
        let d = v.launch_template_data().unwrap();
        assert_eq!(d.image_id(), Some(ami));
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(d.user_data().unwrap())
            .unwrap();
        assert_eq!(
            bytes,
            ud.as_bytes(),
            "the version holds exactly the user-data"
        );
        assert!(v
            .version_description()
            .unwrap()
            .contains(&format!("userdata={sha} verified")));
    });
}

/// Other user-data (a launch var changed): --unverified publishes it anyway, says so, and
/// becomes the default (the same AMI and user-data again would change nothing). rollback:
/// back to version 1, then nothing earlier.
fn publish_unverified_then_rollback_to_version_1(p: &AwsProject, ami: &str) {
    change_a_launch_var(&p.f, WORKER);
    let rep = p.json(&[
        "publish",
        "worker",
        "--target",
        "aws",
        "--unverified",
        "--json",
    ]);
    assert_eq!(rep["published"]["version"], 2);
    assert_eq!(rep["previous_default"]["version"], 1);
    assert!(rep["published"]["description"]
        .as_str()
        .unwrap()
        .ends_with("verified"));
    let r = p.json(&["rollback", "worker", "--target", "aws", "--json"]);
    assert_eq!(
        (r["from"]["version"].as_i64(), r["to"]["version"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(r["ssm_parameter"]["ami"], ami, "the parameter follows: {r}");
    rt().block_on(async {
        let ec2 = ec2(REGION).await;
        let t = ec2.launch_template(TEMPLATE).await.unwrap().unwrap();
        assert_eq!(t.default_version, 1);
    });
    p.parbake(&["rollback", "worker", "--target", "aws"])
        .code(1)
        .stderr_contains("no parbake-published version before its default")
        .run();
}

/// images shows what publishes each AMI: both versions name it, version 1 is the default.
fn images_names_the_versions_that_publish_the_ami(p: &AwsProject, ami: &str) {
    let regions = p.json(&["images", "--json"]);
    fn find<'a>(nodes: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
        nodes.as_array()?.iter().find_map(|n| {
            if n["id"] == id {
                Some(n)
            } else {
                find(&n["children"], id)
            }
        })
    }
    let node = regions
        .as_array()
        .unwrap()
        .iter()
        .find_map(|r| find(&r["images"], ami))
        .unwrap();
    assert_eq!(
        node["published"],
        serde_json::json!(["worker-fleet-test v1 default", "worker-fleet-test v2"]),
        "{node}"
    );
}

/// `prune --keep 0 --dry-run`'s decision on `ami`.
fn dry_prune_of(p: &AwsProject, ami: &str) -> serde_json::Value {
    let decisions = p.json(&["prune", "--keep", "0", "--dry-run", "--json"]);
    decisions
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ami"] == ami)
        .unwrap()
        .clone()
}

/// prune keeps the AMI the launch template names, and the AMI the SSM parameter names: point
/// it at the older one prune would remove.
fn prune_keeps_what_the_template_and_the_parameter_name(p: &AwsProject, ami: &str, older: &str) {
    let d = dry_prune_of(p, ami);
    assert_eq!(d["action"], "keep", "{d}");
    let kinds: Vec<&str> = d["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"protected"), "{d}");
    let d = dry_prune_of(p, older);
    assert_eq!(d["action"], "remove", "{d}");
    rt().block_on(async {
        ssm().await.put_ami(PARAM, older).await.unwrap();
    });
    let d = dry_prune_of(p, older);
    assert_eq!(
        (d["action"].as_str(), d["why"].as_str()),
        (
            Some("keep"),
            Some("named by SSM parameter /parbake/test/worker-ami")
        ),
        "{d}"
    );
}
