//! The text renderings of the aws target's reports (launch, verify, publish, rollback, prune,
//! gc).

use std::fmt::Write;

use super::gc::Leftover;
use super::launch::{AwsLaunchReport, AwsVerifyReport};
use super::prune::Decision;
use super::publish::{AwsPublishReport, AwsRollbackReport, AwsVersion, Protection};
use crate::targets::launch::status_lines;

pub fn launch_text(r: &AwsLaunchReport) -> String {
    let mut s = format!(
        "stack {} launched in {} from {} as {}: {} after {:.1}s; {} role(s) run at boot: {}\n",
        r.stack,
        r.region,
        r.ami,
        r.instance_id,
        r.state,
        r.seconds_to_running,
        r.launch_roles.len(),
        r.launch_roles.join(", ")
    );
    // with --wait-ready: the runner's verdict, per role and check
    if let (Some(status), Some(secs)) = (&r.status, r.seconds_to_ready) {
        let _ = writeln!(s, "launch {} in {secs:.1}s boot-to-ready", status.state);
        status_lines(&mut s, status);
    }
    s
}

pub fn verify_text(r: &AwsVerifyReport) -> String {
    format!(
        "verify {} on {} in {} (instance {}, terminated): {} in {:.1}s; user-data sha256 {}; tagged {}\n",
        r.stack,
        r.ami,
        r.region,
        r.instance_id,
        if r.passed { "passed" } else { "FAILED" },
        r.seconds_to_ready,
        r.userdata_sha256,
        r.tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
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

pub fn publish_text(r: &AwsPublishReport) -> String {
    let mut s = publish_body(r);
    for n in &r.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

fn publish_body(r: &AwsPublishReport) -> String {
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
        protection_text(&mut s, &r.protection);
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
    protection_text(&mut s, &r.protection);
    let _ = writeln!(s, "undo: parbake rollback {} --target aws", r.stack);
    s
}

/// Where deregistration protection went, and what could not be done (the template moved).
fn protection_text(s: &mut String, p: &Protection) {
    if !p.protected.is_empty() {
        let _ = writeln!(
            s,
            "  deregistration protection on: {}",
            p.protected.join(", ")
        );
    }
    if !p.unprotected.is_empty() {
        let _ = writeln!(
            s,
            "  deregistration protection off: {}",
            p.unprotected.join(", ")
        );
    }
    for f in &p.failed {
        let _ = writeln!(s, "  warning: {f} (the launch template moved all the same; run the command again to finish)");
    }
}

pub fn rollback_text(r: &AwsRollbackReport) -> String {
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
    protection_text(&mut s, &r.protection);
    s
}

/// One line per AMI (region, id, action, group, snapshots), then each reason indented.
pub fn prune_text(decisions: &[Decision], dry_run: bool) -> String {
    let mut out = String::new();
    for d in decisions {
        let action = if dry_run && d.action == "remove" {
            "would remove"
        } else {
            d.action.as_str()
        };
        let _ = writeln!(
            out,
            "{} {} {:<12} {} ({} snapshot(s))",
            d.region,
            d.ami,
            action,
            d.group,
            d.snapshots.len()
        );
        for r in &d.reasons {
            let _ = writeln!(out, "    {}", r.text);
        }
    }
    out
}

pub fn gc_text(left: &[Leftover]) -> String {
    let mut out = String::new();
    for l in left {
        let of = if l.instance_id.is_empty() || l.kind == "instance" {
            String::new()
        } else {
            format!(" of {}", l.instance_id)
        };
        let action = match (l.kind.as_str(), l.removed) {
            ("instance", true) => "terminated".to_string(),
            ("instance", false) => "would terminate".to_string(),
            (_, true) => "removed".to_string(),
            (_, false) => l.note.clone().unwrap_or_else(|| "would remove".to_string()),
        };
        if l.kind == "copy" {
            let why = "a distribute copy whose source is gone, or that failed";
            let _ = writeln!(
                out,
                "{} copy {} {} ({why}): {action}",
                l.region, l.id, l.state
            );
            continue;
        }
        let _ = writeln!(
            out,
            "{} {} {}{}{} (owner {}, run {}, expired {}s ago): {action}",
            l.region,
            l.kind,
            l.id,
            of,
            if l.state.is_empty() {
                String::new()
            } else {
                format!(" {}", l.state)
            },
            l.owner,
            l.run_id,
            l.expired_s_ago,
        );
    }
    if left.is_empty() {
        out.push_str("nothing parbake left behind has expired\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::aws::prune::{kind, Reason};

    #[test]
    fn each_reason_on_its_own_line_under_its_ami() {
        let reason = |kind, text: &str| Reason {
            kind,
            text: text.into(),
        };
        let d = Decision {
            region: "eu-west-1".into(),
            ami: "ami-1".into(),
            name: "n".into(),
            group: "stack debian12/web".into(),
            action: "keep".into(),
            why: String::new(),
            reasons: vec![
                reason(kind::CURRENT, "current AMI of stack web"),
                reason(kind::NEWEST, "newest available AMI of stack debian12/web"),
            ],
            snapshots: vec!["snap-1".into()],
        };
        assert_eq!(
            prune_text(&[d], true),
            "eu-west-1 ami-1 keep         stack debian12/web (1 snapshot(s))\n    current AMI of stack web\n    newest available AMI of stack debian12/web\n"
        );
    }
}
