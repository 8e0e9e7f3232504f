//! Packer inputs for one layer: the template from `packer/`, the var-file that fills it in,
//! the `required_plugins` file for Packer 1.7+, and (qemu) the NoCloud seed of the builder VM.

use std::collections::BTreeMap;

use serde_json::json;

use super::{AwsOptions, QemuOptions, RenderOptions, RenderedFile};
use crate::config::{AwsSource, Project, QemuSource};
use crate::plan::{Layer, LayerKind, Plan, Target};

pub const TEMPLATE_FILE: &str = "template.pkr.hcl";
pub const VAR_FILE: &str = "parbake.pkrvars.json";
pub const PLUGINS_FILE: &str = "required_plugins.pkr.hcl";
/// Longest EC2 tag value.
pub const TAG_VALUE_MAX: usize = 256;

pub fn render(
    project: &Project,
    plan: &Plan,
    layer: &Layer,
    opts: &RenderOptions,
) -> Vec<RenderedFile> {
    let image = &project.images[&plan.image];
    let source = "planner checked the source";
    let (template, vars) = match plan.target {
        Target::Qemu => {
            let q = image.def.sources.qemu.as_ref().expect(source);
            (&project.templates.qemu, qemu_vars(q, layer, &opts.qemu))
        }
        Target::Aws => {
            let a = image.def.sources.aws.as_ref().expect(source);
            (
                &project.templates.amazon_ebs,
                aws_vars(project, a, plan, layer, &opts.aws),
            )
        }
    };
    let mut files = vec![
        RenderedFile::text(TEMPLATE_FILE, template.clone()),
        RenderedFile::text(
            VAR_FILE,
            serde_json::to_string_pretty(&vars).expect("vars serialize") + "\n",
        ),
    ];
    if opts.modern_packer {
        files.push(RenderedFile::text(
            PLUGINS_FILE,
            project.templates.required_plugins.clone(),
        ));
    }
    if let (Target::Qemu, Some(q)) = (plan.target, image.def.sources.qemu.as_ref()) {
        files.push(RenderedFile::text(
            "seed/user-data",
            builder_seed(&opts.qemu.ssh_public_key, &q.ssh_user),
        ));
        files.push(RenderedFile::text(
            "seed/meta-data",
            format!(
                "instance-id: parbake-bake-{}\nlocal-hostname: parbake-bake\n",
                layer.short_hash()
            ),
        ));
    }
    files
}

/// The qemu template's variables: the disk to build on (the base disk, or the parent layer's
/// in the store), the kernel, the VM's size and the one-time SSH key.
fn qemu_vars(q: &QemuSource, layer: &Layer, opts: &QemuOptions) -> serde_json::Value {
    let (base_disk, checksum) = match (&opts.build_on, layer.kind) {
        (Some(disk), _) => (disk.clone(), "none".to_string()),
        (None, LayerKind::Base) => (opts.base_disk.clone(), q.checksum.clone()),
        (None, LayerKind::Stack) => (
            format!("{}/{}/disk.qcow2", opts.store_dir, parent_hash(layer)),
            "none".to_string(),
        ),
    };
    json!({
        "layer_name": layer.name,
        "layer_hash": layer.hash,
        "base_disk": base_disk,
        "base_checksum": checksum,
        "kernel": opts.kernel,
        "initrd": opts.initrd,
        "kernel_append": q.kernel_append,
        "accelerator": opts.accelerator,
        "cpus": q.cpus,
        "memory": q.memory_mb,
        "output_directory": "output",
        "vm_name": "disk.qcow2",
        "serial_log": "serial.log",
        "seed_dir": "seed",
        "ssh_user": q.ssh_user,
        "ssh_private_key_file": opts.ssh_private_key_file,
        "payload_dir": "payload",
    })
}

/// The amazon-ebs template's variables: the AMI to build from (the source, or the parent
/// layer's), the AMI's name and tags, the builder's tags and the endpoint.
fn aws_vars(
    project: &Project,
    a: &AwsSource,
    plan: &Plan,
    layer: &Layer,
    opts: &AwsOptions,
) -> serde_json::Value {
    let source_ami = match (&opts.build_on, layer.kind) {
        (Some(ami), _) => ami,
        (None, LayerKind::Base) => &opts.source_ami,
        (None, LayerKind::Stack) => &opts.parent_ami,
    };
    let mut tags = ami_tags(plan, layer, source_ami);
    tags.insert("parbake:source-ami".into(), opts.source_ami.clone());
    tags.insert("parbake:arch".into(), a.source_ami.architecture.clone());
    if let Some(run) = &opts.refresh_of {
        tags.insert("parbake:refresh-of".into(), run.clone());
    }
    tags.extend(opts.extra_ami_tags.iter().cloned());
    let user = user_tags(project, plan, layer);
    with_user_tags(&mut tags, &user);
    let mut run_tags: BTreeMap<String, String> = opts.run_tags.iter().cloned().collect();
    with_user_tags(&mut run_tags, &user);
    run_tags.insert("parbake:layer-hash".into(), layer.hash.clone());
    run_tags.insert("Name".into(), format!("parbake-builder-{}", layer.name));
    let mut vars = json!({
        "layer_name": layer.name,
        "layer_hash": layer.hash,
        "region": a.region,
        "source_ami": source_ami,
        "instance_type": a.instance_type,
        "ssh_user": a.ssh_user,
        "ami_name": ami_name(&a.ami_name, plan, layer) + &opts.ami_name_suffix,
        "ami_regions": a.copy_to_regions,
        "ami_tags": tags,
        "run_tags": run_tags,
        "subnet_id": a.subnet_id.clone().unwrap_or_default(),
        "endpoint_ec2": opts.ec2_endpoint,
        "skip_region_validation": !opts.ec2_endpoint.is_empty(),
        // amazon plugin 1.8+ checks the credentials with STS GetCallerIdentity first, at AWS's
        // STS endpoint; an EC2 stand-in (moto, LocalStack, a private endpoint) has none. Real
        // AWS keeps the check.
        "skip_credential_validation": !opts.ec2_endpoint.is_empty(),
        "payload_dir": "payload",
        "manifest_output": "packer-manifest.json",
    });
    let map = vars.as_object_mut().expect("an object");
    map.extend(production_vars(a, opts));
    vars
}

/// The production settings' variables (builder networking, encryption, root volume): JSON
/// values from the checked source, each left at the template's default when not set.
fn production_vars(a: &AwsSource, opts: &AwsOptions) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        m.insert(k.to_string(), v);
    };
    if let Some(i) = a.ssh_interface {
        put("ssh_interface", json!(i.packer()));
    }
    if let Some(p) = &a.builder_instance_profile {
        put("builder_instance_profile", json!(p));
    }
    if !a.security_group_ids.is_empty() {
        put("security_group_ids", json!(a.security_group_ids));
    }
    if !a.ssh_source_cidrs.is_empty() {
        put("ssh_source_cidrs", json!(a.ssh_source_cidrs));
    }
    if let Some(v) = &a.vpc_id {
        put("vpc_id", json!(v));
    }
    if !a.vpc_filter.is_empty() {
        put("vpc_filters", json!(a.vpc_filter));
    }
    if !a.subnet_filter.is_empty() {
        put("subnet_filters", json!(a.subnet_filter));
    }
    if let Some(e) = &a.encrypt {
        put("encrypt_boot", json!(true));
        if let Some(k) = &e.kms_key_id {
            put("kms_key_id", json!(k));
        }
    }
    if let Some(v) = &a.volume {
        let (iops, throughput) = v.effective();
        put(
            "root_volumes",
            json!([{
                "device_name": opts.root_device,
                "volume_type": v.kind.as_str(),
                "volume_size": v.size_gb,
                "iops": iops,
                "throughput": throughput,
            }]),
        );
    }
    m
}

/// The user's tags for this layer's AMI: the image's, and over them the stack's on a stack
/// layer (a base layer is shared by the image's stacks).
fn user_tags(project: &Project, plan: &Plan, layer: &Layer) -> BTreeMap<String, String> {
    let stack = (layer.kind == LayerKind::Stack).then_some(plan.stack.as_str());
    crate::config::aws_settings::user_tags(project, &plan.image, stack)
}

/// Adds the user's tags where parbake sets none of its own (config refuses `parbake:` keys;
/// parbake's builder `Name` stays).
fn with_user_tags(tags: &mut BTreeMap<String, String>, user: &BTreeMap<String, String>) {
    for (k, v) in user {
        tags.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// The builder VM's NoCloud user-data: one login for Packer with the key made for this bake.
/// Serialized, so the key and the (validated) user name stay values.
fn builder_seed(public_key: &str, ssh_user: &str) -> String {
    let config = json!({
        "ssh_authorized_keys": [public_key],
        "ssh_pwauth": false,
        "users": ["default"],
        "system_info": {"default_user": {"name": ssh_user}},
    });
    "#cloud-config\n# parbake builder VM: lets Packer log in once with a key made for this bake.\n"
        .to_string()
        + &serde_yaml::to_string(&config).expect("seed serializes")
}

fn parent_hash(layer: &Layer) -> &str {
    layer.parent.strip_prefix("layer:").unwrap_or(&layer.parent)
}

/// Fills `{image}`, `{layer}` and `{hash}` (12 hex) in the configured AMI name.
pub fn ami_name(template: &str, plan: &Plan, layer: &Layer) -> String {
    template
        .replace("{image}", &plan.image)
        .replace("{layer}", &layer.name)
        .replace("{hash}", layer.short_hash())
}

/// The tags every AMI and snapshot of a layer carries: they are the registry that cache
/// lookups, `parbake userdata --ami`, `images` and `prune` read.
pub fn ami_tags(plan: &Plan, layer: &Layer, parent_ami: &str) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    tags.insert("parbake:layer-hash".into(), layer.hash.clone());
    tags.insert("parbake:run-hash".into(), layer.run_hash.clone());
    tags.insert("parbake:payload-hash".into(), layer.payload_hash.clone());
    tags.insert("parbake:layer".into(), layer.name.clone());
    tags.insert("parbake:layer-index".into(), layer.index.to_string());
    tags.insert("parbake:image".into(), plan.image.clone());
    if layer.kind == LayerKind::Stack {
        tags.insert("parbake:stack".into(), plan.stack.clone());
        tags.insert(
            "parbake:parent-layer".into(),
            parent_hash(layer).to_string(),
        );
    }
    tags.insert("parbake:parent-ami".into(), parent_ami.to_string());
    tags.insert(
        "parbake:manifest-format".into(),
        crate::contract::manifest::MANIFEST_FORMAT.to_string(),
    );
    tags.insert("parbake:version".into(), plan.parbake_version.clone());
    tags.insert("parbake:baked".into(), layer.baked.join(","));
    // the rest of the hash inputs, so the next bake of this layer can say what changed
    let inputs: Vec<String> = crate::plan::TAGGED_INPUTS
        .iter()
        .filter_map(|k| layer.inputs.get(*k).map(|v| format!("{k}={v}")))
        .collect();
    let mut joined = inputs.join(";");
    if joined.len() > TAG_VALUE_MAX {
        // a very long `runs` list: keep the digests, which always fit
        joined = inputs[1..].join(";");
    }
    tags.insert("parbake:inputs".into(), joined);
    // installed roles with 16-hex hash prefixes, split over as many tags as needed
    let entries: Vec<String> = plan
        .installed
        .iter()
        .map(|(r, h)| format!("{r}={}", &h.trim_start_matches("sha256:")[..16]))
        .collect();
    let mut chunk = String::new();
    let mut n = 0;
    for e in entries {
        if !chunk.is_empty() && chunk.len() + 1 + e.len() > TAG_VALUE_MAX {
            n += 1;
            tags.insert(format!("parbake:installed-{n}"), std::mem::take(&mut chunk));
        }
        if !chunk.is_empty() {
            chunk.push(',');
        }
        chunk.push_str(&e);
    }
    if !chunk.is_empty() {
        n += 1;
        tags.insert(format!("parbake:installed-{n}"), chunk);
    }
    tags
}
