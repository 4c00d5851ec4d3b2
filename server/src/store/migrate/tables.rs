//! The tables `migrate-store` copies, with their columns and kinds.

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Text,
    Int,
    Bool,
    Bytes,
    Real,
}

pub(super) struct Table {
    pub(super) name: &'static str,
    pub(super) cols: &'static [(&'static str, Kind)],
    /// Primary-key columns, in order.
    pub(super) key: &'static [&'static str],
}

use Kind::{Bool, Bytes, Int, Real, Text};

/// Every table, parents before children.
pub(super) const TABLES: &[Table] = &[
    Table {
        name: "meta",
        cols: &[("key", Text), ("value", Text)],
        key: &["key"],
    },
    Table {
        name: "change_seq",
        cols: &[("id", Int), ("head", Int)],
        key: &["id"],
    },
    Table {
        name: "teams",
        cols: &[
            ("id", Text),
            ("name", Text),
            ("region", Text),
            ("created_at", Text),
        ],
        key: &["id"],
    },
    Table {
        name: "users",
        cols: &[
            ("id", Text),
            ("username", Text),
            ("password_hash", Text),
            ("role", Text),
            ("team_id", Text),
            ("supervisor_id", Text),
            ("active", Bool),
            ("created_at", Text),
        ],
        key: &["id"],
    },
    Table {
        name: "devices",
        cols: &[
            ("id", Text),
            ("user_id", Text),
            ("name", Text),
            ("token_hash", Bytes),
            ("created_at", Text),
            ("last_seen_at", Text),
            ("revoked_at", Text),
            ("logged_out_at", Text),
            ("acked_through", Int),
            ("clock_drift_ms", Int),
        ],
        key: &["id"],
    },
    Table {
        name: "login_failures",
        cols: &[
            ("id", Int),
            ("username", Text),
            ("address", Text),
            ("at_ms", Int),
        ],
        key: &["id"],
    },
    Table {
        name: "dashboard_sessions",
        cols: &[
            ("id_hash", Bytes),
            ("user_id", Text),
            ("expires_at_ms", Int),
        ],
        key: &["id_hash"],
    },
    Table {
        name: "records",
        cols: &[
            ("id", Text),
            ("collection", Text),
            ("seq", Int),
            ("state", Text),
            ("customer_id", Text),
            ("subject_user", Text),
            ("subject_team", Text),
            ("public", Bool),
        ],
        key: &["id"],
    },
    Table {
        name: "customer_owners",
        cols: &[("customer_id", Text), ("owner_id", Text)],
        key: &["customer_id"],
    },
    Table {
        name: "evictions",
        cols: &[
            ("seq", Int),
            ("customer_id", Text),
            ("from_owner", Text),
            ("to_owner", Text),
            ("at", Text),
            ("hlc", Text),
        ],
        key: &["seq"],
    },
    Table {
        name: "ops",
        cols: &[
            ("device_id", Text),
            ("device_seq", Int),
            ("op_id", Text),
            ("user_id", Text),
            ("op", Text),
            ("outcome", Text),
            ("at", Text),
        ],
        key: &["device_id", "device_seq"],
    },
    Table {
        name: "problems",
        cols: &[
            ("id", Int),
            ("user_id", Text),
            ("device_id", Text),
            ("op", Text),
            ("code", Text),
            ("message", Text),
            ("field", Text),
            ("created_at", Text),
            ("op_id", Text),
            ("decision", Text),
            ("decided_by", Text),
            ("decided_at", Text),
            ("reason", Text),
        ],
        key: &["id"],
    },
    Table {
        name: "conflicts",
        cols: &[
            ("id", Int),
            ("record_id", Text),
            ("collection", Text),
            ("op_id", Text),
            ("user_id", Text),
            ("field", Text),
            ("losing_value", Text),
            ("winning_value", Text),
            ("losing_hlc", Text),
            ("winning_hlc", Text),
            ("created_at", Text),
            ("loser_user_id", Text),
            ("loser_device_id", Text),
            ("winner_user_id", Text),
            ("winner_device_id", Text),
            ("resolved_at", Text),
            ("resolution", Text),
        ],
        key: &["id"],
    },
    Table {
        name: "check_ins",
        cols: &[
            ("visit_id", Text),
            ("user_id", Text),
            ("started_at_ms", Int),
            ("lat", Real),
            ("lon", Real),
        ],
        key: &["visit_id"],
    },
    Table {
        name: "report_customers",
        cols: &[
            ("customer_id", Text),
            ("owner_id", Text),
            ("created_us", Int),
        ],
        key: &["customer_id"],
    },
    Table {
        name: "report_facts",
        cols: &[
            ("record_id", Bytes),
            ("kind", Text),
            ("at_us", Int),
            ("customer_id", Bytes),
            ("amends", Bytes),
            ("minor", Int),
            ("minor_digits", Int),
            ("voided", Int),
            ("feedback_kind", Text),
            ("csat", Int),
            ("nps", Int),
            ("resolved_us", Int),
            ("credited_to", Bytes),
        ],
        key: &["record_id"],
    },
];

/// Tables whose `id` is a PostgreSQL serial that must continue after the copy.
pub(super) const SERIALS: &[&str] = &["login_failures", "problems", "conflicts"];
