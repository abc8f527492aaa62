//! Helpers shared by the unit tests: infrastructure detection, throw-away databases and
//! one-shot HTTP calls.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;

use crate::db::Db;
use crate::service::Settings;

pub(crate) const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// MySQL/MariaDB of the tests: root without a password, no database selected.
pub(crate) const MYSQL_ADMIN_URL: &str = "mysql://root@127.0.0.1:3306";
/// The port [`MYSQL_ADMIN_URL`] names, for [`infra_available`].
pub(crate) const MYSQL_PORT: u16 = 3306;
#[cfg(feature = "rabbitmq")]
pub(crate) const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
#[cfg(feature = "nats")]
pub(crate) const NATS_URL: &str = "nats://127.0.0.1:4222";

/// True when something listens on the local port.
pub(crate) fn reachable(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// Decides what a test does without its infrastructure: prints a SKIPPED line, appends it to
/// the file SVCGEN_SKIP_LOG names (`cargo xtask test` lists them at the end of a run) and
/// returns false, or panics when SVCGEN_REQUIRE_INFRA=1 (CI machines that must have it).
pub(crate) fn infra_available(port: u16, what: &str, test: &str) -> bool {
    if reachable(port) {
        return true;
    }
    let missing = format!("{what} is not reachable on 127.0.0.1:{port}");
    let reason = format!("{test}: {missing}");
    // Logged in both cases, so that the run's summary names what was missing.
    if let Some(log) = std::env::var_os("SVCGEN_SKIP_LOG") {
        // libtest runs each test on a thread named after it: its full path, where `test` is
        // the caller's short name.
        let thread = std::thread::current();
        let test = thread.name().unwrap_or(test);
        let line = format!("[{}] {test}: {missing}\n", env!("CARGO_CRATE_NAME"));
        append_skip(std::path::Path::new(&log), &line);
    }
    if std::env::var("SVCGEN_REQUIRE_INFRA").as_deref() == Ok("1") {
        panic!("{reason} (and SVCGEN_REQUIRE_INFRA=1)");
    }
    println!("SKIPPED: {reason}");
    false
}

/// Appends `line` to `log` in one write, so that lines of tests running at the same time do
/// not interleave (O_APPEND puts each write at the end). The integration tests'
/// `support::append_skip` does the same (another crate, so not shared code).
fn append_skip(log: &std::path::Path, line: &str) {
    use std::io::Write as _;
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    // A skip that is not recorded would make the run's summary claim fewer skips than happened.
    if let Err(e) = appended {
        panic!("cannot append to the skip log {}: {e}", log.display());
    }
}

/// A namespace of its own for one NATS test; its stream, and with it every consumer the test
/// created, is deleted when the guard goes out of scope, also when the test fails.
#[cfg(feature = "nats")]
pub(crate) struct NatsNamespace {
    pub(crate) name: String,
}

#[cfg(feature = "nats")]
impl NatsNamespace {
    pub(crate) fn new() -> Self {
        NatsNamespace {
            name: format!("svcgen-test-{}", uuid::Uuid::new_v4().simple()),
        }
    }
}

#[cfg(feature = "nats")]
impl Drop for NatsNamespace {
    fn drop(&mut self) {
        let stream = crate::bus::nats::Names::new(&self.name).stream().to_owned();
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread with a
        // runtime of its own.
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let client = async_nats::connect(NATS_URL).await?;
                let jetstream = async_nats::jetstream::new(client.clone());
                let deleted = jetstream.delete_stream(&stream).await.map(|_| ());
                let _ = client.drain().await;
                deleted.map_err(async_nats::Error::from)
            })
        })
        .join();
        if !matches!(deleted, Ok(Ok(()))) {
            eprintln!("warning: could not delete NATS stream of {}", self.name);
        }
    }
}

/// A fresh SQLite database in a temporary directory (removed with the guard).
pub(crate) async fn sqlite_db() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("test.sqlite").display());
    let db = Db::connect(&url).await.expect("open sqlite");
    (db, dir)
}

/// A uniquely named PostgreSQL database, created by `Db::connect` itself and dropped when the
/// guard goes out of scope, also when the test fails.
pub(crate) struct PgDatabase {
    pub(crate) name: String,
    pub(crate) url: String,
}

impl PgDatabase {
    pub(crate) fn new() -> Self {
        let name = format!("svcgen_test_{}", uuid::Uuid::new_v4().simple());
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        PgDatabase { name, url }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; use a thread with a
        // runtime of its own. FORCE ends pool connections that are still open.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                use sqlx::Connection as _;
                let mut admin = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL).await?;
                let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                    .execute(&mut admin)
                    .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// A uniquely named MySQL/MariaDB database, created by `Db::connect` itself and dropped when
/// the guard goes out of scope, also when the test fails.
pub(crate) struct MySqlDatabase {
    pub(crate) name: String,
    pub(crate) url: String,
}

impl MySqlDatabase {
    pub(crate) fn new() -> Self {
        let name = format!("svcgen_test_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{MYSQL_ADMIN_URL}/{name}");
        MySqlDatabase { name, url }
    }
}

impl Drop for MySqlDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; use a thread with a
        // runtime of its own. MySQL has no DROP DATABASE ... FORCE: the connections still open
        // on the database (a failed test's pool) are killed first, so that none of them holds
        // a lock the DROP would wait for.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                use sqlx::Connection as _;
                let mut admin = sqlx::MySqlConnection::connect(MYSQL_ADMIN_URL).await?;
                let others: Vec<(i64,)> = sqlx::query_as(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
                )
                .bind(&name)
                .fetch_all(&mut admin)
                .await?;
                for (id,) in others {
                    // It may have ended meanwhile.
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL CONNECTION {id}")))
                        .execute(&mut admin)
                        .await;
                }
                let statement = format!("DROP DATABASE IF EXISTS `{name}`");
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                    .execute(&mut admin)
                    .await?;
                admin.close().await
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                eprintln!(
                    "warning: could not drop test database {}: {error}",
                    self.name
                )
            }
            Err(_) => eprintln!("warning: could not drop test database {}", self.name),
        }
    }
}

pub(crate) const JWT_SECRET: &[u8] = b"test-jwt-secret-0123456789abcdef0123";
const INTERNAL_SECRET: &[u8] = b"test-internal-secret-0123456789abcdef";

/// Argon2id parameters that keep tests fast (never use them for real passwords).
pub(crate) const CHEAP_HASHING: crate::capability::auth::PasswordHashing =
    crate::capability::auth::PasswordHashing {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

/// Settings with fixed test secrets and cheap password hashing.
pub(crate) fn settings() -> Arc<Settings> {
    settings_with(|_| {})
}

/// [`settings`], changed by `change`.
pub(crate) fn settings_with(change: impl FnOnce(&mut Settings)) -> Arc<Settings> {
    let mut settings = Settings::new("testsys", JWT_SECRET, INTERNAL_SECRET, 900, 3600);
    settings.password_hashing = CHEAP_HASHING;
    change(&mut settings);
    Arc::new(settings)
}

/// Sends one request to an app and returns the status and the body as JSON (Null if empty,
/// a JSON string if the body is not JSON).
pub(crate) async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, body)
}

/// A request builder with an optional JSON body and extra headers.
pub(crate) fn request(
    method: Method,
    uri: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    match body {
        Some(json) => builder
            .header("content-type", "application/json")
            .body(Body::from(json.to_string())),
        None => builder.body(Body::empty()),
    }
    .expect("request")
}
