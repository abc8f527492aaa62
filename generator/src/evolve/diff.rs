//! What changed between the schema the migrations built (the snapshot) and the schema the
//! spec describes now, as the steps of the next migration. A change that could lose data is
//! never made silently: a column or table the spec no longer has must be declared `removed`
//! (or be the `renamed_from` of a field), a narrower type is refused, and a column that
//! becomes required needs a value for the rows that exist (`default` or `backfill`).

use super::schema::{Schema, Table};
use crate::diag::Diagnostics;
use crate::model::{Entity, Service, Type};
use std::collections::BTreeMap;

/// One step of a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A table the spec declares `removed`, dropped with its rows.
    DropTable(Table),
    /// A new entity's table.
    CreateTable(Table),
    /// A table whose columns, keys, indexes or search changed.
    AlterTable(Box<TableChange>),
}

/// How one table changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableChange {
    /// The table as the snapshot has it.
    pub old: Table,
    /// The table as the spec has it now.
    pub new: Table,
    /// Columns renamed, as (old name, new name).
    pub renamed: Vec<(String, String)>,
    /// Columns dropped (declared `removed`), by their old names.
    pub dropped: Vec<String>,
    /// New columns, by name.
    pub added: Vec<String>,
    /// Columns kept (perhaps renamed) whose type or default changed, by their new names.
    pub altered: Vec<String>,
    /// What fills a column in the rows that have no value for it, by new column name: an
    /// added required column without a default, or a column that becomes required.
    pub backfill: BTreeMap<String, Fill>,
}

/// The value a migration gives the rows that have none for a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fill {
    /// The field's `backfill:` expression, which may read the row's other columns.
    Expression(String),
    /// The column's default.
    Default,
}

impl TableChange {
    /// Whether the table itself is renamed (`renamed_from:` on the entity).
    pub fn renames_table(&self) -> bool {
        self.old.name != self.new.name
    }

    /// The old name of the new column `name`; `None` for an added column.
    pub fn old_name<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        if self.added.iter().any(|a| a == name) {
            return None;
        }
        Some(
            self.renamed
                .iter()
                .find(|(_, new)| new == name)
                .map_or(name, |(old, _)| old.as_str()),
        )
    }

    /// The new name of the old column `name`; `None` for a dropped column.
    pub fn new_name<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        if self.dropped.iter().any(|d| d == name) {
            return None;
        }
        Some(
            self.renamed
                .iter()
                .find(|(old, _)| old == name)
                .map_or(name, |(_, new)| new.as_str()),
        )
    }
}

/// The steps that take the database from `old` to the schema of `service`, in the order
/// they run: drops, then creations (a new table may be referenced by a changed one), then
/// changes. Problems are reported into `d`, pointing into the spec.
pub fn steps(service: &Service, old: &Schema, d: &mut Diagnostics) -> Vec<Step> {
    let new = Schema::of(service);
    let mut drops = Vec::new();
    let mut creates = Vec::new();
    let mut changes = Vec::new();
    // The old table each new one continues: its own, or the one it is `renamed_from`.
    let before = |table: &Table| -> Option<&Table> {
        old.table(&table.name).or_else(|| {
            let from = service.entity(&table.name)?.renamed_from.as_ref()?;
            new.table(&from.value)
                .is_none()
                .then(|| old.table(&from.value))
                .flatten()
        })
    };
    let continued: Vec<&str> = new
        .tables
        .iter()
        .filter_map(|t| before(t).map(|b| b.name.as_str()))
        .collect();
    for table in old.tables.iter().rev() {
        if continued.contains(&table.name.as_str()) {
            continue;
        }
        if service.removed.iter().any(|r| r.value == table.name) {
            drops.push(Step::DropTable(table.clone()));
        } else {
            d.error(
                service.name.span,
                format!(
                    "service `{}` no longer has entity `{}`, whose table holds data",
                    service.name.value, table.name
                ),
            )
            .hint(format!(
                "to drop the table and its rows, declare it: `removed: [{0}]` on the service; \
                 if an entity of another name now holds them, give it `renamed_from: {0}`",
                table.name
            ));
        }
    }
    for table in &new.tables {
        let entity = service
            .entity(&table.name)
            .expect("a table of the schema is an entity of the service");
        match before(table) {
            None => creates.push(Step::CreateTable(table.clone())),
            Some(before) => {
                if let Some(change) = table_change(entity, before, table, d) {
                    changes.push(Step::AlterTable(Box::new(change)));
                }
            }
        }
    }
    drops.into_iter().chain(creates).chain(changes).collect()
}

/// How `entity`'s table changes from `old` to `new`; `None` when it does not.
fn table_change(
    entity: &Entity,
    old: &Table,
    new: &Table,
    d: &mut Diagnostics,
) -> Option<TableChange> {
    let field_span = |name: &str| {
        entity
            .fields
            .iter()
            .find(|f| f.name.value == name)
            .map_or(entity.name.span, |f| f.name.span)
    };
    let mut change = TableChange {
        old: old.clone(),
        new: new.clone(),
        renamed: Vec::new(),
        dropped: Vec::new(),
        added: Vec::new(),
        altered: Vec::new(),
        backfill: BTreeMap::new(),
    };
    for column in &new.columns {
        if old.column(&column.name).is_some() {
            continue;
        }
        let field = entity.fields.iter().find(|f| f.name.value == column.name);
        let renamed_from = field
            .and_then(|f| f.rules.renamed_from.as_ref())
            .filter(|from| old.column(&from.value).is_some() && new.column(&from.value).is_none());
        match renamed_from {
            Some(from) => change
                .renamed
                .push((from.value.clone(), column.name.clone())),
            None => change.added.push(column.name.clone()),
        }
    }
    for column in &old.columns {
        if new.column(&column.name).is_some()
            || change.renamed.iter().any(|(from, _)| *from == column.name)
        {
            continue;
        }
        if entity.removed.iter().any(|r| r.value == column.name) {
            change.dropped.push(column.name.clone());
        } else {
            d.error(
                entity.name.span,
                format!(
                    "entity `{}` no longer has field `{}`, whose column holds data",
                    entity.name.value, column.name
                ),
            )
            .hint(format!(
                "to drop the column and its values, declare it: `removed: [{0}]` on the entity; \
                 if a field of another name now holds them, give that field `renamed_from: {0}`",
                column.name
            ));
        }
    }
    let backfill_of = |name: &str| {
        entity
            .fields
            .iter()
            .find(|f| f.name.value == name)
            .and_then(|f| f.rules.backfill.clone())
    };
    for name in change.added.clone() {
        let column = new
            .column(&name)
            .expect("an added column is in the new table");
        if column.nullable() || column.default.is_some() {
            continue;
        }
        match backfill_of(&name) {
            Some(expression) => {
                change.backfill.insert(name, Fill::Expression(expression));
            }
            None => {
                d.error(
                    field_span(&name),
                    format!(
                        "new field `{name}` of `{}` is required, but the rows the table already holds have no value for it",
                        entity.name.value
                    ),
                )
                .hint(format!(
                    "give it a `default`, make it optional (`{}?`), or give the existing rows a value with `backfill: <SQL expression>` (e.g. `backfill: \"'none'\"` or `backfill: created_at`)",
                    column.ty.spec_text()
                ));
            }
        }
    }
    for column in &new.columns {
        let Some(before) = change.old_name(&column.name).and_then(|n| old.column(n)) else {
            continue;
        };
        if before.ty == column.ty && before.default == column.default {
            continue;
        }
        if let Err(why) = widens(&before.ty, &column.ty) {
            d.error(
                field_span(&column.name),
                format!(
                    "field `{}` of `{}` changes from `{}` to `{}`: {why}",
                    column.name,
                    entity.name.value,
                    before.ty.spec_text(),
                    column.ty.spec_text()
                ),
            )
            .hint("values the table holds may not fit the new type; add a field of the new type with `backfill:` from this one, and declare this one `removed`");
            continue;
        }
        if before.nullable() && !column.nullable() {
            let fill = backfill_of(&column.name)
                .map(Fill::Expression)
                .or_else(|| column.default.as_ref().map(|_| Fill::Default));
            match fill {
                Some(fill) => {
                    change.backfill.insert(column.name.clone(), fill);
                }
                None => {
                    d.error(
                        field_span(&column.name),
                        format!(
                            "field `{}` of `{}` becomes required, but rows may hold no value for it",
                            column.name, entity.name.value
                        ),
                    )
                    .hint("give it a `default`, or the rows without a value one with `backfill: <SQL expression>`");
                }
            }
        }
        change.altered.push(column.name.clone());
    }
    let unchanged = !change.renames_table()
        && change.renamed.is_empty()
        && change.dropped.is_empty()
        && change.added.is_empty()
        && change.altered.is_empty()
        && old.unique == new.unique
        && old.references == new.references
        && old.indexes == new.indexes
        && old.search == new.search;
    (!unchanged).then_some(change)
}

/// `Ok` when every value of `old` is a value of `new` (nullability aside); else why not.
pub(crate) fn widens(old: &Type, new: &Type) -> Result<(), String> {
    match (old.required(), new.required()) {
        (a, b) if a == b => Ok(()),
        (
            Type::String { min, max },
            Type::String {
                min: to_min,
                max: to_max,
            },
        ) => bounds_widen(
            (*min, *max),
            (*to_min, *to_max),
            "maximum length",
            "minimum length",
        ),
        (Type::String { .. } | Type::Email, Type::Text) => Ok(()),
        (
            Type::Int { min, max },
            Type::Int {
                min: to_min,
                max: to_max,
            },
        ) => bounds_widen(
            (*min, *max),
            (*to_min, *to_max),
            "largest value",
            "smallest value",
        ),
        (Type::Enum(a), Type::Enum(b)) => {
            let lost: Vec<&str> = a
                .iter()
                .filter(|w| !b.contains(w))
                .map(String::as_str)
                .collect();
            if lost.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "rows may hold `{}`, no longer a word of it",
                    lost.join("`, `")
                ))
            }
        }
        _ => Err("svcgen migrates a type only to a wider one of the same kind".into()),
    }
}

/// `Ok` when the range `to` holds the range `from` (`None`: unbounded on that side).
fn bounds_widen<T: PartialOrd>(
    (min, max): (Option<T>, Option<T>),
    (to_min, to_max): (Option<T>, Option<T>),
    upper: &str,
    lower: &str,
) -> Result<(), String> {
    if to_max.is_some_and(|b| max.as_ref().is_none_or(|a| b < *a)) {
        Err(format!("its {upper} is lower"))
    } else if to_min.is_some_and(|b| min.as_ref().is_none_or(|a| b > *a)) {
        Err(format!("its {lower} is higher"))
    } else {
        Ok(())
    }
}
