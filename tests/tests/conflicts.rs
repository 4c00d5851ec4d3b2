//! End-to-end: concurrent edits of one field on two laptops, with the real
//! binaries. The value that loses is a conflict on its author's laptop and
//! in the supervisor's review, whichever laptop syncs first; a sequential
//! edit is none; `resolve --keep mine` does not come back as a new one; a
//! laptop whose clock runs days ahead (under `faketime`) cannot overwrite a
//! later edit silently. Each test runs on both stores.

use fieldsync_e2e::{ADMIN_PASSWORD, Device, StoreKind, TestServer, on_both_stores, stderr};
use serde_json::Value;

const PW: &str = "correct horse battery";

/// A supervisor and her rep, with the rep's customer Acme on both laptops.
struct Team {
    server: TestServer,
    sup: Device,
    rep: Device,
}

impl Team {
    fn new(store: StoreKind) -> Self {
        let server = TestServer::start_on(store).expect("server");
        let admin = Device::new("admin").unwrap();
        admin.login(&server.url(), "admin", ADMIN_PASSWORD);
        admin.ok(&["admin", "team", "add", "north"]);
        let sup = admin.add_user(
            &server.url(),
            "wang.sup",
            "supervisor",
            (Some("north"), None),
            PW,
        );
        let rep = admin.add_user(
            &server.url(),
            "li.rep",
            "rep",
            (Some("north"), Some("wang.sup")),
            PW,
        );
        rep.ok(&["customer", "add", "Acme", "--phone", "021-0000"]);
        rep.ok(&["sync"]);
        sup.ok(&["sync"]);
        Self { server, sup, rep }
    }
}

fn list(d: &Device, args: &[&str]) -> Vec<Value> {
    d.json(args).as_array().cloned().unwrap_or_default()
}

fn phone(d: &Device) -> Value {
    d.json(&["customer", "show", "Acme"])["customer"]["phone"].clone()
}

on_both_stores!(
    the_losing_phone_is_a_conflict_on_its_laptop_whichever_syncs_first,
    a_sequential_edit_is_no_conflict,
    a_laptop_days_ahead_never_silently_overwrites_a_later_edit,
);

fn the_losing_phone_is_a_conflict_on_its_laptop_whichever_syncs_first(store: StoreKind) {
    for rep_first in [true, false] {
        let t = Team::new(store);
        // Both offline; the supervisor's edit comes a little later.
        t.rep
            .ok(&["customer", "edit", "Acme", "--phone", "021-1111"]);
        t.sup
            .ok(&["customer", "edit", "Acme", "--phone", "021-2222"]);
        if rep_first {
            t.rep.ok(&["sync"]);
            t.sup.ok(&["sync"]);
            t.rep.ok(&["sync"]);
        } else {
            t.sup.ok(&["sync"]);
            t.rep.ok(&["sync"]);
        }
        let why = format!("rep synced first: {rep_first}");
        assert_eq!(phone(&t.rep), "021-2222", "{why}");
        let mine = list(&t.rep, &["conflicts", "list"]);
        assert_eq!(mine.len(), 1, "{why}: {mine:?}");
        assert_eq!(mine[0]["field"], "phone");
        assert_eq!(
            (&mine[0]["mine"], &mine[0]["theirs"], &mine[0]["winner"]),
            (
                &Value::from("021-1111"),
                &Value::from("021-2222"),
                &Value::from("wang.sup")
            ),
            "{why}"
        );
        assert!(list(&t.sup, &["conflicts", "list"]).is_empty(), "{why}");
        let review = list(&t.sup, &["admin", "conflicts"]);
        assert_eq!(review.len(), 1, "{why}: {review:?}");
        assert_eq!(review[0]["loser"]["username"], "li.rep");
        assert_eq!(review[0]["winner"]["username"], "wang.sup");
        let table = t.sup.ok(&["admin", "conflicts"]);
        assert!(
            table.contains("li.rep") && table.contains("021-1111"),
            "{table}"
        );

        // The rep keeps hers: a sequential edit over the winner, so no new
        // conflict anywhere, and the review is empty once she has synced.
        let n = mine[0]["id"].to_string();
        t.rep.ok(&["conflicts", "resolve", &n, "--keep", "mine"]);
        t.rep.ok(&["sync"]);
        t.sup.ok(&["sync"]);
        assert_eq!(phone(&t.sup), "021-1111", "{why}");
        assert!(list(&t.rep, &["conflicts", "list"]).is_empty(), "{why}");
        assert!(list(&t.sup, &["conflicts", "list"]).is_empty(), "{why}");
        assert!(list(&t.sup, &["admin", "conflicts"]).is_empty(), "{why}");
        let all = list(&t.rep, &["conflicts", "list", "--all"]);
        assert_eq!(all.len(), 1, "{why}: {all:?}");
        assert_eq!(all[0]["resolution"], "mine");
    }
}

fn a_sequential_edit_is_no_conflict(store: StoreKind) {
    let t = Team::new(store);
    t.rep
        .ok(&["customer", "edit", "Acme", "--phone", "021-1111"]);
    t.rep.ok(&["sync"]);
    t.sup.ok(&["sync"]);
    // The supervisor has seen the rep's phone and changes it.
    t.sup
        .ok(&["customer", "edit", "Acme", "--phone", "021-2222"]);
    t.sup.ok(&["sync"]);
    t.rep.ok(&["sync"]);
    assert_eq!(phone(&t.rep), "021-2222");
    assert!(list(&t.rep, &["conflicts", "list"]).is_empty());
    assert!(list(&t.sup, &["admin", "conflicts"]).is_empty());
    // Settling "theirs" on one laptop reaches the rep's other laptop.
    t.rep
        .ok(&["customer", "edit", "Acme", "--phone", "021-4444"]);
    t.sup
        .ok(&["customer", "edit", "Acme", "--phone", "021-3333"]);
    let other = Device::new("li-tablet").unwrap();
    other.login(&t.server.url(), "li.rep", PW);
    t.rep.ok(&["sync"]);
    t.sup.ok(&["sync"]);
    other.ok(&["sync"]);
    t.rep.ok(&["sync"]);
    assert_eq!(list(&t.rep, &["conflicts", "list"]).len(), 1);
    let on_other = list(&other, &["conflicts", "list"]);
    assert_eq!(on_other.len(), 1, "{on_other:?}");
    assert_eq!(on_other[0]["mine"], "021-4444");
    let n = on_other[0]["id"].to_string();
    other.ok(&["conflicts", "resolve", &n, "--keep", "theirs"]);
    other.ok(&["sync"]);
    assert!(list(&t.sup, &["admin", "conflicts"]).is_empty());
    let out = t.rep.run(&["sync"]);
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("settled on another"), "{said}");
    let here = list(&t.rep, &["conflicts", "list", "--all"]);
    assert_eq!(here.len(), 1, "{here:?}");
    assert_eq!(here[0]["resolution"], "elsewhere");
}

/// A laptop whose clock runs three days ahead edits the phone; the
/// supervisor, with a right clock, edits it later and syncs first. The
/// server re-stamps the far-future op with its own clock, so it wins by
/// clock, but it had not seen the supervisor's value: that is a conflict
/// like any other (the supervisor's laptop and the review show it), never
/// a silent lost update.
fn a_laptop_days_ahead_never_silently_overwrites_a_later_edit(store: StoreKind) {
    let t = Team::new(store);
    t.rep.set_clock(Some("+3d"));
    t.rep
        .ok(&["customer", "edit", "Acme", "--phone", "021-1111"]);
    t.sup
        .ok(&["customer", "edit", "Acme", "--phone", "021-2222"]);
    t.sup.ok(&["sync"]);
    let out = t.rep.run(&["sync"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("clock is 71 h ahead"),
        "{}",
        stderr(&out)
    );
    t.sup.ok(&["sync"]);
    let (on_rep, on_sup) = (phone(&t.rep), phone(&t.sup));
    assert_eq!(on_rep, on_sup, "the laptops agree");
    let review = list(&t.sup, &["admin", "conflicts"]);
    assert_eq!(review.len(), 1, "{review:?}");
    assert_eq!(review[0]["field"], "phone");
    // The re-stamped op won by the server's clock; the supervisor's value,
    // which it had not seen, is the supervisor's conflict.
    assert_eq!(on_sup, "021-1111");
    let mine = list(&t.sup, &["conflicts", "list"]);
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(
        (&mine[0]["mine"], &mine[0]["theirs"]),
        (&Value::from("021-2222"), &Value::from("021-1111"))
    );
    assert!(list(&t.rep, &["conflicts", "list"]).is_empty());
}
