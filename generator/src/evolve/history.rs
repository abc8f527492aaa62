//! What earlier generations left in the output directory that the next one builds on: each
//! service's snapshot of its schema and the migration files written so far (svcgen's and the
//! user's own), which are carried over byte for byte.

use super::schema::Schema;
use crate::contract::Numbering;
use crate::model::Engine;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The name of the snapshot file in a service's `migrations/` directory.
pub const SNAPSHOT_FILE: &str = "schema.toml";

/// The migration history of every service of an output directory, and the field numbers of
/// the gRPC contracts it holds.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// By service name.
    pub services: BTreeMap<String, ServiceHistory>,
    /// The numbers each contract already written gave, by its path below `proto/`.
    pub contracts: BTreeMap<String, Numbering>,
}

/// The migration history of one service.
#[derive(Debug, Clone, Default)]
pub struct ServiceHistory {
    /// The schema its migrations build, as the snapshot records it; `None` for a tree written
    /// before snapshots were kept, whose migrations are regenerated as they were then.
    pub snapshot: Option<Schema>,
    /// Its migration files per engine, in version order.
    pub migrations: BTreeMap<Engine, Vec<MigrationFile>>,
}

/// One migration file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFile {
    /// Its version, the number its name starts with.
    pub version: i64,
    /// Its name without the version and `.sql` (`add_note_pinned`).
    pub description: String,
    /// The file's name (`0002_add_note_pinned.sql`).
    pub file_name: String,
    /// Its contents.
    pub sql: String,
}

/// Why a history could not be read.
#[derive(Debug)]
pub struct HistoryError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for HistoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for HistoryError {}

impl History {
    /// The history of the tree at `out` (empty when it does not exist).
    pub fn read(out: &Path) -> Result<History, HistoryError> {
        let mut history = History::default();
        read_contracts(&out.join("proto"), Path::new(""), &mut history.contracts)?;
        let services = out.join("services");
        let entries = match fs::read_dir(&services) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(history),
            Err(error) => return Err(io_error(&services, error)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&services, e))?;
            let dir = entry.path().join("migrations");
            if !dir.is_dir() {
                continue;
            }
            let service = ServiceHistory::read(&dir)?;
            history
                .services
                .insert(entry.file_name().to_string_lossy().into_owned(), service);
        }
        Ok(history)
    }

    /// The history of one service (empty when it has none).
    pub fn service(&self, name: &str) -> ServiceHistory {
        self.services.get(name).cloned().unwrap_or_default()
    }
}

impl ServiceHistory {
    fn read(dir: &Path) -> Result<ServiceHistory, HistoryError> {
        let snapshot_path = dir.join(SNAPSHOT_FILE);
        let snapshot = match fs::read_to_string(&snapshot_path) {
            Ok(text) => Some(
                Schema::from_snapshot(&text).map_err(|message| HistoryError {
                    path: snapshot_path.clone(),
                    message: format!("not a schema snapshot: {message}"),
                })?,
            ),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(io_error(&snapshot_path, error)),
        };
        let mut migrations = BTreeMap::new();
        for engine in [Engine::Sqlite, Engine::Postgres, Engine::Mysql] {
            let engine_dir = dir.join(engine.keyword());
            let entries = match fs::read_dir(&engine_dir) {
                Ok(entries) => entries,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(io_error(&engine_dir, error)),
            };
            let mut files = Vec::new();
            for entry in entries {
                let path = entry.map_err(|e| io_error(&engine_dir, e))?.path();
                let file_name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let Some((version, description)) = parse_file_name(&file_name) else {
                    continue;
                };
                let sql = fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
                files.push(MigrationFile {
                    version,
                    description,
                    file_name,
                    sql,
                });
            }
            files.sort_by_key(|f| f.version);
            if let Some(pair) = files.windows(2).find(|w| w[0].version == w[1].version) {
                return Err(HistoryError {
                    path: engine_dir.join(&pair[1].file_name),
                    message: format!(
                        "two migrations have version {}: `{}` and `{}`",
                        pair[0].version, pair[0].file_name, pair[1].file_name
                    ),
                });
            }
            if !files.is_empty() {
                migrations.insert(engine, files);
            }
        }
        Ok(ServiceHistory {
            snapshot,
            migrations,
        })
    }
}

/// The `.proto` files below `dir` (`below` is their path so far), with the numbers each gave.
fn read_contracts(
    dir: &Path,
    below: &Path,
    contracts: &mut BTreeMap<String, Numbering>,
) -> Result<(), HistoryError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(io_error(dir, error)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let path = entry.path();
        let relative = below.join(entry.file_name());
        if path.is_dir() {
            read_contracts(&path, &relative, contracts)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            let text = fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
            contracts.insert(
                relative.to_string_lossy().into_owned(),
                Numbering::parse(&text),
            );
        }
    }
    Ok(())
}

/// `0002_add_note_pinned.sql` → `(2, "add_note_pinned")`; `None` for a file that is not a
/// migration.
fn parse_file_name(name: &str) -> Option<(i64, String)> {
    let stem = name.strip_suffix(".sql")?;
    let (number, description) = stem.split_once('_').unwrap_or((stem, ""));
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((number.parse().ok()?, description.to_owned()))
}

fn io_error(path: &Path, error: io::Error) -> HistoryError {
    HistoryError {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_file_name;

    #[test]
    fn migration_file_names_give_version_and_description() {
        assert_eq!(parse_file_name("0001_init.sql"), Some((1, "init".into())));
        assert_eq!(
            parse_file_name("0012_add_note_pinned.sql"),
            Some((12, "add_note_pinned".into()))
        );
        assert_eq!(parse_file_name("0003.sql"), Some((3, String::new())));
        assert_eq!(parse_file_name("schema.toml"), None);
        assert_eq!(parse_file_name("notes_seed.sql"), None);
    }
}
