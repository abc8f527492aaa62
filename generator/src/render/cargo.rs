//! Cargo manifests of the generated workspace, built from data. Dependency versions and features
//! are not written here: they are copied from svcgen's own `[workspace.dependencies]`, the one
//! place where versions are pinned, so that generated systems build the crates svcgen tests.

use crate::Options;
use crate::ident;
use crate::model::{Service, StepAction, System};
use std::fmt::Write as _;
use std::sync::OnceLock;
use toml::{Table, Value};

/// svcgen's own workspace manifest, read at build time.
const SVCGEN_MANIFEST: &str = include_str!("../../../Cargo.toml");

/// Crates compiled with optimizations even in development builds.
const OPTIMIZED_IN_DEV: &[&str] = &["argon2", "blake2"];

/// Crates generated code uses directly (everything else comes through `svcgen-runtime`).
const EXTERNAL_DEPENDENCIES: &[&str] = &["axum", "chrono", "serde", "uuid"];

/// Crates the gRPC contracts' generated code uses, in systems whose services serve RPCs.
const GRPC_DEPENDENCIES: &[&str] = &["prost", "prost-types", "tonic", "tonic-prost"];

fn has_rpcs(system: &System) -> bool {
    system.services.iter().any(crate::rpc::has_contract)
}

fn pinned(name: &str) -> Value {
    static DEPENDENCIES: OnceLock<Table> = OnceLock::new();
    let table = DEPENDENCIES.get_or_init(|| {
        let manifest: Table = SVCGEN_MANIFEST
            .parse()
            .expect("svcgen's Cargo.toml is valid TOML");
        manifest["workspace"]["dependencies"]
            .as_table()
            .expect("[workspace.dependencies] exists")
            .clone()
    });
    table
        .get(name)
        .unwrap_or_else(|| panic!("`{name}` is not pinned in svcgen's [workspace.dependencies]"))
        .clone()
}

/// An inline TOML value, e.g. `{ version = "1", features = ["derive"] }`.
fn inline(value: &Value) -> String {
    match value {
        Value::Table(table) => {
            let items: Vec<String> = table
                .iter()
                .map(|(k, v)| format!("{k} = {}", inline(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(inline).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

fn path_dependency(path: &str) -> Value {
    let mut table = Table::new();
    table.insert("path".into(), Value::String(path.into()));
    Value::Table(table)
}

/// The workspace root manifest.
pub fn workspace(system: &System, options: &Options) -> String {
    let name = &system.name.value;
    let mut members = vec!["contracts".to_string()];
    members.extend(
        system
            .services
            .iter()
            .map(|s| format!("services/{}", s.name.value)),
    );
    members.push("system".into());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "[workspace]\nresolver = \"3\"\nmembers = {}\n",
        inline(&Value::Array(
            members.into_iter().map(Value::String).collect()
        ))
    );
    let _ = writeln!(
        out,
        "[workspace.package]\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n"
    );
    let _ = writeln!(out, "[workspace.dependencies]");
    let grpc = if has_rpcs(system) {
        GRPC_DEPENDENCIES
    } else {
        &[]
    };
    for dependency in EXTERNAL_DEPENDENCIES.iter().chain(grpc) {
        let _ = writeln!(out, "{dependency} = {}", inline(&pinned(dependency)));
    }
    // Only the brokers the spec names (and the demo providers it uses) are compiled in.
    let mut runtime = path_dependency(&options.runtime_path);
    if let Value::Table(table) = &mut runtime {
        table.insert("default-features".into(), Value::Boolean(false));
        let mut features: Vec<Value> = system
            .brokers
            .iter()
            .map(|b| Value::String(b.keyword().into()))
            .collect();
        if system.takes_payments() {
            features.push(Value::String("demo".into()));
        }
        table.insert("features".into(), Value::Array(features));
    }
    let _ = writeln!(out, "svcgen-runtime = {}", inline(&runtime));
    let _ = writeln!(
        out,
        "{} = {}",
        ident::crate_name(name, "contracts"),
        inline(&path_dependency("contracts"))
    );
    for service in &system.services {
        let _ = writeln!(
            out,
            "{} = {}",
            ident::crate_name(name, &service.name.value),
            inline(&path_dependency(&format!(
                "services/{}",
                service.name.value
            )))
        );
    }
    let _ = writeln!(
        out,
        "\n[workspace.lints.rust]\nmissing_docs = \"warn\"\nunsafe_code = \"forbid\"\n"
    );
    let _ = write!(
        out,
        "[profile.dev]\ndebug = \"line-tables-only\"\n\n[profile.dev.package.\"*\"]\ndebug = false\n"
    );
    // Password hashing is deliberately expensive; unoptimized it makes every sign-in of a
    // development build take a second.
    for crypto in OPTIMIZED_IN_DEV {
        let _ = write!(out, "\n[profile.dev.package.{crypto}]\nopt-level = 3\n");
    }
    out
}

fn package(out: &mut String, name: &str, description: &str) {
    let _ = writeln!(
        out,
        "[package]\nname = \"{name}\"\ndescription = {}\nversion.workspace = true\nedition.workspace = true\npublish.workspace = true\n\n[lints]\nworkspace = true\n",
        Value::String(description.replace('\n', " ").trim().to_string())
    );
}

fn dependencies(out: &mut String, names: &[String]) {
    let _ = writeln!(out, "[dependencies]");
    for name in names {
        let _ = writeln!(out, "{name} = {{ workspace = true }}");
    }
}

/// The contracts crate: event types shared by producers and consumers.
pub fn contracts(system: &System) -> String {
    let mut out = String::new();
    package(
        &mut out,
        &ident::crate_name(&system.name.value, "contracts"),
        &format!(
            "Events exchanged by the services of the {} system.",
            system.name.value
        ),
    );
    let mut names: Vec<String> = ["chrono", "serde", "svcgen-runtime", "uuid"]
        .map(String::from)
        .to_vec();
    if has_rpcs(system) {
        names.extend(GRPC_DEPENDENCIES.iter().map(|d| d.to_string()));
        names.sort();
    }
    dependencies(&mut out, &names);
    out
}

/// One service crate.
pub fn service(system: &System, service: &Service) -> String {
    let mut out = String::new();
    let description = service
        .description
        .clone()
        .unwrap_or_else(|| format!("The {} service.", service.name.value));
    package(
        &mut out,
        &ident::crate_name(&system.name.value, &service.name.value),
        &description,
    );
    let mut names: Vec<String> = vec!["axum".into(), "svcgen-runtime".into()];
    // Serving RPCs or calling them: the generated server and clients are tonic's.
    let calls = service.routes.iter().any(|r| {
        r.steps
            .iter()
            .any(|s| matches!(s.action, StepAction::Call(_)))
    }) || service
        .consumers
        .iter()
        .flat_map(|c| &c.actions)
        .chain(service.jobs.iter().flat_map(|j| &j.actions))
        .any(|a| matches!(a, crate::model::Action::Call { .. }))
        || !service.rpc_routes.is_empty();
    if crate::rpc::has_contract(service) || calls {
        names.extend(["tonic", "uuid"].map(String::from));
        names.push(ident::crate_name(&system.name.value, "contracts"));
    }
    let has_steps = service.routes.iter().any(|r| !r.steps.is_empty());
    if has_steps {
        names.push(ident::crate_name(&system.name.value, "contracts"));
    }
    if service.uses.is_some() || service.custom_routes.iter().any(|r| !r.emit.is_empty()) {
        names.push(ident::crate_name(&system.name.value, "contracts"));
    }
    if !service.custom_routes.is_empty() {
        names.extend(["serde", "uuid"].map(String::from));
    }
    // Its own entities' crate (a plain service, or a capability service with entities).
    if service.uses.is_none() || !service.entities.is_empty() {
        names.extend(["chrono", "serde", "uuid"].map(String::from));
        if service.routes.iter().any(|r| r.emit.is_some())
            || !service.consumers.is_empty()
            || !service.jobs.is_empty()
        {
            names.push(ident::crate_name(&system.name.value, "contracts"));
        }
    }
    names.sort();
    names.dedup();
    dependencies(&mut out, &names);
    out
}

/// The system crate: the one binary.
pub fn system(system: &System) -> String {
    let name = &system.name.value;
    let mut out = String::new();
    let description = system
        .description
        .clone()
        .unwrap_or_else(|| format!("The {name} system."));
    package(&mut out, &ident::crate_name(name, "system"), &description);
    let _ = writeln!(out, "[[bin]]\nname = \"{name}\"\npath = \"src/main.rs\"\n");
    let mut names: Vec<String> = vec!["svcgen-runtime".into()];
    names.extend(
        system
            .services
            .iter()
            .map(|s| ident::crate_name(name, &s.name.value)),
    );
    names.sort();
    dependencies(&mut out, &names);
    out
}
