//! A capability's migration history kept apart from the service's own, on every engine: a
//! database made when the two shared `_sqlx_migrations` is taken over with its rows intact,
//! and a service's own migration 1 then runs beside the capability's migration 1.

use super::*;
use crate::test_support::{MYSQL_PORT, MySqlDatabase, PgDatabase, infra_available, sqlite_db};

/// A capability's one table, per engine.
static LABELS: Migrations = Migrations {
    sqlite: &[Migration {
        version: 1,
        description: "labels",
        sql: "CREATE TABLE labels (id TEXT PRIMARY KEY NOT NULL, text TEXT NOT NULL)",
    }],
    postgres: &[Migration {
        version: 1,
        description: "labels",
        sql: "CREATE TABLE labels (id TEXT PRIMARY KEY NOT NULL, text TEXT NOT NULL)",
    }],
    mysql: &[Migration {
        version: 1,
        description: "labels",
        sql: "CREATE TABLE labels (id VARCHAR(36) PRIMARY KEY NOT NULL, text LONGTEXT NOT NULL)",
    }],
};

static LABEL_TABLES: CapabilityTables = CapabilityTables {
    history: "_svcgen_labels_migrations",
    adopt: "ALTER TABLE _sqlx_migrations RENAME TO _svcgen_labels_migrations",
    migrations: &LABELS,
};

/// The service's own table, also migration 1.
static OWN: Migrations = Migrations {
    sqlite: &[Migration {
        version: 1,
        description: "init",
        sql: "CREATE TABLE shelf (id TEXT PRIMARY KEY NOT NULL)",
    }],
    postgres: &[Migration {
        version: 1,
        description: "init",
        sql: "CREATE TABLE shelf (id TEXT PRIMARY KEY NOT NULL)",
    }],
    mysql: &[Migration {
        version: 1,
        description: "init",
        sql: "CREATE TABLE shelf (id VARCHAR(36) PRIMARY KEY NOT NULL)",
    }],
};

async fn labels(db: &Db) -> Vec<String> {
    let rows = query("SELECT text FROM labels ORDER BY text")
        .fetch_all(db)
        .await
        .expect("labels readable");
    rows.iter().map(|r| r.get("text").unwrap()).collect()
}

/// The capability's migrations were recorded in `_sqlx_migrations`, as a capability-only
/// service did before: they move to their own history, and the service's own list starts.
async fn history_is_taken_over(db: &Db) {
    db.migrate(&LABELS).await.expect("the old layout");
    query("INSERT INTO labels (id, text) VALUES ('1', 'kept')")
        .execute(db)
        .await
        .unwrap();
    db.migrate_capability(&LABEL_TABLES)
        .await
        .expect("the history taken over");
    assert!(db.has_table("_svcgen_labels_migrations").await.unwrap());
    assert_eq!(labels(db).await, ["kept"]);
    db.migrate(&OWN)
        .await
        .expect("the service's own migration 1");
    for _ in 0..2 {
        db.migrate_capability(&LABEL_TABLES).await.expect("a no-op");
        db.migrate(&OWN).await.expect("a no-op");
    }
    query("INSERT INTO shelf (id) VALUES ('a')")
        .execute(db)
        .await
        .unwrap();
    assert_eq!(labels(db).await, ["kept"]);
}

/// A new database gets both histories side by side.
async fn fresh_database_gets_both(db: &Db) {
    db.migrate_capability(&LABEL_TABLES)
        .await
        .expect("capability");
    db.migrate(&OWN).await.expect("own");
    db.migrate_capability(&LABEL_TABLES).await.expect("a no-op");
    assert!(db.has_table("_svcgen_labels_migrations").await.unwrap());
    assert!(db.has_table("_sqlx_migrations").await.unwrap());
    assert!(labels(db).await.is_empty());
}

#[tokio::test]
async fn sqlite_takes_over_a_capability_history() {
    let (db, _dir) = sqlite_db().await;
    history_is_taken_over(&db).await;
    let (fresh, _fresh_dir) = sqlite_db().await;
    fresh_database_gets_both(&fresh).await;
}

#[tokio::test]
async fn postgres_takes_over_a_capability_history() {
    if !infra_available(
        5432,
        "PostgreSQL",
        "postgres_takes_over_a_capability_history",
    ) {
        return;
    }
    let (old, fresh) = (PgDatabase::new(), PgDatabase::new());
    let db = Db::connect(&old.url).await.expect("connect");
    history_is_taken_over(&db).await;
    db.close().await;
    let db = Db::connect(&fresh.url).await.expect("connect");
    fresh_database_gets_both(&db).await;
    db.close().await;
}

#[tokio::test]
async fn mysql_takes_over_a_capability_history() {
    if !infra_available(MYSQL_PORT, "MySQL", "mysql_takes_over_a_capability_history") {
        return;
    }
    let (old, fresh) = (MySqlDatabase::new(), MySqlDatabase::new());
    let db = Db::connect(&old.url).await.expect("connect");
    history_is_taken_over(&db).await;
    db.close().await;
    let db = Db::connect(&fresh.url).await.expect("connect");
    fresh_database_gets_both(&db).await;
    db.close().await;
}
