//! Planning migrations from spec changes: what becomes a step, what is refused and why.

use super::history::{MigrationFile, ServiceHistory};
use super::*;
use crate::diag::Severity;

/// A one-service spec with `fields` (and `extra` keys) on its entity `item`.
fn spec(fields: &str, extra: &str) -> String {
    format!(
        "system: shop\nstores:\n  db: {{ engine: postgres }}\nservices:\n  catalog:\n    store: db\n{extra}    entities:\n      item:\n        fields:\n{fields}    routes:\n      GET /items: {{ list: item, public: true }}\n"
    )
}

/// The history a first generation of `source` leaves: the snapshot and `0001_init` per engine.
fn history_of(source: &str) -> History {
    let checked = crate::check(source).unwrap_or_else(|p| panic!("{p:?}"));
    let service = &checked.system.services[0];
    let init = |_| {
        vec![MigrationFile {
            version: 1,
            description: "init".into(),
            file_name: "0001_init.sql".into(),
            sql: "-- the first migration\n".into(),
        }]
    };
    let mut history = History::default();
    history.services.insert(
        service.name.value.clone(),
        ServiceHistory {
            snapshot: Some(Schema::of(service)),
            migrations: [Engine::Sqlite, Engine::Postgres]
                .into_iter()
                .map(|e| (e, init(e)))
                .collect(),
        },
    );
    history
}

/// The migrations `after` gets over the history of `before`, or its problems' messages.
fn evolve_from(before: &str, after: &str) -> Result<Vec<Migration>, Vec<String>> {
    let checked = crate::check(after).unwrap_or_else(|p| panic!("{p:?}"));
    match evolve(&checked.system, &history_of(before), after) {
        Ok(mut evolution) => Ok(evolution
            .services
            .remove("catalog")
            .unwrap()
            .files
            .remove(&Engine::Postgres)
            .unwrap()),
        Err(problems) => Err(problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| format!("{}: {}", p.span.line, p.message))
            .collect()),
    }
}

/// The one table change of the newest migration.
fn change_of(migrations: &[Migration]) -> &TableChange {
    let Some(Migration {
        body: Body::Steps(steps),
        ..
    }) = migrations.last()
    else {
        panic!("no new migration: {migrations:?}");
    };
    match steps.as_slice() {
        [Step::AlterTable(change)] => change,
        other => panic!("{other:?}"),
    }
}

const V1: &str = "          name: string(1..80)\n          price: int(0..1000)\n";

#[test]
fn an_unchanged_spec_adds_no_migration_and_keeps_the_written_ones() {
    let migrations = evolve_from(&spec(V1, ""), &spec(V1, "")).unwrap();
    assert_eq!(migrations.len(), 1);
    assert!(matches!(&migrations[0].body, Body::Written(sql) if sql == "-- the first migration\n"));
}

#[test]
fn a_new_field_with_a_default_is_added_in_a_second_migration_named_after_it() {
    let v2 = format!("{V1}          featured: {{ type: bool, default: false }}\n");
    let migrations = evolve_from(&spec(V1, ""), &spec(&v2, "")).unwrap();
    assert_eq!(migrations.len(), 2);
    assert_eq!(migrations[1].version, 2);
    assert_eq!(migrations[1].file_name, "0002_item_add_featured.sql");
    let change = change_of(&migrations);
    assert_eq!(change.added, ["featured"]);
    assert!(change.backfill.is_empty());
}

#[test]
fn a_field_missing_from_the_spec_is_refused_unless_declared_removed_or_renamed() {
    let v2 = "          name: string(1..80)\n";
    let problems = evolve_from(&spec(V1, ""), &spec(v2, "")).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("no longer has field `price`"),
        "{problems:?}"
    );

    let removed = spec(v2, "").replace(
        "        fields:",
        "        removed: [price]\n        fields:",
    );
    let change_set = evolve_from(&spec(V1, ""), &removed).unwrap();
    assert_eq!(change_of(&change_set).dropped, ["price"]);

    let renamed = "          name: string(1..80)\n          cost: { type: int(0..1000), renamed_from: price }\n";
    let change_set = evolve_from(&spec(V1, ""), &spec(renamed, "")).unwrap();
    let change = change_of(&change_set);
    assert_eq!(change.renamed, [("price".to_owned(), "cost".to_owned())]);
    assert!(change.added.is_empty() && change.dropped.is_empty());
}

#[test]
fn a_new_required_field_needs_a_default_or_a_backfill() {
    let v2 = format!("{V1}          sku: string(1..20)\n");
    let problems = evolve_from(&spec(V1, ""), &spec(&v2, "")).unwrap_err();
    assert!(
        problems[0].contains("new field `sku` of `item` is required"),
        "{problems:?}"
    );
    assert!(
        problems[0].starts_with("12:"),
        "points at the field: {problems:?}"
    );

    let v2 = format!("{V1}          sku: {{ type: string(1..20), backfill: upper(name) }}\n");
    let migrations = evolve_from(&spec(V1, ""), &spec(&v2, "")).unwrap();
    assert_eq!(
        change_of(&migrations).backfill.get("sku"),
        Some(&Fill::Expression("upper(name)".into()))
    );
}

#[test]
fn wider_types_migrate_and_narrower_ones_are_refused() {
    let wider = "          name: string(1..200)\n          price: int(0..5000)\n";
    let migrations = evolve_from(&spec(V1, ""), &spec(wider, "")).unwrap();
    assert_eq!(change_of(&migrations).altered, ["name", "price"]);

    let narrower = "          name: string(1..40)\n          price: int(1..1000)\n";
    let problems = evolve_from(&spec(V1, ""), &spec(narrower, "")).unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("its maximum length is lower"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("its smallest value is higher"),
        "{problems:?}"
    );

    let other_kind = "          name: string(1..80)\n          price: string\n";
    let problems = evolve_from(&spec(V1, ""), &spec(other_kind, "")).unwrap_err();
    assert!(
        problems[0].contains("only to a wider one of the same kind"),
        "{problems:?}"
    );
}

#[test]
fn an_optional_field_becomes_required_only_with_a_value_for_empty_rows() {
    let v1 = format!("{V1}          note: \"text?\"\n");
    let required = format!("{V1}          note: text\n");
    let problems = evolve_from(&spec(&v1, ""), &spec(&required, "")).unwrap_err();
    assert!(problems[0].contains("becomes required"), "{problems:?}");
    let filled = format!("{V1}          note: {{ type: text, backfill: \"''\" }}\n");
    let migrations = evolve_from(&spec(&v1, ""), &spec(&filled, "")).unwrap();
    assert_eq!(change_of(&migrations).altered, ["note"]);
}

#[test]
fn an_entity_missing_from_the_spec_is_refused_unless_declared_removed() {
    let two = spec(V1, "").replace(
        "    routes:",
        "      label:\n        fields:\n          text: string\n    routes:",
    );
    let problems = evolve_from(&two, &spec(V1, "")).unwrap_err();
    assert!(
        problems[0].contains("no longer has entity `label`"),
        "{problems:?}"
    );
    let migrations = evolve_from(&two, &spec(V1, "    removed: [label]\n")).unwrap();
    let Body::Steps(steps) = &migrations[1].body else {
        panic!()
    };
    assert!(matches!(steps.as_slice(), [Step::DropTable(t)] if t.name == "label"));
    assert_eq!(migrations[1].file_name, "0002_drop_label.sql");
}

#[test]
fn an_entity_renamed_keeps_its_table_under_the_new_name() {
    let renamed = spec(V1, "").replace(
        "      item:\n",
        "      product:\n        renamed_from: item\n",
    );
    let renamed = renamed.replace("list: item", "list: product");
    let migrations = evolve_from(&spec(V1, ""), &renamed).unwrap();
    let change = change_of(&migrations);
    assert!(change.renames_table());
    assert_eq!(
        (change.old.name.as_str(), change.new.name.as_str()),
        ("item", "product")
    );
    assert_eq!(migrations[1].file_name, "0002_rename_item_to_product.sql");
}

#[test]
fn a_long_description_is_cut_at_a_whole_part() {
    let fields: String = (1..=8)
        .map(|i| format!("          extra_field_{i}: \"text?\"\n"))
        .collect();
    let migrations = evolve_from(&spec(V1, ""), &spec(&format!("{V1}{fields}"), "")).unwrap();
    let description = &migrations[1].description;
    assert!(description.len() <= MAX_DESCRIPTION + 4, "{description}");
    assert!(description.starts_with("item_add_extra_field_1_item_add_extra_field_2"));
    assert!(description.ends_with("_etc"), "{description}");
}
