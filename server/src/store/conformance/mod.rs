#![allow(clippy::many_single_char_names)]
//! One list of tests that every [`Store`] must pass. Each test gets a fresh,
//! migrated, empty store. Run against SQLite below; a PostgreSQL store adds
//! one more `#[test]` calling [`run_all`] with its own factory.

mod accounts;
mod pull;
mod push;
mod reports;

use super::{ChangeRow, CheckIn, DeviceRow, RecordRow, RecordScope, Store, UserRow};
use chrono::{TimeZone, Utc};
use sync_protocol::geo::LatLon;
use sync_protocol::schema::Role;
use sync_protocol::{DeviceId, RecordId, TeamId, UserId};

type Test = fn(&dyn Store);

/// Every conformance test, by name.
pub const ALL: &[(&str, Test)] = &[
    (
        "a_user_changed_after_announced_reads_reads_back_changed",
        accounts::a_user_changed_after_announced_reads_reads_back_changed,
    ),
    (
        "change_numbers_are_gap_free_and_shared",
        push::change_numbers_are_gap_free_and_shared,
    ),
    (
        "a_failed_write_leaves_nothing_behind",
        push::a_failed_write_leaves_nothing_behind,
    ),
    (
        "usernames_and_team_names_are_unique",
        accounts::usernames_and_team_names_are_unique,
    ),
    (
        "devices_are_found_by_token_hash_and_keep_their_ack_on_reregistration",
        accounts::devices_are_found_by_token_hash_and_keep_their_ack_on_reregistration,
    ),
    (
        "login_failures_are_counted_per_name_and_address_within_the_window",
        accounts::login_failures_are_counted_per_name_and_address_within_the_window,
    ),
    (
        "dashboard_sessions_end_one_by_one_or_per_user_and_expire",
        accounts::dashboard_sessions_end_one_by_one_or_per_user_and_expire,
    ),
    (
        "changes_honour_cursor_head_limit_and_scope",
        pull::changes_honour_cursor_head_limit_and_scope,
    ),
    (
        "evictions_reach_only_the_previous_owners_scope",
        pull::evictions_reach_only_the_previous_owners_scope,
    ),
    (
        "stored_ops_replay_byte_for_byte",
        push::stored_ops_replay_byte_for_byte,
    ),
    (
        "ops_are_found_by_id_among_their_users_ops",
        push::ops_are_found_by_id_among_their_users_ops,
    ),
    (
        "problems_filter_by_user_newest_first",
        push::problems_filter_by_user_newest_first,
    ),
    (
        "open_conflicts_filter_by_side_newest_first",
        push::open_conflicts_filter_by_side_newest_first,
    ),
    (
        "previous_check_in_is_the_latest_earlier_one",
        push::previous_check_in_is_the_latest_earlier_one,
    ),
    (
        "a_write_transaction_reads_its_own_writes",
        push::a_write_transaction_reads_its_own_writes,
    ),
    (
        "device_bookkeeping_and_meta_read_back_in_the_same_write",
        accounts::device_bookkeeping_and_meta_read_back_in_the_same_write,
    ),
    (
        "team_members_by_team_or_supervisor",
        accounts::team_members_by_team_or_supervisor,
    ),
    (
        "a_pull_during_concurrent_writes_never_skips_a_change",
        pull::a_pull_during_concurrent_writes_never_skips_a_change,
    ),
    (
        "report_facts_follow_puts_archives_and_reassignment",
        reports::report_facts_follow_puts_archives_and_reassignment,
    ),
    (
        "stale_report_facts_are_derived_again",
        reports::stale_report_facts_are_derived_again,
    ),
];

/// Run every test, each on a fresh store from `make`, and fail naming
/// every test that failed.
pub fn run_all(make: &dyn Fn() -> Box<dyn Store>) {
    let mut failed = Vec::new();
    for (name, test) in ALL {
        let store = make();
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(store.as_ref())));
        if res.is_err() {
            failed.push(*name);
        }
    }
    assert!(
        failed.is_empty(),
        "store conformance tests failed: {failed:?}"
    );
}

fn at(sec: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + sec, 0).single().unwrap()
}

fn user(name: &str, role: Role, team: Option<TeamId>, sup: Option<UserId>, n: i64) -> UserRow {
    UserRow {
        id: UserId::new_v7(at(n)),
        username: name.into(),
        password_hash: "x".into(),
        role,
        team_id: team,
        supervisor_id: sup,
        active: true,
        created_at: "2027-01-01T00:00:00.000Z".into(),
    }
}

fn rec(
    tx: &mut dyn crate::store::WriteTx,
    id: RecordId,
    collection: &str,
    scope: RecordScope,
) -> u64 {
    let seq = tx.next_seq().unwrap();
    tx.put_record(&RecordRow {
        id,
        collection: collection.into(),
        seq,
        state: format!("{{\"id\":\"{id}\"}}"),
        scope,
    })
    .unwrap();
    seq
}

fn seqs(rows: &[ChangeRow]) -> Vec<u64> {
    rows.iter().map(ChangeRow::seq).collect()
}

/// A fresh device of `user`, never seen, acknowledged nothing.
fn laptop(user: UserId) -> DeviceRow {
    DeviceRow {
        id: DeviceId::new_v7(at(1)),
        user_id: user,
        name: "laptop".into(),
        created_at: "2027-01-01T00:00:00.000Z".into(),
        last_seen_at: None,
        revoked_at: None,
        logged_out_at: None,
        acked_through: 0,
        clock_drift_ms: None,
    }
}

/// A check-in of `user` for a visit made at `at(n)`, started at `t` ms.
fn check_in(user: UserId, n: i64, t: i64) -> CheckIn {
    CheckIn {
        visit_id: RecordId::new_v7(at(n)),
        user_id: user,
        started_at_ms: t,
        at: LatLon {
            lat: 1.0,
            lon: n as f64,
        },
    }
}

#[test]
fn sqlite_store_passes_the_conformance_suite() {
    let dirs = std::cell::RefCell::new(Vec::new());
    run_all(&|| {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("server.db")).unwrap();
        dirs.borrow_mut().push(dir);
        Box::new(store)
    });
}

#[test]
fn postgres_store_passes_the_conformance_suite() {
    use crate::store::postgres::{PostgresStore, testing::TempDatabase};
    let dbs = std::cell::RefCell::new(Vec::new());
    run_all(&|| {
        let db = TempDatabase::new();
        let store = PostgresStore::open(&db.url()).unwrap();
        dbs.borrow_mut().push(db);
        Box::new(store)
    });
}
