//! Layer hashes: deterministic, independent of file order and mtimes, and sensitive to
//! exactly the inputs they cover.

use std::time::{Duration, SystemTime};

use parbake::plan::{self, Target};

use crate::util::{copy_dir, plan_of, request, Fixture};

fn hashes(f: &Fixture) -> (String, String) {
    let p = f.plan("web", &["nginx"]);
    (p.layers[0].hash.clone(), p.layers[1].hash.clone())
}

#[test]
fn same_inputs_same_hashes_across_loads_and_copies() {
    let f = Fixture::example();
    let a = hashes(&f);
    assert_eq!(a, hashes(&f));
    // a copy made in another directory, files created in reverse order
    let g = Fixture::bare();
    let mut roles: Vec<_> = std::fs::read_dir(f.root().join("roles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    roles.sort();
    roles.reverse();
    for r in roles {
        copy_dir(&r, &g.root().join("roles").join(r.file_name().unwrap()));
    }
    copy_dir(&f.root().join("images"), &g.root().join("images"));
    assert_eq!(a, hashes(&g));
}

#[test]
fn mtimes_do_not_matter() {
    let f = Fixture::example();
    let a = hashes(&f);
    let file = std::fs::File::options()
        .write(true)
        .open(f.root().join("roles/base/tasks/main.yml"))
        .unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(86_400 * 30))
        .unwrap();
    assert_eq!(a, hashes(&f));
}

#[test]
fn one_byte_in_any_installed_role_changes_every_layer() {
    let f = Fixture::example();
    let (base, stack) = hashes(&f);
    let path = f.root().join("roles/worker/defaults/main.yml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push(' ');
    std::fs::write(&path, text).unwrap();
    let (base2, stack2) = hashes(&f);
    assert_ne!(
        base, base2,
        "worker is installed on the base image even though web does not run it"
    );
    assert_ne!(stack, stack2);
}

#[test]
fn exec_bit_and_file_names_count() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::example();
    let a = hashes(&f);
    let p = f.root().join("roles/base/tasks/main.yml");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    let b = hashes(&f);
    assert_ne!(a, b);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(a, hashes(&f));
    f.write("roles/base/files/extra.txt", "x");
    assert_ne!(a, hashes(&f));
}

#[test]
fn stack_vars_change_only_the_stack_layer_and_launch_vars_change_nothing() {
    let f = Fixture::example();
    let (base, stack) = hashes(&f);
    f.write(
        "images/stacks/web.yml",
        "image: debian12\nroles: [nginx, webapp, identity]\nvars:\n  webapp_workers: 3\n",
    );
    let (base2, stack2) = hashes(&f);
    assert_eq!(base, base2);
    assert_ne!(stack, stack2);
    f.write(
        "images/stacks/web.yml",
        "image: debian12\nroles: [nginx, webapp, identity]\nvars:\n  webapp_workers: 3\nlaunch_vars:\n  environment_name: staging\n",
    );
    assert_eq!((base2, stack2), hashes(&f));
}

#[test]
fn image_vars_change_both_layers() {
    let f = Fixture::example();
    let a = hashes(&f);
    let path = f.root().join("images/debian12.yml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("base_timezone: Etc/UTC", "base_timezone: Europe/Paris");
    std::fs::write(&path, text).unwrap();
    let b = hashes(&f);
    assert_ne!(a.0, b.0);
    assert_ne!(a.1, b.1);
}

#[test]
fn the_packer_template_and_the_source_identity_count() {
    let f = Fixture::example();
    let a = hashes(&f);
    let tpl = f.root().join("packer/qemu.pkr.hcl");
    let mut text = std::fs::read_to_string(&tpl).unwrap();
    text.push_str("\n# changed\n");
    std::fs::write(&tpl, text).unwrap();
    assert_ne!(a, hashes(&f));

    let project = parbake::project::load(f.root()).unwrap();
    let mut req = request("web", &[], Target::Aws);
    req.source_identity = Some("aws:ami-0123".into());
    let one = plan::plan(&project, &req).unwrap().layers[0].hash.clone();
    req.source_identity = Some("aws:ami-0456".into());
    assert_ne!(
        one,
        plan::plan(&project, &req).unwrap().layers[0].hash,
        "a new upstream AMI rebakes"
    );
    // targets hash apart
    assert_ne!(plan_of(&project, "web", &[]).layers[0].hash, one);
}

#[test]
fn the_roles_run_and_their_order_count() {
    let f = Fixture::example();
    let p1 = f.plan("web", &["nginx"]);
    let p2 = f.plan("web", &["webapp"]);
    assert_eq!(p1.layers[0].hash, p2.layers[0].hash);
    assert_ne!(p1.layers[1].hash, p2.layers[1].hash);
}

#[test]
fn a_custom_kernel_command_line_reaches_packer_and_the_hash() {
    let f = Fixture::example();
    let (base, _) = hashes(&f);
    let path = f.root().join("images/debian12.yml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "    ssh_user: debian\n",
        "    ssh_user: debian\n    kernel_append: root=/dev/vda1 rw console=ttyS0\n",
    );
    std::fs::write(&path, text).unwrap();
    let (base2, _) = hashes(&f);
    assert_ne!(base, base2);
    let project = parbake::project::load(f.root()).unwrap();
    let p = plan_of(&project, "web", &[]);
    let files = parbake::render::render_layer(&project, &p, &p.layers[0], &Default::default());
    let vars = files
        .iter()
        .find(|f| f.path == "parbake.pkrvars.json")
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&vars.contents).unwrap();
    assert_eq!(v["kernel_append"], "root=/dev/vda1 rw console=ttyS0");
}
