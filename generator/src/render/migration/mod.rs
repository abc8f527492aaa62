//! A service's migrations: one table per entity, with its columns, rules, keys and indexes, in
//! the SQL of each engine the service runs on.

mod alter;

pub use alter::steps_migration;

use super::text::render_template;
use crate::evolve::schema::{ColumnDef, ForeignKey, Role, Schema, SqlDefault, Table};
use crate::ident::{constraint_name, sql};
use crate::model::Type;
use serde::Serialize;
use tera::Context;

#[derive(Serialize)]
struct TableView {
    name: String,
    description: String,
    columns: Vec<ColumnView>,
    /// `CREATE INDEX` statements.
    indexes: Vec<String>,
    /// Written after the closing parenthesis of CREATE TABLE (MySQL's character set).
    options: &'static str,
    /// The trigger that counts the row's changes in its `version`.
    version_trigger: String,
    /// The statements of its search index (after the table), if its lists search.
    search: Vec<String>,
}

#[derive(Serialize)]
struct ColumnView {
    definition: String,
}

/// The SQL type of a column for an engine. `indexed`: the column is part of an index, which
/// matters on MySQL: it indexes no TEXT column without a prefix length.
fn sql_type(ty: &Type, engine: &str, indexed: bool) -> String {
    if engine == "mysql" {
        return mysql_type(ty, indexed).into_owned();
    }
    let postgres = engine == "postgres";
    let name = match ty.required() {
        Type::String { .. } | Type::Text | Type::Email | Type::Enum(_) => "TEXT",
        Type::Int { .. } => {
            if postgres {
                "BIGINT"
            } else {
                "INTEGER"
            }
        }
        Type::Bool => {
            if postgres {
                "BOOLEAN"
            } else {
                "INTEGER"
            }
        }
        Type::Uuid => {
            if postgres {
                "UUID"
            } else {
                "TEXT"
            }
        }
        Type::Timestamp => {
            if postgres {
                "TIMESTAMPTZ"
            } else {
                "TEXT"
            }
        }
        Type::List(_) | Type::Message(_) => {
            if postgres {
                "JSONB"
            } else {
                "TEXT"
            }
        }
        Type::Optional(_) => unreachable!("required() removes the optional wrapper"),
    };
    name.to_owned()
}

/// The longest indexed text MySQL keeps as a whole VARCHAR: 255 characters (1020 bytes in
/// utf8mb4), so that several such columns still fit an index key (3072 bytes).
const MYSQL_INDEXED_VARCHAR: u32 = 255;

/// The text MySQL cannot keep as an indexed VARCHAR (see [`mysql_type`]) is indexed by its
/// first characters, this many.
const MYSQL_INDEX_PREFIX: u32 = 255;

/// The MySQL type of a column, as the runtime stores values there (`svcgen_runtime::db::Bind`):
/// uuids as CHAR(36) text, timestamps as DATETIME(6) in UTC, lists as JSON. Text is LONGTEXT
/// (any length, as TEXT on the other engines), except indexed text whose values all fit a
/// VARCHAR: a bounded `string` up to [`MYSQL_INDEXED_VARCHAR`] characters, an `email` (at most
/// 254, as validated).
fn mysql_type(ty: &Type, indexed: bool) -> std::borrow::Cow<'static, str> {
    match ty.required() {
        Type::String { max: Some(max), .. } if indexed && *max <= MYSQL_INDEXED_VARCHAR => {
            format!("VARCHAR({max})").into()
        }
        Type::Email if indexed => "VARCHAR(254)".into(),
        // Every value is one of the words, so the longest word bounds the column.
        Type::Enum(words) => format!(
            "VARCHAR({})",
            words.iter().map(|w| w.len()).max().unwrap_or(1)
        )
        .into(),
        Type::String { .. } | Type::Text | Type::Email => "LONGTEXT".into(),
        Type::Int { .. } => "BIGINT".into(),
        Type::Bool => "BOOLEAN".into(),
        Type::Uuid => "CHAR(36)".into(),
        Type::Timestamp => "DATETIME(6)".into(),
        Type::List(_) | Type::Message(_) => "JSON".into(),
        Type::Optional(_) => unreachable!("required() removes the optional wrapper"),
    }
}

/// An identifier quoted for an engine: double quotes, or backquotes on MySQL (which reads a
/// double-quoted token as a string).
fn quoted(name: &str, engine: &str) -> String {
    if engine == "mysql" {
        format!("`{}`", name.replace('`', "``"))
    } else {
        sql(name)
    }
}

/// PostgreSQL's longest identifier, in bytes.
const POSTGRES_MAX_IDENTIFIER: usize = 63;

/// MySQL's longest identifier, in characters.
const MYSQL_MAX_IDENTIFIER: usize = 64;

/// An index name that the engine accepts. MySQL refuses names over 64 characters (PostgreSQL
/// cuts them at 63): a longer one keeps its first 55 characters and gets a hash of the whole
/// name, so that two long names sharing a beginning stay distinct.
fn index_name(name: String, engine: &str) -> String {
    // PostgreSQL cuts a name at 63 bytes, so two long names could end alike.
    let fits = match engine {
        "mysql" => name.chars().count() <= MYSQL_MAX_IDENTIFIER,
        "postgres" => name.len() <= POSTGRES_MAX_IDENTIFIER,
        _ => true,
    };
    if fits {
        return name;
    }
    // FNV-1a: stable across Rust versions and platforms, unlike `DefaultHasher`.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    let limit = if engine == "mysql" {
        MYSQL_MAX_IDENTIFIER
    } else {
        POSTGRES_MAX_IDENTIFIER
    };
    // Characters and bytes agree here: spec names are ASCII.
    let head: String = name.chars().take(limit - 9).collect();
    format!("{head}_{hash:08x}")
}

/// The function PostgreSQL's version triggers run, once per database.
const POSTGRES_NEXT_VERSION: &str = r#"CREATE OR REPLACE FUNCTION svcgen_next_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW."version" := OLD."version" + 1;
    RETURN NEW;
END
$$;"#;

/// The trigger that adds one to a row's `version` whenever the row changes, whatever statement
/// changes it (a route, a consumer, an RPC's own SQL, an upsert), so that the version is an
/// honest entity tag. SQLite cannot change the row in a BEFORE trigger: its trigger writes the
/// version after the change, unless the statement set the version itself (a nested trigger
/// does not fire again).
fn version_trigger(table: &str, engine: &str) -> String {
    let name = quoted(&index_name(format!("{table}_version"), engine), engine);
    let table = quoted(table, engine);
    let version = quoted("version", engine);
    match engine {
        "postgres" => format!(
            "CREATE TRIGGER {name} BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION svcgen_next_version();"
        ),
        "mysql" => format!(
            "CREATE TRIGGER {name} BEFORE UPDATE ON {table} FOR EACH ROW SET NEW.{version} = OLD.{version} + 1;"
        ),
        _ => format!(
            "CREATE TRIGGER {name} AFTER UPDATE ON {table} FOR EACH ROW WHEN NEW.{version} = OLD.{version}\nBEGIN\n    UPDATE {table} SET {version} = OLD.{version} + 1 WHERE \"id\" = NEW.\"id\";\nEND;"
        ),
    }
}

/// The column that holds what a table's search index reads, on PostgreSQL and MySQL (the
/// runtime's list module queries it by this name).
const SEARCH_COLUMN: &str = "svcgen_search";

/// The search index of `entity`'s `search` fields: the column that holds the text on
/// PostgreSQL (a `tsvector`) and MySQL (the fields lower-cased, so that the binary collation
/// does not make search case-sensitive), and the statements after the table: a GIN or
/// FULLTEXT index, or on SQLite an FTS5 table kept in step by triggers.
fn search_index(table: &Table, engine: &str) -> (Option<String>, Vec<String>) {
    if table.search.is_empty() {
        return (None, Vec::new());
    }
    let fields: Vec<String> = table.search.iter().map(|f| quoted(f, engine)).collect();
    let table = &table.name;
    let index = quoted(&index_name(format!("{table}_search_idx"), engine), engine);
    let column = quoted(SEARCH_COLUMN, engine);
    let quoted_table = quoted(table, engine);
    match engine {
        "postgres" => {
            let text: Vec<String> = fields
                .iter()
                .map(|f| format!("coalesce({f}, '')"))
                .collect();
            (
                Some(format!(
                    "{column} TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', {})) STORED",
                    text.join(" || ' ' || ")
                )),
                vec![format!(
                    "CREATE INDEX {index} ON {quoted_table} USING GIN ({column});"
                )],
            )
        }
        "mysql" => (
            Some(format!(
                "{column} LONGTEXT AS (LOWER(CONCAT_WS(' ', {}))) STORED",
                fields.join(", ")
            )),
            vec![format!(
                "CREATE FULLTEXT INDEX {index} ON {quoted_table} ({column});"
            )],
        ),
        _ => {
            let search = quoted(&format!("{table}_search"), engine);
            let list = fields.join(", ");
            let new: Vec<String> = fields.iter().map(|f| format!("new.{f}")).collect();
            let old: Vec<String> = fields.iter().map(|f| format!("old.{f}")).collect();
            let (new, old) = (new.join(", "), old.join(", "));
            let trigger = |event: &str| quoted(&format!("{table}_search_{event}"), engine);
            let (insert, delete, update) =
                (trigger("insert"), trigger("delete"), trigger("update"));
            let add = format!("INSERT INTO {search} (rowid, {list}) VALUES (new.rowid, {new});");
            let remove = format!(
                "INSERT INTO {search} ({search}, rowid, {list}) VALUES ('delete', old.rowid, {old});"
            );
            (
                None,
                vec![
                    format!(
                        "CREATE VIRTUAL TABLE {search} USING fts5({list}, content='{table}', content_rowid='rowid');"
                    ),
                    format!(
                        "CREATE TRIGGER {insert} AFTER INSERT ON {quoted_table} BEGIN\n    {add}\nEND;"
                    ),
                    format!(
                        "CREATE TRIGGER {delete} AFTER DELETE ON {quoted_table} BEGIN\n    {remove}\nEND;"
                    ),
                    format!(
                        "CREATE TRIGGER {update} AFTER UPDATE ON {quoted_table} BEGIN\n    {remove}\n    {add}\nEND;"
                    ),
                ],
            )
        }
    }
}

/// A column as an index lists it; on MySQL, LONGTEXT is indexed by a prefix.
fn index_column(table: &Table, column: &str, engine: &str) -> String {
    let name = quoted(column, engine);
    let long_text = table
        .column(column)
        .is_some_and(|c| mysql_type(&c.ty, true) == "LONGTEXT");
    if engine == "mysql" && long_text {
        format!("{name}({MYSQL_INDEX_PREFIX})")
    } else {
        name
    }
}

/// A literal default as the engine writes it.
fn default_sql(value: &SqlDefault, engine: &str) -> String {
    match value {
        SqlDefault::Text(text) => format!("'{}'", text.replace('\'', "''")),
        SqlDefault::Int(n) => n.to_string(),
        SqlDefault::Bool(b) if engine == "postgres" => if *b { "TRUE" } else { "FALSE" }.into(),
        SqlDefault::Bool(b) => if *b { "1" } else { "0" }.into(),
    }
}

/// The condition of a column's CHECK: an `int` range, the words of an `enum`. NULL passes, as
/// SQL makes it (an optional field may be empty).
fn check_sql(column: &str, ty: &Type) -> Option<String> {
    match ty.required() {
        Type::Int { min, max } => {
            let bounds: Vec<String> = [
                min.map(|m| format!("{column} >= {m}")),
                max.map(|m| format!("{column} <= {m}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            (!bounds.is_empty()).then(|| bounds.join(" AND "))
        }
        Type::Enum(words) => {
            let words: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
            Some(format!("{column} IN ({})", words.join(", ")))
        }
        _ => None,
    }
}

/// A column's definition: name, type, NULL-ness, key and default (its CHECK is a constraint
/// of the table, [`check_constraint`]). `nullable` overrides the column's own (a column that
/// a migration fills before it becomes required is added as nullable).
fn column_definition(table: &Table, column: &ColumnDef, engine: &str, nullable: bool) -> String {
    let null = if nullable { "" } else { " NOT NULL" };
    let key = if column.role == Role::Id {
        " PRIMARY KEY"
    } else {
        ""
    };
    let ty = sql_type(&column.ty, engine, table.is_indexed(&column.name));
    let default = match (&column.role, &column.default) {
        (Role::Version, _) => " DEFAULT 1".to_owned(),
        // MySQL takes a default of a text or JSON column only as an expression.
        (_, Some(value)) if engine == "mysql" && (ty == "LONGTEXT" || ty == "JSON") => {
            format!(" DEFAULT ({})", default_sql(value, engine))
        }
        (_, Some(value)) => format!(" DEFAULT {}", default_sql(value, engine)),
        (_, None) => String::new(),
    };
    format!("{} {ty}{null}{key}{default}", quoted(&column.name, engine))
}

/// The name of a column's CHECK constraint.
fn check_name(table: &str, column: &str) -> String {
    constraint_name(table, &[column], "check")
}

/// A column's CHECK as a table constraint (`CONSTRAINT name CHECK (...)`), if it has one.
fn check_constraint(table: &Table, column: &ColumnDef, engine: &str) -> Option<String> {
    check_sql(&quoted(&column.name, engine), &column.ty).map(|condition| {
        format!(
            "CONSTRAINT {} CHECK ({condition})",
            quoted(&check_name(&table.name, &column.name), engine)
        )
    })
}

/// The name of a unique key's constraint.
fn unique_name(table: &str, key: &[String]) -> String {
    let key: Vec<&str> = key.iter().map(String::as_str).collect();
    constraint_name(table, &key, "key")
}

/// A unique key as a table constraint.
fn unique_constraint(table: &Table, key: &[String], engine: &str) -> String {
    let columns: Vec<String> = key.iter().map(|c| quoted(c, engine)).collect();
    format!(
        "CONSTRAINT {} UNIQUE ({})",
        quoted(&unique_name(&table.name, key), engine),
        columns.join(", ")
    )
}

/// The name of a foreign key's constraint.
fn reference_name(table: &str, reference: &ForeignKey) -> String {
    constraint_name(table, &[reference.column.as_str()], "fkey")
}

/// A foreign key as a table constraint.
fn reference_constraint(table: &Table, reference: &ForeignKey, engine: &str) -> String {
    format!(
        "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {}",
        quoted(&reference_name(&table.name, reference), engine),
        quoted(&reference.column, engine),
        quoted(&reference.table, engine),
        quoted("id", engine),
        reference.on_delete_sql(),
    )
}

/// An index's name.
fn index_sql_name(table: &str, columns: &[String], engine: &str) -> String {
    index_name(format!("{table}_{}_idx", columns.join("_")), engine)
}

/// `CREATE INDEX` of one index.
fn create_index(table: &Table, columns: &[String], engine: &str) -> String {
    let list: Vec<String> = columns
        .iter()
        .map(|c| index_column(table, c, engine))
        .collect();
    format!(
        "CREATE INDEX {} ON {} ({});",
        quoted(&index_sql_name(&table.name, columns, engine), engine),
        quoted(&table.name, engine),
        list.join(", ")
    )
}

/// The view of a table the migration template writes out.
fn table_view(table: &Table, engine: &str) -> TableView {
    table_view_named(table, &table.name, engine)
}

/// [`table_view`] with the table created under another name (SQLite's rebuild of a table
/// creates its new version beside the old one). Constraints keep the names of the table.
fn table_view_named(table: &Table, name: &str, engine: &str) -> TableView {
    let (search_column, search) = search_index(table, engine);
    let columns = table
        .columns
        .iter()
        .map(|c| column_definition(table, c, engine, c.nullable()))
        .chain(search_column)
        .chain(
            table
                .columns
                .iter()
                .filter_map(|c| check_constraint(table, c, engine)),
        )
        .chain(
            table
                .unique
                .iter()
                .map(|key| unique_constraint(table, key, engine)),
        )
        .chain(
            table
                .references
                .iter()
                .map(|r| reference_constraint(table, r, engine)),
        )
        .map(|definition| ColumnView { definition })
        .collect();
    TableView {
        name: quoted(name, engine),
        description: table.description.clone(),
        columns,
        indexes: table
            .indexes
            .iter()
            .map(|columns| create_index(table, columns, engine))
            .collect(),
        // Binary collation: text compares case-sensitively, by code point, as on the other
        // engines (MySQL's default collation ignores case).
        options: if engine == "mysql" {
            " DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin"
        } else {
            ""
        },
        version_trigger: version_trigger(&table.name, engine),
        search,
    }
}

/// A service's first migration: one table per entity, with its indexes.
pub fn initial_migration(service: &str, schema: &Schema, engine: &str) -> String {
    let tables: Vec<TableView> = schema
        .tables
        .iter()
        .map(|table| table_view(table, engine))
        .collect();
    let mut context = Context::new();
    context.insert("service", service);
    context.insert("engine", engine);
    context.insert("tables", &tables);
    context.insert(
        "version_function",
        if engine == "postgres" {
            POSTGRES_NEXT_VERSION
        } else {
            ""
        },
    );
    render_template("migration.sql", &context)
}

#[cfg(test)]
mod tests;
