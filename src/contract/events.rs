//! The `parbake_events` callback's JSON lines (`PARBAKE-EVENT {...}` on a bake's output, or a
//! `.jsonl` file): per-task events that give per-role status and duration without scraping
//! Ansible's human output.

use serde::{Deserialize, Serialize};

pub const PREFIX: &str = "PARBAKE-EVENT ";

/// One event. `event` is `play` (with `name`), `task` (a task or, with `handler`, a handler
/// starts), a result (`ok`, `changed`, `skipped`, `failed` with `msg`, `ignored` with `msg`), or
/// `end` (with `failures`). `role` is null for a task outside any role; `chain`, when the task
/// runs inside other roles (an included role, a meta dependency), lists its roles innermost
/// first; `at` is where a task starts (`tasks/x.yml:LINE` in its role). `t`: epoch seconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    pub t: f64,
}

impl Event {
    /// Parses a line of an events file (`.jsonl`); None if it is not an event.
    pub fn from_json_line(line: &str) -> Option<Event> {
        serde_json::from_str(line.trim()).ok()
    }

    /// Parses a line that carries an event, wherever the prefix sits in it.
    pub fn from_line(line: &str) -> Option<Event> {
        let at = line.find(PREFIX)?;
        Event::from_json_line(&line[at + PREFIX.len()..])
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoleTiming {
    pub role: String,
    pub tasks: u32,
    pub changed: u32,
    pub duration_s: f64,
    pub failed: Option<String>,
}

/// Folds events into per-role timings, in the order roles first appear. A task's duration runs
/// from its start event to its result; a role's is the sum over its tasks (handlers included).
#[derive(Debug, Default)]
pub struct Timings {
    pub roles: Vec<RoleTiming>,
    open: Option<Event>,
    pub current: Option<(Option<String>, String)>,
}

impl Timings {
    pub fn push(&mut self, ev: &Event) {
        match ev.event.as_str() {
            "task" => {
                self.current = Some((ev.role.clone(), ev.task.clone().unwrap_or_default()));
                self.open = Some(ev.clone());
            }
            "ok" | "changed" | "skipped" | "failed" | "ignored" => {
                let Some(role) = &ev.role else { return };
                let dur = self.open.as_ref().map(|o| ev.t - o.t).unwrap_or(0.0);
                let entry = match self.roles.iter_mut().position(|r| &r.role == role) {
                    Some(i) => &mut self.roles[i],
                    None => {
                        self.roles.push(RoleTiming {
                            role: role.clone(),
                            tasks: 0,
                            changed: 0,
                            duration_s: 0.0,
                            failed: None,
                        });
                        self.roles.last_mut().unwrap()
                    }
                };
                entry.tasks += 1;
                entry.duration_s = ((entry.duration_s + dur) * 1000.0).round() / 1000.0;
                if ev.event == "changed" {
                    entry.changed += 1;
                }
                if ev.event == "failed" && entry.failed.is_none() {
                    entry.failed = Some(format!(
                        "{}: {}",
                        ev.task.clone().unwrap_or_default(),
                        ev.msg.clone().unwrap_or_default()
                    ));
                }
                self.open = None;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(line: &str) -> Event {
        Event::from_line(line).unwrap()
    }

    #[test]
    fn sums_task_durations_per_role_and_keeps_the_first_failure() {
        let mut t = Timings::default();
        for l in [
            r#"PARBAKE-EVENT {"event":"task","role":"base","task":"apt","t":10.0}"#,
            r#"    qemu.layer: PARBAKE-EVENT {"event":"changed","role":"base","task":"apt","t":14.5}"#,
            r#"PARBAKE-EVENT {"event":"task","role":"nginx","task":"conf","t":15.0}"#,
            r#"PARBAKE-EVENT {"event":"failed","role":"nginx","task":"conf","msg":"boom","t":16.0}"#,
            r#"PARBAKE-EVENT {"event":"task","role":"base","task":"handler","t":20.0}"#,
            r#"PARBAKE-EVENT {"event":"ok","role":"base","task":"handler","t":21.0}"#,
        ] {
            t.push(&ev(l));
        }
        assert_eq!(t.roles[0].role, "base");
        assert_eq!(t.roles[0].duration_s, 5.5);
        assert_eq!(t.roles[0].changed, 1);
        assert_eq!(t.roles[1].failed.as_deref(), Some("conf: boom"));
        assert!(Event::from_line("no event here").is_none());
    }
}
