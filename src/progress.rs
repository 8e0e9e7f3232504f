//! Progress on stderr: an indicatif spinner with the layer, role, task and elapsed time when
//! stderr is a terminal; plain lines otherwise; the raw program output with -v. Plain lines
//! go out through the printer's [`stderr::line`]; a [`Progress`] comes from
//! [`Printer::progress`](crate::printer::Printer::progress).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::printer::stderr;

pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    verbose: bool,
    last_plain: String,
    started: Instant,
}

impl Progress {
    pub fn new(quiet: bool, verbose: bool) -> Progress {
        let tty = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let bar = (tty && !quiet && !verbose).then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix} {wide_msg}")
                    .expect("template"),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Progress {
            bar,
            quiet,
            verbose,
            last_plain: String::new(),
            started: Instant::now(),
        }
    }

    /// Plain lines even on a terminal (concurrent bakes cannot share one spinner).
    pub fn lines(quiet: bool, verbose: bool) -> Progress {
        Progress {
            bar: None,
            quiet,
            verbose,
            last_plain: String::new(),
            started: Instant::now(),
        }
    }

    /// A line that stays: "layer 1 debian12: cached".
    /// Whether `-q` silences this progress's lines.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    pub fn line(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.println(msg),
            None => stderr::line(msg),
        }
    }

    /// The current step (layer, role, task). On a terminal it replaces the spinner message; off
    /// one, it prints a line only when the step's first part (before " | ") changes.
    pub fn step(&mut self, prefix: &str, msg: &str) {
        if self.quiet || self.verbose {
            return;
        }
        match &self.bar {
            Some(b) => {
                b.set_prefix(prefix.to_string());
                b.set_message(msg.to_string());
            }
            None => {
                let key = format!("{prefix} {}", msg.split(" | ").next().unwrap_or(msg));
                if key != self.last_plain {
                    let secs = self.started.elapsed().as_secs_f64();
                    stderr::line(format!("[{secs:>5.0}s] {key}"));
                    self.last_plain = key;
                }
            }
        }
    }

    /// Raw output of a child program, shown with -v.
    pub fn raw(&self, line: &str) {
        if self.verbose && !self.quiet {
            stderr::line(line);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
