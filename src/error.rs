//! The top-level error: every module's error converts into it, and it knows
//! its exit code and the hints to print under the cause chain. The low layers (config, plan,
//! render, process, write, vendoring, fsread, interrupt, runtime) return their own errors and
//! never name this one; the commands, targets and records above them use it.

use std::fmt;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::fsread::ReadError;
use crate::interrupt::Interrupted;
use crate::plan::PlanError;
use crate::process::ProcessError;
use crate::render::RenderError;
use crate::runtime::RuntimeError;
use crate::vendoring::VendorError;
use crate::write::WriteError;

/// Documented exit codes (README "Exit codes").
pub mod exit {
    pub const OK: u8 = 0;
    pub const USER: u8 = 1;
    pub const INTERNAL: u8 = 2;
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Process(ProcessError),
    /// The vendored content failed its check while the project loaded
    /// (`crate::project::load`): printed as that error, but exit 1 and without its detail, as
    /// a config error.
    #[error(transparent)]
    VendorCheck(Box<Error>),
    #[error("{context}: {}", .path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A user-facing failure that is not about a config file (bad flag combination, missing tool).
    #[error("{message}")]
    User { message: String, hints: Vec<String> },
    /// A real validator (packer, ansible, cloud-init) rejected a rendered artifact.
    #[error("{count} validation check(s) failed")]
    Validation { count: usize },
    #[error("{}", layers_message(*failed, *skipped, *unverified))]
    Layers {
        failed: usize,
        skipped: usize,
        unverified: usize,
    },
    #[error("interrupted")]
    Interrupted,
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            context,
            path: path.into(),
            source,
        }
    }

    pub fn user(message: impl Into<String>) -> Self {
        Error::User {
            message: message.into(),
            hints: Vec::new(),
        }
    }

    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        match self {
            Error::User { message, mut hints } => {
                hints.push(hint.into());
                Error::User { message, hints }
            }
            other => other,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Plan(_) | Error::Render(_) | Error::User { .. } => exit::USER,
            Error::VendorCheck(_) => exit::USER,
            Error::Validation { .. } | Error::Layers { .. } => exit::USER,
            Error::Process(e) if e.is_interrupted() => exit::INTERRUPTED,
            Error::Process(e) if e.is_missing_program() => exit::USER,
            Error::Process(_) => exit::USER,
            Error::Interrupted => exit::INTERRUPTED,
            Error::Io { .. } | Error::Internal(_) => exit::INTERNAL,
        }
    }

    pub fn hints(&self) -> Vec<String> {
        match self {
            Error::Config(e) => e.hints(),
            Error::Plan(e) => e.hints(),
            Error::Render(e) => e.hints(),
            Error::Process(e) => e.hints(),
            Error::VendorCheck(e) => e.hints(),
            Error::User { hints, .. } => hints.clone(),
            Error::Validation { .. } => {
                vec!["each failing check is printed above with the validator's own output".into()]
            }
            Error::Layers { .. } => vec![
                "each failure is printed above with its log; the summary on stdout lists every layer".into(),
            ],
            Error::Internal(_) => {
                vec!["this is a bug in parbake; please report it with the command you ran".into()]
            }
            _ => Vec::new(),
        }
    }

    /// Extra text printed between the message and the hints (a source snippet, a child's output tail).
    pub fn detail(&self) -> Option<String> {
        match self {
            Error::Config(e) => e.snippet(),
            Error::Plan(e) => e.snippet(),
            Error::Process(e) => e.output_tail(),
            Error::Render(e) => e.detail(),
            _ => None,
        }
    }
}

/// Renders an error the way the CLI prints it: message, cause chain, detail, hints.
pub struct Report<'a>(pub &'a Error);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.0)?;
        let mut source = std::error::Error::source(self.0);
        // transparent variants share their source with the inner error; skip duplicates
        let mut last = self.0.to_string();
        while let Some(cause) = source {
            let text = cause.to_string();
            if text != last {
                writeln!(f, "  caused by: {text}")?;
            }
            last = text;
            source = cause.source();
        }
        if let Some(detail) = self.0.detail() {
            write!(f, "{detail}")?;
            if !detail.ends_with('\n') {
                writeln!(f)?;
            }
        }
        for hint in self.0.hints() {
            writeln!(f, "hint: {hint}")?;
        }
        Ok(())
    }
}

/// The error as a JSON document, for `--json` runs that fail before printing their result:
/// `{"error": {"message", "exit_code", "hints", "report", and "file", "line", "column",
/// "field" when the error has a place}}`. `report` is the text stderr shows.
pub fn json_document(e: &Error) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "message": e.to_string(),
        "exit_code": e.exit_code(),
        "hints": e.hints(),
        "report": Report(e).to_string(),
    });
    if let Error::Config(c) = e {
        if let Some(l) = c.located() {
            doc["file"] = l.file.clone().into();
            doc["line"] = l.line.into();
            doc["column"] = l.column.into();
            doc["field"] = l.field.clone().into();
        }
    }
    serde_json::json!({ "error": doc })
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A program that did not run or failed; a file it wrote that cannot be read back is an
/// internal I/O error.
impl From<ProcessError> for Error {
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::Io {
                context,
                path,
                source,
            } => Error::Io {
                context,
                path,
                source,
            },
            e => Error::Process(e),
        }
    }
}

/// A file refused by the reading rule is a config error, wherever it was read.
impl From<ReadError> for Error {
    fn from(e: ReadError) -> Self {
        Error::Config(ConfigError::Read(e))
    }
}

impl From<Interrupted> for Error {
    fn from(_: Interrupted) -> Self {
        Error::Interrupted
    }
}

impl From<RuntimeError> for Error {
    fn from(e: RuntimeError) -> Self {
        Error::Internal(e.to_string())
    }
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Io {
                context,
                path,
                source,
            } => Error::Io {
                context,
                path,
                source,
            },
            WriteError::User { message, hints } => Error::User { message, hints },
            WriteError::Read(e) => e.into(),
            WriteError::Interrupted(e) => e.into(),
        }
    }
}

impl From<VendorError> for Error {
    fn from(e: VendorError) -> Self {
        match e {
            VendorError::User { message, hints } => Error::User { message, hints },
            VendorError::Io {
                context,
                path,
                source,
            } => Error::Io {
                context,
                path,
                source,
            },
            VendorError::Config(e) => e.into(),
            VendorError::Process(e) => e.into(),
            VendorError::Write(e) => e.into(),
            VendorError::Interrupted(e) => e.into(),
            VendorError::Internal(m) => Error::Internal(m),
        }
    }
}

/// `1 layer(s) failed and 2 were skipped`, with `; 1 stack(s) did not pass verify` when some
/// did not.
fn layers_message(failed: usize, skipped: usize, unverified: usize) -> String {
    let mut m = format!("{failed} layer(s) failed and {skipped} were skipped");
    if unverified > 0 {
        m.push_str(&format!("; {unverified} stack(s) did not pass verify"));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(context: &'static str) -> (&'static str, PathBuf, std::io::Error) {
        let e = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        (context, PathBuf::from("/x"), e)
    }

    fn report(e: &Error) -> String {
        Report(e).to_string()
    }

    /// Each low layer's error becomes the very `Error` those layers built before they had
    /// their own: same report, same exit code.
    #[test]
    fn low_layer_errors_convert_to_the_same_report_and_exit_code() {
        let (context, path, source) = io("write");
        let w = Error::from(WriteError::Io {
            context,
            path,
            source,
        });
        assert_eq!(report(&w), "error: write: /x\n  caused by: denied\n");
        assert_eq!(w.exit_code(), exit::INTERNAL);
        let (context, path, source) = io("read");
        let p = Error::from(ProcessError::Io {
            context,
            path,
            source,
        });
        assert_eq!(report(&p), "error: read: /x\n  caused by: denied\n");
        assert_eq!(p.exit_code(), exit::INTERNAL);
        let u = Error::from(VendorError::user("stale").with_hint("run `parbake vendor`"));
        assert_eq!(report(&u), "error: stale\nhint: run `parbake vendor`\n");
        assert_eq!(u.exit_code(), exit::USER);
        assert_eq!(Error::from(Interrupted).exit_code(), exit::INTERRUPTED);
        assert_eq!(
            Error::from(WriteError::Interrupted(Interrupted)).to_string(),
            "interrupted"
        );
        let r = Error::from(RuntimeError(std::io::Error::other("no threads")));
        assert_eq!(r.to_string(), "internal error: tokio runtime: no threads");
        assert_eq!(r.exit_code(), exit::INTERNAL);
    }

    /// A vendored check that fails while the project loads prints as its error, exits 1 even
    /// when it is an I/O error, and shows no detail.
    #[test]
    fn a_failed_vendored_check_exits_1_without_detail() {
        let (context, path, source) = io("resolve");
        let e = Error::VendorCheck(Box::new(VendorError::io(context, path, source).into()));
        assert_eq!(report(&e), "error: resolve: /x\n  caused by: denied\n");
        assert_eq!(e.exit_code(), exit::USER);
        assert_eq!(e.detail(), None);
    }
}
