//! A first-come, first-served gate: the SQLite writer (one at a time) and
//! the PostgreSQL connection pool (as many as it holds).
//!
//! `std::sync::Mutex` and `Condvar` let a thread that just arrived go
//! ahead of threads already asleep. With dozens of pushes queued for the
//! one writer, that left a few of them waiting several times longer than
//! the rest (the fleet's p99 was twice its p50). [`Turns`] lets waiting
//! threads in strictly in arrival order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};
use std::time::Instant;

/// Lets up to `slots` threads through at a time, in the order they arrived.
#[derive(Debug)]
pub struct Turns {
    slots: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Threads holding a turn.
    busy: usize,
    /// Sleeping threads, first come first, each with the flag that says
    /// its turn came.
    waiting: VecDeque<(Thread, Arc<AtomicBool>)>,
}

/// One thread's turn; the next thread in line gets its own when this is
/// dropped (also while unwinding).
#[derive(Debug)]
pub struct Turn<'a> {
    turns: &'a Turns,
}

impl Default for Turns {
    /// One at a time.
    fn default() -> Self {
        Self::new(1)
    }
}

impl Turns {
    /// Up to `slots` (at least one) at a time.
    pub fn new(slots: usize) -> Self {
        Self {
            slots: slots.max(1),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wait for this thread's turn until `deadline`; `None` when it passed
    /// first (the thread has then left the line).
    pub fn wait_until(&self, deadline: Instant) -> Option<Turn<'_>> {
        let mut st = self.state();
        if self.take_free(&mut st) {
            return Some(Turn { turns: self });
        }
        let mine = Arc::new(AtomicBool::new(false));
        st.waiting.push_back((thread::current(), Arc::clone(&mine)));
        drop(st);
        // `park` may return early; only the flag says the turn came.
        while !mine.load(Ordering::Acquire) {
            let now = Instant::now();
            if now >= deadline {
                let mut st = self.state();
                // The turn may have been handed over just now: the flag is
                // set under the lock, so it is either set or never will be.
                if mine.load(Ordering::Acquire) {
                    break;
                }
                st.waiting.retain(|(_, flag)| !Arc::ptr_eq(flag, &mine));
                return None;
            }
            thread::park_timeout(deadline - now);
        }
        Some(Turn { turns: self })
    }

    /// Take a turn only if one is free right now, without waiting.
    pub fn try_take(&self) -> Option<Turn<'_>> {
        // Built only when taken: a `Turn` dropped here would pass a turn
        // it never had.
        let taken = self.take_free(&mut self.state());
        taken.then(|| Turn { turns: self })
    }

    /// Take a free slot when nobody is waiting for one.
    fn take_free(&self, st: &mut State) -> bool {
        let free = st.busy < self.slots && st.waiting.is_empty();
        if free {
            st.busy += 1;
        }
        free
    }

    /// How many threads are waiting for their turn.
    pub fn waiting(&self) -> usize {
        self.state().waiting.len()
    }

    /// Hand the turn to the first thread in line, or free its slot.
    fn pass(&self) {
        let mut st = self.state();
        if let Some((next, flag)) = st.waiting.pop_front() {
            flag.store(true, Ordering::Release);
            drop(st);
            next.unpark();
        } else {
            st.busy -= 1;
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.turns.pass();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A deadline no test reaches.
    fn far() -> Instant {
        Instant::now() + Duration::from_mins(1)
    }

    #[test]
    fn threads_get_their_turn_in_arrival_order_one_at_a_time() {
        let turns = Turns::default();
        let order = Mutex::new(Vec::new());
        let inside = std::sync::atomic::AtomicUsize::new(0);
        thread::scope(|s| {
            let first = turns.wait_until(far()).unwrap();
            let mut handles = Vec::new();
            for i in 0..8 {
                let (turns, order, inside) = (&turns, &order, &inside);
                handles.push(s.spawn(move || {
                    let _turn = turns.wait_until(far()).unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "one at a time");
                    order.lock().unwrap().push(i);
                    thread::sleep(Duration::from_millis(1));
                    inside.fetch_sub(1, Ordering::SeqCst);
                }));
                // Let thread i queue up before thread i + 1 arrives.
                for _ in 0..1000 {
                    if turns.state().waiting.len() == i + 1 {
                        break;
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                assert_eq!(turns.state().waiting.len(), i + 1, "thread {i} is waiting");
            }
            drop(first);
            for h in handles {
                h.join().unwrap();
            }
        });
        assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
        assert_eq!(turns.state().busy, 0, "the gate is free again");
    }

    #[test]
    fn slots_let_that_many_through_and_the_next_waits_its_turn() {
        let turns = Turns::new(2);
        let (a, b) = (
            turns.wait_until(far()).unwrap(),
            turns.wait_until(far()).unwrap(),
        );
        thread::scope(|s| {
            let third = s.spawn(|| drop(turns.wait_until(far()).unwrap()));
            for _ in 0..1000 {
                if turns.state().waiting.len() == 1 {
                    break;
                }
                thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(turns.state().waiting.len(), 1, "the third waits");
            drop(a);
            third.join().unwrap();
        });
        drop(b);
        assert_eq!(turns.state().busy, 0);
    }

    #[test]
    fn a_panicking_holder_passes_its_turn_on() {
        let turns = Turns::default();
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _turn = turns.wait_until(far()).unwrap();
            panic!("writer failed");
        }));
        assert!(res.is_err());
        drop(turns.wait_until(far()).unwrap());
    }

    #[test]
    fn a_waiter_gives_up_at_its_deadline_and_leaves_the_line() {
        let turns = Turns::default();
        let held = turns.wait_until(far()).unwrap();
        let start = Instant::now();
        let gave_up = turns.wait_until(start + Duration::from_millis(100));
        let waited = start.elapsed();
        assert!(gave_up.is_none(), "the turn is still held");
        assert!(waited >= Duration::from_millis(100), "waited {waited:?}");
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");
        assert_eq!(turns.waiting(), 0, "it left the line");
        assert!(turns.try_take().is_none(), "the holder still has it");
        drop(held);
        // The slot was freed, not handed to the waiter that left.
        assert!(turns.try_take().is_some());
        assert_eq!(turns.state().busy, 0);
    }

    #[test]
    fn a_turn_handed_over_at_the_deadline_is_taken_not_lost() {
        // Many short waits racing the holder's hand-over: whichever way
        // each race goes, the gate ends free and nobody is left in line.
        let turns = Turns::default();
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        if let Some(t) =
                            turns.wait_until(Instant::now() + Duration::from_micros(50))
                        {
                            drop(t);
                        }
                    }
                });
            }
        });
        assert_eq!(turns.waiting(), 0);
        assert_eq!(turns.state().busy, 0);
    }
}
