//! The production settings of an aws source and a stack (issue 28): the builder's networking,
//! the AMI's encryption and root volume, and the user's tags. Each value is checked here, at
//! its line, against what EC2 and Debian's Packer 1.6.6 accept; the var-file then carries it
//! as a JSON value (never formatted into HCL).

use std::collections::BTreeMap;

use super::model::{AwsSource, SshInterface, Volume, VolumeType};
use super::{ConfigError, SourceFile};

/// EC2 allows 50 tags on a resource. parbake keeps up to this many of them for its own on an
/// AMI: the layer registry (about 17), up to 10 verify verdicts with their 4 summary tags, the
/// installed-role lists and room for what comes; the rest are the user's.
pub const PARBAKE_TAGS_RESERVED: usize = 35;
/// EC2's limit of tags on one resource.
pub const EC2_TAGS_MAX: usize = 50;
/// The user's tags on one resource, image and stack tags together.
pub const USER_TAGS_MAX: usize = EC2_TAGS_MAX - PARBAKE_TAGS_RESERVED;
/// At most this many EC2 filters in a `vpc_filter` or `subnet_filter`.
const FILTERS_MAX: usize = 10;

/// A volume type's limits, per the EBS documentation and within what Packer 1.6.6 checks
/// (`launch_block_device_mappings`): sizes in GiB, IOPS, IOPS per GiB, throughput in MiB/s.
struct Limits {
    size: (u32, u32),
    iops: Option<(u32, u32)>,
    iops_per_gib: u32,
    throughput: Option<(u32, u32)>,
}

/// The limits of a volume type.
fn limits(kind: VolumeType) -> Limits {
    match kind {
        VolumeType::Gp3 => Limits {
            size: (1, 16_384),
            iops: Some((3_000, 16_000)),
            iops_per_gib: 500,
            throughput: Some((125, 1_000)),
        },
        VolumeType::Gp2 => Limits {
            size: (1, 16_384),
            iops: None,
            iops_per_gib: 0,
            throughput: None,
        },
        VolumeType::Io1 => Limits {
            size: (4, 16_384),
            iops: Some((100, 64_000)),
            iops_per_gib: 50,
            throughput: None,
        },
        VolumeType::Io2 => Limits {
            size: (4, 16_384),
            iops: Some((100, 64_000)),
            iops_per_gib: 500,
            throughput: None,
        },
    }
}

/// An error at `path`, or at the nearest enclosing key the file shows (a flow mapping such as
/// `volume: {type: gp3}` has no line of its own per key).
pub(super) fn at(file: &SourceFile, path: &str, message: String, hint: &str) -> ConfigError {
    let mut p = path;
    let (line, column) = loop {
        if let Some(found) = super::yaml::locate(&file.text, p, None) {
            break found;
        }
        match p.rsplit_once('.') {
            Some((head, _)) => p = head,
            None => break (1, 1),
        }
    };
    file.error_at(line, column, Some(path.to_string()), message)
        .with_hint(hint.to_string())
        .into()
}

/// An EC2 resource id: `prefix-` then 8 or 17 lowercase hex digits.
pub fn valid_resource_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|h| h.strip_prefix('-'))
        .is_some_and(|h| {
            (h.len() == 8 || h.len() == 17)
                && h.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
}

/// An IPv4 CIDR block in canonical form (`10.0.0.0/16`: no host bits set); the canonical form
/// of the block when it is one with host bits, for the hint.
pub fn cidr_problem(s: &str) -> Option<String> {
    let Some((addr, len)) = s.split_once('/') else {
        return Some("write an IPv4 block as `a.b.c.d/n`".into());
    };
    let (Ok(addr), Ok(len)) = (addr.parse::<std::net::Ipv4Addr>(), len.parse::<u8>()) else {
        return Some("write an IPv4 block as `a.b.c.d/n`, n from 0 to 32".into());
    };
    if len > 32 || len.to_string() != s.split_once('/').map_or("", |x| x.1) {
        return Some("the prefix length is 0 to 32".into());
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let net = u32::from(addr) & mask;
    (net != u32::from(addr)).then(|| {
        format!(
            "host bits are set: the block is `{}/{len}`",
            std::net::Ipv4Addr::from(net)
        )
    })
}

/// An EC2 filter name: `vpc-id`, `tag:Name`, `cidr-block`, … (1 to 128 of letters, digits and
/// `:._/-`, not starting with `-`).
pub fn valid_filter_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ":._/-".contains(c))
}

/// An EC2 filter value: 1 to 255 of letters, digits, space and `._:/@+=*?-` (`*` and `?` are
/// EC2's wildcards).
pub fn valid_filter_value(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || " ._:/@+=*?-".contains(c))
}

/// A KMS key as Packer 1.6.6 and EC2 take it: a key id (UUID), `alias/NAME`, or the ARN of
/// either.
pub fn valid_kms_key(s: &str) -> bool {
    let key_id = |k: &str| {
        k.len() == 36
            && k.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
            })
    };
    let alias = |a: &str| {
        a.strip_prefix("alias/").is_some_and(|n| {
            (1..=250).contains(&n.len())
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c))
        })
    };
    if key_id(s) || alias(s) {
        return true;
    }
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    matches!(parts.as_slice(),
        ["arn", partition, "kms", region, account, resource]
            if ["aws", "aws-us-gov", "aws-cn"].contains(partition)
            && super::names::valid_region(region)
            && account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())
            && (resource.strip_prefix("key/").is_some_and(key_id) || alias(resource)))
}

/// An EC2 tag key the user may set: 1 to 128 of letters, digits, space and `+-=._:/@`, not
/// starting with `aws:` (AWS's) or `parbake:` (parbake's own registry).
pub fn tag_key_problem(k: &str) -> Option<&'static str> {
    let lower = k.to_ascii_lowercase();
    if lower.starts_with("parbake:") {
        return Some("`parbake:` tags are parbake's own (the layer registry, verdicts, expiry); choose another key");
    }
    if lower.starts_with("aws:") {
        return Some("EC2 reserves keys starting with `aws:`");
    }
    if !(1..=128).contains(&k.len()) || !tag_chars(k) || k.trim() != k {
        return Some("a tag key is 1 to 128 of letters, digits, space and `+-=._:/@`, without leading or trailing space");
    }
    None
}

/// An EC2 tag value: at most 256 of letters, digits, space and `+-=._:/@`.
pub fn valid_tag_value(v: &str) -> bool {
    v.len() <= 256 && tag_chars(v)
}

fn tag_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || " +-=._:/@".contains(c))
}

/// The builder's networking: interface, instance profile, groups or CIDRs, VPC and subnet.
pub fn check_builder(file: &SourceFile, a: &AwsSource) -> Result<(), ConfigError> {
    let f = |k: &str| format!("sources.aws.{k}");
    if let Some(p) = a
        .builder_instance_profile
        .as_ref()
        .filter(|p| !super::names::valid_instance_profile(p))
    {
        return Err(at(
            file,
            &f("builder_instance_profile"),
            format!("{p:?} is not an IAM instance profile name"),
            "the profile's name (not its ARN): 1 to 128 of letters, digits and `+=,.@_-`",
        ));
    }
    if a.ssh_interface == Some(SshInterface::SessionManager) && a.builder_instance_profile.is_none()
    {
        return Err(at(file, &f("ssh_interface"), "`ssh_interface: session_manager` needs `builder_instance_profile`".into(), "name an instance profile whose role has AmazonSSMManagedInstanceCore; Packer also needs the session-manager-plugin where it runs"));
    }
    for g in &a.security_group_ids {
        if !valid_resource_id(g, "sg") {
            return Err(at(
                file,
                &f("security_group_ids"),
                format!("{g:?} is not a security group id"),
                "e.g. `sg-0abc1234` (sg- and 8 or 17 lowercase hex digits)",
            ));
        }
    }
    for c in &a.ssh_source_cidrs {
        if let Some(why) = cidr_problem(c) {
            return Err(at(
                file,
                &f("ssh_source_cidrs"),
                format!("{c:?} is not an IPv4 CIDR block"),
                &why,
            ));
        }
    }
    if !a.security_group_ids.is_empty() && !a.ssh_source_cidrs.is_empty() {
        return Err(at(file, &f("ssh_source_cidrs"), "`ssh_source_cidrs` and `security_group_ids` exclude each other".into(), "the CIDRs open Packer's temporary group; with your own groups, their rules decide who reaches the builder"));
    }
    if let Some(v) = a.vpc_id.as_ref().filter(|v| !valid_resource_id(v, "vpc")) {
        return Err(at(
            file,
            &f("vpc_id"),
            format!("{v:?} is not a VPC id"),
            "e.g. `vpc-0abc1234` (vpc- and 8 or 17 lowercase hex digits)",
        ));
    }
    if a.vpc_id.is_some() && !a.vpc_filter.is_empty() {
        return Err(at(
            file,
            &f("vpc_filter"),
            "`vpc_filter` and `vpc_id` exclude each other".into(),
            "keep one way of choosing the VPC",
        ));
    }
    if a.subnet_id.is_some() && !a.subnet_filter.is_empty() {
        return Err(at(
            file,
            &f("subnet_filter"),
            "`subnet_filter` and `subnet_id` exclude each other".into(),
            "keep one way of choosing the subnet",
        ));
    }
    for (field, filters) in [
        ("vpc_filter", &a.vpc_filter),
        ("subnet_filter", &a.subnet_filter),
    ] {
        check_filters(file, &f(field), filters)?;
    }
    Ok(())
}

fn check_filters(
    file: &SourceFile,
    field: &str,
    filters: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    if filters.len() > FILTERS_MAX {
        return Err(at(
            file,
            field,
            format!(
                "{} filters; parbake takes at most {FILTERS_MAX}",
                filters.len()
            ),
            "narrow the selection with a tag, e.g. `\"tag:Name\": build-*`",
        ));
    }
    for (name, value) in filters {
        if !valid_filter_name(name) {
            // the path stays parbake's own text: the bad name is shown escaped, in the message
            return Err(at(file, field, format!("{name:?} is not an EC2 filter name"), "e.g. `vpc-id`, `tag:Name`, `availability-zone`, `default-for-az`: letters, digits and `:._/-`"));
        }
        if !valid_filter_value(value) {
            return Err(at(
                file,
                &format!("{field}.{name}"),
                format!("{value:?} is not a filter value parbake takes"),
                "1 to 255 of letters, digits, space and `._:/@+=*?-` (`*` and `?` are wildcards)",
            ));
        }
    }
    Ok(())
}

/// The AMI's encryption and root volume.
pub fn check_disk(file: &SourceFile, a: &AwsSource) -> Result<(), ConfigError> {
    check_encrypt(file, a)?;
    match &a.volume {
        Some(v) => check_volume(file, v),
        None => Ok(()),
    }
}

/// `encrypt.kms_key_id`: a KMS key, and one region's (no `copy_to_regions`).
fn check_encrypt(file: &SourceFile, a: &AwsSource) -> Result<(), ConfigError> {
    let Some(k) = a.encrypt.as_ref().and_then(|e| e.kms_key_id.as_ref()) else {
        return Ok(());
    };
    if !valid_kms_key(k) {
        return Err(at(
            file,
            "sources.aws.encrypt.kms_key_id",
            format!("{k:?} is not a KMS key"),
            "a key id (UUID), `alias/NAME`, or the key's or alias's ARN",
        ));
    }
    if !a.copy_to_regions.is_empty() {
        return Err(at(file, "sources.aws.encrypt.kms_key_id", "a KMS key is regional, and `copy_to_regions` copies the AMI elsewhere".into(), "drop `kms_key_id` to encrypt with each region's default EBS key, or drop `copy_to_regions` (per-region keys are not supported yet)"));
    }
    Ok(())
}

/// `volume:` within its type's limits: size, then IOPS, then throughput.
fn check_volume(file: &SourceFile, v: &Volume) -> Result<(), ConfigError> {
    let l = limits(v.kind);
    check_volume_size(file, v, &l)?;
    check_volume_iops(file, v, &l)?;
    check_volume_throughput(file, v, &l)
}

fn volume_field(key: &str) -> String {
    format!("sources.aws.volume.{key}")
}

fn check_volume_size(file: &SourceFile, v: &Volume, l: &Limits) -> Result<(), ConfigError> {
    let t = v.kind.as_str();
    if let Some(s) = v.size_gb.filter(|s| !(l.size.0..=l.size.1).contains(s)) {
        return Err(at(
            file,
            &volume_field("size_gb"),
            format!("{s} GiB is out of range for {t}"),
            &format!("{t} volumes are {} to {} GiB", l.size.0, l.size.1),
        ));
    }
    Ok(())
}

/// `iops`: only where the type takes it, within its range, needed by io1 and io2, and at
/// most the type's IOPS per GiB of the size.
fn check_volume_iops(file: &SourceFile, v: &Volume, l: &Limits) -> Result<(), ConfigError> {
    let t = v.kind.as_str();
    match (v.iops, l.iops) {
        (Some(_), None) => {
            return Err(at(
                file,
                &volume_field("iops"),
                format!("{t} volumes take no provisioned IOPS"),
                "gp2's IOPS follow its size; use `type: gp3` to set IOPS",
            ))
        }
        (Some(i), Some((lo, hi))) if !(lo..=hi).contains(&i) => {
            return Err(at(
                file,
                &volume_field("iops"),
                format!("{i} IOPS is out of range for {t}"),
                &format!("{t} takes {lo} to {hi} IOPS"),
            ))
        }
        (None, Some(_)) if matches!(v.kind, VolumeType::Io1 | VolumeType::Io2) => {
            return Err(at(
                file,
                "sources.aws.volume",
                format!("an {t} volume needs `iops`"),
                &format!("e.g. `volume: {{type: {t}, size_gb: 20, iops: 1000}}`"),
            ))
        }
        _ => {}
    }
    let (iops, _) = v.effective();
    if let (Some(i), Some(s)) = (iops, v.size_gb) {
        if l.iops_per_gib > 0
            && i > s.saturating_mul(l.iops_per_gib)
            && i > l.iops.map_or(0, |r| r.0)
        {
            return Err(at(
                file,
                &volume_field("iops"),
                format!(
                    "{i} IOPS on {s} GiB is more than {t}'s {} IOPS per GiB",
                    l.iops_per_gib
                ),
                "raise `size_gb` or lower `iops`",
            ));
        }
    }
    Ok(())
}

/// `throughput`: only on gp3, within its range, and at most 0.25 MiB/s per IOPS.
fn check_volume_throughput(file: &SourceFile, v: &Volume, l: &Limits) -> Result<(), ConfigError> {
    let t = v.kind.as_str();
    match (v.throughput, l.throughput) {
        (Some(_), None) => {
            return Err(at(
                file,
                &volume_field("throughput"),
                format!("{t} volumes take no throughput setting"),
                "only gp3 sets throughput (MiB/s)",
            ))
        }
        (Some(x), Some((lo, hi))) if !(lo..=hi).contains(&x) => {
            return Err(at(
                file,
                &volume_field("throughput"),
                format!("{x} MiB/s is out of range for {t}"),
                &format!("{t} takes {lo} to {hi} MiB/s"),
            ))
        }
        _ => {}
    }
    let (iops, throughput) = v.effective();
    if let (Some(x), Some(i)) = (throughput, iops) {
        // EBS: at most 0.25 MiB/s per provisioned IOPS on gp3
        if v.kind == VolumeType::Gp3 && x > 125 && u64::from(x) * 4 > u64::from(i) {
            return Err(at(
                file,
                &volume_field("throughput"),
                format!(
                    "{x} MiB/s needs at least {} IOPS on gp3 (0.25 MiB/s per IOPS)",
                    x * 4
                ),
                "raise `iops` or lower `throughput`",
            ));
        }
    }
    Ok(())
}

/// `tags:` at `field` (`sources.aws.tags` in an image, `tags` in a stack): keys, values, count.
pub fn check_tags(
    file: &SourceFile,
    field: &str,
    tags: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (k, v) in tags {
        if let Some(why) = tag_key_problem(k) {
            // the path stays parbake's own text: the bad key is shown escaped, in the message
            return Err(at(
                file,
                field,
                format!("{k:?} is not a tag key you can set"),
                why,
            ));
        }
        if !valid_tag_value(v) {
            return Err(at(
                file,
                &format!("{field}.{k}"),
                format!("the value of tag {k:?} is not one EC2 takes from parbake"),
                "at most 256 of letters, digits, space and `+-=._:/@`",
            ));
        }
    }
    if tags.len() > USER_TAGS_MAX {
        return Err(at(file, field, format!("{} tags; an AMI takes at most {USER_TAGS_MAX} of yours", tags.len()), &format!("EC2 allows {EC2_TAGS_MAX} tags on a resource and parbake keeps {PARBAKE_TAGS_RESERVED} for its own (the layer registry and verify verdicts)")));
    }
    Ok(())
}

/// A stack's tags over its image's: checked alone, then counted together.
pub fn check_stack_tags(
    file: &SourceFile,
    stack: &BTreeMap<String, String>,
    image: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    check_tags(file, "tags", stack)?;
    let merged = merged(image, stack);
    if merged.len() > USER_TAGS_MAX {
        return Err(at(file, "tags", format!("{} tags with the image's; a stack's AMIs and instances take at most {USER_TAGS_MAX} of yours", merged.len()), "drop some here or in the image's `sources.aws.tags`"));
    }
    Ok(())
}

/// The image's tags with the stack's over them.
pub fn merged(
    image: &BTreeMap<String, String>,
    stack: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut all = image.clone();
    all.extend(stack.iter().map(|(k, v)| (k.clone(), v.clone())));
    all
}

/// The user's tags for something made for `stack` (its stack-layer AMIs, instances and launch
/// template), or for the image alone (`stack` None: base-layer AMIs).
pub fn user_tags(
    project: &super::Project,
    image: &str,
    stack: Option<&str>,
) -> BTreeMap<String, String> {
    let image_tags = project
        .images
        .get(image)
        .and_then(|i| i.def.sources.aws.as_ref())
        .map(|a| a.tags.clone())
        .unwrap_or_default();
    match stack.and_then(|s| project.stacks.get(s)) {
        Some(st) => merged(&image_tags, &st.def.tags),
        None => image_tags,
    }
}

/// The shortest `deprecate_after`: EC2 takes no deprecation time in the past, and a bake's
/// copies may finish minutes after the AMI itself.
pub const DEPRECATE_AFTER_MIN_S: u64 = 86_400;
/// The longest: EC2 takes a deprecation time at most 10 years ahead (3650 days, within EC2's
/// limit whatever the leap years).
pub const DEPRECATE_AFTER_MAX_S: u64 = 3650 * 86_400;

/// `deprecate_after:` at `field`: a duration (`90d`, `36h`) from 1 day to 10 years.
pub fn check_deprecate_after(
    file: &SourceFile,
    field: &str,
    value: Option<&str>,
) -> Result<(), ConfigError> {
    let Some(text) = value else {
        return Ok(());
    };
    match super::duration::parse_duration(text) {
        None => Err(at(
            file,
            field,
            format!("{text:?} is not a duration"),
            "write whole days, hours, minutes, seconds in that order: `90d`, `1d12h`",
        )),
        Some(s) if !(DEPRECATE_AFTER_MIN_S..=DEPRECATE_AFTER_MAX_S).contains(&s) => Err(at(
            file,
            field,
            format!("deprecate_after {text} is out of range: EC2 deprecates an AMI from 1 day to 10 years after its bake"),
            "write 1d to 3650d, e.g. `deprecate_after: 90d`; leave it out for AMIs that never deprecate",
        )),
        Some(_) => Ok(()),
    }
}

/// The `deprecate_after` in seconds of a layer AMI of `image` (a stack layer of `stack`: the
/// stack's over the image's), None when neither sets one.
pub fn deprecate_after(project: &super::Project, image: &str, stack: Option<&str>) -> Option<u64> {
    let from_stack = stack
        .and_then(|s| project.stacks.get(s))
        .and_then(|st| st.def.deprecate_after.clone());
    let from_image = || {
        project
            .images
            .get(image)
            .and_then(|i| i.def.sources.aws.as_ref())
            .and_then(|a| a.deprecate_after.clone())
    };
    from_stack
        .or_else(from_image)
        .and_then(|t| super::duration::parse_duration(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cidrs_keys_and_filters() {
        assert!(
            valid_resource_id("sg-0abc1234", "sg")
                && valid_resource_id("vpc-0123456789abcdef0", "vpc")
        );
        for bad in [
            "sg-0ABC1234",
            "sg-0abc123",
            "sg0abc1234",
            "vpc-0abc1234",
            "sg-0abc1234\n",
            "sg-",
        ] {
            assert!(!valid_resource_id(bad, "sg"), "{bad:?}");
        }
        assert_eq!(cidr_problem("10.0.0.0/16"), None);
        assert_eq!(cidr_problem("0.0.0.0/0"), None);
        assert_eq!(cidr_problem("203.0.113.7/32"), None);
        assert!(cidr_problem("10.0.0.1/16").unwrap().contains("10.0.0.0/16"));
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0/8",
            "::/0",
            "10.0.0.0/+8",
            "10.0.0.0/08",
            "a/8",
        ] {
            assert!(cidr_problem(bad).is_some(), "{bad:?}");
        }
        assert!(
            valid_kms_key("alias/ami-key") && valid_kms_key("1234abcd-12ab-34cd-56ef-1234567890ab")
        );
        assert!(valid_kms_key(
            "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        ));
        assert!(valid_kms_key(
            "arn:aws:kms:eu-west-1:123456789012:alias/ami-key"
        ));
        for bad in [
            "",
            "alias/",
            "alias/a b",
            "key",
            "arn:aws:kms:eu-west-1:1234:key/x",
            "arn:aws:s3:eu-west-1:123456789012:alias/x",
        ] {
            assert!(!valid_kms_key(bad), "{bad:?}");
        }
        assert!(tag_key_problem("team").is_none() && tag_key_problem("cost-center/id").is_none());
        for bad in [
            "parbake:layer-hash",
            "Parbake:x",
            "aws:cloudformation",
            "",
            " x",
            "a\"b",
            "a\nb",
            &"k".repeat(129),
        ] {
            assert!(tag_key_problem(bad).is_some(), "{bad:?}");
        }
        assert!(
            valid_tag_value("") && !valid_tag_value("${x}") && !valid_tag_value(&"v".repeat(257))
        );
        assert!(valid_filter_name("tag:Name") && valid_filter_name("default-for-az"));
        assert!(
            !valid_filter_name("-x") && !valid_filter_name("a\"b") && !valid_filter_name("a b")
        );
        assert!(
            valid_filter_value("build-*") && !valid_filter_value("") && !valid_filter_value("a\"}")
        );
    }

    proptest::proptest! {
        /// Whatever string a user writes, what the checks accept holds only the safe charset
        /// (no quote, `$`, brace, backslash or line break can reach a var-file or an EC2 call).
        #[test]
        fn accepted_tags_and_filters_are_plain(s in proptest::prop_oneof![
            "(?s).{0,140}",
            "(alias/|arn:aws:kms:eu-west-1:123456789012:|parbake:|aws:)?[a-zA-Z0-9 +=._:/@*?\"${}\\\\\n\u{2028}-]{0,130}",
        ]) {
            let plain = |x: &str| x.chars().all(|c| c.is_ascii_alphanumeric() || " +-=._:/@*?".contains(c));
            if tag_key_problem(&s).is_none() {
                proptest::prop_assert!(plain(&s) && (1..=128).contains(&s.len()));
                proptest::prop_assert!(!s.to_ascii_lowercase().starts_with("parbake:"));
                proptest::prop_assert!(!s.to_ascii_lowercase().starts_with("aws:"));
            }
            if valid_tag_value(&s) || valid_filter_value(&s) || valid_filter_name(&s) {
                proptest::prop_assert!(plain(&s));
            }
            if valid_kms_key(&s) {
                proptest::prop_assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || ":/_-".contains(c)));
            }
        }

        /// A CIDR block is accepted exactly in its canonical form, which reads back the same.
        #[test]
        fn cidrs_are_accepted_exactly_when_canonical(ip in proptest::num::u32::ANY, len in 0u8..=32, noise in "(?s).{0,20}") {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let net = std::net::Ipv4Addr::from(ip & mask);
            let canonical = format!("{net}/{len}");
            proptest::prop_assert_eq!(cidr_problem(&canonical), None);
            let given = format!("{}/{len}", std::net::Ipv4Addr::from(ip));
            proptest::prop_assert_eq!(cidr_problem(&given).is_none(), ip & mask == ip);
            if cidr_problem(&noise).is_none() {
                let (a, l) = noise.split_once('/').unwrap();
                proptest::prop_assert_eq!(format!("{}/{}", a.parse::<std::net::Ipv4Addr>().unwrap(), l), noise.clone());
            }
        }
    }
}
