//! Report facts: derived on every put, and rebuilt when stale.

use super::at;
use crate::store::{RecordRow, RecordScope, ScopeFilter, Store, StoreError, read, write};
use sync_protocol::{DeviceId, OpId, RecordId, UserId};

/// A canonical record state: `fields` written by one create (or patch) op,
/// archived when asked.
pub(super) fn state(
    prev: Option<sync_protocol::RecordState>,
    collection: &str,
    id: RecordId,
    fields: serde_json::Value,
    archive: bool,
    n: i64,
) -> sync_protocol::RecordState {
    use sync_protocol::{Hlc, Op, OpKind, RecordState};
    let device = DeviceId(uuid::Uuid::from_u128(7));
    let mut st = prev.unwrap_or_else(|| RecordState::new(id, collection));
    let serde_json::Value::Object(fields) = fields else {
        panic!("fields must be an object")
    };
    let kind = if st.created.is_some() {
        OpKind::Patch
    } else {
        OpKind::Create
    };
    for (kind, fields) in [(kind, fields.into_iter().collect())]
        .into_iter()
        .chain(archive.then(|| (OpKind::Archive, sync_protocol::Fields::default())))
    {
        st.apply(&Op {
            op_id: OpId::new_v7(at(n)),
            device_id: device,
            device_seq: 1,
            hlc: Hlc::from_wall(at(n), device),
            schema_version: sync_protocol::version::SCHEMA_VERSION,
            collection: collection.into(),
            record_id: id,
            kind,
            fields,
            transition: None,
            base: None,
        });
    }
    st
}

pub(super) fn put_state(s: &dyn Store, st: &sync_protocol::RecordState, customer: RecordId) {
    write(s, |tx| {
        let seq = tx.next_seq()?;
        tx.put_record(&RecordRow {
            id: st.id,
            collection: st.collection.clone(),
            seq,
            state: sync_protocol::integrity::canonical_json(st),
            scope: RecordScope {
                customer_id: Some(customer),
                ..RecordScope::default()
            },
        })
    })
    .unwrap();
}

pub(super) type Facts = Vec<(RecordId, sync_protocol::metrics::RecordFact)>;

pub(super) fn report_facts(s: &dyn Store, scope: &ScopeFilter) -> (Facts, Facts) {
    use crate::store::facts::FactPart;
    read(s, |tx| {
        let (mut customers, mut facts) = (Vec::new(), Vec::new());
        tx.report_customers(scope, &mut |id, f| customers.push((id, f)))?;
        let (from, to) = (at(0).timestamp_micros(), at(3600).timestamp_micros());
        tx.report_facts(from, to, FactPart::All, &mut |id, f| facts.push((id, f)))?;
        // The two parts a report may read on two threads are, together,
        // exactly the whole (split inside the window and at its start).
        for mid in [at(150).timestamp_micros(), from] {
            let mut parts = Vec::new();
            for part in [FactPart::VisitsBefore(mid), FactPart::AllFrom(mid)] {
                tx.report_facts(from, to, part, &mut |id, f| parts.push((id, f)))?;
            }
            parts.sort_by_key(|(id, _)| *id);
            let mut whole = facts.clone();
            whole.sort_by_key(|(id, _)| *id);
            assert_eq!(parts, whole, "split at {mid}");
        }
        customers.sort_by_key(|(id, _)| *id);
        facts.sort_by_key(|(id, _)| *id);
        Ok::<_, StoreError>((customers, facts))
    })
    .unwrap()
}

/// Store customer "Acme" owned by `owner`, created at 10 s; its state.
pub(super) fn put_acme(
    s: &dyn Store,
    customer: RecordId,
    owner: UserId,
) -> sync_protocol::RecordState {
    let created = sync_protocol::time::format_ts(at(10));
    let c = state(
        None,
        "customers",
        customer,
        serde_json::json!({"name": "Acme", "owner_id": owner.to_string(), "created_at": created}),
        false,
        10,
    );
    put_state(s, &c, customer);
    c
}

pub(super) fn report_facts_follow_puts_archives_and_reassignment(s: &dyn Store) {
    use serde_json::json;
    use sync_protocol::metrics::RecordFact;
    let (ann, bob) = (UserId::new_v7(at(1)), UserId::new_v7(at(2)));
    let ts = |n: i64| sync_protocol::time::format_ts(at(n));
    let customer = RecordId::new_v7(at(3));
    let c0 = put_acme(s, customer, ann);
    write(s, |tx| tx.set_customer_owner(customer, ann)).unwrap();
    let visit = RecordId::new_v7(at(4));
    let v = state(
        None,
        "visits",
        visit,
        json!({"customer_id": customer.to_string(), "started_at": ts(100)}),
        false,
        100,
    );
    put_state(s, &v, customer);
    // An amendment outside the window is still read: it replaces a visit inside.
    let amendment = RecordId::new_v7(at(5));
    put_state(
        s,
        &state(
            None,
            "visits",
            amendment,
            json!({"customer_id": customer.to_string(), "started_at": ts(7200), "amends": visit.to_string()}),
            false,
            7200,
        ),
        customer,
    );
    // A visit outside the window, amending nothing, is not.
    put_state(
        s,
        &state(
            None,
            "visits",
            RecordId::new_v7(at(6)),
            json!({"customer_id": customer.to_string(), "started_at": ts(9000)}),
            false,
            9000,
        ),
        customer,
    );
    let complaint = RecordId::new_v7(at(7));
    let fb = state(
        None,
        "feedback",
        complaint,
        json!({"customer_id": customer.to_string(), "kind": "complaint", "text": "late",
               "opened_at": ts(-7200), "status": "resolved", "resolved_at": ts(200)}),
        false,
        200,
    );
    put_state(s, &fb, customer);
    let sale = RecordId::new_v7(at(8));
    put_state(
        s,
        &state(
            None,
            "sales",
            sale,
            json!({"customer_id": customer.to_string(), "amount": {"minor": 1250, "currency": "CNY"},
                   "product": "tea", "sold_at": ts(300)}),
            false,
            300,
        ),
        customer,
    );

    let all = ScopeFilter {
        all: true,
        ..ScopeFilter::default()
    };
    let (customers, facts) = report_facts(s, &all);
    assert_eq!(
        customers,
        vec![(
            customer,
            RecordFact::Customer {
                owner: Some(ann),
                created_at: Some(at(10))
            }
        )]
    );
    let ids: Vec<RecordId> = facts.iter().map(|(id, _)| *id).collect();
    let mut want = vec![visit, amendment, complaint, sale];
    want.sort();
    assert_eq!(ids, want, "the visit at 9000 s is outside the window");
    for (id, f) in &facts {
        let stored = read(s, |tx| tx.record(*id)).unwrap().unwrap();
        let row = crate::store::facts::derive(&stored.collection, &stored.state);
        assert_eq!(
            row,
            Some((*id, crate::store::facts::FactRow::from_fact(f))),
            "a stored fact reads back as derived"
        );
    }

    // Reassigning the customer rewrites its row only; visits follow it.
    let c1 = state(
        Some(c0),
        "customers",
        customer,
        json!({"owner_id": bob.to_string()}),
        false,
        20,
    );
    put_state(s, &c1, customer);
    write(s, |tx| tx.set_customer_owner(customer, bob)).unwrap();
    let bobs = ScopeFilter {
        users: vec![bob],
        ..ScopeFilter::default()
    };
    let anns = ScopeFilter {
        users: vec![ann],
        ..ScopeFilter::default()
    };
    let (customers, _) = report_facts(s, &bobs);
    assert!(
        matches!(customers.as_slice(), [(c, RecordFact::Customer { owner: Some(o), .. })] if *c == customer && *o == bob)
    );
    assert!(
        report_facts(s, &anns).0.is_empty(),
        "no longer in ann's scope"
    );

    // Reopening the complaint drops its resolution; archiving drops rows.
    put_state(
        s,
        &state(
            Some(fb),
            "feedback",
            complaint,
            json!({"status": "open"}),
            false,
            400,
        ),
        customer,
    );
    put_state(
        s,
        &state(Some(v), "visits", visit, json!({}), true, 500),
        customer,
    );
    let (_, facts) = report_facts(s, &all);
    let ids: Vec<RecordId> = facts.iter().map(|(id, _)| *id).collect();
    let mut want = vec![amendment, sale];
    want.sort();
    assert_eq!(
        ids, want,
        "an archived visit has no fact; an open complaint opened before the window is not read"
    );
    put_state(
        s,
        &state(Some(c1), "customers", customer, json!({}), true, 600),
        customer,
    );
    assert!(
        report_facts(s, &all).0.is_empty(),
        "an archived customer has no row"
    );
}

/// A store whose fact rows follow an older derivation (a database
/// upgraded by a migration that reshaped the tables) derives them again.
pub(super) fn stale_report_facts_are_derived_again(s: &dyn Store) {
    use crate::store::facts::{VERSION, VERSION_KEY, rebuild_if_stale};
    use serde_json::json;
    let ann = UserId::new_v7(at(1));
    let ts = |n: i64| sync_protocol::time::format_ts(at(n));
    let customer = RecordId::new_v7(at(3));
    put_acme(s, customer, ann);
    for (n, amends) in [(4, None), (5, Some(RecordId::new_v7(at(4))))] {
        let mut fields = json!({"customer_id": customer.to_string(), "started_at": ts(100 + n)});
        if let Some(a) = amends {
            fields["amends"] = json!(a.to_string());
        }
        put_state(
            s,
            &state(
                None,
                "visits",
                RecordId::new_v7(at(n)),
                fields,
                false,
                100 + n,
            ),
            customer,
        );
    }
    let all = ScopeFilter {
        all: true,
        ..ScopeFilter::default()
    };
    let before = report_facts(s, &all);
    assert_eq!((before.0.len(), before.1.len()), (1, 2));
    write(s, |tx| {
        tx.clear_report_facts()?;
        tx.set_meta(VERSION_KEY, "0")
    })
    .unwrap();
    assert!(report_facts(s, &all).1.is_empty());
    rebuild_if_stale(s).unwrap();
    assert_eq!(report_facts(s, &all), before);
    let version = read(s, |tx| tx.meta(VERSION_KEY)).unwrap();
    assert_eq!(version.as_deref(), Some(VERSION));
}
