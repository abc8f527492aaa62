//! Stage 5, plan: every file of the generated workspace and what produces it, in a fixed order.
//! Producers hold handles into the IR, so render looks nothing up.

use crate::contract::ProtoFile;
use crate::evolve::{Migration, SNAPSHOT_FILE};
use crate::lower::{Ir, ServiceIr};
use crate::model::{CodeOwner, CustomCode, CustomRoute, Engine};
use std::path::PathBuf;

/// What produces one output file.
#[derive(Debug, Clone, Copy)]
pub enum Producer<'ir> {
    /// The workspace `Cargo.toml`.
    WorkspaceManifest,
    /// The workspace README.
    Readme,
    /// The workspace `.gitignore`.
    Gitignore,
    /// `asyncapi.yaml`: the contract of the system's events.
    AsyncApi,
    /// `contracts/Cargo.toml`.
    ContractsManifest,
    /// `contracts/src/lib.rs`: event payload types.
    ContractsLib,
    /// A service crate's `Cargo.toml`.
    ServiceManifest(&'ir ServiceIr<'ir>),
    /// A service crate's `src/lib.rs`.
    ServiceLib(&'ir ServiceIr<'ir>),
    /// One migration of a service for one engine.
    Migration(&'ir ServiceIr<'ir>, Engine, &'ir Migration),
    /// The snapshot of a service's schema beside its migrations (`schema.toml`).
    SchemaSnapshot(&'ir ServiceIr<'ir>),
    /// `src/custom/mod.rs`: the wiring of a service's custom handlers.
    CustomModule(&'ir ServiceIr<'ir>),
    /// `src/custom/<name>.rs`: the user's file of a custom route, written only when missing.
    CustomSeed(&'ir ServiceIr<'ir>, &'ir CustomRoute),
    /// `src/custom/<name>.rs`: the user's file of a custom consumer, job or RPC, written only
    /// when missing.
    CodeSeed(&'ir ServiceIr<'ir>, &'ir CustomCode, CodeOwner<'ir>),
    /// A service's gRPC contract, `proto/<system>/<service>/v1/<service>.proto`.
    Proto(&'ir ProtoFile),
    /// `proto/buf.yaml`: the contracts as a buf module (lint settings).
    BufConfig,
    /// `contracts/src/proto/<service>.rs`: Rust code of a service's gRPC contract.
    ProtoRust(&'ir ProtoFile),
    /// `system/Cargo.toml`.
    SystemManifest,
    /// `system/src/main.rs`: the binary that runs the system in any mode.
    SystemMain,
}

/// One planned file.
#[derive(Debug, Clone)]
pub struct Planned<'ir> {
    /// Path relative to the output directory.
    pub path: PathBuf,
    /// What writes it.
    pub producer: Producer<'ir>,
}

/// Decides the complete list of files for the lowered system.
pub fn plan<'ir>(ir: &'ir Ir<'ir>) -> Vec<Planned<'ir>> {
    let mut files = vec![
        planned("Cargo.toml", Producer::WorkspaceManifest),
        planned("README.md", Producer::Readme),
        planned(".gitignore", Producer::Gitignore),
        planned("asyncapi.yaml", Producer::AsyncApi),
        planned("contracts/Cargo.toml", Producer::ContractsManifest),
        planned("contracts/src/lib.rs", Producer::ContractsLib),
    ];
    for service in &ir.services {
        let name = &service.model.name.value;
        let dir = format!("services/{name}");
        files.push(planned(
            &format!("{dir}/Cargo.toml"),
            Producer::ServiceManifest(service),
        ));
        files.push(planned(
            &format!("{dir}/src/lib.rs"),
            Producer::ServiceLib(service),
        ));
        for (&engine, migrations) in &service.migrations.files {
            for migration in migrations {
                files.push(planned(
                    &format!(
                        "{dir}/migrations/{}/{}",
                        engine.keyword(),
                        migration.file_name
                    ),
                    Producer::Migration(service, engine, migration),
                ));
            }
        }
        let model = service.model;
        if !model.custom_routes.is_empty() || model.custom_code().next().is_some() {
            files.push(planned(
                &format!("{dir}/src/custom/mod.rs"),
                Producer::CustomModule(service),
            ));
            for (owner, code) in model.custom_code() {
                files.push(planned(
                    &format!("{dir}/src/custom/{}.rs", code.name.value),
                    Producer::CodeSeed(service, code, owner),
                ));
            }
            for route in &service.model.custom_routes {
                files.push(planned(
                    &format!("{dir}/src/custom/{}.rs", route.name.value),
                    Producer::CustomSeed(service, route),
                ));
            }
        }
        if !service.migration_engines.is_empty() {
            files.push(planned(
                &format!("{dir}/migrations/{SNAPSHOT_FILE}"),
                Producer::SchemaSnapshot(service),
            ));
        }
        if let Some(contract) = &service.contract {
            files.push(planned(
                &format!("proto/{}", contract.path),
                Producer::Proto(contract),
            ));
            files.push(planned(
                &format!("contracts/src/proto/{name}.rs"),
                Producer::ProtoRust(contract),
            ));
        }
    }
    if ir.has_contracts() {
        files.push(planned("proto/buf.yaml", Producer::BufConfig));
    }
    files.push(planned("system/Cargo.toml", Producer::SystemManifest));
    files.push(planned("system/src/main.rs", Producer::SystemMain));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn planned<'ir>(path: &str, producer: Producer<'ir>) -> Planned<'ir> {
    Planned {
        path: PathBuf::from(path),
        producer,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn generate(engine: &str) -> BTreeMap<PathBuf, String> {
        let spec = format!(
            "system: guestbook
services:
  book:
    store: book_db
    entities:
      entry:
        fields:
          name: string(1..60)
          message: text
          author: email
          tags: \"[string]\"
          pinned: bool
          order: int
          seen_at: timestamp?
          a_field_name_long_enough_to_push_its_index_name_past_the_limit: string(..10)
        indexes:
          - [name, message]
          - [author, order, seen_at, pinned, created_at]
          - [a_field_name_long_enough_to_push_its_index_name_past_the_limit, author]
    routes:
      POST /entries: {{ create: entry, public: true }}
      GET /entries/{{id}}: {{ get: entry, public: true }}
stores:
  book_db: {{ engine: {engine} }}
"
        );
        let options = crate::Options {
            spec_name: "guestbook.yaml".into(),
            runtime_path: "../runtime".into(),
            history: Default::default(),
        };
        match crate::generate(&spec, &options) {
            Ok((_, files)) => files,
            Err(diagnostics) => panic!("{diagnostics:?}"),
        }
    }

    fn migrations(files: &BTreeMap<PathBuf, String>) -> Vec<String> {
        files
            .keys()
            .filter(|path| path.starts_with("services/book/migrations"))
            .filter(|path| path.extension().is_some_and(|e| e == "sql"))
            .map(|path| path.display().to_string())
            .collect()
    }

    #[test]
    fn each_service_gets_sqlite_and_its_stores_distributed_engine() {
        for (engine, expected) in [
            ("postgres", vec!["postgres", "sqlite"]),
            ("mysql", vec!["mysql", "sqlite"]),
            ("sqlite", vec!["sqlite"]),
        ] {
            let files = generate(engine);
            let expected: Vec<String> = expected
                .iter()
                .map(|e| format!("services/book/migrations/{e}/0001_init.sql"))
                .collect();
            assert_eq!(migrations(&files), expected, "{engine}");
            let lib = &files[&PathBuf::from("services/book/src/lib.rs")];
            for other in ["postgres", "mysql"] {
                let included = format!("../migrations/{other}/0001_init.sql");
                assert_eq!(lib.contains(&included), other == engine, "{engine}: {lib}");
                if other != engine {
                    assert!(lib.contains(&format!("{other}: &[],")), "{engine}: {lib}");
                }
            }
        }
    }

    #[test]
    fn mysql_migrations_use_mysql_types_quotes_and_indexable_text() {
        let files = generate("mysql");
        let sql = &files[&PathBuf::from("services/book/migrations/mysql/0001_init.sql")];
        for expected in [
            "CREATE TABLE `entry` (",
            "`id` CHAR(36) NOT NULL PRIMARY KEY,",
            // Indexed and bounded: a whole VARCHAR; indexed and unbounded: a prefix.
            "`name` VARCHAR(60) NOT NULL,",
            "`message` LONGTEXT NOT NULL,",
            "`author` VARCHAR(254) NOT NULL,",
            "`tags` JSON NOT NULL,",
            "`pinned` BOOLEAN NOT NULL,",
            "`order` BIGINT NOT NULL,",
            "`seen_at` DATETIME(6),",
            "`created_at` DATETIME(6) NOT NULL,",
            ") DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;",
            "CREATE INDEX `entry_name_message_idx` ON `entry` (`name`, `message`(255));",
            "ON `entry` (`author`, `order`, `seen_at`, `pinned`, `created_at`);",
        ] {
            assert!(sql.contains(expected), "{expected}\n{sql}");
        }
        assert!(!sql.contains('"'), "{sql}");
        // A derived index name over MySQL's 64 characters keeps 55 of them and a hash; a
        // shorter one stays as it is.
        assert!(sql.contains("`entry_author_order_seen_at_pinned_created_at_idx`"));
        let index = sql
            .lines()
            .find(|line| {
                line.contains(
                    "(`a_field_name_long_enough_to_push_its_index_name_past_the_limit`, `author`)",
                )
            })
            .expect("the index");
        let name = index.split('`').nth(1).unwrap();
        let full =
            "entry_a_field_name_long_enough_to_push_its_index_name_past_the_limit_author_idx";
        assert!(full.len() > 64);
        assert_eq!(name.len(), 64, "{name}");
        assert_eq!(name[..55], full[..55]);
        assert!(name[56..].chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    }
}
