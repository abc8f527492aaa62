//! A migration that takes a service's database from its snapshot to the spec's schema: the
//! steps [`crate::evolve::diff`] found, in the SQL of one engine.
//!
//! PostgreSQL and MySQL change a table in place. First everything that depends on a column
//! and changes (checks, keys, references, indexes, the search index) is dropped, then
//! tables are dropped and created, then columns are renamed, added (filled from `backfill`
//! before they become required), changed and dropped, and last the new dependents are added
//! under their new names, so a migrated database names everything as a fresh one does.
//!
//! SQLite cannot change a column or a constraint: a table with such changes is rebuilt, as
//! SQLite documents it (a new table, the rows copied with their `rowid`, the old table
//! dropped, the new one renamed), with foreign keys off, in one transaction.

use super::*;
use crate::evolve::{Fill, Step, TableChange};

#[derive(Serialize)]
struct Block {
    comment: String,
    sql: String,
}

/// Something of a table that depends on its columns, created and dropped on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dependent {
    /// A column's CHECK, with its condition (the column written `x`).
    Check { column: String, condition: String },
    /// A unique key.
    Unique(Vec<String>),
    /// A foreign key.
    Reference(ForeignKey),
    /// An index.
    Index(Vec<String>),
    /// The full-text index of these columns.
    Search(Vec<String>),
}

impl Dependent {
    /// Everything of `table` that depends on its columns.
    fn all_of(table: &Table) -> Vec<Dependent> {
        let checks = table.columns.iter().filter_map(|c| {
            check_sql("x", &c.ty).map(|condition| Dependent::Check {
                column: c.name.clone(),
                condition,
            })
        });
        let search = (!table.search.is_empty()).then(|| Dependent::Search(table.search.clone()));
        checks
            .chain(table.unique.iter().cloned().map(Dependent::Unique))
            .chain(table.references.iter().cloned().map(Dependent::Reference))
            .chain(table.indexes.iter().cloned().map(Dependent::Index))
            .chain(search)
            .collect()
    }

    fn columns(&self) -> Vec<&str> {
        match self {
            Dependent::Check { column, .. } => vec![column],
            Dependent::Reference(r) => vec![&r.column],
            Dependent::Unique(columns) | Dependent::Index(columns) | Dependent::Search(columns) => {
                columns.iter().map(String::as_str).collect()
            }
        }
    }

    /// Whether the old dependent stays as it is: the table keeps its name (which every
    /// dependent's name starts with), none of its columns is renamed or dropped, and the new
    /// table has it unchanged.
    fn kept(&self, change: &TableChange, new: &[Dependent], engine: &str) -> bool {
        if change.renames_table() {
            return false;
        }
        // MySQL indexes a column by its type (a VARCHAR whole, LONGTEXT by a prefix): a key
        // over a column whose type changes is made again.
        let retyped = |column: &str| {
            let (Some(old), Some(new)) = (change.old.column(column), change.new.column(column))
            else {
                return false;
            };
            sql_type(&old.ty, engine, change.old.is_indexed(column))
                != sql_type(&new.ty, engine, change.new.is_indexed(column))
        };
        if engine == "mysql"
            && matches!(self, Dependent::Index(_) | Dependent::Unique(_))
            && self.columns().iter().any(|c| retyped(c))
        {
            return false;
        }
        let untouched = self
            .columns()
            .iter()
            .all(|c| change.new_name(c) == Some(*c));
        untouched && new.contains(self)
    }
}

/// The SQL of a migration of `service` made of `steps`, for `engine`.
pub fn steps_migration(service: &str, steps: &[Step], engine: &str) -> String {
    let changes: Vec<&TableChange> = steps
        .iter()
        .filter_map(|s| match s {
            Step::AlterTable(change) => Some(change.as_ref()),
            _ => None,
        })
        .collect();
    let rebuilds = engine == "sqlite" && changes.iter().any(|c| sqlite_rebuilds(c));
    let mut blocks = Vec::new();
    if rebuilds {
        blocks.push(Block {
            comment: "SQLite rebuilds changed tables with foreign keys off, in one transaction."
                .into(),
            sql: "PRAGMA foreign_keys = OFF;\nBEGIN;".into(),
        });
    }
    if engine != "sqlite" {
        for change in &changes {
            let sql = drop_dependents(change, engine);
            if !sql.is_empty() {
                blocks.push(Block {
                    comment: format!(
                        "What depends on changed columns of `{}`, made again below.",
                        change.old.name
                    ),
                    sql: sql.join("\n"),
                });
            }
        }
    }
    // Tables are dropped, then renamed, then created: a new table may reference a renamed one.
    for step in steps {
        if let Step::DropTable(table) = step {
            blocks.push(Block {
                comment: format!("`{}` is removed from the spec, with its rows.", table.name),
                sql: drop_table(table, engine),
            });
        }
    }
    if engine != "sqlite" {
        for change in changes.iter().filter(|c| c.renames_table()) {
            blocks.push(Block {
                comment: format!("`{}` is now `{}`.", change.old.name, change.new.name),
                sql: rename_table(change, engine).join("\n"),
            });
        }
    }
    for step in steps {
        if let Step::CreateTable(table) = step {
            let mut context = Context::new();
            context.insert("table", &table_view(table, engine));
            // The template's first line is the table's description: the block's comment.
            let sql = render_template("table.sql", &context);
            let (_, sql) = sql.split_once('\n').unwrap_or_default();
            blocks.push(Block {
                comment: format!("New entity `{}`: {}", table.name, table.description),
                sql: sql.trim_end().to_owned(),
            });
        }
    }
    for change in &changes {
        let sql = match engine {
            "sqlite" if sqlite_rebuilds(change) => rebuild_sqlite(change),
            "sqlite" => change_sqlite_in_place(change),
            _ => change_in_place(change, engine),
        };
        blocks.push(Block {
            comment: format!("Changes of `{}`: {}.", change.new.name, summary(change)),
            sql: sql.join("\n"),
        });
    }
    if rebuilds {
        blocks.push(Block {
            comment: "Done: foreign keys are checked again from here on.".into(),
            sql: "COMMIT;\nPRAGMA foreign_keys = ON;".into(),
        });
    }
    let mut context = Context::new();
    context.insert("service", service);
    context.insert("engine", engine);
    context.insert("summary", &steps_summary(steps));
    context.insert("no_transaction", &rebuilds);
    context.insert("blocks", &blocks);
    render_template("changes.sql", &context)
}

/// What the steps do, in words.
fn steps_summary(steps: &[Step]) -> String {
    let parts: Vec<String> = steps
        .iter()
        .map(|step| match step {
            Step::DropTable(t) => format!("drops `{}`", t.name),
            Step::CreateTable(t) => format!("creates `{}`", t.name),
            Step::AlterTable(c) => format!("changes `{}`", c.new.name),
        })
        .collect();
    parts.join(", ")
}

/// What a table change does, in words.
fn summary(change: &TableChange) -> String {
    let list = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if change.renames_table() {
        parts.push(format!("renamed from `{}`", change.old.name));
    }
    if !change.renamed.is_empty() {
        let pairs: Vec<String> = change
            .renamed
            .iter()
            .map(|(from, to)| format!("`{from}` to `{to}`"))
            .collect();
        parts.push(format!("renames {}", pairs.join(", ")));
    }
    if !change.added.is_empty() {
        parts.push(format!("adds {}", list(&change.added)));
    }
    if !change.altered.is_empty() {
        parts.push(format!("changes {}", list(&change.altered)));
    }
    if !change.dropped.is_empty() {
        parts.push(format!("drops {}", list(&change.dropped)));
    }
    if parts.is_empty() {
        parts.push("keys and indexes".into());
    }
    parts.join("; ")
}

fn drop_table(table: &Table, engine: &str) -> String {
    let mut sql = vec![format!("DROP TABLE {};", quoted(&table.name, engine))];
    if engine == "sqlite" && !table.search.is_empty() {
        sql.push(format!(
            "DROP TABLE {};",
            quoted(&format!("{}_search", table.name), engine)
        ));
    }
    sql.join("\n")
}

/// The old dependents of `change`'s table that do not stay, dropped (PostgreSQL, MySQL).
fn drop_dependents(change: &TableChange, engine: &str) -> Vec<String> {
    let new = Dependent::all_of(&change.new);
    let table = &change.old.name;
    let t = quoted(table, engine);
    let mysql = engine == "mysql";
    // A renamed table's version trigger is made again under the new name.
    let trigger = change.renames_table().then(|| {
        let name = quoted(&index_name(format!("{table}_version"), engine), engine);
        if mysql {
            format!("DROP TRIGGER {name};")
        } else {
            format!("DROP TRIGGER {name} ON {t};")
        }
    });
    // Foreign keys go first: MySQL may have their index be one of the keys dropped after.
    let mut old = Dependent::all_of(&change.old);
    old.sort_by_key(|d| !matches!(d, Dependent::Reference(_)));
    let dependents = old
        .into_iter()
        .filter(|d| !d.kept(change, &new, engine))
        .flat_map(|dependent| match dependent {
            Dependent::Check { column, .. } => vec![format!(
                "ALTER TABLE {t} DROP CONSTRAINT {};",
                quoted(&check_name(table, &column), engine)
            )],
            Dependent::Unique(key) if mysql => vec![format!(
                "ALTER TABLE {t} DROP INDEX {};",
                quoted(&unique_name(table, &key), engine)
            )],
            Dependent::Unique(key) => vec![format!(
                "ALTER TABLE {t} DROP CONSTRAINT {};",
                quoted(&unique_name(table, &key), engine)
            )],
            Dependent::Reference(reference) => vec![format!(
                "ALTER TABLE {t} {} {};",
                if mysql {
                    "DROP FOREIGN KEY"
                } else {
                    "DROP CONSTRAINT"
                },
                quoted(&reference_name(table, &reference), engine)
            )],
            Dependent::Index(columns) => {
                let name = quoted(&index_sql_name(table, &columns, engine), engine);
                vec![if mysql {
                    format!("DROP INDEX {name} ON {t};")
                } else {
                    format!("DROP INDEX {name};")
                }]
            }
            Dependent::Search(_) => {
                let column = quoted(SEARCH_COLUMN, engine);
                let mut sql = Vec::new();
                if mysql {
                    let index = index_name(format!("{table}_search_idx"), engine);
                    sql.push(format!("DROP INDEX {} ON {t};", quoted(&index, engine)));
                }
                sql.push(format!("ALTER TABLE {t} DROP COLUMN {column};"));
                sql
            }
        });
    trigger.into_iter().chain(dependents).collect()
}

/// The new dependents of `change`'s table that were not kept, created.
fn add_dependents(change: &TableChange, engine: &str) -> Vec<String> {
    let old: Vec<Dependent> = Dependent::all_of(&change.old)
        .into_iter()
        .filter(|d| d.kept(change, &Dependent::all_of(&change.new), engine))
        .collect();
    let table = &change.new;
    let t = quoted(&table.name, engine);
    Dependent::all_of(table)
        .into_iter()
        .filter(|d| !old.contains(d))
        .flat_map(|dependent| match dependent {
            Dependent::Check { column, .. } => {
                let column = table.column(&column).expect("a check is of a column");
                check_constraint(table, column, engine)
                    .map(|c| format!("ALTER TABLE {t} ADD {c};"))
                    .into_iter()
                    .collect()
            }
            Dependent::Unique(key) => vec![format!(
                "ALTER TABLE {t} ADD {};",
                unique_constraint(table, &key, engine)
            )],
            Dependent::Reference(reference) => vec![format!(
                "ALTER TABLE {t} ADD {};",
                reference_constraint(table, &reference, engine)
            )],
            Dependent::Index(columns) => vec![create_index(table, &columns, engine)],
            Dependent::Search(_) => {
                let (column, statements) = search_index(table, engine);
                column
                    .map(|c| format!("ALTER TABLE {t} ADD COLUMN {c};"))
                    .into_iter()
                    .chain(statements)
                    .collect()
            }
        })
        .collect()
}

/// The SQL value that fills a column's empty rows.
fn fill_sql(fill: &Fill, column: &ColumnDef, engine: &str) -> String {
    match fill {
        Fill::Expression(expression) => format!("({expression})"),
        Fill::Default => column
            .default
            .as_ref()
            .map_or_else(|| "NULL".into(), |d| default_sql(d, engine)),
    }
}

/// A table changed in place (PostgreSQL, MySQL), its old dependents already dropped.
fn change_in_place(change: &TableChange, engine: &str) -> Vec<String> {
    let table = &change.new;
    let t = quoted(&table.name, engine);
    let mysql = engine == "mysql";
    let mut sql = Vec::new();
    for (from, to) in &change.renamed {
        sql.push(format!(
            "ALTER TABLE {t} RENAME COLUMN {} TO {};",
            quoted(from, engine),
            quoted(to, engine)
        ));
    }
    for name in &change.added {
        let column = table.column(name).expect("an added column is in the table");
        let fill = change.backfill.get(name);
        let nullable = column.nullable() || fill.is_some();
        sql.push(format!(
            "ALTER TABLE {t} ADD COLUMN {};",
            column_definition(table, column, engine, nullable)
        ));
        if let Some(fill) = fill {
            sql.push(format!(
                "UPDATE {t} SET {} = {};",
                quoted(name, engine),
                fill_sql(fill, column, engine)
            ));
            sql.push(set_not_null(table, column, engine));
        }
    }
    // Every kept column whose definition differs: a wider type, NULL-ness, a default, or (on
    // MySQL) a text column that an index now reads.
    for column in &table.columns {
        let Some(old) = change
            .old_name(&column.name)
            .and_then(|n| change.old.column(n))
        else {
            continue;
        };
        // The definitions compared under one name; each type as its own table indexes it.
        let before = column_definition(&change.old, old, engine, old.nullable());
        let before = before.replacen(&quoted(&old.name, engine), &quoted(&column.name, engine), 1);
        let after = column_definition(table, column, engine, column.nullable());
        if before == after {
            continue;
        }
        let c = quoted(&column.name, engine);
        if let Some(fill) = change.backfill.get(&column.name) {
            sql.push(format!(
                "UPDATE {t} SET {c} = {} WHERE {c} IS NULL;",
                fill_sql(fill, column, engine)
            ));
        }
        if mysql {
            sql.push(format!("ALTER TABLE {t} MODIFY COLUMN {after};"));
            continue;
        }
        let old_type = sql_type(&old.ty, engine, change.old.is_indexed(&old.name));
        let new_type = sql_type(&column.ty, engine, table.is_indexed(&column.name));
        if old_type != new_type {
            sql.push(format!("ALTER TABLE {t} ALTER COLUMN {c} TYPE {new_type};"));
        }
        match (old.nullable(), column.nullable()) {
            (false, true) => sql.push(format!("ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL;")),
            (true, false) => sql.push(set_not_null(table, column, engine)),
            _ => {}
        }
        if old.default != column.default {
            sql.push(match &column.default {
                Some(value) => format!(
                    "ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {};",
                    default_sql(value, engine)
                ),
                None => format!("ALTER TABLE {t} ALTER COLUMN {c} DROP DEFAULT;"),
            });
        }
    }
    for name in &change.dropped {
        sql.push(format!(
            "ALTER TABLE {t} DROP COLUMN {};",
            quoted(name, engine)
        ));
    }
    sql.extend(add_dependents(change, engine));
    sql
}

/// A table renamed in place (PostgreSQL, MySQL), with its primary key and version trigger.
fn rename_table(change: &TableChange, engine: &str) -> Vec<String> {
    let (old, new) = (&change.old.name, &change.new.name);
    let t = quoted(new, engine);
    let mut sql = vec![if engine == "mysql" {
        format!("RENAME TABLE {} TO {t};", quoted(old, engine))
    } else {
        format!("ALTER TABLE {} RENAME TO {t};", quoted(old, engine))
    }];
    if engine == "postgres" {
        // PostgreSQL named the primary key after the table.
        sql.push(format!(
            "ALTER TABLE {t} RENAME CONSTRAINT {} TO {};",
            quoted(&format!("{old}_pkey"), engine),
            quoted(&format!("{new}_pkey"), engine)
        ));
    }
    sql.push(version_trigger(new, engine));
    sql
}

/// `column` made NOT NULL.
fn set_not_null(table: &Table, column: &ColumnDef, engine: &str) -> String {
    let t = quoted(&table.name, engine);
    if engine == "mysql" {
        format!(
            "ALTER TABLE {t} MODIFY COLUMN {};",
            column_definition(table, column, engine, false)
        )
    } else {
        format!(
            "ALTER TABLE {t} ALTER COLUMN {} SET NOT NULL;",
            quoted(&column.name, engine)
        )
    }
}

/// Whether SQLite must rebuild the table: anything beyond added columns it can add as they
/// are (no fill, no key, no reference) and added or removed indexes.
fn sqlite_rebuilds(change: &TableChange) -> bool {
    let simple_add = |name: &String| {
        !change.backfill.contains_key(name)
            && !change.new.unique.iter().any(|key| key.contains(name))
            && !change.new.references.iter().any(|r| &r.column == name)
    };
    change.renames_table()
        || !change.renamed.is_empty()
        || !change.dropped.is_empty()
        || !change.altered.is_empty()
        || !change.added.iter().all(simple_add)
        || change.old.unique != change.new.unique
        || change.old.references != change.new.references
        || change.old.search != change.new.search
}

/// A table SQLite changes in place: new columns and indexes.
fn change_sqlite_in_place(change: &TableChange) -> Vec<String> {
    let engine = "sqlite";
    let table = &change.new;
    let t = quoted(&table.name, engine);
    let mut sql = Vec::new();
    for index in &change.old.indexes {
        if !table.indexes.contains(index) {
            sql.push(format!(
                "DROP INDEX {};",
                quoted(&index_sql_name(&table.name, index, engine), engine)
            ));
        }
    }
    for name in &change.added {
        let column = table.column(name).expect("an added column is in the table");
        let check = check_constraint(table, column, engine)
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        sql.push(format!(
            "ALTER TABLE {t} ADD COLUMN {}{check};",
            column_definition(table, column, engine, column.nullable())
        ));
    }
    for index in &table.indexes {
        if !change.old.indexes.contains(index) {
            sql.push(create_index(table, index, engine));
        }
    }
    sql
}

/// A table SQLite rebuilds: its new version is created beside it, the rows are copied (kept
/// columns under their new names, filled ones from their fill; `rowid` kept, which the
/// search index refers to), the old table is dropped, and the new one takes its name.
fn rebuild_sqlite(change: &TableChange) -> Vec<String> {
    let engine = "sqlite";
    let table = &change.new;
    let t = quoted(&table.name, engine);
    let staged = format!("{}_svcgen_new", table.name);
    let view = table_view_named(table, &staged, engine);
    let mut context = Context::new();
    context.insert("table", &view);
    // The template's CREATE TABLE, without its comment and what follows the table (made
    // below, once the table has its name back).
    let create = render_template("table.sql", &context);
    let create: String = create
        .lines()
        .skip_while(|line| !line.starts_with("CREATE TABLE"))
        .take_while(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    // The old rows with kept columns under their new names (dropped ones under their old
    // names), so that a backfill expression reads the row as the spec now names it.
    let mut exposed = vec!["rowid AS \"svcgen_rowid\"".to_owned()];
    for old in &change.old.columns {
        match change.new_name(&old.name) {
            Some(new) if new != old.name => exposed.push(format!(
                "{} AS {}",
                quoted(&old.name, engine),
                quoted(new, engine)
            )),
            _ => exposed.push(quoted(&old.name, engine)),
        }
    }
    let mut columns = vec!["rowid".to_owned()];
    let mut values = vec!["\"svcgen_rowid\"".to_owned()];
    for column in &table.columns {
        let c = quoted(&column.name, engine);
        let fill = change.backfill.get(&column.name);
        let value = match (change.old_name(&column.name), fill) {
            (Some(_), Some(fill)) => {
                format!("COALESCE({c}, {})", fill_sql(fill, column, engine))
            }
            (Some(_), None) => c.clone(),
            (None, Some(fill)) => fill_sql(fill, column, engine),
            // A new column without a fill takes its default (or NULL).
            (None, None) => continue,
        };
        columns.push(c);
        values.push(value);
    }
    let source = quoted(&change.old.name, engine);
    let mut sql = vec![
        create,
        format!(
            "INSERT INTO {} ({})\nSELECT {}\nFROM (SELECT {} FROM {source});",
            quoted(&staged, engine),
            columns.join(", "),
            values.join(", "),
            exposed.join(", ")
        ),
        format!("DROP TABLE {source};"),
    ];
    if !change.old.search.is_empty() {
        sql.push(format!(
            "DROP TABLE {};",
            quoted(&format!("{}_search", change.old.name), engine)
        ));
    }
    sql.push(format!(
        "ALTER TABLE {} RENAME TO {t};",
        quoted(&staged, engine)
    ));
    sql.push(version_trigger(&table.name, engine));
    let (_, search) = search_index(table, engine);
    if !search.is_empty() {
        sql.extend(search);
        let index = quoted(&format!("{}_search", table.name), engine);
        sql.push(format!("INSERT INTO {index} ({index}) VALUES ('rebuild');"));
    }
    sql.extend(view.indexes);
    sql
}
