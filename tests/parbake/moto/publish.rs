//! Publish to a team's launch template, all or nothing, and rollback's refusals.

use super::support::*;

const UNVERIFIED: &[&str] = &[
    "publish",
    "worker",
    "--target",
    "aws",
    "--unverified",
    "--json",
];

/// Publish is all or nothing: when SSM PutParameter fails after the launch template moved, the
/// template is put back (a template the publish created is deleted; otherwise the default
/// returns to the version before and the added version is deleted), and the error says so.
/// moto has no DeleteLaunchTemplateVersions: tests/fixtures/moto_server.py adds a stand-in.
#[test]
fn publish_that_fails_at_ssm_puts_the_launch_template_back_and_says_so() {
    const REGION: &str = "eu-central-1";
    const PARAM: &str = "/parbake/test/undo-ami";
    let (p, ami) = baked_worker_publishing(
        REGION,
        "Europe/Oslo",
        &format!("publish:\n  launch_template: undo-fleet-test\n  ssm_parameter: {PARAM}\n"),
    );
    let publish = || p.parbake(&["publish", "worker", "--target", "aws", "--unverified"]);
    let template = || {
        rt().block_on(async {
            ec2(REGION)
                .await
                .launch_template("undo-fleet-test")
                .await
                .unwrap()
        })
    };
    // the first publish creates the template; SSM refuses: the template goes again
    rt().block_on(jam_parameter(REGION, PARAM, "ami-00000000"));
    publish()
        .code(1)
        .stderr_contains(
            "SSM PutParameter in eu-central-1 failed: ParameterMaxVersionLimitExceeded",
        )
        .stderr_contains(
            "the publish of stack worker was undone: launch template undo-fleet-test (lt-",
        )
        .stderr_contains("which it created, was deleted")
        .run();
    assert_eq!(
        template(),
        None,
        "the template the failed publish created is gone"
    );
    // SSM takes it: version 1 is the default
    rt().block_on(async {
        ssm_sdk(REGION)
            .await
            .delete_parameter()
            .name(PARAM)
            .send()
            .await
            .unwrap();
    });
    publish().run();
    assert_eq!(template().unwrap().default_version, 1);
    // a second publish (other user-data: a launch var changed) adds version 2 and makes it the
    // default; SSM refuses: version 1 is the default again, version 2 is gone, and the
    // parameter still names the AMI of version 1
    change_a_launch_var(&p.f, WORKER);
    rt().block_on(jam_parameter(REGION, PARAM, &ami));
    publish()
        .code(1)
        .stderr_contains("ParameterMaxVersionLimitExceeded")
        .stderr_contains(
            "the publish of stack worker was undone: launch template undo-fleet-test's default is version 1 again, as before; version 2, which it added, was deleted",
        )
        .run();
    let t = template().unwrap();
    assert_eq!(t.default_version, 1);
    assert_eq!(
        t.versions.iter().map(|v| v.number).collect::<Vec<_>>(),
        [1],
        "the version the failed publish added is gone, so no rollback lands on it"
    );
    assert_eq!(t.versions[0].image_id.as_deref(), Some(ami.as_str()));
}

/// A launch template belongs to one stack, on EC2 too (stacks of different projects, or a
/// template made before this rule): rollback refuses a template that holds another stack's
/// versions or carries another stack's `parbake:stack` tag, and moves nothing.
#[test]
fn rollback_refuses_a_launch_template_of_another_stack_and_moves_nothing() {
    const REGION: &str = "eu-north-1";
    let p = AwsProject::example(REGION, "Europe/Stockholm");
    templates_of_worker(REGION);
    let default_of = |name: &str| {
        rt().block_on(async {
            ec2(REGION)
                .await
                .launch_template(name)
                .await
                .unwrap()
                .unwrap()
                .default_version
        })
    };
    for (template, why) in [
        ("shared-fleet-test", "its version 1 was published for it"),
        ("worker-tagged-test", "its tag parbake:stack=worker"),
    ] {
        // web publishes to it
        let web = std::fs::read_to_string(repo().join("images/stacks/web.yml")).unwrap();
        p.f.write(
            "images/stacks/web.yml",
            &format!("{web}publish:\n  launch_template: {template}\n"),
        );
        let before = default_of(template);
        p.parbake(&["rollback", "web", "--target", "aws"])
            .code(1)
            .stderr_contains(&format!(
                "launch template {template} in eu-north-1 belongs to stack worker ({why}), not to stack web; nothing was changed"
            ))
            .stderr_contains("hint: a launch template belongs to one stack")
            .run();
        assert_eq!(
            default_of(template),
            before,
            "{template}: the default did not move"
        );
    }
}

/// Two launch templates that are worker's: `shared-fleet-test`, where worker published
/// version 1 and web version 2, the default; and `worker-tagged-test`, which parbake created
/// for worker (its tag), with a hand-made version.
fn templates_of_worker(region: &str) {
    use aws_sdk_ec2::types::{
        InstanceType, RequestLaunchTemplateData, ResourceType, Tag, TagSpecification,
    };
    let desc = |stack: &str| {
        format!(
            "parbake stack={stack} layer=0123456789abcdef userdata={} verified",
            "0".repeat(64)
        )
    };
    let data = || {
        RequestLaunchTemplateData::builder()
            .instance_type(InstanceType::T3Small)
            .build()
    };
    rt().block_on(async {
        let ec2 = ec2(region).await;
        let c = ec2.sdk();
        let id = c
            .create_launch_template()
            .launch_template_name("shared-fleet-test")
            .version_description(desc("worker"))
            .launch_template_data(data())
            .send()
            .await
            .unwrap()
            .launch_template()
            .unwrap()
            .launch_template_id()
            .unwrap()
            .to_string();
        c.create_launch_template_version()
            .launch_template_id(&id)
            .version_description(desc("web"))
            .launch_template_data(data())
            .send()
            .await
            .unwrap();
        ec2.set_default_version(&id, 2).await.unwrap();
        c.create_launch_template()
            .launch_template_name("worker-tagged-test")
            .version_description("by hand")
            .launch_template_data(data())
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::LaunchTemplate)
                    .tags(Tag::builder().key("parbake:stack").value("worker").build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
}

/// Publishing to a team's hand-made launch template keeps its settings: the new version is
/// based on the default (SourceVersion; moto ignores it, so `moto_server.py` stands in for
/// EC2's documented merge) and replaces only the AMI and the user-data.
#[test]
fn publish_keeps_the_fleets_launch_settings_of_a_hand_made_default() {
    const REGION: &str = "eu-north-1";
    let (p, ami) = baked_worker_publishing(
        REGION,
        "Europe/Stockholm",
        "publish:\n  launch_template: worker-handmade\n",
    );
    a_hand_made_template(REGION);
    let rep = p.json(UNVERIFIED);
    assert_eq!(rep["published"]["version"], 2, "{rep}");
    rt().block_on(async {
        let v = &template_version(REGION, "worker-handmade", "$Default").await;
        assert_eq!(v.version_number(), Some(2));
        let data = v.launch_template_data().unwrap();
        assert_eq!(data.image_id(), Some(ami.as_str()));
        assert!(data.user_data().is_some_and(|u| !u.is_empty()));
        assert_eq!(data.instance_type().map(|t| t.as_str()), Some("m5.large"));
        assert_eq!(data.security_group_ids(), ["sg-0fleet"]);
        assert_eq!(
            data.iam_instance_profile().and_then(|p| p.name()),
            Some("worker-fleet")
        );
        assert_eq!(
            data.metadata_options()
                .and_then(|m| m.http_tokens())
                .map(|t| t.as_str()),
            Some("required")
        );
    });
    // publishing it again is a no-op that says so
    let again = p.json(UNVERIFIED);
    assert_eq!(again["unchanged"], true, "{again}");
    assert_eq!(again["published"]["version"], 2, "{again}");
    p.parbake(&["publish", "worker", "--target", "aws", "--unverified"])
        .stdout_contains("nothing changed")
        .run();
    rollback_passes_over_a_hand_made_default(&p, REGION);
}

/// The team's template `worker-handmade`: its own instance type, group, profile and IMDSv2.
fn a_hand_made_template(region: &str) {
    use aws_sdk_ec2::types::{
        LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
        LaunchTemplateInstanceMetadataOptionsRequest, RequestLaunchTemplateData,
    };
    rt().block_on(async {
        ec2(region)
            .await
            .sdk()
            .create_launch_template()
            .launch_template_name("worker-handmade")
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .image_id("ami-0123456789abcdef0")
                    .instance_type(aws_sdk_ec2::types::InstanceType::M5Large)
                    .security_group_ids("sg-0fleet")
                    .iam_instance_profile(
                        LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                            .name("worker-fleet")
                            .build(),
                    )
                    .metadata_options(
                        LaunchTemplateInstanceMetadataOptionsRequest::builder()
                            .http_tokens(LaunchTemplateHttpTokensState::Required)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
}

/// A hand-made version 3 becomes the default, then parbake publishes version 4 (a launch var
/// changed): rollback passes over version 3 and says so, and lands on version 2 only with
/// --unverified, since it was published unverified.
fn rollback_passes_over_a_hand_made_default(p: &AwsProject, region: &str) {
    rt().block_on(async {
        let c = ec2(region).await;
        let t = c.launch_template("worker-handmade").await.unwrap().unwrap();
        c.sdk()
            .create_launch_template_version()
            .launch_template_id(&t.id)
            .source_version("2")
            .version_description("by hand")
            .launch_template_data(
                aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                    .image_id("ami-0123456789abcdef0")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        c.set_default_version(&t.id, 3).await.unwrap();
    });
    change_a_launch_var(&p.f, WORKER);
    let v4 = p.json(UNVERIFIED);
    assert_eq!(v4["published"]["version"], 4, "{v4}");
    let err = p.fails(&["rollback", "worker", "--target", "aws"]);
    assert!(
        err.contains("version 2, which was published unverified") && err.contains("--unverified"),
        "{err}"
    );
    let r = p.json(&[
        "rollback",
        "worker",
        "--target",
        "aws",
        "--unverified",
        "--json",
    ]);
    assert_eq!(r["to"]["version"], 2, "{r}");
    assert_eq!(r["skipped"], serde_json::json!([3]), "{r}");
}

/// An SSM client on moto, for what parbake never does itself (labels, deletes).
async fn ssm_sdk(region: &str) -> aws_sdk_ssm::Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .load()
        .await;
    let conf = aws_sdk_ssm::config::Builder::from(&shared)
        .endpoint_url(&moto().url)
        .credentials_provider(aws_sdk_ssm::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}

/// Makes the next PutParameter on `name` fail, as real SSM does: the parameter holds 100
/// versions (SSM's limit) and its oldest has a label, so it cannot make room
/// (ParameterMaxVersionLimitExceeded). GetParameter still answers.
async fn jam_parameter(region: &str, name: &str, value: &str) {
    let c = ssm_sdk(region).await;
    let mut version = 0;
    for _ in 0..100 {
        version = c
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .unwrap()
            .version();
    }
    c.label_parameter_version()
        .name(name)
        .parameter_version(version - 99)
        .labels("pinned")
        .send()
        .await
        .unwrap();
}
