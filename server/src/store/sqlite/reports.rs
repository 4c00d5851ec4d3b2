//! Reads for reports (records in scope, report facts) and the report fact writes.

use super::Tx;
use super::read::scope_sql;
use super::rows::Cached;
use super::rows::placeholders;
use crate::store::{ReportRead, ReportWrite, ScopeFilter, StoreError};
use rusqlite::{params, params_from_iter};
use sync_protocol::RecordId;
use sync_protocol::metrics::RecordFact;

impl ReportRead for Tx<'_> {
    fn scope_records(
        &mut self,
        scope: &ScopeFilter,
        f: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StoreError> {
        let (cond, sp) = scope_sql(scope);
        let sql = format!(
            "SELECT r.collection, r.state FROM records r LEFT JOIN customer_owners o ON o.customer_id = r.customer_id WHERE {cond}"
        );
        let mut st = self.c.prepare_cached(&sql)?;
        let mut rows = st.query(params_from_iter(sp))?;
        while let Some(r) = rows.next()? {
            let c: String = r.get(0)?;
            let s: String = r.get(1)?;
            f(&c, &s);
        }
        Ok(())
    }

    fn scope_records_of(
        &mut self,
        scope: &ScopeFilter,
        collections: &[&str],
        f: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StoreError> {
        let (cond, sp) = scope_sql(scope);
        let sql = format!(
            "SELECT r.collection, r.state FROM records r LEFT JOIN customer_owners o ON o.customer_id = r.customer_id WHERE r.collection IN ({}) AND {cond}",
            placeholders(collections.len())
        );
        let mut st = self.c.prepare_cached(&sql)?;
        let all: Vec<String> = collections
            .iter()
            .map(|c| (*c).to_owned())
            .chain(sp)
            .collect();
        let mut rows = st.query(params_from_iter(all))?;
        while let Some(r) = rows.next()? {
            let c: String = r.get(0)?;
            let s: String = r.get(1)?;
            f(&c, &s);
        }
        Ok(())
    }

    fn report_customers(
        &mut self,
        scope: &ScopeFilter,
        f: &mut dyn FnMut(RecordId, RecordFact),
    ) -> Result<(), StoreError> {
        let sql = if scope.all {
            "SELECT customer_id, owner_id, created_us FROM report_customers".to_owned()
        } else {
            format!(
                "SELECT c.customer_id, c.owner_id, c.created_us FROM report_customers c JOIN records r ON r.id = c.customer_id \
                 LEFT JOIN customer_owners o ON o.customer_id = r.customer_id WHERE {}",
                scope_sql(scope).0
            )
        };
        let mut st = self.c.prepare_cached(&sql)?;
        let mut rows = st.query(params_from_iter(scope_sql(scope).1))?;
        while let Some(r) = rows.next()? {
            let (id, fact) = crate::store::facts::customer_row(r)?;
            f(id, fact);
        }
        Ok(())
    }

    fn report_facts(
        &mut self,
        from_us: i64,
        to_us: i64,
        part: crate::store::facts::FactPart,
        f: &mut dyn FnMut(RecordId, RecordFact),
    ) -> Result<(), StoreError> {
        for (sql, a, b, visits) in part.queries(from_us, to_us) {
            let mut st = self.c.prepare_cached(&sql.replace('$', "?"))?;
            let mut rows = st.query(params![a, b])?;
            while let Some(r) = rows.next()? {
                let (record, cols) = crate::store::facts::fact_row(r, visits)?;
                f(record, cols.to_fact(record)?);
            }
        }
        Ok(())
    }
}

impl ReportWrite for Tx<'_> {
    fn put_report_fact(
        &mut self,
        id: RecordId,
        customer: bool,
        row: Option<&crate::store::facts::FactRow>,
    ) -> Result<(), StoreError> {
        use crate::store::facts::FactRow;
        let bytes = id.0.as_bytes().as_slice();
        let id = id.to_string();
        if customer {
            self.c
                .exec("DELETE FROM report_customers WHERE customer_id = ?1", [&id])?;
        } else {
            self.c
                .exec("DELETE FROM report_facts WHERE record_id = ?1", [bytes])?;
        }
        match row {
            None => {}
            Some(FactRow::Customer {
                owner_id,
                created_us,
            }) => {
                self.c.exec(
                    "INSERT INTO report_customers (customer_id, owner_id, created_us) VALUES (?1, ?2, ?3)",
                    params![id, owner_id, created_us],
                )?;
            }
            Some(FactRow::Fact(c)) => {
                self.c.exec(
                    "INSERT INTO report_facts (record_id, kind, at_us, customer_id, amends, minor, minor_digits, voided, feedback_kind, csat, nps, resolved_us, credited_to) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    params![
                        bytes,
                        c.kind,
                        c.at_us,
                        c.customer_id.0.as_bytes().as_slice(),
                        c.amends.as_ref().map(|a| a.0.as_bytes().as_slice()),
                        c.minor,
                        c.minor_digits,
                        c.voided,
                        c.feedback_kind,
                        c.csat,
                        c.nps,
                        c.resolved_us,
                        c.credited_to.as_ref().map(|u| u.0.as_bytes().as_slice())
                    ],
                )?;
            }
        }
        Ok(())
    }

    fn clear_report_facts(&mut self) -> Result<(), StoreError> {
        self.c.exec("DELETE FROM report_customers", [])?;
        self.c.exec("DELETE FROM report_facts", [])?;
        Ok(())
    }
}
