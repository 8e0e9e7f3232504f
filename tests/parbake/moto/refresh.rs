//! A launch-only role edit on EC2: the cached run AMIs are refreshed with real Packer, and
//! `userdata` and `images` follow.

use super::support::*;

const REGION: &str = "ap-northeast-2";

/// `bake web --promote nginx --json`, which must succeed: its report and stderr.
fn bake(p: &AwsProject) -> (serde_json::Value, String) {
    let out = p
        .parbake(&[
            "bake",
            "web",
            "--target",
            "aws",
            "--promote",
            "nginx",
            "--json",
        ])
        .run();
    (out.json(), out.stderr)
}

/// The AMI of layer `i` in a bake report.
fn image(rep: &serde_json::Value, i: usize) -> String {
    rep["layers"][i]["image"].as_str().unwrap().to_string()
}

#[test]
fn a_launch_only_role_edit_refreshes_the_cached_run_amis_with_real_packer_and_userdata_works_on_them(
) {
    let p = AwsProject::example(REGION, "Pacific/Auckland");
    let (first, _) = bake(&p);
    assert_eq!(first["layers"][0]["outcome"], "baked", "{first}");
    assert_eq!(first["layers"][1]["outcome"], "baked", "{first}");

    // identity is launch-only: installed on the base layer, run by no layer
    p.f.append(
        "roles/identity/tasks/main.yml",
        "\n- name: A launch-only edit\n  ansible.builtin.debug:\n    msg: edited\n",
    );
    let second = the_top_run_layer_is_refreshed_from_its_run_ami(&p, &first);
    images_shows_the_refresh_under_its_run_ami(&p, &first, &second);
    userdata_finds_the_refresh_and_refuses_the_run_ami(&p, &first, &second);
    a_role_layer_two_runs_rebakes_it_on_the_run_ami_of_layer_one(&p, &first);
}

/// The second bake: layer 1 stands as it is, layer 2's payload is refreshed as a new AMI from
/// its run AMI, tagged so. Its report.
fn the_top_run_layer_is_refreshed_from_its_run_ami(
    p: &AwsProject,
    first: &serde_json::Value,
) -> serde_json::Value {
    let (second, err) = bake(p);
    // layer 1 is only built on (web's stack layer is the top): its run layer stands as it is
    assert_eq!(second["layers"][0]["outcome"], "cached", "{second}");
    assert_eq!(second["layers"][0]["image"], image(first, 0).as_str());
    assert!(
        err.contains("no stack launches this layer, so its payload is not refreshed"),
        "{err}"
    );
    // the top layer's run is cached: its payload is refreshed, a new AMI from the run AMI
    assert_eq!(second["layers"][1]["outcome"], "refreshed", "{second}");
    assert_ne!(second["layers"][1]["hash"], first["layers"][1]["hash"]);
    assert!(
        err.contains("payload of run layer") && err.contains("refreshed as"),
        "{err}"
    );
    rt().block_on(async {
        let ec2 = ec2(REGION).await;
        let (tags, _) = tags_of_image(&ec2, &image(&second, 1)).await;
        assert_eq!(
            tags["parbake:layer-hash"],
            second["layers"][1]["hash"].as_str().unwrap()
        );
        // built from the cached run layer's AMI, which it names
        assert_eq!(
            tags["parbake:refresh-of"],
            first["layers"][1]["hash"].as_str().unwrap()
        );
        assert_eq!(tags["parbake:parent-ami"], image(first, 1));
        // the run AMI keeps the same run hash, an older payload, and no refresh tag
        let (run_tags, _) = tags_of_image(&ec2, &image(first, 1)).await;
        assert_eq!(tags["parbake:run-hash"].len(), 64);
        assert_eq!(run_tags["parbake:run-hash"], tags["parbake:run-hash"]);
        assert_ne!(
            run_tags["parbake:payload-hash"],
            tags["parbake:payload-hash"]
        );
        assert!(!run_tags.contains_key("parbake:refresh-of"));
    });
    second
}

/// images: the refresh under the run AMI it refreshes; that one's run is current.
fn images_shows_the_refresh_under_its_run_ami(
    p: &AwsProject,
    first: &serde_json::Value,
    second: &serde_json::Value,
) {
    let tree = p.json(&["images", "--json"]);
    let region = tree
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == REGION)
        .unwrap_or_else(|| panic!("{tree}"));
    let base = region["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == image(first, 0).as_str())
        .unwrap_or_else(|| panic!("{region}"));
    let web_run = base["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == image(first, 1).as_str())
        .unwrap_or_else(|| panic!("{base}"));
    assert_eq!(web_run["status"], "run", "{web_run}");
    let refresh = &web_run["children"][0];
    assert_eq!(refresh["id"], second["layers"][1]["image"], "{web_run}");
    assert_eq!(refresh["status"], "current", "{refresh}");
}

/// userdata for the stack finds the refreshed top AMI, whose role tags match today's roles;
/// the run layer's AMI carries the old identity: userdata refuses it, naming the role.
fn userdata_finds_the_refresh_and_refuses_the_run_ami(
    p: &AwsProject,
    first: &serde_json::Value,
    second: &serde_json::Value,
) {
    let top = image(second, 1);
    let out = p
        .parbake(&["userdata", "web", "--target", "aws", "--promote", "nginx"])
        .stderr_contains(&format!("for AMI {top}"))
        .run();
    assert_eq!(
        spec_roles(&launch_spec(&out.stdout)),
        ["python", "webapp", "identity"]
    );
    let err = p.fails(&[
        "userdata",
        "web",
        "--target",
        "aws",
        "--ami",
        &image(first, 1),
    ]);
    assert!(err.contains("role `identity` differs"), "{err}");
}

/// Unchanged: both cached, and a role that layer 2 runs rebakes only layer 2, on the run AMI
/// of layer 1 (not on its refresh).
fn a_role_layer_two_runs_rebakes_it_on_the_run_ami_of_layer_one(
    p: &AwsProject,
    first: &serde_json::Value,
) {
    let (third, _) = bake(p);
    assert_eq!(third["layers"][0]["outcome"], "cached");
    assert_eq!(third["layers"][1]["outcome"], "cached");
    p.f.append("roles/nginx/defaults/main.yml", "\n# changed\n");
    let (fourth, _) = bake(p);
    assert_eq!(fourth["layers"][0]["outcome"], "cached", "{fourth}");
    assert_eq!(fourth["layers"][1]["outcome"], "baked", "{fourth}");
    rt().block_on(async {
        let ec2 = ec2(REGION).await;
        let (tags, _) = tags_of_image(&ec2, &image(&fourth, 1)).await;
        assert_eq!(tags["parbake:parent-ami"], image(first, 0));
        assert!(!tags.contains_key("parbake:refresh-of"));
    });
}
