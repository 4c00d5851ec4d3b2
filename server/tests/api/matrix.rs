//! The authorization matrix, generated from the write rules of the schema
//! table (`sync_protocol::schema::rules`), through raw pushes:
//!
//! - every role × collection × field × relation × workflow state: a patch of
//!   that one field is admitted or refused exactly as `rules::may_write` says;
//! - every role × collection × relation × state: an archive, as
//!   `rules::may_archive` says;
//! - every role × collection × relation: a create, as `check_write` says;
//! - random ops from random roles (patches of one to three fields,
//!   transitions from the current state or a stale one, archives; some
//!   values of the wrong type) on records whose state the test pulls: the
//!   outcome is the table's (`validate_op`, then `check_admission`).
//!
//! Relations are real: the actor and the record's subject are users whose
//! teams make them own, same team or other. A supervisor's, HQ's or
//! admin's *own* record exists only where its subject need not be a rep
//! (customers and what belongs to them); those cells are counted as
//! unrealizable.

use crate::helpers::{Device, TestApp, spawn_app};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use sync_protocol::schema::rules::{self, may_archive, may_write};
use sync_protocol::schema::{self, Anchor, Collection, FieldType, Policy, Relation, Role, Target};
use sync_protocol::validate::{Author, check_admission, check_write, validate_op};
use sync_protocol::wire::Change;
use sync_protocol::{ErrorCode, Op, OpKind, RecordId, RecordState, StateChange};

/// The people of the test company: name, role, team.
const PEOPLE: &[(&str, Role, Option<&str>)] = &[
    ("a1", Role::Rep, Some("A")),
    ("a2", Role::Rep, Some("A")),
    ("b1", Role::Rep, Some("B")),
    ("supa", Role::Supervisor, Some("A")),
    ("supb", Role::Supervisor, Some("B")),
    ("hq", Role::Hq, None),
    ("hqa", Role::Hq, Some("A")),
    ("boss", Role::Admin, None),
    ("bossa", Role::Admin, Some("A")),
];

/// The subject of most records: a rep of team A.
const SUBJECT: &str = "a1";

/// One cell of the matrix's rows: a role acting with a relation, realized
/// by an actor and the subject of the record.
#[derive(Clone, Copy, Debug)]
struct Cell {
    role: Role,
    rel: Relation,
    actor: &'static str,
    subject: &'static str,
}

fn customer_anchored(coll: &Collection) -> bool {
    matches!(coll.anchor, Anchor::Customer | Anchor::CustomerRef(_))
}

/// The realizable cells of a collection, and how many are not realizable.
fn cells(coll: &Collection) -> (Vec<Cell>, usize) {
    use Relation::{Other, Own, Team};
    let c = |role, rel, actor, subject| Cell {
        role,
        rel,
        actor,
        subject,
    };
    if coll.anchor == Anchor::Public {
        let cells = vec![
            c(Role::Rep, Other, "b1", ""),
            c(Role::Supervisor, Other, "supb", ""),
            c(Role::Hq, Other, "hq", ""),
            c(Role::Admin, Other, "boss", ""),
        ];
        // Nobody is related to a public record.
        return (cells, 4 * 2);
    }
    let mut cells = vec![
        c(Role::Rep, Own, "a1", SUBJECT),
        c(Role::Rep, Team, "a2", SUBJECT),
        c(Role::Rep, Other, "b1", SUBJECT),
        c(Role::Supervisor, Team, "supa", SUBJECT),
        c(Role::Supervisor, Other, "supb", SUBJECT),
        c(Role::Hq, Team, "hqa", SUBJECT),
        c(Role::Hq, Other, "hq", SUBJECT),
        c(Role::Admin, Team, "bossa", SUBJECT),
        c(Role::Admin, Other, "boss", SUBJECT),
    ];
    if customer_anchored(coll) {
        cells.push(c(Role::Supervisor, Own, "supa", "supa"));
        cells.push(c(Role::Hq, Own, "hq", "hq"));
        cells.push(c(Role::Admin, Own, "boss", "boss"));
        (cells, 0)
    } else {
        (cells, 3)
    }
}

/// The states of a collection's machine, or one stateless `None`.
fn states(coll: &Collection) -> Vec<Option<&'static str>> {
    match coll.transition_field() {
        Some((_, m)) => m.states().into_iter().map(Some).collect(),
        None => vec![None],
    }
}

fn sample(ty: &FieldType) -> Value {
    match *ty {
        FieldType::Text(_) => json!("x"),
        FieldType::Int(lo, hi) => json!(lo.max(1).min(hi)),
        FieldType::Number(lo, hi) => json!(lo.max(1.0).min(hi)),
        FieldType::Money(_) => json!({"minor": 100, "currency": "CNY"}),
        FieldType::Timestamp => json!("2026-11-28T09:30:00.000Z"),
        FieldType::Date => json!("2026-11-28"),
        FieldType::Enum(v) => json!(v[0]),
        FieldType::LatLon => json!({"lat": 31.23, "lon": 121.47}),
        FieldType::Ref(_) => unreachable!("references are chosen by the world"),
        FieldType::Bool => json!(true),
        FieldType::List(inner, _) => json!([sample(inner)]),
    }
}

/// A value of the wrong type for `ty`.
fn wrong(ty: &FieldType) -> Value {
    match ty {
        FieldType::Text(_) | FieldType::Enum(_) | FieldType::Ref(_) => json!(17),
        FieldType::Timestamp | FieldType::Date => json!("yesterday"),
        _ => json!("nonsense"),
    }
}

struct World {
    app: TestApp,
    devices: HashMap<&'static str, Device>,
    people: HashMap<&'static str, (sync_protocol::UserId, Role, Option<&'static str>)>,
    teams: HashMap<&'static str, sync_protocol::TeamId>,
    /// A customer of each subject.
    customers: HashMap<&'static str, RecordId>,
    /// A record of each collection about [`SUBJECT`] (or public), to refer to.
    samples: HashMap<&'static str, RecordId>,
    /// The server's latest clock: every op is written after it, as if the
    /// people took turns on one timeline.
    last: Option<sync_protocol::Hlc>,
}

impl World {
    fn new() -> World {
        let app = spawn_app();
        let mut teams = HashMap::new();
        for t in ["A", "B"] {
            teams.insert(t, app.create_team(t).id);
        }
        let mut devices = HashMap::new();
        let mut people = HashMap::new();
        for &(name, role, team) in PEOPLE {
            let d = app.user_device(name, role, team);
            people.insert(name, (d.user.id, role, team));
            devices.insert(name, d);
        }
        let mut w = World {
            app,
            devices,
            people,
            teams,
            customers: HashMap::new(),
            samples: HashMap::new(),
            last: None,
        };
        for subject in [SUBJECT, "supa", "hq", "boss"] {
            let c = w.make("customers", subject, None);
            w.customers.insert(subject, c);
        }
        for coll in [
            "courses",
            "evaluation_templates",
            "visits",
            "feedback",
            "one_on_ones",
            "goals",
            "improvement_actions",
        ] {
            let id = w.make(coll, SUBJECT, None);
            w.samples.insert(coll, id);
        }
        w
    }

    fn relation(&self, actor: &str, subject: &str) -> Relation {
        if subject.is_empty() {
            return Relation::Other;
        }
        let team = |n: &str| self.people[n].2;
        if actor == subject {
            Relation::Own
        } else if team(actor).is_some() && team(actor) == team(subject) {
            Relation::Team
        } else {
            Relation::Other
        }
    }

    fn role(&self, name: &str) -> Role {
        self.people[name].1
    }

    /// A value for reference field `field` of `coll` written by `actor` about `subject`.
    fn reference(&self, coll: &Collection, field: &str, actor: &str, subject: &str) -> Value {
        let f = coll.field(field).expect("field");
        let (target, rule) = rules::reference(coll, f).expect("a reference");
        let subject = if subject.is_empty() { SUBJECT } else { subject };
        match (target, rule) {
            (_, Target::Author) => json!(self.people[actor].0),
            ("users", _) => json!(self.people[subject].0),
            ("teams", _) => json!(self.teams["A"]),
            ("customers", _) => json!(self.customers[subject]),
            (other, _) => json!(
                self.samples
                    .get(other)
                    .unwrap_or_else(|| panic!("no sample {other} for {}.{field}", coll.name))
            ),
        }
    }

    fn value(&self, coll: &Collection, field: &str, actor: &str, subject: &str) -> Value {
        let f = coll.field(field).expect("field");
        match f.ty {
            FieldType::Ref(_) => self.reference(coll, field, actor, subject),
            ty => sample(&ty),
        }
    }

    /// A create's fields: the required ones, the anchor pointing at `subject`.
    fn create_fields(&self, coll: &Collection, actor: &str, subject: &str) -> Value {
        let mut m = Map::new();
        for f in coll.fields.iter().filter(|f| {
            f.required && !matches!(f.policy, Policy::ServerOnly | Policy::Transition(_))
        }) {
            m.insert(f.name.into(), self.value(coll, f.name, actor, subject));
        }
        if let Anchor::User(f) | Anchor::UserOrTeam(f, _) = coll.anchor {
            m.insert(f.into(), json!(self.people[subject].0));
        }
        Value::Object(m)
    }

    fn op(&mut self, actor: &str, coll: &str, id: RecordId, kind: OpKind, fields: Value) -> Op {
        let dev = self.devices.get_mut(actor).expect("actor");
        if let Some(last) = &self.last {
            dev.clock.observe(last);
        }
        dev.op(coll, id, kind, fields)
    }

    /// Push ops of `actor`; their outcomes as (status, code).
    fn push(&mut self, actor: &str, ops: Vec<Op>) -> Vec<(String, String)> {
        let dev = self.devices.get_mut(actor).expect("actor");
        let r = self.app.push(dev, ops);
        self.last = Some(r.server_clock);
        r.outcomes
            .iter()
            .map(|o| {
                let v = serde_json::to_value(&o.outcome).expect("json");
                (
                    v["status"].as_str().unwrap_or_default().to_owned(),
                    v["code"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    fn push_ok(&mut self, actor: &str, op: Op, what: &str) {
        let out = self.push(actor, vec![op]);
        assert_eq!(out[0].0, "applied", "{what} by {actor}: {out:?}");
    }

    /// Whether `actor` may create `coll` about `subject`, by the table.
    fn may_create(&mut self, coll: &'static Collection, actor: &str, subject: &str) -> bool {
        let fields = self.create_fields(coll, actor, subject);
        let op = self.op(
            actor,
            coll.name,
            RecordId::new_v7(chrono::Utc::now()),
            OpKind::Create,
            fields,
        );
        // The op is only judged, never pushed: take its sequence number back.
        self.devices.get_mut(actor).expect("actor").seq -= 1;
        check_write(
            &op,
            coll,
            None,
            self.role(actor),
            self.relation(actor, subject),
        )
        .is_ok()
    }

    /// A record of `coll` about `subject`, moved into `state` by whoever the
    /// table lets make each move.
    fn make(&mut self, coll_name: &str, subject: &'static str, state: Option<&str>) -> RecordId {
        let coll = schema::collection(coll_name).expect("collection");
        if coll_name == "users" {
            let n = self.samples.len() + self.customers.len();
            let u = self.app.create_user(
                &format!("dummy{n}-{}", rand::random::<u32>()),
                Role::Rep,
                Some("B"),
                None,
            );
            return RecordId(u.id.0);
        }
        if coll_name == "teams" {
            return RecordId(
                self.app
                    .create_team(&format!("T{}", rand::random::<u32>()))
                    .id
                    .0,
            );
        }
        let candidates: Vec<&'static str> = [subject, "supa", "hq", "boss"]
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect();
        let mut creator = None;
        for c in &candidates {
            if self.may_create(coll, c, subject) {
                creator = Some(*c);
                break;
            }
        }
        let creator =
            creator.unwrap_or_else(|| panic!("nobody may create {coll_name} about {subject}"));
        let fields = self.create_fields(coll, creator, subject);
        let id = RecordId::new_v7(chrono::Utc::now());
        let op = self.op(creator, coll_name, id, OpKind::Create, fields);
        self.push_ok(creator, op, &format!("create {coll_name}"));
        let Some(goal) = state else { return id };
        let (field, machine) = coll.transition_field().expect("machine");
        for mv in path(machine, goal) {
            let mover = *candidates
                .iter()
                .find(|c| {
                    let role = self.role(c);
                    let rel = self.relation(c, subject);
                    mv.by.contains(&role)
                        && coll.access_for(role).change.covers(rel)
                        && mv.requires.iter().all(|r| {
                            let f = coll.field(r).expect("field");
                            may_write(coll, f, OpKind::Transition, role, rel, Some(mv.from)).is_ok()
                        })
                })
                .unwrap_or_else(|| panic!("nobody may move {coll_name} {} -> {}", mv.from, mv.to));
            let mut fields = Map::new();
            for r in mv.requires {
                fields.insert((*r).into(), self.value(coll, r, mover, subject));
            }
            let dev = self.devices.get_mut(mover).expect("mover");
            if let Some(last) = &self.last {
                dev.clock.observe(last);
            }
            let op = dev.transition(
                coll_name,
                id,
                field.name,
                mv.from,
                mv.to,
                Value::Object(fields),
            );
            self.push_ok(mover, op, &format!("{coll_name} {} -> {}", mv.from, mv.to));
        }
        id
    }
}

/// The shortest sequence of moves from the machine's initial state to `goal`.
fn path(machine: &schema::Machine, goal: &str) -> Vec<&'static schema::Move> {
    let mut queue = VecDeque::from([(machine.initial, Vec::new())]);
    let mut seen = vec![machine.initial];
    while let Some((at, moves)) = queue.pop_front() {
        if at == goal {
            return moves;
        }
        for mv in machine.moves.iter().filter(|m| m.from == at) {
            if !seen.contains(&mv.to) {
                seen.push(mv.to);
                let mut next = moves.clone();
                next.push(mv);
                queue.push_back((mv.to, next));
            }
        }
    }
    panic!("{goal} cannot be reached");
}

/// Whether an outcome is the verdict's: admitted for `Ok`, else refused
/// with its code (`out_of_scope` standing for `forbidden` when the record
/// is not even visible to the actor).
fn agrees(verdict: Result<(), ErrorCode>, got: &(String, String)) -> bool {
    match verdict {
        Ok(()) => got.0 == "applied" || got.0 == "superseded",
        Err(code) => {
            got.0 == "rejected"
                && (got.1 == code.as_str()
                    || (code == ErrorCode::Forbidden && got.1 == "out_of_scope"))
        }
    }
}

#[derive(Default)]
struct Tally {
    patches: usize,
    archives: usize,
    creates: usize,
    unrealizable: usize,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, what: String, verdict: Result<(), ErrorCode>, got: &(String, String)) {
        if !agrees(verdict, got) {
            self.failures.push(format!(
                "{what}: the table says {verdict:?}, the server {got:?}"
            ));
        }
    }
}

fn patch_cells(w: &mut World, coll: &'static Collection, tally: &mut Tally) {
    let (cells, unrealizable) = cells(coll);
    for state in states(coll) {
        tally.unrealizable += unrealizable * coll.fields.len();
        // One record per subject and state, patched by every cell.
        let mut records: HashMap<&str, RecordId> = HashMap::new();
        for cell in &cells {
            let id = if let Some(id) = records.get(cell.subject) {
                *id
            } else {
                let id = w.make(coll.name, cell.subject, state);
                records.insert(cell.subject, id);
                id
            };
            let ops: Vec<Op> = coll
                .fields
                .iter()
                .map(|f| {
                    let v = w.value(coll, f.name, cell.actor, cell.subject);
                    w.op(
                        cell.actor,
                        coll.name,
                        id,
                        OpKind::Patch,
                        json!({ f.name: v }),
                    )
                })
                .collect();
            let got = w.push(cell.actor, ops);
            for (f, got) in coll.fields.iter().zip(&got) {
                let verdict = may_write(coll, f, OpKind::Patch, cell.role, cell.rel, state)
                    .map_err(|e| e.code);
                tally.patches += 1;
                tally.check(
                    format!(
                        "{} patching {}.{} ({:?}, {state:?})",
                        cell.role, coll.name, f.name, cell.rel
                    ),
                    verdict,
                    got,
                );
            }
        }
    }
}

fn archive_cells(w: &mut World, coll: &'static Collection, tally: &mut Tally) {
    let (cells, unrealizable) = cells(coll);
    for state in states(coll) {
        tally.unrealizable += unrealizable;
        for cell in &cells {
            let id = w.make(coll.name, cell.subject, state);
            let op = w.op(cell.actor, coll.name, id, OpKind::Archive, json!({}));
            let got = w.push(cell.actor, vec![op]);
            let verdict = may_archive(coll, cell.role, cell.rel, state).map_err(|e| e.code);
            tally.archives += 1;
            tally.check(
                format!(
                    "{} archiving {} ({:?}, {state:?})",
                    cell.role, coll.name, cell.rel
                ),
                verdict,
                &got[0],
            );
        }
    }
}

fn create_cells(w: &mut World, coll: &'static Collection, tally: &mut Tally) {
    let (cells, unrealizable) = cells(coll);
    tally.unrealizable += unrealizable;
    for cell in &cells {
        if coll.anchor == Anchor::Customer && cell.rel != Relation::Own {
            // A new customer is its creator's own.
            tally.unrealizable += 1;
            continue;
        }
        let fields = w.create_fields(coll, cell.actor, cell.subject);
        let op = w.op(
            cell.actor,
            coll.name,
            RecordId::new_v7(chrono::Utc::now()),
            OpKind::Create,
            fields,
        );
        let verdict = check_write(&op, coll, None, cell.role, cell.rel).map_err(|e| e.code);
        let got = w.push(cell.actor, vec![op]);
        tally.creates += 1;
        tally.check(
            format!("{} creating {} ({:?})", cell.role, coll.name, cell.rel),
            verdict,
            &got[0],
        );
    }
}

#[test]
fn every_cell_of_the_write_rules_is_enforced_by_the_server() {
    let mut w = World::new();
    let mut tally = Tally::default();
    for coll in schema::ALL.iter().copied() {
        patch_cells(&mut w, coll, &mut tally);
        archive_cells(&mut w, coll, &mut tally);
        create_cells(&mut w, coll, &mut tally);
    }
    println!(
        "matrix: {} patch cells, {} archive cells, {} create cells tested; {} unrealizable",
        tally.patches, tally.archives, tally.creates, tally.unrealizable
    );
    assert!(
        tally.failures.is_empty(),
        "{} cells disagree with the table:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
    assert!(tally.patches > 1000, "{}", tally.patches);
}

/// A random op of `cell` on record `id`: mostly patches of one to three
/// fields, some transitions (from the current state or not, with the
/// fields the move requires and sometimes one more), a few archives; one
/// value in five of the wrong type.
fn random_op(
    w: &mut World,
    rng: &mut StdRng,
    cell: Cell,
    coll: &'static Collection,
    id: RecordId,
    state: &RecordState,
) -> Op {
    let mut fields = Map::new();
    let random_field = |w: &World, rng: &mut StdRng, fields: &mut Map<String, Value>| {
        let f = &coll.fields[rng.gen_range(0..coll.fields.len())];
        let v = if rng.gen_bool(0.2) {
            wrong(&f.ty)
        } else {
            w.value(coll, f.name, cell.actor, SUBJECT)
        };
        fields.insert(f.name.into(), v);
    };
    if rng.gen_bool(0.03) {
        return w.op(cell.actor, coll.name, id, OpKind::Archive, json!({}));
    }
    if let Some((field, machine)) = coll.transition_field()
        && rng.gen_bool(0.35)
    {
        let current = state.get_str(field.name).unwrap_or(machine.initial);
        let from_here: Vec<_> = machine.moves.iter().filter(|m| m.from == current).collect();
        let mv = if !from_here.is_empty() && rng.gen_bool(0.6) {
            from_here[rng.gen_range(0..from_here.len())]
        } else {
            &machine.moves[rng.gen_range(0..machine.moves.len())]
        };
        for r in mv.requires {
            fields.insert((*r).into(), w.value(coll, r, cell.actor, SUBJECT));
        }
        if rng.gen_bool(0.3) {
            random_field(w, rng, &mut fields);
        }
        let mut op = w.op(
            cell.actor,
            coll.name,
            id,
            OpKind::Transition,
            Value::Object(fields),
        );
        op.transition = Some(StateChange {
            field: field.name.into(),
            from: mv.from.into(),
            to: mv.to.into(),
        });
        return op;
    }
    for _ in 0..rng.gen_range(1..=3) {
        random_field(w, rng, &mut fields);
    }
    w.op(
        cell.actor,
        coll.name,
        id,
        OpKind::Patch,
        Value::Object(fields),
    )
}

#[test]
fn random_ops_from_random_roles_get_the_tables_verdict() {
    let seed: u64 = std::env::var("FIELDSYNC_MATRIX_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed} (FIELDSYNC_MATRIX_SEED={seed} repeats this run)");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = World::new();
    // A record of every collection in every state, about the subject.
    let mut records = Vec::new();
    for coll in schema::ALL.iter().copied() {
        let subject = if coll.anchor == Anchor::Public {
            ""
        } else {
            SUBJECT
        };
        for state in states(coll) {
            records.push((coll, w.make(coll.name, subject, state)));
        }
    }
    // The records as the server holds them, pulled by an admin, who sees all.
    let mut replica: HashMap<RecordId, RecordState> = HashMap::new();
    let mut failures = Vec::new();
    let mut tally: HashMap<(&str, bool), usize> = HashMap::new();
    for round in 0..500 {
        let boss = w.devices.get_mut("boss").expect("boss");
        for change in w.app.pull(boss) {
            if let Change::Upsert { record, .. } = change {
                replica.insert(record.id, record);
            }
        }
        let (coll, id) = records[rng.gen_range(0..records.len())];
        let (cells, _) = cells(coll);
        let pool: Vec<Cell> = cells
            .into_iter()
            .filter(|c| c.subject == SUBJECT || c.subject.is_empty())
            .collect();
        let cell = pool[rng.gen_range(0..pool.len())];
        let state = replica.get(&id).expect("pulled").clone();
        let op = random_op(&mut w, &mut rng, cell, coll, id, &state);
        let verdict = validate_op(&op, Author::Device)
            .and_then(|c| check_admission(&op, c, Some(&state), cell.role, cell.rel))
            .map_err(|e| e.code);
        let got = w.push(cell.actor, vec![op.clone()]);
        *tally
            .entry((op.kind.as_str(), verdict.is_ok()))
            .or_default() += 1;
        if !agrees(verdict, &got[0]) {
            failures.push(format!(
                "round {round}: {} {:?} {} {} {:?} {:?}: table {verdict:?}, server {:?}",
                cell.role,
                cell.rel,
                op.kind.as_str(),
                coll.name,
                op.transition,
                op.fields,
                got[0]
            ));
        }
    }
    println!("ops by kind and verdict (admitted?): {tally:?}");
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
    for kind in ["patch", "transition"] {
        for admitted in [true, false] {
            assert!(
                tally.get(&(kind, admitted)).copied().unwrap_or(0) >= 3,
                "too few {kind} ops with admitted = {admitted}: {tally:?}"
            );
        }
    }
}
