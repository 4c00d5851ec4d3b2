//! The command tree (clap derive). Each subcommand's code lives in the
//! matching file under `commands/`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const MAIN_HELP: &str = concat!(
    "\
Examples:
  fieldsync login --server https://fieldsync.example.com --user mei
  fieldsync customer add \"Acme Trading\" --segment retail --lat 31.2304 --lon 121.4737
  fieldsync visit start acme --lat 31.2305 --lon 121.4736 --purpose \"quarterly review\"
  fieldsync visit end --outcome \"ordered 20 units\" --next-step \"send quote\"
  fieldsync feedback add acme --kind survey --csat 2 --text \"deliveries late\"
  fieldsync sale add acme --amount 1234.56 --product \"Widget Pro\"
  fieldsync sync
  fieldsync status --json

Everything except login, sync and admin commands works offline.

",
    crate::error::exit_codes_help!()
);

/// fieldsync: record customers, visits, feedback and sales offline, then sync.
#[derive(Debug, Parser)]
#[command(name = "fieldsync", version, after_help = MAIN_HELP, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Profile directory (config and local store). Each profile is independent.
    #[arg(
        long,
        global = true,
        env = "FIELDSYNC_HOME",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub home: Option<PathBuf>,

    /// Print stable machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for another fieldsync command on the same profile
    /// (e.g. a running sync) before giving up with exit code 8.
    #[arg(
        long,
        global = true,
        env = "FIELDSYNC_WAIT",
        hide_env_values = true,
        value_name = "SECONDS",
        default_value_t = crate::config::DEFAULT_WAIT.as_secs(),
        value_parser = clap::value_parser!(u64).range(0..=86_400)
    )]
    pub wait: u64,

    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in to a server and register this laptop (needs the network).
    #[command(
        after_help = "Examples:\n  fieldsync login --server https://fieldsync.example.com --user mei\n  echo \"$PASSWORD\" | fieldsync login --server http://127.0.0.1:8080 --user mei --password-stdin"
    )]
    Login(LoginArgs),
    /// Log out (revokes this device's token on the server if reachable).
    #[command(
        after_help = "Unsynced changes are kept unless you pass --wipe --force.\n\nExamples:\n  fieldsync logout\n  fieldsync logout --wipe"
    )]
    Logout(LogoutArgs),
    /// Show who this profile is logged in as.
    Whoami,
    /// Customers: add, list, show, edit, archive.
    #[command(subcommand)]
    Customer(CustomerCmd),
    /// Visits with GPS check-in and check-out.
    #[command(subcommand)]
    Visit(VisitCmd),
    /// Customer feedback: surveys, complaints, suggestions, praise.
    #[command(subcommand)]
    Feedback(FeedbackCmd),
    /// Sales won from customers.
    #[command(subcommand)]
    Sale(SaleCmd),
    /// SMART goals for reps and teams, with live progress.
    #[command(subcommand)]
    Goal(crate::commands::goal::GoalCmd),
    /// HQ consolidated reports from the server (supervisors: their team).
    #[command(subcommand)]
    Hq(crate::commands::hq::HqCmd),
    /// Training courses, assignments and completions.
    #[command(subcommand)]
    Training(crate::commands::training::TrainingCmd),
    /// Weekly and monthly work reports.
    #[command(subcommand)]
    WorkReport(crate::commands::work_report::WorkReportCmd),
    /// One-on-one meetings with their action items.
    #[command(subcommand)]
    OneOnOne(crate::commands::one_on_one::OneOnOneCmd),
    /// Performance evaluations: scorecards, ratings, acknowledgement, calibration.
    #[command(subcommand)]
    Evaluation(crate::commands::evaluation::EvaluationCmd),
    /// Incentive plans: tiers by score or attainment (HQ).
    #[command(subcommand)]
    IncentivePlan(crate::commands::incentive_plan::IncentivePlanCmd),
    /// Rewards: suggested from the incentive plan, granted, listed.
    #[command(subcommand)]
    Reward(crate::commands::reward::RewardCmd),
    /// Improvement actions checked for effect.
    #[command(subcommand)]
    Action(crate::commands::action::ActionCmd),
    /// Administration (online; admin, HQ or supervisor accounts).
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Push local changes and pull everyone else's.
    #[command(
        after_help = "Examples:\n  fieldsync sync\n  fieldsync sync --verify\n  fieldsync sync --json"
    )]
    Sync(SyncArgs),
    /// Pending changes, last sync, problems and conflicts.
    Status,
    /// Write this profile (local store, unsynced changes, login) to one file.
    #[command(
        after_help = "Safe while other fieldsync commands run on the profile: the file holds the\nprofile as of one instant. It holds the login token: keep it private.\n\nExamples:\n  fieldsync backup ~/backups/fieldsync-$(date +%F).db\n  fieldsync --home ~/.fieldsync-mei backup mei.db"
    )]
    Backup(BackupArgs),
    /// Put a backup into an empty profile directory (see `backup`).
    #[command(
        after_help = "The profile directory (--home or FIELDSYNC_HOME) must not hold a profile yet.\n\nExamples:\n  fieldsync restore ~/backups/fieldsync-2026-12-01.db\n  fieldsync restore mei.db --home ~/.fieldsync-mei"
    )]
    Restore(RestoreArgs),
    /// Fields on which your change lost to a newer one.
    #[command(subcommand)]
    Conflicts(ConflictsCmd),
    /// Changes the server refused.
    #[command(subcommand)]
    Problems(ProblemsCmd),
    /// Print shell completions.
    #[command(
        after_help = "Examples:\n  fieldsync completions bash > ~/.local/share/bash-completion/completions/fieldsync\n  fieldsync completions zsh > ~/.zfunc/_fieldsync\n  fieldsync completions fish > ~/.config/fish/completions/fieldsync.fish"
    )]
    Completions {
        /// The shell.
        shell: ShellKind,
    },
}

/// Shells with completions.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ShellKind {
    /// Bash.
    Bash,
    /// Zsh.
    Zsh,
    /// Fish.
    Fish,
}

/// `login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Server URL, e.g. https://fieldsync.example.com
    #[arg(long)]
    pub server: String,
    /// Username.
    #[arg(long)]
    pub user: String,
    /// Read the password from stdin instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Also delete the local store and config of this profile.
    #[arg(long)]
    pub wipe: bool,
    /// With --wipe: delete even changes that were never synced.
    #[arg(long, requires = "wipe")]
    pub force: bool,
}

/// A position given on the command line.
#[derive(Debug, Args, Clone, Copy)]
pub struct Position {
    /// Latitude in decimal degrees (-90..90).
    #[arg(long, requires = "lon", allow_negative_numbers = true)]
    pub lat: Option<f64>,
    /// Longitude in decimal degrees (-180..180).
    #[arg(long, requires = "lat", allow_negative_numbers = true)]
    pub lon: Option<f64>,
}

/// `customer ...`
#[derive(Debug, Subcommand)]
pub enum CustomerCmd {
    /// Add a customer.
    #[command(
        after_help = "Example:\n  fieldsync customer add \"Acme Trading\" --segment retail --address \"88 Nanjing Rd\" --lat 31.2304 --lon 121.4737 --phone 021-5555-0100 --contact \"Li Wei\""
    )]
    Add {
        /// Customer name.
        name: String,
        /// Segment, e.g. retail.
        #[arg(long)]
        segment: Option<String>,
        /// Street address.
        #[arg(long)]
        address: Option<String>,
        #[command(flatten)]
        position: Position,
        /// Phone number.
        #[arg(long)]
        phone: Option<String>,
        /// Contact person.
        #[arg(long)]
        contact: Option<String>,
    },
    /// List customers.
    #[command(
        after_help = "Examples:\n  fieldsync customer list\n  fieldsync customer list --search acme --json"
    )]
    List {
        /// Only customers whose name, segment, address, contact or phone contains TEXT.
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
        /// Include archived customers.
        #[arg(long)]
        all: bool,
    },
    /// Show a customer with its visits, feedback and sales.
    #[command(
        after_help = "CUSTOMER is an id, a unique id prefix, or a unique name (any case).\n\nExamples:\n  fieldsync customer show acme\n  fieldsync customer show acme --last 10"
    )]
    Show {
        /// Customer: id, id prefix or name.
        customer: String,
        /// Only the latest N visits, feedback entries and sales (each);
        /// the counts still say how many there are in all.
        #[arg(long, value_name = "N")]
        last: Option<usize>,
    },
    /// Change a customer's details (only the fields given).
    #[command(
        after_help = "Example:\n  fieldsync customer edit acme --phone 021-5555-0199 --contact \"Zhang Min\""
    )]
    Edit {
        /// Customer: id, id prefix or name.
        customer: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New segment.
        #[arg(long)]
        segment: Option<String>,
        /// New address.
        #[arg(long)]
        address: Option<String>,
        #[command(flatten)]
        position: Position,
        /// New phone.
        #[arg(long)]
        phone: Option<String>,
        /// New contact person.
        #[arg(long)]
        contact: Option<String>,
    },
    /// Archive a customer (history stays).
    Archive {
        /// Customer: id, id prefix or name.
        customer: String,
    },
}

/// `visit ...`
#[derive(Debug, Subcommand)]
pub enum VisitCmd {
    /// Check in at a customer now.
    #[command(
        after_help = "Example:\n  fieldsync visit start acme --lat 31.2305 --lon 121.4736 --accuracy 12 --purpose \"quarterly review\""
    )]
    Start {
        /// Customer: id, id prefix or name.
        customer: String,
        #[command(flatten)]
        position: Position,
        /// GPS accuracy in metres.
        #[arg(long, requires = "lat", value_name = "M")]
        accuracy: Option<i64>,
        /// Why you are there.
        #[arg(long)]
        purpose: Option<String>,
    },
    /// Check out of a visit (the one open visit unless VISIT is given).
    #[command(
        after_help = "Example:\n  fieldsync visit end --lat 31.2305 --lon 121.4736 --outcome \"ordered 20 units\" --next-step \"send quote\""
    )]
    End {
        /// Visit id or prefix (default: the single open visit).
        visit: Option<String>,
        #[command(flatten)]
        position: Position,
        /// What came of it.
        #[arg(long)]
        outcome: String,
        /// What happens next.
        #[arg(long)]
        next_step: Option<String>,
    },
    /// Record a past visit.
    #[command(
        after_help = "TIME is RFC 3339 (2026-11-28T09:30:00+08:00) or local \"YYYY-MM-DD HH:MM\".\n--reason is required when there is no location.\n\nExample:\n  fieldsync visit log acme --at \"2026-11-27 14:00\" --minutes 45 --purpose demo --outcome \"trial agreed\" --reason \"GPS was off\""
    )]
    Log {
        /// Customer: id, id prefix or name.
        customer: String,
        /// When it started.
        #[arg(long, value_name = "TIME")]
        at: String,
        /// How long it lasted.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=1440))]
        minutes: i64,
        /// Why.
        #[arg(long)]
        purpose: String,
        /// What came of it.
        #[arg(long)]
        outcome: String,
        #[command(flatten)]
        position: Position,
        /// Why there is no location (required without --lat/--lon).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Record many past visits from a JSON Lines file, all or none.
    #[command(
        after_help = "Each line is one visit with the arguments of `visit log`:\n  {\"customer\": \"acme\", \"at\": \"2026-11-27T09:00:00+08:00\", \"minutes\": 45, \"purpose\": \"demo\", \"outcome\": \"trial agreed\", \"lat\": 31.2305, \"lon\": 121.4737}\n(\"reason\" instead of lat/lon when there was no GPS). Every line is checked\nfirst; if any is bad, the errors are listed by line number and nothing is saved.\n\nExample:\n  fieldsync visit import visits.jsonl"
    )]
    Import {
        /// JSON Lines file (`-` reads stdin).
        file: PathBuf,
    },
    /// List visits.
    #[command(
        after_help = "Examples:\n  fieldsync visit list --since 2026-11-01\n  fieldsync visit list --customer acme --json"
    )]
    List {
        /// Only visits starting on or after this date or time.
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only this customer's visits.
        #[arg(long)]
        customer: Option<String>,
    },
    /// Show one visit with its GPS check.
    Show {
        /// Visit id or prefix.
        visit: String,
    },
    /// Correct a visit: records a new visit that amends the original.
    #[command(
        after_help = "Example:\n  fieldsync visit amend 0193a1b2 --minutes 50 --reason \"forgot to check out\""
    )]
    Amend {
        /// Visit id or prefix.
        visit: String,
        /// Corrected purpose.
        #[arg(long)]
        purpose: Option<String>,
        /// Corrected outcome.
        #[arg(long)]
        outcome: Option<String>,
        /// Corrected next step.
        #[arg(long)]
        next_step: Option<String>,
        /// Corrected start time.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Corrected duration.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=1440))]
        minutes: Option<i64>,
        /// Why the correction.
        #[arg(long)]
        reason: String,
    },
}

/// Feedback kinds.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum FeedbackKind {
    /// A satisfaction survey (CSAT and/or NPS).
    Survey,
    /// A complaint to follow to resolution.
    Complaint,
    /// A suggestion.
    Suggestion,
    /// Praise.
    Praise,
}

impl FeedbackKind {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Survey => "survey",
            FeedbackKind::Complaint => "complaint",
            FeedbackKind::Suggestion => "suggestion",
            FeedbackKind::Praise => "praise",
        }
    }
}

/// `feedback ...`
#[derive(Debug, Subcommand)]
pub enum FeedbackCmd {
    /// Record feedback. A survey with CSAT <= 2 or NPS <= 6 also opens a follow-up complaint.
    #[command(
        after_help = "Examples:\n  fieldsync feedback add acme --kind survey --csat 4 --nps 9 --text \"happy with service\"\n  fieldsync feedback add acme --kind complaint --category delivery --text \"late twice\""
    )]
    Add {
        /// Customer: id, id prefix or name.
        customer: String,
        /// Kind of feedback.
        #[arg(long, value_enum)]
        kind: FeedbackKind,
        /// Customer satisfaction 1-5.
        #[arg(long, allow_negative_numbers = true)]
        csat: Option<i64>,
        /// Net promoter score 0-10.
        #[arg(long, allow_negative_numbers = true)]
        nps: Option<i64>,
        /// Category, e.g. delivery.
        #[arg(long)]
        category: Option<String>,
        /// What the customer said.
        #[arg(long)]
        text: String,
        /// The visit it was given on (id or prefix).
        #[arg(long)]
        visit: Option<String>,
    },
    /// List feedback.
    List {
        /// Only open or in-progress feedback.
        #[arg(long)]
        open: bool,
    },
    /// Show one feedback entry.
    Show {
        /// Feedback id or prefix.
        feedback: String,
    },
    /// Move feedback through its workflow (open, in_progress, resolved, closed).
    #[command(
        after_help = "Examples:\n  fieldsync feedback move 0193a1b2 --to in_progress --note \"called the customer\"\n  fieldsync feedback move 0193a1b2 --to resolved --resolution \"replaced the unit\""
    )]
    Move {
        /// Feedback id or prefix.
        feedback: String,
        /// New status: open, in_progress, resolved, closed.
        #[arg(long, value_name = "STATUS")]
        to: String,
        /// A note on the move.
        #[arg(long)]
        note: Option<String>,
        /// What was done (required to resolve).
        #[arg(long)]
        resolution: Option<String>,
    },
}

/// `sale ...`
#[derive(Debug, Subcommand)]
pub enum SaleCmd {
    /// Record a sale.
    #[command(
        after_help = "Example:\n  fieldsync sale add acme --amount 1234.56 --currency CNY --product \"Widget Pro\" --at 2026-11-27"
    )]
    Add {
        /// Customer: id, id prefix or name.
        customer: String,
        /// Amount as a decimal, e.g. 1234.56 (never rounded).
        #[arg(long, allow_negative_numbers = true)]
        amount: String,
        /// ISO 4217 currency code.
        #[arg(long, default_value = "CNY")]
        currency: String,
        /// Product.
        #[arg(long)]
        product: String,
        /// When it was sold (date or time; default now).
        #[arg(long, value_name = "DATE")]
        at: Option<String>,
    },
    /// List sales.
    List,
    /// Void a sale (it stays in the history, marked void).
    Void {
        /// Sale id or prefix.
        sale: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

/// `admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Teams.
    #[command(subcommand)]
    Team(AdminTeamCmd),
    /// User accounts.
    #[command(subcommand)]
    User(AdminUserCmd),
    /// Registered devices.
    #[command(subcommand)]
    Device(AdminDeviceCmd),
    /// Customer assignment.
    #[command(subcommand)]
    Customer(AdminCustomerCmd),
    /// Ops the server rejected, kept for review: list, apply or discard.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Applying checks the change again under today's rules, as your decision (a supervisor for their own team; HQ and admins for everyone); the rep's laptop shows it as applied at its next sync. Discarding keeps it in the record with your reason, which the rep sees.\n\nExamples:\n  fieldsync admin problems\n  fieldsync admin problems --team north --all\n  fieldsync admin problems apply 12\n  fieldsync admin problems discard 13 --reason \"logged twice\""
    )]
    Problems(AdminProblemsArgs),
    /// Open conflicts in which a member lost or won: values that lost to
    /// a write that had not seen them.
    #[command(
        after_help = "Examples:\n  fieldsync admin conflicts\n  fieldsync admin conflicts --team north --json"
    )]
    Conflicts {
        /// Only this team.
        #[arg(long)]
        team: Option<String>,
    },
}

/// `admin team ...`
#[derive(Debug, Subcommand)]
pub enum AdminTeamCmd {
    /// Create a team.
    Add {
        /// Team name.
        name: String,
        /// Region.
        #[arg(long)]
        region: Option<String>,
    },
    /// List teams.
    List,
}

/// Roles.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    /// Account manager.
    Rep,
    /// Team lead.
    Supervisor,
    /// Headquarters.
    Hq,
    /// Administrator.
    Admin,
}

/// `admin user ...`
#[derive(Debug, Subcommand)]
pub enum AdminUserCmd {
    /// Create a user (password prompted, or read with --password-stdin).
    #[command(
        after_help = "Example:\n  echo \"$PW\" | fieldsync admin user add mei --role rep --team east --supervisor lin --password-stdin"
    )]
    Add {
        /// Username.
        name: String,
        /// Role.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Team name.
        #[arg(long)]
        team: Option<String>,
        /// Supervisor's username.
        #[arg(long)]
        supervisor: Option<String>,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Deactivate a user: they cannot log in, and their devices can only
    /// hand over the changes written before the deactivation.
    #[command(
        after_help = "Their customers stay theirs until reassigned: fieldsync admin customer assign --from NAME --to REP\n\nExample:\n  fieldsync admin user deactivate li.rep"
    )]
    Deactivate {
        /// Username.
        name: String,
    },
    /// Reactivate a deactivated user: they may log in and sync again.
    #[command(after_help = "Example:\n  fieldsync admin user reactivate li.rep")]
    Reactivate {
        /// Username.
        name: String,
    },
    /// Set a new password.
    ResetPassword {
        /// Username.
        name: String,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// `admin problems [--team T] [--all] | apply N | discard N --reason T`.
#[derive(Debug, Args)]
pub struct AdminProblemsArgs {
    /// Only this team.
    #[arg(long)]
    pub team: Option<String>,
    /// Decided ones too (applied or discarded).
    #[arg(long)]
    pub all: bool,
    #[command(subcommand)]
    pub cmd: Option<AdminProblemsCmd>,
}

/// `admin problems apply|discard`.
#[derive(Debug, Subcommand)]
pub enum AdminProblemsCmd {
    /// Apply the refused change, as your decision.
    Apply {
        /// Problem number (see fieldsync admin problems).
        id: i64,
    },
    /// Drop the refused change, saying why.
    Discard {
        /// Problem number (see fieldsync admin problems).
        id: i64,
        /// Why (the rep sees it; up to 500 characters).
        #[arg(long)]
        reason: String,
    },
}

/// `admin device ...`
#[derive(Debug, Subcommand)]
pub enum AdminDeviceCmd {
    /// List devices.
    List {
        /// Only this user's devices.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a device (a lost laptop).
    Revoke {
        /// Device id.
        device: String,
    },
}

/// `admin customer ...`
#[derive(Debug, Subcommand)]
pub enum AdminCustomerCmd {
    /// Give a customer (and its whole history) to another rep, or with
    /// --from every customer of one user (a deactivated rep's).
    #[command(
        after_help = "Work the previous owner recorded before the reassignment still arrives, as the customer's history; work recorded after it becomes a problem (fieldsync admin problems).\n\nExamples:\n  fieldsync admin customer assign acme --to mei\n  fieldsync admin customer assign --from li.rep --to mei"
    )]
    Assign {
        /// Customer: full id, or id prefix or name known to this profile.
        #[arg(required_unless_present = "from")]
        customer: Option<String>,
        /// Move every customer of this user instead.
        #[arg(long, conflicts_with = "customer")]
        from: Option<String>,
        /// Username of the new owner.
        #[arg(long)]
        to: String,
    },
}

/// `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The file to write (replaced whole if it exists; never half-written).
    pub file: PathBuf,
}

/// `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file written by `fieldsync backup`.
    pub file: PathBuf,
}

/// `sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Also compare counts and checksums with the server and repair on mismatch.
    #[arg(long)]
    pub verify: bool,
}

/// `conflicts ...`
#[derive(Debug, Subcommand)]
pub enum ConflictsCmd {
    /// List unresolved conflicts.
    List {
        /// Include resolved ones.
        #[arg(long)]
        all: bool,
    },
    /// Show one conflict.
    Show {
        /// Conflict number.
        id: i64,
    },
    /// Keep your value (a new change re-asserting it) or theirs.
    #[command(
        after_help = "Examples:\n  fieldsync conflicts resolve 3 --keep mine\n  fieldsync conflicts resolve 3 --keep theirs"
    )]
    Resolve {
        /// Conflict number.
        id: i64,
        /// Which value to keep.
        #[arg(long, value_enum)]
        keep: Keep,
    },
}

/// Which side of a conflict to keep.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Keep {
    /// Your value: written again as a new change.
    Mine,
    /// The value that won.
    Theirs,
}

/// `problems ...`
#[derive(Debug, Subcommand)]
pub enum ProblemsCmd {
    /// List unresolved problems.
    List {
        /// Include retried and discarded ones.
        #[arg(long)]
        all: bool,
    },
    /// Show one problem with the refused change.
    Show {
        /// Problem number.
        id: i64,
    },
    /// Send the refused change again (as a new change).
    Retry {
        /// Problem number.
        id: i64,
    },
    /// Drop the refused change.
    Discard {
        /// Problem number.
        id: i64,
    },
}
