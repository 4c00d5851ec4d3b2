//! `POST /v1/sync/pull`: the changes in the device's scope after its cursor,
//! in commit order, up to the head read at the start (one snapshot).

use super::{ServerClock, decode_state};
use crate::error::ApiError;
use crate::scope::scope_filter;
use crate::store::{ChangeRow, ReadTx, UserRow};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use sync_protocol::integrity::Tally;
use sync_protocol::schema;
use sync_protocol::wire::{
    Change, DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT, PullRequest, PullResponse, ScopeSummary,
};

/// One pull page as stored: record states stay the canonical JSON they
/// were stored as, so answering a page neither parses nor re-encodes them.
#[derive(Clone, Debug)]
pub struct Page {
    /// Changes in sequence order, states as stored.
    pub rows: Vec<ChangeRow>,
    /// Everything but the changes (whose `changes` is empty).
    pub rest: PullResponse,
}

impl Page {
    /// The typed answer (decodes every state).
    pub fn into_response(self) -> Result<PullResponse, ApiError> {
        let mut out = self.rest;
        out.changes.reserve(self.rows.len());
        for row in self.rows {
            out.changes.push(match row {
                ChangeRow::Upsert { seq, state } => Change::Upsert {
                    seq,
                    record: decode_state(&state)?,
                },
                ChangeRow::Evict { seq, customer_id } => Change::Evict { seq, customer_id },
            });
        }
        Ok(out)
    }

    /// The JSON body of the answer: the serde form of [`PullResponse`], with
    /// each stored state copied in as it is (it is the serde form of its
    /// [`sync_protocol::RecordState`]).
    pub fn to_json(&self) -> Result<String, ApiError> {
        debug_assert!(self.rest.changes.is_empty());
        let rest = serde_json::to_string(&self.rest).map_err(ApiError::internal)?;
        // `changes` is the first field of `PullResponse`.
        let tail = rest.strip_prefix(EMPTY_CHANGES).ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("unexpected shape of a pull answer"))
        })?;
        let states: usize = self
            .rows
            .iter()
            .map(|r| match r {
                ChangeRow::Upsert { state, .. } => state.len() + 48,
                ChangeRow::Evict { .. } => 96,
            })
            .sum();
        let mut out = String::with_capacity(states + rest.len() + 16);
        out.push_str("{\"changes\":[");
        for (i, row) in self.rows.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match row {
                ChangeRow::Upsert { seq, state } => {
                    let _ = write!(out, "{{\"type\":\"upsert\",\"seq\":{seq},\"record\":");
                    out.push_str(state);
                    out.push('}');
                }
                ChangeRow::Evict { seq, customer_id } => {
                    let change: Change = Change::Evict {
                        seq: *seq,
                        customer_id: *customer_id,
                    };
                    out.push_str(&serde_json::to_string(&change).map_err(ApiError::internal)?);
                }
            }
        }
        out.push(']');
        out.push_str(tail);
        Ok(out)
    }
}

const EMPTY_CHANGES: &str = "{\"changes\":[]";

/// Answer one pull page inside a read transaction.
pub fn pull(
    tx: &mut dyn ReadTx,
    user: &UserRow,
    req: &PullRequest,
    now: DateTime<Utc>,
) -> Result<PullResponse, ApiError> {
    page(tx, user, req, now)?.into_response()
}

/// One pull page, states as stored, inside a read transaction.
pub fn page(
    tx: &mut dyn ReadTx,
    user: &UserRow,
    req: &PullRequest,
    now: DateTime<Utc>,
) -> Result<Page, ApiError> {
    let limit = req
        .limit
        .unwrap_or(DEFAULT_PULL_LIMIT)
        .clamp(1, MAX_PULL_LIMIT);
    let head = tx.head_seq()?;
    let scope = scope_filter(tx, user)?;
    let mut rows = tx.changes(&scope, req.cursor, head, limit + 1)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let cursor = if more {
        rows.last().map_or(req.cursor, ChangeRow::seq)
    } else {
        head
    };
    let scope_summary = if req.checksums && !more {
        let mut tallies: BTreeMap<String, Tally> = schema::ALL
            .iter()
            .map(|c| (c.name.to_owned(), Tally::default()))
            .collect();
        tx.scope_records(&scope, &mut |collection, state| {
            tallies
                .entry(collection.to_owned())
                .or_default()
                .add(state.as_bytes());
        })?;
        let order = |name: &str| {
            schema::ALL
                .iter()
                .position(|c| c.name == name)
                .unwrap_or(usize::MAX)
        };
        let mut out: Vec<ScopeSummary> = tallies
            .into_iter()
            .map(|(collection, t)| ScopeSummary {
                collection,
                count: t.count,
                checksum: t.checksum_hex(),
            })
            .collect();
        out.sort_by_key(|s| order(&s.collection));
        Some(out)
    } else {
        None
    };
    let server_clock = ServerClock::load(tx)?.now(now);
    Ok(Page {
        rows,
        rest: PullResponse {
            changes: Vec::new(),
            cursor,
            checkpoint: head,
            more,
            scope: scope_summary,
            server_clock,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;
    use sync_protocol::integrity::canonical_json;
    use sync_protocol::version::SCHEMA_VERSION;
    use sync_protocol::{DeviceId, Fields, Hlc, Op, OpId, OpKind, RecordId, RecordState};

    fn state(at: DateTime<Utc>, name: &str) -> RecordState {
        let device = DeviceId::new_v7(at);
        let id = RecordId::new_v7(at);
        let mut fields = Fields::new();
        fields.insert("name".into(), json!(name));
        fields.insert("lat".into(), json!(31.2304));
        let op = Op {
            op_id: OpId::new_v7(at),
            device_id: device,
            device_seq: 1,
            hlc: Hlc::from_wall(at, device),
            schema_version: SCHEMA_VERSION,
            collection: "customers".into(),
            record_id: id,
            kind: OpKind::Create,
            fields,
            transition: None,
            base: None,
        };
        let mut s = RecordState::new(id, "customers");
        s.apply(&op);
        s
    }

    /// The hand-written body is exactly the serde form of the typed answer.
    #[test]
    fn page_json_is_the_serde_form_of_the_response() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        let a = state(at, "Acme \"Tea\" \u{4e2d}");
        let b = state(at + chrono::Duration::seconds(1), "Bolt");
        for (rows, scope) in [
            (Vec::new(), None),
            (
                vec![
                    ChangeRow::Upsert {
                        seq: 7,
                        state: canonical_json(&a),
                    },
                    ChangeRow::Evict {
                        seq: 8,
                        customer_id: a.id,
                    },
                    ChangeRow::Upsert {
                        seq: 9,
                        state: canonical_json(&b),
                    },
                ],
                Some(vec![ScopeSummary {
                    collection: "customers".into(),
                    count: 1,
                    checksum: "00ff".into(),
                }]),
            ),
        ] {
            let page = Page {
                rows,
                rest: PullResponse {
                    changes: Vec::new(),
                    cursor: 9,
                    checkpoint: 12,
                    more: true,
                    scope,
                    server_clock: Hlc::from_wall(at, DeviceId::new_v7(at)),
                },
            };
            let body = page.to_json().unwrap();
            let typed = page.into_response().unwrap();
            assert_eq!(body, serde_json::to_string(&typed).unwrap());
            let parsed: PullResponse = serde_json::from_str(&body).unwrap();
            assert_eq!(parsed, typed);
        }
    }
}
