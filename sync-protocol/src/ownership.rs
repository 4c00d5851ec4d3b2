//! Who owned a customer when. A customer changes owner only by
//! reassignment, and each reassignment carries the server's clock at that
//! moment. Work is judged against the owner *of its own moment*: an op a
//! rep made offline before their customer was reassigned is the history of
//! that customer, not a trespass, even when it reaches the server after.

use crate::schema::Role;
use crate::{Hlc, UserId};

/// One change of owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reassignment {
    /// The server's clock when it happened.
    pub hlc: Hlc,
    /// The owner before.
    pub from: UserId,
    /// The owner after.
    pub to: UserId,
}

/// The owner at clock `at` of a customer whose owner is `current` now and
/// whose reassignments are `changes` (in any order): the owner before the
/// first reassignment later than `at`, or `current` if there is none. A
/// value stamped exactly at a reassignment's clock is after it (the clock
/// is the server's own reading, which no device carries).
pub fn owner_at(current: UserId, changes: &[Reassignment], at: Hlc) -> UserId {
    changes
        .iter()
        .filter(|r| r.hlc > at)
        .min_by_key(|r| r.hlc)
        .map_or(current, |r| r.from)
}

/// Who a piece of work (a record of [`crate::schema::CREDITED_TO_AUTHOR`])
/// counts for. A rep's work counts for the rep, always: also when it
/// reaches the server after the customer moved on, or is applied by a
/// reviewer. Work anyone else records (a supervisor riding along, HQ
/// entering a phoned-in order) counts for the customer's owner at the
/// work's moment (`owner_then`, read only then; `None` when the customer
/// has no owner): a supervisor's own customers for the supervisor, a rep's
/// for that rep, so it never falls outside every rep's figures.
pub fn credited_to<E>(
    author: UserId,
    author_role: Role,
    owner_then: impl FnOnce() -> Result<Option<UserId>, E>,
) -> Result<Option<UserId>, E> {
    if author_role == Role::Rep {
        Ok(Some(author))
    } else {
        owner_then()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceId;

    fn at(millis: u64) -> Hlc {
        Hlc {
            millis,
            counter: 0,
            node: DeviceId::from(uuid::Uuid::from_u128(1)),
        }
    }

    fn user(n: u128) -> UserId {
        UserId::from(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn the_owner_of_each_moment() {
        let (a, b, c) = (user(1), user(2), user(3));
        // a until 100, b until 200, c since.
        let changes = [
            Reassignment {
                hlc: at(200),
                from: b,
                to: c,
            },
            Reassignment {
                hlc: at(100),
                from: a,
                to: b,
            },
        ];
        assert_eq!(owner_at(c, &changes, at(50)), a);
        assert_eq!(owner_at(c, &changes, at(99)), a);
        assert_eq!(
            owner_at(c, &changes, at(100)),
            b,
            "the moment itself is after"
        );
        assert_eq!(owner_at(c, &changes, at(150)), b);
        assert_eq!(owner_at(c, &changes, at(250)), c);
        assert_eq!(owner_at(c, &[], at(50)), c);
    }

    #[test]
    fn work_counts_for_the_rep_who_did_it_or_else_the_owner_of_its_moment() {
        let (rep, owner) = (user(1), user(2));
        assert_eq!(
            credited_to::<()>(rep, Role::Rep, || unreachable!("not read")),
            Ok(Some(rep))
        );
        for role in [Role::Supervisor, Role::Hq, Role::Admin] {
            assert_eq!(
                credited_to::<()>(rep, role, || Ok(Some(owner))),
                Ok(Some(owner))
            );
            assert_eq!(credited_to::<()>(rep, role, || Ok(None)), Ok(None));
            assert_eq!(
                credited_to(rep, role, || Err("unreadable")),
                Err("unreadable")
            );
        }
    }
}
