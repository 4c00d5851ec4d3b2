//! Plan modes and planner statistics: when the planner plans again, and
//! the background ANALYZE after bulk writes.

use super::connect;
use postgres::Client;

// Plan modes. A connection keeps PostgreSQL's default plan cache mode (`auto`):
// after five executions a prepared statement keeps a generic plan when
// that costs no more than planning with the parameters. Write
// transactions and the token look-up find rows by key, where a generic
// plan is as good, and planning them again each time was the largest part
// of the database's work in a fleet of small pushes (about 30 % of its
// CPU). A generic plan is made again when ANALYZE (ours, `Analyzer`, or
// autovacuum's) changes a table's statistics.
//
// Read transactions plan every execution instead (`read_opening`):
// a report's period would otherwise be planned without its size, and a
// plan made while a table was tiny would scan it whole. Pulls are the
// exception (`ReadTx::reuse_plans`): their statements reach every row
// from a key, so a plan made without the parameters is the same plan, and
// planning the changes statement for each page had cost more than running
// it (about 0.5 ms against 0.2). Written as `subject_user = ANY($4)`, its
// generic plan walked the whole seq range filtering by user instead (one
// fleet run's median doubled), hence the unnested keys and lateral seeks.

/// Record rows written (summed over write transactions) after which the
/// planner statistics are refreshed in the background ([`Analyzer`]).
pub(super) const ANALYZE_AFTER: u64 = 20_000;

/// The tables a bulk write grows, with the columns queries filter, join or
/// sort on, from a sample of 9,000 rows per table instead of 30,000 (a
/// statistics target of 30 instead of 100). A run competes with the syncs
/// for the same cores; it only has to show the planner how large the
/// tables have become and how their keys spread, and autovacuum refines
/// the statistics later. Leaving out a record's JSON and its id (unique:
/// the planner knows from the index) and the smaller sample cut a run
/// over 41,000 visits from about 210 ms to about 55. (A target of 10,
/// about 25 ms, left the PostgreSQL bootstrap pull a few per cent slower,
/// inside the run-to-run spread.)
pub(super) const ANALYZE: &str = "SET default_statistics_target = 30; ANALYZE records (collection, seq, customer_id, subject_user, subject_team, public), \
     report_facts, report_customers, customer_owners, check_ins (user_id, started_at_ms)";

/// Whether the planner's picture of `records` is off by half or more: it
/// was never analysed, or the table has at least doubled since. Smaller
/// drifts are autovacuum's (it analyses after 10 % changed). The count of
/// changes since the last ANALYZE cannot tell: an ANALYZE of some columns
/// (ours) leaves it as it was, for autovacuum to refine them all later.
pub(super) const STALE: &str = "SELECT coalesce((SELECT s.n_live_tup >= 2 * greatest(c.reltuples, 0) \
     FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = 'records'::regclass), true)";

/// Run [`ANALYZE`] when the statistics are [`STALE`]; whether it ran.
pub(super) fn refresh(c: &mut Client) -> Result<bool, postgres::Error> {
    let stale: bool = c.query_one(STALE, &[])?.get(0);
    if stale {
        c.batch_execute(ANALYZE)?;
    }
    Ok(stale)
}

/// Refreshes planner statistics after bulk writes, on a connection and
/// thread of its own, one run at a time. Autovacuum does it too, but only
/// after up to a minute: until then a table loaded by a large push or a
/// migration looks empty to the planner, and a pull's plan reads a
/// customer's whole history for every page (three times slower at 100,000
/// visits).
///
/// The threshold grows with what this instance wrote: a run starts after
/// `after` records, then after as many more as were written in all, so a
/// steadily growing database is analysed ever more rarely (autovacuum
/// looks after it once each run's share of the table is small), while a
/// bulk load is analysed soon after it lands. A run that finds the
/// statistics less than twice off ([`STALE`]: other instances' writes,
/// autovacuum) leaves them to autovacuum: every run makes each connection
/// plan its statements again, and in the fleet a run (one per instance)
/// cost the measured runs' tail more than the statistics gained.
#[derive(Debug)]
pub(super) struct Analyzer {
    /// Rows after which the first run starts.
    pub(super) after: u64,
    /// Rows after which the next run starts.
    pub(super) next: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub(super) written: std::sync::atomic::AtomicU64,
    /// Rows counted before the last run started.
    pub(super) total: std::sync::atomic::AtomicU64,
    pub(super) running: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::new(ANALYZE_AFTER)
    }
}

impl Analyzer {
    pub(super) fn new(after: u64) -> Self {
        Self {
            after,
            next: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(after)),
            written: std::sync::atomic::AtomicU64::new(0),
            total: std::sync::atomic::AtomicU64::new(0),
            running: std::sync::Arc::default(),
        }
    }

    /// Count `rows` written records; start a run when enough were.
    pub(super) fn wrote(&self, rows: u64, config: &postgres::Config) {
        use std::sync::atomic::Ordering;
        if rows == 0
            || self.written.fetch_add(rows, Ordering::Relaxed) + rows
                < self.next.load(Ordering::Relaxed)
        {
            return;
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let total = self.total.load(Ordering::Relaxed) + self.written.swap(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        // After a run, wait for as many records again; after a check that
        // found the statistics close enough (or failed), check again soon.
        let (after, grown) = (self.after, total.max(self.after));
        let (config, running, next) = (config.clone(), self.running.clone(), self.next.clone());
        let spawned = std::thread::Builder::new()
            .name("pg-analyze".into())
            .spawn(move || {
                let done = connect(&config)
                    .map_err(|e| e.to_string())
                    .and_then(|mut c| refresh(&mut c).map_err(|e| e.to_string()));
                next.store(
                    if matches!(done, Ok(true)) {
                        grown
                    } else {
                        after
                    },
                    Ordering::Relaxed,
                );
                if let Err(e) = done {
                    tracing::warn!(error = %e, "refreshing planner statistics failed");
                }
                running.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.running.store(false, Ordering::Release);
        }
    }
}
