//! `fieldsync`: the command-line client. A rep's offline store, outbox and
//! sync client. See `cli.rs` for the command tree and `store/` for the
//! local model.

mod cli;
mod commands;
mod config;
mod error;
mod input;
mod output;
mod remote;
mod store;

use clap::Parser;
use error::{Exit, Failure, failure_of, is_broken_pipe, is_busy};
use output::Printer;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Ok.into()
            };
        }
    };
    let printer = Printer::new(cli.json);
    match commands::run(cli, printer) {
        Ok(()) => Exit::Ok.into(),
        Err(err) => report(printer, &err),
    }
}

/// Print an error (`error: …` then `hint: …`; with `--json` also a JSON
/// document on stdout) and choose the exit code.
fn report(printer: Printer, err: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(err) {
        return Exit::Ok.into();
    }
    let busy;
    let failure = match failure_of(err) {
        None if is_busy(err) => {
            busy = Failure::exit(Exit::Busy, format!("{err:#}"))
                .code("profile_busy")
                .hint("another fieldsync command is using this profile; run this one again when it has finished");
            Some(&busy)
        }
        found => found,
    };
    let exit = failure.map_or(Exit::Error, |f| f.exit);
    let hint = failure.and_then(|f| f.hint.as_deref());
    // The outermost message, with its causes unless a Failure says it all.
    let message = match failure {
        Some(f) if err.downcast_ref::<Failure>().is_some() || f.exit == Exit::Busy => {
            f.message.clone()
        }
        _ => format!("{err:#}"),
    };
    if printer.json {
        let body = serde_json::json!({"error": {"code": failure.and_then(|f| f.code.clone()), "message": message, "hint": hint, "exit": exit as u8}});
        let _ = printer.json(&body);
    }
    printer.progress_done();
    if exit == Exit::Offline {
        printer.say(&message);
        printer.hint(hint);
    } else {
        printer.error(&message, hint);
    }
    exit.into()
}
