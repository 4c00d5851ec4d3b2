//! Exit codes and the errors that carry one.
//!
//! Commands return `anyhow::Result`. An error that should end with a
//! particular exit code or a `hint:` line is a [`Failure`] somewhere in the
//! chain; everything else exits with [`Exit::Error`].

use std::fmt;
use std::process::ExitCode;
use sync_protocol::{ErrorCode, ValidationError};

/// Documented exit codes (also in `fieldsync --help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// Any other error (bad input, unknown customer, server-side refusal).
    Error = 1,
    /// Command-line usage error (reported by clap).
    Usage = 2,
    /// The server could not be reached; local work is kept.
    Offline = 3,
    /// Not logged in, unknown token, or wrong username/password.
    Auth = 4,
    /// This device was revoked or the user deactivated.
    Revoked = 5,
    /// The server no longer accepts this client version.
    TooOld = 6,
    /// Sync finished but the server says this computer's clock is far off.
    Clock = 7,
    /// Another `fieldsync` command kept this profile busy past the wait
    /// limit (`--wait`), or a sync was already running; nothing of this
    /// command's change was saved.
    Busy = 8,
}

/// The exit-code table shown at the end of `fieldsync --help` (a macro so
/// that `cli.rs` can `concat!` it into the help text).
macro_rules! exit_codes_help {
    () => {
        "Exit codes:
  0  success
  1  error (bad input, unknown record, refused by the server)
  2  usage error (unknown flag, missing argument)
  3  offline: the server cannot be reached; local changes are kept
  4  authentication: not logged in, unknown token, wrong password
  5  this device was revoked or the user deactivated
  6  this fieldsync is too old for the server; upgrade it
  7  sync done, but this computer's clock is far off
  8  the profile is busy: another fieldsync command kept it past --wait
     (or a sync is already running); this change was not saved"
    };
}
pub(crate) use exit_codes_help;

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// An error with a chosen exit code and an optional `hint:` line.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub exit: Exit,
    /// A stable machine code (server/validation code), if any.
    pub code: Option<String>,
    /// The sentence shown after `error:`.
    pub message: String,
    /// The next step, shown after `hint:`.
    pub hint: Option<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// An error (exit 1).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Error,
            code: None,
            message: message.into(),
            hint: None,
        }
    }

    /// An error with a given exit code.
    pub fn exit(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            code: None,
            message: message.into(),
            hint: None,
        }
    }

    /// Add a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Add a machine code.
    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The profile has no login yet.
    pub fn not_logged_in() -> Self {
        Self::exit(Exit::Auth, "not logged in")
            .hint("log in first: fieldsync login --server URL --user NAME")
    }

    /// Local validation refused an op: nothing was written.
    pub fn invalid(e: &ValidationError) -> Self {
        let hint = match (e.code, e.field.as_deref()) {
            (ErrorCode::InvalidCoordinates, _) => {
                Some("latitude is -90..90 and longitude -180..180, in decimal degrees")
            }
            (ErrorCode::OutOfRange, Some("csat")) => Some("CSAT is a whole number from 1 to 5"),
            (ErrorCode::OutOfRange, Some("nps")) => Some("NPS is a whole number from 0 to 10"),
            (ErrorCode::MissingField, Some("resolution")) => {
                Some("add --resolution \"what was done\"")
            }
            (ErrorCode::InvalidTransition, _) => Some("see the allowed moves in the message above"),
            _ => None,
        };
        let f = Self::new(format!("{} ({}; nothing was saved)", e.message, e.code))
            .code(e.code.as_str());
        match hint {
            Some(h) => f.hint(h),
            None => f,
        }
    }
}

/// Shorthand: `Err(Failure::new(..).into())`.
pub fn fail<T>(message: impl Into<String>) -> anyhow::Result<T> {
    Err(Failure::new(message).into())
}

/// Shorthand with a hint.
pub fn fail_hint<T>(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Result<T> {
    Err(Failure::new(message).hint(hint).into())
}

/// Find the [`Failure`] in an error chain, if any.
pub fn failure_of(err: &anyhow::Error) -> Option<&Failure> {
    err.chain().find_map(|e| e.downcast_ref::<Failure>())
}

/// Whether SQLite gave up waiting for another process somewhere in the
/// chain (outside [`crate::store::Store::write_tx`], which says more).
pub fn is_busy(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<rusqlite::Error>())
        .any(crate::store::is_busy)
}

/// Whether the error is a closed stdout (e.g. `fieldsync customer list | head`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        let kind = e.downcast_ref::<std::io::Error>().map(std::io::Error::kind);
        // JSON output fails with serde_json's error, which wraps the I/O one.
        let kind = kind.or_else(|| e.downcast_ref::<serde_json::Error>()?.io_error_kind());
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}
