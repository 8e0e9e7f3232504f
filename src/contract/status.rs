//! `/var/lib/parbake/status.json` and the console line that carries it: the boot result
//! contract, written by the runner on the image and read by `parbake launch` on both targets.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoleStatus {
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub duration_s: Option<f64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// `/var/lib/parbake/status.json`, as the runner prints it on the console (`parbake-status`).
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
}

/// The runner's final console line, `parbake-status {json}` (the boot result contract), read
/// from a serial console or EC2's console output.
pub fn parse_status_line(line: &str) -> Option<BootStatus> {
    let json = &line[line.find("parbake-status ")? + "parbake-status ".len()..];
    serde_json::from_str(json.trim()).ok()
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
    }
}
