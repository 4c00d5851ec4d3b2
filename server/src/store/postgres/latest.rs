//! The latest value per key, in first-write order, with a mark to undo
//! back to: what the write-behind keeps of each table.

use std::collections::HashMap;

/// The latest value per key, in first-write order.
#[derive(Debug)]
pub struct Latest<K, V> {
    rows: Vec<V>,
    at: HashMap<K, usize>,
    /// Since the last [`Latest::mark`]: the values replaced, with their row.
    replaced: Option<Vec<(usize, V)>>,
}

impl<K, V> Default for Latest<K, V> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            at: HashMap::new(),
            replaced: None,
        }
    }
}

impl<K: std::hash::Hash + Eq, V> Latest<K, V> {
    pub(super) fn put(&mut self, key: K, value: V) {
        if let Some(&i) = self.at.get(&key) {
            let old = std::mem::replace(&mut self.rows[i], value);
            if let Some(replaced) = &mut self.replaced {
                replaced.push((i, old));
            }
        } else {
            self.at.insert(key, self.rows.len());
            self.rows.push(value);
        }
    }

    /// The pending value of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.at.get(key).map(|&i| &self.rows[i])
    }

    /// Every pending value.
    pub fn rows(&self) -> &[V] {
        &self.rows
    }

    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Start keeping what later writes replace; the number of rows now.
    pub(super) fn mark(&mut self) -> usize {
        self.replaced = Some(Vec::new());
        self.rows.len()
    }

    /// Back to the state of the [`Latest::mark`] that returned `len`.
    pub(super) fn undo(&mut self, len: usize) {
        for (i, old) in self.replaced.take().unwrap_or_default().into_iter().rev() {
            self.rows[i] = old;
        }
        self.rows.truncate(len);
        self.at.retain(|_, i| *i < len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_keeps_first_order_and_last_value() {
        let mut l = Latest::default();
        l.put(1, "a");
        l.put(2, "b");
        l.put(1, "c");
        assert_eq!(l.rows(), &["c", "b"]);
        assert_eq!(l.get(&1), Some(&"c"));
        assert_eq!(l.get(&3), None);
    }
}
