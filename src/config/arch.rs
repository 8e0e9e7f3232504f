//! Architectures (issue 27): an aws source bakes one chain of layers per architecture
//! (`architectures:`), each with its own instance type and source AMI. Here: the checks of
//! that map, at their lines, and the project as one architecture's chains see it.

use std::collections::BTreeMap;

use super::model::AwsSource;
use super::{names, ConfigError, Image, Project, SourceFile};

/// The architectures an aws source may bake: Packer's amazon-ebs builds either, and EC2 has
/// instance types for both.
pub const ARCHES: &[&str] = &["x86_64", "arm64"];

/// The architectures an image bakes on AWS, sorted; none without an aws source.
pub fn image_arches(image: &Image) -> Vec<String> {
    image
        .def
        .sources
        .aws
        .as_ref()
        .map(AwsSource::arches)
        .unwrap_or_default()
}

/// A name of one architecture's chain: `NAME-ARCH` when its image bakes several, else `NAME`.
pub fn arch_named(name: &str, a: &AwsSource) -> String {
    match a.arch_suffix() {
        Some(arch) => format!("{name}-{arch}"),
        None => name.to_string(),
    }
}

impl Project {
    /// The project as `arch`'s chains see it: each image whose aws source bakes `arch` with
    /// that source projected ([`AwsSource::for_arch`]); the other images and their stacks
    /// left out.
    pub fn for_arch(&self, arch: &str) -> Project {
        let mut out = self.clone();
        out.images = self
            .images
            .iter()
            .filter_map(|(name, image)| {
                let src = image.def.sources.aws.as_ref()?.for_arch(arch)?;
                let mut image = image.clone();
                image.def.sources.aws = Some(src);
                Some((name.clone(), image))
            })
            .collect();
        out.stacks
            .retain(|_, s| out.images.contains_key(&s.def.image));
        out
    }

    /// One view per architecture some aws source bakes, sorted by architecture.
    pub fn arch_views(&self) -> Vec<(String, Project)> {
        let arches: std::collections::BTreeSet<String> =
            self.images.values().flat_map(image_arches).collect();
        arches
            .into_iter()
            .map(|a| {
                let view = self.for_arch(&a);
                (a, view)
            })
            .collect()
    }
}

/// The architecture of an EC2 instance type's family: `arm64` for Graviton (`a1`, and a `g`
/// after the generation: `t4g`, `c7gn`, `m6gd`, `is4gen`), `x86_64` for the rest; None for a
/// Mac type, which parbake does not bake on.
pub fn instance_arch(instance_type: &str) -> Option<&'static str> {
    let family = instance_type.split('.').next().unwrap_or_default();
    if family.starts_with("mac") {
        return None;
    }
    if family == "a1" {
        return Some("arm64");
    }
    let after_generation = family
        .trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .trim_start_matches(|c: char| c.is_ascii_digit());
    let suffix = after_generation.split('-').next().unwrap_or_default();
    Some(if suffix.contains('g') {
        "arm64"
    } else {
        "x86_64"
    })
}

/// An error at the deepest line `path` has in the file: a key inside a flow mapping
/// (`arm64: {instance_type: t3.large}`) is at its mapping's line. The field is `path`.
fn at(file: &SourceFile, path: &str, message: String) -> super::Located {
    let mut shown = path;
    while super::yaml::locate(&file.text, shown, None).is_none() {
        match shown.rfind('.') {
            Some(i) => shown = &shown[..i],
            None => break,
        }
    }
    let mut err = file.error_for(shown, None, message);
    err.field = Some(path.to_string());
    err
}

/// The checks of `architectures:` and of each architecture's projected source: a known
/// architecture, its own fields valid, an instance type of that architecture, and a source
/// AMI name that does not name another one.
pub fn check(file: &SourceFile, a: &AwsSource) -> Result<(), ConfigError> {
    for (arch, entry) in &a.architectures {
        check_entry(file, arch, entry)?;
    }
    for arch in a.arches() {
        let projected = a.for_arch(&arch).expect("a listed architecture projects");
        check_instance_type(file, a, &arch, &projected.instance_type)?;
        check_inherited_name(file, a, &arch)?;
    }
    Ok(())
}

/// One entry: a known key, a valid instance type, owners and name, and an `architecture`
/// that agrees with the key when written.
fn check_entry(
    file: &SourceFile,
    arch: &str,
    entry: &super::model::ArchSource,
) -> Result<(), ConfigError> {
    let path = format!("sources.aws.architectures.{arch}");
    if !ARCHES.contains(&arch) {
        let err = at(file, &path, format!("unknown architecture `{arch}`"));
        let hint = match arch {
            "aarch64" | "arm" | "graviton" => "EC2 calls 64-bit ARM `arm64`".to_string(),
            "amd64" | "x64" | "x86-64" => "EC2 calls 64-bit x86 `x86_64`".to_string(),
            _ => format!("parbake bakes {}", ARCHES.join(" and ")),
        };
        return Err(err.with_hint(hint).into());
    }
    if let Some(t) = entry.instance_type.as_deref() {
        if !names::valid_instance_type(t) {
            let err = at(
                file,
                &format!("{path}.instance_type"),
                format!("{t:?} is not an EC2 instance type"),
            );
            return Err(err
                .with_hint("e.g. `t4g.small` for arm64, `t3.small` for x86_64")
                .into());
        }
    }
    let Some(s) = &entry.source_ami else {
        return Ok(());
    };
    let field = format!("{path}.source_ami");
    if let Some(o) = s.owners.iter().find(|o| !names::valid_owner(o)) {
        let err = at(
            file,
            &format!("{field}.owners"),
            format!("{o:?} is not an AMI owner"),
        );
        return Err(err.with_hint(names::OWNER_RULE).into());
    }
    if !names::valid_ami_name_pattern(&s.name) {
        let err = at(
            file,
            &format!("{field}.name"),
            format!("{:?} is not an AMI name pattern", s.name),
        );
        return Err(err.with_hint(names::AMI_NAME_PATTERN_RULE).into());
    }
    match s.architecture.as_deref() {
        Some(other) if other != arch => {
            let err = at(
                file,
                &format!("{field}.architecture"),
                format!("architecture `{other}` under `architectures.{arch}`"),
            );
            Err(err
                .with_hint(format!(
                    "the key names the architecture: leave `architecture` out, or write `{arch}`"
                ))
                .into())
        }
        _ => Ok(()),
    }
}

/// The instance type an architecture's chain builds on is of that architecture.
fn check_instance_type(
    file: &SourceFile,
    a: &AwsSource,
    arch: &str,
    instance_type: &str,
) -> Result<(), ConfigError> {
    let Some(its) = instance_arch(instance_type) else {
        return Ok(());
    };
    if its == arch {
        return Ok(());
    }
    let own = a
        .architectures
        .get(arch)
        .and_then(|e| e.instance_type.as_deref())
        .is_some();
    let field = if own {
        format!("sources.aws.architectures.{arch}.instance_type")
    } else {
        "sources.aws.instance_type".to_string()
    };
    let whose = if own { "its" } else { "the source's" };
    let err = at(
        file,
        &field,
        format!("{arch} builds on {whose} instance type `{instance_type}`, which is {its}"),
    );
    let hint = if arch == "arm64" {
        "give arm64 a Graviton type, e.g. `architectures: {arm64: {instance_type: t4g.small}}` (a `g` after the generation: t4g, m7g, c7g)".to_string()
    } else {
        "give x86_64 an x86 type, e.g. `t3.small` or `m7i.large`".to_string()
    };
    Err(err.with_hint(hint).into())
}

/// An architecture that takes the source's own `source_ami` must not inherit a name pattern
/// that names another architecture (`debian-12-amd64-*` for arm64): EC2 would find nothing.
fn check_inherited_name(file: &SourceFile, a: &AwsSource, arch: &str) -> Result<(), ConfigError> {
    let inherits = a
        .architectures
        .get(arch)
        .is_some_and(|e| e.source_ami.is_none());
    if !inherits {
        return Ok(());
    }
    let others: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("arm64", &["amd64", "x86_64", "x86-64"][..]),
        ("x86_64", &["arm64", "aarch64"][..]),
    ]);
    let name = a.source_ami.name.to_ascii_lowercase();
    let Some(word) = others
        .get(arch)
        .and_then(|words| words.iter().find(|w| name.contains(*w)))
    else {
        return Ok(());
    };
    let err = at(
        file,
        &format!("sources.aws.architectures.{arch}"),
        format!(
            "{arch} takes the source's `source_ami`, whose name `{}` names {word}",
            a.source_ami.name
        ),
    );
    let hint = format!("give {arch} its own: `source_ami: {{owners: [...], name: ...}}` under `architectures.{arch}`");
    Err(err.with_hint(hint).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_types_are_of_their_family_s_architecture() {
        for t in [
            "t4g.small",
            "m7g.large",
            "c7gn.xlarge",
            "m6gd.metal",
            "is4gen.large",
            "im4gn.large",
            "a1.medium",
            "g5g.xlarge",
            "x2gd.large",
            "r8g.large",
        ] {
            assert_eq!(instance_arch(t), Some("arm64"), "{t}");
        }
        for t in [
            "t3.small",
            "m7i-flex.large",
            "g4dn.xlarge",
            "g5.xlarge",
            "c5n.large",
            "x2iedn.large",
            "u-6tb1.metal",
            "inf2.xlarge",
            "trn1n.32xlarge",
            "p5.48xlarge",
            "gr6.4xlarge",
        ] {
            assert_eq!(instance_arch(t), Some("x86_64"), "{t}");
        }
        assert_eq!(instance_arch("mac2.metal"), None);
    }
}
