//! YAML parsing with located errors, and a small locator that finds the line of a
//! field or list item so that semantic checks (run after parsing) can point at it too.

use serde::de::DeserializeOwned;

use super::{lint, ConfigError, Located};

/// A config file as read from disk: the path shown to users and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the project root, as shown in messages.
    pub display: String,
    pub text: String,
    /// parbake's own file (images, stacks, `meta/parbake.yml`): checked by [`lint`] before it
    /// is deserialized. Ansible's files (tasks, `meta/main.yml`) keep Ansible's YAML rules.
    strict: bool,
}

/// A UTF-8 byte order mark, which some editors write at the start of a file.
const BOM: char = '\u{feff}';

impl SourceFile {
    /// One of parbake's own files. A leading byte order mark is dropped.
    pub fn new(display: impl Into<String>, text: impl Into<String>) -> Self {
        let text: String = text.into();
        SourceFile {
            display: display.into(),
            text: text.strip_prefix(BOM).map(str::to_string).unwrap_or(text),
            strict: true,
        }
    }

    /// A file that Ansible reads too (tags such as `!vault` and `!unsafe` are Ansible's).
    pub fn ansible(display: impl Into<String>, text: impl Into<String>) -> Self {
        SourceFile {
            strict: false,
            ..SourceFile::new(display, text)
        }
    }

    /// Deserializes the whole file, mapping serde errors to file:line:column plus field path.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        if self.text.trim().is_empty() {
            return Err(self
                .error_at(1, 1, None, "the file is empty")
                .with_hint("see the example files under images/ and the README's \"Concepts\" section for the fields an image or stack takes")
                .into());
        }
        // every YAML file, parbake's or Ansible's: bounded before anything expands it
        if let Some(f) = lint::limits(&self.text) {
            return Err(self
                .error_at(f.line, f.column, None, f.message)
                .with_hint(f.hint)
                .into());
        }
        if self.strict {
            if let Some(f) = lint::check(&self.text) {
                return Err(self
                    .error_at(f.line, f.column, None, f.message)
                    .with_hint(f.hint)
                    .into());
            }
        }
        serde_yaml::from_str(&self.text).map_err(|e| self.locate_yaml_error(&e).into())
    }

    fn locate_yaml_error(&self, e: &serde_yaml::Error) -> Located {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        let mut message = e.to_string();
        if let Some(at) = message.find(" at line ") {
            message.truncate(at);
        }
        // serde_yaml prefixes the field path: "sources.aws: unknown field `x`, expected ..."
        let mut field = None;
        if let Some((head, rest)) = message.split_once(": ") {
            if !head.contains(' ') && !head.is_empty() {
                field = Some(head.to_string());
                message = rest.to_string();
            }
        }
        let hint = if message.starts_with("recursion limit exceeded") {
            Some("YAML nested deeper than 128 levels (yaml_serde's recursion limit): flatten the data")
        } else if message.starts_with("repetition limit exceeded") {
            Some("aliases are repeated more than 100 times the document's own events (yaml_serde's repetition limit): write the data out with fewer aliases")
        } else if message.starts_with("unknown field") {
            Some("check the spelling; every field parbake accepts is listed after `expected`")
        } else if message.starts_with("unknown variant") {
            Some("use one of the values listed after `expected`")
        } else if message.contains("missing field") {
            Some("add the field; see the example files under images/")
        } else if field.is_none() {
            Some("this is a YAML syntax error; check indentation and quoting near the caret")
        } else if field.as_deref().is_some_and(|f| f.starts_with("checks")) {
            Some("a check is `http: /path`, `unit: name.service`, `port: 8000`, `command: [/abs/path, arg]` or `file: /abs/path`, with that kind's options; see docs/boot-contract.md, \"Checks\"")
        } else {
            None
        };
        let located = self.error_at(line, column, field, message);
        match hint {
            Some(h) => located.with_hint(h),
            None => located,
        }
    }

    pub fn error_at(
        &self,
        line: usize,
        column: usize,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Located {
        Located {
            file: self.display.clone(),
            line,
            column,
            field,
            message: message.into(),
            line_text: self
                .text
                .lines()
                .nth(line.saturating_sub(1))
                .unwrap_or("")
                .to_string(),
            hints: Vec::new(),
        }
    }

    /// An error about the value at a dotted field path, optionally a list item equal to `item`.
    pub fn error_for(&self, path: &str, item: Option<&str>, message: impl Into<String>) -> Located {
        let (line, column) = locate(&self.text, path, item).unwrap_or((1, 1));
        self.error_at(line, column, Some(path.to_string()), message)
    }
}

/// Deserializes YAML that is not one of the project's files (a vendored collection's
/// metadata) under the same limits as [`SourceFile::parse`]: the first limit passed, or the
/// deserializer's error, as text.
pub fn from_str_bounded<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    if let Some(f) = lint::limits(text) {
        return Err(format!("line {}: {}", f.line, f.message));
    }
    serde_yaml::from_str(text).map_err(|e| e.to_string())
}

/// Finds the 1-based (line, column) of the key at `path` (dot separated), or of the list item
/// equal to `item` under it (block `- x` or flow `[a, x]` style). Best effort: block-style
/// mappings as written by people; returns None when it cannot tell.
pub fn locate(text: &str, path: &str, item: Option<&str>) -> Option<(usize, usize)> {
    let keys: Vec<&str> = path.split('.').filter(|k| !k.is_empty()).collect();
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0usize;
    let mut min_indent: isize = -1;
    let mut found: Option<(usize, usize)> = None;
    for key in &keys {
        found = None;
        let mut i = start;
        while i < lines.len() {
            let line = lines[i];
            let trimmed = line.trim_start();
            let indent = (line.len() - trimmed.len()) as isize;
            if trimmed.is_empty() || trimmed.starts_with('#') {
                i += 1;
                continue;
            }
            if indent <= min_indent && i > start {
                break;
            }
            let bare = trimmed.strip_prefix("- ").unwrap_or(trimmed);
            let k = bare
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(['"', '\'']);
            if k == *key
                && bare[k.len()..]
                    .trim_start_matches(['"', '\''])
                    .starts_with(':')
            {
                found = Some((i, indent as usize));
                min_indent = indent;
                start = i + 1;
                break;
            }
            i += 1;
        }
        found?;
    }
    let (key_line, key_indent) = found?;
    let Some(item) = item else {
        return Some((key_line + 1, key_indent + 1));
    };
    // flow style on the key's own line, or a block list below it
    let is_item = |token: &str| token.trim().trim_matches(['"', '\'']) == item;
    let line = lines[key_line];
    if let Some(open) = line.find('[') {
        let mut offset = open + 1;
        for token in line[open + 1..].split([',', ']']) {
            if is_item(token) {
                let lead = token.len() - token.trim_start().len();
                return Some((key_line + 1, offset + lead + 1));
            }
            offset += token.len() + 1;
        }
    }
    for (i, line) in lines.iter().enumerate().skip(key_line + 1) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent < key_indent || (indent == key_indent && !trimmed.starts_with('-')) {
            break;
        }
        if let Some(rest) = trimmed.strip_prefix('-') {
            let value = rest.split('#').next().unwrap_or("");
            if is_item(value) {
                return Some((i + 1, indent + 3));
            }
        }
    }
    Some((key_line + 1, key_indent + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "sources:\n  qemu:\n    ssh_user: debian\nbasic: [base, userz]\nroles:\n  - nginx\n  - webap  # typo\n";

    fn parse_error(text: &str) -> (String, Vec<String>) {
        let e = SourceFile::ansible("x.yml", text)
            .parse::<serde_yaml::Value>()
            .unwrap_err();
        (e.to_string(), e.hints())
    }

    #[test]
    fn yaml_serde_limits_get_their_own_hint_not_a_syntax_error() {
        // each nest within parbake's depth limit, aliases nesting them past yaml_serde's 128
        let nest = |inner: &str| format!("{}{inner}{}", "[".repeat(60), "]".repeat(60));
        let deep = format!(
            "a: &a {}\nb: &b {}\nc: {}\n",
            nest("x"),
            nest("*a"),
            nest("*b")
        );
        let (message, hints) = parse_error(&deep);
        assert!(message.contains("recursion limit exceeded"), "{message}");
        assert!(hints[0].contains("128 levels"), "{hints:?}");
        // few events, many alias jumps (within parbake's node limit)
        let mut wide = String::from("l0: &l0 [x]\n");
        for i in 1..5 {
            let row = vec![format!("*l{}", i - 1); 10].join(", ");
            wide.push_str(&format!("l{i}: &l{i} [{row}]\n"));
        }
        let (message, hints) = parse_error(&wide);
        assert!(message.contains("repetition limit exceeded"), "{message}");
        assert!(hints[0].contains("repetition limit"), "{hints:?}");
        for h in hints {
            assert!(!h.contains("syntax error"), "{h}");
        }
    }

    #[test]
    fn locates_nested_keys_and_items() {
        assert_eq!(locate(DOC, "sources.qemu.ssh_user", None), Some((3, 5)));
        assert_eq!(locate(DOC, "basic", Some("userz")), Some((4, 15)));
        assert_eq!(locate(DOC, "roles", Some("webap")), Some((7, 5)));
        assert_eq!(locate(DOC, "nope", None), None);
    }
}
