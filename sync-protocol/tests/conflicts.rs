//! Property test of conflict detection with base clocks. Devices edit one
//! record offline, push their ops in device order (retries resend ops the
//! hub already has) and pull, in any interleaving, with clocks that disagree.
//! The hub merges as the server does. An independent oracle knows what each
//! device had actually seen when it edited (not its base clocks), and
//! checks that every value displaced at the hub by a write whose device had
//! not seen it gives exactly one conflict, that a sequential overwrite
//! gives none, and that every replica converges.

use chrono::DateTime;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use sync_protocol::merge::RecordState;
use sync_protocol::{Bases, DeviceId, Hlc, HlcClock, Op, OpId, OpKind, RecordId};
use uuid::Uuid;

const CONFLICT_CASES: u32 = 1_000;
const DEVICES: usize = 3;
const FIELDS: [&str; 2] = ["phone", "address"];

fn record() -> RecordId {
    RecordId(Uuid::from_u128(1))
}

#[derive(Clone, Debug)]
enum Step {
    /// A device sets a field to `v{value}` (few values: equal values happen).
    Edit { dev: usize, field: usize, value: u8 },
    /// A device pushes its first `count` unsent ops, after resending its
    /// last `resend` ops the hub already has.
    Push {
        dev: usize,
        count: usize,
        resend: usize,
    },
    /// A device pulls everything the hub has.
    Pull { dev: usize },
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..DEVICES, 0..FIELDS.len(), 0u8..3)
            .prop_map(|(dev, field, value)| Step::Edit { dev, field, value }),
        2 => (0..DEVICES, 1usize..4, 0usize..3)
            .prop_map(|(dev, count, resend)| Step::Push { dev, count, resend }),
        2 => (0..DEVICES).prop_map(|dev| Step::Pull { dev }),
    ]
}

/// (field, losing clock, winning clock).
type Loss = (String, Hlc, Hlc);

struct Device {
    id: DeviceId,
    clock: HlcClock,
    /// Milliseconds this device's wall clock is off by.
    skew: i64,
    /// Every op it has: pulled, and its own.
    known: BTreeMap<OpId, Op>,
    /// Its own ops the hub has not acknowledged, in `device_seq` order.
    unsent: Vec<Op>,
    /// Its own ops the hub has.
    sent: Vec<Op>,
    seq: u64,
}

impl Device {
    fn view(&self) -> RecordState {
        let mut s = RecordState::new(record(), "customers");
        for op in self.known.values() {
            s.apply(op);
        }
        s
    }
}

#[derive(Default)]
struct Hub {
    state: Option<RecordState>,
    log: Vec<Op>,
    acked: BTreeMap<DeviceId, u64>,
    /// What the merge reported.
    reported: Vec<Loss>,
    /// The oracle: every write that arrived, per field, with its value.
    arrived: BTreeMap<String, Vec<(Hlc, Value)>>,
    /// The oracle: the clocks of every op its device had when it wrote an op.
    seen: BTreeMap<Hlc, BTreeSet<Hlc>>,
    /// What the oracle expects.
    expected: Vec<Loss>,
}

impl Hub {
    /// Take one pushed op as the server does: skip what it already has,
    /// judge with the oracle, merge.
    fn receive(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let acked = self.acked.entry(op.device_id).or_default();
        if op.device_seq <= *acked {
            return Ok(()); // a resend
        }
        prop_assert_eq!(op.device_seq, *acked + 1, "devices push in order");
        *acked += 1;
        for (field, value) in &op.fields {
            let writes = self.arrived.entry(field.clone()).or_default();
            if let Some((cur, cur_value)) = writes.iter().max_by_key(|(h, _)| *h).cloned() {
                let saw = |writer: &Hlc, what: &Hlc| {
                    self.seen.get(writer).is_some_and(|s| s.contains(what))
                };
                if op.hlc > cur {
                    if !saw(&op.hlc, &cur) && cur_value != *value {
                        self.expected.push((field.clone(), cur, op.hlc));
                    }
                } else {
                    // The current writer cannot have seen an op that
                    // reaches the hub only now: the merge relies on it.
                    prop_assert!(!saw(&cur, &op.hlc));
                    if cur_value != *value {
                        self.expected.push((field.clone(), op.hlc, cur));
                    }
                }
            }
            writes.push((op.hlc, value.clone()));
        }
        let state = self
            .state
            .get_or_insert_with(|| RecordState::new(record(), "customers"));
        let applied = state.apply(op);
        for c in applied.conflicts.iter().chain(&applied.displaced) {
            self.reported
                .push((c.field.clone(), c.losing_hlc, c.winning_hlc));
        }
        self.log.push(op.clone());
        Ok(())
    }
}

fn wall(ms: i64) -> chrono::DateTime<chrono::Utc> {
    DateTime::from_timestamp_millis(ms.max(2)).expect("a valid instant")
}

struct World {
    hub: Hub,
    devices: Vec<Device>,
    now: i64,
}

impl World {
    fn new(skews: &[i64]) -> Result<Self, TestCaseError> {
        let setup = DeviceId(Uuid::from_u128(0xff));
        let mut fields = BTreeMap::new();
        fields.insert("name".to_owned(), json!("Acme"));
        for f in FIELDS {
            fields.insert(f.to_owned(), json!("v0"));
        }
        let create = Op {
            op_id: OpId(Uuid::from_u128(0xff)),
            device_id: setup,
            device_seq: 1,
            hlc: Hlc::from_wall(wall(1), setup),
            schema_version: 1,
            collection: "customers".into(),
            record_id: record(),
            kind: OpKind::Create,
            fields,
            transition: None,
            base: None,
        };
        let mut hub = Hub::default();
        hub.receive(&create)?;
        let devices = skews
            .iter()
            .enumerate()
            .map(|(i, skew)| {
                let id = DeviceId(Uuid::from_u128(i as u128 + 1));
                let mut clock = HlcClock::new(id);
                clock.observe(&create.hlc);
                Device {
                    id,
                    clock,
                    skew: *skew,
                    known: BTreeMap::from([(create.op_id, create.clone())]),
                    unsent: Vec::new(),
                    sent: Vec::new(),
                    seq: 0,
                }
            })
            .collect();
        Ok(Self {
            hub,
            devices,
            now: 10,
        })
    }

    fn run(&mut self, step: &Step) -> Result<(), TestCaseError> {
        self.now += 10;
        match *step {
            Step::Edit { dev, field, value } => {
                let d = &mut self.devices[dev];
                let field = FIELDS[field];
                let base: Bases = d
                    .view()
                    .fields
                    .get(field)
                    .map(|f| (field.to_owned(), f.hlc))
                    .into_iter()
                    .collect();
                for h in base.values() {
                    d.clock.observe(h);
                }
                let hlc = d.clock.now(wall(self.now + d.skew));
                d.seq += 1;
                let op = Op {
                    op_id: OpId(Uuid::from_u128(u128::from(d.seq) << 8 | (dev as u128 + 1))),
                    device_id: d.id,
                    device_seq: d.seq,
                    hlc,
                    schema_version: 1,
                    collection: "customers".into(),
                    record_id: record(),
                    kind: OpKind::Patch,
                    fields: BTreeMap::from([(field.to_owned(), json!(format!("v{value}")))]),
                    transition: None,
                    base: Some(base),
                };
                let had = d.known.values().map(|o| o.hlc).collect();
                self.hub.seen.insert(hlc, had);
                d.known.insert(op.op_id, op.clone());
                d.unsent.push(op);
            }
            Step::Push { dev, count, resend } => {
                let d = &mut self.devices[dev];
                let again = d.sent.len().saturating_sub(resend);
                let n = count.min(d.unsent.len());
                for op in d.sent[again..].iter().chain(&d.unsent[..n]) {
                    self.hub.receive(op)?;
                }
                d.sent.extend(d.unsent.drain(..n));
            }
            Step::Pull { dev } => {
                let d = &mut self.devices[dev];
                for op in &self.hub.log {
                    d.clock.observe(&op.hlc);
                    d.known.insert(op.op_id, op.clone());
                }
            }
        }
        Ok(())
    }
}

fn sorted(mut v: Vec<Loss>) -> Vec<Loss> {
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CONFLICT_CASES))]

    #[test]
    fn every_unseen_displaced_value_gives_one_conflict_and_sequential_edits_none(
        steps in prop::collection::vec(arb_step(), 1..40),
        skews in prop::collection::vec(-40i64..40, DEVICES),
    ) {
        let mut world = World::new(&skews)?;
        for step in &steps {
            world.run(step)?;
        }
        // Everyone pushes the rest and pulls: all replicas agree.
        for dev in 0..DEVICES {
            world.run(&Step::Push { dev, count: usize::MAX, resend: 1 })?;
        }
        for dev in 0..DEVICES {
            world.run(&Step::Pull { dev })?;
        }
        let hub = world.hub.state.clone().expect("the record");
        for d in &world.devices {
            prop_assert_eq!(&d.view(), &hub);
        }
        prop_assert_eq!(sorted(world.hub.reported), sorted(world.hub.expected));
    }
}

/// Two laptops set the same phone offline; whichever syncs first, the
/// value that loses is reported once, as the loser or as the displaced.
#[test]
fn the_two_laptop_story_reports_the_loss_in_both_orders() {
    for first in [0, 1] {
        let mut world = World::new(&[0, 5]).expect("a world");
        for dev in [0, 1] {
            let value = u8::try_from(dev).unwrap() + 1;
            world
                .run(&Step::Edit {
                    dev,
                    field: 0,
                    value,
                })
                .expect("an edit");
        }
        for dev in [first, 1 - first] {
            world
                .run(&Step::Push {
                    dev,
                    count: 9,
                    resend: 0,
                })
                .expect("a push");
        }
        let reported = world.hub.reported.clone();
        assert_eq!(reported.len(), 1, "{reported:?}");
        assert_eq!(sorted(reported), sorted(world.hub.expected.clone()));
        let state = world.hub.state.as_ref().expect("the record");
        assert_eq!(state.get_str("phone"), Some("v2"), "the later clock wins");
        // The loser pulls, sees the winner and edits again: sequential.
        world.run(&Step::Pull { dev: 0 }).expect("a pull");
        world
            .run(&Step::Edit {
                dev: 0,
                field: 0,
                value: 0,
            })
            .expect("an edit");
        world
            .run(&Step::Push {
                dev: 0,
                count: 9,
                resend: 0,
            })
            .expect("a push");
        assert_eq!(world.hub.reported.len(), 1, "{:?}", world.hub.reported);
    }
}
