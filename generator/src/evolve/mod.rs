//! Stage 3b, evolve: the spec against what earlier generations wrote. Each service's snapshot
//! of its schema ([`schema`]) is compared with the schema the spec describes ([`diff`]); what
//! changed becomes a NEW migration per engine, after the ones already written, which are
//! carried over byte for byte ([`history`]). A migration file, once written, is never
//! rewritten, so a database that applied it keeps starting.

pub mod diff;
pub mod history;
pub mod schema;

pub use diff::{Fill, Step, TableChange};
pub use history::{History, SNAPSHOT_FILE};
pub use schema::Schema;

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{Engine, System};
use std::collections::BTreeMap;

/// The migrations of every service, by service name, and the field numbers earlier contracts
/// gave.
#[derive(Debug, Clone, Default)]
pub struct Evolution {
    /// By service name.
    pub services: BTreeMap<String, ServiceMigrations>,
    /// By contract path below `proto/` ([`crate::contract::ProtoFile::renumber`]).
    pub contracts: BTreeMap<String, crate::contract::Numbering>,
}

/// One service's migrations.
#[derive(Debug, Clone, Default)]
pub struct ServiceMigrations {
    /// The engines it has migrations for: SQLite (embedded runs) and, when another, its
    /// store's distributed engine. Empty when it keeps no tables of its own.
    pub engines: Vec<Engine>,
    /// The schema its migrations build: the snapshot to write beside them.
    pub schema: Schema,
    /// Per engine, every migration in version order.
    pub files: BTreeMap<Engine, Vec<Migration>>,
}

/// One migration file of one engine.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Its version.
    pub version: i64,
    /// Its description (the file name without version and extension).
    pub description: String,
    /// Its file name (`0002_note_add_pinned.sql`).
    pub file_name: String,
    /// What it holds.
    pub body: Body,
}

/// What a migration file holds.
#[derive(Debug, Clone)]
pub enum Body {
    /// A file already written, carried over as it is.
    Written(String),
    /// The first migration: every table of the schema.
    Initial(Schema),
    /// The changes since the snapshot.
    Steps(Vec<Step>),
}

/// The longest description a new migration's file name gets.
const MAX_DESCRIPTION: usize = 60;

/// Plans every service's migrations over `history`; the problems, pointing into `source`,
/// when a change cannot be migrated without losing data.
pub fn evolve(
    system: &System,
    history: &History,
    source: &str,
) -> Result<Evolution, Vec<Diagnostic>> {
    let mut d = Diagnostics::for_source(source);
    let mut evolution = Evolution {
        contracts: history.contracts.clone(),
        ..Evolution::default()
    };
    for service in &system.services {
        let past = history.service(&service.name.value);
        let schema = Schema::of(service);
        let keeps_tables = !schema.tables.is_empty()
            || past.snapshot.as_ref().is_some_and(|s| !s.tables.is_empty());
        let engines = match (keeps_tables, crate::lower::store_engine(system, service)) {
            (false, _) => Vec::new(),
            (true, Engine::Sqlite) => vec![Engine::Sqlite],
            (true, distributed) => vec![Engine::Sqlite, distributed],
        };
        // A tree written before snapshots were kept has its first migration regenerated.
        let (steps, written) = match &past.snapshot {
            Some(snapshot) => (diff::steps(service, snapshot, &mut d), past.migrations),
            None => (Vec::new(), BTreeMap::new()),
        };
        let mut files = BTreeMap::new();
        for &engine in &engines {
            let mut list: Vec<Migration> = written
                .get(&engine)
                .into_iter()
                .flatten()
                .map(|file| Migration {
                    version: file.version,
                    description: file.description.clone(),
                    file_name: file.file_name.clone(),
                    body: Body::Written(file.sql.clone()),
                })
                .collect();
            match list.last() {
                None => list.push(migration(1, "init".into(), Body::Initial(schema.clone()))),
                Some(last) if !steps.is_empty() => {
                    let version = last.version + 1;
                    list.push(migration(
                        version,
                        describe(&steps),
                        Body::Steps(steps.clone()),
                    ));
                }
                Some(_) => {}
            }
            files.insert(engine, list);
        }
        evolution.services.insert(
            service.name.value.clone(),
            ServiceMigrations {
                engines,
                schema,
                files,
            },
        );
    }
    if d.has_errors() {
        return Err(d.into_sorted());
    }
    Ok(evolution)
}

fn migration(version: i64, description: String, body: Body) -> Migration {
    Migration {
        file_name: format!("{version:04}_{description}.sql"),
        version,
        description,
        body,
    }
}

/// A migration's name from what it changes: `note_add_pinned_create_tag`; cut at a whole
/// part, ending in `_etc`, when longer than [`MAX_DESCRIPTION`].
fn describe(steps: &[Step]) -> String {
    let mut parts = Vec::new();
    for step in steps {
        match step {
            Step::DropTable(table) => parts.push(format!("drop_{}", table.name)),
            Step::CreateTable(table) => parts.push(format!("create_{}", table.name)),
            Step::AlterTable(change) => {
                let table = &change.new.name;
                let before = parts.len();
                if change.renames_table() {
                    parts.push(format!("rename_{}_to_{table}", change.old.name));
                }
                for (from, to) in &change.renamed {
                    parts.push(format!("{table}_rename_{from}_to_{to}"));
                }
                for column in &change.dropped {
                    parts.push(format!("{table}_drop_{column}"));
                }
                for column in &change.added {
                    parts.push(format!("{table}_add_{column}"));
                }
                for column in &change.altered {
                    parts.push(format!("{table}_change_{column}"));
                }
                if change.old.indexes != change.new.indexes {
                    parts.push(format!("{table}_indexes"));
                }
                if change.old.unique != change.new.unique
                    || change.old.references != change.new.references
                {
                    parts.push(format!("{table}_keys"));
                }
                if change.old.search != change.new.search {
                    parts.push(format!("{table}_search"));
                }
                if parts.len() == before {
                    parts.push(format!("{table}_change"));
                }
            }
        }
    }
    let mut description = String::new();
    for (i, part) in parts.iter().enumerate() {
        let candidate = if description.is_empty() {
            part.clone()
        } else {
            format!("{description}_{part}")
        };
        if candidate.len() > MAX_DESCRIPTION && i > 0 {
            description.push_str("_etc");
            break;
        }
        description = candidate;
    }
    description
}

#[cfg(test)]
mod tests;
