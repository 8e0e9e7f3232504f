//! What both targets share after a launch: the report, and the timing record a launch adds.

use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::contract::status::BootStatus;
use crate::plan::Target;

/// What one launch adds to the timing ledger (and to the booted layer's own
/// `launches.jsonl` when the layer is in the local store).
pub struct LaunchRecord<'a> {
    pub store_root: &'a std::path::Path,
    pub layer_dir: Option<PathBuf>,
    pub target: Target,
    pub image: &'a str,
    pub stack: &'a str,
    pub layer: &'a str,
    pub layer_hash: &'a str,
    pub accelerator: &'a str,
    pub boot_to_ready_s: f64,
    pub status: &'a BootStatus,
    pub no_roles: bool,
}

/// Appends a launch (its per-role durations from the runner's status) to the ledger. A ledger
/// that cannot be written is reported, not fatal: the launch itself stands.
pub fn record_launch(r: &LaunchRecord<'_>) {
    let entry = crate::ledger::Entry {
        at: crate::store::now_epoch(),
        kind: crate::ledger::Kind::Launch,
        target: r.target.to_string(),
        image: r.image.to_string(),
        stack: Some(r.stack.to_string()),
        layer: r.layer.to_string(),
        layer_hash: r.layer_hash.to_string(),
        accelerator: r.accelerator.to_string(),
        total_s: r.boot_to_ready_s,
        roles: r
            .status
            .roles
            .iter()
            .filter(|s| s.status == "ok" || s.status == "failed")
            .map(|s| crate::ledger::RoleTime {
                role: s.name.clone(),
                seconds: s.duration_s.unwrap_or(0.0),
                ok: s.status == "ok",
            })
            .collect(),
        no_roles: r.no_roles,
        ok: r.status.state == "done",
        timing: r.status.timing.clone(),
    };
    let mut paths = vec![crate::ledger::Ledger::in_store(r.store_root).path];
    if let Some(d) = r.layer_dir.as_ref().filter(|d| d.is_dir()) {
        paths.push(d.join("launches.jsonl"));
    }
    for p in paths {
        if let Err(e) = crate::ledger::append_line(&p, &entry) {
            crate::printer::stderr::warning(format!("the timing ledger was not updated: {e}"));
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LaunchReport {
    pub stack: String,
    pub target: Target,
    pub layer: String,
    pub layer_hash: String,
    pub accelerator: String,
    pub instance_id: String,
    /// From starting qemu (or systemd-nspawn) to the runner's final status.
    pub boot_to_ready_s: f64,
    /// sha256 of the exact user-data the instance booted with (what `verify` records).
    pub userdata_sha256: String,
    pub status: BootStatus,
    pub serial_log: PathBuf,
    pub ssh_port: u16,
    pub http_port: u16,
    /// Set with --keep: the VM is still running.
    pub kept: Option<KeptVm>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeptVm {
    pub pid: u32,
    pub dir: PathBuf,
    pub ssh: String,
    pub http: String,
    /// How to stop it and remove what it holds, when `kill PID && rm -rf DIR` is not all (a
    /// container: its root is unmounted, its network namespace deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
}

pub struct LaunchOptions {
    pub keep: bool,
    /// Boot with user-data that runs no roles: the boot-time floor the benchmark compares with.
    pub no_roles: bool,
    /// Local target: no network beyond the host's port forwards.
    pub offline: bool,
    pub timeout: Duration,
    pub quiet: bool,
    pub verbose: bool,
    /// Local target: boot the layer's root in systemd-nspawn instead of a VM (`--container`).
    pub container: Option<ContainerNet>,
}

/// The network of a native (systemd-nspawn) launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerNet {
    /// Loopback only: proves the launch needs no network.
    Off,
    /// A private link to the host and nothing beyond it: the host reaches the container's
    /// ports (`--host-link`).
    HostLink,
}

/// One line per launch role and per check of a runner's status, with its state and time.
pub fn status_lines(s: &mut String, status: &BootStatus) {
    for role in &status.roles {
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
    for check in &status.checks {
        let _ = writeln!(
            s,
            "  check {:<24} {:<8} {}{}",
            check.name,
            check.status,
            check
                .duration_s
                .map(|d| format!("{d:.1}s"))
                .unwrap_or_else(|| "-".into()),
            check
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
}

pub fn launch_summary(r: &LaunchReport) -> String {
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
    status_lines(&mut s, &r.status);
    if let Some(t) = &r.status.timing {
        let _ = writeln!(s, "where the time went: {}", t.text());
    }
    if let Some(k) = &r.kept {
        let what = if k.stop.is_some() { "container" } else { "VM" };
        let _ = writeln!(s, "the {what} is still running (pid {}):", k.pid);
        let _ = writeln!(s, "  ssh:  {}", k.ssh);
        let _ = writeln!(s, "  http: {}", k.http);
        match &k.stop {
            Some(stop) => writeln!(s, "  stop: {stop}"),
            None => writeln!(s, "  stop: kill {} && rm -rf {}", k.pid, k.dir.display()),
        }
        .ok();
    }
    let _ = writeln!(s, "console log: {}", r.serial_log.display());
    s
}
