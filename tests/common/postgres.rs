//! Real PostgreSQL for the tests, driven with `psql`: a database of its own per test on the
//! machine's server ([`TestDatabase`], 127.0.0.1:5432, trust authentication, user `postgres`,
//! database `test`), or a whole server of its own ([`PrivateServer`]: `initdb` into a
//! temporary directory, Debian's binaries) for the tests that stop and restart PostgreSQL or
//! need TLS. `.ci/run` makes sure both are available; without them a test fails, saying so.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType};

use super::pki;

/// The machine's PostgreSQL server.
pub const SHARED_SERVER: &str = "127.0.0.1:5432";

/// How long a server may take to start, stop or answer (a loaded build machine).
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs `sql` with `psql` on the database at `url`; its rows unaligned (`|` between
/// columns), one a line, or psql's error.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD")
        .env_remove("PGSSLMODE")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run psql ({e}): install PostgreSQL's client (Debian's postgresql package; .ci/run does)")
        });
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim_end().to_owned())
    }
}

/// [`psql`] that must succeed.
#[track_caller]
pub fn psql_ok(url: &str, sql: &str) -> String {
    psql(url, sql).unwrap_or_else(|e| panic!("psql {url}: {sql}: {e}"))
}

/// A database of its own on the machine's server, dropped (its connections ended first)
/// when this goes out of scope.
pub struct TestDatabase {
    pub name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates `bars_test_<uuid>`. Panics, saying why, when no PostgreSQL answers on
    /// 127.0.0.1:5432: these tests need one (`.ci/run` starts one), they never pass without.
    pub fn new() -> Self {
        let addr: SocketAddr = SHARED_SERVER.parse().expect("address");
        if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            panic!(
                "no PostgreSQL on {SHARED_SERVER} ({e}): the PostgreSQL tests need a server there with trust \
                 authentication for user postgres and a database `test`; .ci/run installs and starts one"
            );
        }
        let admin_url = format!("postgres://postgres@{SHARED_SERVER}/test");
        let name = format!("bars_test_{}", uuid::Uuid::new_v4().simple());
        if let Err(e) = psql(&admin_url, &format!("CREATE DATABASE {name}")) {
            panic!(
                "cannot create a database on {SHARED_SERVER} as postgres through database `test` ({e}): the \
                 PostgreSQL tests need trust authentication for user postgres from 127.0.0.1 and a database \
                 `test`; .ci/run sets up such a server"
            );
        }
        Self {
            url: format!("postgres://postgres@{SHARED_SERVER}/{name}"),
            name,
            admin_url,
        }
    }

    /// `postgres://postgres@127.0.0.1:5432/<name>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// [`psql_ok`] on this database.
    #[track_caller]
    pub fn query(&self, sql: &str) -> String {
        psql_ok(&self.url, sql)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // WITH (FORCE) ends the connections still open (a receiver killed a moment ago);
        // before PostgreSQL 13 they are ended by hand.
        let version: u32 = psql(&self.admin_url, "SHOW server_version_num")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let sql = if version >= 130_000 {
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)
        } else {
            let _ = psql(
                &self.admin_url,
                &format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                    self.name
                ),
            );
            format!("DROP DATABASE IF EXISTS {}", self.name)
        };
        if let Err(e) = psql(&self.admin_url, &sql) {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

/// The TLS material of a [`PrivateServer`]: a CA of its own and a certificate for
/// 127.0.0.1 (and `localhost`) issued by it.
pub struct ServerTls {
    /// The CA's certificate, PEM: what a client's `ca_file` must hold.
    pub ca_pem: String,
    /// The same, written to a file in the server's directory.
    pub ca_file: PathBuf,
}

/// A PostgreSQL server of the test's own: `initdb` into a temporary directory, `postgres` on
/// a free loopback port with its socket in that directory, run as the `postgres` system user
/// when the tests run as root (PostgreSQL refuses root). Dropping it kills the server and
/// removes its directory.
pub struct PrivateServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
    child: Option<Child>,
    tls: Option<ServerTls>,
}

impl PrivateServer {
    /// A running server accepting plaintext connections from 127.0.0.1 (trust).
    pub fn new() -> Self {
        Self::create(false)
    }

    /// A running server with `ssl = on`, whose `pg_hba.conf` admits TLS connections only
    /// (`hostssl`): see [`PrivateServer::tls`] for its CA.
    pub fn new_with_tls() -> Self {
        Self::create(true)
    }

    fn create(tls: bool) -> Self {
        let bin = server_binaries();
        let dir = tempfile::tempdir().expect("tempdir");
        let as_postgres_user = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0) == 0;
        std::fs::create_dir(dir.path().join("socket")).expect("socket dir");
        let tls = tls.then(|| write_server_tls(dir.path()));
        if as_postgres_user {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(
                status.success(),
                "chown {} to the postgres user",
                dir.path().display()
            );
        }
        let mut server = Self {
            dir,
            bin,
            port: 0,
            as_postgres_user,
            child: None,
            tls,
        };
        let data = server.data_dir();
        let out = server
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let hba = match server.tls {
            Some(_) => "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            None => "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        };
        // Written by root or the owner into a directory the postgres user owns; readable to it.
        std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
        // A free port can be taken by someone else before the server binds it: try another.
        for attempt in 0..3 {
            server.port = free_port();
            match server.try_start() {
                Ok(()) => return server,
                Err(e) if attempt < 2 => eprintln!("private PostgreSQL did not start, retrying: {e}"),
                Err(e) => panic!("private PostgreSQL did not start: {e}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its CA, when made with [`PrivateServer::new_with_tls`].
    pub fn tls(&self) -> Option<&ServerTls> {
        self.tls.as_ref()
    }

    /// A URL for `psql` (libpq): over TLS, checking the certificate against the server's CA,
    /// when the server has TLS.
    pub fn psql_url(&self) -> String {
        match &self.tls {
            Some(tls) => format!(
                "{}?sslmode=verify-full&sslrootcert={}",
                self.url(),
                tls.ca_file.display()
            ),
            None => format!("{}?sslmode=disable", self.url()),
        }
    }

    /// [`psql_ok`] on its `postgres` database.
    #[track_caller]
    pub fn query(&self, sql: &str) -> String {
        psql_ok(&self.psql_url(), sql)
    }

    /// Fast shutdown (SIGINT: open transactions rolled back, connections closed), waiting
    /// for the server to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        self.signal("INT");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if child.try_wait().expect("wait for postgres").is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not stop within {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !self.data_dir().join("postmaster.pid").exists(),
            "a clean shutdown removes postmaster.pid"
        );
    }

    /// Starts the stopped server again, on the same port and data directory.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the private PostgreSQL is already running");
        self.try_start()
            .unwrap_or_else(|e| panic!("private PostgreSQL did not start again: {e}"));
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// A program from the server's binaries, as the postgres user when we are root.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    fn try_start(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .expect("log file");
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(dir.join("socket"))
            .args(["-c", "listen_addresses=127.0.0.1"])
            // Room for several receivers with their pools, and the test's own psql.
            .args(["-c", "max_connections=200"]);
        if self.tls.is_some() {
            cmd.args(["-c", "ssl=on"])
                .arg("-c")
                .arg(format!("ssl_cert_file={}", dir.join("server.crt").display()))
                .arg("-c")
                .arg(format!("ssl_key_file={}", dir.join("server.key").display()));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run postgres: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(format!("postgres exited ({status}):\n{}", self.log()));
            }
            let ready = self
                .command("pg_isready")
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "5"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not ready within {PATIENCE:?}:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// Sends `signal` to the postmaster (its pid from `postmaster.pid`: under `runuser` the
    /// child we hold is runuser, which would turn the signal into a SIGTERM).
    fn signal(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(str::to_owned));
        if let Some(pid) = pid {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), pid.trim()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Immediate shutdown (SIGQUIT) ends the backends too; SIGKILL if it lingers.
        self.signal("QUIT");
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal("KILL");
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Debian's server binaries, `/usr/lib/postgresql/<version>/bin`, the newest version.
pub fn server_binaries() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server binaries in /usr/lib/postgresql/<version>/bin: the tests that run a \
             PostgreSQL of their own need Debian's postgresql package (.ci/run installs it)"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A CA and a server certificate for 127.0.0.1 in `dir` (`server.crt`, `server.key` with
/// mode 0600 as PostgreSQL requires, `ca.pem`).
fn write_server_tls(dir: &Path) -> ServerTls {
    use std::os::unix::fs::PermissionsExt;
    let ca = pki::ca("Test PostgreSQL CA", None);
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    params.subject_alt_names = vec![
        SanType::IpAddress("127.0.0.1".parse().expect("ip")),
        SanType::DnsName("localhost".try_into().expect("dns")),
    ];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("server certificate");
    std::fs::write(dir.join("server.crt"), format!("{}{}", cert.pem(), ca.pem)).expect("server.crt");
    let key_path = dir.join("server.key");
    std::fs::write(&key_path, key.serialize_pem()).expect("server.key");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).expect("ca.pem");
    ServerTls {
        ca_pem: ca.pem,
        ca_file,
    }
}
