//! The one printer: data on stdout (text or JSON, as `--format` says), progress and notes on
//! stderr (silenced by `-q`). Commands print through it and nothing else; long-running work
//! gets a [`Progress`] from it, configured the same way. Every line parbake writes to stderr
//! goes out through [`stderr`].

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::interrupt::{checkpoint, point};
use crate::progress::Progress;

pub mod stderr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Set once anything went to stdout: a failed `--json` run then prints its error document
/// only when it printed nothing else, so stdout stays one JSON document.
static STDOUT_USED: AtomicBool = AtomicBool::new(false);

/// Whether this process wrote its result (or part of it) to stdout.
pub fn stdout_used() -> bool {
    STDOUT_USED.load(Ordering::SeqCst)
}

/// The error document of a failed `--json` run on stdout ([`crate::error::json_document`]).
pub fn json_error(e: &Error) {
    let _ = print_json(
        &mut std::io::stdout().lock(),
        &crate::error::json_document(e),
    );
}

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub quiet: bool,
    pub verbose: bool,
    pub format: Format,
}

impl Printer {
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// A line of progress or a note, on stderr, unless `-q`.
    pub fn note(&self, line: impl AsRef<str>) {
        if !self.quiet {
            stderr::line(line);
        }
    }

    /// A warning: on stderr even with `-q`.
    pub fn warn(&self, line: impl AsRef<str>) {
        stderr::warning(line);
    }

    /// A progress display for long work (a bar on a terminal, lines otherwise), on stderr
    /// with either format.
    pub fn progress(&self) -> Progress {
        Progress::new(self.quiet, self.verbose)
    }

    /// Progress as plain lines (for concurrent work).
    pub fn progress_lines(&self) -> Progress {
        Progress::lines(self.quiet, self.verbose)
    }

    /// The command's result on stdout: JSON with `--format json`, else the text rendering.
    /// Stops first if the command was interrupted, so nothing partial is printed.
    pub fn data<T: Serialize>(&self, value: &T, text: impl FnOnce(&T) -> String) -> Result<()> {
        checkpoint(point::COMMIT)?;
        self.summary(value, text)
    }

    /// The results of one command run once per architecture: a single one as
    /// [`Printer::data`] prints it; several as one JSON array, or their texts one after
    /// another.
    pub fn data_each<T: Serialize>(&self, items: &[T], text: impl Fn(&T) -> String) -> Result<()> {
        match items {
            [one] => self.data(one, |v| text(v)),
            _ => self.data(&items, |all| {
                all.iter().map(&text).collect::<Vec<_>>().join("\n")
            }),
        }
    }

    /// Like [`Printer::data`], but printed after an interruption too: a summary of what
    /// happened (`bake --all` stopped by Ctrl-C still says which layers failed or were skipped).
    pub fn summary<T: Serialize>(&self, value: &T, text: impl FnOnce(&T) -> String) -> Result<()> {
        let mut out = std::io::stdout().lock();
        if self.json() {
            print_json(&mut out, value)
        } else {
            write_out(&mut out, text(value).as_bytes())
        }
    }

    /// Raw bytes on stdout (the user-data).
    pub fn bytes(&self, bytes: &[u8]) -> Result<()> {
        checkpoint(point::COMMIT)?;
        write_out(&mut std::io::stdout().lock(), bytes)
    }

    /// Refuses `--format json` for a command whose output is not a report.
    pub fn text_only(&self, command: &str, why: &str) -> Result<()> {
        if self.json() {
            return Err(
                Error::user(format!("{command} has no JSON output")).with_hint(why.to_string())
            );
        }
        Ok(())
    }
}

/// A reader that stopped early (`| head`) is not an error.
fn write_out(out: &mut impl Write, bytes: &[u8]) -> Result<()> {
    STDOUT_USED.store(true, Ordering::SeqCst);
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("write", "stdout", e)),
        Ok(()) => Ok(()),
    }
}

/// Pretty JSON and a newline.
fn print_json(out: &mut impl Write, value: &impl Serialize) -> Result<()> {
    STDOUT_USED.store(true, Ordering::SeqCst);
    match serde_json::to_writer_pretty(&mut *out, value) {
        Err(e) if e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe) => return Ok(()),
        Err(e) => return Err(Error::Internal(e.to_string())),
        Ok(()) => {}
    }
    write_out(out, b"\n")
}
