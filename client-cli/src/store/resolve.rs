//! Naming records on the command line: a full id, a unique id prefix, or
//! (customers) a unique name, case-insensitive. Ambiguity is an error that
//! lists the candidates.

use super::{Rec, Store};
use crate::error::Failure;
use anyhow::Result;
use std::collections::HashMap;
use std::fmt::Write as _;
use sync_protocol::RecordId;

/// Shortest displayed prefix, in hex digits.
const MIN_SHORT: usize = 8;

/// An ambiguous id prefix lists at most this many candidates.
const CANDIDATES_SHOWN: usize = 20;

/// Up to this many ids, [`Store::shortener_for`] looks up neighbours
/// (two index seeks per id, a few microseconds each) instead of reading
/// every id of the collection (about 0.2 s for 100,000 visits).
const NEIGHBOURS_UP_TO: usize = 5_000;

fn hex(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Unique short forms of the ids of one collection (like git's short hashes).
pub struct Shortener {
    short: HashMap<String, String>,
}

impl Shortener {
    /// Short forms for `ids`.
    pub fn new<'a>(ids: impl IntoIterator<Item = &'a RecordId>) -> Self {
        let mut all: Vec<(String, String)> = ids
            .into_iter()
            .map(|id| (hex(&id.to_string()), id.to_string()))
            .collect();
        all.sort();
        all.dedup();
        let lcp = |a: &str, b: &str| a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
        let mut short = HashMap::new();
        for i in 0..all.len() {
            let mut need = MIN_SHORT;
            if i > 0 {
                need = need.max(lcp(&all[i].0, &all[i - 1].0) + 1);
            }
            if i + 1 < all.len() {
                need = need.max(lcp(&all[i].0, &all[i + 1].0) + 1);
            }
            let full = &all[i].1;
            let mut digits = 0;
            let mut cut = full.len();
            for (pos, c) in full.char_indices() {
                if digits == need {
                    cut = pos;
                    break;
                }
                if c != '-' {
                    digits += 1;
                }
            }
            short.insert(full.clone(), full[..cut].trim_end_matches('-').to_owned());
        }
        Self { short }
    }

    /// The short form of an id (the full id when unknown).
    pub fn get(&self, id: &RecordId) -> String {
        let s = id.to_string();
        self.short.get(&s).cloned().unwrap_or(s)
    }
}

impl Store {
    /// Short forms for every id of a collection.
    pub fn shortener(&self, collection: &str) -> Result<Shortener> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM records WHERE collection = ?1")?;
        let ids: Vec<RecordId> = stmt
            .query_map([collection], |r| r.get::<_, String>(0))?
            .filter_map(|r| r.ok()?.parse().ok())
            .collect();
        Ok(Shortener::new(ids.iter()))
    }

    /// Short forms for `ids` of a collection, as [`Store::shortener`] gives
    /// them. A short form depends only on an id's two neighbours in id
    /// order, so a few ids are shortened with their neighbours (two index
    /// seeks each) instead of reading the whole collection.
    pub fn shortener_for(
        &self,
        collection: &str,
        ids: impl IntoIterator<Item = RecordId>,
    ) -> Result<Shortener> {
        let ids: Vec<RecordId> = ids.into_iter().collect();
        if ids.len() > NEIGHBOURS_UP_TO {
            return self.shortener(collection);
        }
        let mut near = ids.clone();
        for id in &ids {
            near.extend(self.neighbours(collection, id)?);
        }
        Ok(Shortener::new(near.iter()))
    }

    /// A customer by id, unique id prefix, or unique name.
    pub fn resolve_customer(&self, query: &str) -> Result<Rec> {
        self.resolve("customers", "customer", query, true)
    }

    /// A record of `collection` by id or unique id prefix.
    pub fn resolve_record(&self, collection: &str, noun: &str, query: &str) -> Result<Rec> {
        self.resolve(collection, noun, query, false)
    }

    /// An exact id, then (customers) a name, then an id prefix. Ids are
    /// looked up in the id index: a laptop may hold 100,000 visits, and
    /// reading every one to find one took seconds.
    fn resolve(&self, collection: &str, noun: &str, query: &str, by_name: bool) -> Result<Rec> {
        let q = query.trim();
        if let Some(r) = self.get_in(collection, &q.to_ascii_lowercase())? {
            return Ok(r);
        }
        if by_name {
            let all = self.list(collection)?;
            // An exact name first, then a unique start of a name.
            let ql = q.to_lowercase();
            let exact = |r: &&Rec| r.str("name").is_some_and(|n| n.trim().to_lowercase() == ql);
            let starts = |r: &&Rec| {
                r.str("name")
                    .is_some_and(|n| n.trim().to_lowercase().starts_with(&ql))
            };
            for pick in [&exact as &dyn Fn(&&Rec) -> bool, &starts] {
                let named: Vec<&Rec> = all.iter().filter(|r| pick(r)).collect();
                let active: Vec<&Rec> = named.iter().copied().filter(|r| !r.archived).collect();
                let named = if active.is_empty() { named } else { active };
                match named.len() {
                    1 => return Ok(named[0].clone()),
                    0 => {}
                    n => return Err(self.ambiguous(collection, noun, q, n as u64, &named)?),
                }
            }
        }
        let hq = hex(q);
        if hq.len() >= 4 && hq.chars().all(|c| c.is_ascii_hexdigit()) {
            let (count, mut hits) =
                self.with_id_prefix(collection, &dashed(&hq), CANDIDATES_SHOWN)?;
            match count {
                1 if hits.len() == 1 => return Ok(hits.remove(0)),
                0 => {}
                n => {
                    let hits: Vec<&Rec> = hits.iter().collect();
                    return Err(self.ambiguous(collection, noun, q, n, &hits)?);
                }
            }
        }
        let list_cmd = match collection {
            "customers" => format!("fieldsync customer list --search {}", shell_word(q)),
            "visits" => "fieldsync visit list".to_owned(),
            "sales" => "fieldsync sale list".to_owned(),
            _ => format!("fieldsync {noun} list"),
        };
        let what = if by_name {
            "id, id prefix or name"
        } else {
            "id or id prefix"
        };
        Err(
            Failure::new(format!("no {noun} matches {q:?} (looked for an {what})"))
                .code("not_found")
                .hint(format!("see the {noun}s you have: {list_cmd}"))
                .into(),
        )
    }

    /// The error for a query that names `total` records: the first of
    /// them (`hits`), each with its short id and a label.
    fn ambiguous(
        &self,
        collection: &str,
        noun: &str,
        q: &str,
        total: u64,
        hits: &[&Rec],
    ) -> Result<anyhow::Error> {
        let short = self.shortener_for(collection, hits.iter().map(|r| r.id))?;
        let mut msg = format!("{q:?} matches {total} {noun}s:");
        for r in hits {
            let label = r
                .str("name")
                .or_else(|| r.str("product"))
                .or_else(|| r.str("purpose"))
                .or_else(|| r.str("text"))
                .unwrap_or("");
            let _ = write!(msg, "\n  {}  {label}", short.get(&r.id));
        }
        let more = total.saturating_sub(hits.len() as u64);
        if more > 0 {
            let _ = write!(msg, "\n  … and {more} more");
        }
        Ok(Failure::new(msg)
            .code("ambiguous")
            .hint(format!("name the {noun} by a longer id prefix"))
            .into())
    }
}

/// An id prefix given as hex digits, in the stored form of ids (dashes
/// after the 8th, 12th, 16th and 20th digit).
fn dashed(hex_digits: &str) -> String {
    let mut out = String::with_capacity(hex_digits.len() + 4);
    for (i, c) in hex_digits.chars().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        out.push(c);
    }
    out
}

fn shell_word(s: &str) -> String {
    if s.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_are_unique_and_at_least_eight_digits() {
        let first: RecordId = "01937a00-0000-7000-8000-000000000001".parse().unwrap();
        let second: RecordId = "01937a00-0000-7000-8000-000000000002".parse().unwrap();
        let other: RecordId = "ffff0000-0000-7000-8000-000000000002".parse().unwrap();
        let short = Shortener::new([&first, &second, &other]);
        assert_eq!(short.get(&other), "ffff0000");
        assert_eq!(short.get(&first), first.to_string());
        assert_ne!(short.get(&first), short.get(&second));
        let near: RecordId = "01937a00-0000-7000-9000-000000000002".parse().unwrap();
        let short = Shortener::new([&first, &near]);
        assert_eq!(short.get(&first), "01937a00-0000-7000-8");
    }

    #[test]
    fn a_few_ids_shorten_as_in_the_whole_collection() {
        let dir = tempfile::tempdir().unwrap();
        let profile = crate::config::Profile::locate(Some(dir.path().to_path_buf())).unwrap();
        let store = Store::open(&profile, None).unwrap();
        // Ids sharing long prefixes, of two collections interleaved.
        let ids: Vec<RecordId> = (0..40u128)
            .map(|i| {
                RecordId(uuid::Uuid::from_u128(
                    (0x0193_7a00_u128 << 96) + i * i * 977,
                ))
            })
            .collect();
        for (i, id) in ids.iter().enumerate() {
            let collection = if i % 3 == 0 { "sales" } else { "visits" };
            store
                .conn
                .execute(
                    "INSERT INTO records (id, collection, pending, state) VALUES (?1, ?2, 1, '{}')",
                    rusqlite::params![id.to_string(), collection],
                )
                .unwrap();
        }
        let visits: Vec<RecordId> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, id)| *id)
            .collect();
        let whole = store.shortener("visits").unwrap();
        for pick in [&visits[..1], &visits[5..9], &visits[visits.len() - 2..]] {
            let few = store.shortener_for("visits", pick.iter().copied()).unwrap();
            for id in pick {
                assert_eq!(few.get(id), whole.get(id), "{id}");
                assert_eq!(store.short_id("visits", id).unwrap(), whole.get(id));
            }
        }
    }
}
