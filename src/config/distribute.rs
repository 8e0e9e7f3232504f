//! `distribute:` (issue 27): where an AMI goes after its bake. In an image's aws source it
//! covers every AMI of the image; in a stack file it replaces the image's for the stack's
//! layer AMIs. Each value is checked here, at its line: regions, KMS keys, account ids, OU
//! ARNs, and a public share only when written out as `public: true`.

use super::model::{AwsSource, Distribute, DistributeRegion};
use super::vars::{VarValue, Vars};
use super::{ConfigError, SourceFile};

/// The KMS aliases of AWS-managed keys EBS uses: an AMI encrypted with one cannot be shared.
const AWS_MANAGED_EBS: &str = "alias/aws/ebs";

/// An error at the first line at or below `path` that shows `value`; at `path` when none does.
fn at_value(
    file: &SourceFile,
    path: &str,
    value: &str,
    message: String,
    hint: &str,
) -> ConfigError {
    at_nth(file, path, (value, 0), message, hint)
}

/// [`at_value`] at the `n`th (from 0) line that shows `value`.
fn at_nth(
    file: &SourceFile,
    path: &str,
    (value, n): (&str, usize),
    message: String,
    hint: &str,
) -> ConfigError {
    let (line, column) = locate_value(&file.text, path, value, n);
    file.error_at(line, column, Some(path.to_string()), message)
        .with_hint(hint.to_string())
        .into()
}

/// The (line, column) of `value` written at or after `path`'s key (a flow or block list item,
/// or a key of a list item's mapping), else of the nearest enclosing key the file shows.
fn locate_value(text: &str, path: &str, value: &str, n: usize) -> (usize, usize) {
    let mut p = path;
    let (line, column) = loop {
        if let Some(found) = super::yaml::locate(text, p, None) {
            break found;
        }
        match p.rsplit_once('.') {
            Some((head, _)) => p = head,
            None => break (1, 1),
        }
    };
    let found = text
        .lines()
        .enumerate()
        .skip(line - 1)
        .filter_map(|(i, l)| l.find(value).map(|c| (i + 1, c + 1)))
        .filter(|_| !value.is_empty())
        .nth(n);
    found.unwrap_or((line, column))
}

/// A 12-digit AWS account id.
pub fn valid_account(s: &str) -> bool {
    s.len() == 12 && s.chars().all(|c| c.is_ascii_digit())
}

/// An AWS Organizations OU ARN: `arn:PARTITION:organizations::ACCOUNT:ou/o-ORG/ou-ROOT-OU`
/// (`o-` and 10 to 32 lowercase letters or digits; `ou-`, 4 to 32, `-`, 8 to 32).
pub fn valid_ou_arn(s: &str) -> bool {
    let lower_alnum = |x: &str, lo: usize, hi: usize| {
        (lo..=hi).contains(&x.len())
            && x.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    };
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let ["arn", partition, "organizations", "", account, resource] = parts.as_slice() else {
        return false;
    };
    let ids: Vec<&str> = resource.split('/').collect();
    ["aws", "aws-us-gov", "aws-cn"].contains(partition)
        && valid_account(account)
        && matches!(ids.as_slice(), ["ou", org, ou]
            if org.strip_prefix("o-").is_some_and(|o| lower_alnum(o, 10, 32))
            && ou.strip_prefix("ou-").and_then(|o| o.split_once('-')).is_some_and(|(r, u)| lower_alnum(r, 4, 32) && lower_alnum(u, 8, 32)))
}

/// Whether a KMS key names EBS's AWS-managed key (`alias/aws/ebs` or its alias ARN).
pub fn is_aws_managed_ebs_key(key: &str) -> bool {
    key == AWS_MANAGED_EBS || key.ends_with(&format!(":{AWS_MANAGED_EBS}"))
}

/// The region a KMS key ARN names; None for a key id or `alias/NAME`.
fn kms_arn_region(key: &str) -> Option<&str> {
    key.strip_prefix("arn:")?.split(':').nth(2)
}

/// Checks a `distribute:` block at `field` (`sources.aws.distribute` or `distribute`), whose
/// AMIs are baked from `source` and launch with `launch_vars`.
pub fn check(
    file: &SourceFile,
    field: &str,
    d: &Distribute,
    source: &AwsSource,
    launch_vars: &[&Vars],
) -> Result<(), ConfigError> {
    for (i, r) in d.regions.iter().enumerate() {
        check_region(file, field, d, i, r, &source.region)?;
        if source.copy_to_regions.contains(&r.region) {
            return Err(at_value(file, &format!("{field}.regions"), &r.region, format!("region {} is also in `copy_to_regions`", r.region), "list it in one place: `distribute.regions` (parbake's copy, with its own KMS key) or `copy_to_regions` (Packer's)"));
        }
    }
    check_accounts(file, field, d)?;
    check_public(file, field, d, launch_vars)
}

/// One `regions` item: a region other than the home region, listed once, with a customer key
/// of that region when it names one.
fn check_region(
    file: &SourceFile,
    field: &str,
    d: &Distribute,
    i: usize,
    r: &DistributeRegion,
    home: &str,
) -> Result<(), ConfigError> {
    let path = format!("{field}.regions");
    let name = &r.region;
    if !super::names::valid_region(name) {
        return Err(at_value(file, &path, name, format!("{name:?} is not an AWS region"), "write a region such as `eu-central-1`: `{region: eu-central-1, kms_key_id: alias/ami-key}`"));
    }
    if name == home {
        return Err(at_value(
            file,
            &path,
            name,
            format!("{name} is the region the AMI is baked in"),
            "list only the other regions the AMI is copied to",
        ));
    }
    let before = d.regions[..i].iter().filter(|o| &o.region == name).count();
    if before > 0 {
        return Err(at_nth(
            file,
            &path,
            (name, before),
            format!("region {name} is listed twice"),
            "list each region once, with its own `kms_key_id`",
        ));
    }
    let Some(key) = &r.kms_key_id else {
        return Ok(());
    };
    if !super::aws_settings::valid_kms_key(key) {
        return Err(at_value(file, &path, key, format!("{key:?} is not a KMS key"), "a key ARN `arn:aws:kms:REGION:ACCOUNT:key/UUID`, an alias ARN `arn:aws:kms:REGION:ACCOUNT:alias/NAME`, `alias/NAME`, or a key id (UUID)"));
    }
    if is_aws_managed_ebs_key(key) {
        return Err(at_value(file, &path, key, format!("{key} is EBS's AWS-managed key, which cannot be shared or named on a copy"), "name a customer-managed key of that region (`aws kms create-key`, then an alias), or leave `kms_key_id` out to use the region's default EBS key"));
    }
    match kms_arn_region(key) {
        Some(other) if other != name => Err(at_value(
            file,
            &path,
            key,
            format!("the key {key} is in {other}, not in {name}"),
            "a KMS key is regional: name a key of the region the copy goes to",
        )),
        _ => Ok(()),
    }
}

/// `accounts` of 12 digits and `organizational_units` of OU ARNs; `all` is `public: true`.
fn check_accounts(file: &SourceFile, field: &str, d: &Distribute) -> Result<(), ConfigError> {
    let public =
        "a public share is written out: `public: true` (launch permission for every AWS account)";
    for (key, list, ok, what, hint) in [
        (
            "accounts",
            &d.accounts,
            valid_account as fn(&str) -> bool,
            "a 12-digit AWS account id",
            "write the account id as a quoted string of 12 digits, e.g. `\"123456789012\"`",
        ),
        (
            "organizational_units",
            &d.organizational_units,
            valid_ou_arn,
            "an organizational unit ARN",
            "write the OU's ARN: `arn:aws:organizations::ACCOUNT:ou/o-ORGID/ou-ROOT-OUID`",
        ),
    ] {
        let path = format!("{field}.{key}");
        for v in list {
            if v.eq_ignore_ascii_case("all") {
                return Err(at_value(
                    file,
                    &path,
                    v,
                    "`all` would share the AMI with everyone".into(),
                    public,
                ));
            }
            if !ok(v) {
                return Err(at_value(
                    file,
                    &path,
                    v,
                    format!("{v:?} is not {what}"),
                    hint,
                ));
            }
        }
    }
    Ok(())
}

/// `public: true` never with a secret among the launch vars it would be launched with.
fn check_public(
    file: &SourceFile,
    field: &str,
    d: &Distribute,
    launch_vars: &[&Vars],
) -> Result<(), ConfigError> {
    if !d.public {
        return Ok(());
    }
    let secret = launch_vars
        .iter()
        .flat_map(|v| v.iter())
        .find(|(_, v)| matches!(v, VarValue::Secret(_)));
    match secret {
        Some((name, _)) => Err(super::aws_settings::at(
            file,
            &format!("{field}.public"),
            format!("`public: true` with a secret in the launch vars (`{name}`)"),
            "an AMI shared with everyone is launched by strangers with your user-data conventions; keep secrets off public stacks: drop `public: true` or the `!secret` launch var",
        )),
        None => Ok(()),
    }
}

/// The `distribute` of a layer AMI of `image` (a stack layer of `stack`: the stack's instead
/// of the image's), None when neither sets one.
pub fn of(project: &super::Project, image: &str, stack: Option<&str>) -> Option<Distribute> {
    let from_stack = stack
        .and_then(|s| project.stacks.get(s))
        .and_then(|st| st.def.distribute.clone());
    from_stack.or_else(|| {
        project
            .images
            .get(image)
            .and_then(|i| i.def.sources.aws.as_ref())
            .and_then(|a| a.distribute.clone())
    })
}

/// Every region a `distribute:` of the project copies to.
pub fn regions(project: &super::Project) -> Vec<String> {
    let images = project
        .images
        .values()
        .filter_map(|i| i.def.sources.aws.as_ref()?.distribute.as_ref());
    let stacks = project
        .stacks
        .values()
        .filter_map(|s| s.def.distribute.as_ref());
    images
        .chain(stacks)
        .flat_map(|d| d.regions.iter().map(|r| r.region.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_ous_and_aws_managed_keys() {
        assert!(valid_account("123456789012"));
        for bad in ["12345678901", "1234567890123", "12345678901a", "", "all"] {
            assert!(!valid_account(bad), "{bad:?}");
        }
        assert!(valid_ou_arn(
            "arn:aws:organizations::123456789012:ou/o-a1b2c3d4e5/ou-ab12-cdef3456"
        ));
        for bad in [
            "ou-ab12-cdef3456",
            "arn:aws:organizations::123456789012:ou/o-a1b2/ou-ab12-cdef3456",
            "arn:aws:organizations:us-east-1:123456789012:ou/o-a1b2c3d4e5/ou-ab12-cdef3456",
            "arn:aws:organizations::123456789012:organization/o-a1b2c3d4e5",
            "arn:aws:organizations::123456789012:ou/o-a1b2c3d4e5/ou-AB12-cdef3456",
            "arn:aws:organizations::12345678901:ou/o-a1b2c3d4e5/ou-ab12-cdef3456",
        ] {
            assert!(!valid_ou_arn(bad), "{bad:?}");
        }
        assert!(is_aws_managed_ebs_key("alias/aws/ebs"));
        assert!(is_aws_managed_ebs_key(
            "arn:aws:kms:eu-west-1:123456789012:alias/aws/ebs"
        ));
        assert!(!is_aws_managed_ebs_key("alias/aws-ebs-mine"));
        assert_eq!(
            kms_arn_region("arn:aws:kms:eu-west-1:123456789012:alias/k"),
            Some("eu-west-1")
        );
        assert_eq!(kms_arn_region("alias/k"), None);
    }

    proptest::proptest! {
        /// Whatever is written, an accepted account id or OU ARN holds only what EC2's
        /// LaunchPermission takes: digits, lowercase letters and `:/-`.
        #[test]
        fn accepted_accounts_and_ous_are_plain(s in proptest::prop_oneof![
            "(?s).{0,80}",
            "arn:aws:organizations::[0-9]{12}:ou/o-[a-z0-9\"$ ]{8,12}/ou-[a-z0-9]{4}-[a-z0-9\n]{6,10}",
        ]) {
            if valid_account(&s) || valid_ou_arn(&s) {
                proptest::prop_assert!(s.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || ":/-".contains(c)));
            }
        }
    }
}
