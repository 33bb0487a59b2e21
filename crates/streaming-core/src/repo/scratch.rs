//! Scratch PostgreSQL databases for tests: a fresh database `test_<random>`
//! per test, created on the server named by `DATABASE_URL` (or
//! [`DEFAULT_ADMIN_URL`]) and dropped again when the handle is dropped, so
//! that tests running in parallel never see each other's rows.
//!
//! ```no_run
//! # async fn f() {
//! use streaming_core::repo::scratch::ScratchDatabase;
//! let db = ScratchDatabase::create().await; // panics with a clear message if PostgreSQL is down
//! let repo = streaming_core::repo::connect(db.url()).await.unwrap();
//! # }
//! ```

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};
use uuid::Uuid;

/// The PostgreSQL of the test machines (trust auth, database `test`).
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server on which scratch databases are made: `DATABASE_URL` when it
/// names PostgreSQL, else [`DEFAULT_ADMIN_URL`].
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres:") || u.starts_with("postgresql:"))
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_string())
}

/// A database that exists for the lifetime of this handle.
pub struct ScratchDatabase {
    url: String,
    admin_url: String,
    name: String,
}

impl ScratchDatabase {
    /// Creates `test_<random>` on [`admin_url`]. Panics, naming the URL and
    /// how to start the server, when PostgreSQL cannot be reached: a test
    /// that needs PostgreSQL must fail loudly rather than pass vacuously.
    pub async fn create() -> Self {
        Self::create_on(&admin_url()).await
    }

    /// Like [`ScratchDatabase::create`] on a given server.
    pub async fn create_on(admin_url: &str) -> Self {
        let name = format!("test_{}", Uuid::new_v4().simple());
        let mut conn = connect_admin(admin_url).await;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("creating scratch database {name}: {e}"));
        let _ = conn.close().await;
        Self {
            url: with_database(admin_url, &name),
            admin_url: admin_url.to_string(),
            name,
        }
    }

    /// `postgres://…/test_<random>`: what `DATABASE_URL` should be.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every row of every table of the `public` schema as `(table, JSON
    /// text)`: what a test searches for data that must not be there.
    pub async fn dump_tables(&self) -> Vec<(String, String)> {
        let opts = PgConnectOptions::from_str(&self.url).expect("scratch URL parses");
        let mut conn = opts
            .connect()
            .await
            .expect("connect to the scratch database");
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await
        .expect("list tables");
        let mut out = Vec::new();
        for table in tables {
            let sql = format!("SELECT row_to_json(t)::text FROM \"{table}\" t");
            let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql))
                .fetch_all(&mut conn)
                .await
                .expect("dump table");
            out.extend(rows.into_iter().map(|r| (table.clone(), r)));
        }
        let _ = conn.close().await;
        out
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // Drop may run inside a runtime: do the async work on a thread of its own.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(opts) = PgConnectOptions::from_str(&admin_url) else {
                    return;
                };
                if let Ok(mut conn) = opts.connect().await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = done.join();
    }
}

async fn connect_admin(admin_url: &str) -> PgConnection {
    let opts = PgConnectOptions::from_str(admin_url)
        .unwrap_or_else(|e| panic!("invalid PostgreSQL URL {admin_url:?}: {e}"));
    match tokio::time::timeout(std::time::Duration::from_secs(10), opts.connect()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "PostgreSQL at {admin_url} is unreachable: {e}. These tests need a real PostgreSQL: \
             start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
             (scripts/test does this) or point DATABASE_URL at one"
        ),
        Err(_) => panic!("PostgreSQL at {admin_url} did not answer within 10 s"),
    }
}

/// `url` with its database name replaced by `db` (query parameters kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
    }
}
