//! A record's query columns (customer, name, state, main instant, ...),
//! read off its current field values: what the local view stores beside
//! each record and what a pull reads while it parses a page.

use std::borrow::Cow;
use sync_protocol::merge::RecordState;
use sync_protocol::time::{format_ts, parse_ts};
use sync_protocol::{RecordId, schema};

/// A record's current field values, as [`Columns::of`] reads them: a
/// merged [`RecordState`], or a pulled record's text before it is parsed
/// in full (`pulled::StateRef`).
pub(crate) trait FieldSource {
    /// The record id.
    fn id(&self) -> RecordId;
    /// The collection.
    fn collection(&self) -> &str;
    /// A field's value when it is text.
    fn text(&self, field: &str) -> Option<Cow<'_, str>>;
    /// Whether a field holds a value (present and not null).
    fn is_set(&self, field: &str) -> bool;
    /// Whether the record is archived.
    fn is_archived(&self) -> bool;
}

impl FieldSource for RecordState {
    fn id(&self) -> RecordId {
        self.id
    }

    fn collection(&self) -> &str {
        &self.collection
    }

    fn text(&self, field: &str) -> Option<Cow<'_, str>> {
        self.get_str(field).map(Cow::Borrowed)
    }

    fn is_set(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    fn is_archived(&self) -> bool {
        self.archived.is_some()
    }
}

/// The query columns of one record of the view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Columns {
    /// The customer it belongs to (its own id for customers).
    pub customer_id: Option<String>,
    /// customers.name, users.username, teams.name, ...
    pub name: Option<String>,
    /// The workflow state (feedback.status, ...).
    pub status: Option<String>,
    /// The main instant, in the one text form `format_ts` writes, so that
    /// the view's ranges and order compare as text (an instant sent with
    /// another offset or precision is converted; a date stays a date).
    pub at: Option<String>,
    /// Archived.
    pub archived: bool,
    /// A visit not yet ended.
    pub open: bool,
    /// The visit a correction replaces.
    pub amends: Option<String>,
    /// Visits and sales: who the server credited them to.
    pub credited_to: Option<String>,
}

impl Columns {
    /// The columns of a record's current values.
    pub(crate) fn of(r: &impl FieldSource) -> Columns {
        let visit = r.collection() == "visits";
        let owned = |f: &str| r.text(f).map(Cow::into_owned);
        Columns {
            customer_id: customer_of(r),
            name: name_field(r.collection()).and_then(owned),
            status: schema::collection(r.collection())
                .and_then(schema::Collection::transition_field)
                .and_then(|(f, _)| owned(f.name)),
            at: AT_FIELDS
                .iter()
                .find_map(|f| r.text(f))
                .map(|at| canonical_instant(&at)),
            archived: r.is_archived(),
            open: visit && !r.is_set("ended_at"),
            amends: if visit { owned("amends") } else { None },
            credited_to: schema::collection(r.collection())
                .filter(|c| c.credited_to_author())
                .and_then(|_| owned(schema::CREDIT_FIELD)),
        }
    }
}

/// The customer a record belongs to (its own id for customers).
pub(crate) fn customer_of(r: &impl FieldSource) -> Option<String> {
    if r.collection() == "customers" {
        return Some(r.id().to_string());
    }
    let field = schema::collection(r.collection())?.customer_field()?;
    r.text(field).map(Cow::into_owned)
}

/// The field that names a record of a collection, for name look-ups.
fn name_field(collection: &str) -> Option<&'static str> {
    match collection {
        "users" => Some("username"),
        "customers" | "teams" | "incentive_plans" => Some("name"),
        "courses" => Some("title"),
        _ => None,
    }
}

/// The fields that can hold a record's main instant, in order of
/// preference: the view's `at` is the first one set.
const AT_FIELDS: [&str; 7] = [
    "started_at",
    "sold_at",
    "opened_at",
    "created_at",
    "held_at",
    "written_at",
    "granted_at",
];

/// `at` as `format_ts` would write it, when it is an instant in another
/// form; otherwise unchanged.
fn canonical_instant(at: &str) -> String {
    let b = at.as_bytes();
    let canonical = b.len() == 24 && b[19] == b'.' && b[23] == b'Z';
    match parse_ts(at) {
        Some(t) if !canonical => format_ts(t),
        _ => at.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_instant;

    #[test]
    fn instants_are_stored_in_utc_with_milliseconds_and_dates_stay_dates() {
        for (given, stored) in [
            ("2026-11-02T09:30:00.000Z", "2026-11-02T09:30:00.000Z"),
            ("2026-11-02T17:30:00+08:00", "2026-11-02T09:30:00.000Z"),
            ("2026-11-02T09:30:00Z", "2026-11-02T09:30:00.000Z"),
            ("2026-11-02T09:30:00.123456Z", "2026-11-02T09:30:00.123Z"),
            ("2026-11-02", "2026-11-02"),
        ] {
            assert_eq!(canonical_instant(given), stored, "{given}");
        }
    }
}
