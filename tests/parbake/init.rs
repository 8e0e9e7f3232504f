//! `parbake init` on a team's Ansible repository that parbake did not write: an image for a
//! base, a stack per play, what cannot be carried listed; then `plan` works on the result.
//! Bad input exits 1 with the file and line and a hint, and writes nothing.

use std::path::Path;

use crate::util::Test;

/// A small repository in the usual layout: roles/, and a site.yml with two plays.
fn team_repo() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("parbake-team-")
        .tempdir()
        .unwrap();
    for role in ["common", "nginx", "app"] {
        let tasks = dir.path().join(format!("roles/{role}/tasks"));
        std::fs::create_dir_all(&tasks).unwrap();
        let task = format!("- name: {role}\n  ansible.builtin.debug: {{msg: {role}}}\n");
        std::fs::write(tasks.join("main.yml"), task).unwrap();
    }
    write(dir.path(), "site.yml", SITE);
    dir
}

const SITE: &str = "---
- name: web servers
  hosts: web
  vars:
    http_port: 80
  roles:
    - common
    - role: nginx
      when: ansible_os_family == 'Debian'
  tasks:
    - ansible.builtin.include_role:
        name: app
  handlers:
    - name: restart nginx
      ansible.builtin.service: {name: nginx, state: restarted}
- hosts: workers
  serial: 2
  roles: [common, app]
";

fn write(root: &Path, rel: &str, text: &str) {
    std::fs::write(root.join(rel), text).unwrap();
}

#[test]
fn init_from_a_playbook_writes_an_image_and_a_stack_per_play_that_plan() {
    let repo_dir = team_repo();
    let root = repo_dir.path();
    let report = Test::new(root)
        .args(&[
            "init",
            "--base",
            "debian-12",
            "--from",
            "site.yml",
            "--json",
        ])
        .json();
    assert_eq!(
        report["written"],
        serde_json::json!([
            "images/debian12.yml",
            "images/stacks/web.yml",
            "images/stacks/workers.yml"
        ])
    );
    assert_eq!(
        report["stacks"]["web"],
        serde_json::json!(["common", "nginx", "app"])
    );
    let left: Vec<String> = report["not_carried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            format!(
                "{} {}",
                n["at"].as_str().unwrap(),
                n["what"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        left,
        [
            "site.yml:2 `when` on role nginx",
            "site.yml:2 `handlers`",
            "site.yml:16 `serial`"
        ]
    );
    // nothing of parbake's repository is copied: the templates and base recipe are embedded
    for stack in ["web", "workers"] {
        for promote in [&[][..], &["--promote", "common"][..]] {
            let mut args = vec!["plan", stack];
            args.extend(promote);
            Test::new(root)
                .args(&args)
                .stdout_contains("runs at launch")
                .stdout_contains("template: packer/qemu.pkr.hcl (parbake's own, embedded)")
                .run();
        }
    }
    assert!(!root.join("packer").exists() && !root.join("scripts").exists());
}

#[test]
fn init_never_overwrites_and_writes_nothing_when_one_file_exists() {
    let repo_dir = team_repo();
    let root = repo_dir.path();
    std::fs::create_dir_all(root.join("images/stacks")).unwrap();
    write(root, "images/stacks/workers.yml", "mine\n");
    Test::new(root)
        .args(&["init", "--base", "debian-12", "--from", "site.yml"])
        .code(1)
        .stderr_contains("images/stacks/workers.yml exists: init never overwrites a file")
        .stderr_contains("nothing was written")
        .run();
    assert!(!root.join("images/debian12.yml").exists());
    assert!(!root.join("images/stacks/web.yml").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("images/stacks/workers.yml")).unwrap(),
        "mine\n"
    );
}

#[test]
fn init_refuses_each_bad_playbook_with_its_line_and_a_hint() {
    for (text, says) in [
        (
            "hosts: web\n",
            "site.yml:1:1: a playbook is a list of plays",
        ),
        (
            "- hosts: web\n  roles: [common]\n- roles: [app]\n",
            "site.yml:3:1: a play with no `hosts`",
        ),
        (
            "- hosts: web:&prod\n",
            "site.yml:1:1: field `hosts`: `hosts: web:&prod` is a pattern",
        ),
        (
            "- hosts: web\n  roles: [ghost]\n",
            "names role `ghost`, which is in no roles path",
        ),
    ] {
        let repo_dir = team_repo();
        write(repo_dir.path(), "site.yml", text);
        Test::new(repo_dir.path())
            .args(&["init", "--base", "debian-12", "--from", "site.yml"])
            .code(1)
            .stderr_contains(says)
            .stderr_contains("hint:")
            .run();
        assert!(!repo_dir.path().join("images").exists(), "{text}");
    }
}

#[test]
fn init_reads_a_playbook_only_inside_the_repository() {
    let repo_dir = team_repo();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "site.yml", SITE);
    std::os::unix::fs::symlink(
        outside.path().join("site.yml"),
        repo_dir.path().join("link.yml"),
    )
    .unwrap();
    Test::new(repo_dir.path())
        .args(&["init", "--base", "debian-13", "--from", "link.yml"])
        .code(1)
        .stderr_contains("refused to read")
        .run();
}

#[test]
fn a_projects_own_template_overrides_the_embedded_one_and_changes_the_hash() {
    let repo_dir = team_repo();
    let root = repo_dir.path();
    Test::new(root)
        .args(&["init", "--base", "debian-12", "--from", "site.yml"])
        .run();
    let hash = |run: &crate::util::Run| run.json()["layers"][0]["hash"].clone();
    let embedded = Test::new(root).args(&["plan", "web", "--json"]).run();
    assert_eq!(embedded.json()["template"]["origin"], "embedded");
    let mut text = parbake::config::EMBEDDED_TEMPLATES[0].1.to_string();
    text.push_str("\n# the team's own change\n");
    std::fs::create_dir_all(root.join("packer")).unwrap();
    write(root, "packer/qemu.pkr.hcl", &text);
    let own = Test::new(root).args(&["plan", "web", "--json"]).run();
    assert_eq!(own.json()["template"]["origin"], "packer/qemu.pkr.hcl");
    assert_ne!(hash(&own), hash(&embedded));
}

#[test]
fn roles_where_ansible_cfg_says_are_found_and_a_missing_entry_is_a_warning() {
    let repo_dir = team_repo();
    let root = repo_dir.path();
    std::fs::rename(root.join("roles"), root.join("team-roles")).unwrap();
    write(
        root,
        "ansible.cfg",
        "[defaults]\n# the team's roles, then Galaxy's\nroles_path = team-roles:galaxy-roles\n",
    );
    Test::new(root)
        .args(&["init", "--base", "debian-12", "--from", "site.yml"])
        .stdout_contains("stack web: common, nginx, app")
        .run();
    std::fs::create_dir_all(root.join("host_vars")).unwrap();
    Test::new(root)
        .args(&["plan", "web"])
        .stdout_contains("runs at launch (3 roles, in order)")
        .stderr_contains("warning: ansible.cfg:3: roles_path entry `galaxy-roles` does not exist")
        .stderr_contains("warning: host_vars/ is not read: no host is known at bake")
        .run();
    write(
        root,
        "ansible.cfg",
        "[defaults]\nroles_path = /etc/ansible/roles\n",
    );
    Test::new(root)
        .args(&["plan", "web"])
        .code(1)
        .stderr_contains("ansible.cfg:2:1: field `roles_path`: roles_path entry `/etc/ansible/roles` leaves the project")
        .stderr_contains("hint:")
        .run();
}

#[test]
fn a_hostile_playbook_name_never_reaches_a_written_file() {
    let repo_dir = team_repo();
    let root = repo_dir.path();
    let name = "site\nimage: evil\n#.yml";
    std::fs::write(root.join(name), SITE).unwrap();
    Test::new(root)
        .args(&["init", "--base", "debian-12", "--from", name])
        .run();
    for stack in ["web", "workers"] {
        let text =
            std::fs::read_to_string(root.join(format!("images/stacks/{stack}.yml"))).unwrap();
        assert!(!text.contains("evil"), "{text}");
        let def: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(def["image"], "debian12");
    }
}
