//! Stage 4, plan: every file of the generated workspace and what produces it, in a fixed order.

use crate::model::System;
use std::path::PathBuf;

/// What produces one output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Producer {
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
    ServiceManifest(String),
    /// A service crate's `src/lib.rs`.
    ServiceLib(String),
    /// A service's first migration for one engine (`sqlite` or `postgres`).
    InitialMigration(String, &'static str),
    /// `system/Cargo.toml`.
    SystemManifest,
    /// `system/src/main.rs`: the binary that runs the system in any mode.
    SystemMain,
}

/// One planned file.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Path relative to the output directory.
    pub path: PathBuf,
    /// What writes it.
    pub producer: Producer,
}

/// Decides the complete list of files for `system`.
pub fn plan(system: &System) -> Vec<Planned> {
    let mut files = vec![
        planned("Cargo.toml", Producer::WorkspaceManifest),
        planned("README.md", Producer::Readme),
        planned(".gitignore", Producer::Gitignore),
        planned("asyncapi.yaml", Producer::AsyncApi),
        planned("contracts/Cargo.toml", Producer::ContractsManifest),
        planned("contracts/src/lib.rs", Producer::ContractsLib),
    ];
    for service in &system.services {
        let name = service.name.value.clone();
        let dir = format!("services/{name}");
        files.push(planned(
            &format!("{dir}/Cargo.toml"),
            Producer::ServiceManifest(name.clone()),
        ));
        files.push(planned(
            &format!("{dir}/src/lib.rs"),
            Producer::ServiceLib(name.clone()),
        ));
        if service.uses.is_none() && !service.entities.is_empty() {
            for engine in ["sqlite", "postgres"] {
                files.push(planned(
                    &format!("{dir}/migrations/{engine}/0001_init.sql"),
                    Producer::InitialMigration(name.clone(), engine),
                ));
            }
        }
    }
    files.push(planned("system/Cargo.toml", Producer::SystemManifest));
    files.push(planned("system/src/main.rs", Producer::SystemMain));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn planned(path: &str, producer: Producer) -> Planned {
    Planned {
        path: PathBuf::from(path),
        producer,
    }
}
