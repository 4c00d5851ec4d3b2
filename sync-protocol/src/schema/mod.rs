//! Collection schemas: every field's type, limits and merge policy, and who
//! may create or change each collection.
//!
//! The table itself lives in [`collections`]; this module defines its
//! vocabulary. Everything here is `'static` data so that the server, the CLI
//! and the tests read one and the same table.

mod collections;
pub mod rules;

pub use collections::{ALL, METRIC_IDS};

use serde::{Deserialize, Serialize};

/// A user's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Account manager in the field.
    Rep,
    /// Leads one team of reps.
    Supervisor,
    /// Headquarters: reads everything, runs reports.
    Hq,
    /// Manages users, devices and assignments.
    Admin,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Role; 4] = [Role::Rep, Role::Supervisor, Role::Hq, Role::Admin];

    /// Whether customers may be assigned to this role (field workers: reps
    /// and supervisors).
    pub fn owns_customers(self) -> bool {
        matches!(self, Role::Rep | Role::Supervisor)
    }

    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Rep => "rep",
            Role::Supervisor => "supervisor",
            Role::Hq => "hq",
            Role::Admin => "admin",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a record relates to the user acting on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// The record's subject is the user (their customer, their goal).
    Own,
    /// The record's subject is a member of the user's team.
    Team,
    /// Anything else.
    Other,
}

/// The widest relation a role may act on. `Own` < `Team` < `Any`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reach {
    /// Not at all.
    None,
    /// Only records whose subject is the user.
    Own,
    /// Records whose subject is in the user's team (including their own).
    Team,
    /// Any record.
    Any,
}

impl Reach {
    /// Whether this reach covers a record of the given relation.
    pub fn covers(self, rel: Relation) -> bool {
        match self {
            Reach::None => false,
            Reach::Own => rel == Relation::Own,
            Reach::Team => rel != Relation::Other,
            Reach::Any => true,
        }
    }
}

/// What a role may do with a collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// The role.
    pub role: Role,
    /// Reach for creating records.
    pub create: Reach,
    /// Reach for patching, transitioning and archiving records.
    pub change: Reach,
}

/// A collection's record kind (see the design brief, "three kinds of records").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Created once, never overwritten; corrections are new facts.
    Fact,
    /// Field-level last-writer-wins.
    Entity,
    /// Has a state machine validated by the server.
    Workflow,
}

/// Who a record is about: decides scope (who sees it) and relation (who may change it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// The record is a customer; its subject is the customer's owner.
    Customer,
    /// The record belongs to the customer named in this field and shares its scope.
    CustomerRef(&'static str),
    /// The record is about the user named in this field.
    User(&'static str),
    /// About the user in the first field, or else the team in the second.
    UserOrTeam(&'static str, &'static str),
    /// Everybody may read it (courses, plans, the user directory).
    Public,
}

/// A field's value type and limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldType {
    /// UTF-8 text of at most this many characters.
    Text(usize),
    /// A whole number within an inclusive range.
    Int(i64, i64),
    /// A finite decimal number within an inclusive range.
    Number(f64, f64),
    /// Money; `true` when the amount must be positive.
    Money(bool),
    /// An RFC 3339 instant.
    Timestamp,
    /// A calendar date `YYYY-MM-DD`.
    Date,
    /// One of these values.
    Enum(&'static [&'static str]),
    /// `{ "lat": .., "lon": .. }` in range.
    LatLon,
    /// The id of a record in this collection.
    Ref(&'static str),
    /// `true` or `false`.
    Bool,
    /// A list of at most this many items of the inner type.
    List(&'static FieldType, usize),
}

impl FieldType {
    /// A short name for messages and documentation.
    pub fn describe(&self) -> String {
        match self {
            FieldType::Text(n) => format!("text (max {n} chars)"),
            FieldType::Int(a, b) => format!("integer {a}..={b}"),
            FieldType::Number(a, b) => format!("number {a}..={b}"),
            FieldType::Money(true) => "positive money {minor, currency}".into(),
            FieldType::Money(false) => "money {minor, currency}".into(),
            FieldType::Timestamp => "RFC 3339 timestamp".into(),
            FieldType::Date => "date YYYY-MM-DD".into(),
            FieldType::Enum(v) => format!("one of {}", v.join(", ")),
            FieldType::LatLon => "position {lat, lon}".into(),
            FieldType::Ref(c) => format!("id of a {c} record"),
            FieldType::Bool => "true or false".into(),
            FieldType::List(t, n) => format!("list of at most {n} × {}", t.describe()),
        }
    }
}

/// A state machine for a `transition` field.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Machine {
    /// The state a new record starts in.
    pub initial: &'static str,
    /// Allowed moves.
    pub moves: &'static [Move],
}

/// One allowed state change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Move {
    /// From this state.
    pub from: &'static str,
    /// To this state.
    pub to: &'static str,
    /// Roles that may make it (still subject to the collection's reach).
    pub by: &'static [Role],
    /// Fields that must be present (non-null) in the transition op.
    pub requires: &'static [&'static str],
}

impl Machine {
    /// Every state mentioned by the machine.
    pub fn states(&self) -> Vec<&'static str> {
        let mut out = vec![self.initial];
        for m in self.moves {
            for s in [m.from, m.to] {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        out
    }

    /// The move from `from` to `to`, if the machine has it.
    pub fn find(&self, from: &str, to: &str) -> Option<&'static Move> {
        self.moves.iter().find(|m| m.from == from && m.to == to)
    }
}

/// How concurrent writes to a field are merged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Policy {
    /// Set once at creation; never changed.
    Fact,
    /// Set once, possibly after creation (e.g. a visit's check-out). The first write wins.
    WriteOnce,
    /// Field-level last-writer-wins by hybrid logical clock.
    Lww,
    /// A state machine; changed only by transition ops the server validates.
    Transition(&'static Machine),
    /// Computed by the server; clients never send it.
    ServerOnly,
}

impl Policy {
    /// The policy's documented name.
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Fact => "fact",
            Policy::WriteOnce => "write_once",
            Policy::Lww => "lww",
            Policy::Transition(_) => "transition",
            Policy::ServerOnly => "server_only",
        }
    }

    /// Whether the first write wins (`true`) or the last (`false`).
    pub fn first_writer_wins(&self) -> bool {
        matches!(self, Policy::Fact | Policy::WriteOnce)
    }
}

/// One field of a collection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Field {
    /// The field's name on the wire.
    pub name: &'static str,
    /// Its type and limits.
    pub ty: FieldType,
    /// Must be present on create.
    pub required: bool,
    /// Its merge policy.
    pub policy: Policy,
}

/// A field definition (a `const fn` so the table can be `static`).
pub const fn field(name: &'static str, ty: FieldType, policy: Policy) -> Field {
    Field {
        name,
        ty,
        required: false,
        policy,
    }
}

impl Field {
    /// The same field, required on create.
    pub const fn required(self) -> Field {
        Field {
            required: true,
            ..self
        }
    }
}

/// One collection.
#[derive(Debug, PartialEq)]
pub struct Collection {
    /// Its name on the wire, e.g. `customers`.
    pub name: &'static str,
    /// Fact, entity or workflow.
    pub kind: Kind,
    /// Who the records are about.
    pub anchor: Anchor,
    /// Its fields.
    pub fields: &'static [Field],
    /// Per-role access. Roles not listed may do nothing.
    pub access: &'static [Access],
    /// Fields with their own write rules; every other field follows `access`
    /// (see [`rules`]).
    pub writes: &'static [FieldRule],
    /// Who may archive records, when not everybody with `change` reach may.
    pub archive: Option<&'static [Grant]>,
    /// References whose target is checked more strictly than by default.
    pub refs: &'static [RefRule],
}

/// One permission to write a field: a role, the widest relation it covers,
/// and the workflow states it holds in (empty: every state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The role.
    pub role: Role,
    /// The widest relation covered.
    pub reach: Reach,
    /// The states (of the collection's state machine) it holds in; empty
    /// for every state.
    pub states: &'static [&'static str],
}

/// The write rule of one field: only these grants may write it, on create
/// as on change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldRule {
    /// The field.
    pub field: &'static str,
    /// Who may write it. Empty: nobody.
    pub grants: &'static [Grant],
}

/// What a reference field may point at. Every reference must name a record
/// of its target collection; the target says what else must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The record exists (the default for public collections).
    Exists,
    /// The author can see the record (the default for everything else).
    Visible,
    /// The author may change the record (e.g. a visit that amends another).
    Changeable,
    /// A user whose role is `rep`.
    Rep,
    /// The author themself.
    Author,
}

impl Target {
    /// The documented name.
    pub fn name(self) -> &'static str {
        match self {
            Target::Exists => "exists",
            Target::Visible => "visible to the author",
            Target::Changeable => "changeable by the author",
            Target::Rep => "a rep",
            Target::Author => "the author",
        }
    }
}

/// A stricter target for one reference field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefRule {
    /// The reference field.
    pub field: &'static str,
    /// What it must point at.
    pub target: Target,
}

impl Collection {
    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The access entry of a role (none when the role is not listed).
    pub fn access_for(&self, role: Role) -> Access {
        self.access
            .iter()
            .copied()
            .find(|a| a.role == role)
            .unwrap_or(Access {
                role,
                create: Reach::None,
                change: Reach::None,
            })
    }

    /// The collection's state-machine field, if it has one.
    pub fn transition_field(&self) -> Option<(&'static Field, &'static Machine)> {
        self.fields.iter().find_map(|f| match f.policy {
            Policy::Transition(m) => Some((f, m)),
            _ => None,
        })
    }

    /// Whether a record of this collection is credited to its author (see
    /// [`CREDITED_TO_AUTHOR`]).
    pub fn credited_to_author(&self) -> bool {
        CREDITED_TO_AUTHOR.contains(&self.name)
    }

    /// The field naming the customer this record belongs to, if any.
    pub fn customer_field(&self) -> Option<&'static str> {
        match self.anchor {
            Anchor::CustomerRef(f) => Some(f),
            _ => None,
        }
    }
}

/// Collections whose records are work a user did for a customer. Such a
/// record counts, in every figure, for the user it is credited to (see
/// [`crate::ownership::credited_to`]: a rep's work for the rep), not for
/// whoever owns the customer now; and it stays in that user's scope,
/// read-only, after the customer moves to another owner, so a laptop
/// computes the same figures as the server. The server writes the credit
/// into [`CREDIT_FIELD`] where it differs from the customer's owner, and
/// scopes the record by it.
pub const CREDITED_TO_AUTHOR: [&str; 2] = ["visits", "sales"];

/// The field of a [`CREDITED_TO_AUTHOR`] record naming who it counts for,
/// written by the server only where that is not the customer's owner: when
/// such work arrives, and on a customer's uncredited work when the customer
/// is reassigned. A record without it counts for the customer's owner.
pub const CREDIT_FIELD: &str = "credited_to";

/// Look a collection up by its wire name.
pub fn collection(name: &str) -> Option<&'static Collection> {
    ALL.iter().copied().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_names_a_collection_and_every_machine_is_connected() {
        for c in ALL {
            for f in c.fields {
                if let FieldType::Ref(target) = f.ty {
                    assert!(
                        collection(target).is_some(),
                        "{}.{} -> {target}",
                        c.name,
                        f.name
                    );
                }
                if let Policy::Transition(m) = f.policy {
                    for mv in m.moves {
                        for r in mv.requires {
                            assert!(
                                c.field(r).is_some(),
                                "{}: move requires unknown {r}",
                                c.name
                            );
                        }
                    }
                }
            }
            match c.anchor {
                Anchor::CustomerRef(f) | Anchor::User(f) => assert!(
                    c.field(f).is_some_and(|x| x.required),
                    "{}: anchor {f}",
                    c.name
                ),
                Anchor::UserOrTeam(a, b) => assert!(c.field(a).is_some() && c.field(b).is_some()),
                _ => {}
            }
        }
    }

    #[test]
    fn work_credited_to_its_author_belongs_to_a_customer() {
        for name in CREDITED_TO_AUTHOR {
            let c = collection(name).expect(name);
            assert!(c.credited_to_author());
            assert!(
                c.field(CREDIT_FIELD).is_some_and(
                    |f| f.policy == Policy::ServerOnly && f.ty == FieldType::Ref("users")
                ),
                "{name}: {CREDIT_FIELD} is a server-written user"
            );
            assert!(
                c.customer_field().is_some(),
                "{name}: only work on a customer has an author to credit apart from the owner"
            );
        }
    }

    #[test]
    fn field_names_are_unique() {
        for c in ALL {
            let mut names: Vec<_> = c.fields.iter().map(|f| f.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), c.fields.len(), "{}", c.name);
        }
    }

    #[test]
    fn reach_covers_relations() {
        assert!(Reach::Own.covers(Relation::Own));
        assert!(!Reach::Own.covers(Relation::Team));
        assert!(Reach::Team.covers(Relation::Team));
        assert!(!Reach::Team.covers(Relation::Other));
        assert!(Reach::Any.covers(Relation::Other));
        assert!(!Reach::None.covers(Relation::Own));
    }
}
