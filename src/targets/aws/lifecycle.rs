//! Image lifecycle on EC2 (issue 27): the deprecation time a bake sets (`deprecate_after`),
//! deregistration protection that follows what a stack publishes, and the account's Allowed
//! AMIs settings read before a bake. The pure decisions live here; the calls are methods of
//! [`super::ec2::Ec2`] (`lifecycle calls` there).

use std::collections::BTreeSet;

use aws_sdk_ec2::types::Image;

/// What DescribeImages says of an AMI's lifecycle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageLifecycle {
    /// `DeregistrationProtection` as EC2 says it (`disabled`, `enabled-without-cooldown`, …).
    pub protection: Option<String>,
    /// `DeprecationTime` (ISO 8601), when one is set.
    pub deprecation_time: Option<String>,
    /// `ImageOwnerAlias` (`amazon`, `aws-marketplace`), for the Allowed AMIs check.
    pub owner_alias: Option<String>,
}

impl ImageLifecycle {
    pub fn of(i: &Image) -> ImageLifecycle {
        ImageLifecycle {
            protection: i.deregistration_protection().map(String::from),
            deprecation_time: i.deprecation_time().map(String::from),
            owner_alias: i.image_owner_alias().map(String::from),
        }
    }

    /// Whether DeregisterImage would refuse it: any protection but `disabled` (a protection
    /// disabled with a cooldown still holds for 24 hours, and EC2 says so in its value).
    pub fn protected(&self) -> bool {
        self.protection.as_deref().is_some_and(|p| p != "disabled")
    }
}

/// The deprecation time of an AMI baked at `now` (seconds since the epoch) with
/// `deprecate_after` seconds: EC2's `DeprecateAt`, rounded up to the minute (EC2 keeps minutes).
pub fn deprecate_at(now: u64, deprecate_after: u64) -> u64 {
    (now + deprecate_after).div_ceil(60) * 60
}

/// The protection moves of a publish or rollback: (protect, unprotect). What the template
/// held before and no longer holds loses its protection; what it holds now gets it (again:
/// enabling is idempotent, so an earlier run that failed half-way is finished).
pub fn moves(before: &BTreeSet<String>, after: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    let protect = after.iter().cloned().collect();
    let unprotect = before.difference(after).cloned().collect();
    (protect, unprotect)
}

/// One criterion of the account's Allowed AMIs settings, as GetAllowedImagesSettings says it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Criterion {
    /// Account ids, `amazon`, `aws-marketplace`, `aws-backup-vault`, `none`.
    pub providers: Vec<String>,
    /// Name patterns (`*` and `?`).
    pub names: Vec<String>,
    pub marketplace_codes: Vec<String>,
    pub max_days_since_created: Option<i32>,
    pub max_days_since_deprecated: Option<i32>,
}

/// The account's Allowed AMIs settings in one region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedImages {
    /// `disabled`, `audit-mode` or `enabled`.
    pub state: String,
    pub criteria: Vec<Criterion>,
    /// `account` or `declarative-policy`.
    pub managed_by: Option<String>,
}

/// What is known of a source AMI for the Allowed AMIs check.
pub struct Candidate<'a> {
    pub owner: &'a str,
    pub owner_alias: Option<&'a str>,
    pub name: &'a str,
    /// Seconds since the epoch.
    pub created: Option<u64>,
    pub deprecated: Option<u64>,
}

/// `*` and `?` wildcards, as EC2 matches image names.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether one criterion admits the AMI: each condition it sets must hold. A marketplace
/// product code cannot be checked from here, so a criterion that needs one does not count.
fn admits(c: &Criterion, a: &Candidate<'_>, now: u64) -> bool {
    let provider = c.providers.is_empty()
        || c.providers
            .iter()
            .any(|p| p == a.owner || Some(p.as_str()) == a.owner_alias);
    let name = c.names.is_empty() || c.names.iter().any(|n| wildcard(n, a.name));
    let days = |t: u64| now.saturating_sub(t) / 86_400;
    let created = c
        .max_days_since_created
        .is_none_or(|max| a.created.is_some_and(|t| days(t) <= max.max(0) as u64));
    let deprecated = c.max_days_since_deprecated.is_none_or(|max| {
        a.deprecated
            .is_none_or(|t| t > now || days(t) <= max.max(0) as u64)
    });
    provider && name && created && deprecated && c.marketplace_codes.is_empty()
}

/// Pure: what to say of the source AMI before a bake, or None when nothing stands in its way.
pub fn allowed_images_finding(
    settings: &AllowedImages,
    ami_id: &str,
    a: &Candidate<'_>,
    now: u64,
) -> Option<String> {
    if settings.state == "disabled" || settings.criteria.iter().any(|c| admits(c, a, now)) {
        return None;
    }
    let by = match settings.managed_by.as_deref() {
        Some("declarative-policy") => " (set by your organization's declarative policy)",
        _ => "",
    };
    Some(match settings.state.as_str() {
        "audit-mode" => format!(
            "source AMI {ami_id} (owner {}) matches none of the account's Allowed AMIs criteria{by}: they are in audit mode now, and once enabled EC2 refuses to launch it, so this bake's builder would not start",
            a.owner
        ),
        _ => format!(
            "source AMI {ami_id} (owner {}) matches none of the account's Allowed AMIs criteria{by}: EC2 refuses to launch it, so Packer's builder cannot start",
            a.owner
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deprecation_is_rounded_up_to_the_minute() {
        assert_eq!(deprecate_at(1_000_000_001, 90 * 86_400), 1_007_776_020);
        assert_eq!(deprecate_at(1_000_000_020, 90 * 86_400), 1_007_776_020);
        assert_eq!(deprecate_at(60, 60), 120);
    }

    #[test]
    fn protection_holds_unless_disabled() {
        let p = |s: Option<&str>| ImageLifecycle {
            protection: s.map(String::from),
            ..Default::default()
        };
        assert!(p(Some("enabled-without-cooldown")).protected());
        assert!(p(Some("disabled-until 2026-12-08T00:00:00Z")).protected());
        assert!(!p(Some("disabled")).protected() && !p(None).protected());
    }

    #[test]
    fn allowed_amis_admit_by_provider_name_and_age() {
        let now = 1_800_000_000;
        let debian = Candidate {
            owner: "136693071363",
            owner_alias: None,
            name: "debian-12-amd64-20260101-1",
            created: Some(now - 40 * 86_400),
            deprecated: None,
        };
        let on = |criteria| AllowedImages {
            state: "enabled".into(),
            criteria,
            managed_by: Some("account".into()),
        };
        let c = |providers: &[&str], names: &[&str], days: Option<i32>| Criterion {
            providers: providers.iter().map(|s| s.to_string()).collect(),
            names: names.iter().map(|s| s.to_string()).collect(),
            max_days_since_created: days,
            ..Default::default()
        };
        let find = |s: &AllowedImages| allowed_images_finding(s, "ami-1", &debian, now);
        assert!(find(&on(vec![c(&["136693071363"], &[], None)])).is_none());
        assert!(find(&on(vec![c(&[], &["debian-12-*"], Some(60))])).is_none());
        let refused = find(&on(vec![c(&["amazon"], &[], None)])).unwrap();
        assert!(refused.contains("EC2 refuses to launch it"), "{refused}");
        // too old for the one criterion that names it
        assert!(find(&on(vec![c(&["136693071363"], &[], Some(30))])).is_some());
        let mut audit = on(vec![c(&["amazon"], &[], None)]);
        audit.state = "audit-mode".into();
        assert!(find(&audit).unwrap().contains("audit mode"));
        audit.state = "disabled".into();
        assert!(find(&audit).is_none());
        assert!(
            wildcard("debian-1?-amd64-*", "debian-12-amd64-x") && !wildcard("ubuntu*", "debian")
        );
    }
}
