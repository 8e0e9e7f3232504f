//! The real validators: packer validate, ansible-playbook --syntax-check and cloud-init schema,
//! run by `parbake validate` on every render of both example stacks.

use crate::util::Fixture;

#[test]
fn validate_passes_on_the_examples_with_every_validator() {
    let r = Fixture::example().run(&["validate", "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let checks: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).unwrap();
    for v in [
        "packer validate",
        "ansible-playbook --syntax-check",
        "cloud-init schema",
    ] {
        let n = checks.iter().filter(|c| c["validator"] == v).count();
        assert!(n >= 8, "{v} ran {n} times");
    }
    for target in ["qemu", "aws"] {
        assert!(checks
            .iter()
            .any(|c| c["subject"].as_str().unwrap().contains(target)));
    }
    assert!(checks.iter().all(|c| c["ok"] == true));
}

#[test]
fn validate_fails_when_a_role_uses_an_unknown_module() {
    let f = Fixture::example();
    f.write(
        "roles/webapp/tasks/main.yml",
        "- name: broken\n  ansible.builtin.no_such_module:\n    x: 1\n",
    );
    let r = f.run(&["validate", "web", "--target", "qemu"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("FAIL ansible-playbook --syntax-check"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("no_such_module"), "{}", r.stderr);
}

#[test]
fn validate_fails_when_the_packer_template_is_wrong() {
    let f = Fixture::example();
    let p = f.root().join("packer/amazon-ebs.pkr.hcl");
    let before = std::fs::read_to_string(&p).unwrap();
    // the source block's argument (an attribute, unlike `variable "instance_type"`)
    let text = before.replacen("  instance_type ", "  instance_typo ", 1);
    assert_ne!(text, before);
    std::fs::write(&p, text).unwrap();
    let r = f.run(&["validate", "worker", "--target", "aws"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("FAIL packer validate"), "{}", r.stderr);
}
