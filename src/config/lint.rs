//! A structural pass over parbake's own YAML files, on the very parser the deserializer uses
//! (libyaml, through `libyaml-rs`), before they are deserialized. It refuses, at their line:
//! - any tag other than parbake's `!secret` and `!unsafe` (`!!python/…`, `!!secret`, `!vault`…),
//!   which serde would otherwise read as a plain value;
//! - a key written twice in one mapping (serde keeps the last one silently, or reports 1:1);
//! - merge keys (`<<`), which serde passes on as a literal `"<<"` key.
//!
//! A document libyaml cannot parse passes here untouched: the deserializer then reports the
//! syntax error with its own location.

use std::collections::BTreeMap;
use std::mem::MaybeUninit;

use libyaml_rs as sys;

/// Tags parbake gives a meaning to; libyaml reports local tags with their `!`.
pub const ALLOWED_TAGS: [&str; 2] = ["!secret", "!unsafe"];

/// One finding: 1-based line and column, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: String,
}

/// Events the pass needs, with owned data and their start position.
enum Event {
    Scalar {
        anchor: Option<String>,
        tag: Option<String>,
        value: String,
        plain: bool,
    },
    Alias {
        anchor: String,
    },
    Start {
        anchor: Option<String>,
        tag: Option<String>,
        mapping: bool,
    },
    End,
    Other,
}

/// libyaml's parser on the heap (it must not move once initialised), freed on drop.
struct Parser {
    sys: Box<MaybeUninit<sys::yaml_parser_t>>,
    _input: Vec<u8>,
}

impl Parser {
    fn new(text: &str) -> Option<Parser> {
        let input = text.as_bytes().to_vec();
        let mut sys = Box::new(MaybeUninit::<sys::yaml_parser_t>::uninit());
        // SAFETY: the parser is initialised in place on the heap before any other call, and
        // the input buffer lives in `self` for as long as the parser does.
        unsafe {
            if sys::yaml_parser_initialize(sys.as_mut_ptr()).fail {
                return None;
            }
            sys::yaml_parser_set_encoding(sys.as_mut_ptr(), sys::YAML_UTF8_ENCODING);
            sys::yaml_parser_set_input_string(sys.as_mut_ptr(), input.as_ptr(), input.len() as _);
        }
        Some(Parser { sys, _input: input })
    }

    /// The next event and its 0-based (line, column); None at a syntax error.
    fn next(&mut self) -> Option<(Event, usize, usize)> {
        let mut raw = MaybeUninit::<sys::yaml_event_t>::uninit();
        // SAFETY: the parser was initialised in `new`; a successful parse initialises the
        // event, which is read here and deleted before returning.
        unsafe {
            if sys::yaml_parser_parse(self.sys.as_mut_ptr(), raw.as_mut_ptr()).fail {
                return None;
            }
            let ev = raw.as_mut_ptr();
            let mark = (*ev).start_mark;
            let event = match (*ev).type_ {
                sys::YAML_SCALAR_EVENT => {
                    let s = (*ev).data.scalar;
                    let bytes = std::slice::from_raw_parts(s.value, s.length as usize);
                    Event::Scalar {
                        anchor: c_string(s.anchor),
                        tag: c_string(s.tag),
                        value: String::from_utf8_lossy(bytes).into_owned(),
                        plain: s.style == sys::YAML_PLAIN_SCALAR_STYLE,
                    }
                }
                sys::YAML_ALIAS_EVENT => Event::Alias {
                    anchor: c_string((*ev).data.alias.anchor).unwrap_or_default(),
                },
                sys::YAML_SEQUENCE_START_EVENT => Event::Start {
                    anchor: c_string((*ev).data.sequence_start.anchor),
                    tag: c_string((*ev).data.sequence_start.tag),
                    mapping: false,
                },
                sys::YAML_MAPPING_START_EVENT => Event::Start {
                    anchor: c_string((*ev).data.mapping_start.anchor),
                    tag: c_string((*ev).data.mapping_start.tag),
                    mapping: true,
                },
                sys::YAML_SEQUENCE_END_EVENT | sys::YAML_MAPPING_END_EVENT => Event::End,
                sys::YAML_STREAM_END_EVENT => {
                    sys::yaml_event_delete(ev);
                    return None;
                }
                _ => Event::Other,
            };
            sys::yaml_event_delete(ev);
            Some((event, mark.line as usize, mark.column as usize))
        }
    }
}

impl Drop for Parser {
    fn drop(&mut self) {
        // SAFETY: initialised in `new` (a failed initialisation never builds a Parser).
        unsafe { sys::yaml_parser_delete(self.sys.as_mut_ptr()) }
    }
}

/// SAFETY: `p` is null or a NUL-terminated string owned by a live event.
unsafe fn c_string(p: *mut u8) -> Option<String> {
    if p.is_null() {
        return None;
    }
    let c = unsafe { std::ffi::CStr::from_ptr(p as *const std::ffi::c_char) };
    Some(c.to_string_lossy().into_owned())
}

/// Where the walk is: inside a mapping (expecting a key or a value) or a sequence.
enum Frame {
    Mapping {
        keys: BTreeMap<String, usize>,
        expect_key: bool,
    },
    Sequence,
}

/// The first finding in `text`, if any.
pub fn check(text: &str) -> Option<Finding> {
    let mut parser = Parser::new(text)?;
    let mut stack: Vec<Frame> = Vec::new();
    while let Some((event, line, column)) = parser.next() {
        let at = |message: String, hint: &str| Finding {
            line: line + 1,
            column: column + 1,
            message,
            hint: hint.into(),
        };
        let tag = match &event {
            Event::Scalar { tag, .. } | Event::Start { tag, .. } => tag.as_deref(),
            _ => None,
        };
        if let Some(tag) = tag {
            if !ALLOWED_TAGS.contains(&tag) {
                return Some(at(
                    format!("YAML tag `{}` is not accepted", short_tag(tag)),
                    "parbake reads only its own tags: `!secret` (a reference fetched on the instance) and `!unsafe` (a value passed on literally, never templated)",
                ));
            }
        }
        // Is this event a mapping key? Then check it; either way advance the mapping state.
        let is_key = matches!(
            stack.last(),
            Some(Frame::Mapping {
                expect_key: true,
                ..
            })
        );
        if is_key {
            if let Event::Scalar { value, plain, .. } = &event {
                if *plain && value == "<<" {
                    return Some(at(
                        "merge keys (`<<`) are not supported".into(),
                        "write the keys out in full; anchors and aliases (`&name`, `*name`) still work as values",
                    ));
                }
                if let Some(Frame::Mapping { keys, .. }) = stack.last_mut() {
                    if let Some(first) = keys.get(value) {
                        return Some(at(
                            format!("key `{value}` is written twice in this mapping (first at line {first})"),
                            "remove one of them: YAML keeps only one value per key",
                        ));
                    }
                    keys.insert(value.clone(), line + 1);
                }
            }
        }
        // every node (scalar, alias, collection) fills the parent's key or value slot
        if matches!(
            event,
            Event::Scalar { .. } | Event::Alias { .. } | Event::Start { .. }
        ) {
            if let Some(Frame::Mapping { expect_key, .. }) = stack.last_mut() {
                *expect_key = !*expect_key;
            }
        }
        if matches!(event, Event::End) {
            stack.pop();
        }
        if let Event::Start { mapping, .. } = event {
            stack.push(if mapping {
                Frame::Mapping {
                    keys: BTreeMap::new(),
                    expect_key: true,
                }
            } else {
                Frame::Sequence
            });
        }
    }
    None
}

/// The most bytes a YAML file parbake parses may hold.
pub const MAX_BYTES: usize = 16 << 20;
/// The deepest nesting of sequences and mappings.
pub const MAX_DEPTH: usize = 64;
/// The most nodes a YAML document may expand to, each alias counted as the size of what it
/// expands to. Measured in a debug build: a `plan` whose group_vars expand to 98,000 nodes
/// spends 1.8 s of CPU (mostly rendering them), so half that keeps a plan under 1 s; the
/// largest metadata parbake reads, Debian's community.general meta/runtime.yml, has 6,869.
pub const MAX_NODES: u64 = 50_000;
/// The most scalar bytes a document may expand to, aliases counted as what they expand to.
pub const MAX_SCALAR_BYTES: u64 = 16 << 20;

/// The size a node (with everything under it) expands to.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: u64,
    bytes: u64,
}

impl Size {
    fn add(&mut self, other: Size) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// The limits that bound parsing in time and memory, checked on libyaml's events before the
/// deserializer expands anything: size in bytes (before libyaml runs), nesting depth (so the
/// scanner's work per token stays bounded), and the size the document expands to, an alias
/// counting as what its anchor holds. The first limit passed is a finding at its place.
/// A document libyaml cannot parse ends the pass: the deserializer reports the error.
pub fn limits(text: &str) -> Option<Finding> {
    if let Some(f) = too_many_bytes(text) {
        return Some(f);
    }
    let mut parser = Parser::new(text)?;
    let mut expansion = Expansion::default();
    while let Some((event, line, column)) = parser.next() {
        if let Some(f) = expansion.count(event, line, column) {
            return Some(f);
        }
    }
    None
}

/// A finding at libyaml's 0-based `line` and `column`.
fn finding_at(line: usize, column: usize, message: String, hint: String) -> Finding {
    Finding {
        line: line + 1,
        column: column + 1,
        message,
        hint,
    }
}

/// The file's size, before libyaml reads it.
fn too_many_bytes(text: &str) -> Option<Finding> {
    if text.len() <= MAX_BYTES {
        return None;
    }
    Some(finding_at(
        0,
        0,
        format!(
            "the file is {} bytes, over the limit of {MAX_BYTES} bytes for a YAML file",
            text.len()
        ),
        format!(
            "split the file: parbake parses YAML files of at most {} MiB",
            MAX_BYTES >> 20
        ),
    ))
}

/// What the document expands to so far, event by event.
#[derive(Default)]
struct Expansion {
    /// The open collections: each one's anchor and size so far.
    open: Vec<(Option<String>, Size)>,
    anchors: BTreeMap<String, Size>,
    total: Size,
}

impl Expansion {
    /// Counts the node `event` starts for every collection it is in and for the document;
    /// the first limit passed is a finding at its place.
    fn count(&mut self, event: Event, line: usize, column: usize) -> Option<Finding> {
        let node = match self.node(event) {
            Some(node) => node,
            None => {
                return Some(finding_at(
                    line,
                    column,
                    format!("YAML nesting is deeper than the limit of {MAX_DEPTH} levels"),
                    format!("flatten the data: parbake reads YAML nested at most {MAX_DEPTH} sequences and mappings deep"),
                ))
            }
        };
        for (_, size) in self.open.iter_mut() {
            size.add(node);
        }
        self.total.add(node);
        self.over_limit(line, column)
    }

    /// The size of the node `event` starts, with anchors and open collections kept up to
    /// date; None when it opens a collection deeper than [`MAX_DEPTH`].
    fn node(&mut self, event: Event) -> Option<Size> {
        Some(match event {
            Event::Scalar { anchor, value, .. } => {
                let size = Size {
                    nodes: 1,
                    bytes: value.len() as u64,
                };
                if let Some(a) = anchor {
                    self.anchors.insert(a, size);
                }
                size
            }
            // an unknown alias is the deserializer's error to report; it counts as one node
            Event::Alias { anchor } => self
                .anchors
                .get(&anchor)
                .copied()
                .unwrap_or(Size { nodes: 1, bytes: 0 }),
            Event::Start { anchor, .. } => {
                if self.open.len() >= MAX_DEPTH {
                    return None;
                }
                self.open.push((anchor, Size::default()));
                Size { nodes: 1, bytes: 0 }
            }
            Event::End => {
                if let Some((Some(a), size)) = self.open.pop() {
                    self.anchors.insert(a, size);
                }
                Size::default()
            }
            Event::Other => Size::default(),
        })
    }

    /// The document's expanded size against [`MAX_NODES`] and [`MAX_SCALAR_BYTES`].
    fn over_limit(&self, line: usize, column: usize) -> Option<Finding> {
        if self.total.nodes > MAX_NODES {
            return Some(finding_at(
                line,
                column,
                format!("the YAML document expands to more than the limit of {MAX_NODES} nodes (aliases count as what they repeat)"),
                format!("write the data out with fewer aliases, or split it: parbake expands at most {MAX_NODES} YAML nodes per file"),
            ));
        }
        if self.total.bytes > MAX_SCALAR_BYTES {
            return Some(finding_at(
                line,
                column,
                format!("the YAML document expands to more than the limit of {} MiB of values (aliases count as what they repeat)", MAX_SCALAR_BYTES >> 20),
                format!("repeat long values less often: parbake expands at most {} MiB of YAML values per file", MAX_SCALAR_BYTES >> 20),
            ));
        }
        None
    }
}

/// `tag:yaml.org,2002:str` reads better as written: `!!str`.
fn short_tag(tag: &str) -> String {
    match tag.strip_prefix("tag:yaml.org,2002:") {
        Some(rest) => format!("!!{rest}"),
        None => tag.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(text: &str) -> Option<(usize, String)> {
        check(text).map(|f| (f.line, f.message))
    }

    #[test]
    fn accepts_plain_documents_and_own_tags() {
        assert_eq!(
            finding("a: 1\nb: [x, y]\nc: {d: 1, e: [1, {f: 2}]}\n"),
            None
        );
        assert_eq!(finding("v: !secret ssm:/x\nw: !unsafe '{{ x }}'\n"), None);
        assert_eq!(finding("- a: 1\n  b: 2\n- a: 1\n  b: 2\n"), None);
        assert_eq!(finding("a: &x {k: 1}\nb: *x\n"), None);
        assert_eq!(finding("a: [1, 1, 1]\n"), None);
    }

    #[test]
    fn refuses_other_tags_at_their_line() {
        let (line, msg) = finding("a: 1\nb: !!secret hunter2\n").unwrap();
        assert_eq!(line, 2);
        assert!(msg.contains("`!!secret`"), "{msg}");
        assert!(finding("a: !!python/object:os.system ls\n").is_some());
        assert!(finding("a: !vault |\n  x\n").is_some());
        assert!(finding("a: !!str 1\n").is_some());
        assert!(finding("a: !!map {b: 1}\n").is_some());
    }

    #[test]
    fn refuses_duplicate_keys_at_the_second() {
        let (line, msg) = finding("vars:\n  a: 1\n  b: 2\n  a: 3\n").unwrap();
        assert_eq!(line, 4);
        assert!(msg.contains("first at line 2"), "{msg}");
        assert_eq!(finding("a: 1\nb:\n  c: 1\na: 2\n").unwrap().0, 4);
        // the same key in sibling mappings is fine
        assert_eq!(finding("x: {a: 1}\ny: {a: 1}\n"), None);
        // a key after a nested mapping value is still a key
        assert_eq!(finding("x:\n  a: {b: 1}\n  a: 2\n").unwrap().0, 3);
    }

    #[test]
    fn refuses_merge_keys() {
        let (line, msg) = finding("base: &b {x: 1}\nvars:\n  <<: *b\n").unwrap();
        assert_eq!(line, 3);
        assert!(msg.contains("merge keys"));
        // a quoted "<<" is an ordinary key
        assert_eq!(finding("'<<': 1\n"), None);
    }

    #[test]
    fn limits_count_aliases_as_what_they_expand_to() {
        let message = |text: &str| limits(text).map(|f| f.message);
        // 10 x 10 x 10 ... : each level's anchor is 1 + 10 x the one below
        let mut text = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..4 {
            let row = vec![format!("*l{}", i - 1); 10].join(", ");
            text.push_str(&format!("l{i}: &l{i} [{row}]\n"));
        }
        assert_eq!(message(&text), None, "about 12500 nodes");
        let bomb = format!("{text}b: [{}]\n", ["*l3"; 9].join(", "));
        assert!(message(&bomb).unwrap().contains("50000 nodes"));
        // an anchor on a scalar counts its bytes
        let long = format!(
            "a: &a '{}'\nb: [{}]\n",
            "y".repeat(1 << 20),
            ["*a"; 16].join(", ")
        );
        assert!(message(&long).unwrap().contains("16 MiB of values"));
        // depth: 64 levels pass, 65 do not, flow or block
        let flow = |n: usize| format!("a: {}{}\n", "[".repeat(n), "]".repeat(n));
        assert_eq!(message(&flow(MAX_DEPTH - 1)), None);
        assert!(message(&flow(MAX_DEPTH)).unwrap().contains("64 levels"));
        let block: String = (0..MAX_DEPTH + 1)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect();
        assert!(message(&block).unwrap().contains("64 levels"));
        // size, before libyaml runs
        let big = "#".repeat(MAX_BYTES + 1);
        assert!(message(&big).unwrap().contains("over the limit"));
        // an unknown alias is left to the deserializer
        assert_eq!(message("a: *nope\n"), None);
    }

    #[test]
    fn leaves_syntax_errors_to_the_deserializer() {
        assert_eq!(finding("a: [1, 2\n"), None);
    }
}
