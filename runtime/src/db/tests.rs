//! The same round trip on every engine: every `Bind` type, NULLs, JSON, timestamp order.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::*;
use crate::test_support::{MYSQL_PORT, MySqlDatabase, PgDatabase, infra_available, sqlite_db};

static THINGS: Migrations = Migrations {
    sqlite: &[Migration {
        version: 1,
        description: "things",
        sql: "CREATE TABLE things (
            id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL UNIQUE, label TEXT,
            count INTEGER NOT NULL, small INTEGER, ratio REAL, flag INTEGER NOT NULL, maybe_flag INTEGER,
            created_at TEXT NOT NULL, deleted_at TEXT, other_id TEXT, tags TEXT, meta TEXT)",
    }],
    postgres: &[Migration {
        version: 1,
        description: "things",
        sql: "CREATE TABLE things (
            id UUID PRIMARY KEY, name TEXT NOT NULL UNIQUE, label TEXT,
            count BIGINT NOT NULL, small INTEGER, ratio DOUBLE PRECISION, flag BOOLEAN NOT NULL, maybe_flag BOOLEAN,
            created_at TIMESTAMPTZ NOT NULL, deleted_at TIMESTAMPTZ, other_id UUID, tags JSONB, meta JSONB)",
    }],
    mysql: &[Migration {
        version: 1,
        description: "things",
        sql: "CREATE TABLE things (
            id CHAR(36) NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL UNIQUE, label LONGTEXT,
            count BIGINT NOT NULL, small INTEGER, ratio DOUBLE, flag BOOLEAN NOT NULL, maybe_flag BOOLEAN,
            created_at DATETIME(6) NOT NULL, deleted_at DATETIME(6), other_id CHAR(36), tags JSON, meta JSON
        ) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
    }],
};

const INSERT: &str = "INSERT INTO things (id, name, label, count, small, ratio, flag, maybe_flag, created_at, deleted_at, other_id, tags, meta) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Meta {
    color: String,
    size: u32,
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("timestamp")
        .to_utc()
}

/// Runs every check against one engine.
async fn round_trip(db: &Db) {
    db.migrate(&THINGS).await.expect("migrate");

    // A row with every optional value present...
    let full_id = Uuid::now_v7();
    let other = Uuid::new_v4();
    let created = at("2024-05-06T07:08:09.123456789Z");
    let meta = Meta {
        color: "red".into(),
        size: 3,
    };
    let affected = query(INSERT)
        .bind(full_id)
        .bind("full")
        .bind(Some("a label".to_owned()))
        .bind(i64::MAX)
        .bind(Some(-7i32))
        .bind(Some(0.5f64))
        .bind(true)
        .bind(Some(false))
        .bind(created)
        .bind(Some(created + Duration::days(1)))
        .bind(Some(other))
        .bind_json(&vec!["a", "b"])
        .bind_json(&meta)
        .execute(db)
        .await
        .expect("insert full");
    assert_eq!(affected, 1);

    // ...and one with every optional value NULL.
    let empty_id = Uuid::now_v7();
    query(INSERT)
        .bind(empty_id)
        .bind("empty".to_owned())
        .bind(None::<String>)
        .bind(0i64)
        .bind(None::<i32>)
        .bind(None::<f64>)
        .bind(false)
        .bind(None::<bool>)
        .bind(created)
        .bind(None::<DateTime<Utc>>)
        .bind(None::<Uuid>)
        .bind_json(&None::<Vec<String>>)
        .bind_json(&None::<Meta>)
        .execute(db)
        .await
        .expect("insert empty");

    let select = "SELECT * FROM things WHERE id = $1";
    let row = query(select)
        .bind(full_id)
        .fetch_optional(db)
        .await
        .expect("select")
        .expect("row");
    assert_eq!(row.get::<Uuid>("id").unwrap(), full_id);
    assert_eq!(row.get::<String>("name").unwrap(), "full");
    assert_eq!(
        row.get::<Option<String>>("label").unwrap().as_deref(),
        Some("a label")
    );
    assert_eq!(row.get::<i64>("count").unwrap(), i64::MAX);
    assert_eq!(row.get::<Option<i32>>("small").unwrap(), Some(-7));
    assert_eq!(row.get::<i64>("small").unwrap(), -7, "integers widen");
    assert_eq!(row.get::<Option<f64>>("ratio").unwrap(), Some(0.5));
    assert!(row.get::<bool>("flag").unwrap());
    assert_eq!(row.get::<Option<bool>>("maybe_flag").unwrap(), Some(false));
    // Stored with microsecond precision on both engines.
    assert_eq!(
        row.get::<DateTime<Utc>>("created_at").unwrap(),
        at("2024-05-06T07:08:09.123456Z")
    );
    assert_eq!(
        row.get::<Option<DateTime<Utc>>>("deleted_at").unwrap(),
        Some(at("2024-05-07T07:08:09.123456Z"))
    );
    assert_eq!(row.get::<Option<Uuid>>("other_id").unwrap(), Some(other));
    assert_eq!(row.get_json::<Vec<String>>("tags").unwrap(), vec!["a", "b"]);
    assert_eq!(row.get_json::<Meta>("meta").unwrap(), meta);

    let row = query(select)
        .bind(empty_id)
        .fetch_optional(db)
        .await
        .unwrap()
        .expect("row");
    assert_eq!(row.get::<Option<String>>("label").unwrap(), None);
    assert_eq!(row.get::<Option<i32>>("small").unwrap(), None);
    assert_eq!(row.get::<Option<f64>>("ratio").unwrap(), None);
    assert_eq!(row.get::<Option<bool>>("maybe_flag").unwrap(), None);
    assert_eq!(
        row.get::<Option<DateTime<Utc>>>("deleted_at").unwrap(),
        None
    );
    assert_eq!(row.get::<Option<Uuid>>("other_id").unwrap(), None);
    assert_eq!(row.get_json::<Option<Vec<String>>>("tags").unwrap(), None);
    assert_eq!(row.get_json::<Option<Meta>>("meta").unwrap(), None);
    let error = row.get::<String>("label").unwrap_err();
    assert!(
        matches!(error, DbError::Decode { ref column, .. } if column == "label"),
        "{error}"
    );
    assert!(row.get::<String>("no_such_column").is_err());

    // NULL-typed arguments work in comparisons too (MySQL spells IS NOT DISTINCT FROM `<=>`).
    let null_safe_equal = match db.engine() {
        Engine::Mysql => "SELECT id FROM things WHERE other_id <=> $1",
        Engine::Sqlite | Engine::Postgres => {
            "SELECT id FROM things WHERE other_id IS NOT DISTINCT FROM $1"
        }
    };
    let rows = query(null_safe_equal)
        .bind(None::<Uuid>)
        .fetch_all(db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);

    // A placeholder may appear more than once and out of order (MySQL binds per occurrence),
    // and double-quoted identifiers work everywhere (`count` is a function name on MySQL).
    let rows = query(
        r#"SELECT "name" FROM "things" WHERE ("name" = $2 AND "id" = $1) OR ("name" = $2 AND "count" = $3) OR "label" = $2"#,
    )
    .bind(full_id)
    .bind("full")
    .bind(-1i64)
    .fetch_all(db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    // Text compares case-sensitively on every engine (MySQL: binary collation).
    let rows = query("SELECT id FROM things WHERE name = $1")
        .bind("FULL")
        .fetch_all(db)
        .await
        .unwrap();
    assert!(rows.is_empty());

    // Unique violations are recognisable on every engine.
    let error = query(INSERT)
        .bind(Uuid::now_v7())
        .bind("full")
        .bind(None::<String>)
        .bind(1i64)
        .bind(None::<i32>)
        .bind(None::<f64>)
        .bind(false)
        .bind(None::<bool>)
        .bind(created)
        .bind(None::<DateTime<Utc>>)
        .bind(None::<Uuid>)
        .bind_json(&None::<Vec<String>>)
        .bind_json(&None::<Meta>)
        .execute(db)
        .await
        .unwrap_err();
    assert!(error.is_unique_violation(), "{error}");
    assert!(!DbError::decode("x", "y").is_unique_violation());

    // A value that cannot be serialized is reported when the query runs.
    let mut bad = HashMap::new();
    bad.insert((1, 2), 3);
    let error = query("UPDATE things SET meta = $1")
        .bind_json(&bad)
        .execute(db)
        .await
        .unwrap_err();
    assert!(matches!(error, DbError::Encode { .. }), "{error}");

    // Timestamps order the same way on every engine (on SQLite: as text), including
    // sub-second differences and bound comparison values.
    let base = at("2024-01-01T00:00:00Z");
    for (name, offset) in [
        ("t3", Duration::seconds(10)),
        ("t1", Duration::zero()),
        ("t2", Duration::microseconds(1)),
    ] {
        query("INSERT INTO things (id, name, count, flag, created_at) VALUES ($1, $2, 0, $3, $4)")
            .bind(Uuid::now_v7())
            .bind(name)
            .bind(false)
            .bind(base + offset)
            .execute(db)
            .await
            .unwrap();
    }
    let names: Vec<String> = query(
        "SELECT name FROM things WHERE created_at >= $1 AND created_at < $2 ORDER BY created_at",
    )
    .bind(base)
    .bind(at("2024-02-01T00:00:00Z"))
    .fetch_all(db)
    .await
    .unwrap()
    .iter()
    .map(|row| row.get("name").unwrap())
    .collect();
    assert_eq!(names, ["t1", "t2", "t3"]);
    let later = query("SELECT COUNT(*) AS n FROM things WHERE created_at > $1")
        .bind(base)
        .fetch_optional(db)
        .await
        .unwrap()
        .unwrap()
        .get::<i64>("n")
        .unwrap();
    assert_eq!(later, 4, "t2, t3 and the two rows of May");

    // Keyset pagination as generated services write it: a row comparison on (created_at, id)
    // and a bound LIMIT.
    let page: Vec<String> = query(
        r#"SELECT "name" FROM "things" WHERE ("created_at", "id") < ($1, $2) ORDER BY "created_at" DESC, "id" DESC LIMIT $3"#,
    )
    .bind(base + Duration::seconds(10))
    .bind(Uuid::nil())
    .bind(2i64)
    .fetch_all(db)
    .await
    .unwrap()
    .iter()
    .map(|row| row.get("name").unwrap())
    .collect();
    assert_eq!(page, ["t2", "t1"]);

    assert_eq!(
        query("UPDATE things SET maybe_flag = $1")
            .bind(true)
            .execute(db)
            .await
            .unwrap(),
        5
    );
    assert!(
        query(select)
            .bind(Uuid::new_v4())
            .fetch_optional(db)
            .await
            .unwrap()
            .is_none()
    );
    db.ping().await.expect("ping");
}

async fn migrations_are_idempotent(db: &Db) {
    db.migrate(&THINGS).await.expect("first run");
    db.migrate(&THINGS).await.expect("second run is a no-op");
    let applied = query("SELECT COUNT(*) AS n FROM _sqlx_migrations")
        .fetch_optional(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(applied.get::<i64>("n").unwrap(), 1);

    // Editing an applied migration is refused instead of silently ignored.
    static EDITED: Migrations = Migrations {
        sqlite: &[Migration {
            version: 1,
            description: "things",
            sql: "CREATE TABLE other (id TEXT)",
        }],
        postgres: &[Migration {
            version: 1,
            description: "things",
            sql: "CREATE TABLE other (id UUID)",
        }],
        mysql: &[Migration {
            version: 1,
            description: "things",
            sql: "CREATE TABLE other (id CHAR(36))",
        }],
    };
    assert!(matches!(
        db.migrate(&EDITED).await,
        Err(DbError::Migrate(_))
    ));
}

/// A service generated for one distributed engine refuses to start on the other one (or on
/// a distributed engine when it only has SQLite scripts) instead of running without tables.
async fn migrations_for_another_engine_are_refused(db: &Db) {
    let engine = db.engine();
    // What a service generated for `declared` has: scripts for SQLite (embedded runs) and for
    // `declared`, none for the other engine.
    let generated_for = |declared: Engine| Migrations {
        sqlite: THINGS.sqlite,
        postgres: if declared == Engine::Postgres {
            THINGS.postgres
        } else {
            &[]
        },
        mysql: if declared == Engine::Mysql {
            THINGS.mysql
        } else {
            &[]
        },
    };
    let (migrations, declared) = match engine {
        Engine::Postgres => (generated_for(Engine::Mysql), Engine::Mysql),
        Engine::Mysql => (generated_for(Engine::Postgres), Engine::Postgres),
        // Every generated service has SQLite scripts; a hand-written list may lack them.
        Engine::Sqlite => (
            Migrations {
                sqlite: &[],
                ..THINGS
            },
            Engine::Postgres,
        ),
    };
    let error = db.migrate(&migrations).await.unwrap_err();
    assert!(
        matches!(error, DbError::NoMigrationsForEngine { engine: e, declared: d } if e == engine && d == declared),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "no migrations for {engine}; its store is declared for {declared}"
        )),
        "{message}"
    );
    if engine != Engine::Sqlite {
        let error = db
            .migrate(&generated_for(Engine::Sqlite))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains(&format!(
                "no migrations for {engine}; its store is declared for sqlite"
            )),
            "{error}"
        );
    }
    // Nothing at all to apply is not an error (a service without tables of its own).
    let none = Migrations {
        sqlite: &[],
        postgres: &[],
        mysql: &[],
    };
    db.migrate(&none).await.expect("no migrations anywhere");
    // Its own engine's list is applied as usual.
    db.migrate(&generated_for(engine))
        .await
        .expect("own engine");
    let applied = query("SELECT COUNT(*) AS n FROM things")
        .fetch_optional(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(applied.get::<i64>("n").unwrap(), 0);
}

#[tokio::test]
async fn sqlite_round_trip() {
    let (db, _dir) = sqlite_db().await;
    assert_eq!(db.engine(), Engine::Sqlite);
    round_trip(&db).await;
}

#[tokio::test]
async fn sqlite_migrations_run_twice_are_a_no_op() {
    let (db, _dir) = sqlite_db().await;
    migrations_are_idempotent(&db).await;
}

#[tokio::test]
async fn sqlite_refuses_migrations_for_another_engine() {
    let (db, _dir) = sqlite_db().await;
    migrations_for_another_engine_are_refused(&db).await;
}

#[tokio::test]
async fn sqlite_stores_uuids_and_timestamps_as_fixed_text() {
    let (db, _dir) = sqlite_db().await;
    db.migrate(&THINGS).await.unwrap();
    let id = Uuid::now_v7();
    query("INSERT INTO things (id, name, count, flag, created_at) VALUES ($1, 'x', 0, $2, $3)")
        .bind(id)
        .bind(true)
        .bind(at("2024-01-02T03:04:05Z"))
        .execute(&db)
        .await
        .unwrap();
    let row = query("SELECT CAST(id AS TEXT) AS id, CAST(created_at AS TEXT) AS created_at, typeof(flag) AS flag FROM things")
        .fetch_optional(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.get::<String>("id").unwrap(),
        id.hyphenated().to_string()
    );
    assert_eq!(
        row.get::<String>("created_at").unwrap(),
        "2024-01-02T03:04:05.000000Z"
    );
    assert_eq!(row.get::<String>("flag").unwrap(), "integer");
}

/// One read-modify-write of a counter row in a transaction: read the count, write it back plus
/// one. Correct only when transactions that write never interleave.
async fn increment(db: &Db, id: Uuid) -> Result<(), DbError> {
    let mut tx = db.begin().await?;
    let row = query("SELECT count FROM things WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut tx)
        .await?
        .expect("the counter row");
    let count: i64 = row.get("count")?;
    tokio::task::yield_now().await;
    query("UPDATE things SET count = $2 WHERE id = $1")
        .bind(id)
        .bind(count + 1)
        .execute(&mut tx)
        .await?;
    tx.commit().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_transactions_that_read_then_write_neither_fail_nor_lose_updates() {
    let (db, _dir) = sqlite_db().await;
    db.migrate(&THINGS).await.unwrap();
    let id = Uuid::now_v7();
    query(
        "INSERT INTO things (id, name, count, flag, created_at) VALUES ($1, 'counter', 0, $2, $3)",
    )
    .bind(id)
    .bind(false)
    .bind(Utc::now())
    .execute(&db)
    .await
    .unwrap();
    // A deferred transaction would read under a shared lock and then fail to upgrade it
    // ("database is locked"): taking the write lock up front queues them instead, with no
    // retry needed.
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { increment(&db, id).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("every increment commits");
    }
    let row = query("SELECT count FROM things WHERE id = $1")
        .bind(id)
        .fetch_optional(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.get::<i64>("count").unwrap(), 40);
}

#[tokio::test]
async fn sqlite_url_creates_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.sqlite");
    let db = Db::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    db.ping().await.unwrap();
    assert!(path.exists());
    db.close().await;
}

#[tokio::test]
async fn unsupported_urls_are_refused_without_echoing_credentials() {
    let error = Db::connect("mssql://root:hunter2@localhost/db")
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("`mssql`"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn postgres_round_trip() {
    if !infra_available(5432, "PostgreSQL", "postgres_round_trip") {
        return;
    }
    let database = PgDatabase::new();
    // The database does not exist yet: connect creates it.
    let db = Db::connect(&database.url)
        .await
        .expect("connect and create database");
    assert_eq!(db.engine(), Engine::Postgres);
    round_trip(&db).await;
    db.close().await;
}

#[tokio::test]
async fn postgres_migrations_run_twice_are_a_no_op() {
    if !infra_available(
        5432,
        "PostgreSQL",
        "postgres_migrations_run_twice_are_a_no_op",
    ) {
        return;
    }
    let database = PgDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    migrations_are_idempotent(&db).await;
    db.close().await;
    // A second pool on the now existing database connects without trying to create it.
    let again = Db::connect(&database.url).await.expect("reconnect");
    again.migrate(&THINGS).await.expect("still a no-op");
    again.close().await;
}

#[tokio::test]
async fn postgres_refuses_migrations_for_another_engine() {
    if !infra_available(
        5432,
        "PostgreSQL",
        "postgres_refuses_migrations_for_another_engine",
    ) {
        return;
    }
    let database = PgDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    migrations_for_another_engine_are_refused(&db).await;
    db.close().await;
}

#[tokio::test]
async fn mysql_round_trip() {
    if !infra_available(MYSQL_PORT, "MySQL", "mysql_round_trip") {
        return;
    }
    let database = MySqlDatabase::new();
    // The database does not exist yet: connect creates it.
    let db = Db::connect(&database.url)
        .await
        .expect("connect and create database");
    assert_eq!(db.engine(), Engine::Mysql);
    round_trip(&db).await;
    db.close().await;
}

#[tokio::test]
async fn mysql_migrations_run_twice_are_a_no_op() {
    if !infra_available(
        MYSQL_PORT,
        "MySQL",
        "mysql_migrations_run_twice_are_a_no_op",
    ) {
        return;
    }
    let database = MySqlDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    migrations_are_idempotent(&db).await;
    db.close().await;
    // A second pool on the now existing database connects without trying to create it.
    let again = Db::connect(&database.url).await.expect("reconnect");
    again.migrate(&THINGS).await.expect("still a no-op");
    again.close().await;
}

#[tokio::test]
async fn mysql_refuses_migrations_for_another_engine() {
    if !infra_available(
        MYSQL_PORT,
        "MySQL",
        "mysql_refuses_migrations_for_another_engine",
    ) {
        return;
    }
    let database = MySqlDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    migrations_for_another_engine_are_refused(&db).await;
    db.close().await;
}

#[tokio::test]
async fn mysql_stores_uuids_as_text_and_timestamps_as_utc_datetimes() {
    if !infra_available(
        MYSQL_PORT,
        "MySQL",
        "mysql_stores_uuids_as_text_and_timestamps_as_utc_datetimes",
    ) {
        return;
    }
    let database = MySqlDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    db.migrate(&THINGS).await.unwrap();
    // The session's zone does not change what is stored: the UTC wall-clock time is. (One
    // transaction, so that every statement runs on the connection whose zone was changed.)
    let mut tx = db.begin().await.unwrap();
    query("SET time_zone = '+05:00'")
        .execute(&mut tx)
        .await
        .unwrap();
    let id = Uuid::now_v7();
    let created = at("2024-01-02T03:04:05.000007Z");
    query("INSERT INTO things (id, name, count, flag, created_at, tags) VALUES ($1, 'x', 0, $2, $3, $4)")
        .bind(id)
        .bind(true)
        .bind(created)
        .bind_json(&["a"])
        .execute(&mut tx)
        .await
        .unwrap();
    let read_back = query("SELECT created_at FROM things WHERE created_at = $1")
        .bind(created)
        .fetch_optional(&mut tx)
        .await
        .unwrap()
        .expect("found by its timestamp");
    assert_eq!(
        read_back.get::<DateTime<Utc>>("created_at").unwrap(),
        created
    );
    tx.commit().await.unwrap();
    let row = query(
        "SELECT id, DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f') AS created_at, \
         CAST(flag AS SIGNED) AS flag, tags, @@character_set_database AS charset, \
         @@collation_database AS collation FROM things",
    )
    .fetch_optional(&db)
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        row.get::<String>("id").unwrap(),
        id.hyphenated().to_string()
    );
    assert_eq!(
        row.get::<String>("created_at").unwrap(),
        "2024-01-02 03:04:05.000007"
    );
    assert_eq!(row.get::<i64>("flag").unwrap(), 1);
    assert_eq!(row.get::<String>("tags").unwrap(), r#"["a"]"#);
    assert_eq!(row.get::<String>("charset").unwrap(), "utf8mb4");
    assert_eq!(row.get::<String>("collation").unwrap(), "utf8mb4_bin");
    db.close().await;
}

#[tokio::test]
async fn mysql_statements_with_unmatched_placeholders_are_refused() {
    if !infra_available(
        MYSQL_PORT,
        "MySQL",
        "mysql_statements_with_unmatched_placeholders_are_refused",
    ) {
        return;
    }
    let database = MySqlDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    for result in [
        query("SELECT $2 AS n").bind(1i64).execute(&db).await,
        query("SELECT $1 AS n")
            .bind(1i64)
            .bind(2i64)
            .execute(&db)
            .await,
        query("SELECT ? AS n").bind(1i64).execute(&db).await,
    ] {
        assert!(matches!(result, Err(DbError::Encode { .. })), "{result:?}");
    }
    db.close().await;
}

#[test]
fn a_migration_opens_its_own_transaction_only_when_its_leading_comments_say_so() {
    let rebuild = "-- @generated by svcgen\n-- Changes of service `x`.\n-- no-transaction\n\nPRAGMA foreign_keys = OFF;\nBEGIN;\n";
    assert!(super::runs_outside_transaction(rebuild));
    assert!(!super::runs_outside_transaction(
        "-- @generated by svcgen\nCREATE TABLE t (id TEXT);\n"
    ));
    // Only the comments it starts with count, not a line further down.
    assert!(!super::runs_outside_transaction(
        "CREATE TABLE t (id TEXT);\n-- no-transaction\n"
    ));
}
