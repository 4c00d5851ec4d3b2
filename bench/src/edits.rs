//! Edit push: one laptop pushes field edits of customers it created, over
//! HTTP with the wire types, in batches as the CLI sends them. Three ways
//! of the same edits: with base clocks that saw the current value (the
//! everyday sequential edit), with none at all (a client from before base
//! clocks), and with base clocks that saw nothing (every edit displaces a
//! value its author had not seen, so each records a conflict).

use crate::Sizes;
use crate::api::Api;
use crate::proc::{ADMIN_PASSWORD, Bins, ServerProc, ServerStore};
use crate::results::{Check, Figure};
use anyhow::Result;
use chrono::Utc;
use serde_json::json;
use std::time::Instant;
use sync_protocol::hlc::{Hlc, HlcClock};
use sync_protocol::schema::Role;
use sync_protocol::time::format_ts;
use sync_protocol::version::{SCHEMA_VERSION, ServerInfo};
use sync_protocol::wire::{ConflictInfo, PushRequest};
use sync_protocol::{Bases, DeviceId, Fields, Op, OpId, OpKind, RecordId};

/// Ops per push (the CLI sends up to 5,000).
const BATCH: usize = 5_000;
/// Edits per customer.
const EDITS_PER_CUSTOMER: usize = 10;

/// What the edits' base clocks say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    /// The clock of the current value: sequential edits.
    Seen,
    /// No base clocks (an older client).
    Absent,
    /// An empty base: the author had seen no value, so each edit displaces one.
    Unseen,
}

impl Base {
    fn label(self) -> &'static str {
        match self {
            Base::Seen => "edit push",
            Base::Absent => "edit push, no base clocks",
            Base::Unseen => "edit push, every edit a conflict",
        }
    }
}

struct Laptop {
    api: Api,
    device: DeviceId,
    clock: HlcClock,
    seq: u64,
}

impl Laptop {
    fn op(&mut self, record_id: RecordId, kind: OpKind, fields: Fields, base: Option<Bases>) -> Op {
        self.seq += 1;
        let now = Utc::now();
        Op {
            op_id: OpId::new_v7(now),
            device_id: self.device,
            device_seq: self.seq,
            hlc: self.clock.now(now),
            schema_version: SCHEMA_VERSION,
            collection: "customers".into(),
            record_id,
            kind,
            fields,
            transition: None,
            base,
        }
    }

    /// Push in batches; every op must be applied. Returns the seconds spent.
    fn push_all(&mut self, ops: Vec<Op>) -> Result<f64> {
        let start = Instant::now();
        let mut rest = ops;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(BATCH));
            let req = PushRequest {
                ops: rest,
                clock: self.clock.now(Utc::now()),
            };
            let resp = self.api.push_applied(&req)?;
            self.clock.observe(&resp.server_clock);
            rest = tail;
        }
        Ok(start.elapsed().as_secs_f64())
    }
}

/// One run: a fresh server, `customers` customers, then their edits timed.
/// Returns edits per second and the conflicts the server then lists for
/// `review` (0 without).
fn run_once(
    bins: &Bins,
    store: &ServerStore,
    customers: usize,
    base: Base,
    review: bool,
) -> Result<(f64, usize)> {
    let server = ServerProc::start(bins, store)?;
    let anon = Api::new(server.url())?;
    let (admin, _) = anon.login("admin", ADMIN_PASSWORD, "bench admin")?;
    admin.create_team("edits")?;
    admin.create_user("editor", "edits-password", Role::Rep, Some("edits"), None)?;
    let (api, login) = anon.login("editor", "edits-password", "editing laptop")?;
    let mut laptop = Laptop {
        api,
        device: login.device_id,
        clock: HlcClock::new(login.device_id),
        seq: 0,
    };
    let ids: Vec<RecordId> = (0..customers)
        .map(|_| RecordId::new_v7(Utc::now()))
        .collect();
    let creates: Vec<Op> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut f = Fields::new();
            f.insert("name".into(), json!(format!("Customer {i}")));
            f.insert("created_at".into(), json!(format_ts(Utc::now())));
            f.insert("phone".into(), json!("021-0000"));
            laptop.op(*id, OpKind::Create, f, None)
        })
        .collect();
    let mut phone_clock: Vec<Hlc> = creates.iter().map(|o| o.hlc).collect();
    laptop.push_all(creates)?;
    let mut edits = Vec::with_capacity(customers * EDITS_PER_CUSTOMER);
    for round in 0..EDITS_PER_CUSTOMER {
        for (i, id) in ids.iter().enumerate() {
            let mut f = Fields::new();
            f.insert("phone".into(), json!(format!("021-{round}{i:06}")));
            let b = match base {
                Base::Seen => Some([("phone".to_owned(), phone_clock[i])].into()),
                Base::Absent => None,
                Base::Unseen => Some(Bases::new()),
            };
            let op = laptop.op(*id, OpKind::Patch, f, b);
            phone_clock[i] = op.hlc;
            edits.push(op);
        }
    }
    let n = edits.len();
    let secs = laptop.push_all(edits)?;
    let listed = if review {
        let conflicts: Vec<ConflictInfo> =
            serde_json::from_str(&admin.get_text("/v1/admin/conflicts")?)?;
        conflicts.len()
    } else {
        0 // an older server keeps no list to review
    };
    Ok((n as f64 / secs, listed))
}

/// Whether the server binary understands base clocks (an older build,
/// measured as a baseline, refuses ops that carry them and lists no
/// conflicts: only its edits without base clocks are measured).
fn offers_base_clocks(bins: &Bins, store: &ServerStore) -> Result<bool> {
    let server = ServerProc::start(bins, store)?;
    let info: ServerInfo = serde_json::from_str(&Api::new(server.url())?.get_text("/v1/info")?)?;
    Ok(info.capabilities.iter().any(|c| c == "base-clocks"))
}

/// The three edit-push figures on `store`.
pub fn figures(
    bins: &Bins,
    store: &ServerStore,
    sizes: &Sizes,
    checks: &mut Vec<Check>,
) -> Result<Vec<Figure>> {
    let customers = (sizes.visits / EDITS_PER_CUSTOMER / 2).max(10);
    let edits = customers * EDITS_PER_CUSTOMER;
    let workload = format!(
        "one laptop pushes {edits} phone edits ({EDITS_PER_CUSTOMER} each of {customers} customers it created) in batches of up to {BATCH}"
    );
    let mut out = Vec::new();
    let with_base = offers_base_clocks(bins, store)?;
    for base in [Base::Seen, Base::Absent, Base::Unseen] {
        if !with_base && base != Base::Absent {
            out.push(Figure::unavailable(
                base.label(),
                &workload,
                "edits/s",
                None,
                "skipped: this server build has no base clocks",
            ));
            continue;
        }
        let mut runs = Vec::new();
        let mut listed = Vec::new();
        for _ in 0..sizes.runs {
            let (rate, conflicts) = run_once(bins, store, customers, base, with_base)?;
            runs.push(rate);
            listed.push(conflicts);
        }
        // Sequential edits and edits without base clocks record nothing;
        // blind ones one conflict each (the review lists at most 1,000).
        let want = if base == Base::Unseen {
            edits.min(sync_protocol::wire::MAX_OPEN_CONFLICTS as usize)
        } else {
            0
        };
        checks.push(Check::new(
            &format!(
                "{}: conflicts recorded as the base clocks say",
                base.label()
            ),
            listed.iter().all(|n| *n == want),
            format!("{listed:?} listed, {want} expected, per run"),
        ));
        out.push(Figure::measured(
            base.label(),
            &workload,
            "edits/s",
            runs,
            None,
        ));
    }
    Ok(out)
}
