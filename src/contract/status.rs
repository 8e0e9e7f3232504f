//! `/var/lib/parbake/status.json` and the console line that carries it: the boot result
//! contract, written by the runner on the image (one function, `write_status`; the bootstrap
//! in the user-data writes the same document when an image has no runner) and read by
//! `parbake launch` on both targets.

use serde::{Deserialize, Serialize};

/// The format the runner writes (its `STATUS_FORMAT`).
pub const STATUS_FORMAT: u32 = 1;
/// The console line that carries the whole status (`parbake-status {json}`).
pub const STATUS_LINE_PREFIX: &str = "parbake-status ";
/// A console line with one line of the launch log's tail, printed before the status line of a
/// failed launch by runners before issue 21 (`parbake-log | {line}`); today's runner prints no
/// role output on the console, only where the log is.
pub const LOG_LINE_PREFIX: &str = "parbake-log | ";

/// `status.json` in full, as the runner writes it. A launch that never read its spec (no
/// runner, an unreadable spec, a crash) writes only `format`, `phase`, `state`, `error` and an
/// empty `roles`; the other fields are then absent. A field that is null means the same.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub format: u32,
    /// Always `launch`.
    pub phase: String,
    /// `running`, then `done` or `failed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// sha256 of the launch spec's bytes: a re-run of the same spec skips succeeded roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_digest: Option<String>,
    /// Epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The launch log on the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// The launch's timeout (from the spec), counted from `started_at`, the launch's first
    /// start, across reboots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_timeout_s: Option<u64>,
    /// How many times the launch resumed after it was interrupted (a reboot or a stop
    /// mid-role); 0 when it ran through. The role that was running has a `note` saying so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed: Option<u32>,
    /// The kernel's boot id of the boot that last ran the launch (tells a reboot from a stop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// Where the last run's time went (absent when no role ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    pub roles: Vec<StatusRole>,
    /// The spec's checks, probed after the roles (absent when it has none, or before the
    /// roles finished).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckStatus>,
}

/// One check in `status.json`: `pending`, then `ok` or `failed` (with `error`), or `not-run`
/// when the launch timeout passed first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckStatus {
    pub name: String,
    /// `http`, `unit`, `port`, `command` or `file`.
    pub kind: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Probes made, once a second, until it passed or its timeout passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Why it failed (never a command's output: that is in the launch log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where a launch's time went, in seconds (0.1): the boot up to the runner's start (the
/// kernel's uptime then), the runner up to ansible-playbook, ansible-playbook's own start (up
/// to its first event), fact gathering, the roles' tasks, the handlers, and the rest (gaps
/// between tasks, the play's end).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Timing {
    #[serde(default)]
    pub boot_to_runner_s: Option<f64>,
    #[serde(default)]
    pub runner_to_playbook_s: Option<f64>,
    #[serde(default)]
    pub playbook_start_s: Option<f64>,
    #[serde(default)]
    pub facts_s: Option<f64>,
    #[serde(default)]
    pub roles_s: Option<f64>,
    #[serde(default)]
    pub handlers_s: Option<f64>,
    #[serde(default)]
    pub other_s: Option<f64>,
    /// The checks after the roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_s: Option<f64>,
}

impl Timing {
    /// `boot→runner 41.2s, runner→ansible 0.3s, ansible start 3.1s, facts 11.0s, roles 60.2s,
    /// handlers 2.0s, other 1.4s`, the parts that are known.
    pub fn text(&self) -> String {
        let parts = [
            ("boot→runner", self.boot_to_runner_s),
            ("runner→ansible", self.runner_to_playbook_s),
            ("ansible start", self.playbook_start_s),
            ("facts", self.facts_s),
            ("roles", self.roles_s),
            ("handlers", self.handlers_s),
            ("other", self.other_s),
            ("checks", self.checks_s),
        ];
        parts
            .iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k} {v:.1}s")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One role in `status.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatusRole {
    pub name: String,
    /// `pending`, `running`, `baked`, `skipped`, `ok`, `failed` or `not-run`. While the launch
    /// runs, the role Ansible is in is `running`, the roles before it are `ok` (or `failed`).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Tasks that reported a result (roles that ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u32>,
    /// The first failed task and its message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why a role was skipped, or that it was interrupted and run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What `parbake launch` reports of a [`StatusRole`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoleStatus {
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub duration_s: Option<f64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// What `parbake launch` reads of a [`Status`] and reports (in `launch --format json` too):
/// a lenient reader, so that only `state` is required of a status line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BootStatus {
    pub state: String,
    #[serde(default)]
    pub stack: Option<String>,
    #[serde(default)]
    pub duration_s: Option<f64>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub roles: Vec<RoleStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckStatus>,
    /// sha256 of the launch spec the runner ran (None from runners that do not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_digest: Option<String>,
}

impl BootStatus {
    /// Where a failed launch failed, for its error: ` in role `x``, ` at check `y``, or
    /// nothing (a failure before any role, such as an image check).
    pub fn failed_at(&self) -> String {
        if let Some(r) = self.roles.iter().find(|r| r.status == "failed") {
            return format!(" in role `{}`", r.name);
        }
        self.checks
            .iter()
            .find(|c| c.status == "failed")
            .map(|c| format!(" at check `{}`", c.name))
            .unwrap_or_default()
    }
}

/// The runner's final console line, `parbake-status {json}` (the boot result contract), read
/// from a serial console or EC2's console output. Only a line that *starts* with the marker
/// counts (after the prefix the console itself puts there, see [`after_marker`]): the marker
/// inside other text, such as a log line that quotes one, is not a status.
pub fn parse_status_line(line: &str) -> Option<BootStatus> {
    serde_json::from_str(after_marker(line, STATUS_LINE_PREFIX)?.trim()).ok()
}

/// The rest of a console line that starts with `marker`, or None. The runner writes its lines
/// to /dev/console at the start of a line; the console may put before them a carriage return,
/// the kernel's timestamp (`[   61.2] `) and a journal identifier (`cloud-init[512]: `, when a
/// runner's stdout reached the console through a unit's output, as under cloud-final). Nothing
/// else may come first.
pub fn after_marker<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let mut rest = line.trim_start_matches(['\r', '\n']);
    if let Some(r) = rest.strip_prefix('[') {
        let (stamp, after) = r.split_once(']')?;
        let stamp = stamp.trim_start();
        if stamp.is_empty() || !stamp.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return None;
        }
        rest = after.strip_prefix(' ')?.trim_start_matches(' ');
    }
    if let Some((ident, after)) = rest.split_once("]: ") {
        let is_ident = ident.split_once('[').is_some_and(|(name, pid)| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b))
                && !pid.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit())
        });
        if is_ident {
            rest = after;
        }
    }
    rest.strip_prefix(marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_is_found_wherever_the_console_prefixes_it() {
        let line = r#"[  455.64] cloud-init[459]: parbake-status {"state":"failed","stack":"web","error":"role boom failed","roles":[{"name":"boom","status":"failed","duration_s":1.5,"tasks":1}]}"#;
        let s = parse_status_line(line).unwrap();
        assert_eq!(s.state, "failed");
        assert_eq!(s.roles[0].name, "boom");
        assert!(parse_status_line("parbake: launch done stack=web").is_none());
        assert!(parse_status_line("parbake-status {truncated").is_none());
        assert!(parse_status_line(r#"parbake-status {"state":"done"}"#).is_some());
        assert!(
            parse_status_line("\r[    3.000000] parbake-status {\"state\":\"done\"}").is_some()
        );
    }

    #[test]
    fn a_status_marker_inside_another_line_is_not_a_status() {
        // a forged status inside a log tail line (issue 21) was read as `done`
        for forged in [
            r#"parbake-log | parbake-status {"state":"done"}"#,
            r#"[  61.2] cloud-init[512]: parbake-log | parbake-status {"state":"done"}"#,
            r#"PARBAKE-EVENT {"task":"x parbake-status {\"state\":\"done\"}"}"#,
            r#"parbake: launch failed error="parbake-status {\"state\":\"done\"}""#,
            r#"x parbake-status {"state":"done"}"#,
            r#"[ 1.0 ] x[1]: y[2]: parbake-status {"state":"done"}"#,
            r#"[abc] parbake-status {"state":"done"}"#,
        ] {
            assert!(parse_status_line(forged).is_none(), "{forged}");
        }
        assert_eq!(
            after_marker("[  61.2] cloud-init[512]: parbake-log | x", LOG_LINE_PREFIX),
            Some("x")
        );
        assert_eq!(after_marker("a parbake-log | x", LOG_LINE_PREFIX), None);
    }
}
