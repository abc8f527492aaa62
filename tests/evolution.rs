//! Editing the spec of a running system never loses its data. The evolving system
//! (`tests/systems/evolving/v1.yaml`) runs and gets rows; its spec then becomes `v2.yaml` (a
//! field with a default, a required field filled from the others, an index, a wider enum and
//! range, a renamed field that its search reads, a removed field, a new entity that references
//! the old one, a renamed entity); `svcgen generate` runs again over the same tree, which keeps the first
//! migration byte for byte and adds a second; the system restarts on the same database:
//!
//! * every old row is intact, under its new field and table names, with the default and the
//!   backfill applied, and search finds it by the renamed field;
//! * the new API accepts the new fields, values only the wider rules allow, and the new entity,
//!   whose unique key and reference the database enforces;
//! * a restart applies nothing again, and generating once more writes nothing;
//! * a third version (`v3.yaml`) drops a table, a column, the search index and an index, makes
//!   an optional field required (empty rows filled) and a required one optional, adds a unique
//!   key over the rows there are and changes a default: the rows stay, the new rules hold.
//!
//! On SQLite (embedded), PostgreSQL and MariaDB (distributed). The distributed runs skip with
//! a message when a server is down, and fail instead when `SVCGEN_REQUIRE_INFRA=1`.

mod harness;
mod support;

use harness::{
    Api, MariaDbDatabase, Running, System, drop_databases, infrastructure, rabbitmq_env, run_id,
    runtime,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The secrets of the distributed runs: access tokens, internal credentials.
const SECRETS: (&str, &str) = (
    "evolving-access-secret-0123456789abcdef01",
    "evolving-internal-secret-0123456789abcdef",
);

/// Version `version` of the spec, its store on `engine`, under a system name of its own.
fn spec(version: &str, engine: &str) -> String {
    let path = support::root().join(format!("tests/systems/evolving/{version}.yaml"));
    let spec = std::fs::read_to_string(path).expect("the spec");
    let variant = spec
        .replace("system: evolving", &format!("system: evolving_{engine}"))
        .replace(
            "shelf_db: { engine: postgres }",
            &format!("shelf_db: {{ engine: {engine} }}"),
        );
    assert!(variant.contains(&format!("engine: {engine}")));
    variant
}

/// Generates `version` for `engine` over what the tree holds (as `svcgen generate` does).
fn generate(version: &str, engine: &str) -> System {
    let name = format!("evolving_{engine}");
    let history = svcgen::evolve::History::read(&System::out_dir(&name)).expect("history");
    System::generate_over(&spec(version, engine), &name, history)
}

/// Every migration file of the tree, by path.
fn migrations(system: &System) -> BTreeMap<PathBuf, Vec<u8>> {
    support::read_tree(&system.workspace.join("services/shelf/migrations"))
}

/// Where the system keeps its data between runs.
enum Store {
    /// Embedded: SQLite files in a directory.
    Sqlite(tempfile::TempDir),
    /// Distributed: the service's database URL.
    Server {
        run: String,
        url: String,
        _mariadb: Option<MariaDbDatabase>,
    },
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Store::Server {
            run,
            _mariadb: None,
            ..
        } = self
        {
            drop_databases(&[format!("{run}_shelf")]);
        }
    }
}

/// The system's processes: one, or the service and its gateway.
struct Started {
    processes: Vec<Running>,
    gateway: String,
}

impl Started {
    fn stop(self) {
        for process in self.processes.into_iter().rev() {
            process.stop();
        }
    }
}

fn start(system: &System, store: &Store) -> Started {
    match store {
        Store::Sqlite(data) => {
            let running = Running::embedded(system, &system.name, data.path());
            Started {
                gateway: running.url.clone(),
                processes: vec![running],
            }
        }
        Store::Server { run, url, .. } => {
            let mut env = rabbitmq_env(run, SECRETS.0, SECRETS.1);
            env.push(("SHELF_DATABASE_URL".into(), url.clone()));
            let service = Running::start(
                system,
                &format!("{}-shelf", system.name),
                &["serve", "shelf", "--port", "0"],
                &env,
            );
            env.push(("SVCGEN_SHELF_URL".into(), service.url.clone()));
            let gateway = Running::start(
                system,
                &format!("{}-gateway", system.name),
                &["gateway", "--port", "0"],
                &env,
            );
            Started {
                gateway: gateway.url.clone(),
                processes: vec![service, gateway],
            }
        }
    }
}

/// One call that must answer `expected`; its body.
async fn expect(
    api: &Api,
    method: Method,
    path: &str,
    body: Option<Value>,
    expected: StatusCode,
) -> Value {
    let (status, answer) = api.call(method.clone(), path, None, body).await;
    assert_eq!(status, expected, "{method} {path}: {answer}");
    answer
}

/// A GET that must answer 200; its body.
async fn get(api: &Api, path: &str) -> Value {
    expect(api, Method::GET, path, None, StatusCode::OK).await
}

/// The first version at work: two notes and a marker; their ids.
async fn write_first_rows(gateway: &str) -> (String, String, String) {
    let api = Api::new(gateway);
    let rust = expect(
        &api,
        Method::POST,
        "/notes",
        Some(json!({
            "title": "Rust Ownership",
            "body": "borrowing explained",
            "status": "published",
            "rank": 7,
        })),
        StatusCode::CREATED,
    )
    .await;
    let pasta = expect(
        &api,
        Method::POST,
        "/notes",
        Some(json!({ "title": "Pasta", "body": "al dente", "draft_of": rust["id"] })),
        StatusCode::CREATED,
    )
    .await;
    let marker = expect(
        &api,
        Method::POST,
        "/markers",
        Some(json!({ "note_id": rust["id"], "color": "blue" })),
        StatusCode::CREATED,
    )
    .await;
    let id = |row: &Value| row["id"].as_str().unwrap().to_owned();
    (id(&rust), id(&pasta), id(&marker))
}

/// The second version on the first version's rows.
async fn second_version_holds(gateway: &str, rust: &str, pasta: &str, marker: &str) {
    let api = Api::new(gateway);
    // The old rows, intact under the new names, with the default and the backfill.
    let note = get(&api, &format!("/notes/{rust}")).await;
    assert_eq!(note["title"], "Rust Ownership", "{note}");
    assert_eq!(note["content"], "borrowing explained", "{note}");
    assert_eq!(note["status"], "published", "{note}");
    assert_eq!(note["rank"], 7, "{note}");
    assert_eq!(note["pinned"], false, "{note}");
    assert_eq!(note["slug"], "rust ownership", "{note}");
    assert_eq!(note["was_draft"], false, "{note}");
    assert!(
        note.get("body").is_none() && note.get("draft_of").is_none(),
        "{note}"
    );
    let note = get(&api, &format!("/notes/{pasta}")).await;
    assert_eq!(note["content"], "al dente", "{note}");
    assert_eq!(note["status"], "draft", "{note}");
    assert_eq!(note["rank"], Value::Null, "{note}");
    assert_eq!(note["slug"], "pasta", "{note}");
    assert_eq!(
        note["was_draft"], true,
        "filled from the dropped field: {note}"
    );

    // Search reads the renamed field, old rows included.
    let found = get(&api, "/notes?q=borrowing").await;
    let ids: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [rust], "{found}");

    // The wider enum and range hold in the database too.
    let changed = expect(
        &api,
        Method::PATCH,
        &format!("/notes/{rust}"),
        Some(json!({ "status": "archived", "rank": 50 })),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&changed["status"], &changed["rank"]),
        (&json!("archived"), &json!(50))
    );

    // New rows take the new fields.
    let fresh = expect(
        &api,
        Method::POST,
        "/notes",
        Some(json!({
            "title": "Fresh",
            "content": "new shelf",
            "slug": "fresh",
            "was_draft": false,
            "pinned": true,
        })),
        StatusCode::CREATED,
    )
    .await;
    let pinned = get(&api, "/notes?pinned=true").await;
    let items = pinned["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{pinned}");
    assert_eq!(items[0]["id"], fresh["id"]);
    expect(
        &api,
        Method::POST,
        "/notes",
        Some(json!({ "title": "No slug", "content": "x" })),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // The new entity, with its unique key and reference enforced.
    let tag = |label: &str, note: &str| Some(json!({ "label": label, "note_id": note }));
    let tags = [
        (tag("rust", rust), StatusCode::CREATED),
        (tag("rust", pasta), StatusCode::CONFLICT),
    ];
    for (body, status) in tags {
        expect(&api, Method::POST, "/tags", body, status).await;
    }
    // The renamed entity: its rows kept, its rules under the new name.
    let bookmark = get(&api, &format!("/bookmarks/{marker}")).await;
    assert_eq!(
        (&bookmark["color"], &bookmark["note_id"]),
        (&json!("blue"), &json!(rust))
    );
    let mark = |note: &str, color: &str| Some(json!({ "note_id": note, "color": color }));
    expect(
        &api,
        Method::POST,
        "/bookmarks",
        mark(pasta, "green"),
        StatusCode::CREATED,
    )
    .await;
    let lost = mark("0190a6d2-0000-7000-8000-000000000000", "red");
    let answer = expect(
        &api,
        Method::POST,
        "/bookmarks",
        lost,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(answer.to_string().contains("note_id"), "{answer}");
    expect(
        &api,
        Method::GET,
        &format!("/markers/{marker}"),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;

    let nowhere = tag("nowhere", "0190a6d2-0000-7000-8000-000000000000");
    let answer = expect(
        &api,
        Method::POST,
        "/tags",
        nowhere,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(answer.to_string().contains("note_id"), "{answer}");
}

/// The rows are still there after another restart.
async fn still_there(gateway: &str, rust: &str) {
    let api = Api::new(gateway);
    let note = get(&api, &format!("/notes/{rust}")).await;
    assert_eq!(
        (&note["status"], &note["slug"]),
        (&json!("archived"), &json!("rust ownership"))
    );
    let tags = get(&api, &format!("/tags?note_id={rust}")).await;
    assert_eq!(tags["items"].as_array().unwrap().len(), 1, "{tags}");
}

fn scenario(engine: &str, store: Store) {
    let name = format!("evolving_{engine}");
    let out = System::out_dir(&name);
    if out.exists() {
        std::fs::remove_dir_all(&out).unwrap();
    }
    let first = generate("v1", engine);
    let running = start(&first, &store);
    let (rust, pasta, marker) = runtime().block_on(write_first_rows(&running.gateway));
    running.stop();
    let before = migrations(&first);

    let second = generate("v2", engine);
    let after = migrations(&second);
    appended_one_per_engine(&before, &after, engine, "0002");

    let running = start(&second, &store);
    runtime().block_on(second_version_holds(
        &running.gateway,
        &rust,
        &pasta,
        &marker,
    ));
    running.stop();
    let running = start(&second, &store);
    runtime().block_on(still_there(&running.gateway, &rust));
    running.stop();

    // Generating the same spec again writes nothing: no third migration.
    let again = generate("v2", engine);
    assert_eq!(migrations(&again), after);

    // The third version removes what the second added, and tightens the rules.
    let third = generate("v3", engine);
    appended_one_per_engine(&after, &migrations(&third), engine, "0003");
    let running = start(&third, &store);
    runtime().block_on(third_version_holds(
        &running.gateway,
        &rust,
        &pasta,
        &marker,
    ));
    running.stop();
}

/// `after` holds every migration file of `before` byte for byte, and one more per engine, of
/// version `version`.
fn appended_one_per_engine(
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
    engine: &str,
    version: &str,
) {
    for (path, bytes) in before {
        if path.extension().is_some_and(|e| e == "sql") {
            assert_eq!(
                after.get(path),
                Some(bytes),
                "{} was rewritten",
                path.display()
            );
        }
    }
    let new: Vec<&Path> = after
        .keys()
        .filter(|path| !before.contains_key(*path))
        .map(PathBuf::as_path)
        .collect();
    let engines: &[&str] = if engine == "sqlite" {
        &["sqlite"]
    } else {
        &["sqlite", engine]
    };
    assert_eq!(
        new.len(),
        engines.len(),
        "one new migration per engine: {new:?}"
    );
    for engine in engines {
        assert!(
            new.iter()
                .any(|p| p.starts_with(engine)
                    && p.to_string_lossy().contains(&format!("/{version}_"))),
            "{new:?}"
        );
    }
}

/// The third version on the rows of the first two.
async fn third_version_holds(gateway: &str, rust: &str, pasta: &str, marker: &str) {
    let api = Api::new(gateway);
    // A required field filled where it was empty; one made optional; one dropped.
    let note = get(&api, &format!("/notes/{pasta}")).await;
    assert_eq!(
        (&note["rank"], &note["was_draft"]),
        (&json!(0), &json!(true)),
        "{note}"
    );
    assert!(note.get("pinned").is_none(), "{note}");
    let note = get(&api, &format!("/notes/{rust}")).await;
    assert_eq!(
        (&note["rank"], &note["status"]),
        (&json!(50), &json!("archived")),
        "{note}"
    );
    // The new default, the field left out now optional, the new unique key on the old rows.
    let fresh = expect(
        &api,
        Method::POST,
        "/notes",
        Some(json!({ "title": "Later", "content": "z", "slug": "later", "rank": 3 })),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (&fresh["status"], &fresh["was_draft"]),
        (&json!("published"), &Value::Null)
    );
    let taken = json!({ "title": "Again", "content": "z", "slug": "pasta", "rank": 1 });
    expect(
        &api,
        Method::POST,
        "/notes",
        Some(taken),
        StatusCode::CONFLICT,
    )
    .await;
    // No search any more, and no tags.
    expect(
        &api,
        Method::GET,
        "/notes?q=rust",
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
    expect(&api, Method::GET, "/tags", None, StatusCode::NOT_FOUND).await;
    let bookmark = get(&api, &format!("/bookmarks/{marker}")).await;
    assert_eq!(bookmark["color"], "blue");
}

#[test]
fn embedded_sqlite_keeps_its_rows_across_spec_changes() {
    let data = tempfile::tempdir().unwrap();
    scenario("sqlite", Store::Sqlite(data));
}

/// A database of its own on the server of `engine` (`postgres`, or `mysql` for MariaDB);
/// `None` when a server the run needs is down (the test is then skipped, or failed under
/// `SVCGEN_REQUIRE_INFRA=1`).
fn server_store(engine: &str) -> Option<Store> {
    let (server, address) = match engine {
        "postgres" => ("PostgreSQL", "127.0.0.1:5432"),
        _ => ("MariaDB", "127.0.0.1:3306"),
    };
    let test = format!("evolving system on {server}");
    if !infrastructure(&test, &[(server, address), ("RabbitMQ", "127.0.0.1:5672")]) {
        return None;
    }
    let run = run_id(&format!("evolving_{engine}"));
    let database = format!("{run}_shelf");
    Some(match engine {
        "postgres" => Store::Server {
            url: format!("postgres://postgres@{address}/{database}"),
            run,
            _mariadb: None,
        },
        _ => Store::Server {
            url: format!("mysql://root@{address}/{database}"),
            run,
            _mariadb: Some(MariaDbDatabase(database)),
        },
    })
}

#[test]
fn postgres_keeps_its_rows_across_spec_changes() {
    if let Some(store) = server_store("postgres") {
        scenario("postgres", store);
    }
}

#[test]
fn mariadb_keeps_its_rows_across_spec_changes() {
    if let Some(store) = server_store("mysql") {
        scenario("mysql", store);
    }
}
