//! Concurrency never turns into a 500 or a lost update, on every store engine. The stockroom
//! (`tests/systems/stockroom.yaml`) runs embedded (SQLite), then distributed with the shelf
//! service on PostgreSQL and on MariaDB, and each run drives the same three rushes:
//!
//! 1. 50 concurrent holds of two shelves, half of them naming the shelves in the other order,
//!    through a saga whose RPC reads each shelf and then writes it in one transaction: every
//!    answer is 201 or 409 (SQLite's busy database and the servers' deadlocks are waited for or
//!    retried, never returned), and exactly the units there were are held;
//! 2. 200 PATCHes of a shelf's description overlapping 200 holds that decrement its units in
//!    SQL: the final count is exact (a PATCH writes only the fields it changes);
//! 3. 20 concurrent DELETEs of one shelf: one 204, nineteen 404s, and one `shelf.removed` event.
//!
//! The distributed tests skip with a message when a server is down, and fail instead when
//! `SVCGEN_REQUIRE_INFRA=1` (as on CI).

mod harness;
mod support;

use futures_util::future::join_all;
use harness::{Api, Distributed, Running, System, infrastructure, register, runtime};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::Command;

/// The rushes run one at a time: each measures how a system copes with its own load, not with
/// another test's build or rush on the same two cores.
static ONE_RUSH_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_rush_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_RUSH_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The stockroom with its shelf service's store on `engine` (`postgres` or `mysql`), generated
/// under a system name of its own so that both variants can be built side by side.
fn stockroom(engine: &str) -> System {
    let spec = std::fs::read_to_string(support::root().join("tests/systems/stockroom.yaml"))
        .expect("the stockroom spec");
    if engine == "postgres" {
        return System::generate("tests/systems/stockroom.yaml", "stockroom");
    }
    let name = format!("stockroom_{engine}");
    let variant = spec
        .replace("system: stockroom", &format!("system: {name}"))
        .replace(
            "shelf_db: { engine: postgres }",
            &format!("shelf_db: {{ engine: {engine} }}"),
        );
    assert_ne!(
        variant, spec,
        "the spec names its system and shelf store as expected"
    );
    System::generate_text(&variant, &name)
}

async fn new_shelf(api: &Api, token: &str, name: &str, units: i64) -> String {
    let (status, body) = api
        .call(
            Method::POST,
            "/shelves",
            Some(token),
            Some(json!({"name": name, "units": units})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn shelf(api: &Api, id: &str) -> Value {
    let (status, body) = api
        .call(Method::GET, &format!("/shelves/{id}"), None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn hold(api: &Api, token: &str, lines: &[(&str, i64)]) -> (StatusCode, Value) {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(shelf, quantity)| json!({"shelf_id": shelf, "quantity": quantity}))
        .collect();
    api.call(
        Method::POST,
        "/holds",
        Some(token),
        Some(json!({"lines": lines})),
    )
    .await
}

/// How many answers had each status.
fn tally(statuses: impl IntoIterator<Item = StatusCode>) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for status in statuses {
        *counts.entry(status.as_u16()).or_default() += 1;
    }
    counts
}

/// The three rushes; `removed_events` counts the `shelf.removed` events in the shelf
/// service's outbox.
async fn rush(gateway: &str, tag: &str, removed_events: impl Fn() -> usize) {
    let api = Api::new(gateway);
    let (_, token) = register(&api, &format!("clerk-{tag}@example.com")).await;

    // 1. Holds of two shelves through the saga; half name them in the other order, so that
    // servers see lock-order deadlocks.
    let (left, right) = (
        new_shelf(&api, &token, "left", 10).await,
        new_shelf(&api, &token, "right", 30).await,
    );
    let holds = (0..50).map(|i| {
        let (api, token, left, right) = (&api, &token, &left, &right);
        async move {
            let lines = if i % 2 == 0 {
                [(left.as_str(), 1), (right.as_str(), 1)]
            } else {
                [(right.as_str(), 1), (left.as_str(), 1)]
            };
            hold(api, token, &lines).await
        }
    });
    let started = std::time::Instant::now();
    let answers = join_all(holds).await;
    eprintln!(
        "{tag}: 50 crossed holds answered in {:?}",
        started.elapsed()
    );
    for (status, body) in &answers {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::CONFLICT,
            "{tag}: a hold answered {status}: {body}"
        );
    }
    let counts = tally(answers.iter().map(|(status, _)| *status));
    assert_eq!(counts.get(&201), Some(&10), "{tag}: {counts:?}");
    assert_eq!(shelf(&api, &left).await["units"], 0, "{tag}");
    assert_eq!(shelf(&api, &right).await["units"], 20, "{tag}");

    // 2. Edits of a shelf's description overlapping holds that decrement its units in SQL.
    let busy = new_shelf(&api, &token, "busy", 300).await;
    let edits = (0..200).map(|i| {
        let (api, token, busy) = (&api, &token, &busy);
        async move {
            api.call(
                Method::PATCH,
                &format!("/shelves/{busy}"),
                Some(token),
                Some(json!({"description": format!("edit {i}")})),
            )
            .await
        }
    });
    let takes = (0..200).map(|_| {
        let (api, token, busy) = (&api, &token, &busy);
        async move { hold(api, token, &[(busy.as_str(), 1)]).await }
    });
    let started = std::time::Instant::now();
    let (edits, takes) = tokio::join!(join_all(edits), join_all(takes));
    eprintln!(
        "{tag}: 200 edits and 200 holds answered in {:?}",
        started.elapsed()
    );
    for (status, body) in edits.iter().chain(&takes) {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::CREATED,
            "{tag}: {status}: {body}"
        );
    }
    let busy_now = shelf(&api, &busy).await;
    assert_eq!(busy_now["units"], 100, "{tag}: units lost or sold twice");
    let description = busy_now["description"].as_str().unwrap_or_default();
    assert!(description.starts_with("edit "), "{tag}: {busy_now}");
    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/shelves/{}", uuid::Uuid::new_v4()),
            Some(&token),
            Some(json!({"units": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{tag}: {body}");

    // 3. One shelf deleted by 20 requests at once: one removes it and emits its event.
    let doomed = new_shelf(&api, &token, "doomed", 1).await;
    let deletes = (0..20).map(|_| {
        let (api, token, doomed) = (&api, &token, &doomed);
        async move {
            api.call(
                Method::DELETE,
                &format!("/shelves/{doomed}"),
                Some(token),
                None,
            )
            .await
        }
    });
    let counts = tally(
        join_all(deletes)
            .await
            .into_iter()
            .map(|(status, _)| status),
    );
    assert_eq!(
        counts,
        BTreeMap::from([(204, 1), (404, 19)]),
        "{tag}: deletes"
    );
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/shelves/{}", uuid::Uuid::new_v4()),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{tag}");
    assert_eq!(removed_events(), 1, "{tag}: shelf.removed events");
}

/// The first number `command` prints (a count from a database client).
fn count_from(mut command: Command) -> usize {
    let output = command.output().expect("the database client runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .find_map(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("no count in {text:?}"))
}

const REMOVED: &str = "SELECT COUNT(*) FROM svcgen_outbox WHERE event_type = 'shelf.removed'";

#[test]
fn embedded_sqlite_answers_every_rush_without_a_server_error() {
    let _alone = one_rush_at_a_time();
    let system = stockroom("postgres");
    let data = tempfile::tempdir().unwrap();
    let running = Running::embedded(&system, "stockroom-embedded", data.path());
    let shelf_db = data.path().join("shelf.sqlite");
    runtime().block_on(rush(&running.url, "embedded", || {
        let mut sqlite = Command::new("sqlite3");
        sqlite.arg(&shelf_db).arg(REMOVED);
        count_from(sqlite)
    }));
    running.stop();
}

fn distributed_env(run: &str) -> Vec<(String, String)> {
    harness::rabbitmq_env(
        run,
        "stockroom-access-secret-0123456789abcdef01",
        "stockroom-internal-secret-0123456789abcdef",
    )
}

#[test]
fn distributed_postgres_answers_every_rush_without_a_server_error() {
    if !infrastructure(
        "distributed stockroom on PostgreSQL",
        &[
            ("PostgreSQL", "127.0.0.1:5432"),
            ("RabbitMQ", "127.0.0.1:5672"),
        ],
    ) {
        return;
    }
    let _alone = one_rush_at_a_time();
    let system = stockroom("postgres");
    let run = harness::run_id("stockroom");
    let running = Distributed::start(
        &system,
        run.clone(),
        &["auth", "shelf", "hold"],
        &distributed_env(&run),
        |_| Vec::new(),
    );
    let database = format!("{run}_shelf");
    runtime().block_on(rush(&running.gateway.url, &run, || {
        let mut psql = Command::new("psql");
        psql.args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-At",
            "-d",
            &database,
            "-c",
        ])
        .arg(REMOVED);
        count_from(psql)
    }));
    running.stop();
}

#[test]
fn distributed_mariadb_answers_every_rush_without_a_server_error() {
    if !infrastructure(
        "distributed stockroom on MariaDB",
        &[
            ("PostgreSQL", "127.0.0.1:5432"),
            ("MariaDB", "127.0.0.1:3306"),
            ("RabbitMQ", "127.0.0.1:5672"),
        ],
    ) {
        return;
    }
    let _alone = one_rush_at_a_time();
    let system = stockroom("mysql");
    let run = harness::run_id("stockroom_my");
    let shelves = harness::MariaDbDatabase(format!("{run}_shelf"));
    let shelf_url = format!("mysql://root@127.0.0.1:3306/{}", shelves.0);
    let running = Distributed::start(
        &system,
        run.clone(),
        &["auth", "shelf", "hold"],
        &distributed_env(&run),
        |service| match service {
            "shelf" => vec![("SHELF_DATABASE_URL".to_string(), shelf_url.clone())],
            _ => Vec::new(),
        },
    );
    runtime().block_on(rush(&running.gateway.url, &run, || {
        let mut mariadb = Command::new("mariadb");
        mariadb
            .args([
                "-h",
                "127.0.0.1",
                "-u",
                "root",
                "-N",
                "-D",
                &shelves.0,
                "-e",
            ])
            .arg(REMOVED);
        count_from(mariadb)
    }));
    running.stop();
    drop(shelves);
}
