//! A fresh PostgreSQL database per test.

//! Throwaway PostgreSQL databases for tests: created with a unique name,
//! dropped (even with connections left open) when the guard is dropped.

use std::sync::atomic::{AtomicU32, Ordering};

/// The maintenance connection (override with `FIELDSYNC_TEST_POSTGRES`).
pub fn admin_url() -> String {
    std::env::var("FIELDSYNC_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists while this lives.
pub struct TempDatabase {
    name: String,
}

impl TempDatabase {
    /// Create a fresh, empty database.
    pub fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "fs_test_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = postgres::Client::connect(&admin_url(), postgres::NoTls)
            .expect("PostgreSQL must answer at 127.0.0.1:5432 (pg_ctlcluster 15 main start)");
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        Self { name }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        let admin = admin_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        format!("{base}/{}", self.name)
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&admin_url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
