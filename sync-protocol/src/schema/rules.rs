//! Write rules: who may write which field, through which relation to the
//! record and in which workflow state, and what a reference may point at.
//!
//! The rules are data in the collection table ([`Collection::writes`],
//! [`Collection::archive`], [`Collection::refs`]); this module reads them.
//! The server asks [`may_write`] and [`may_archive`] for every op it admits
//! and [`judge_reference`] for every reference; the CLI asks the same
//! questions before it writes to its outbox; the authorization tests and the
//! README's table are generated from the same answers.

use super::{Anchor, Collection, Field, FieldType, Grant, Policy, Reach, Relation, Role, Target};
use crate::error::{ErrorCode as E, ValidationError};
use crate::id::{TeamId, UserId};
use crate::op::OpKind;
use std::fmt::Write as _;

/// A user as far as relations go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Person {
    /// The user.
    pub id: UserId,
    /// Their team.
    pub team: Option<TeamId>,
    /// Their supervisor.
    pub supervisor: Option<UserId>,
}

/// How a record about `subject` relates to `actor`: `Own` for themselves,
/// `Team` for members of their team (same team, or whose supervisor they
/// are), `Other` otherwise. No team is nobody's team.
pub fn relation_to_user(actor: &Person, subject: &Person) -> Relation {
    if actor.id == subject.id {
        Relation::Own
    } else if (actor.team.is_some() && subject.team == actor.team)
        || subject.supervisor == Some(actor.id)
    {
        Relation::Team
    } else {
        Relation::Other
    }
}

/// How a record about a whole team relates to a user of `actor_team`.
pub fn relation_to_team(actor_team: Option<TeamId>, team: TeamId) -> Relation {
    if actor_team == Some(team) {
        Relation::Team
    } else {
        Relation::Other
    }
}

/// The grants deciding who writes `field`: its own rule, or else the
/// collection's access (create reach on create, change reach otherwise) in
/// every state.
pub fn grants(coll: &Collection, field: &str, create: bool) -> Vec<Grant> {
    if let Some(rule) = coll.writes.iter().find(|r| r.field == field) {
        return rule.grants.to_vec();
    }
    access_grants(coll, create)
}

/// The grants deciding who archives a record of `coll`.
pub fn archive_grants(coll: &Collection) -> Vec<Grant> {
    coll.archive
        .map_or_else(|| access_grants(coll, false), <[Grant]>::to_vec)
}

fn access_grants(coll: &Collection, create: bool) -> Vec<Grant> {
    coll.access
        .iter()
        .map(|a| Grant {
            role: a.role,
            reach: if create { a.create } else { a.change },
            states: &[],
        })
        .filter(|g| g.reach != Reach::None)
        .collect()
}

fn holds(g: &Grant, role: Role, rel: Relation, state: Option<&str>) -> bool {
    g.role == role
        && g.reach.covers(rel)
        && (g.states.is_empty() || state.is_some_and(|s| g.states.contains(&s)))
}

/// The state a write happens in: the current state of the collection's
/// state machine (its initial state for a create), or `None` when the
/// collection has none.
pub fn write_state<'a>(
    coll: &Collection,
    kind: OpKind,
    current: impl FnOnce(&str) -> Option<&'a str>,
) -> Option<&'a str> {
    let (field, machine) = coll.transition_field()?;
    Some(if kind == OpKind::Create {
        machine.initial
    } else {
        current(field.name).unwrap_or(machine.initial)
    })
}

fn whose(rel: Relation) -> &'static str {
    match rel {
        Relation::Own => "their own",
        Relation::Team => "their team's",
        Relation::Other => "other users'",
    }
}

/// Whether a `role` may act with an op of `kind` on a record of `coll` it
/// has relation `rel` to, by the collection's reach (create reach for a
/// create, change reach for anything else). The first permission check of
/// every op; the field rules follow.
pub fn may_act(
    coll: &Collection,
    kind: OpKind,
    role: Role,
    rel: Relation,
) -> Result<(), ValidationError> {
    let access = coll.access_for(role);
    let (reach, verb) = if kind == OpKind::Create {
        (access.create, "create")
    } else {
        (access.change, "change")
    };
    if reach.covers(rel) {
        return Ok(());
    }
    Err(ValidationError::new(
        E::Forbidden,
        format!("a {role} may not {verb} {} {}", whose(rel), coll.name),
    ))
}

/// Whether a `role` with relation `rel` to a record of `coll` in `state`
/// may write `field` with an op of `kind` (create, patch or transition).
/// The whole verdict: the field's merge policy, the collection's reach and
/// the field's grants, in that order; each refusal names the field.
pub fn may_write(
    coll: &Collection,
    field: &Field,
    kind: OpKind,
    role: Role,
    rel: Relation,
    state: Option<&str>,
) -> Result<(), ValidationError> {
    let name = field.name;
    let refuse = |code, msg: String| Err(ValidationError::field(code, name, msg));
    let create = kind == OpKind::Create;
    match field.policy {
        Policy::ServerOnly => {
            return refuse(
                E::ServerOnlyField,
                format!("{name} is computed by the server"),
            );
        }
        Policy::Fact if !create => {
            return refuse(
                E::ImmutableField,
                format!("{name} is set when the record is created and cannot change"),
            );
        }
        Policy::Transition(_) if !create => {
            return refuse(
                E::TransitionOnlyField,
                format!("{name} changes only through a transition"),
            );
        }
        _ => {}
    }
    if let Err(e) = may_act(coll, kind, role, rel) {
        return refuse(e.code, e.message);
    }
    // A field without a rule of its own follows the reach just checked.
    let Some(rule) = coll.writes.iter().find(|r| r.field == name) else {
        return Ok(());
    };
    if rule.grants.iter().any(|g| holds(g, role, rel, state)) {
        return Ok(());
    }
    let grants = rule.grants;
    let when = state
        .map(|s| format!(" while it is {s}"))
        .unwrap_or_default();
    refuse(
        E::Forbidden,
        format!(
            "a {role} may not write {name} of {} {}{when}; it is written by {}",
            whose(rel),
            coll.name,
            describe(grants)
        ),
    )
}

/// Whether a `role` with relation `rel` may archive a record of `coll` in `state`.
pub fn may_archive(
    coll: &Collection,
    role: Role,
    rel: Relation,
    state: Option<&str>,
) -> Result<(), ValidationError> {
    let grants = archive_grants(coll);
    if grants.iter().any(|g| holds(g, role, rel, state)) {
        return Ok(());
    }
    Err(ValidationError::new(
        E::Forbidden,
        format!(
            "a {role} may not archive {} {}; they are archived by {}",
            whose(rel),
            coll.name,
            describe(&grants)
        ),
    ))
}

/// Grants in words, for messages and the README: `supervisor (team, while
/// draft); hq (any)`, or `nobody`.
pub fn describe(grants: &[Grant]) -> String {
    if grants.is_empty() {
        return "nobody".into();
    }
    grants
        .iter()
        .map(|g| {
            let reach = match g.reach {
                Reach::None => "none",
                Reach::Own => "own",
                Reach::Team => "team",
                Reach::Any => "any",
            };
            if g.states.is_empty() {
                format!("{} ({reach})", g.role)
            } else {
                format!("{} ({reach}, while {})", g.role, g.states.join(" or "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The collection a reference field points into and what its target must
/// be, or `None` when the field is not a reference.
pub fn reference(coll: &Collection, field: &Field) -> Option<(&'static str, Target)> {
    let FieldType::Ref(target) = field.ty else {
        return None;
    };
    let rule = coll.refs.iter().find(|r| r.field == field.name);
    let default = match super::collection(target).map(|c| c.anchor) {
        Some(Anchor::Public) => Target::Exists,
        _ => Target::Visible,
    };
    Some((target, rule.map_or(default, |r| r.target)))
}

/// What the side that judges a reference found out about its referent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Referent {
    /// A record (or account) of the target collection exists under the id.
    pub exists: bool,
    /// The author can see it.
    pub visible: bool,
    /// The author may change it.
    pub changeable: bool,
    /// The user's role, for references to users.
    pub role: Option<Role>,
    /// It is the author themself.
    pub is_author: bool,
}

/// The verdict on one reference: `bad_reference` naming the field unless
/// the referent is what the rule asks for.
pub fn judge_reference(
    field: &str,
    target_coll: &str,
    target: Target,
    id: &str,
    found: Referent,
) -> Result<(), ValidationError> {
    let bad = |why: String| {
        Err(ValidationError::field(
            E::BadReference,
            field,
            format!("{field} must name {why}; {id} does not"),
        ))
    };
    if !found.exists {
        return bad(format!("an existing {target_coll} record"));
    }
    match target {
        Target::Exists => Ok(()),
        Target::Visible if found.visible => Ok(()),
        Target::Visible => bad(format!("a {target_coll} record you can see")),
        Target::Changeable if found.changeable => Ok(()),
        Target::Changeable => bad(format!("a {target_coll} record you may change")),
        Target::Rep if found.role == Some(Role::Rep) => Ok(()),
        Target::Rep => bad("a user whose role is rep".into()),
        Target::Author if found.is_author => Ok(()),
        Target::Author => bad("you, the author".into()),
    }
}

/// The write rules of every collection as a Markdown table: who creates,
/// who changes which fields (in which states), who moves the state
/// machine, who archives, what the server computes and what references
/// must name. The README's copy is checked against it.
pub fn markdown_table() -> String {
    let code = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::from("| collection | what | who (reach; states) |\n|---|---|---|\n");
    for c in super::ALL {
        let mut rows: Vec<(String, String)> =
            vec![("create".into(), describe(&access_grants(c, true)))];
        let plain: Vec<&str> = c
            .fields
            .iter()
            .filter(|f| matches!(f.policy, Policy::Lww | Policy::WriteOnce))
            .filter(|f| !c.writes.iter().any(|r| r.field == f.name))
            .map(|f| f.name)
            .collect();
        if !plain.is_empty() {
            rows.push((
                format!("change {}", code(&plain)),
                describe(&access_grants(c, false)),
            ));
        }
        let mut groups: Vec<(Vec<&str>, &[Grant])> = Vec::new();
        for r in c.writes {
            match groups.iter_mut().find(|g| g.1 == r.grants) {
                Some(g) => g.0.push(r.field),
                None => groups.push((vec![r.field], r.grants)),
            }
        }
        for (fields, grants) in groups {
            rows.push((format!("write {}", code(&fields)), describe(grants)));
        }
        if let Some((f, m)) = c.transition_field() {
            let moves: Vec<String> = m
                .moves
                .iter()
                .map(|mv| {
                    let by: Vec<&str> = mv.by.iter().map(Role::as_str).collect();
                    format!("{} → {}: {}", mv.from, mv.to, by.join(", "))
                })
                .collect();
            rows.push((format!("move `{}`", f.name), moves.join("; ")));
        }
        rows.push(("archive".into(), describe(&archive_grants(c))));
        let computed: Vec<&str> = c
            .fields
            .iter()
            .filter(|f| f.policy == Policy::ServerOnly)
            .map(|f| f.name)
            .collect();
        if !computed.is_empty() {
            rows.push((
                format!("write {}", code(&computed)),
                "nobody (the server computes it)".into(),
            ));
        }
        for f in c.fields {
            if let Some((target, t)) = reference(c, f)
                && t != Target::Exists
                && t != Target::Visible
            {
                rows.push((
                    format!("`{}` names", f.name),
                    format!("{target}: {}", t.name()),
                ));
            }
        }
        for (what, who) in rows {
            let _ = writeln!(out, "| `{}` | {what} | {who} |", c.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{ALL, collection};
    use super::*;

    #[test]
    fn every_rule_names_a_field_and_no_grant_exceeds_the_collections_access() {
        for c in ALL {
            for r in c.writes {
                let f = c
                    .field(r.field)
                    .unwrap_or_else(|| panic!("{}: rule for unknown {}", c.name, r.field));
                assert!(
                    !matches!(f.policy, Policy::ServerOnly | Policy::Transition(_)),
                    "{}.{}: a rule for a field no device writes",
                    c.name,
                    f.name
                );
                for g in r.grants {
                    let a = c.access_for(g.role);
                    assert!(
                        g.reach <= a.change.max(a.create),
                        "{}.{}: {} granted beyond its access",
                        c.name,
                        r.field,
                        g.role
                    );
                    let states = c.transition_field().map(|(_, m)| m.states());
                    for s in g.states {
                        assert!(
                            states.as_ref().is_some_and(|v| v.contains(s)),
                            "{}.{}: unknown state {s}",
                            c.name,
                            r.field
                        );
                    }
                }
            }
            for r in c.refs {
                assert!(
                    c.field(r.field)
                        .is_some_and(|f| matches!(f.ty, FieldType::Ref(_))),
                    "{}: {} is not a reference",
                    c.name,
                    r.field
                );
            }
        }
    }

    #[test]
    fn a_rep_cannot_write_the_score_of_their_own_final_evaluation() {
        let e = collection("evaluations").unwrap();
        let score = e.field("score").unwrap();
        let verdict = may_write(
            e,
            score,
            OpKind::Patch,
            Role::Rep,
            Relation::Own,
            Some("final"),
        );
        let err = verdict.unwrap_err();
        assert_eq!(
            (err.code, err.field.as_deref()),
            (E::Forbidden, Some("score"))
        );
        assert!(err.message.contains("hq (any, while"), "{}", err.message);
        assert!(
            may_write(
                e,
                score,
                OpKind::Transition,
                Role::Hq,
                Relation::Other,
                Some("acknowledged")
            )
            .is_ok()
        );
    }

    #[test]
    fn references_are_judged_by_their_target() {
        let found = Referent {
            exists: true,
            visible: true,
            ..Referent::default()
        };
        assert!(judge_reference("amends", "visits", Target::Visible, "x", found).is_ok());
        let err = judge_reference("amends", "visits", Target::Changeable, "x", found).unwrap_err();
        assert_eq!(err.code, E::BadReference);
        let missing = Referent::default();
        assert!(judge_reference("rep_id", "users", Target::Exists, "x", missing).is_err());
        let visits = collection("visits").unwrap();
        assert_eq!(
            reference(visits, visits.field("amends").unwrap()),
            Some(("visits", Target::Changeable))
        );
        assert_eq!(
            reference(visits, visits.field("customer_id").unwrap()),
            Some(("customers", Target::Visible))
        );
    }
}
