//! `fieldsync sync [--verify]`: push the outbox, pull until caught up, then
//! exchange conflicts (settled here → the server; the user's open ones ← it).
//!
//! Interrupting it at any point is safe: an op leaves the outbox only in
//! the transaction that records its outcome, and each pulled page commits
//! together with its cursor, so the next `sync` carries on.

use super::Ctx;
use crate::cli::SyncArgs;
use crate::config::Config;
use crate::error::{Exit, Failure, failure_of, is_busy};
use crate::output::plural;
use crate::remote::{self, Answer, Remote, RemoteError};
use crate::store::{PulledPage, Store, key};
use anyhow::Result;
use chrono::Utc;
use reqwest::StatusCode;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::mpsc::SyncSender;
use sync_protocol::time::format_ts;
use sync_protocol::wire::{
    ClockWarning, ConflictsRequest, ConflictsResponse, Deactivation, LoginResponse,
    MAX_OPEN_CONFLICTS, MAX_PROBLEM_QUERIES, MAX_SETTLEMENTS, PULL_CURSOR_HEADER, PULL_MORE_HEADER,
    ProblemDecisionsRequest, ProblemDecisionsResponse, PullRequest, PushRequest, PushResponse,
    RegisterDeviceRequest, ScopeSummary,
};
use sync_protocol::{DeviceId, ErrorCode, Op};

/// Most ops in one push (the server's limit): fewer round trips and
/// commits for a large outbox.
const PUSH_MAX_OPS: usize = sync_protocol::wire::MAX_PUSH_OPS;
/// About this many bytes of JSON per push (before compression).
const PUSH_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Times one sync becomes a new device at most (see [`become_new_device`]).
const MAX_RECOVERIES: u32 = 2;
/// Records per pulled page: each page is one local transaction.
const PULL_LIMIT: u32 = 5000;

/// The outcome of `verify`.
#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Whether the device matched the server before any repair.
    pub matched: bool,
    /// Collections that differed.
    pub mismatched: Vec<String>,
    /// Whether the local copy was re-downloaded.
    pub repaired: bool,
    /// Whether it matches after the repair (or before, when none was needed).
    pub matches_now: bool,
}

/// What one `sync` did (also its `--json` output).
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Ops sent and answered.
    pub pushed: u64,
    /// Applied in full.
    pub applied: u64,
    /// Lost on some field.
    pub superseded: u64,
    /// Refused.
    pub rejected: u64,
    /// Records received.
    pub pulled: u64,
    /// Customers that left this device's scope.
    pub evicted: u64,
    /// Conflicts new to this device: its ops that lost, and its user's
    /// values that others displaced without having seen them.
    pub new_conflicts: u64,
    /// Open conflicts here that were settled on another of the user's devices.
    pub settled_elsewhere: u64,
    /// Problems created.
    pub new_problems: u64,
    /// Problems a reviewer decided on the server (applied or discarded).
    pub decided_problems: u64,
    /// Ops still waiting.
    pub pending_ops: u64,
    /// Pull cursor after the sync.
    pub cursor: u64,
    /// Set when this laptop became a new device during the sync: its
    /// history had diverged from the server's (restored from a backup, or
    /// the profile copied to another computer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_device: Option<NewDeviceReport>,
    /// Set when the server said this computer's clock is far ahead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_warning: Option<ClockWarning>,
    /// Set when this account is deactivated: the changes written before
    /// the deactivation were handed over (`applied`, `superseded`), those
    /// written after it refused (`rejected`), and nothing was pulled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deactivated: Option<Deactivation>,
    /// With `--verify`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyReport>,
}

/// How this laptop became a new device (`sync --json`: `new_device`).
#[derive(Debug, Serialize)]
pub struct NewDeviceReport {
    /// The device it is now.
    pub device_id: DeviceId,
    /// The device whose history diverged.
    pub previous_device_id: DeviceId,
    /// Changes sent after it became the new device.
    pub sent: u64,
    /// Problems sent again: refused only because what they refer to was
    /// held up behind the divergence.
    pub retried_problems: u64,
}

/// This profile's connection, which changes when the laptop becomes a new
/// device in the middle of a sync.
struct Link {
    cfg: Config,
    remote: Remote,
}

/// Run `sync`.
pub fn run(ctx: &Ctx, a: SyncArgs) -> Result<()> {
    // One sync at a time per profile: two would push the same ops and
    // each find the other's answers already recorded.
    let _running = ctx.profile.lock_for_sync()?;
    let (mut store, cfg) = ctx.store()?;
    let Some(token) = cfg.token.clone() else {
        let pending = store.pending()?;
        return Err(Failure::exit(
            Exit::Auth,
            format!(
                "logged out ({} kept)",
                plural(pending, "unsynced change is", "unsynced changes are")
            ),
        )
        .hint(format!(
            "log in again: fieldsync login --server {} --user {}",
            cfg.server, cfg.user.username
        ))
        .into());
    };
    let remote = Remote::new(&cfg.server, Some(token))?;
    let mut link = Link { cfg, remote };
    store.prepare_for_sync()?;
    let mut sum = Summary::default();
    let offers = Offers::of(&link.remote)
        .map_err(|e| remote::fail(e, link.remote.base(), store.pending().unwrap_or(0)))?;
    // A sync stopped while this laptop was becoming a new device finishes
    // that first: the outbox may be numbered for either device.
    if store.new_device_underway()?.is_some() {
        become_new_device(ctx, &mut store, &mut link, &mut sum)?;
    }
    push(ctx, &mut store, &mut link, offers, &mut sum).map_err(|e| held_up(ctx, e))?;
    if sum.deactivated.is_some() {
        return handed_over(ctx, &store, &link.cfg, sum);
    }
    let remote = &link.remote;
    let scope = pull(ctx, &mut store, remote, &mut sum, a.verify).map_err(|e| held_up(ctx, e))?;
    if a.verify {
        let mut report = VerifyReport::default();
        let diff = compare(&store, scope.as_deref())?;
        report.matched = diff.is_empty();
        report.mismatched = diff;
        if report.matched {
            report.matches_now = true;
        } else {
            ctx.printer.warn(&format!(
                "this device differs from the server in {}; downloading everything again",
                report.mismatched.join(", ")
            ));
            store.reset_server_state()?;
            let scope = pull(ctx, &mut store, remote, &mut sum, true)?;
            store.rebuild_view()?;
            report.repaired = true;
            report.matches_now = compare(&store, scope.as_deref())?.is_empty();
        }
        sum.verify = Some(report);
    }
    if offers.conflict_feed {
        exchange_conflicts(&mut store, remote, &mut sum).map_err(|e| held_up(ctx, e))?;
    }
    if offers.problem_decisions {
        fetch_problem_decisions(&mut store, remote, &mut sum).map_err(|e| held_up(ctx, e))?;
    }
    store
        .set_meta(key::LAST_SYNC, &format_ts(Utc::now()))
        .map_err(|e| held_up(ctx, e))?;
    store.finish_sync()?;
    sum.pending_ops = store.pending()?;
    sum.cursor = store.cursor()?;
    ctx.printer.progress_done();
    if ctx.printer.json {
        ctx.printer.json(&sum)?;
    } else {
        if let Some(n) = &sum.new_device {
            ctx.printer.say(&format!(
                "this laptop was restored from a backup: registered as a new device, {} sent",
                plural(n.sent, "change", "changes")
            ));
        }
        ctx.printer.say(&line(ctx.printer, &sum));
        if sum.new_problems > 0 {
            ctx.printer
                .say("See what the server refused: fieldsync problems list");
        }
        if sum.new_conflicts > 0 {
            ctx.printer
                .say("See where your change lost: fieldsync conflicts list");
        }
    }
    if let Some(v) = &sum.verify
        && !v.matches_now
    {
        return Err(Failure::new(
            "after re-downloading, this device still differs from the server",
        )
        .hint("run fieldsync sync --verify again; if it persists, report it")
        .into());
    }
    if let Some(w) = sum.clock_warning {
        return Err(Failure::exit(Exit::Clock, format!("this computer's clock is {} ahead of the server's; your changes were kept but re-timed by the server", human_ms(w.ahead_ms)))
            .code("clock_warning")
            .hint("set the system clock right (enable automatic time), then keep working as usual")
            .into());
    }
    Ok(())
}

/// The end of a sync of a deactivated account: its pending changes were
/// handed over (those written before the deactivation taken, those
/// written after it refused and kept as problems, with the reason, like
/// any other refusal); nothing is pulled.
fn handed_over(ctx: &Ctx, store: &Store, cfg: &Config, mut sum: Summary) -> Result<()> {
    sum.pending_ops = store.pending()?;
    sum.cursor = store.cursor()?;
    ctx.printer.progress_done();
    if ctx.printer.json {
        ctx.printer.json(&sum)?;
    }
    let refused = if sum.rejected > 0 {
        format!(
            "{} refused (see fieldsync problems list); ",
            plural(sum.rejected, "change was", "changes were")
        )
    } else {
        String::new()
    };
    Err(Failure::exit(
        Exit::Revoked,
        format!(
            "this account is deactivated: {} handed over; nothing more can be synced",
            plural(sum.applied + sum.superseded, "change", "changes")
        ),
    )
    .code("user_deactivated")
    .hint(format!(
        "{refused}an administrator can reactivate it: fieldsync admin user reactivate {}",
        cfg.user.username
    ))
    .into())
}

/// A sync step that waited for another command's write past `--wait`
/// says so as a sync: what it stored before is kept.
fn held_up(ctx: &Ctx, e: anyhow::Error) -> anyhow::Error {
    let busy = failure_of(&e).map_or_else(|| is_busy(&e), |f| f.exit == Exit::Busy);
    if !busy {
        return e;
    }
    Failure::exit(
        Exit::Busy,
        format!(
            "the sync stopped: another fieldsync command kept this profile busy for more than {} s; what was synced so far is kept",
            ctx.profile.wait().as_secs()
        ),
    )
    .code("profile_busy")
    .hint("run fieldsync sync again when the other command has finished; it carries on where this one stopped")
    .into()
}

fn line(p: crate::output::Printer, s: &Summary) -> String {
    let mut out = format!(
        "{}: pushed {} ({} applied, {} superseded, {} rejected), pulled {}, evicted {}; {}, {}.",
        p.err_style(crate::output::Style::Green, "Synced"),
        s.pushed,
        s.applied,
        s.superseded,
        s.rejected,
        s.pulled,
        s.evicted,
        plural(s.new_conflicts, "new conflict", "new conflicts"),
        plural(s.new_problems, "new problem", "new problems")
    );
    if s.settled_elsewhere > 0 {
        let _ = write!(
            out,
            " {} on another of your devices.",
            plural(
                s.settled_elsewhere,
                "conflict was settled",
                "conflicts were settled"
            )
        );
    }
    if s.decided_problems > 0 {
        let _ = write!(
            out,
            " {} by a reviewer (fieldsync problems list --all).",
            plural(
                s.decided_problems,
                "problem was decided",
                "problems were decided"
            )
        );
    }
    if let Some(v) = &s.verify {
        out.push_str(if v.matched {
            " Verified: matches the server."
        } else if v.matches_now {
            " Verify found differences and repaired them."
        } else {
            " Verify: still differs."
        });
    }
    out
}

fn human_ms(ms: i64) -> String {
    let s = ms / 1000;
    if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else {
        format!("{} h", s / 3600)
    }
}

/// What the server offers that this client's ops and steps depend on
/// (`GET /v1/info`): an older server refuses ops with base clocks, and has
/// no conflicts to exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Offers {
    base_clocks: bool,
    conflict_feed: bool,
    problem_decisions: bool,
}

impl Offers {
    fn of(remote: &Remote) -> Result<Self, RemoteError> {
        let info: serde_json::Value = remote.retrying_busy(|r| r.get("/v1/info"))?;
        Ok(Self::from_info(&info))
    }

    fn from_info(info: &serde_json::Value) -> Self {
        let has = |name: &str| {
            info["capabilities"]
                .as_array()
                .is_some_and(|all| all.iter().any(|c| c == name))
        };
        Self {
            base_clocks: has("base-clocks"),
            conflict_feed: has("conflict-feed"),
            problem_decisions: has("problem-decisions"),
        }
    }

    /// Ops as this server takes them: without base clocks when it has none
    /// (its merge then judges them as an older client's).
    fn shape(self, mut ops: Vec<Op>) -> Vec<Op> {
        if !self.base_clocks {
            for op in &mut ops {
                op.base = None;
            }
        }
        ops
    }
}

/// Tell the server which conflicts were settled here, and take the list of
/// the user's open ones (from every device of theirs). A server that
/// answers 404 has no such list after all: nothing to exchange.
fn exchange_conflicts(store: &mut Store, remote: &Remote, sum: &mut Summary) -> Result<()> {
    let settle = store.unsent_settlements(MAX_SETTLEMENTS)?;
    let req = ConflictsRequest { settle };
    let answer: ConflictsResponse =
        match remote.retrying_busy(|r| r.post("/v1/sync/conflicts", &req)) {
            Ok(a) => a,
            Err(RemoteError::Api(status, _)) if status == StatusCode::NOT_FOUND => return Ok(()),
            Err(e) => return Err(remote::fail(e, remote.base(), store.pending().unwrap_or(0))),
        };
    let complete = answer.open.len() < MAX_OPEN_CONFLICTS as usize;
    let got = store.apply_conflict_feed(&req.settle, &answer.open, complete)?;
    sum.new_conflicts += got.new;
    sum.settled_elsewhere += got.settled_elsewhere;
    Ok(())
}

/// Ask what became of this laptop's open problems (the oldest
/// [`MAX_PROBLEM_QUERIES`]): a reviewer may have applied or discarded them
/// on the server. Each decided one is resolved here as decided.
fn fetch_problem_decisions(store: &mut Store, remote: &Remote, sum: &mut Summary) -> Result<()> {
    let op_ids = store.open_problem_ops(MAX_PROBLEM_QUERIES)?;
    if op_ids.is_empty() {
        return Ok(());
    }
    let req = ProblemDecisionsRequest { op_ids };
    let answer: ProblemDecisionsResponse = remote
        .retrying_busy(|r| r.post("/v1/sync/problems", &req))
        .map_err(|e| remote::fail(e, remote.base(), store.pending().unwrap_or(0)))?;
    sum.decided_problems += store.apply_problem_decisions(&answer.decided)?;
    Ok(())
}

fn push(
    ctx: &Ctx,
    store: &mut Store,
    link: &mut Link,
    offers: Offers,
    sum: &mut Summary,
) -> Result<()> {
    let mut total = store.pending()?;
    let mut recoveries = 0;
    loop {
        let batch = store.outbox_batch(PUSH_MAX_OPS, PUSH_MAX_BYTES)?;
        if batch.is_empty() {
            return Ok(());
        }
        let clock = store.clock_now()?;
        let req = PushRequest {
            ops: offers.shape(batch),
            clock,
        };
        // A push is safe to send again: replayed ops answer their stored
        // outcomes.
        let remote = &link.remote;
        let resp: PushResponse = remote
            .retrying_busy(|r| r.post_gzip("/v1/sync/push", &req))
            .map_err(|e| remote::fail(e, remote.base(), store.pending().unwrap_or(0)))?;
        let rec = store.record_outcomes(&req.ops, &resp)?;
        let answered = rec.applied + rec.superseded + rec.rejected;
        sum.pushed += answered;
        sum.applied += rec.applied;
        sum.superseded += rec.superseded;
        sum.rejected += rec.rejected;
        sum.new_conflicts += rec.conflicts;
        sum.new_problems += rec.rejected;
        if let Some(n) = &mut sum.new_device {
            n.sent += answered;
        }
        if resp.clock_warning.is_some() {
            sum.clock_warning = resp.clock_warning;
        }
        if resp.deactivated.is_some() {
            sum.deactivated = resp.deactivated;
        }
        ctx.printer
            .progress(&format!("pushing: {}/{total}", sum.pushed));
        if rec.diverged > 0 {
            // Once is the rule; again only when this store was backed up in
            // the middle of a recovery that another copy finished.
            if recoveries == MAX_RECOVERIES {
                return Err(Failure::new(format!("sync cannot continue: the server says this laptop's history diverged again after it became a new device {MAX_RECOVERIES} times")).hint("your changes are kept; report this to an administrator with the output of fieldsync status --json").into());
            }
            recoveries += 1;
            store.begin_new_device(link.cfg.device_id)?;
            become_new_device(ctx, store, link, sum)?;
            total = sum.pushed + store.pending()?;
            continue;
        }
        if answered == 0 {
            // No progress: the server is missing ops we no longer have, or
            // answered for ops we do not hold. Stop rather than loop.
            let first = store.outbox_first_seq()?.unwrap_or(0);
            let detail = match resp.resend_from {
                Some(from) if from < first => format!(
                    "the server expects change #{from} next, but this device's oldest unsynced change is #{first}"
                ),
                _ => "the server answered none of the changes sent".to_owned(),
            };
            return Err(Failure::new(format!("sync cannot continue: {detail}")).hint("your changes are kept; report this to an administrator with the output of fieldsync status --json").into());
        }
    }
}

/// This laptop's history diverged from the server's: it sent an op under a
/// number the server holds another op for (the profile was restored from a
/// backup, or runs on two computers). Become a new device of the same user
/// (registered with the token held, no password), whose numbering starts
/// afresh: every pending op is renumbered for it, keeping its op id, so one
/// the server has already is answered as a replay; problems that were only
/// waiting for one of them are sent again after them. Each step survives a
/// kill: the new device's id is noted in the store before it is
/// registered (registering it again only renews its token), the profile
/// names it before the outbox is renumbered (renumbering again changes
/// nothing), and the note goes in the last step.
fn become_new_device(
    ctx: &Ctx,
    store: &mut Store,
    link: &mut Link,
    sum: &mut Summary,
) -> Result<()> {
    let Some(mut new) = store.new_device_underway()? else {
        return Ok(());
    };
    ctx.printer.progress(
        "this laptop's history diverged from the server's: registering it as a new device",
    );
    // Registered already when the profile names it (then only the
    // renumbering may be left).
    if link.cfg.device_id == new.device_id {
        store.renumber_for(new.device_id)?;
    } else {
        let remote = &link.remote;
        let register = |id| {
            let req = RegisterDeviceRequest {
                device_id: Some(id),
                device_name: super::auth::device_name(),
            };
            remote.retrying_busy(|r| r.post::<_, LoginResponse>("/v1/auth/devices", &req))
        };
        let resp = match register(new.device_id) {
            // The noted device is in use (this store is a backup taken in
            // the middle of a recovery that finished elsewhere): another.
            Err(RemoteError::Api(status, e))
                if status == StatusCode::CONFLICT && e.code == ErrorCode::AlreadyExists =>
            {
                new = store.begin_new_device_again(new.previous_device_id)?;
                register(new.device_id)
            }
            answer => answer,
        }
        .map_err(|e| remote::fail(e, remote.base(), store.pending().unwrap_or(0)))?;
        let token = resp.token;
        link.cfg = Config {
            token: Some(token.clone()),
            device_id: resp.device_id,
            user: resp.user,
            ..link.cfg.clone()
        };
        ctx.profile.save(&link.cfg)?;
        link.remote = Remote::new(&link.cfg.server, Some(token))?;
        store.renumber_for(new.device_id)?;
        store.observe_clock(&resp.server_clock)?;
    }
    let waiting = store.problems_waiting_on_the_outbox()?;
    let mut retry = Vec::with_capacity(waiting.len());
    for p in &waiting {
        retry.push((p.id, store.retry_draft(p)?));
    }
    let retried = store.finish_new_device(&new, retry)?;
    sum.new_device = Some(NewDeviceReport {
        device_id: new.device_id,
        previous_device_id: new.previous_device_id,
        sent: 0,
        retried_problems: retried,
    });
    Ok(())
}

/// Pull until caught up, storing each page while the next ones are on their
/// way. A fetching thread asks for page N + 1 (on another pooled
/// connection) as soon as page N's headers name its cursor
/// (`fieldsync-cursor`, `fieldsync-more`), a parsing thread reads and
/// decodes page N's body meanwhile, and this thread stores page N - 1; a server
/// that sends no such headers is read one page at a time on the fetching
/// thread. Pages are still stored in order, each in its own transaction
/// with its cursor, so an interrupted pull resumes from the last stored
/// page. Every hand-over waits for the taker, so at most three pages are
/// in memory (one being stored, one parsed, one read).
fn pull(
    ctx: &Ctx,
    store: &mut Store,
    remote: &Remote,
    sum: &mut Summary,
    checksums: bool,
) -> Result<Option<Vec<ScopeSummary>>> {
    let first = store.cursor()?;
    let checkpointer = store.checkpointer()?;
    let pulled = std::thread::scope(|s| {
        // A fourth thread copies the log into the database file while pages
        // are stored; a kick while it is busy coalesces with the one queued.
        let (kick, kicks) = std::sync::mpsc::sync_channel::<()>(1);
        s.spawn(move || checkpointer.run(&kicks));
        let (fetched, to_parse) = std::sync::mpsc::sync_channel::<Fetched>(0);
        let (pages, received) = std::sync::mpsc::sync_channel(0);
        s.spawn(move || fetch_pages(remote, first, checksums, &fetched));
        s.spawn(move || {
            for f in to_parse {
                // A closed channel: storing failed and nobody waits for more.
                if pages.send(f.parse()).is_err() {
                    return;
                }
            }
        });
        loop {
            let Ok((cursor, page)) = received.recv() else {
                return Err(anyhow::anyhow!("the pull stopped without an answer"));
            };
            let page =
                page.map_err(|e| remote::fail(e, remote.base(), store.pending().unwrap_or(0)))?;
            let applied = store.apply_page(&page)?;
            let _ = kick.try_send(());
            sum.pulled += applied.upserts;
            sum.evicted += applied.evicted;
            ctx.printer.progress(&format!(
                "pulling: {} records (at {} of {})",
                sum.pulled, page.cursor, page.checkpoint
            ));
            if !page.more {
                return Ok(page.scope);
            }
            if page.cursor <= cursor {
                return Err(
                    Failure::new("the server says more changes follow but sent none")
                        .hint("try fieldsync sync again later")
                        .into(),
                );
            }
        }
    });
    store.resume_checkpoints()?;
    pulled
}

/// A pulled page on its way from the fetching to the parsing thread, with
/// the cursor it was asked for.
enum Fetched {
    /// Headers read, body not yet; the cursor and `more` the headers named.
    Read(u64, Answer, (u64, bool)),
    /// Decoded already (the server sent no cursor headers), or failed.
    Done(u64, Result<PulledPage, RemoteError>),
}

impl Fetched {
    /// Decode, checking that the body says what the headers said (the next
    /// page was asked for with them).
    fn parse(self) -> (u64, Result<PulledPage, RemoteError>) {
        match self {
            Fetched::Done(cursor, page) => (cursor, page),
            Fetched::Read(cursor, answer, named) => {
                let page = answer.decode::<PulledPage>().and_then(|p| {
                    if (p.cursor, p.more) == named {
                        Ok(p)
                    } else {
                        Err(RemoteError::Offline(format!(
                            "the server's pull headers (cursor {}, more {}) disagree with its answer (cursor {}, more {})",
                            named.0, named.1, p.cursor, p.more
                        )))
                    }
                });
                (cursor, page)
            }
        }
    }
}

/// The cursor and `more` a pull answer's headers name, when it has both.
fn named_cursor(answer: &Answer) -> Option<(u64, bool)> {
    let cursor = answer.header(PULL_CURSOR_HEADER)?.parse().ok()?;
    let more = match answer.header(PULL_MORE_HEADER)? {
        "true" => true,
        "false" => false,
        _ => return None,
    };
    Some((cursor, more))
}

/// Ask for pages from `first` on and hand each over, until the last one
/// or a failure (also handed over) or until nobody takes them.
fn fetch_pages(remote: &Remote, first: u64, checksums: bool, out: &SyncSender<Fetched>) {
    let mut cursor = first;
    loop {
        let req = PullRequest {
            cursor,
            limit: Some(PULL_LIMIT),
            checksums,
        };
        let (item, next) = match remote.retrying_busy(|r| r.post_answer("/v1/sync/pull", &req)) {
            Err(e) => (Fetched::Done(cursor, Err(e)), None),
            Ok(answer) => {
                if let Some(named) = named_cursor(&answer) {
                    let next = (named.1 && named.0 > cursor).then_some(named.0);
                    (Fetched::Read(cursor, answer, named), next)
                } else {
                    let page = answer.decode::<PulledPage>();
                    let next = match &page {
                        Ok(p) if p.more && p.cursor > cursor => Some(p.cursor),
                        _ => None,
                    };
                    (Fetched::Done(cursor, page), next)
                }
            }
        };
        if out.send(item).is_err() {
            return;
        }
        match next {
            Some(c) => cursor = c,
            None => return,
        }
    }
}

/// Collections whose count or checksum differs from the server's scope.
fn compare(store: &Store, scope: Option<&[ScopeSummary]>) -> Result<Vec<String>> {
    let Some(scope) = scope else {
        return Err(Failure::new("the server did not send scope checksums")
            .hint("this server may not support verification (capability scope-checksums)")
            .into());
    };
    let local = store.tallies()?;
    let mut names: BTreeSet<String> = local.keys().cloned().collect();
    names.extend(scope.iter().map(|s| s.collection.clone()));
    let mut diff = Vec::new();
    for n in names {
        let mine = local.get(&n).copied().unwrap_or_default();
        let theirs = scope.iter().find(|s| s.collection == n);
        let same = match theirs {
            Some(t) => {
                t.count == mine.count
                    && (t.count == 0 || t.checksum.eq_ignore_ascii_case(&mine.checksum_hex()))
            }
            None => mine.count == 0,
        };
        if !same {
            diff.push(n);
        }
    }
    Ok(diff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sync_protocol::{DeviceId, Hlc, OpId, OpKind, RecordId};

    fn edit() -> Op {
        let node = DeviceId(uuid::Uuid::from_u128(1));
        let hlc = |millis| Hlc {
            millis,
            counter: 0,
            node,
        };
        Op {
            op_id: OpId(uuid::Uuid::from_u128(2)),
            device_id: node,
            device_seq: 1,
            hlc: hlc(9),
            schema_version: 1,
            collection: "customers".into(),
            record_id: RecordId(uuid::Uuid::from_u128(3)),
            kind: OpKind::Patch,
            fields: [("phone".to_owned(), json!("021-1111"))].into(),
            transition: None,
            base: Some([("phone".to_owned(), hlc(5))].into()),
        }
    }

    #[test]
    fn base_clocks_go_only_to_a_server_that_offers_them() {
        let now = Offers::from_info(
            &json!({"capabilities": ["gzip", "base-clocks", "conflict-feed", "problem-decisions"]}),
        );
        assert_eq!(
            now,
            Offers {
                base_clocks: true,
                conflict_feed: true,
                problem_decisions: true,
            }
        );
        assert!(now.shape(vec![edit()])[0].base.is_some());
        let older = Offers::from_info(&json!({"capabilities": ["gzip", "clock-check"]}));
        assert!(!older.base_clocks && !older.conflict_feed && !older.problem_decisions);
        let sent = older.shape(vec![edit()]);
        assert!(sent[0].base.is_none());
        assert!(!serde_json::to_string(&sent[0]).unwrap().contains("base"));
        assert_eq!(Offers::from_info(&json!({})), older);
    }

    const PAGE: &str = r#"{"changes":[],"cursor":7,"checkpoint":9,"more":true,"server_clock":"0192f1a2b3c4-0001-0192f1a2b3c47d1e8f2a3b4c5d6e7f80"}"#;

    #[test]
    fn the_next_cursor_comes_from_both_headers_or_not_at_all() {
        let both = Answer::received(
            &[(PULL_CURSOR_HEADER, "7"), (PULL_MORE_HEADER, "true")],
            PAGE,
        );
        assert_eq!(named_cursor(&both), Some((7, true)));
        for headers in [
            vec![(PULL_CURSOR_HEADER, "7")],
            vec![(PULL_MORE_HEADER, "true")],
            vec![(PULL_CURSOR_HEADER, "x"), (PULL_MORE_HEADER, "true")],
            vec![(PULL_CURSOR_HEADER, "7"), (PULL_MORE_HEADER, "yes")],
        ] {
            assert_eq!(
                named_cursor(&Answer::received(&headers, PAGE)),
                None,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn a_body_that_disagrees_with_its_headers_is_refused() {
        let read = |named| Fetched::Read(3, Answer::received(&[], PAGE), named).parse();
        let (cursor, page) = read((7, true));
        assert_eq!((cursor, page.map(|p| p.cursor).ok()), (3, Some(7)));
        for named in [(8, true), (7, false)] {
            let err = read(named)
                .1
                .err()
                .map(|e| format!("{e:?}"))
                .unwrap_or_default();
            assert!(err.contains("disagree"), "{named:?}: {err}");
        }
    }
}
