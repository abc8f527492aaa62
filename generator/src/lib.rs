//! svcgen turns one YAML spec of a microservice platform into a Cargo workspace that builds and
//! runs it. The pipeline reads top to bottom:
//!
//! 1. [`load`]: YAML text to a node tree with positions;
//! 2. [`resolve`]: nodes to the typed [`model`], checking every key and scalar;
//! 3. [`validate`]: references and architecture rules;
//!    then [`evolve`]: the spec against the schema earlier migrations built, the migrations to
//!    carry over and the next one to write;
//! 4. [`lower`]: the validated model to the IR ([`lower::Ir`]), every derived fact computed once;
//! 5. [`plan`]: the full list of files to write, in a fixed order, each with its producer;
//! 6. [`render`]: each planned file's bytes (`quote!` for Rust, templates for the rest);
//! 7. [`write`]: the files into place, all or nothing, rewriting only what changed.

pub mod capability;
pub mod compat;
pub mod contract;
pub mod diag;
pub mod evolve;
pub mod ident;
pub mod load;
pub mod lower;
pub mod model;
pub mod plan;
pub mod render;
pub mod resolve;
pub mod rpc;
pub mod up;
pub mod validate;
pub mod write;

use diag::{Diagnostic, Diagnostics};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Settings of one generation that do not come from the spec.
#[derive(Debug, Clone)]
pub struct Options {
    /// File name of the spec, written in every generated file's header.
    pub spec_name: String,
    /// Path of the `svcgen-runtime` crate as the generated workspace should refer to it
    /// (relative to the output directory, or absolute).
    pub runtime_path: String,
    /// What earlier generations wrote into the output directory: the migrations to carry over
    /// and the schema snapshots to compare the spec with (empty for a new tree).
    pub history: evolve::History,
}

/// A spec that passed validation, with its warnings.
#[derive(Debug)]
pub struct Checked {
    /// The resolved model.
    pub system: model::System,
    /// Warnings (never errors).
    pub warnings: Vec<Diagnostic>,
}

/// Stages 1 to 3: load, resolve and validate `source`. On failure, every problem found.
pub fn check(source: &str) -> Result<Checked, Vec<Diagnostic>> {
    let root = load::load(source).map_err(|syntax| vec![syntax])?;
    let mut diagnostics = Diagnostics::for_source(source);
    let system = resolve::resolve(&root, &mut diagnostics);
    validate::validate(&system, &mut diagnostics);
    if diagnostics.has_errors() {
        return Err(diagnostics.into_sorted());
    }
    Ok(Checked {
        system,
        warnings: diagnostics.into_sorted(),
    })
}

/// Why a generation produced nothing.
#[derive(Debug)]
pub enum Error {
    /// The spec has errors (every one, sorted by position).
    Spec(Vec<Diagnostic>),
    /// The generated Rust could not be formatted (rustfmt missing or failing).
    Format(render::FormatError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Spec(problems) => write!(f, "the spec has {} error(s)", problems.len()),
            Error::Format(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

/// Stages 1 to 6: everything but writing. Returns each output file's path (relative to the
/// output directory) and contents.
pub fn generate(
    source: &str,
    options: &Options,
) -> Result<(Checked, BTreeMap<PathBuf, String>), Error> {
    let checked = check(source).map_err(Error::Spec)?;
    let evolution =
        evolve::evolve(&checked.system, &options.history, source).map_err(Error::Spec)?;
    let ir = lower::lower_evolved(&checked.system, evolution);
    let planned = plan::plan(&ir);
    let files = render::render_all(&ir, &planned, options).map_err(Error::Format)?;
    Ok((checked, files))
}
