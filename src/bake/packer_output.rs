//! Packer's `-machine-readable` output: `timestamp,target,type,data...`, with commas in data
//! escaped as `%!(PACKER_COMMA)` and newlines as `\n`. Parsed, never scraped.

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
}
