//! `parbake publish --target aws` and `parbake rollback --target aws`: the stack's launch
//! template (`publish: {launch_template: NAME}` in the stack file) gets a new version holding
//! the stack's current top AMI and exactly the user-data `userdata --target aws` gives for it,
//! made the default; rollback makes the stack's parbake-published version before the default
//! the default again. With `ssm_parameter`, the parameter follows: it holds the default's AMI
//! id. Each parbake version says what it holds in its description (`parbake stack=web
//! layer=<hash> userdata=<sha256> verified`), which rollback reads. prune never removes an AMI
//! a launch template version names.
//!
//! Both are all or nothing: everything that can be checked is checked before anything moves
//! (the template belongs to this stack, DryRun calls, the parameter reads), and what moved is
//! put back when a later step fails ([`super::undo`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::consistency::plan_for_target;
use super::ec2::{Ec2, Endpoint, LaunchTemplate, NewTemplateVersion, TemplateVersion};
use super::lifecycle;
use super::ssm::Ssm;
use super::undo::{put_parameter_command, Moved};
use crate::config::Project;
use crate::error::{Error, Result};
use crate::plan::{Plan, PlanRequest};
use crate::runtime::{runtime, Threads};

/// The AMI tag `verify` sets: the sha256 of the user-data it passed with.
pub const VERIFIED_USERDATA_TAG: &str = "parbake:verified-userdata";

/// One passing verdict per user-data: `parbake:verified:<sha256>` = when it passed. Stacks
/// that share an AMI each keep theirs.
const VERIFIED_PREFIX: &str = "parbake:verified:";

/// How many user-data verdicts an AMI keeps (EC2 allows 50 tags on a resource).
const VERDICTS_KEPT: usize = 10;

fn verified_key(sha: &str) -> String {
    format!("{VERIFIED_PREFIX}{sha}")
}

/// Whether the AMI passed `verify` with exactly the user-data `sha` (its own verdict tag, or
/// the single tag older parbake versions set).
pub fn verified_with(tags: &BTreeMap<String, String>, sha: &str) -> bool {
    tags.contains_key(&verified_key(sha))
        || tags.get(VERIFIED_USERDATA_TAG).map(String::as_str) == Some(sha)
}

/// Pure: the tags a verify sets and removes on its AMI. A pass adds the user-data's own
/// verdict (and the latest-pass tag) and drops the oldest verdicts beyond [`VERDICTS_KEPT`];
/// a failure removes that user-data's verdict only, so other stacks' stay.
pub fn verdict_tags(
    tags: &BTreeMap<String, String>,
    sha: &str,
    passed: bool,
    now: u64,
) -> (Vec<(String, String)>, Vec<String>) {
    let key = verified_key(sha);
    if !passed {
        let mut remove: Vec<String> = tags.contains_key(&key).then_some(key).into_iter().collect();
        if tags.get(VERIFIED_USERDATA_TAG).map(String::as_str) == Some(sha) {
            remove.push(VERIFIED_USERDATA_TAG.to_string());
        }
        return (Vec::new(), remove);
    }
    let mut others: Vec<(u64, &String)> = tags
        .iter()
        .filter(|(k, _)| k.starts_with(VERIFIED_PREFIX) && **k != key)
        .map(|(k, v)| (v.parse().unwrap_or(0), k))
        .collect();
    others.sort();
    let excess = (others.len() + 1).saturating_sub(VERDICTS_KEPT);
    let remove = others
        .iter()
        .take(excess)
        .map(|(_, k)| (*k).clone())
        .collect();
    let set = vec![
        (key, now.to_string()),
        (VERIFIED_USERDATA_TAG.to_string(), sha.to_string()),
    ];
    (set, remove)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AwsVersion {
    pub version: i64,
    pub ami: Option<String>,
    pub description: String,
}

/// The SSM parameter a publish or rollback set, and its new version.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ParameterSet {
    pub name: String,
    pub ami: String,
    pub version: i64,
}

#[derive(Debug, Serialize)]
pub struct AwsPublishReport {
    pub stack: String,
    pub region: String,
    pub launch_template: String,
    pub launch_template_id: String,
    pub published: AwsVersion,
    pub previous_default: Option<AwsVersion>,
    pub layer_hash: String,
    pub userdata_sha256: String,
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssm_parameter: Option<ParameterSet>,
    /// The default already was exactly this AMI and user-data: nothing was added or moved.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
    pub protection: Protection,
    /// What the reader should know and parbake did not act on, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Deregistration protection as a publish or rollback moved it (see [`move_protection`]).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Protection {
    /// The AMIs the template holds now (its default's and its rollback target's): protected.
    pub protected: Vec<String>,
    /// The AMIs it held before and no longer does: protection removed.
    pub unprotected: Vec<String>,
    /// What could not be done (the template has moved all the same): one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct AwsRollbackReport {
    pub stack: String,
    pub region: String,
    pub launch_template: String,
    pub from: AwsVersion,
    pub to: AwsVersion,
    /// Versions between `to` and `from` that rollback passed over: hand-made ones, or not
    /// parbake's for this stack.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssm_parameter: Option<ParameterSet>,
    pub protection: Protection,
}

/// After a publish or rollback (or a publish that changed nothing): EC2's deregistration
/// protection on what stack's launch template `template` holds now, and off what it held
/// before (`before`, [`held_amis`]) and no longer does. The template has moved
/// already, so a failure here is reported, not undone: publish again to finish it.
async fn move_protection(
    ec2: &Ec2,
    template: &str,
    stack: &str,
    before: &BTreeSet<String>,
) -> Protection {
    let mut p = Protection::default();
    let after = match ec2.launch_template(template).await {
        Ok(Some(t)) => held_amis(&t, stack),
        Ok(None) => BTreeSet::new(),
        Err(e) => {
            p.failed
                .push(format!("protection not moved: {}", first_line(&e)));
            return p;
        }
    };
    let (protect, unprotect) = lifecycle::moves(before, &after);
    for ami in protect {
        match ec2.protect(&ami).await {
            Ok(()) => p.protected.push(ami),
            Err(e) => p.failed.push(first_line(&e)),
        }
    }
    for ami in unprotect {
        match ec2.unprotect(&ami).await {
            Ok(()) => p.unprotected.push(ami),
            Err(e) => p.failed.push(first_line(&e)),
        }
    }
    p
}

fn first_line(e: &Error) -> String {
    let text = crate::error::Report(e).to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

fn version_of(v: &TemplateVersion) -> AwsVersion {
    AwsVersion {
        version: v.number,
        ami: v.image_id.clone(),
        description: v.description.clone(),
    }
}

/// Where a stack publishes on EC2.
struct PublishTarget {
    template: String,
    /// The stack file's own name, when the architecture was added to it (an image that
    /// bakes several).
    unsuffixed: Option<String>,
    ssm_parameter: Option<String>,
    region: String,
    instance_type: String,
    /// `HttpTokens` of a template parbake creates (the source's `imds`).
    http_tokens: &'static str,
    /// The instance profile of a template parbake creates.
    instance_profile: Option<String>,
}

/// Sets the stack's SSM parameter, if it names one, to `ami`.
async fn set_parameter(t: &PublishTarget, ami: Option<&str>) -> Result<Option<ParameterSet>> {
    let (Some(name), Some(ami)) = (&t.ssm_parameter, ami) else {
        return Ok(None);
    };
    let ssm = Ssm::connect(&t.region, &Endpoint::from_env()).await;
    let version = ssm.put_ami(name, ami).await?;
    Ok(Some(ParameterSet {
        name: name.clone(),
        ami: ami.to_string(),
        version,
    }))
}

/// The SSM parameters the project's stacks publish to in `region` (one per architecture of
/// an image that bakes several).
pub fn parameters_in(project: &Project, region: &str) -> Vec<String> {
    let mut out = Vec::new();
    for st in project.stacks.values() {
        let Some(src) = project.images[&st.def.image].def.sources.aws.as_ref() else {
            continue;
        };
        let Some(name) = st
            .def
            .publish
            .as_ref()
            .and_then(|p| p.ssm_parameter.as_ref())
        else {
            continue;
        };
        if src.region != region {
            continue;
        }
        for arch in src.arches() {
            let chain = src.for_arch(&arch).expect("a listed architecture projects");
            out.push(crate::config::arch::arch_named(name, &chain));
        }
    }
    out
}

/// The stack's launch template, SSM parameter, and its image's region and instance type.
fn publish_target(project: &Project, stack: &str) -> Result<PublishTarget> {
    let st = project
        .stacks
        .get(stack)
        .ok_or_else(|| Error::user(format!("unknown stack `{stack}`")))?;
    let publish = st.def.publish.as_ref().ok_or_else(|| {
        Error::user(format!(
            "stack {stack} names no launch template to publish to"
        ))
        .with_hint(format!(
            "add to {}: `publish: {{launch_template: {stack}-fleet}}`",
            st.file.display
        ))
    })?;
    let src = project.images[&st.def.image]
        .def
        .sources
        .aws
        .as_ref()
        .ok_or_else(|| {
            Error::user(format!("image {} has no aws source", st.def.image))
                .with_hint("add `sources.aws` to the image file")
        })?;
    // one launch template (and parameter) per architecture: a version holds one AMI and one
    // instance type, and an Auto Scaling group mixes architectures by per-type templates
    let named = |n: &String| crate::config::arch::arch_named(n, src);
    Ok(PublishTarget {
        template: named(&publish.launch_template),
        unsuffixed: src.arch_suffix().map(|_| publish.launch_template.clone()),
        ssm_parameter: publish.ssm_parameter.as_ref().map(named),
        region: src.region.clone(),
        instance_type: src.instance_type.clone(),
        http_tokens: src.imds.http_tokens(),
        instance_profile: src.instance_profile.clone(),
    })
}

/// A parbake version's description (at most 255 characters, as EC2 allows).
fn description(stack: &str, layer_hash: &str, sha: &str, verified: bool) -> String {
    format!(
        "parbake stack={stack} layer={} userdata={sha} {}",
        &layer_hash[..16],
        if verified { "verified" } else { "unverified" }
    )
}

fn is_parbake(v: &TemplateVersion) -> bool {
    v.description.starts_with("parbake stack=")
}

pub fn publish(project: &Project, req: &PlanRequest, unverified: bool) -> Result<AwsPublishReport> {
    let target = publish_target(project, &req.stack)?;
    let (plan, ami_id) = plan_for_target(project, req, None)?;
    let user_data = crate::render::userdata::render(&plan)?.bytes;
    let sha = crate::plan::sha256_hex(&user_data);
    runtime(Threads::Current)?.block_on(async {
        let ec2 = Ec2::connect(&target.region, &Endpoint::from_env()).await;
        let ami = ec2.image(&ami_id).await?;
        let verified = verified_with(&ami.tags, &sha);
        if !verified && !unverified {
            return Err(not_verified(&plan, &ami_id, &sha, &ami.tags));
        }
        let p = Publishing {
            project,
            target: &target,
            plan: &plan,
            ami_id: &ami_id,
            user_data: &user_data,
            sha: &sha,
            verified,
            description: description(&plan.stack, &plan.top().hash, &sha, verified),
        };
        let mut report = p.run(&ec2).await?;
        report.notes.extend(left_behind(&ec2, &target).await?);
        Ok(report)
    })
}

/// A template under the stack file's own name, which publish no longer moves once its image
/// bakes several architectures (each has its own): said, so the fleet is pointed at them.
async fn left_behind(ec2: &Ec2, target: &PublishTarget) -> Result<Option<String>> {
    let Some(name) = &target.unsuffixed else {
        return Ok(None);
    };
    Ok(ec2.launch_template(name).await?.map(|_| {
        format!(
            "launch template {name} is no longer published to: this stack's image bakes several architectures, each to its own template ({} here); point the fleet at them and delete {name} when nothing uses it (docs/aws.md, \"Architectures\")",
            target.template
        )
    }))
}

/// Why the stack's top AMI cannot be published yet.
fn not_verified(plan: &Plan, ami_id: &str, sha: &str, tags: &BTreeMap<String, String>) -> Error {
    let top = plan.top();
    let mut e = Error::user(format!(
        "{ami_id} (layer {} {}) has not passed `verify` with the user-data stack {} would publish (sha256 {})",
        top.name,
        &top.hash[..12],
        plan.stack,
        &sha[..12]
    ));
    if let Some(other) = tags.get(VERIFIED_USERDATA_TAG) {
        e = e.with_hint(format!(
            "it was verified with other user-data (sha256 {}): the stack's launch settings changed since",
            &other[..12.min(other.len())]
        ));
    }
    e.with_hint(
        "verify it first, or publish it anyway with --unverified (the version's description says so)",
    )
}

/// One publish: what goes into the stack's launch template.
struct Publishing<'a> {
    project: &'a Project,
    target: &'a PublishTarget,
    plan: &'a Plan,
    ami_id: &'a str,
    user_data: &'a [u8],
    sha: &'a str,
    verified: bool,
    description: String,
}

impl Publishing<'_> {
    /// Checks everything that can be checked before anything moves, then adds the version
    /// and makes it the default (and sets the SSM parameter); a failure after the version is
    /// added puts back what moved.
    async fn run(&self, ec2: &Ec2) -> Result<AwsPublishReport> {
        let before = ec2.launch_template(&self.target.template).await?;
        let user_tags: Vec<(String, String)> = crate::config::aws_settings::user_tags(
            self.project,
            &self.plan.image,
            Some(&self.plan.stack),
        )
        .into_iter()
        .collect();
        let version = self.new_version(&user_tags);
        let stack = &self.plan.stack;
        let held = before
            .as_ref()
            .map(|t| held_amis(t, stack))
            .unwrap_or_default();
        if let Some(t) = &before {
            check_owner(t, stack, &self.target.region)?;
            if let Some(current) = self.already_default(t) {
                let mut r = self.report(t.id.clone(), version_of(current), None, None, true);
                r.protection = move_protection(ec2, &self.target.template, stack, &held).await;
                return Ok(r);
            }
        }
        ec2.check_publish(&self.target.template, before.as_ref(), &version)
            .await?;
        check_parameter(self.target).await?;
        let previous_default = before.as_ref().and_then(|t| {
            t.versions
                .iter()
                .find(|v| v.number == t.default_version)
                .map(version_of)
        });
        let (id, number, ssm) = self
            .add_default(ec2, before.as_ref(), &version, &user_tags)
            .await?;
        let published = AwsVersion {
            version: number,
            ami: Some(self.ami_id.to_string()),
            description: self.description.clone(),
        };
        let mut r = self.report(id, published, previous_default, ssm, false);
        r.protection = move_protection(ec2, &self.target.template, stack, &held).await;
        Ok(r)
    }

    fn new_version<'v>(&'v self, user_tags: &'v [(String, String)]) -> NewTemplateVersion<'v> {
        NewTemplateVersion {
            image_id: self.ami_id,
            instance_type: &self.target.instance_type,
            user_data: self.user_data,
            description: &self.description,
            http_tokens: self.target.http_tokens,
            instance_profile: self.target.instance_profile.as_deref(),
            tags: user_tags,
        }
    }

    /// The template's default version when it already is this publish (nothing to change).
    fn already_default<'t>(&self, t: &'t LaunchTemplate) -> Option<&'t TemplateVersion> {
        t.versions.iter().find(|v| {
            v.number == t.default_version
                && v.image_id.as_deref() == Some(self.ami_id)
                && v.description == self.description
        })
    }

    /// Adds the version (creating the template if there is none), makes it the default, and
    /// sets the SSM parameter; a failure after the version is added puts back what moved.
    async fn add_default(
        &self,
        ec2: &Ec2,
        before: Option<&LaunchTemplate>,
        version: &NewTemplateVersion<'_>,
        user_tags: &[(String, String)],
    ) -> Result<(String, i64, Option<ParameterSet>)> {
        let mut tags = vec![
            ("parbake:stack".to_string(), self.plan.stack.clone()),
            ("parbake:image".to_string(), self.plan.image.clone()),
        ];
        // the user's tags on a template parbake creates (a version of an existing one keeps it)
        tags.extend(user_tags.iter().cloned());
        let (id, number) = ec2
            .add_launch_template_version(&self.target.template, before, version, &tags)
            .await?;
        let mut moved = self.moved(&id, number, before);
        if before.is_some() {
            if let Err(e) = ec2.set_default_version(&id, number).await {
                return Err(moved.undo(ec2, e).await);
            }
            moved.default_now = number;
        }
        match set_parameter(self.target, Some(self.ami_id)).await {
            Ok(p) => Ok((id, number, p)),
            Err(e) => Err(moved.undo(ec2, e).await),
        }
    }

    /// What has moved once the version is added: what a failure from here on puts back.
    fn moved(&self, id: &str, number: i64, before: Option<&LaunchTemplate>) -> Moved {
        let region = &self.target.region;
        Moved {
            command: "publish",
            stack: self.plan.stack.clone(),
            region: region.clone(),
            template: self.target.template.clone(),
            template_id: id.to_string(),
            created_template: before.is_none(),
            created_version: Some(number),
            default_now: before.map_or(number, |t| t.default_version),
            default_before: before.map(|t| t.default_version),
            finish: self
                .target
                .ssm_parameter
                .as_deref()
                .map(|name| put_parameter_command(region, name, self.ami_id)),
        }
    }

    fn report(
        &self,
        launch_template_id: String,
        published: AwsVersion,
        previous_default: Option<AwsVersion>,
        ssm_parameter: Option<ParameterSet>,
        unchanged: bool,
    ) -> AwsPublishReport {
        AwsPublishReport {
            stack: self.plan.stack.clone(),
            region: self.target.region.clone(),
            launch_template: self.target.template.clone(),
            launch_template_id,
            published,
            previous_default,
            layer_hash: self.plan.top().hash.clone(),
            userdata_sha256: self.sha.to_string(),
            verified: self.verified,
            ssm_parameter,
            unchanged,
            protection: Protection::default(),
            notes: Vec::new(),
        }
    }
}

/// The stack a parbake version was published for (its description's `stack=`).
fn stack_of(v: &TemplateVersion) -> Option<&str> {
    v.description
        .strip_prefix("parbake stack=")?
        .split(' ')
        .next()
}

/// Pure: refuses a launch template that belongs to another stack, by its `parbake:stack` tag
/// (set when parbake creates it) or by a version parbake published for another stack. A
/// launch template belongs to one stack, so rollback never lands on another stack's version.
pub fn check_owner(t: &LaunchTemplate, stack: &str, region: &str) -> Result<()> {
    let tagged = t
        .tags
        .get("parbake:stack")
        .filter(|s| s.as_str() != stack)
        .map(|other| (other.as_str(), format!("its tag parbake:stack={other}")));
    let published = || {
        t.versions.iter().find_map(|v| {
            stack_of(v).filter(|s| *s != stack).map(|other| {
                (
                    other,
                    format!("its version {} was published for it", v.number),
                )
            })
        })
    };
    let Some((other, why)) = tagged.or_else(published) else {
        return Ok(());
    };
    Err(Error::user(format!(
        "launch template {} in {region} belongs to stack {other} ({why}), not to stack {stack}; nothing was changed",
        t.name
    ))
    .with_hint(format!(
        "a launch template belongs to one stack: give stack {stack} its own in its stack file, e.g. `publish: {{launch_template: {stack}-fleet}}`"
    )))
}

/// Pure: the version before the default that parbake published for `stack`, where rollback
/// goes (hand-made versions and other stacks' are never landed on).
pub fn rollback_target<'a>(t: &'a LaunchTemplate, stack: &str) -> Option<&'a TemplateVersion> {
    t.versions
        .iter()
        .filter(|v| is_parbake(v) && stack_of(v) == Some(stack) && v.number < t.default_version)
        .max_by_key(|v| v.number)
}

/// The AMIs a stack's launch template holds for the fleet: its default version's and its
/// rollback target's (see [`super::publish::rollback_target`]), when parbake published them
/// for `stack`. These carry deregistration protection.
pub fn held_amis(t: &LaunchTemplate, stack: &str) -> BTreeSet<String> {
    let default = t
        .versions
        .iter()
        .find(|v| v.number == t.default_version && v.description.starts_with("parbake stack="));
    default
        .into_iter()
        .chain(rollback_target(t, stack))
        .filter_map(|v| v.image_id.clone())
        .collect()
}

/// Reads the stack's SSM parameter, if it names one, before anything moves: an unreachable
/// service, a name SSM refuses or missing read permission stop the publish there. (That a
/// PutParameter will succeed cannot be known in advance; its failure is undone.)
async fn check_parameter(t: &PublishTarget) -> Result<()> {
    if let Some(name) = &t.ssm_parameter {
        Ssm::connect(&t.region, &Endpoint::from_env())
            .await
            .get(name)
            .await?;
    }
    Ok(())
}

pub fn rollback(project: &Project, stack: &str, unverified: bool) -> Result<AwsRollbackReport> {
    let target = publish_target(project, stack)?;
    let (template, region) = (&target.template, &target.region);
    runtime(Threads::Current)?.block_on(async {
        let ec2 = Ec2::connect(region, &Endpoint::from_env()).await;
        let t = ec2.launch_template(template).await?.ok_or_else(|| {
            Error::user(format!(
                "launch template {template} does not exist in {region}: stack {stack} was never published there"
            ))
            .with_hint(format!("publish it first: parbake publish {stack} --target aws"))
        })?;
        check_owner(&t, stack, region)?;
        let held = held_amis(&t, stack);
        let from = t
            .versions
            .iter()
            .find(|v| v.number == t.default_version)
            .map(version_of)
            .ok_or_else(|| Error::Internal("the default version is not listed".into()))?;
        let to = rollback_target(&t, stack).map(version_of).ok_or_else(|| {
            Error::user(format!(
                "launch template {template} has no parbake-published version before its default (version {}) for stack {stack}",
                t.default_version
            ))
            .with_hint("publish the version you want instead")
        })?;
        if to.description.ends_with(" unverified") && !unverified {
            return Err(crate::published::unverified_target(
                stack,
                &format!("launch template {template} version {}", to.version),
            ));
        }
        let skipped: Vec<i64> = t
            .versions
            .iter()
            .map(|v| v.number)
            .filter(|n| *n > to.version && *n < from.version)
            .collect();
        ec2.check_set_default(&t).await?;
        check_parameter(&target).await?;
        ec2.set_default_version(&t.id, to.version).await?;
        let moved = Moved {
            command: "rollback",
            stack: stack.to_string(),
            region: region.clone(),
            template: template.clone(),
            template_id: t.id.clone(),
            created_template: false,
            created_version: None,
            default_now: to.version,
            default_before: Some(from.version),
            finish: target
                .ssm_parameter
                .as_deref()
                .zip(to.ami.as_deref())
                .map(|(name, ami)| put_parameter_command(region, name, ami)),
        };
        let ssm_parameter = match set_parameter(&target, to.ami.as_deref()).await {
            Ok(p) => p,
            Err(e) => return Err(moved.undo(&ec2, e).await),
        };
        let protection = move_protection(&ec2, template, stack, &held).await;
        Ok(AwsRollbackReport {
            stack: stack.to_string(),
            region: region.clone(),
            launch_template: template.clone(),
            from,
            to,
            skipped,
            ssm_parameter,
            protection,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(number: i64, parbake: bool) -> TemplateVersion {
        TemplateVersion {
            number,
            description: if parbake {
                format!("parbake stack=web layer=x userdata=y verified {number}")
            } else {
                "by hand".into()
            },
            image_id: Some(format!("ami-{number}")),
        }
    }

    #[test]
    fn each_user_data_keeps_its_own_verdict_and_a_failure_removes_only_its_own() {
        let mut tags = BTreeMap::new();
        let apply = |tags: &mut BTreeMap<String, String>, sha: &str, passed: bool, now: u64| {
            let (set, remove) = verdict_tags(tags, sha, passed, now);
            for k in remove {
                tags.remove(&k);
            }
            tags.extend(set);
        };
        apply(&mut tags, "web", true, 1);
        apply(&mut tags, "worker", true, 2);
        assert!(verified_with(&tags, "web") && verified_with(&tags, "worker"));
        apply(&mut tags, "worker", false, 3);
        assert!(verified_with(&tags, "web") && !verified_with(&tags, "worker"));
        for i in 0..20u64 {
            apply(&mut tags, &format!("s{i}"), true, 10 + i);
        }
        let kept = tags
            .keys()
            .filter(|k| k.starts_with(VERIFIED_PREFIX))
            .count();
        assert_eq!(kept, VERDICTS_KEPT);
        assert!(verified_with(&tags, "s19") && !verified_with(&tags, "web"));
    }

    #[test]
    fn rollback_goes_to_the_parbake_version_before_the_default() {
        let t = |default, versions| LaunchTemplate {
            id: "lt-1".into(),
            name: "web".into(),
            default_version: default,
            versions,
            tags: Default::default(),
        };
        // a hand-made version in between is skipped
        let lt = t(4, vec![v(1, true), v(2, true), v(3, false), v(4, true)]);
        assert_eq!(rollback_target(&lt, "web").unwrap().number, 2);
        // the default moved back already: one further
        let lt = t(2, vec![v(1, true), v(2, true), v(3, false), v(4, true)]);
        assert_eq!(rollback_target(&lt, "web").unwrap().number, 1);
        let lt = t(1, vec![v(1, true), v(2, true)]);
        assert!(rollback_target(&lt, "web").is_none());
        // only this stack's own versions
        assert!(rollback_target(&t(2, vec![v(1, true), v(2, true)]), "worker").is_none());
    }

    #[test]
    fn a_template_of_another_stack_is_refused_by_its_tag_or_its_versions() {
        let lt = |tags: &[(&str, &str)], versions| LaunchTemplate {
            id: "lt-1".into(),
            name: "fleet".into(),
            default_version: 1,
            versions,
            tags: tags
                .iter()
                .map(|(k, val)| (k.to_string(), val.to_string()))
                .collect(),
        };
        let mut worker = v(2, true);
        worker.description = "parbake stack=worker layer=x userdata=y verified".into();
        // web's own, and hand-made versions, are fine
        check_owner(
            &lt(&[("parbake:stack", "web")], vec![v(1, true), v(3, false)]),
            "web",
            "r",
        )
        .unwrap();
        check_owner(&lt(&[], vec![v(1, false)]), "web", "r").unwrap();
        for (tags, versions, why) in [
            (
                vec![("parbake:stack", "worker")],
                vec![v(1, true)],
                "its tag parbake:stack=worker",
            ),
            (
                vec![],
                vec![v(1, true), worker.clone()],
                "its version 2 was published for it",
            ),
        ] {
            let e = check_owner(&lt(&tags, versions), "web", "eu-west-1").unwrap_err();
            let text = crate::error::Report(&e).to_string();
            assert!(
                text.contains("launch template fleet in eu-west-1 belongs to stack worker")
                    && text.contains(why)
                    && text.contains("not to stack web")
                    && text.contains("hint: a launch template belongs to one stack"),
                "{text}"
            );
        }
    }

    fn tv(number: i64, stack: Option<&str>, ami: &str) -> TemplateVersion {
        TemplateVersion {
            number,
            description: match stack {
                Some(s) => format!("parbake stack={s} layer=x userdata=y verified"),
                None => "by hand".into(),
            },
            image_id: Some(ami.into()),
        }
    }

    fn tlt(default: i64, versions: Vec<TemplateVersion>) -> LaunchTemplate {
        LaunchTemplate {
            id: "lt-1".into(),
            name: "web-fleet".into(),
            default_version: default,
            versions,
            tags: Default::default(),
        }
    }

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// Publish 1, 2, 3, then roll back to 2: protection follows the default and the rollback
    /// target, and what neither holds any more loses it.
    #[test]
    fn protection_follows_the_default_and_the_rollback_target() {
        let vs = vec![
            tv(1, Some("web"), "ami-1"),
            tv(2, Some("web"), "ami-2"),
            tv(3, None, "ami-hand"),
            tv(4, Some("web"), "ami-4"),
        ];
        let before = held_amis(&tlt(2, vs[..3].to_vec()), "web");
        assert_eq!(before, set(&["ami-1", "ami-2"]));
        let after = held_amis(&tlt(4, vs.clone()), "web");
        assert_eq!(after, set(&["ami-2", "ami-4"]));
        let (protect, unprotect) = lifecycle::moves(&before, &after);
        assert_eq!(protect, vec!["ami-2", "ami-4"]);
        assert_eq!(unprotect, vec!["ami-1"]);
        // rollback from 4 to 2: 1 is the rollback target again, 4 loses it
        let back = held_amis(&tlt(2, vs.clone()), "web");
        assert_eq!(lifecycle::moves(&after, &back).1, vec!["ami-4"]);
        // a hand-made default holds nothing for parbake
        assert_eq!(held_amis(&tlt(3, vs), "web"), set(&["ami-2"]));
    }
}
