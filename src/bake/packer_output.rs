//! Packer's `-machine-readable` output: `timestamp,target,type,data...`, with commas in data
//! escaped as `%!(PACKER_COMMA)` and newlines as `\n`. Parsed, never scraped.
//!
//! What a line means does not depend on its `ui` kind. Packer's own steps come as
//! `ui,say,==> NAME: Waiting for SSH...`; provisioner output came as
//! `ui,message,    NAME: …` before Packer 1.13 and comes as `ui,say,==> NAME: …` since (see
//! [`crate::packer_version`]). So the shape (`==>` or four spaces before `NAME:`) and the text
//! decide: see [`is_step`]. Samples of both shapes are in tests/fixtures/packer-*.txt.

use crate::contract::events::Event;

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub timestamp: u64,
    pub target: String,
    pub kind: String,
    pub data: Vec<String>,
}

impl Line {
    pub fn parse(raw: &str) -> Option<Line> {
        let mut parts = raw.splitn(4, ',');
        let timestamp = parts.next()?.parse().ok()?;
        let target = parts.next()?.to_string();
        let kind = parts.next()?.to_string();
        let data = parts
            .next()
            .unwrap_or("")
            .split(',')
            .map(|d| {
                d.replace("%!(PACKER_COMMA)", ",")
                    .replace("\\n", "\n")
                    .replace("\\r", "\r")
            })
            .collect();
        Some(Line {
            timestamp,
            target,
            kind,
            data,
        })
    }

    /// `ui` lines: (say|message|error, text).
    pub fn ui(&self) -> Option<(&str, &str)> {
        if self.kind == "ui" && self.data.len() >= 2 {
            Some((self.data[0].as_str(), self.data[1].as_str()))
        } else {
            None
        }
    }

    /// `artifact,0,id,<id>`: the artifact id.
    pub fn artifact_id(&self) -> Option<&str> {
        if self.kind == "artifact" && self.data.len() >= 3 && self.data[1] == "id" {
            Some(self.data[2].as_str())
        } else {
            None
        }
    }
}

/// What one line of `packer build -machine-readable` means to parbake.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// One of Packer's own steps (`Waiting for SSH to become available...`): shown as progress.
    Step(String),
    /// A line a provisioner or plugin printed (Ansible's output, a script's echo).
    Provisioner(String),
    /// A `PARBAKE-EVENT` from the bake's Ansible callback: per-role progress and timings.
    Event(Event),
    /// A `ui,error` line, without its `==> NAME: ` prefix.
    Error(String),
    /// `artifact,N,id,ID`: the id of what a build made.
    Artifact(String),
    /// Packer's other lines: build summaries (`Build 'x' finished …`, `==> Wait completed …`).
    Note(String),
}

impl Line {
    /// What this line means: one [`Output`] per text line of a `ui` line, or the artifact id;
    /// nothing for Packer's other bookkeeping lines (`artifact-count`, `error-count`).
    pub fn outputs(&self) -> Vec<Output> {
        if let Some(id) = self.artifact_id() {
            return vec![Output::Artifact(id.to_string())];
        }
        match self.ui() {
            Some((kind, text)) => text.lines().map(|t| classify(kind, t)).collect(),
            None => Vec::new(),
        }
    }
}

/// One text line of a `ui` line of the given kind (`say`, `message`, `error`).
fn classify(kind: &str, line: &str) -> Output {
    if let Some(ev) = Event::from_line(line) {
        return Output::Event(ev);
    }
    let line = line.trim_end();
    if kind == "error" {
        return Output::Error(after_source(line, "==> ").unwrap_or(line).to_string());
    }
    if let Some(text) = after_source(line, "==> ") {
        return if is_step(text) {
            Output::Step(text.to_string())
        } else {
            Output::Provisioner(text.to_string())
        };
    }
    match after_source(line, "    ") {
        Some(text) => Output::Provisioner(text.to_string()),
        None => Output::Note(line.to_string()),
    }
}

/// The text after `ARROW NAME:`, where NAME is a build's name (`qemu.layer`), which has no
/// spaces; `None` for any other line (`==> Wait completed after 2 minutes`).
fn after_source<'a>(line: &'a str, arrow: &str) -> Option<&'a str> {
    let (name, text) = line.strip_prefix(arrow)?.split_once(':')?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    Some(text.strip_prefix(' ').unwrap_or(text))
}

/// Whether the text after `==> NAME: ` is one of Packer's own steps rather than provisioner
/// output, which since Packer 1.13 comes with the same prefix. Packer's steps (its core's and
/// the qemu and amazon plugins') are sentences that open with a capitalised word: `Waiting for
/// SSH to become available...`, `Provisioning with shell script: /tmp/x`, `AMI: ami-0abc`.
/// What the bake's provisioners print is Ansible's output and parbake's own script lines:
/// - results open in lower case: `ok: [localhost]`, `changed: …`, `fatal: …`, `included: …`;
/// - banners end in a row of stars: `TASK [nginx : install] ****`, `PLAY RECAP ****`;
/// - alarms open with a word in capitals: `ERROR!`, `FAILED - RETRYING`, `WARNING:`, `[WARNING]`;
/// - module output is indented or is JSON: `    "msg": …`, `}`;
/// - parbake's scripts write `parbake: …`.
///
/// A capitals-only first word of up to three letters (`AMI`, `SSH`, `VNC`) still opens a step.
pub fn is_step(text: &str) -> bool {
    if !text.starts_with(|c: char| c.is_ascii_uppercase()) || text.ends_with("**") {
        return false;
    }
    let word = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    !(word.len() >= 4 && word.chars().all(|c| c.is_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ui_and_artifact_lines_with_escapes() {
        let l = Line::parse("1700000000,,ui,message,    qemu.layer: PARBAKE-EVENT {\"a\": 1%!(PACKER_COMMA) \"b\": 2}").unwrap();
        assert_eq!(
            l.ui(),
            Some((
                "message",
                "    qemu.layer: PARBAKE-EVENT {\"a\": 1, \"b\": 2}"
            ))
        );
        let a =
            Line::parse("1700000001,amazon-ebs.layer,artifact,0,id,us-east-1:ami-0abc").unwrap();
        assert_eq!(a.artifact_id(), Some("us-east-1:ami-0abc"));
        assert_eq!(a.target, "amazon-ebs.layer");
        assert!(Line::parse("not machine readable").is_none());
    }

    /// (text after `==> NAME: `, is it a Packer step)
    #[test]
    fn steps_and_provisioner_output_by_content() {
        for (text, step) in [
            ("Waiting for SSH to become available...", true),
            ("Connected to SSH!", true),
            ("Provisioning with shell script: /tmp/packer-shell123", true),
            ("Uploading payload/ => /tmp/parbake-payload", true),
            (
                "Running local shell script: /tmp/packer-shell2921910737",
                true,
            ),
            ("Gracefully halting virtual machine...", true),
            ("Stopping the source instance...", true),
            ("AMI: ami-0abc1234", true),
            (
                "Provisioning step had errors: Running the cleanup provisioner, if present...",
                true,
            ),
            (
                "PLAY [parbake bake layer 1] ****************************",
                false,
            ),
            ("TASK [nginx : Install nginx, quietly] ***", false),
            ("RUNNING HANDLER [nginx : restart nginx] ***", false),
            (
                "PLAY RECAP *********************************************",
                false,
            ),
            (
                "localhost                  : ok=3    changed=1    unreachable=0",
                false,
            ),
            ("ok: [localhost]", false),
            ("changed: [localhost]", false),
            ("fatal: [localhost]: FAILED! => {\"msg\": \"boom\"}", false),
            ("ERROR! the role 'nginx' was not found", false),
            (
                "FAILED - RETRYING: [localhost]: wait (3 retries left).",
                false,
            ),
            (
                "WARNING: The VM will be started with no hardware acceleration.",
                false,
            ),
            (
                "[WARNING]: Platform linux on host localhost is using python3",
                false,
            ),
            ("    \"msg\": \"hello\"", false),
            ("}", false),
            ("", false),
            (
                "parbake: ansible-playbook is missing: installing the distribution's ansible-core",
                false,
            ),
            (
                "==> not a step: provisioner text that looks like one",
                false,
            ),
        ] {
            assert_eq!(is_step(text), step, "{text:?}");
        }
    }

    #[test]
    fn names_with_spaces_are_not_sources() {
        assert_eq!(
            after_source("==> qemu.layer: Waiting", "==> "),
            Some("Waiting")
        );
        assert_eq!(after_source("==> qemu.layer:", "==> "), Some(""));
        assert_eq!(
            after_source("==> Wait completed after 2 minutes", "==> "),
            None
        );
        assert_eq!(
            after_source(
                "==> Builds finished. The artifacts of successful builds are:",
                "==> "
            ),
            None
        );
        assert_eq!(
            after_source("    qemu.layer: ok: [localhost]", "    "),
            Some("ok: [localhost]")
        );
    }
}
