//! The top-level error: every module's error converts into it, and it knows
//! its exit code and the hints to print under the cause chain.

use std::fmt;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::plan::PlanError;
use crate::process::ProcessError;
use crate::render::RenderError;

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
    Process(#[from] ProcessError),
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

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `1 layer(s) failed and 2 were skipped`, with `; 1 stack(s) did not pass verify` when some
/// did not.
fn layers_message(failed: usize, skipped: usize, unverified: usize) -> String {
    let mut m = format!("{failed} layer(s) failed and {skipped} were skipped");
    if unverified > 0 {
        m.push_str(&format!("; {unverified} stack(s) did not pass verify"));
    }
    m
}
