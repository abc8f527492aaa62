//! What `svcgen diff` calls breaking, and what it calls safe.

use super::*;

/// A system with an auth service, a `user.joined` event and a `catalog` service; `catalog`
/// holds `fields` in its entity `item` and serves `routes`; `extra` is added at the top.
fn spec(fields: &str, routes: &str, event: &str, extra: &str) -> String {
    format!(
        "system: shop\n{extra}auth: {{ service: accounts, roles: [user, admin] }}\nstores:\n  db: {{ engine: postgres }}\n  accounts_db: {{ engine: postgres }}\nevents:\n  item.added:\n{event}\nservices:\n  accounts: {{ uses: auth, store: accounts_db }}\n  catalog:\n    store: db\n    entities:\n      item:\n        fields:\n{fields}    routes:\n{routes}"
    )
}

const FIELDS: &str = "          name: string(1..80)\n          kind: \"enum(a|b)\"\n";
const ROUTES: &str = "      POST /items: { create: item, emit: item.added }\n      GET /items/{id}: { get: item, public: true }\n";
const EVENT: &str = "    fields: { item_id: uuid, name: string }";

fn compare_specs(old: &str, new: &str) -> Vec<Change> {
    let check = |s: &str| crate::check(s).unwrap_or_else(|p| panic!("{p:?}")).system;
    compare(&check(old), &check(new))
}

/// The ids of the breaking changes that are not acknowledged.
fn open_ids(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .filter(|c| c.breaking && !c.acknowledged)
        .map(|c| c.id.clone())
        .collect()
}

#[test]
fn the_same_spec_has_no_changes() {
    let base = spec(FIELDS, ROUTES, EVENT, "");
    assert_eq!(compare_specs(&base, &base), []);
}

#[test]
fn a_route_removed_or_closed_breaks_and_a_route_added_does_not() {
    let base = spec(FIELDS, ROUTES, EVENT, "");
    let closed = spec(
        FIELDS,
        "      POST /items: { create: item, emit: item.added, roles: [admin] }\n      GET /items/{id}: { get: item }\n      GET /items: { list: item }\n",
        EVENT,
        "",
    );
    let changes = compare_specs(&base, &closed);
    assert_eq!(
        open_ids(&changes),
        [
            "route GET /items/{id}: needs a signed-in caller",
            "route POST /items: needs the role `admin`",
        ]
    );
    assert!(
        changes
            .iter()
            .any(|c| c.id == "route GET /items: added" && !c.breaking)
    );
    let removed = spec(
        FIELDS,
        "      POST /items: { create: item, emit: item.added }\n",
        EVENT,
        "",
    );
    assert_eq!(
        open_ids(&compare_specs(&base, &removed)),
        ["route GET /items/{id}: removed"]
    );
}

#[test]
fn request_and_response_fields_break_as_clients_feel_them() {
    let base = spec(FIELDS, ROUTES, EVENT, "");
    let fields = "          name: string(1..200)\n          kind: \"enum(a|b|c)\"\n          sku: string\n          note: \"text?\"\n";
    let changes = compare_specs(&base, &spec(fields, ROUTES, EVENT, ""));
    let ids = open_ids(&changes);
    // A wider request type is safe; a new required field is not; a response enum with a word
    // its clients do not know is not either.
    assert!(
        ids.contains(&"request POST /items: new required field `sku`".to_owned()),
        "{ids:?}"
    );
    assert!(
        ids.contains(
            &"response GET /items/{id}: field `kind` changes from `enum(a|b)` to `enum(a|b|c)`"
                .to_owned()
        ),
        "{ids:?}"
    );
    assert!(!ids.iter().any(|id| id.contains("`name`")), "{ids:?}");
    assert!(
        changes
            .iter()
            .any(|c| c.id == "request POST /items: new optional field `note`" && !c.breaking)
    );
    // The table grows, but the rows it holds have no `sku`: generate would refuse it.
    let tables: Vec<&String> = changes
        .iter()
        .filter(|c| c.surface == Surface::Table && c.breaking)
        .map(|c| &c.id)
        .collect();
    assert_eq!(tables.len(), 1, "{tables:?}");
    assert!(
        tables[0].contains("new field `sku` of `item` is required"),
        "{tables:?}"
    );
}

#[test]
fn an_event_change_breaks_unless_its_version_goes_up() {
    let base = spec(FIELDS, ROUTES, EVENT, "");
    let narrower = "    fields: { item_id: uuid }";
    let changes = compare_specs(&base, &spec(FIELDS, ROUTES, narrower, ""));
    assert_eq!(
        open_ids(&changes),
        ["event item.added: field `name` removed"]
    );
    assert_eq!(changes[0].note.as_deref(), Some("version still 1"));

    let bumped = "    version: 2\n    fields: { item_id: uuid }";
    let changes = compare_specs(&base, &spec(FIELDS, ROUTES, bumped, ""));
    assert_eq!(open_ids(&changes), Vec::<String>::new());
    let change = changes
        .iter()
        .find(|c| c.surface == Surface::Event)
        .unwrap();
    assert!(change.breaking && change.acknowledged, "{change:?}");
    assert_eq!(change.note.as_deref(), Some("version 1 → 2"));
}

#[test]
fn a_breaking_change_listed_under_acknowledged_is_accepted() {
    let base = spec(FIELDS, ROUTES, EVENT, "");
    let removed = "      POST /items: { create: item, emit: item.added }\n";
    let acknowledged = spec(
        FIELDS,
        removed,
        EVENT,
        "acknowledged:\n  - \"route GET /items/{id}: removed\"\n",
    );
    let changes = compare_specs(&base, &acknowledged);
    assert_eq!(unacknowledged(&changes), 0, "{changes:?}");
    assert!(human(&changes).contains("breaking (acknowledged)"));
    let report: serde_json::Value = serde_json::from_str(&json(&changes)).unwrap();
    assert_eq!(report["breaking"], 1);
    assert_eq!(report["unacknowledged"], 0);
}

#[test]
fn dropped_columns_and_tables_break_and_refused_changes_are_reported() {
    let base = spec(FIELDS, ROUTES, EVENT, "");
    let removed = spec(
        "          name: string(1..80)\n        removed: [kind]\n",
        ROUTES,
        EVENT,
        "",
    );
    let ids = open_ids(&compare_specs(&base, &removed));
    assert!(
        ids.contains(&"table catalog.item: column `kind` dropped with its values".to_owned()),
        "{ids:?}"
    );
    let undeclared = spec("          name: string(1..80)\n", ROUTES, EVENT, "");
    let ids = open_ids(&compare_specs(&base, &undeclared));
    assert!(
        ids.iter().any(|id| id.starts_with(
            "table catalog: svcgen generate refuses this: entity `item` no longer has field `kind`"
        )),
        "{ids:?}"
    );
}
