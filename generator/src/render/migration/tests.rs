//! The SQL of migrations on the engines' own terms: statement order, names within limits,
//! comments that stay comments.

use crate::evolve::{Body, History, SNAPSHOT_FILE};
use crate::model::Engine;

/// A one-service spec whose store is on `engine`, with `entities` (YAML below `entities:`).
fn spec(engine: &str, entities: &str) -> String {
    format!(
        "system: shop\nstores:\n  db: {{ engine: {engine} }}\nservices:\n  catalog:\n    store: db\n    entities:\n{entities}"
    )
}

/// The SQL of the second migration for `engine` when `after` follows `before`.
fn second_migration(engine: &str, before: &str, after: &str) -> String {
    let first = crate::check(&spec(engine, before)).unwrap_or_else(|p| panic!("{p:?}"));
    let service = &first.system.services[0];
    let snapshot = crate::evolve::Schema::of(service).to_snapshot();
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("services/catalog/migrations");
    let engine_keyword = match engine {
        "mysql" => Engine::Mysql,
        _ => Engine::Postgres,
    }
    .keyword();
    for sub in ["sqlite", engine_keyword] {
        std::fs::create_dir_all(migrations.join(sub)).unwrap();
        std::fs::write(migrations.join(sub).join("0001_init.sql"), "-- first\n").unwrap();
    }
    std::fs::write(migrations.join(SNAPSHOT_FILE), snapshot).unwrap();
    let history = History::read(dir.path()).unwrap();
    let source = spec(engine, after);
    let checked = crate::check(&source).unwrap_or_else(|p| panic!("{p:?}"));
    let evolution = crate::evolve::evolve(&checked.system, &history, &source)
        .unwrap_or_else(|p| panic!("{p:?}"));
    let files = &evolution.services["catalog"].files;
    let engine = files
        .keys()
        .find(|e| e.keyword() == engine_keyword)
        .unwrap();
    match &files[engine].last().unwrap().body {
        Body::Steps(steps) => super::steps_migration("catalog", steps, engine_keyword),
        other => panic!("{other:?}"),
    }
}

/// Where `needle` is in `sql`.
fn at(sql: &str, needle: &str) -> usize {
    sql.find(needle)
        .unwrap_or_else(|| panic!("no `{needle}` in:\n{sql}"))
}

#[test]
fn a_table_is_renamed_before_a_new_one_references_it() {
    let before = "      user:\n        fields: { name: string }\n";
    let after = "      member:\n        renamed_from: user\n        fields: { name: string }\n      badge:\n        fields: { member_id: { type: uuid, references: member } }\n";
    for engine in ["postgres", "mysql"] {
        let sql = second_migration(engine, before, after);
        assert!(
            at(&sql, "RENAME") < at(&sql, "CREATE TABLE"),
            "{engine}:\n{sql}"
        );
    }
}

#[test]
fn foreign_keys_are_dropped_before_the_keys_mysql_may_index_them_with() {
    let before = "      post:\n        fields: { title: string }\n      reaction:\n        fields: { post_id: { type: uuid, references: post }, kind: string(1..20) }\n        unique: [[post_id, kind]]\n";
    let after = "      post:\n        fields: { title: string }\n      like:\n        renamed_from: reaction\n        fields: { post_id: { type: uuid, references: post }, kind: string(1..20) }\n        unique: [[post_id, kind]]\n";
    let sql = second_migration("mysql", before, after);
    assert!(
        at(&sql, "DROP FOREIGN KEY `reaction_post_id_fkey`")
            < at(&sql, "DROP INDEX `reaction_post_id_kind_key`"),
        "{sql}"
    );
}

#[test]
fn a_description_over_several_lines_stays_one_comment() {
    let before = "      other:\n        fields: { x: string }\n";
    let after = format!(
        "{before}      note:\n        description: |\n          A note.\n          DROP TABLE everything;\n        fields: {{ title: string }}\n"
    );
    let sql = second_migration("postgres", before, &after);
    let line = sql
        .lines()
        .find(|l| l.contains("DROP TABLE everything"))
        .unwrap_or_else(|| panic!("{sql}"));
    assert!(line.trim_start().starts_with("--"), "{sql}");
}

#[test]
fn long_index_names_stay_distinct_on_postgres_and_text_defaults_are_expressions_on_mysql() {
    let before = "      subscription_invoice_line_item:\n        fields: { customer_account_id: uuid, billing_period_start: timestamp, billing_period_end: timestamp }\n";
    let after = format!(
        "{before}        indexes:\n          - [customer_account_id, billing_period_start]\n          - [customer_account_id, billing_period_end]\n"
    );
    let sql = second_migration("postgres", before, &after);
    let names: Vec<&str> = sql
        .lines()
        .filter_map(|l| l.strip_prefix("CREATE INDEX \"")?.split('"').next())
        .collect();
    assert_eq!(names.len(), 2, "{sql}");
    assert_ne!(names[0], names[1]);
    assert!(names.iter().all(|n| n.len() <= 63), "{names:?}");

    let before = "      item:\n        fields: { name: string }\n";
    let after = "      item:\n        fields: { name: string, currency: { type: string(3..3), default: EUR } }\n";
    let sql = second_migration("mysql", before, after);
    assert!(
        sql.contains("`currency` LONGTEXT NOT NULL DEFAULT ('EUR')"),
        "{sql}"
    );
}
