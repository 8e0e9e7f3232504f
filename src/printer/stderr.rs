//! The printer's raw stderr: one line at a time, whatever `-q` says. The [`Printer`]'s notes
//! and warnings come here, and so do the writers that hold no printer and have already decided
//! to speak: progress, the Ctrl-C handler, a test pause, a warning that does not stop the
//! command. A leaf that imports nothing of parbake, so the low layers can call it without
//! depending on the printer's own imports.
//!
//! [`Printer`]: crate::printer::Printer

/// One line on stderr.
pub fn line(text: impl AsRef<str>) {
    eprintln!("{}", text.as_ref());
}

/// A warning on stderr (`warning: ...`): something went wrong that does not stop the command.
pub fn warning(text: impl AsRef<str>) {
    eprintln!("warning: {}", text.as_ref());
}

/// Text on stderr as it is (a rendered error report, which ends its own lines).
pub fn text(text: impl AsRef<str>) {
    eprint!("{}", text.as_ref());
}
