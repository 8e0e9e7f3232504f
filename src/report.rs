//! Human-readable reports printed on stdout (the `plan` table).

use std::fmt::Write;

use crate::plan::{LayerKind, Plan};
use crate::render::UserData;

pub fn plan_table(plan: &Plan, ud: &UserData) -> String {
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
    let _ = writeln!(
        s,
        "\nuser-data: {} bytes{} of {} allowed",
        ud.bytes.len(),
        if ud.gzipped {
            format!(" (gzipped from {})", ud.text.len())
        } else {
            String::new()
        },
        crate::render::USERDATA_LIMIT
    );
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

pub fn launch_summary(r: &crate::launch::LaunchReport) -> String {
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
