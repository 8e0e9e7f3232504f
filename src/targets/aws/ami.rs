//! AMIs as parbake sees them: picking the newest source AMI (EC2 has no server-side sort), and
//! the image manifest carried in an AMI's `parbake:*` tags (see `render::packer::ami_tags`).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ami {
    pub id: String,
    pub name: String,
    /// ISO 8601 as EC2 returns it (`2024-03-15T17:20:00.000Z`), so text order is time order.
    pub creation_date: String,
    pub architecture: String,
    pub owner: String,
    pub state: String,
    pub tags: BTreeMap<String, String>,
    /// Sum of the EBS volume sizes in the block device mappings.
    pub size_gib: i64,
    /// Its deregistration protection, deprecation time and owner alias, as EC2 says them.
    pub lifecycle: super::lifecycle::ImageLifecycle,
}

impl Ami {
    /// The architecture it was baked for: its `parbake:arch` tag, else EC2's own.
    pub fn arch(&self) -> String {
        self.tags
            .get("parbake:arch")
            .cloned()
            .unwrap_or_else(|| self.architecture.clone())
    }
}

/// Seconds since the Unix epoch of an EC2 timestamp (`2024-03-15T17:20:00.000Z`).
pub fn epoch_of(iso: &str) -> Option<u64> {
    let num = |r: std::ops::Range<usize>| iso.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // days from civil (Howard Hinnant's algorithm)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// The newest available AMI by CreationDate. CreationDate has one-second resolution, so ties
/// happen; they are broken by name, then id (both highest first), so every run and every
/// machine picks the same AMI whatever order EC2 listed them in.
pub fn newest(amis: &[Ami]) -> Option<&Ami> {
    amis.iter()
        .filter(|a| a.state == "available")
        .max_by(|a, b| {
            (a.creation_date.as_str(), a.name.as_str(), a.id.as_str()).cmp(&(
                b.creation_date.as_str(),
                b.name.as_str(),
                b.id.as_str(),
            ))
        })
}

/// The `role=hash-prefix` entries of the `parbake:installed-1`, `-2`, … tags (split to fit
/// EC2's tag length; see `render::packer::ami_tags`), each with its tag's number.
fn installed_entries(tags: &BTreeMap<String, String>) -> impl Iterator<Item = (usize, &str)> {
    (1..)
        .map_while(|n| Some((n, tags.get(&format!("parbake:installed-{n}"))?)))
        .flat_map(|(n, chunk)| {
            chunk
                .split(',')
                .filter(|e| !e.is_empty())
                .map(move |e| (n, e))
        })
}

/// The layer inputs an AMI's tags record (see `plan::changed_inputs`): role hash prefixes,
/// the parent, the version and the `parbake:inputs` digests.
pub fn inputs_from_tags(tags: &BTreeMap<String, String>, region: &str) -> crate::plan::Inputs {
    let mut inputs = crate::plan::Inputs::new();
    for (_, entry) in installed_entries(tags) {
        if let Some((role, prefix)) = entry.split_once('=') {
            inputs.insert(format!("role {role}"), prefix.to_string());
        }
    }
    if let Some(p) = tags.get("parbake:parent-layer") {
        inputs.insert("parent".into(), format!("layer:{p}"));
    } else if let Some(src) = tags.get("parbake:source-ami") {
        // an AMI baked before `parbake:arch` recorded the identity without it
        let identity = match tags.get("parbake:arch") {
            Some(arch) => crate::plan::source_identity::aws(region, src, arch),
            None => crate::plan::source_identity::aws_without_arch(region, src),
        };
        inputs.insert("parent".into(), format!("source:{identity}"));
    }
    if let Some(v) = tags.get("parbake:version") {
        inputs.insert("parbake".into(), v.clone());
    }
    for (k, v) in tags
        .get("parbake:inputs")
        .into_iter()
        .flat_map(|t| t.split(';'))
        .filter_map(|e| e.split_once('='))
    {
        inputs.insert(k.to_string(), v.to_string());
    }
    inputs
}

/// What an AMI's tags say about the layer baked into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagManifest {
    pub layer_hash: String,
    pub layer_name: String,
    pub image: String,
    pub stack: Option<String>,
    pub parent_ami: Option<String>,
    pub baked: Vec<String>,
    /// Role name → the first 16 hex digits of its content hash.
    pub installed: BTreeMap<String, String>,
    pub manifest_format: u32,
}

/// Reads the `parbake:*` tags back. Errors name the missing or malformed tag.
pub fn manifest_from_tags(
    ami_id: &str,
    tags: &BTreeMap<String, String>,
) -> Result<TagManifest, String> {
    let get = |k: &str| {
        tags.get(k)
            .cloned()
            .ok_or_else(|| format!("AMI {ami_id} has no `{k}` tag; was it baked by parbake?"))
    };
    let format: u32 = get("parbake:manifest-format")?
        .parse()
        .map_err(|_| format!("AMI {ami_id}: tag `parbake:manifest-format` is not a number"))?;
    let mut installed = BTreeMap::new();
    for (n, entry) in installed_entries(tags) {
        let (role, hash) = entry.split_once('=').ok_or_else(|| {
            format!("AMI {ami_id}: malformed entry `{entry}` in tag `parbake:installed-{n}`")
        })?;
        installed.insert(role.to_string(), hash.to_string());
    }
    if installed.is_empty() {
        return Err(format!(
            "AMI {ami_id} has no `parbake:installed-1` tag; was it baked by parbake?"
        ));
    }
    let layer_hash = get("parbake:layer-hash")?;
    if layer_hash.len() != 64 || !layer_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "AMI {ami_id}: tag `parbake:layer-hash` is not a sha256 hex digest"
        ));
    }
    Ok(TagManifest {
        layer_hash,
        layer_name: get("parbake:layer")?,
        image: get("parbake:image")?,
        stack: tags.get("parbake:stack").cloned(),
        parent_ami: tags.get("parbake:parent-ami").cloned(),
        baked: get("parbake:baked")?
            .split(',')
            .filter(|r| !r.is_empty())
            .map(String::from)
            .collect(),
        installed,
        manifest_format: format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<Ami> {
        let text = include_str!("../../../tests/fixtures/moto-amis.json");
        let raw: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
        raw.iter()
            .map(|v| Ami {
                id: v["ami_id"].as_str().unwrap().into(),
                name: v["name"].as_str().unwrap().into(),
                creation_date: v["creation_date"].as_str().unwrap().into(),
                architecture: v["architecture"].as_str().unwrap_or("x86_64").into(),
                owner: v["owner_id"].as_str().unwrap().into(),
                state: v["state"].as_str().unwrap_or("available").into(),
                tags: BTreeMap::new(),
                size_gib: 0,
                lifecycle: Default::default(),
            })
            .collect()
    }

    /// What DescribeImages(owners, name pattern, architecture) returns, in a scrambled order.
    fn matching(owner: &str, prefix: &str, arch: &str, reverse: bool) -> Vec<Ami> {
        let mut v: Vec<Ami> = fixture()
            .into_iter()
            .filter(|a| a.owner == owner && a.name.starts_with(prefix) && a.architecture == arch)
            .collect();
        if reverse {
            v.reverse();
        }
        v
    }

    #[test]
    fn newest_breaks_creation_date_ties_the_same_way_whatever_the_order() {
        for reverse in [false, true] {
            let amis = matching("136693071363", "debian-12-amd64-", "x86_64", reverse);
            assert_eq!(amis.len(), 6);
            assert_eq!(newest(&amis).unwrap().id, "ami-0de0b12a7f3c000b2");
        }
        assert_eq!(
            newest(&matching(
                "136693071363",
                "debian-12-arm64-",
                "arm64",
                false
            ))
            .unwrap()
            .id,
            "ami-0de0b12a7f3c00a01"
        );
        assert!(newest(&[]).is_none());
    }

    #[test]
    fn epochs_of_ec2_timestamps() {
        assert_eq!(epoch_of("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(epoch_of("2024-03-15T17:20:00.000Z"), Some(1_710_523_200));
        assert_eq!(epoch_of("2000-02-29T12:00:01Z"), Some(951_825_601));
        assert_eq!(epoch_of("garbage"), None);
    }

    #[test]
    fn tags_round_trip_through_the_manifest_reader() {
        let mut tags = BTreeMap::new();
        for (k, v) in [
            ("parbake:layer-hash", "ab".repeat(32)),
            ("parbake:layer", "debian12-web".into()),
            ("parbake:image", "debian12".into()),
            ("parbake:stack", "web".into()),
            ("parbake:baked", "base,users,nginx".into()),
            ("parbake:manifest-format", "1".into()),
            (
                "parbake:installed-1",
                "base=0123456789abcdef,nginx=fedcba9876543210".into(),
            ),
            ("parbake:installed-2", "users=1111222233334444".into()),
        ] {
            tags.insert(k.to_string(), v);
        }
        let m = manifest_from_tags("ami-1", &tags).unwrap();
        assert_eq!(m.baked, ["base", "users", "nginx"]);
        assert_eq!(m.installed.len(), 3);
        assert_eq!(m.installed["users"], "1111222233334444");
        tags.remove("parbake:baked");
        let err = manifest_from_tags("ami-1", &tags).unwrap_err();
        assert!(
            err.contains("ami-1") && err.contains("parbake:baked"),
            "{err}"
        );
    }
}
