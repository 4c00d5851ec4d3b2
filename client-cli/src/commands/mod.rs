//! One module per top-level command, mirroring the command tree in `cli.rs`.

pub(crate) mod action;
mod admin;
mod auth;
mod backup;
mod completions;
mod conflicts;
mod customer;
pub(crate) mod evaluation;
mod feedback;
pub(crate) mod goal;
pub(crate) mod hq;
pub(crate) mod incentive_plan;
pub(crate) mod one_on_one;
mod problems;
pub(crate) mod reward;
mod sale;
mod status;
mod sync;
pub(crate) mod training;
mod visit;
pub(crate) mod work_report;

use crate::cli::{Cli, Command};
use crate::config::{Config, Profile};
use crate::error::Failure;
use crate::output::Printer;
use crate::remote::Remote;
use crate::store::{Identity, Rec, Store};
use anyhow::Result;
use serde_json::{Map, Value, json};

/// What every command gets.
pub struct Ctx {
    /// Output.
    pub printer: Printer,
    /// The profile directory.
    pub profile: Profile,
}

impl Ctx {
    /// The saved config, if any.
    pub fn config(&self) -> Result<Option<Config>> {
        self.profile.load()
    }

    /// The saved config, or "not logged in".
    pub fn require_config(&self) -> Result<Config> {
        self.config()?
            .ok_or_else(|| Failure::not_logged_in().into())
    }

    /// The store for recording work: needs a profile that has logged in once.
    pub fn store(&self) -> Result<(Store, Config)> {
        let cfg = self.require_config()?;
        let store = Store::open(
            &self.profile,
            Some(Identity {
                device: cfg.device_id,
                user: cfg.user.id,
                role: cfg.user.role,
            }),
        )?;
        Ok((store, cfg))
    }

    /// The store for reading (works before the first login, then empty).
    pub fn read_store(&self) -> Result<Store> {
        let ident = self.config()?.map(|c| Identity {
            device: c.device_id,
            user: c.user.id,
            role: c.user.role,
        });
        Store::open(&self.profile, ident)
    }

    /// A connection with this device's token, for online commands.
    pub fn remote(&self) -> Result<(Remote, Config)> {
        let cfg = self.require_config()?;
        let Some(token) = cfg.token.clone() else {
            return Err(Failure::exit(crate::error::Exit::Auth, "logged out")
                .hint(format!(
                    "log in again: fieldsync login --server {} --user {}",
                    cfg.server, cfg.user.username
                ))
                .into());
        };
        Ok((Remote::new(&cfg.server, Some(token))?, cfg))
    }
}

/// Run the parsed command.
pub fn run(cli: Cli, printer: Printer) -> Result<()> {
    let ctx = Ctx {
        printer,
        profile: Profile::locate(cli.home)?.waiting(std::time::Duration::from_secs(cli.wait)),
    };
    match cli.command {
        Command::Login(a) => auth::login(&ctx, a),
        Command::Logout(a) => auth::logout(&ctx, a),
        Command::Whoami => auth::whoami(&ctx),
        Command::Customer(c) => customer::run(&ctx, c),
        Command::Visit(c) => visit::run(&ctx, c),
        Command::Feedback(c) => feedback::run(&ctx, c),
        Command::Sale(c) => sale::run(&ctx, c),
        Command::Goal(c) => goal::run(&ctx, c),
        Command::Hq(c) => hq::run(&ctx, c),
        Command::Training(c) => training::run(&ctx, c),
        Command::WorkReport(c) => work_report::run(&ctx, c),
        Command::OneOnOne(c) => one_on_one::run(&ctx, c),
        Command::Evaluation(c) => evaluation::run(&ctx, c),
        Command::IncentivePlan(c) => incentive_plan::run(&ctx, c),
        Command::Reward(c) => reward::run(&ctx, c),
        Command::Action(c) => action::run(&ctx, c),
        Command::Admin(c) => admin::run(&ctx, c),
        Command::Sync(a) => sync::run(&ctx, a),
        Command::Status => status::run(&ctx),
        Command::Backup(a) => backup::backup(&ctx, &a),
        Command::Restore(a) => backup::restore(&ctx, &a),
        Command::Conflicts(c) => conflicts::run(&ctx, c),
        Command::Problems(c) => problems::run(&ctx, c),
        Command::Completions { shell } => {
            completions::run(shell);
            Ok(())
        }
    }
}

/// A record as JSON: `id`, `archived`, `pending` and every field's value.
pub fn record_json(rec: &Rec) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(rec.id));
    for (k, f) in &rec.state.fields {
        m.insert(k.clone(), f.value.clone());
    }
    m.insert("archived".into(), json!(rec.archived));
    m.insert("pending".into(), json!(rec.pending));
    m
}

/// A text field or an empty cell.
pub fn cell(rec: &Rec, field: &str) -> String {
    rec.str(field).unwrap_or("").to_owned()
}

/// The `*` marking records with unsynced changes.
pub fn mark(rec: &Rec) -> &'static str {
    if rec.pending { "*" } else { "" }
}

/// Name of a customer by id, for display.
pub fn customer_name(store: &Store, rec: &Rec) -> Result<String> {
    Ok(match &rec.customer_id {
        Some(c) => store
            .get(c)?
            .and_then(|c| c.str("name").map(str::to_owned))
            .unwrap_or_else(|| c.to_string()),
        None => String::new(),
    })
}
