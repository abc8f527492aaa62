//! The rules a table's database enforces (unique keys, references), described by the generated
//! code so that a statement that breaks one is answered in words a client can act on: which
//! field, and why, instead of the engine's message or a 500.
//!
//! Each engine names the broken rule differently: PostgreSQL gives the constraint's name,
//! MySQL and MariaDB quote it in the message, SQLite lists the columns of a unique key and
//! names nothing for a reference. A statement is therefore told which rules it can break
//! ([`Query::constraints`](super::Query::constraints)), and the broken one is found among them.

use super::DbError;

/// A rule of a table, as its migration names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Constraint {
    /// The constraint's name in the schema, e.g. `profile_handle_key`.
    pub name: &'static str,
    /// The table it belongs to.
    pub table: &'static str,
    /// The columns it is on.
    pub fields: &'static [&'static str],
    /// What it enforces.
    pub kind: ConstraintKind,
}

/// What a constraint enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    /// No two rows have the same values in these columns.
    Unique,
    /// The columns hold the id of an existing row of this entity (the row being written
    /// breaks it when that row does not exist).
    References(&'static str),
    /// Rows of `table` name the row being deleted, and the reference refuses the delete
    /// (`on_delete: restrict`).
    Restricts(&'static str),
}

impl Constraint {
    /// A unique key of `table`.
    pub const fn unique(
        name: &'static str,
        table: &'static str,
        fields: &'static [&'static str],
    ) -> Self {
        Constraint {
            name,
            table,
            fields,
            kind: ConstraintKind::Unique,
        }
    }

    /// A reference from `table`'s `fields` to a row of `entity`.
    pub const fn references(
        name: &'static str,
        table: &'static str,
        fields: &'static [&'static str],
        entity: &'static str,
    ) -> Self {
        Constraint {
            name,
            table,
            fields,
            kind: ConstraintKind::References(entity),
        }
    }

    /// The same reference, seen from the row of `entity` being deleted: it refuses the delete.
    pub const fn restricts(
        name: &'static str,
        table: &'static str,
        fields: &'static [&'static str],
        entity: &'static str,
    ) -> Self {
        Constraint {
            name,
            table,
            fields,
            kind: ConstraintKind::Restricts(entity),
        }
    }

    fn violation(&self) -> Violation {
        let fields = self.fields.join(", ");
        match self.kind {
            ConstraintKind::Unique if self.fields.len() == 1 => Violation::Duplicate(format!(
                "a {} with this {fields} already exists",
                self.table
            )),
            ConstraintKind::Unique => Violation::Duplicate(format!(
                "a {} with these values of {fields} already exists",
                self.table
            )),
            ConstraintKind::References(entity) => {
                Violation::MissingReference(format!("{fields} names no existing {entity}"))
            }
            ConstraintKind::Restricts(entity) => Violation::StillReferenced(format!(
                "this {entity} is still named by the {fields} of a {}; delete those first",
                self.table
            )),
        }
    }
}

/// A broken rule, in words for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A unique key already taken (409).
    #[error("{0}")]
    Duplicate(String),
    /// A reference to a row that does not exist (400).
    #[error("{0}")]
    MissingReference(String),
    /// A delete refused because other rows still name the row (409).
    #[error("{0}")]
    StillReferenced(String),
    /// A value outside the range or words the schema allows (400).
    #[error("{0}")]
    Check(String),
}

/// Turns a database error that broke one of `constraints` into [`DbError::Violation`]; any
/// other error is returned as it was.
pub(crate) fn explain(error: DbError, constraints: &[Constraint]) -> DbError {
    let DbError::Sqlx(sqlx::Error::Database(database)) = &error else {
        return error;
    };
    let kind = kind_of(database.as_ref());
    let candidates: Vec<&Constraint> = match kind {
        sqlx::error::ErrorKind::UniqueViolation => constraints
            .iter()
            .filter(|c| c.kind == ConstraintKind::Unique)
            .collect(),
        sqlx::error::ErrorKind::ForeignKeyViolation => constraints
            .iter()
            .filter(|c| c.kind != ConstraintKind::Unique)
            .collect(),
        sqlx::error::ErrorKind::CheckViolation => {
            return DbError::Violation(Violation::Check(
                "a value is outside what its field allows".into(),
            ));
        }
        _ => return error,
    };
    let message = database.message();
    let named = database
        .constraint()
        .and_then(|name| candidates.iter().find(|c| c.name == name))
        // MySQL and MariaDB quote the name: `for key 'profile_handle_key'` (MySQL 8 puts the
        // table first: 'profile.profile_handle_key'), `CONSTRAINT `comment_post_id_fkey``.
        .or_else(|| {
            candidates.iter().find(|c| {
                [
                    format!("'{}'", c.name),
                    format!(".{}'", c.name),
                    format!("`{}`", c.name),
                ]
                .iter()
                .any(|quoted| message.contains(quoted.as_str()))
            })
        })
        // SQLite lists a unique key's columns: `UNIQUE constraint failed: profile.handle`.
        .or_else(|| {
            let columns = message.strip_prefix("UNIQUE constraint failed: ")?;
            candidates.iter().find(|c| {
                let listed: Vec<String> = c
                    .fields
                    .iter()
                    .map(|f| format!("{}.{f}", c.table))
                    .collect();
                listed.join(", ") == columns
            })
        })
        // SQLite names no reference: when the statement can break only one, it is that one.
        .or_else(|| match candidates.as_slice() {
            [only] if kind == sqlx::error::ErrorKind::ForeignKeyViolation => Some(only),
            _ => None,
        });
    match named {
        Some(constraint) => DbError::Violation(constraint.violation()),
        None if kind != sqlx::error::ErrorKind::ForeignKeyViolation => error,
        // A write that can break several references, on SQLite: name them all.
        None if !candidates.is_empty()
            && candidates
                .iter()
                .all(|c| matches!(c.kind, ConstraintKind::References(_))) =>
        {
            let fields: Vec<String> = candidates.iter().map(|c| c.fields.join(", ")).collect();
            DbError::Violation(Violation::MissingReference(format!(
                "{} names no existing row",
                fields.join(" or ")
            )))
        }
        None => DbError::Violation(Violation::StillReferenced(
            "the change conflicts with rows that name this one".into(),
        )),
    }
}

/// What kind of rule a database error broke. SQLite reports a reference that an `ON DELETE
/// RESTRICT` action refused as a trigger failure (extended code 1811) rather than a
/// foreign-key one, with the same message: it is a reference all the same.
fn kind_of(database: &dyn sqlx::error::DatabaseError) -> sqlx::error::ErrorKind {
    match database.kind() {
        sqlx::error::ErrorKind::Other if database.message() == "FOREIGN KEY constraint failed" => {
            sqlx::error::ErrorKind::ForeignKeyViolation
        }
        kind => kind,
    }
}
