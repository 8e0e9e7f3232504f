//! What can go wrong with the vendored content. The top-level error keeps each kind's message,
//! hints and exit code.

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::fsread::ReadError;
use crate::interrupt::Interrupted;
use crate::process::ProcessError;
use crate::write::WriteError;

#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    /// The vendor directory, the lock or a source is refused, or disagrees with
    /// `requirements.yml`: a message and the hints that fix it (exit 1).
    #[error("{message}")]
    User { message: String, hints: Vec<String> },
    /// A path parbake chose could not be read or written (an internal error, exit 2).
    #[error("{context}: {}", .path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A bad `requirements.yml` (located), or a file refused by the reading rule.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// ansible-galaxy, git or tar failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ReadError> for VendorError {
    fn from(e: ReadError) -> Self {
        VendorError::Config(ConfigError::Read(e))
    }
}

impl VendorError {
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VendorError::Io {
            context,
            path: path.into(),
            source,
        }
    }

    pub fn user(message: impl Into<String>) -> Self {
        VendorError::User {
            message: message.into(),
            hints: Vec::new(),
        }
    }

    /// Adds a hint to a [`VendorError::User`]; other kinds carry their own.
    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        match self {
            VendorError::User { message, mut hints } => {
                hints.push(hint.into());
                VendorError::User { message, hints }
            }
            other => other,
        }
    }
}
