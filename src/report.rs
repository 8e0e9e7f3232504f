//! Reports printed on stdout: the `plan` table and its JSON, with the user-data verdict.

use std::fmt::Write;

use serde::Serialize;

use crate::plan::{LayerKind, Plan};
use crate::render::{RenderError, UserData};

/// Whether the user-data fits EC2's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Fits,
    TooLarge,
}

/// The user-data's size and verdict, as `plan` reports it in text and JSON alike.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserDataSize {
    /// The cloud-config text.
    pub raw_bytes: usize,
    /// The same, gzipped.
    pub gzipped_bytes: usize,
    /// What EC2 or the seed gets (raw when it fits, else gzipped); None when too large.
    pub sent_bytes: Option<usize>,
    pub sent_gzipped: bool,
    pub limit_bytes: usize,
    pub verdict: Verdict,
    /// (part, raw bytes), largest launch vars included.
    pub parts: Vec<(String, usize)>,
}

impl UserDataSize {
    /// The verdict of a user-data render: its size when it fits, the figures of the error when
    /// it does not even gzipped.
    pub fn of(rendered: &Result<UserData, RenderError>) -> UserDataSize {
        match rendered {
            Ok(ud) => UserDataSize {
                raw_bytes: ud.text.len(),
                gzipped_bytes: if ud.gzipped {
                    ud.bytes.len()
                } else {
                    crate::render::userdata::gzip(ud.text.as_bytes()).len()
                },
                sent_bytes: Some(ud.bytes.len()),
                sent_gzipped: ud.gzipped,
                limit_bytes: crate::render::USERDATA_LIMIT,
                verdict: Verdict::Fits,
                parts: ud.parts.clone(),
            },
            Err(RenderError::UserDataTooLarge {
                raw,
                gzipped,
                limit,
                parts,
                ..
            }) => UserDataSize {
                raw_bytes: *raw,
                gzipped_bytes: *gzipped,
                sent_bytes: None,
                sent_gzipped: false,
                limit_bytes: *limit,
                verdict: Verdict::TooLarge,
                parts: parts.clone(),
            },
        }
    }

    fn text(&self) -> String {
        match self.sent_bytes {
            Some(sent) => format!(
                "user-data: {sent} bytes{} of {} allowed",
                if self.sent_gzipped {
                    format!(" (gzipped from {})", self.raw_bytes)
                } else {
                    String::new()
                },
                self.limit_bytes
            ),
            None => format!(
                "user-data: TOO LARGE: {} bytes even gzipped ({} raw) of {} allowed",
                self.gzipped_bytes, self.raw_bytes, self.limit_bytes
            ),
        }
    }
}

/// `plan --json`: the plan's fields and the user-data verdict.
#[derive(Debug, Serialize)]
pub struct PlanJson<'a> {
    #[serde(flatten)]
    pub plan: &'a Plan,
    pub user_data: &'a UserDataSize,
}

pub fn plan_table(plan: &Plan, ud: &UserDataSize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "stack {} on image {} (target {}, parbake {})\n",
        plan.stack, plan.image, plan.target, plan.parbake_version
    );
    let rows: Vec<[String; 5]> = plan
        .layers
        .iter()
        .map(|l| {
            [
                l.index.to_string(),
                match l.kind {
                    LayerKind::Base => "base".into(),
                    LayerKind::Stack => "stack".into(),
                },
                l.name.clone(),
                l.short_hash().to_string(),
                if l.runs.is_empty() {
                    "-".into()
                } else {
                    l.runs.join(", ")
                },
            ]
        })
        .collect();
    let head = ["LAYER", "KIND", "NAME", "HASH", "BAKES"];
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([head[i].len()])
                .max()
                .unwrap()
        })
        .collect();
    let line = |cols: &[&str]| {
        let mut l = String::new();
        for (i, c) in cols.iter().enumerate() {
            if i == cols.len() - 1 {
                l.push_str(c);
            } else {
                let _ = write!(l, "{:<w$}  ", c, w = widths[i]);
            }
        }
        l.trim_end().to_string() + "\n"
    };
    s.push_str(&line(&head));
    for r in &rows {
        s.push_str(&line(&r.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    for l in &plan.layers {
        let _ = writeln!(s, "  layer {} parent: {}", l.index, l.parent);
    }
    s.push('\n');
    if !plan.promoted.is_empty() {
        let _ = writeln!(s, "promoted into the stack layer:");
        for p in &plan.promoted {
            match &p.required_by {
                None => {
                    let _ = writeln!(s, "  {}", p.role);
                }
                Some(by) => {
                    let _ = writeln!(s, "  {} (dependency of {by})", p.role);
                }
            }
        }
    }
    let _ = writeln!(s, "runs at launch ({} roles, in order):", plan.launch.len());
    if plan.launch.is_empty() {
        let _ = writeln!(s, "  nothing: the image has every role of the stack baked");
    }
    for r in &plan.launch {
        let mut notes = Vec::new();
        if r.launch_only {
            notes.push("launch-only".to_string());
        }
        if r.staged_apt.is_empty() {
            notes
                .push("stages nothing: needs a mirror at boot if it installs packages".to_string());
        } else {
            notes.push(format!(
                "packages staged at bake: {}",
                r.staged_apt.join(" ")
            ));
        }
        let _ = writeln!(s, "  {:<12} {}", r.name, notes.join("; "));
    }
    let _ = writeln!(s, "\n{}", ud.text());
    let _ = writeln!(
        s,
        "installed on the image ({} roles): {}",
        plan.installed.len(),
        plan.installed
            .iter()
            .map(|(r, h)| format!("{r} {}", &h.trim_start_matches("sha256:")[..8]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for n in &plan.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

pub fn bake_summary(r: &crate::bake::BakeReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "stack {} baked on {} ({}) in {:.1}s",
        r.stack, r.target, r.accelerator, r.duration_s
    );
    for l in &r.layers {
        let roles: Vec<String> = l
            .roles
            .iter()
            .map(|t| format!("{} {:.1}s", t.role, t.duration_s))
            .collect();
        let _ = writeln!(
            s,
            "  layer {} {:<16} {}  {:<6} {:>7.1}s  {}",
            l.index,
            l.name,
            &l.hash[..12],
            l.outcome,
            l.duration_s,
            roles.join(", ")
        );
        let _ = writeln!(s, "    image: {}", l.image);
        if let Some(log) = &l.log {
            let _ = writeln!(s, "    log:  {}", log.display());
        }
    }
    s
}

pub fn launch_summary(r: &crate::target::launch::LaunchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "stack {} launched from layer {} ({}) on {} as {}: {} in {:.1}s boot-to-ready",
        r.stack,
        r.layer,
        &r.layer_hash[..12],
        r.accelerator,
        r.instance_id,
        r.status.state,
        r.boot_to_ready_s
    );
    for role in &r.status.roles {
        let _ = writeln!(
            s,
            "  {:<12} {:<8} {}",
            role.name,
            role.status,
            role.duration_s
                .map(|d| format!("{d:.1}s"))
                .unwrap_or_else(|| "-".into())
        );
    }
    if let Some(k) = &r.kept {
        let _ = writeln!(s, "the VM is still running (pid {}):", k.pid);
        let _ = writeln!(s, "  ssh:  {}", k.ssh);
        let _ = writeln!(s, "  http: {}", k.http);
        let _ = writeln!(s, "  stop: kill {} && rm -rf {}", k.pid, k.dir.display());
    }
    let _ = writeln!(s, "console log: {}", r.serial_log.display());
    s
}
