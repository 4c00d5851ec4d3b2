//! Who may see what (scope) and how a record relates to the acting user
//! (relation). Store-independent: it asks the store for facts and returns
//! a [`ScopeFilter`] the store evaluates.

use crate::store::{ReadTx, ScopeFilter, StoreError, UserRow};
use sync_protocol::schema::{Relation, Role, rules};
use sync_protocol::{TeamId, UserId};

/// What `user` may see (docs/protocol.md, "Scopes").
pub fn scope_filter(tx: &mut dyn ReadTx, user: &UserRow) -> Result<ScopeFilter, StoreError> {
    let teams: Vec<TeamId> = user.team_id.into_iter().collect();
    Ok(match user.role {
        Role::Hq | Role::Admin => ScopeFilter {
            all: true,
            users: vec![],
            teams: vec![],
        },
        Role::Rep => ScopeFilter {
            all: false,
            users: vec![user.id],
            teams,
        },
        Role::Supervisor => {
            let mut users = vec![user.id];
            for m in tx.team_members(user.team_id, Some(user.id))? {
                if !users.contains(&m) {
                    users.push(m);
                }
            }
            ScopeFilter {
                all: false,
                users,
                teams,
            }
        }
    })
}

/// Whether records about (or customers owned by) `owner` are in the scope.
pub fn covers_user(scope: &ScopeFilter, owner: UserId) -> bool {
    scope.all || scope.users.contains(&owner)
}

/// How a record about `subject` relates to `actor` (the rule of
/// [`rules::relation_to_user`]).
pub fn relation_to_user(actor: &UserRow, subject: &UserRow) -> Relation {
    rules::relation_to_user(&person(actor), &person(subject))
}

fn person(u: &UserRow) -> rules::Person {
    rules::Person {
        id: u.id,
        team: u.team_id,
        supervisor: u.supervisor_id,
    }
}

/// How a record about a whole team relates to `actor`.
pub fn relation_to_team(actor: &UserRow, team: TeamId) -> Relation {
    rules::relation_to_team(actor.team_id, team)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u128, role: Role, team: Option<u128>, sup: Option<u128>) -> UserRow {
        UserRow {
            id: UserId(uuid::Uuid::from_u128(n)),
            username: format!("u{n}"),
            password_hash: String::new(),
            role,
            team_id: team.map(|t| TeamId(uuid::Uuid::from_u128(t))),
            supervisor_id: sup.map(|s| UserId(uuid::Uuid::from_u128(s))),
            active: true,
            created_at: String::new(),
        }
    }

    #[test]
    fn relation_is_own_then_team_by_team_id_or_supervisor_then_other() {
        let sup = user(1, Role::Supervisor, Some(10), None);
        let same_team = user(2, Role::Rep, Some(10), None);
        let supervised = user(3, Role::Rep, None, Some(1));
        let stranger = user(4, Role::Rep, Some(11), None);
        assert_eq!(relation_to_user(&sup, &sup), Relation::Own);
        assert_eq!(relation_to_user(&sup, &same_team), Relation::Team);
        assert_eq!(relation_to_user(&sup, &supervised), Relation::Team);
        assert_eq!(relation_to_user(&sup, &stranger), Relation::Other);
        let loner = user(5, Role::Rep, None, None);
        assert_eq!(
            relation_to_user(&loner, &user(6, Role::Rep, None, None)),
            Relation::Other,
            "no team is nobody's team"
        );
        assert_eq!(
            relation_to_team(&sup, TeamId(uuid::Uuid::from_u128(10))),
            Relation::Team
        );
        assert_eq!(
            relation_to_team(&loner, TeamId(uuid::Uuid::from_u128(10))),
            Relation::Other
        );
    }
}
