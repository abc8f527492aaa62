//! A service's tables as the database holds them, apart from any engine: what a migration
//! creates, and what the snapshot beside the migrations records (`schema.toml`), so that the
//! next generation can tell what the spec changed.

use crate::model::{ColumnSource, DefaultValue, Entity, Service, Type};
use crate::resolve::types::parse_type;
use serde::{Deserialize, Serialize};

/// The tables of one service, in the order a migration creates them (a table after the tables
/// it references).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// The tables.
    #[serde(default, rename = "table")]
    pub tables: Vec<Table>,
}

/// One table: an entity's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// The table's (and entity's) name.
    pub name: String,
    /// What a row is, for the comment above `CREATE TABLE` (not recorded in the snapshot: a
    /// new description changes no table).
    #[serde(skip)]
    pub description: String,
    /// Its columns in table order.
    #[serde(rename = "column")]
    pub columns: Vec<ColumnDef>,
    /// Keys no two rows share, each a list of columns (a field's `unique: true` is a key of
    /// one column).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique: Vec<Vec<String>>,
    /// Its foreign keys.
    #[serde(default, rename = "reference", skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<ForeignKey>,
    /// Its indexes, each a list of columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<Vec<String>>,
    /// The columns its full-text index reads (empty: no search index).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Its name.
    pub name: String,
    /// Its type as the spec writes it (`string(1..200)`, `uuid?`): the SQL type, whether it
    /// may be NULL and its CHECK follow from it.
    #[serde(rename = "type", with = "spec_type")]
    pub ty: Type,
    /// What the column is to the table.
    #[serde(default, skip_serializing_if = "Role::is_plain")]
    pub role: Role,
    /// The value the database gives a row that leaves it out (literal defaults only: a
    /// computed one, `$now`, is filled in by the service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<SqlDefault>,
}

/// What a column is to its table, beyond its type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A value like any other.
    #[default]
    Plain,
    /// The primary key.
    Id,
    /// The row's version, counted by a trigger (1 when created).
    Version,
}

impl Role {
    fn is_plain(&self) -> bool {
        *self == Role::Plain
    }
}

/// A literal default as the database keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SqlDefault {
    /// `true` or `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// Text or an enum word.
    Text(String),
}

/// A column that holds the `id` of another table's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// The column.
    pub column: String,
    /// The table it references (by `id`).
    pub table: String,
    /// What deleting the referenced row does (`restrict`, `cascade`, `set_null`).
    pub on_delete: String,
}

impl Schema {
    /// The tables of `service`'s entities.
    pub fn of(service: &Service) -> Schema {
        // A table comes after the tables it references; validation refused cycles.
        let ordered = service
            .entities_in_reference_order()
            .unwrap_or_else(|_| service.entities.iter().collect());
        Schema {
            tables: ordered.into_iter().map(Table::of).collect(),
        }
    }

    /// A table by name.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The snapshot file's text (after its header).
    pub fn to_snapshot(&self) -> String {
        toml::to_string(self).expect("a schema is plain data")
    }

    /// Reads a snapshot written by [`Schema::to_snapshot`].
    pub fn from_snapshot(text: &str) -> Result<Schema, String> {
        toml::from_str(text).map_err(|error| error.to_string())
    }
}

impl Table {
    /// The table of `entity`.
    pub fn of(entity: &Entity) -> Table {
        let columns = entity
            .columns()
            .into_iter()
            .map(|column| ColumnDef {
                role: match column.source {
                    ColumnSource::Id => Role::Id,
                    ColumnSource::Version => Role::Version,
                    _ => Role::Plain,
                },
                default: column.rules.default.as_ref().and_then(|d| match &d.value {
                    DefaultValue::Text(text) => Some(SqlDefault::Text(text.clone())),
                    DefaultValue::Int(n) => Some(SqlDefault::Int(*n)),
                    DefaultValue::Bool(b) => Some(SqlDefault::Bool(*b)),
                    DefaultValue::Now { .. } => None,
                }),
                name: column.name,
                ty: column.ty,
            })
            .collect();
        Table {
            name: entity.name.value.clone(),
            // One line: it is an SQL comment.
            description: entity.description.as_deref().map_or_else(
                || format!("Entity `{}`.", entity.name.value),
                |text| text.split_whitespace().collect::<Vec<_>>().join(" "),
            ),
            columns,
            unique: entity
                .unique_keys()
                .into_iter()
                .map(|key| key.into_iter().map(str::to_owned).collect())
                .collect(),
            references: entity
                .references()
                .map(|(field, reference)| ForeignKey {
                    column: field.name.value.clone(),
                    table: reference.entity.value.clone(),
                    on_delete: reference.on_delete.keyword().to_owned(),
                })
                .collect(),
            indexes: entity
                .indexes
                .iter()
                .map(|fields| fields.iter().map(|f| f.value.clone()).collect())
                .collect(),
            search: entity.search.iter().map(|f| f.value.clone()).collect(),
        }
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether the column is part of an index or a unique key (MySQL stores such text as a
    /// VARCHAR when it can).
    pub fn is_indexed(&self, column: &str) -> bool {
        self.indexes
            .iter()
            .chain(&self.unique)
            .any(|key| key.iter().any(|c| c == column))
    }
}

impl ColumnDef {
    /// Whether the column may be NULL.
    pub fn nullable(&self) -> bool {
        matches!(self.ty, Type::Optional(_))
    }
}

impl ForeignKey {
    /// What deleting the referenced row does, as SQL says it.
    pub fn on_delete_sql(&self) -> &'static str {
        match self.on_delete.as_str() {
            "cascade" => "CASCADE",
            "set_null" => "SET NULL",
            _ => "RESTRICT",
        }
    }
}

/// A type in the snapshot as the spec writes it.
mod spec_type {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ty: &Type, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&ty.spec_text())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Type, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_type(&text).or_else(|(message, _)| {
            // A message type (a JSON column) is written by its name.
            let (name, optional) = match text.strip_suffix('?') {
                Some(name) => (name, true),
                None => (text.as_str(), false),
            };
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                let message = Type::Message(name.to_owned());
                Ok(if optional {
                    Type::Optional(Box::new(message))
                } else {
                    message
                })
            } else {
                Err(serde::de::Error::custom(message))
            }
        })
    }
}
