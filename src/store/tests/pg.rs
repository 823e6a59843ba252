//! A PostgreSQL database of the test's own, on the server at `TEST_POSTGRES_URL` (by default
//! `postgres://postgres@127.0.0.1:5432/test`): created for the test, dropped after it. A
//! server that does not answer fails the test, never skips it.

use std::time::Duration;

use tokio_postgres::NoTls;

use crate::store::{PostgresSettings, PostgresTls, Store, StoreSettings};

fn server_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn admin() -> tokio_postgres::Client {
    let url = server_url();
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("the tests need PostgreSQL at {url} (TEST_POSTGRES_URL): {e}"));
    tokio::spawn(connection);
    client
}

pub(super) struct Database {
    pub(super) name: String,
    url: String,
}

impl Database {
    pub(super) async fn create() -> Self {
        let name = format!("bars_unit_{}", uuid::Uuid::new_v4().simple());
        admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let base = server_url();
        let url = match base.rfind('/') {
            Some(at) => format!("{}/{name}", &base[..at]),
            None => panic!("TEST_POSTGRES_URL names no database: {base}"),
        };
        Self { name, url }
    }

    pub(super) fn settings(&self, claim_lease: Duration) -> StoreSettings {
        StoreSettings::Postgres(PostgresSettings {
            url: self.url.parse().unwrap(),
            tls: PostgresTls::InsecureDisabled,
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            claim_lease,
        })
    }

    pub(super) async fn store(&self, claim_lease: Duration) -> Store {
        Store::connect(&self.settings(claim_lease)).await.unwrap()
    }

    pub(super) async fn execute(&self, sql: &str) {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await.unwrap();
        tokio::spawn(connection);
        client.batch_execute(sql).await.unwrap();
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: drop the database from a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let client = admin().await;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}
