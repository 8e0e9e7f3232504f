//! The checks each config file kind gets after parsing: an image file, a stack file, their
//! sources, and a role's `meta/parbake.yml`. Loading (in `mod.rs`) calls these.

use std::collections::BTreeMap;

use super::model::{self, AwsSource, ImageFile, QemuSource, StackFile};
use super::{
    aws_settings, distribute, duration, health_checks, names, unknown_at, vars, ConfigError, Image,
    Role, SourceFile, Stack, VendoredContent,
};

fn unknown_role(
    file: &SourceFile,
    field: &str,
    role: &str,
    roles: &BTreeMap<String, Role>,
    vendored: Option<&VendoredContent>,
) -> ConfigError {
    if let Some((message, hints)) = super::vendored::collection_role_problem(role, vendored) {
        let mut err = file.error_for(field, Some(role), message);
        err.hints = hints;
        return err.into();
    }
    let known: Vec<String> = roles.keys().cloned().collect();
    let err = file.error_for(field, Some(role), format!("unknown role `{role}`"));
    unknown_at(err, role, &known, "role")
}

pub(super) fn check_image(
    name: String,
    file: SourceFile,
    def: ImageFile,
    roles: &BTreeMap<String, Role>,
    vendored: Option<&VendoredContent>,
) -> Result<Image, ConfigError> {
    for (field, list) in [
        ("basic", &def.basic),
        ("launch_only", &def.launch_only),
        ("installed", def.installed.as_ref().unwrap_or(&Vec::new())),
    ] {
        for role in list {
            if !roles.contains_key(role) {
                return Err(unknown_role(&file, field, role, roles, vendored));
            }
        }
    }
    if def.sources.qemu.is_none() && def.sources.aws.is_none() {
        return Err(file
            .error_for("sources", None, "no source: add `qemu:` and/or `aws:`")
            .into());
    }
    if let Some(a) = &def.ansible {
        check_ansible_pin(&file, &a.core)?;
        check_pin_runs_on_python(&file, &a.core, &def.sources)?;
    }
    let installed: Vec<String> = match &def.installed {
        Some(list) => {
            let mut l = list.clone();
            l.sort();
            l.dedup();
            l
        }
        None => roles.keys().cloned().collect(),
    };
    for role in def.basic.iter().chain(&def.launch_only) {
        if !installed.contains(role) {
            let field = if def.basic.contains(role) {
                "basic"
            } else {
                "launch_only"
            };
            return Err(file
                .error_for(
                    field,
                    Some(role),
                    format!("role `{role}` is not in `installed`"),
                )
                .with_hint("add it to `installed`, or omit `installed` to install every role")
                .into());
        }
    }
    for role in &def.basic {
        if def.launch_only.contains(role) {
            return Err(file
                .error_for(
                    "basic",
                    Some(role),
                    format!("role `{role}` is both basic and launch_only"),
                )
                .with_hint("a launch-only role is never baked; remove it from `basic`")
                .into());
        }
    }
    check_sources(&file, &def.sources)?;
    check_staging(&file, &def.staging, &installed, &format!("image `{name}`"))?;
    let vars = vars::check(&file, "vars", &def.vars, false)?;
    let launch_vars = vars::check(&file, "launch_vars", &def.launch_vars, true)?;
    if let Some((a, d)) = def
        .sources
        .aws
        .as_ref()
        .and_then(|a| Some((a, a.distribute.as_ref()?)))
    {
        distribute::check(&file, "sources.aws.distribute", d, a, &[&launch_vars])?;
    }
    Ok(Image {
        name,
        file,
        def,
        installed,
        vars,
        launch_vars,
    })
}

pub(super) fn check_stack(
    name: String,
    file: SourceFile,
    def: StackFile,
    images: &BTreeMap<String, Image>,
    roles: &BTreeMap<String, Role>,
    vendored: Option<&VendoredContent>,
) -> Result<Stack, ConfigError> {
    let Some(image) = images.get(&def.image) else {
        let known: Vec<String> = images.keys().cloned().collect();
        let err = file.error_for("image", None, format!("unknown image `{}`", def.image));
        return Err(unknown_at(err, &def.image, &known, "image"));
    };
    for (field, list) in [("roles", &def.roles), ("promote", &def.promote)] {
        for role in list {
            if !roles.contains_key(role) {
                return Err(unknown_role(&file, field, role, roles, vendored));
            }
            if !image.installed.contains(role) {
                return Err(file
                    .error_for(
                        field,
                        Some(role),
                        format!("role `{role}` is not installed on image `{}`", image.name),
                    )
                    .with_hint(format!("add it to `installed` in {}", image.file.display))
                    .into());
            }
        }
    }
    let on = format!("image `{}`", image.name);
    check_staging(&file, &def.staging, &image.installed, &on)?;
    let vars = vars::check(&file, "vars", &def.vars, false)?;
    let launch_vars = vars::check(&file, "launch_vars", &def.launch_vars, true)?;
    let launch_timeout_s = check_launch_timeout(&file, def.launch_timeout.as_ref())?;
    let launch_facts = check_launch_facts(&file, def.launch_facts.as_ref())?;
    let checks = health_checks::check_checks(&file, &def.checks)?;
    if let Some(p) = &def.publish {
        if !names::valid_launch_template_name(&p.launch_template) {
            return Err(file
                .error_for("publish.launch_template", None, format!("{:?} is not a launch template name", p.launch_template))
                .with_hint("EC2 takes 3 to 128 letters, digits and `().-/_`, e.g. `launch_template: web-fleet`")
                .into());
        }
        if let Some(name) = &p.ssm_parameter {
            if let Some(why) = names::ssm_parameter_problem(name) {
                return Err(file
                    .error_for("publish.ssm_parameter", None, format!("{name:?} is not an SSM parameter name: {why}"))
                    .with_hint("write a path such as `/parbake/web/ami`: `/`, then letters, digits and `_.-/`, at most 15 levels and 1011 characters, no trailing `/`, not under /aws or /ssm")
                    .into());
            }
        }
    }
    let image_tags = image.def.sources.aws.as_ref().map(|a| a.tags.clone());
    aws_settings::check_stack_tags(&file, &def.tags, &image_tags.unwrap_or_default())?;
    aws_settings::check_deprecate_after(&file, "deprecate_after", def.deprecate_after.as_deref())?;
    check_stack_distribute(&file, &def, image, &launch_vars)?;
    Ok(Stack {
        name,
        file,
        def,
        vars,
        launch_vars,
        launch_timeout_s,
        launch_facts,
        checks,
    })
}

/// A stack's `distribute` (its own, or the image's it inherits): an aws image, and no public
/// share with a secret among the launch vars (the image's and the stack's).
fn check_stack_distribute(
    file: &SourceFile,
    def: &StackFile,
    image: &Image,
    launch_vars: &vars::Vars,
) -> Result<(), ConfigError> {
    let aws = image.def.sources.aws.as_ref();
    let all = [&image.launch_vars, launch_vars];
    match (&def.distribute, aws) {
        (Some(_), None) => Err(file
            .error_for("distribute", None, format!("`distribute` needs an aws source, and image `{}` has none", image.name))
            .with_hint("distribution copies and shares AMIs: add `aws:` to the image's sources, or drop `distribute`")
            .into()),
        (Some(d), Some(a)) => distribute::check(file, "distribute", d, a, &all),
        (None, Some(a)) if a.distribute.as_ref().is_some_and(|d| d.public) => {
            inherited_public(file, &image.file.display, launch_vars)
        }
        _ => Ok(()),
    }
}

/// The image's `public: true` reaches this stack: none of its own launch vars may be a secret.
fn inherited_public(
    file: &SourceFile,
    image_file: &str,
    launch_vars: &vars::Vars,
) -> Result<(), ConfigError> {
    let secret = launch_vars
        .iter()
        .find(|(_, v)| matches!(v, vars::VarValue::Secret(_)));
    match secret {
        Some((name, _)) => Err(file
            .error_for(&format!("launch_vars.{name}"), None, format!("a secret launch var (`{name}`) on a stack whose AMIs are public (`public: true` in {image_file})"))
            .with_hint("keep secrets off public stacks: give this stack its own `distribute:` without `public: true`, or drop the `!secret`")
            .into()),
        None => Ok(()),
    }
}

/// Ansible's `gather_subset` names: `all`, `min` and its fact collectors' names (ansible-core
/// 2.14's `default_collectors`), each also with `!` in front.
const FACT_SUBSETS: [&str; 29] = [
    "all",
    "min",
    "apparmor",
    "caps",
    "chroot",
    "cmdline",
    "date_time",
    "distribution",
    "dns",
    "env",
    "facter",
    "fibre_channel_wwn",
    "fips",
    "hardware",
    "iscsi",
    "loadavg",
    "local",
    "lsb",
    "network",
    "nvme",
    "ohai",
    "pkg_mgr",
    "platform",
    "python",
    "selinux",
    "service_mgr",
    "ssh_pub_keys",
    "user",
    "virtual",
];

/// `launch_facts`: `all` (the default: `None`), `none` (an empty list), one subset name, or a
/// non-empty list of them.
fn check_launch_facts(
    file: &SourceFile,
    value: Option<&serde_yaml::Value>,
) -> Result<Option<Vec<String>>, ConfigError> {
    use serde_yaml::Value;
    let checked = match value {
        None => return Ok(None),
        Some(Value::String(s)) if s == "all" => return Ok(None),
        Some(Value::String(s)) if s == "none" => return Ok(Some(Vec::new())),
        Some(one @ Value::String(_)) => fact_subset(one).map(|s| vec![s]),
        Some(Value::Sequence(items)) if items.is_empty() => {
            Err("an empty list gathers nothing: write `none`".to_string())
        }
        Some(Value::Sequence(items)) => items.iter().map(fact_subset).collect(),
        Some(_) => Err("the launch's facts are `all`, `min`, `none` or a list of subsets".into()),
    };
    checked.map(Some).map_err(|problem| {
        file.error_for("launch_facts", None, problem)
            .with_hint(format!(
                "write `launch_facts: min` (hostname, distribution, date and time, user), `none`, or a list of Ansible's gather_subset names such as `[min, chroot, network]` ({}; each also with `!` in front); omit it for all facts",
                FACT_SUBSETS[2..].join(", ")
            ))
            .into()
    })
}

/// One `gather_subset` name of `launch_facts`, `!` allowed.
fn fact_subset(item: &serde_yaml::Value) -> Result<String, String> {
    match item.as_str() {
        Some(s) if FACT_SUBSETS.contains(&s.trim_start_matches('!')) => Ok(s.to_string()),
        Some(s) => Err(format!("{s:?} is not a fact subset")),
        None => Err("each fact subset is a name such as `network`".to_string()),
    }
}

/// A launch's timeout when the stack file sets none: a launch that takes longer is broken.
pub const DEFAULT_LAUNCH_TIMEOUT_S: u64 = 3600;
const LAUNCH_TIMEOUT_MIN_S: u64 = 60;
/// The longest `launch_timeout`; parbake-launch.service's TimeoutStartSec allows it and a margin.
pub const LAUNCH_TIMEOUT_MAX_S: u64 = 24 * 3600;

/// `launch_timeout`: a duration with units (`20m`, `1h30m`, `90s`), 1m to 24h.
fn check_launch_timeout(
    file: &SourceFile,
    value: Option<&serde_yaml::Value>,
) -> Result<u64, ConfigError> {
    let Some(value) = value else {
        return Ok(DEFAULT_LAUNCH_TIMEOUT_S);
    };
    let problem = match value.as_str().map(|s| (s, duration::parse_duration(s))) {
        Some((_, Some(s))) if (LAUNCH_TIMEOUT_MIN_S..=LAUNCH_TIMEOUT_MAX_S).contains(&s) => {
            return Ok(s)
        }
        Some((text, Some(_))) => format!("{text:?} is outside 1m to 24h"),
        Some((text, None)) => format!("{text:?} is not a duration"),
        None => match value {
            serde_yaml::Value::Number(n) => format!("{n} has no unit"),
            _ => "a launch timeout is a duration such as `20m`".to_string(),
        },
    };
    Err(file
        .error_for("launch_timeout", None, problem)
        .with_hint("write hours, minutes and seconds with their units, e.g. `launch_timeout: 20m` or `1h30m`; omit it for 60m")
        .into())
}

/// An image or stack is named by its file name, which reaches comments, paths, layer names and
/// tags: it follows the role-name rule.
pub(super) fn check_file_name(
    file: &SourceFile,
    name: &str,
    kind: &str,
) -> Result<(), ConfigError> {
    if names::valid_name(name) {
        return Ok(());
    }
    Err(file
        .error_at(
            1,
            1,
            None,
            format!("{name:?} is not a valid {kind} name (the file name is the {kind}'s name)"),
        )
        .with_hint(format!(
            "rename the file: letters, digits, `_` and `-`, not starting with `-`, at most {} characters",
            names::NAME_MAX
        ))
        .into())
}

/// `ansible.core` must be an exact release parbake's runtime works with: it becomes a pip
/// requirement and part of the base layer hash.
fn check_ansible_pin(file: &SourceFile, core: &str) -> Result<(), ConfigError> {
    use super::ansible_version::{Version, OLDEST_ANSIBLE_CORE};
    let oldest = Version::parse(OLDEST_ANSIBLE_CORE).expect("a version");
    let problem = match Version::parse_exact(core) {
        None => format!("{core:?} is not an exact ansible-core release"),
        Some(v) if v < oldest => format!("ansible-core {core} is older than {OLDEST_ANSIBLE_CORE}, the oldest parbake's runtime supports"),
        Some(_) => return Ok(()),
    };
    Err(file
        .error_for("ansible.core", None, problem)
        .with_hint("pin one release as `X.Y.Z`, e.g. `ansible: {core: \"2.17.7\"}`; omit `ansible` to use the distribution's ansible-core")
        .into())
}

/// A pinned ansible-core must run on the Python of each base the image names, where parbake
/// knows that base's Python (Debian 12's 3.11, Debian 13's 3.13): the bake would install it
/// with pip and fail there, or worse, install one that breaks at launch.
fn check_pin_runs_on_python(
    file: &SourceFile,
    core: &str,
    sources: &model::Sources,
) -> Result<(), ConfigError> {
    use super::ansible_version::{base_python, python_range, Version};
    let Some(pin) = Version::parse_exact(core) else {
        return Ok(());
    };
    let Some((low, high)) = python_range(&pin) else {
        return Ok(());
    };
    for (target, base, python) in base_python(sources) {
        if python < low || python > high {
            return Err(file
                .error_for(
                    "ansible.core",
                    None,
                    format!(
                        "ansible-core {core} runs on Python {low} to {high}, but the {target} source {base} has Python {python}"
                    ),
                )
                .with_hint(format!(
                    "pin an ansible-core that runs on Python {python} (see docs/setup.md), or change the source"
                ))
                .into());
        }
    }
    Ok(())
}

fn valid_sha256(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Every source field that reaches the Packer var-file, the builder's seed or an EC2 call is
/// checked against its own rule here, with its line.
fn check_sources(file: &SourceFile, sources: &model::Sources) -> Result<(), ConfigError> {
    if let Some(q) = &sources.qemu {
        check_qemu_source(file, q)?;
    }
    if let Some(a) = &sources.aws {
        check_aws_source(file, a)?;
    }
    Ok(())
}

/// `field: "value" is not what`, with a hint.
fn not_a(file: &SourceFile, field: &str, value: &str, what: &str, hint: &str) -> ConfigError {
    file.error_for(field, None, format!("{value:?} is not {what}"))
        .with_hint(hint.to_string())
        .into()
}

/// The base disks parbake builds itself (`disk_image: parbake:<name>`; scripts/base-image.sh
/// `--base <name>`).
pub const PARBAKE_BASES: &[&str] = &["debian-12", "debian-13"];

/// The known `parbake:` labels, for messages: `parbake:debian-12`, `parbake:debian-13`.
pub fn parbake_base_labels() -> String {
    PARBAKE_BASES
        .iter()
        .map(|b| format!("`parbake:{b}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How to build a parbake base disk before a first bake does (the recipe is a script in
/// parbake's repository): `make base-image` for Debian 12, the script with `--base` otherwise.
pub fn base_build_command(base: &str) -> String {
    match base {
        "debian-12" => "make base-image".to_string(),
        _ => format!("bash scripts/base-image.sh --base {base}"),
    }
}

fn check_qemu_source(file: &SourceFile, q: &QemuSource) -> Result<(), ConfigError> {
    let bad =
        |field: &str, value: &str, what: &str, hint: &str| not_a(file, field, value, what, hint);
    if !names::valid_user(&q.ssh_user) {
        return Err(bad(
            "sources.qemu.ssh_user",
            &q.ssh_user,
            "a valid user name",
            "use lowercase letters, digits, `_` and `-`, starting with a letter or `_`",
        ));
    }
    if !names::one_line(&q.disk_image) || q.disk_image.is_empty() {
        return Err(bad(
            "sources.qemu.disk_image",
            &q.disk_image,
            "a disk image",
            "write `parbake:debian-12`, a path, or an http(s) URL, on one line",
        ));
    }
    if let Some(name) = q.disk_image.strip_prefix("parbake:") {
        if !PARBAKE_BASES.contains(&name) {
            return Err(bad(
                "sources.qemu.disk_image",
                &q.disk_image,
                "a base disk parbake builds",
                &format!(
                    "parbake builds {}; or give a path to a qcow2 with vmlinuz and initrd.img beside it",
                    parbake_base_labels()
                ),
            ));
        }
    }
    if !names::one_line(&q.kernel_append) {
        return Err(bad(
            "sources.qemu.kernel_append",
            &q.kernel_append,
            "a kernel command line",
            "write it on one line, without control characters",
        ));
    }
    if q.checksum != "none" && !valid_sha256(&q.checksum) {
        return Err(file
            .error_for(
                "sources.qemu.checksum",
                None,
                "checksum must be `sha256:<64 hex digits>` or `none`",
            )
            .into());
    }
    if (q.disk_image.starts_with("http://") || q.disk_image.starts_with("https://"))
        && q.checksum == "none"
    {
        return Err(file
            .error_for(
                "sources.qemu.checksum",
                None,
                "a downloaded disk image needs a checksum",
            )
            .with_hint("set `checksum: sha256:<hex>` from the image's SHA256SUMS")
            .into());
    }
    if q.cpus == 0 || q.memory_mb < 256 {
        return Err(bad(
            "sources.qemu",
            &format!("cpus {} memory_mb {}", q.cpus, q.memory_mb),
            "a usable VM size",
            "at least 1 CPU and 256 MB",
        ));
    }
    Ok(())
}

fn check_aws_source(file: &SourceFile, a: &AwsSource) -> Result<(), ConfigError> {
    let bad =
        |field: &str, value: &str, what: &str, hint: &str| not_a(file, field, value, what, hint);
    let checks: [(&str, &str, bool, &str, &str); 5] = [
        ("sources.aws.region", &a.region, names::valid_region(&a.region), "an AWS region", "e.g. `eu-west-1`"),
        ("sources.aws.instance_type", &a.instance_type, names::valid_instance_type(&a.instance_type), "an EC2 instance type", "e.g. `t3.micro`"),
        ("sources.aws.ssh_user", &a.ssh_user, names::valid_user(&a.ssh_user), "a valid user name", "use lowercase letters, digits, `_` and `-`, e.g. `admin` on Debian AMIs"),
        ("sources.aws.ami_name", &a.ami_name, names::valid_ami_name(&a.ami_name), "a valid AMI name", "3 to 128 of: letters, digits, ( ) [ ] space . / - ' @ _ and the placeholders {image} {layer} {hash}"),
        ("sources.aws.source_ami.name", &a.source_ami.name, names::valid_ami_name_pattern(&a.source_ami.name), "an AMI name pattern", names::AMI_NAME_PATTERN_RULE),
    ];
    for (field, value, ok, what, hint) in checks {
        if !ok {
            return Err(bad(field, value, what, hint));
        }
    }
    let item = |field: &str, value: &str, message: String, hint: &str| -> ConfigError {
        file.error_for(field, Some(value), message)
            .with_hint(hint.to_string())
            .into()
    };
    if let Some(r) = a.copy_to_regions.iter().find(|r| !names::valid_region(r)) {
        return Err(item(
            "sources.aws.copy_to_regions",
            r,
            format!("{r:?} is not an AWS region"),
            "e.g. `eu-central-1`",
        ));
    }
    if let Some(o) = a.source_ami.owners.iter().find(|o| !names::valid_owner(o)) {
        return Err(item(
            "sources.aws.source_ami.owners",
            o,
            format!("{o:?} is not an AMI owner"),
            names::OWNER_RULE,
        ));
    }
    if let Some(s) = a.subnet_id.as_ref().filter(|s| !names::valid_subnet(s)) {
        return Err(bad(
            "sources.aws.subnet_id",
            s,
            "a subnet id",
            "e.g. `subnet-0abc1234`",
        ));
    }
    if let Some(p) = a
        .instance_profile
        .as_ref()
        .filter(|p| !names::valid_instance_profile(p))
    {
        return Err(bad(
            "sources.aws.instance_profile",
            p,
            "an IAM instance profile name",
            "the profile's name (not its ARN): 1 to 128 of letters, digits and `+=,.@_-`",
        ));
    }
    if !["x86_64", "arm64", "i386", "x86_64_mac", "arm64_mac"]
        .contains(&a.source_ami.architecture.as_str())
    {
        return Err(bad(
            "sources.aws.source_ami.architecture",
            &a.source_ami.architecture,
            "an EC2 architecture",
            "`x86_64` or `arm64`",
        ));
    }
    super::arch::check(file, a)?;
    aws_settings::check_builder(file, a)?;
    aws_settings::check_disk(file, a)?;
    aws_settings::check_tags(file, "sources.aws.tags", &a.tags)?;
    let deprecate_after = a.deprecate_after.as_deref();
    aws_settings::check_deprecate_after(file, "sources.aws.deprecate_after", deprecate_after)?;
    Ok(())
}

/// Each staged package a Debian package name, each staged requirement an exact pin; `apt` and
/// `pip` are the fields they are under.
fn check_stage_lists(
    file: &SourceFile,
    meta: &model::RoleMetaFile,
    apt: &str,
    pip: &str,
) -> Result<(), ConfigError> {
    for p in &meta.stage_apt {
        if !names::valid_apt_package(p) {
            return Err(file
                .error_for(apt, Some(p), format!("{p:?} is not a Debian package name"))
                .with_hint(names::APT_PACKAGE_RULE)
                .into());
        }
    }
    for r in &meta.stage_pip {
        if let Some((message, hint)) = names::pip_requirement_problem(r) {
            return Err(file
                .error_for(pip, Some(r), message)
                .with_hint(hint.to_string())
                .into());
        }
    }
    Ok(())
}

/// `staging:` of an image or stack file: each key a role installed on the image (`on`), each
/// package and requirement under the rules of a role's own `stage_apt` and `stage_pip`.
fn check_staging(
    file: &SourceFile,
    staging: &BTreeMap<String, model::Staging>,
    installed: &[String],
    on: &str,
) -> Result<(), ConfigError> {
    for (role, s) in staging {
        // a dotted role name cannot be a located path: point at `staging:` itself
        let field = match role.contains('.') {
            true => "staging".to_string(),
            false => format!("staging.{role}"),
        };
        if !installed.contains(role) {
            return Err(file
                .error_for(&field, None, format!("`staging` names role `{role}`, which is not installed on {on}"))
                .with_hint("stage for a role the image installs (a role under your roles path, a vendored role, or a collection's role by its FQCN)")
                .into());
        }
        let meta = model::RoleMetaFile {
            stage_apt: s.apt.clone(),
            stage_pip: s.pip.clone(),
            ..Default::default()
        };
        let sub = |list: &str| match role.contains('.') {
            true => field.clone(),
            false => format!("{field}.{list}"),
        };
        check_stage_lists(file, &meta, &sub("apt"), &sub("pip"))?;
    }
    Ok(())
}

/// `meta/parbake.yml`: staged packages become apt arguments, so each must be a package name;
/// staged Python requirements become pip arguments, so each must be an exact pin.
pub(crate) fn check_role_meta(
    file: &SourceFile,
    meta: &model::RoleMetaFile,
) -> Result<(), ConfigError> {
    check_stage_lists(file, meta, "stage_apt", "stage_pip")?;
    if let Some(d) = &meta.description {
        if !names::one_line(d) {
            return Err(file
                .error_for(
                    "description",
                    None,
                    "the description must be one line of text",
                )
                .into());
        }
    }
    Ok(())
}
