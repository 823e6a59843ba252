//! The PostgreSQL helpers themselves (`common::postgres`): a database per test that is
//! dropped with its connections, a private server that keeps its port and data across a
//! stop and a start, and one that admits verified TLS connections only.

use std::time::{Duration, Instant};

use crate::common::pki;
use crate::common::postgres::{PrivateServer, TestDatabase, psql};

use super::replicas::PATIENCE;

#[test]
fn a_test_database_is_the_tests_own_and_is_dropped_afterwards() {
    let db = TestDatabase::new();
    let name = db.name.clone();
    assert!(name.starts_with("bars_test_"), "{name}");
    db.query("CREATE TABLE t (x int); INSERT INTO t VALUES (42)");
    assert_eq!(db.query("SELECT x FROM t"), "42");
    assert_eq!(db.query("SELECT current_database()"), name);
    // A connection left open (a killed receiver's) does not keep the database alive.
    let mut open = std::process::Command::new("psql")
        .args(["-X", "-d", db.url(), "-c", "SELECT pg_sleep(600)"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while db.query(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"
    )) != "1"
    {
        assert!(Instant::now() < deadline, "the sleeping connection never showed");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(db);
    let admin = "postgres://postgres@127.0.0.1:5432/test";
    assert_eq!(
        psql(
            admin,
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'")
        )
        .unwrap(),
        "0",
        "dropped"
    );
    let _ = open.kill();
    let _ = open.wait();
}

#[test]
fn a_private_server_keeps_its_port_and_data_across_a_stop_and_a_start() {
    let mut pg = PrivateServer::new();
    let url = pg.psql_url();
    pg.query("CREATE TABLE t (x int); INSERT INTO t VALUES (7)");
    let port = pg.port();
    pg.stop();
    let down = psql(&url, "SELECT 1").expect_err("stopped");
    assert!(
        down.contains("refused") || down.contains("could not connect"),
        "{down}"
    );
    pg.start();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.query("SELECT x FROM t"), "7", "the same data directory");
    assert!(pg.url().contains(&format!("127.0.0.1:{port}/")));
}

#[test]
fn a_private_server_with_tls_admits_verified_tls_connections_only() {
    let pg = PrivateServer::new_with_tls();
    let tls = pg.tls().unwrap();
    assert!(tls.ca_pem.contains("BEGIN CERTIFICATE"));
    assert_eq!(pg.query("SHOW ssl"), "on");
    assert_eq!(
        pg.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
        "t",
        "psql_url connects over TLS"
    );
    let plain = psql(&format!("{}?sslmode=disable", pg.url()), "SELECT 1").expect_err("plaintext refused");
    assert!(plain.contains("no pg_hba.conf entry"), "{plain}");
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, pki::ca("Another CA", None).pem).unwrap();
    let wrong = psql(
        &format!("{}?sslmode=verify-full&sslrootcert={}", pg.url(), other.display()),
        "SELECT 1",
    )
    .expect_err("a certificate from another CA is refused");
    assert!(wrong.contains("certificate verify failed"), "{wrong}");
}
