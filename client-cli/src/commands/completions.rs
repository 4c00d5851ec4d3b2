//! `fieldsync completions SHELL`: generated from the clap definitions.

use crate::cli::{Cli, ShellKind};
use clap::CommandFactory;
use clap_complete::{Shell, generate};

/// Print completions for `shell` on stdout.
pub fn run(shell: ShellKind) {
    let shell = match shell {
        ShellKind::Bash => Shell::Bash,
        ShellKind::Zsh => Shell::Zsh,
        ShellKind::Fish => Shell::Fish,
    };
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    generate(shell, &mut cmd, "fieldsync", &mut out);
}
