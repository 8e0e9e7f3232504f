//! parbake: layered machine images. Every Ansible role is installed on a base image, the
//! basic ones run at bake, the rest run at launch from generated user-data, and
//! `--promote ROLE` moves roles into a baked stack layer.
//!
//! config → plan → render → run → record. `plan` and `render` are pure.

pub mod ansible_core;
pub mod bake;
pub mod cli;
pub mod commands;
pub mod config;
pub mod contract;
pub mod doctor;
pub mod emit;
pub mod error;
pub mod fsread;
pub mod init;
pub mod interrupt;
pub mod ledger;
pub mod packer_version;
pub mod plan;
pub mod printer;
pub mod process;
pub mod progress;
pub mod project;
pub mod published;
pub mod render;
pub mod runtime;
pub mod store;
pub mod targets;
pub mod testing;
pub mod tools;
pub mod validate;
pub mod vendoring;
pub mod write;

use std::process::ExitCode;

use clap::Parser;

pub use error::{Error, Result};

/// Entry point of the binary: parse, run, print the error report, map to an exit code.
pub fn main() -> ExitCode {
    // first, so that no SIGINT or SIGTERM finds the default action (death without clean-up)
    interrupt::install();
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                error::exit::USER
            } else {
                error::exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let json = cli.printer().json();
    match cli::run(cli) {
        Ok(()) => ExitCode::from(error::exit::OK),
        Err(e) => {
            printer::stderr::text(error::Report(&e).to_string());
            // an interrupted run leaves stdout as empty as its outputs
            let interrupted = e.exit_code() == error::exit::INTERRUPTED;
            if json && !interrupted && !printer::stdout_used() {
                printer::json_error(&e);
            }
            ExitCode::from(e.exit_code())
        }
    }
}
