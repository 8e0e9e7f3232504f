//! The text renderings of the local target's reports (publish, rollback, prune).

use std::fmt::Write;

use super::publish::{PublishReport, RollbackReport};
use super::store_images::{self, LocalDecision};
use crate::published::Publication;

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

pub fn publish_text(r: &PublishReport) -> String {
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

pub fn rollback_text(r: &RollbackReport) -> String {
    format!(
        "rolled {} back: the default was {}, now {}\n",
        r.stack,
        version_text(&r.from),
        version_text(&r.to)
    )
}

pub fn prune_text(decisions: &[LocalDecision], dry_run: bool) -> String {
    let mut out = String::new();
    let mut freed = 0;
    for d in decisions {
        let action = if dry_run && d.action == "remove" {
            "would remove"
        } else {
            d.action.as_str()
        };
        if d.action != "keep" {
            freed += d.disk_bytes;
        }
        let _ = writeln!(
            out,
            "{:<12} {:<22} {} {:>10}  {} ({})",
            action,
            d.layer,
            &d.layer_hash[..12],
            store_images::size(d.disk_bytes),
            d.group,
            d.why
        );
    }
    let _ = writeln!(
        out,
        "{} {} of layer disks",
        if dry_run { "would free" } else { "freed" },
        store_images::size(freed)
    );
    out
}
