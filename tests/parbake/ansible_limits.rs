//! A role's ansible-core limits are checked at plan, before any bake, against the
//! ansible-core the image runs on the target (its pin, else its Debian base's package:
//! 2.14.18 on Debian 12, 2.19.11 on Debian 13): `galaxy_info.min_ansible_version`, and the
//! builtin modules only some versions have (geerlingguy.docker's `deb822_repository` planned
//! on 2.14.18 and failed at launch with "couldn't resolve module/action").

use crate::util::Fixture;

fn refused(f: &Fixture, args: &[&str]) -> String {
    let r = f.run(args);
    assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);
    r.stderr
}

fn team() -> Fixture {
    let f = Fixture::bare();
    f.role("base", &[]);
    f.role("docker", &[]);
    f.write(
        "roles/docker/tasks/main.yml",
        "- name: Docker's apt source\n  ansible.builtin.deb822_repository:\n    name: docker\n    types: deb\n    uris: https://download.docker.com/linux/debian\n    suites: bookworm\n    components: stable\n",
    );
    f.role("hardening", &[]);
    f.write(
        "roles/hardening/meta/main.yml",
        "galaxy_info:\n  author: someone\n  min_ansible_version: \"2.18\"\ndependencies: []\n",
    );
    f.role("wrapper", &[]);
    f.write(
        "roles/wrapper/tasks/main.yml",
        "- ansible.builtin.include_role:\n    name: docker\n",
    );
    f.image("img", &["base"], &[]);
    f.stack("docker", "img", &["docker"])
        .stack("hard", "img", &["hardening"])
        .stack("wrapped", "img", &["wrapper"]);
    f
}

#[test]
fn a_builtin_module_the_images_ansible_core_lacks_is_refused_at_its_task() {
    let f = team();
    let e = refused(&f, &["plan", "docker"]);
    assert!(
        e.contains("roles/docker/tasks/main.yml:2:3: role `docker` calls ansible.builtin.deb822_repository is in ansible-core 2.15 and later, not 2.14.18 (Debian 12's package, as no `ansible.core` is pinned, on image `img`)"),
        "{e}"
    );
    // through a wrapper that includes it, and on the aws target too
    let e = refused(&f, &["plan", "wrapped", "--target", "aws"]);
    assert!(
        e.contains("role `docker` calls ansible.builtin.deb822_repository"),
        "{e}"
    );
    // a pin that has it, or Debian 13's own package, plans
    f.replace(
        "images/img.yml",
        "basic: [base]",
        "basic: [base]\nansible: {core: \"2.19.14\"}",
    );
    assert_eq!(f.run(&["plan", "docker"]).code, 0);
    f.replace("images/img.yml", "ansible: {core: \"2.19.14\"}", "");
    f.replace("images/img.yml", "parbake:debian-12", "parbake:debian-13");
    let r = f.run(&["plan", "docker"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn min_ansible_version_above_the_images_ansible_core_is_refused_at_its_line() {
    let f = team();
    let e = refused(&f, &["plan", "hard"]);
    assert!(
        e.contains("roles/hardening/meta/main.yml:3:1: field `galaxy_info.min_ansible_version`: role `hardening` needs ansible-core 2.18 or later; image `img` runs 2.14.18"),
        "{e}"
    );
    assert!(e.contains("`ansible: {core: \"X.Y.Z\"}`"), "{e}");
    f.replace(
        "images/img.yml",
        "basic: [base]",
        "basic: [base]\nansible: {core: \"2.18.19\"}",
    );
    let r = f.run(&["plan", "hard"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// `validate` checks with the image's ansible-core (a venv per version, cached), says which,
/// and shows Ansible's warnings in text mode: konstruktoid.hardening and geerlingguy.docker
/// validated `ok` on the host's 2.14.18 while the image pinned a newer one.
#[test]
fn validate_checks_with_the_images_ansible_core_and_says_which() {
    let f = Fixture::bare();
    f.role("base", &[]).role("app", &[]);
    f.image("img", &["base"], &[]).stack("s", "img", &["app"]);
    f.replace(
        "images/img.yml",
        "basic: [base]",
        "basic: [base]\nansible: {core: \"2.19.14\"}",
    );
    let r = f.run(&["validate", "s", "--target", "qemu"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("layer 1 bake.yml, ansible-core 2.19.14, pinned in `ansible.core`")
            && r.stderr
                .contains("launch roles, ansible-core 2.19.14, pinned in `ansible.core`"),
        "{}",
        r.stderr
    );
    // unpinned on Debian 12: the host's 2.14.18 is the image's, named as Debian 12's package
    f.replace("images/img.yml", "ansible: {core: \"2.19.14\"}", "");
    let r = f.run(&["validate", "s", "--target", "qemu"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("ansible-core 2.14.18, Debian 12's package"),
        "{}",
        r.stderr
    );
    // a version with no venv and a Python that cannot run it: refused, saying what to do
    f.replace(
        "images/img.yml",
        "basic: [base]",
        "basic: [base]\nansible: {core: \"2.19.13\"}",
    );
    let cache = tempfile::tempdir().unwrap();
    let r = f
        .parbake(&["validate", "s", "--target", "qemu"])
        .env("PARBAKE_ANSIBLE_CACHE", cache.path())
        .env("PARBAKE_VALIDATE_ANSIBLE", "host")
        .run();
    assert!(
        r.stderr
            .contains("the host's ansible-core 2.14.18, not the image's 2.19.13"),
        "{}",
        r.stderr
    );
}
