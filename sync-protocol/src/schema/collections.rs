//! The collection table. One entry per collection of the design brief.

use super::FieldType::{Bool, Date, Enum, Int, LatLon, List, Money, Number, Ref, Text, Timestamp};
use super::Policy::{Fact, Lww, ServerOnly, Transition, WriteOnce};
use super::{
    Access, Anchor, CREDIT_FIELD, Collection, FieldRule, Grant, Kind, Machine, Move, Reach,
    RefRule, Role, Target, field,
};

/// The metric ids shared by goals, reports, flags and CSV headers.
pub const METRIC_IDS: &[&str] = &[
    "visits",
    "customers_visited",
    "coverage",
    "sales",
    "new_customers",
    "csat",
    "nps",
    "complaints_opened",
    "complaints_resolved",
    "resolution_hours",
    "training_hours",
    "training_completion",
];

const REP: Role = Role::Rep;
const SUP: Role = Role::Supervisor;
const HQ: Role = Role::Hq;
const ADMIN: Role = Role::Admin;
const FIELD_ROLES: &[Role] = &[REP, SUP, HQ, ADMIN];
const MANAGERS: &[Role] = &[SUP, HQ, ADMIN];
/// HQ calibrates evaluations (and so makes them final).
const CALIBRATORS: &[Role] = &[HQ, ADMIN];

const fn access(role: Role, create: Reach, change: Reach) -> Access {
    Access {
        role,
        create,
        change,
    }
}

/// Reps work on their own records, supervisors on their team's, HQ and admin on all.
const FIELD_WORK: &[Access] = &[
    access(REP, Reach::Own, Reach::Own),
    access(SUP, Reach::Team, Reach::Team),
    access(HQ, Reach::Any, Reach::Any),
    access(ADMIN, Reach::Any, Reach::Any),
];

/// Managers create records about reps; reps may only act on their own (e.g. acknowledge).
const MANAGED: &[Access] = &[
    access(REP, Reach::None, Reach::Own),
    access(SUP, Reach::Team, Reach::Team),
    access(HQ, Reach::Any, Reach::Any),
    access(ADMIN, Reach::Any, Reach::Any),
];

/// Only HQ and admin write; everybody reads.
const HQ_ONLY: &[Access] = &[
    access(HQ, Reach::Any, Reach::Any),
    access(ADMIN, Reach::Any, Reach::Any),
];

const fn grant(role: Role, reach: Reach, states: &'static [&'static str]) -> Grant {
    Grant {
        role,
        reach,
        states,
    }
}

const fn rule(field: &'static str, grants: &'static [Grant]) -> FieldRule {
    FieldRule { field, grants }
}

const fn refers(field: &'static str, target: Target) -> RefRule {
    RefRule { field, target }
}

/// A supervisor for their team, HQ and admin for everybody.
const BY_MANAGERS: &[Grant] = &[
    grant(SUP, Reach::Team, &[]),
    grant(HQ, Reach::Any, &[]),
    grant(ADMIN, Reach::Any, &[]),
];

/// Whoever evaluates, while the evaluation is a draft.
const BY_EVALUATOR: &[Grant] = &[
    grant(SUP, Reach::Team, &["draft"]),
    grant(HQ, Reach::Any, &["draft"]),
    grant(ADMIN, Reach::Any, &["draft"]),
];

/// HQ calibrates an evaluation the rep has answered; it becomes final.
const CALIBRATION: &[&str] = &["acknowledged", "disputed"];

/// The score and tier: computed by the evaluator in the draft, set by HQ's calibration.
const BY_EVALUATOR_OR_CALIBRATION: &[Grant] = &[
    grant(SUP, Reach::Team, &["draft"]),
    grant(HQ, Reach::Any, &["draft", "acknowledged", "disputed"]),
    grant(ADMIN, Reach::Any, &["draft", "acknowledged", "disputed"]),
];

/// The subject of a managed record is a rep.
const ABOUT_A_REP: &[RefRule] = &[refers("rep_id", Target::Rep)];

const FEEDBACK_STATUS: Machine = Machine {
    initial: "open",
    moves: &[
        Move {
            from: "open",
            to: "in_progress",
            by: FIELD_ROLES,
            requires: &[],
        },
        Move {
            from: "open",
            to: "resolved",
            by: FIELD_ROLES,
            requires: &["resolution"],
        },
        Move {
            from: "in_progress",
            to: "resolved",
            by: FIELD_ROLES,
            requires: &["resolution"],
        },
        Move {
            from: "in_progress",
            to: "open",
            by: FIELD_ROLES,
            requires: &[],
        },
        Move {
            from: "resolved",
            to: "closed",
            by: MANAGERS,
            requires: &[],
        },
        Move {
            from: "resolved",
            to: "open",
            by: FIELD_ROLES,
            requires: &[],
        },
        Move {
            from: "closed",
            to: "open",
            by: MANAGERS,
            requires: &[],
        },
    ],
};

const TRAINING_STATUS: Machine = Machine {
    initial: "assigned",
    moves: &[
        Move {
            from: "assigned",
            to: "completed",
            by: FIELD_ROLES,
            requires: &["completed_at"],
        },
        Move {
            from: "assigned",
            to: "waived",
            by: MANAGERS,
            requires: &[],
        },
        Move {
            from: "waived",
            to: "assigned",
            by: MANAGERS,
            requires: &[],
        },
    ],
};

const ONE_ON_ONE_STATUS: Machine = Machine {
    initial: "held",
    moves: &[Move {
        from: "held",
        to: "acknowledged",
        by: &[REP],
        requires: &[],
    }],
};

const EVALUATION_STATUS: Machine = Machine {
    initial: "draft",
    moves: &[
        Move {
            from: "draft",
            to: "submitted",
            by: MANAGERS,
            requires: &["rating", "comment"],
        },
        Move {
            from: "submitted",
            to: "draft",
            by: MANAGERS,
            requires: &[],
        },
        Move {
            from: "submitted",
            to: "acknowledged",
            by: &[REP],
            requires: &[],
        },
        Move {
            from: "submitted",
            to: "disputed",
            by: &[REP],
            requires: &["rep_comment"],
        },
        Move {
            from: "acknowledged",
            to: "final",
            by: CALIBRATORS,
            requires: &["calibration_reason"],
        },
        Move {
            from: "disputed",
            to: "final",
            by: CALIBRATORS,
            requires: &["calibration_reason"],
        },
    ],
};

const ACTION_STATUS: Machine = Machine {
    initial: "open",
    moves: &[
        Move {
            from: "open",
            to: "closed",
            by: FIELD_ROLES,
            requires: &["verdict"],
        },
        Move {
            from: "closed",
            to: "open",
            by: MANAGERS,
            requires: &[],
        },
    ],
};

const VISIT_REVIEW: Machine = Machine {
    initial: "none",
    moves: &[
        Move {
            from: "none",
            to: "accepted",
            by: MANAGERS,
            requires: &[],
        },
        Move {
            from: "none",
            to: "rejected",
            by: MANAGERS,
            requires: &["review_note"],
        },
        Move {
            from: "accepted",
            to: "rejected",
            by: MANAGERS,
            requires: &["review_note"],
        },
        Move {
            from: "rejected",
            to: "accepted",
            by: MANAGERS,
            requires: &[],
        },
    ],
};

const SHORT: super::FieldType = Text(200);
const LONG: super::FieldType = Text(4000);
const ROLES: super::FieldType = Enum(&["rep", "supervisor", "hq", "admin"]);
const METRIC: super::FieldType = Enum(METRIC_IDS);
const PERIOD: super::FieldType = Text(32);

/// Customers: business accounts a rep owns.
pub static CUSTOMERS: Collection = Collection {
    name: "customers",
    kind: Kind::Entity,
    anchor: Anchor::Customer,
    fields: &[
        field("name", SHORT, Lww).required(),
        field("segment", Text(50), Lww),
        field("address", Text(500), Lww),
        field("location", LatLon, Lww),
        field("phone", Text(40), Lww),
        field("contact", SHORT, Lww),
        field("created_at", Timestamp, Fact).required(),
        field("owner_id", Ref("users"), ServerOnly),
    ],
    access: FIELD_WORK,
    writes: &[],
    archive: None,
    refs: &[],
};

/// Visits: a rep's call on a customer, with GPS check-in and check-out.
pub static VISITS: Collection = Collection {
    name: "visits",
    kind: Kind::Fact,
    anchor: Anchor::CustomerRef("customer_id"),
    fields: &[
        field("customer_id", Ref("customers"), Fact).required(),
        field("started_at", Timestamp, Fact).required(),
        field("check_in", LatLon, Fact),
        field("check_in_accuracy_m", Int(0, 100_000), Fact),
        field("purpose", Text(500), Fact),
        field("no_location_reason", Text(500), Fact),
        field("amends", Ref("visits"), Fact),
        field("amend_reason", Text(500), Fact),
        field("ended_at", Timestamp, WriteOnce),
        field("check_out", LatLon, WriteOnce),
        field("outcome", LONG, WriteOnce),
        field("next_step", LONG, WriteOnce),
        field(
            "gps_verdict",
            Enum(&["verified", "out_of_range", "unverified", "suspicious"]),
            ServerOnly,
        ),
        field("gps_distance_m", Int(0, 40_100_000), ServerOnly),
        field("gps_reasons", List(&Text(200), 10), ServerOnly),
        field(
            "review",
            Enum(&["none", "accepted", "rejected"]),
            Transition(&VISIT_REVIEW),
        ),
        field("review_note", Text(500), Lww),
        field(CREDIT_FIELD, Ref("users"), ServerOnly),
    ],
    access: FIELD_WORK,
    // Only a reviewer explains a review.
    writes: &[rule("review_note", BY_MANAGERS)],
    archive: None,
    // An amendment replaces the visit it amends in every report.
    refs: &[refers("amends", Target::Changeable)],
};

/// Feedback: surveys, complaints, suggestions and praise, followed to resolution.
pub static FEEDBACK: Collection = Collection {
    name: "feedback",
    kind: Kind::Workflow,
    anchor: Anchor::CustomerRef("customer_id"),
    fields: &[
        field("customer_id", Ref("customers"), Fact).required(),
        field(
            "kind",
            Enum(&["survey", "complaint", "suggestion", "praise"]),
            Fact,
        )
        .required(),
        field("csat", Int(1, 5), Fact),
        field("nps", Int(0, 10), Fact),
        field("category", Text(100), Fact),
        field("text", LONG, Fact).required(),
        field("visit_id", Ref("visits"), Fact),
        field("follow_up_of", Ref("feedback"), Fact),
        field("opened_at", Timestamp, Fact).required(),
        field(
            "status",
            Enum(&["open", "in_progress", "resolved", "closed"]),
            Transition(&FEEDBACK_STATUS),
        ),
        field("status_note", LONG, Lww),
        field("resolution", LONG, Lww),
        field("resolved_at", Timestamp, Lww),
        field("action_id", Ref("improvement_actions"), Lww),
    ],
    access: FIELD_WORK,
    writes: &[],
    archive: None,
    refs: &[],
};

/// Sales: an order won from a customer. Voiding is a one-time correction.
pub static SALES: Collection = Collection {
    name: "sales",
    kind: Kind::Fact,
    anchor: Anchor::CustomerRef("customer_id"),
    fields: &[
        field("customer_id", Ref("customers"), Fact).required(),
        field("amount", Money(true), Fact).required(),
        field("product", SHORT, Fact).required(),
        field("sold_at", Timestamp, Fact).required(),
        field("void_reason", Text(500), WriteOnce),
        field("voided_at", Timestamp, WriteOnce),
        field(CREDIT_FIELD, Ref("users"), ServerOnly),
    ],
    access: FIELD_WORK,
    writes: &[],
    archive: None,
    refs: &[],
};

/// SMART goals for a rep or a team.
pub static GOALS: Collection = Collection {
    name: "goals",
    kind: Kind::Entity,
    anchor: Anchor::UserOrTeam("rep_id", "team_id"),
    fields: &[
        field("rep_id", Ref("users"), Fact),
        field("team_id", Ref("teams"), Fact),
        field("metric", METRIC, Fact).required(),
        field("period", PERIOD, Fact).required(),
        field("target", Number(0.0, 1e12), Lww).required(),
        field("stretch", Number(0.0, 1e12), Lww),
        field("note", Text(1000), Lww),
    ],
    access: &[
        access(REP, Reach::None, Reach::None),
        access(SUP, Reach::Team, Reach::Team),
        access(HQ, Reach::Any, Reach::Any),
        access(ADMIN, Reach::Any, Reach::Any),
    ],
    writes: &[],
    archive: None,
    refs: ABOUT_A_REP,
};

/// One change of a goal (its creation included): who, when, old → new.
/// Written by the same command, in the same local transaction, as the goal.
pub static GOAL_CHANGES: Collection = Collection {
    name: "goal_changes",
    kind: Kind::Fact,
    anchor: Anchor::UserOrTeam("rep_id", "team_id"),
    fields: &[
        field("goal_id", Ref("goals"), Fact).required(),
        field("rep_id", Ref("users"), Fact),
        field("team_id", Ref("teams"), Fact),
        field("changed_by", Ref("users"), Fact).required(),
        field("changed_at", Timestamp, Fact).required(),
        field("old_target", Number(0.0, 1e12), Fact),
        field("new_target", Number(0.0, 1e12), Fact),
        field("old_stretch", Number(0.0, 1e12), Fact),
        field("new_stretch", Number(0.0, 1e12), Fact),
        field("old_note", Text(1000), Fact),
        field("new_note", Text(1000), Fact),
    ],
    access: &[
        access(REP, Reach::None, Reach::None),
        access(SUP, Reach::Team, Reach::None),
        access(HQ, Reach::Any, Reach::None),
        access(ADMIN, Reach::Any, Reach::None),
    ],
    writes: &[],
    archive: None,
    refs: &[
        refers("rep_id", Target::Rep),
        refers("changed_by", Target::Author),
    ],
};

/// Training courses.
pub static COURSES: Collection = Collection {
    name: "courses",
    kind: Kind::Entity,
    anchor: Anchor::Public,
    fields: &[
        field("title", SHORT, Lww).required(),
        field(
            "kind",
            Enum(&["onboarding", "product", "sales", "service", "seminar"]),
            Lww,
        )
        .required(),
        field("hours", Number(0.0, 1000.0), Lww).required(),
        field("required_for", List(&ROLES, 4), Lww),
    ],
    access: HQ_ONLY,
    writes: &[],
    archive: None,
    refs: &[],
};

/// A course assigned to a rep, with a due date.
pub static TRAINING_ASSIGNMENTS: Collection = Collection {
    name: "training_assignments",
    kind: Kind::Workflow,
    anchor: Anchor::User("rep_id"),
    fields: &[
        field("rep_id", Ref("users"), Fact).required(),
        field("course_id", Ref("courses"), Fact).required(),
        field("due", Date, Lww).required(),
        field(
            "status",
            Enum(&["assigned", "completed", "waived"]),
            Transition(&TRAINING_STATUS),
        ),
        field("completed_at", Timestamp, WriteOnce),
        field("score", Int(0, 100), WriteOnce),
        field("evidence", Text(1000), WriteOnce),
    ],
    access: MANAGED,
    // The due date is the assigner's; the rep completes.
    writes: &[rule("due", BY_MANAGERS)],
    archive: Some(BY_MANAGERS),
    refs: ABOUT_A_REP,
};

/// A rep's weekly or monthly work report.
pub static WORK_REPORTS: Collection = Collection {
    name: "work_reports",
    kind: Kind::Fact,
    anchor: Anchor::User("rep_id"),
    fields: &[
        field("rep_id", Ref("users"), Fact).required(),
        field("kind", Enum(&["weekly", "monthly"]), Fact).required(),
        field("period", PERIOD, Fact).required(),
        field("written_at", Timestamp, Fact).required(),
        field("summary", LONG, Fact).required(),
        field("market", LONG, Fact),
        field("issues", LONG, Fact),
        field("plan", LONG, Fact),
        field("visits", Int(0, 1_000_000), Fact),
        field("customers_visited", Int(0, 1_000_000), Fact),
        field("sales", Money(false), Fact),
        field("feedback", Int(0, 1_000_000), Fact),
        field("supervisor_comment", LONG, Lww),
    ],
    access: &[
        access(REP, Reach::Own, Reach::None),
        access(SUP, Reach::None, Reach::Team),
        access(HQ, Reach::None, Reach::Any),
        access(ADMIN, Reach::None, Reach::Any),
    ],
    writes: &[rule("supervisor_comment", BY_MANAGERS)],
    archive: None,
    refs: ABOUT_A_REP,
};

/// A supervisor's one-on-one with a rep.
pub static ONE_ON_ONES: Collection = Collection {
    name: "one_on_ones",
    kind: Kind::Workflow,
    anchor: Anchor::User("rep_id"),
    fields: &[
        field("rep_id", Ref("users"), Fact).required(),
        field("held_at", Timestamp, Fact).required(),
        field("notes", LONG, Lww).required(),
        field("actions", List(&Text(500), 20), Lww),
        field("snapshot", LONG, Fact),
        field(
            "status",
            Enum(&["held", "acknowledged"]),
            Transition(&ONE_ON_ONE_STATUS),
        ),
    ],
    access: MANAGED,
    // The notes are the supervisor's; the rep acknowledges them.
    writes: &[rule("notes", BY_MANAGERS), rule("actions", BY_MANAGERS)],
    archive: Some(BY_MANAGERS),
    refs: ABOUT_A_REP,
};

/// An action item agreed in a one-on-one: owner, due date and done state.
pub static ONE_ON_ONE_ACTIONS: Collection = Collection {
    name: "one_on_one_actions",
    kind: Kind::Entity,
    anchor: Anchor::User("rep_id"),
    fields: &[
        field("one_on_one_id", Ref("one_on_ones"), Fact).required(),
        field("rep_id", Ref("users"), Fact).required(),
        field("text", Text(500), Lww).required(),
        field("owner_id", Ref("users"), Lww).required(),
        field("due", Date, Lww).required(),
        field("done", Bool, Lww),
        field("done_at", Timestamp, Lww),
    ],
    access: MANAGED,
    // The rep marks an action done; what it is and when it is due are the supervisor's.
    writes: &[
        rule("text", BY_MANAGERS),
        rule("owner_id", BY_MANAGERS),
        rule("due", BY_MANAGERS),
    ],
    archive: Some(BY_MANAGERS),
    refs: ABOUT_A_REP,
};

/// A period's performance evaluation.
pub static EVALUATIONS: Collection = Collection {
    name: "evaluations",
    kind: Kind::Workflow,
    anchor: Anchor::User("rep_id"),
    fields: &[
        field("rep_id", Ref("users"), Fact).required(),
        field("period", PERIOD, Fact).required(),
        field("template_version", Int(1, 1_000_000), Fact),
        field("template_id", Ref("evaluation_templates"), Fact),
        field("lines", LONG, Lww),
        field("metric_score", Number(0.0, 100.0), Lww),
        field("attainment", Number(0.0, 1e9), Lww),
        field("rating", Int(1, 5), Lww),
        field("comment", LONG, Lww),
        field("rep_comment", LONG, Lww),
        field("score", Number(0.0, 100.0), Lww),
        field("tier", Text(100), Lww),
        field("calibration_reason", LONG, Lww),
        field(
            "status",
            Enum(&["draft", "submitted", "acknowledged", "disputed", "final"]),
            Transition(&EVALUATION_STATUS),
        ),
    ],
    access: MANAGED,
    // The evaluator fills the draft, the rep answers it, HQ calibrates it.
    writes: &[
        rule("lines", BY_EVALUATOR),
        rule("metric_score", BY_EVALUATOR),
        rule("attainment", BY_EVALUATOR),
        rule("rating", BY_EVALUATOR),
        rule("comment", BY_EVALUATOR),
        rule("score", BY_EVALUATOR_OR_CALIBRATION),
        rule("tier", BY_EVALUATOR_OR_CALIBRATION),
        rule(
            "calibration_reason",
            &[
                grant(HQ, Reach::Any, CALIBRATION),
                grant(ADMIN, Reach::Any, CALIBRATION),
            ],
        ),
        rule("rep_comment", &[grant(REP, Reach::Own, &["submitted"])]),
    ],
    // A supervisor discards drafts; only HQ removes a submitted evaluation.
    archive: Some(&[
        grant(SUP, Reach::Team, &["draft"]),
        grant(HQ, Reach::Any, &[]),
        grant(ADMIN, Reach::Any, &[]),
    ]),
    refs: ABOUT_A_REP,
};

/// A reward granted to a rep.
pub static REWARDS: Collection = Collection {
    name: "rewards",
    kind: Kind::Fact,
    anchor: Anchor::User("rep_id"),
    fields: &[
        field("rep_id", Ref("users"), Fact).required(),
        field(
            "kind",
            Enum(&["bonus", "recognition", "promotion", "development"]),
            Fact,
        )
        .required(),
        field("amount", Money(true), Fact),
        field("period", PERIOD, Fact),
        field("reason", LONG, Fact).required(),
        field("granted_at", Timestamp, Fact).required(),
    ],
    access: &[
        access(REP, Reach::None, Reach::None),
        access(SUP, Reach::Team, Reach::None),
        access(HQ, Reach::Any, Reach::None),
        access(ADMIN, Reach::Any, Reach::None),
    ],
    writes: &[rule("amount", BY_MANAGERS)],
    archive: None,
    refs: ABOUT_A_REP,
};

/// Incentive tiers by score or attainment.
pub static INCENTIVE_PLANS: Collection = Collection {
    name: "incentive_plans",
    kind: Kind::Entity,
    anchor: Anchor::Public,
    fields: &[
        field("name", SHORT, Lww).required(),
        field("basis", Enum(&["score", "attainment"]), Lww).required(),
        field("tiers", List(&Text(200), 20), Lww).required(),
        field("active", Bool, Lww),
        field("target", Number(0.0, 1e9), Lww),
        field("currency", Text(3), Lww),
    ],
    access: HQ_ONLY,
    writes: &[],
    archive: None,
    refs: &[],
};

/// Evaluation templates: the weighted metric lines (`METRIC:WEIGHT[:RULE[:TARGET]]`)
/// and the rating's weight, for one team or (without `team_id`) the default.
/// Every edit is a new record with the next version, so an evaluation keeps
/// exactly the template it used.
pub static EVALUATION_TEMPLATES: Collection = Collection {
    name: "evaluation_templates",
    kind: Kind::Fact,
    anchor: Anchor::Public,
    fields: &[
        field("team_id", Ref("teams"), Fact),
        field("version", Int(1, 1_000_000), Fact).required(),
        field("lines", List(&Text(200), 12), Fact).required(),
        field("rating_weight", Number(0.0, 100.0), Fact).required(),
        field("note", Text(1000), Fact),
        field("created_at", Timestamp, Fact).required(),
    ],
    access: &[
        access(HQ, Reach::Any, Reach::None),
        access(ADMIN, Reach::Any, Reach::None),
    ],
    writes: &[],
    archive: None,
    refs: &[],
};

/// Improvement actions, checked for effect.
pub static IMPROVEMENT_ACTIONS: Collection = Collection {
    name: "improvement_actions",
    kind: Kind::Workflow,
    anchor: Anchor::UserOrTeam("rep_id", "team_id"),
    fields: &[
        field("rep_id", Ref("users"), Fact),
        field("team_id", Ref("teams"), Fact),
        field("problem", LONG, Fact).required(),
        field("action", LONG, Lww).required(),
        field("owner_id", Ref("users"), Lww).required(),
        field("due", Date, Lww).required(),
        field("metric", METRIC, Fact).required(),
        field("baseline", Number(-1e12, 1e12), Fact),
        field("check_on", Date, Lww),
        field("measured", Number(-1e12, 1e12), Lww),
        field("verdict", Enum(&["improved", "no_change", "worse"]), Lww),
        field("window_days", Int(1, 366), Fact),
        field("created_at", Timestamp, Fact),
        field("reviewed_at", Timestamp, Lww),
        field(
            "status",
            Enum(&["open", "closed"]),
            Transition(&ACTION_STATUS),
        ),
    ],
    access: MANAGED,
    // The rep measures and closes their own action; its terms are the manager's.
    writes: &[
        rule("action", BY_MANAGERS),
        rule("owner_id", BY_MANAGERS),
        rule("due", BY_MANAGERS),
        rule("check_on", BY_MANAGERS),
    ],
    archive: Some(BY_MANAGERS),
    refs: ABOUT_A_REP,
};

/// The user directory (accounts themselves live on the server).
pub static USERS: Collection = Collection {
    name: "users",
    kind: Kind::Entity,
    anchor: Anchor::Public,
    fields: &[
        field("username", Text(64), Fact).required(),
        field("display_name", SHORT, Lww),
        field("role", ROLES, Lww).required(),
        field("team_id", Ref("teams"), Lww),
        field("supervisor_id", Ref("users"), Lww),
        field("active", Bool, Lww),
    ],
    // Written by the server from the admin endpoints, never by a push.
    access: &[],
    writes: &[],
    archive: None,
    refs: &[],
};

/// Teams of reps.
pub static TEAMS: Collection = Collection {
    name: "teams",
    kind: Kind::Entity,
    anchor: Anchor::Public,
    fields: &[
        field("name", SHORT, Lww).required(),
        field("region", SHORT, Lww),
        field("supervisor_id", Ref("users"), Lww),
    ],
    // Written by the server from the admin endpoints, never by a push.
    access: &[],
    writes: &[],
    archive: None,
    refs: &[],
};

/// Every collection, in the order documentation lists them.
pub static ALL: &[&Collection] = &[
    &CUSTOMERS,
    &VISITS,
    &FEEDBACK,
    &SALES,
    &GOALS,
    &GOAL_CHANGES,
    &COURSES,
    &TRAINING_ASSIGNMENTS,
    &WORK_REPORTS,
    &ONE_ON_ONES,
    &ONE_ON_ONE_ACTIONS,
    &EVALUATIONS,
    &EVALUATION_TEMPLATES,
    &REWARDS,
    &INCENTIVE_PLANS,
    &IMPROVEMENT_ACTIONS,
    &USERS,
    &TEAMS,
];
