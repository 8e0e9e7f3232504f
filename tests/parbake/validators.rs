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

/// Issue 21: validate keeps Ansible's home and temp files in its own private temp dir; a
/// directory another user planted at the old fixed path under TMPDIR is never read.
#[test]
fn validate_uses_no_fixed_shared_path_under_tmpdir() {
    let f = Fixture::example();
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("planted-plugin-ran");
    for kind in [
        "connection",
        "become",
        "callback",
        "vars",
        "lookup",
        "filter",
    ] {
        let dir = tmp.path().join("parbake-ansible-home/plugins").join(kind);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["local.py", "sudo.py", "pwn.py"] {
            std::fs::write(
                dir.join(name),
                format!(
                    "open({:?}, 'a').write('{kind}/{name}\\n')\n",
                    marker.display().to_string()
                ),
            )
            .unwrap();
        }
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parbake"))
        .args(["validate", "web", "--target", "qemu"])
        .current_dir(f.root())
        .env("TMPDIR", tmp.path())
        .env(
            "PARBAKE_ANSIBLE_PLAYBOOK",
            crate::util::repo().join(".venv/bin/ansible-playbook"),
        )
        .env(
            "PARBAKE_CLOUD_INIT",
            crate::util::repo().join(".tools/bin/cloud-init"),
        )
        .env_remove("PARBAKE_PROJECT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !marker.exists(),
        "a planted plugin ran: {:?}",
        std::fs::read_to_string(&marker)
    );
    let mut left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["parbake-ansible-home"],
        "no other fixed path under TMPDIR"
    );
    assert!(stderr.contains("using ansible-playbook "), "{stderr}");
}

/// Issue 24, bad input: a project template that Packer refuses. The error names the project's
/// file (the template is its own, overriding parbake's embedded one) with the two ways out;
/// removing the file bakes with the embedded template, which validates.
#[test]
fn validate_names_the_projects_own_template_when_packer_refuses_it() {
    let f = Fixture::example();
    f.replace(
        "packer/qemu.pkr.hcl",
        "  skip_resize_disk = true\n",
        "  skip_resize_disk = true\n  no_such_argument = true\n",
    );
    let r = f.run(&["validate", "web", "--target", "qemu"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("no_such_argument"),
        "Packer's own words: {}",
        r.stderr
    );
    // Packer names its copy and the line: the note says whose lines they are
    let line = 1 + f
        .read("packer/qemu.pkr.hcl")
        .lines()
        .position(|l| l.contains("no_such_argument"))
        .unwrap();
    let at = format!("template.pkr.hcl line {line}");
    assert!(r.stderr.contains(&at), "{at}: {}", r.stderr);
    assert!(
        r.stderr
            .contains("so its line numbers are packer/qemu.pkr.hcl's"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "validation check(s) failed: Packer refused packer/qemu.pkr.hcl, this project's own \
             template, which overrides parbake's embedded one"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: fix packer/qemu.pkr.hcl")
            && r.stderr
                .contains("or remove it to bake with parbake's embedded template"),
        "{}",
        r.stderr
    );
    let json = f.run(&["validate", "web", "--target", "qemu", "--json"]);
    let checks: Vec<serde_json::Value> = serde_json::from_str(&json.stdout).unwrap();
    assert!(checks
        .iter()
        .any(|c| c["ok"] == false && c["project_template"] == "packer/qemu.pkr.hcl"));
    // the embedded template: nothing of the project's is named, and it validates
    std::fs::remove_file(f.root().join("packer/qemu.pkr.hcl")).unwrap();
    let r = f.run(&["validate", "web", "--target", "qemu"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}
