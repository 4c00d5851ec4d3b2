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

    /// Wait for this thread's turn.
    pub fn wait(&self) -> Turn<'_> {
        let mut st = self.state();
        if st.busy < self.slots && st.waiting.is_empty() {
            st.busy += 1;
            return Turn { turns: self };
        }
        let mine = Arc::new(AtomicBool::new(false));
        st.waiting.push_back((thread::current(), Arc::clone(&mine)));
        drop(st);
        // `park` may return early; only the flag says the turn came.
        while !mine.load(Ordering::Acquire) {
            thread::park();
        }
        Turn { turns: self }
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

    #[test]
    fn threads_get_their_turn_in_arrival_order_one_at_a_time() {
        let turns = Turns::default();
        let order = Mutex::new(Vec::new());
        let inside = std::sync::atomic::AtomicUsize::new(0);
        thread::scope(|s| {
            let first = turns.wait();
            let mut handles = Vec::new();
            for i in 0..8 {
                let (turns, order, inside) = (&turns, &order, &inside);
                handles.push(s.spawn(move || {
                    let _turn = turns.wait();
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
        let (a, b) = (turns.wait(), turns.wait());
        thread::scope(|s| {
            let third = s.spawn(|| drop(turns.wait()));
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
            let _turn = turns.wait();
            panic!("writer failed");
        }));
        assert!(res.is_err());
        drop(turns.wait());
    }
}
