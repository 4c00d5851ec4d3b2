//! Validation of ops against the collection schemas. The server runs every
//! check here before applying an op; the CLI runs the same checks before
//! writing to its outbox, so both report the same codes.

use crate::error::{ErrorCode as E, ValidationError};
use crate::geo::LatLon;
use crate::merge::RecordState;
use crate::money::Money;
use crate::op::{Op, OpKind, StateChange};
use crate::schema::{self, Collection, Field, FieldType, Move, Policy, Relation, Role, rules};
use crate::time::{parse_date, parse_ts};
use crate::version::{MIN_SCHEMA_VERSION, SCHEMA_VERSION};
use serde_json::Value;

/// Who wrote an op: a device, or the server computing `server_only` fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Author {
    /// A user's device.
    Device,
    /// The server itself.
    Server,
}

/// Check one value against its field's type and limits.
pub fn validate_value(field: &Field, value: &Value) -> Result<(), ValidationError> {
    check_type(field.name, &field.ty, value)
}

fn check_type(name: &str, ty: &FieldType, v: &Value) -> Result<(), ValidationError> {
    let err = |code, msg: String| Err(ValidationError::field(code, name, msg));
    let wrong = |what: &str| {
        err(
            E::WrongType,
            format!("{name} must be {what}, got {}", kind_of(v)),
        )
    };
    match *ty {
        FieldType::Text(max) => {
            let Some(s) = v.as_str() else {
                return wrong("text");
            };
            let n = s.chars().count();
            if n > max {
                return err(
                    E::TooLong,
                    format!("{name} is {n} characters long; at most {max} are allowed"),
                );
            }
        }
        FieldType::Int(lo, hi) => {
            let Some(i) = v.as_i64() else {
                return wrong("a whole number");
            };
            if i < lo || i > hi {
                return err(
                    E::OutOfRange,
                    format!("{name} must be between {lo} and {hi}, got {i}"),
                );
            }
        }
        FieldType::Number(lo, hi) => {
            let Some(x) = v.as_f64().filter(|x| x.is_finite()) else {
                return wrong("a number");
            };
            if x < lo || x > hi {
                return err(
                    E::OutOfRange,
                    format!("{name} must be between {lo} and {hi}, got {x}"),
                );
            }
        }
        FieldType::Money(positive) => {
            let m: Money = match serde_json::from_value(v.clone()) {
                Ok(m) => m,
                Err(e) => {
                    return err(
                        E::InvalidMoney,
                        format!(
                            "{name} must be {{\"minor\": integer, \"currency\": \"CNY\"}}: {e}"
                        ),
                    );
                }
            };
            if positive && m.minor <= 0 {
                return err(
                    E::InvalidMoney,
                    format!("{name} must be more than zero, got {m}"),
                );
            }
        }
        FieldType::Timestamp => {
            if v.as_str().and_then(parse_ts).is_none() {
                return err(
                    E::InvalidTimestamp,
                    format!(
                        "{name} must be an RFC 3339 timestamp such as 2026-11-28T09:30:00Z, got {v}"
                    ),
                );
            }
        }
        FieldType::Date => {
            if v.as_str().and_then(parse_date).is_none() {
                return err(
                    E::InvalidDate,
                    format!("{name} must be a date YYYY-MM-DD, got {v}"),
                );
            }
        }
        FieldType::Enum(values) => {
            let Some(s) = v.as_str() else {
                return wrong("text");
            };
            if !values.contains(&s) {
                return err(
                    E::NotInEnum,
                    format!("{name} must be one of {}, got {s:?}", values.join(", ")),
                );
            }
        }
        FieldType::LatLon => {
            let p: Option<LatLon> = serde_json::from_value(v.clone()).ok();
            let extra = v.as_object().is_some_and(|o| o.len() != 2);
            if extra || !p.is_some_and(|p| p.is_valid()) {
                return err(
                    E::InvalidCoordinates,
                    format!("{name} must be {{\"lat\": -90..90, \"lon\": -180..180}}, got {v}"),
                );
            }
        }
        FieldType::Ref(target) => {
            if v.as_str()
                .and_then(|s| uuid::Uuid::try_parse(s).ok())
                .is_none()
            {
                return err(
                    E::InvalidId,
                    format!("{name} must be the id of a {target} record, got {v}"),
                );
            }
        }
        FieldType::Bool => {
            if !v.is_boolean() {
                return wrong("true or false");
            }
        }
        FieldType::List(inner, max) => {
            let Some(items) = v.as_array() else {
                return wrong("a list");
            };
            if items.len() > max {
                return err(
                    E::TooLong,
                    format!(
                        "{name} has {} items; at most {max} are allowed",
                        items.len()
                    ),
                );
            }
            for item in items {
                check_type(name, inner, item)?;
            }
        }
    }
    Ok(())
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Check an op on its own: schema version, collection, shape, field names,
/// policies and values. Returns the op's collection.
pub fn validate_op(op: &Op, author: Author) -> Result<&'static Collection, ValidationError> {
    if op.schema_version > SCHEMA_VERSION || op.schema_version < MIN_SCHEMA_VERSION {
        return Err(ValidationError::new(
            E::UnsupportedSchemaVersion,
            format!(
                "op uses schema version {}; this side understands {MIN_SCHEMA_VERSION}..={SCHEMA_VERSION}",
                op.schema_version
            ),
        ));
    }
    if op.device_seq == 0 {
        return Err(ValidationError::new(E::InvalidOp, "device_seq starts at 1"));
    }
    let coll = schema::collection(&op.collection).ok_or_else(|| {
        ValidationError::new(
            E::UnknownCollection,
            format!("there is no collection named {:?}", op.collection),
        )
    })?;
    if op.kind != OpKind::Transition && op.transition.is_some() {
        return Err(ValidationError::new(
            E::InvalidOp,
            format!("a {} op cannot carry a transition", op.kind.as_str()),
        ));
    }
    for name in op.fields.keys() {
        if coll.field(name).is_none() {
            return Err(ValidationError::field(
                E::UnknownField,
                name,
                format!("{} has no field named {name:?}", coll.name),
            ));
        }
    }
    validate_base(op)?;
    match op.kind {
        OpKind::Create => validate_create(op, coll, author)?,
        OpKind::Patch => {
            if op.fields.is_empty() {
                return Err(ValidationError::new(
                    E::InvalidOp,
                    "a patch must change at least one field",
                ));
            }
            validate_changes(op, coll, author)?;
        }
        OpKind::Transition => {
            validate_transition_shape(op, coll)?;
            validate_changes(op, coll, author)?;
        }
        OpKind::Archive => {
            if !op.fields.is_empty() {
                return Err(ValidationError::new(
                    E::InvalidOp,
                    "an archive op carries no fields",
                ));
            }
        }
    }
    Ok(coll)
}

/// Base clocks (see [`crate::op::Bases`]) only on patches and transitions,
/// only for fields the op writes, and each older than the op itself (a
/// device's clock is past every value it has seen).
fn validate_base(op: &Op) -> Result<(), ValidationError> {
    let Some(base) = &op.base else {
        return Ok(());
    };
    if matches!(op.kind, OpKind::Create | OpKind::Archive) && !base.is_empty() {
        return Err(ValidationError::new(
            E::InvalidOp,
            format!(
                "a {} op carries no base clocks: it overwrites no value",
                op.kind.as_str()
            ),
        ));
    }
    for (name, hlc) in base {
        let written = op.fields.contains_key(name)
            || op.transition.as_ref().is_some_and(|t| t.field == *name);
        if !written {
            return Err(ValidationError::field(
                E::InvalidOp,
                name,
                format!("base clock for {name:?}, a field the op does not write"),
            ));
        }
        if *hlc >= op.hlc {
            return Err(ValidationError::field(
                E::InvalidOp,
                name,
                format!("the base clock of {name:?} is not older than the op's own clock"),
            ));
        }
    }
    Ok(())
}

fn validate_create(
    op: &Op,
    coll: &'static Collection,
    author: Author,
) -> Result<(), ValidationError> {
    for f in coll.fields {
        let value = op.fields.get(f.name).filter(|v| !v.is_null());
        match (value, f.policy) {
            (Some(_), Policy::ServerOnly) if author == Author::Device => {
                return Err(ValidationError::field(
                    E::ServerOnlyField,
                    f.name,
                    format!("{} is computed by the server", f.name),
                ));
            }
            (Some(v), Policy::Transition(m)) if v.as_str() != Some(m.initial) => {
                return Err(ValidationError::field(
                    E::InvalidTransition,
                    f.name,
                    format!("a new record starts in {} {:?}", f.name, m.initial),
                ));
            }
            (Some(v), _) => {
                validate_value(f, v)?;
                if f.required
                    && matches!(f.ty, FieldType::Text(_))
                    && v.as_str().is_some_and(|s| s.trim().is_empty())
                {
                    return Err(ValidationError::field(
                        E::MissingField,
                        f.name,
                        format!("{} must not be blank", f.name),
                    ));
                }
            }
            (None, _) if f.required => {
                return Err(ValidationError::field(
                    E::MissingField,
                    f.name,
                    format!("{} is required", f.name),
                ));
            }
            (None, _) => {}
        }
    }
    if let schema::Anchor::UserOrTeam(a, b) = coll.anchor {
        let has = |n: &str| op.fields.get(n).is_some_and(|v| !v.is_null());
        if has(a) == has(b) {
            return Err(ValidationError::new(
                E::MissingField,
                format!("exactly one of {a} and {b} must be set"),
            ));
        }
    }
    Ok(())
}

/// Field rules for patch and transition ops.
fn validate_changes(
    op: &Op,
    coll: &'static Collection,
    author: Author,
) -> Result<(), ValidationError> {
    for (name, value) in &op.fields {
        let Some(f) = coll.field(name) else { continue };
        match f.policy {
            Policy::Fact => {
                return Err(ValidationError::field(
                    E::ImmutableField,
                    name,
                    format!("{name} is set when the record is created and cannot change"),
                ));
            }
            Policy::ServerOnly if author == Author::Device => {
                return Err(ValidationError::field(
                    E::ServerOnlyField,
                    name,
                    format!("{name} is computed by the server"),
                ));
            }
            Policy::Transition(_) => {
                return Err(ValidationError::field(
                    E::TransitionOnlyField,
                    name,
                    format!("{name} changes only through a transition"),
                ));
            }
            _ => {}
        }
        if value.is_null() {
            if f.required || f.policy == Policy::WriteOnce {
                return Err(ValidationError::field(
                    E::MissingField,
                    name,
                    format!("{name} cannot be cleared"),
                ));
            }
            continue;
        }
        validate_value(f, value)?;
        if f.required
            && matches!(f.ty, FieldType::Text(_))
            && value.as_str().is_some_and(|s| s.trim().is_empty())
        {
            return Err(ValidationError::field(
                E::MissingField,
                name,
                format!("{name} must not be blank"),
            ));
        }
    }
    Ok(())
}

fn validate_transition_shape(
    op: &Op,
    coll: &'static Collection,
) -> Result<&'static Move, ValidationError> {
    let Some(change) = &op.transition else {
        return Err(ValidationError::new(
            E::InvalidOp,
            "a transition op needs {\"field\", \"from\", \"to\"}",
        ));
    };
    let (field, machine) = coll.transition_field().ok_or_else(|| {
        ValidationError::new(
            E::InvalidTransition,
            format!("{} has no state machine", coll.name),
        )
    })?;
    if change.field != field.name {
        return Err(ValidationError::field(
            E::InvalidTransition,
            &change.field,
            format!("{} changes state through {:?}", coll.name, field.name),
        ));
    }
    let mv = machine.find(&change.from, &change.to).ok_or_else(|| {
        let allowed: Vec<String> = machine
            .moves
            .iter()
            .filter(|m| m.from == change.from)
            .map(|m| m.to.to_owned())
            .collect();
        let hint = if allowed.is_empty() {
            "none".to_owned()
        } else {
            allowed.join(", ")
        };
        ValidationError::field(
            E::InvalidTransition,
            field.name,
            format!(
                "{} cannot move from {:?} to {:?} (allowed from there: {hint})",
                coll.name, change.from, change.to
            ),
        )
    })?;
    for req in mv.requires {
        if op.fields.get(*req).is_none_or(Value::is_null) {
            return Err(ValidationError::field(
                E::MissingField,
                req,
                format!("moving to {:?} requires {req}", change.to),
            ));
        }
    }
    Ok(mv)
}

/// Check an op against the record's current state (admission): creating an
/// existing record, changing a missing or archived one, and stale or
/// unauthorised transitions. `state` is `None` when the record is unknown.
pub fn check_against_state(
    op: &Op,
    coll: &'static Collection,
    state: Option<&RecordState>,
    role: Role,
) -> Result<(), ValidationError> {
    let exists = state.is_some_and(RecordState::exists);
    match op.kind {
        OpKind::Create => return Ok(()),
        _ if !exists => {
            return Err(ValidationError::new(
                E::NotFound,
                format!("{} {} does not exist", coll.name, op.record_id),
            ));
        }
        _ => {}
    }
    let state = state.expect("checked above");
    if state.archived.is_some() && op.kind != OpKind::Archive {
        return Err(ValidationError::new(
            E::Archived,
            format!("{} {} is archived", coll.name, op.record_id),
        ));
    }
    if let (OpKind::Transition, Some(change)) = (op.kind, &op.transition) {
        check_transition(coll, state, change, role)?;
    }
    Ok(())
}

/// Check a transition against the current state and the actor's role.
pub fn check_transition(
    coll: &'static Collection,
    state: &RecordState,
    change: &StateChange,
    role: Role,
) -> Result<(), ValidationError> {
    let current = state.get_str(&change.field).unwrap_or_default();
    if current != change.from {
        return Err(ValidationError::field(
            E::StaleTransition,
            &change.field,
            format!(
                "{} is now {current:?}, not {:?}; the move to {:?} was not applied",
                change.field, change.from, change.to
            ),
        ));
    }
    if let Some((_, machine)) = coll.transition_field()
        && let Some(mv) = machine.find(&change.from, &change.to)
        && !mv.by.contains(&role)
    {
        return Err(ValidationError::field(
            E::Forbidden,
            &change.field,
            format!(
                "a {role} cannot move {} from {:?} to {:?}",
                coll.name, change.from, change.to
            ),
        ));
    }
    Ok(())
}

/// Check an op against the write rules (see [`rules`]): a `role` with
/// relation `rel` to the record, whose current state is `state` (`None` for
/// a new record). Every field the op writes must be writable, and an archive
/// must be allowed.
pub fn check_write(
    op: &Op,
    coll: &'static Collection,
    state: Option<&RecordState>,
    role: Role,
    rel: Relation,
) -> Result<(), ValidationError> {
    let at = rules::write_state(coll, op.kind, |f| state.and_then(|s| s.get_str(f)));
    if op.kind == OpKind::Archive {
        return rules::may_archive(coll, role, rel, at);
    }
    for (name, value) in &op.fields {
        if op.kind == OpKind::Create && value.is_null() {
            continue;
        }
        if let Some(f) = coll.field(name) {
            rules::may_write(coll, f, op.kind, role, rel, at)?;
        }
    }
    Ok(())
}

/// Everything that decides an op once its record's relation to the author
/// is known, in the server's order: the collection's reach
/// ([`rules::may_act`]), the record's state ([`check_against_state`]) and
/// the write rules ([`check_write`]). References are judged after it,
/// against the store.
pub fn check_admission(
    op: &Op,
    coll: &'static Collection,
    state: Option<&RecordState>,
    role: Role,
    rel: Relation,
) -> Result<(), ValidationError> {
    rules::may_act(coll, op.kind, role, rel)?;
    check_against_state(op, coll, state, role)?;
    check_write(op, coll, state, role, rel)
}
