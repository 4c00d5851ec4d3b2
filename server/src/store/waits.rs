//! Test support for the stores' deadlines, and the deadline tests every
//! store must pass (run with a short [`super::WAIT_DEADLINE`] from each
//! store's own tests, which also force the cases only that store has).

use super::{Store, StoreError, WriteTx, read, write};
use std::time::{Duration, Instant};

/// How long a test waits for a signal from one of its threads.
pub const SIGNAL: Duration = Duration::from_mins(1);

/// Take the next number and keep it under `key`, unless `key` is already
/// there (as a push replays a stored op): what a retry needs to apply its
/// work exactly once.
pub fn once(tx: &mut dyn WriteTx, key: &str) -> Result<(), StoreError> {
    if tx.meta(key)?.is_none() {
        let seq = tx.next_seq()?;
        tx.set_meta(key, &seq.to_string())?;
    }
    Ok(())
}

/// The value kept under `key`.
pub fn meta_of(store: &dyn Store, key: &str) -> Option<String> {
    read(store, |tx| tx.meta(key)).expect("read meta")
}

/// The change head: how many numbers were taken and committed.
pub fn head(store: &dyn Store) -> u64 {
    read(store, |tx| tx.head_seq()).expect("read head")
}

/// `res` gave up waiting for `what`, no sooner than `wait` and well
/// before anything would count as hanging.
pub fn assert_timed_out(
    res: &Result<(), StoreError>,
    what: &str,
    waited: Duration,
    wait: Duration,
) {
    assert!(
        matches!(res, Err(StoreError::TimedOut { what: w, .. }) if *w == what),
        "{res:?}"
    );
    assert!(
        waited >= wait && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );
}

/// A write that applies `key`, signals `inside`, and holds the writer
/// until `released` says so.
pub fn stuck_writer(
    store: &dyn Store,
    key: &str,
    inside: std::sync::mpsc::Sender<()>,
    released: &std::sync::mpsc::Receiver<()>,
) -> Result<(), StoreError> {
    write(store, |tx| {
        once(tx, key)?;
        inside.send(()).expect("signal");
        released.recv_timeout(SIGNAL).expect("released");
        Ok::<(), StoreError>(())
    })
}

/// Retry `key`'s work after a give-up, twice, as a client that did not
/// hear the first answer would: both succeed.
pub fn retry_twice(store: &dyn Store, key: &str) {
    write(store, |tx| once(tx, key)).expect("the retry");
    write(store, |tx| once(tx, key)).expect("a second retry");
}

/// A writer stuck inside its closure (holding the writer) makes the next
/// one give up at its deadline having applied nothing; the retry after
/// the stuck one ended applies its work once. The stuck writer's own fate
/// depends on the store (PostgreSQL ends a transaction left idle past the
/// deadline), but its work is there exactly when it was told so.
pub fn a_writer_behind_a_stuck_writer_gives_up_and_applies_nothing(
    store: &dyn Store,
    wait: Duration,
) {
    let (inside, entered) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let stuck = std::thread::scope(|s| {
        let stuck = s.spawn(move || stuck_writer(store, "stuck", inside, &released));
        entered
            .recv_timeout(SIGNAL)
            .expect("the stuck writer is inside");
        let start = Instant::now();
        let res = write(store, |tx| once(tx, "behind"));
        assert_timed_out(&res, "its turn on the writer", start.elapsed(), wait);
        release.send(()).expect("release");
        stuck.join().expect("stuck writer")
    });
    assert_eq!(
        meta_of(store, "stuck").is_some(),
        stuck.is_ok(),
        "{stuck:?}"
    );
    assert_eq!(meta_of(store, "behind"), None, "nothing of it was applied");
    retry_twice(store, "behind");
    let expected = 1 + u64::from(stuck.is_ok());
    assert_eq!(head(store), expected, "each applied exactly once");
}
