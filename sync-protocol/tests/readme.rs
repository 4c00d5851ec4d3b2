//! The README's table of write rules is the table the code enforces.
//! After changing the rules, `FIELDSYNC_BLESS=1 cargo test -p sync-protocol
//! --test readme` rewrites the README's copy.

use sync_protocol::schema::rules::markdown_table;

const BEGIN: &str = "<!-- write-rules:begin (generated from sync-protocol; see sync-protocol/tests/readme.rs) -->\n";
const END: &str = "<!-- write-rules:end -->";

#[test]
fn the_readme_lists_the_write_rules_the_code_enforces() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let start = readme
        .find(BEGIN)
        .expect("the README marks the write rules")
        + BEGIN.len();
    let end = start + readme[start..].find(END).expect("end marker");
    let table = markdown_table();
    if readme[start..end] == table {
        return;
    }
    if std::env::var_os("FIELDSYNC_BLESS").is_some() {
        let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
        std::fs::write(path, updated).expect("write README.md");
        return;
    }
    panic!(
        "README.md's write rules differ from the code's; run FIELDSYNC_BLESS=1 cargo test -p sync-protocol --test readme\n\n{table}"
    );
}
