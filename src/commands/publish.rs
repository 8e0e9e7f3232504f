//! `parbake publish STACK` and `parbake rollback STACK`: point the stack at its current top
//! image and exact user-data (a new version, made the default), or move the default back. On
//! the local target the pointer is in the store and `launch STACK --published` boots it; on
//! aws it is the stack's launch template (`targets::aws::publish`). Publishing asks for a passed
//! `verify` with exactly that user-data, unless `--unverified`, which is recorded.

use std::fmt::Write;

use serde::Serialize;

use super::{Ctx, StackArgs};
use crate::error::{Error, Result};
use crate::plan::Target;
use crate::published::Publication;
use crate::store::Store;
use crate::targets::aws::publish::{AwsPublishReport, AwsRollbackReport, AwsVersion};
use crate::targets::qemu::launch::Boot;

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Publish even though `verify` has not passed with exactly this user-data (recorded as
    /// unverified).
    #[arg(long)]
    pub unverified: bool,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The stack, by file name under images/stacks/.
    pub stack: String,
    /// Where the stack is published: the local store (qemu) or its launch template (aws).
    #[arg(long, default_value_t = Target::Qemu, value_parser = super::target_parser())]
    pub target: Target,
    /// Land on the version before the default even if it was published unverified.
    #[arg(long)]
    pub unverified: bool,
}

#[derive(Debug, Serialize)]
pub struct PublishReport {
    pub stack: String,
    pub published: Publication,
    /// The version that was the default before.
    pub previous: Option<Publication>,
}

#[derive(Debug, Serialize)]
pub struct RollbackReport {
    pub stack: String,
    pub from: Publication,
    pub to: Publication,
}

pub fn run_publish(ctx: &Ctx, args: PublishArgs) -> Result<()> {
    let req = args.stack.request();
    if req.target == Target::Aws {
        let report = crate::targets::aws::publish::publish(&ctx.project, &req, args.unverified)?;
        return ctx.printer.data(&report, aws_publish_text);
    }
    let boot = Boot::planned(&ctx.project, &req, false)?;
    let store = Store::for_project(&ctx.project.root);
    let sha = crate::plan::sha256_hex(&boot.user_data);
    let verified = store
        .verification(&boot.layer_hash, &sha)
        .is_some_and(|v| v.passed);
    if !verified && !args.unverified {
        return Err(not_verified(&store, &boot, &sha, &args.stack));
    }
    let version = Publication {
        version: 0,
        image: boot.image.clone(),
        layer_index: boot.layer_index,
        layer: boot.layer.clone(),
        layer_hash: boot.layer_hash.clone(),
        launch_roles: boot.launch_roles,
        userdata_sha256: sha,
        at: crate::store::now_epoch(),
        verified,
    };
    let (published, previous) =
        crate::published::publish(&store, &boot.stack, version, &boot.user_data)?;
    let report = PublishReport {
        stack: boot.stack,
        published,
        previous,
    };
    ctx.printer.data(&report, publish_text)
}

/// Why a layer cannot be published yet, with what its verifications say.
fn not_verified(store: &Store, boot: &Boot, sha: &str, args: &StackArgs) -> Error {
    let promote: String = args
        .promote
        .iter()
        .map(|p| format!(" --promote {p}"))
        .collect();
    let verify = format!("parbake verify {}{promote}", boot.stack);
    let others = store.verifications(&boot.layer_hash);
    let mut e = Error::user(format!(
        "layer {} ({}) has not passed `verify` with the user-data stack {} would publish (sha256 {})",
        boot.layer,
        &boot.layer_hash[..12],
        boot.stack,
        &sha[..12]
    ));
    if let Some(v) = others.iter().find(|v| v.userdata_sha256 == sha) {
        e = e.with_hint(format!(
            "its last verification failed: {}",
            v.error.as_deref().unwrap_or("see the launch log")
        ));
    } else if let Some(v) = others.first() {
        e = e.with_hint(format!(
            "it was verified with other user-data (sha256 {}, stack {}): the stack's launch settings or roles changed since",
            &v.userdata_sha256[..12],
            v.stack
        ));
    }
    e.with_hint(format!(
        "verify it: {verify}; or publish it anyway with --unverified (recorded)"
    ))
}

pub fn run_rollback(ctx: &Ctx, args: RollbackArgs) -> Result<()> {
    if !ctx.project.stacks.contains_key(&args.stack) {
        let known: Vec<String> = ctx.project.stacks.keys().cloned().collect();
        let mut e = Error::user(format!("unknown stack `{}`", args.stack));
        for h in crate::config::did_you_mean(&args.stack, &known, "stack") {
            e = e.with_hint(h);
        }
        return Err(e);
    }
    if args.target == Target::Aws {
        let report =
            crate::targets::aws::publish::rollback(&ctx.project, &args.stack, args.unverified)?;
        return ctx.printer.data(&report, aws_rollback_text);
    }
    let store = Store::for_project(&ctx.project.root);
    let (from, to) = crate::published::rollback(&store, &args.stack, args.unverified)?;
    let report = RollbackReport {
        stack: args.stack,
        from,
        to,
    };
    ctx.printer.data(&report, rollback_text)
}

fn version_text(p: &Publication) -> String {
    format!(
        "version {} (layer {} {}, user-data sha256 {}{})",
        p.version,
        p.layer,
        &p.layer_hash[..12],
        &p.userdata_sha256[..12],
        if p.verified { "" } else { ", unverified" }
    )
}

fn publish_text(r: &PublishReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "published {}: {} is the default",
        r.stack,
        version_text(&r.published)
    );
    if let Some(p) = &r.previous {
        let _ = writeln!(s, "  before: {}", version_text(p));
    }
    let _ = writeln!(
        s,
        "launch it: parbake launch {} --published; undo: parbake rollback {}",
        r.stack, r.stack
    );
    s
}

fn rollback_text(r: &RollbackReport) -> String {
    format!(
        "rolled {} back: the default was {}, now {}\n",
        r.stack,
        version_text(&r.from),
        version_text(&r.to)
    )
}

fn aws_version_text(v: &AwsVersion) -> String {
    format!(
        "version {} ({}: {})",
        v.version,
        v.ami.as_deref().unwrap_or("no AMI"),
        v.description
    )
}

fn aws_publish_text(r: &AwsPublishReport) -> String {
    let mut s = String::new();
    if r.unchanged {
        let _ = writeln!(
            s,
            "{} is already published to launch template {} ({}) in {}: {} is the default; nothing changed",
            r.stack,
            r.launch_template,
            r.launch_template_id,
            r.region,
            aws_version_text(&r.published)
        );
        return s;
    }
    let _ = writeln!(
        s,
        "published {} to launch template {} ({}) in {}: {} is the default",
        r.stack,
        r.launch_template,
        r.launch_template_id,
        r.region,
        aws_version_text(&r.published)
    );
    if let Some(p) = &r.previous_default {
        let _ = writeln!(s, "  before: {}", aws_version_text(p));
    }
    if let Some(p) = &r.ssm_parameter {
        let _ = writeln!(
            s,
            "  SSM parameter {} = {} (version {})",
            p.name, p.ami, p.version
        );
    }
    let _ = writeln!(s, "undo: parbake rollback {} --target aws", r.stack);
    s
}

fn aws_rollback_text(r: &AwsRollbackReport) -> String {
    let mut s = format!(
        "rolled {} back: launch template {} in {} defaulted to {}, now {}\n",
        r.stack,
        r.launch_template,
        r.region,
        aws_version_text(&r.from),
        aws_version_text(&r.to)
    );
    if let Some(p) = &r.ssm_parameter {
        let _ = writeln!(
            s,
            "  SSM parameter {} = {} (version {})",
            p.name, p.ami, p.version
        );
    }
    if !r.skipped.is_empty() {
        let versions: Vec<String> = r.skipped.iter().map(i64::to_string).collect();
        let _ = writeln!(
            s,
            "  skipped version(s) {} between them: not published by parbake for stack {}",
            versions.join(", "),
            r.stack
        );
    }
    s
}
