//! The `svcgen` command line.

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use svcgen::diag::{self, Diagnostic};
use svcgen::{Checked, Options};

/// Generate a whole microservice platform from one YAML spec.
#[derive(Parser)]
#[command(name = "svcgen", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Check a spec and print every problem found (exit 0 when it has no errors).
    Validate {
        /// The spec file.
        spec: PathBuf,
    },
    /// Write the system's Cargo workspace; on any error, write nothing.
    Generate {
        /// The spec file.
        spec: PathBuf,
        /// Output directory [default: generated/<system>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// How the workspace refers to the svcgen-runtime crate [default: a path relative to
        /// the output directory, to the runtime next to this svcgen].
        #[arg(long)]
        runtime: Option<String>,
    },
    /// Fail when the generated tree on disk differs from what the spec generates (drift),
    /// listing each file; nothing is written.
    Check {
        /// The spec file.
        spec: PathBuf,
        /// The generated tree [default: generated/<system>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// How the workspace refers to the svcgen-runtime crate, as given to `generate`.
        #[arg(long)]
        runtime: Option<String>,
    },
    /// List every change between two versions of a spec that a client or a running
    /// deployment would feel, each breaking or safe; exit 1 when a breaking one is not
    /// acknowledged in the new spec.
    Diff {
        /// The old spec, then the new one; with `--base`, only the new one.
        #[arg(num_args = 1..=2, required = true)]
        specs: Vec<PathBuf>,
        /// Compare with the spec's version at this git revision (e.g. `main`, `HEAD~1`).
        #[arg(long)]
        base: Option<String>,
        /// `human` (the default) or `json`.
        #[arg(long, default_value = "human")]
        format: cli_diff::Format,
    },
    /// Generate, build and run the system embedded (one process, SQLite, no servers needed).
    Up {
        /// The spec file.
        spec: PathBuf,
        /// Gateway port [default: the spec's `gateway.port`].
        #[arg(long)]
        port: Option<u16>,
        /// Directory for the system's state [default: .svcgen/<system>].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Output directory of the generated workspace [default: generated/<system>].
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

mod cli_diff;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("svcgen: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Commands::Validate { spec } => {
            let source = read(&spec)?;
            match svcgen::check(&source) {
                Ok(checked) => {
                    report(&spec, &source, &checked.warnings);
                    println!(
                        "{}: ok (system `{}`)",
                        spec.display(),
                        checked.system.name.value
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(problems) => {
                    report(&spec, &source, &problems);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Commands::Generate { spec, out, runtime } => match generate(&spec, out, runtime)? {
            Some((checked, out)) => {
                println!(
                    "generated system `{}` in {}",
                    checked.system.name.value,
                    out.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            None => Ok(ExitCode::FAILURE),
        },
        Commands::Check { spec, out, runtime } => {
            let Some(Rendered {
                checked,
                out,
                files,
            }) = render(&spec, out, runtime)?
            else {
                return Ok(ExitCode::FAILURE);
            };
            let drift = svcgen::write::drift(&out, &files)
                .with_context(|| format!("cannot read {}", out.display()))?;
            if drift.is_empty() {
                println!(
                    "{}: up to date with {} (system `{}`, {} files)",
                    out.display(),
                    spec.display(),
                    checked.system.name.value,
                    files.len()
                );
                return Ok(ExitCode::SUCCESS);
            }
            for (what, paths) in [
                ("changed", &drift.changed),
                ("missing", &drift.missing),
                ("stale", &drift.stale),
            ] {
                for path in paths {
                    println!("{what}: {}", out.join(path).display());
                }
            }
            eprintln!(
                "svcgen: {} differs from what {} generates ({} changed, {} missing, {} stale); run `svcgen generate {}`",
                out.display(),
                spec.display(),
                drift.changed.len(),
                drift.missing.len(),
                drift.stale.len(),
                spec.display()
            );
            Ok(ExitCode::FAILURE)
        }
        Commands::Up {
            spec,
            port,
            data,
            out,
        } => {
            let Some((checked, out)) = generate(&spec, out, None)? else {
                return Ok(ExitCode::FAILURE);
            };
            let system = checked.system.name.value;
            let binary = svcgen::up::build(&out, &system)?;
            let data = data.unwrap_or_else(|| Path::new(".svcgen").join(&system));
            std::fs::create_dir_all(&data)
                .with_context(|| format!("cannot create {}", data.display()))?;
            svcgen::up::run_embedded(&binary, port.unwrap_or(checked.system.gateway.port), &data)?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Diff {
            specs,
            base,
            format,
        } => cli_diff::run(&specs, base.as_deref(), format),
    }
}

pub(crate) fn read(spec: &Path) -> Result<String> {
    std::fs::read_to_string(spec).with_context(|| format!("cannot read {}", spec.display()))
}

pub(crate) fn report(spec: &Path, source: &str, diagnostics: &[Diagnostic]) {
    if !diagnostics.is_empty() {
        eprint!(
            "{}",
            diag::render(&spec.display().to_string(), source, diagnostics)
        );
    }
}

/// Runs the pipeline and writes the tree; `None` when the spec has errors (they are printed).
fn generate(
    spec: &Path,
    out: Option<PathBuf>,
    runtime: Option<String>,
) -> Result<Option<(Checked, PathBuf)>> {
    let Some(Rendered {
        checked,
        out,
        files,
    }) = render(spec, out, runtime)?
    else {
        return Ok(None);
    };
    for notice in svcgen::write::custom_handler_notices(&out, &files) {
        eprintln!("svcgen: {notice}");
    }
    let written = svcgen::write::write_tree(&out, &files)
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "svcgen: {} file(s) written, {} unchanged, {} removed",
        written.written.len(),
        written.unchanged,
        written.removed.len()
    );
    Ok(Some((checked, out)))
}

/// A spec's generated tree in memory, and where it goes.
struct Rendered {
    /// The spec, checked.
    checked: Checked,
    /// The output directory.
    out: PathBuf,
    /// Every file, by its path below `out`.
    files: BTreeMap<PathBuf, String>,
}

/// The generated tree of `spec` in memory, and where it goes; `None` when the spec has errors
/// (they are printed).
fn render(spec: &Path, out: Option<PathBuf>, runtime: Option<String>) -> Result<Option<Rendered>> {
    let source = read(spec)?;
    let checked = match svcgen::check(&source) {
        Ok(checked) => checked,
        Err(problems) => {
            report(spec, &source, &problems);
            return Ok(None);
        }
    };
    let out = out.unwrap_or_else(|| Path::new("generated").join(&checked.system.name.value));
    let runtime = match runtime {
        Some(path) => path,
        None => default_runtime_path(&out)?,
    };
    let history = svcgen::evolve::History::read(&out)
        .with_context(|| format!("cannot read the migrations in {}", out.display()))?;
    let options = Options {
        spec_name: spec
            .file_name()
            .map_or_else(|| "spec".into(), |n| n.to_string_lossy().into_owned()),
        runtime_path: runtime,
        history,
    };
    let (checked, files) = match svcgen::generate(&source, &options) {
        Ok(generated) => generated,
        // What the spec changes cannot be migrated without losing data (or a hint).
        Err(svcgen::Error::Spec(problems)) => {
            report(spec, &source, &problems);
            return Ok(None);
        }
        Err(svcgen::Error::Format(error)) => return Err(error.into()),
    };
    report(spec, &source, &checked.warnings);
    Ok(Some(Rendered {
        checked,
        out,
        files,
    }))
}

/// The runtime crate that ships with this svcgen, as a path relative to `out`.
fn default_runtime_path(out: &Path) -> Result<String> {
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime");
    let runtime = runtime
        .canonicalize()
        .with_context(|| format!("svcgen's runtime crate is missing at {}", runtime.display()))?;
    let cwd = std::env::current_dir()?;
    let out_abs = if out.is_absolute() {
        out.to_path_buf()
    } else {
        cwd.join(out)
    };
    Ok(relative_path(&normalize(&out_abs), &runtime)
        .to_string_lossy()
        .into_owned())
}

fn normalize(path: &Path) -> PathBuf {
    let mut result = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                result.pop();
            }
            std::path::Component::CurDir => {}
            other => result.push(other),
        }
    }
    result
}

/// `to` relative to `from` (both absolute).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path: PathBuf = std::iter::repeat_n("..", from.len() - common).collect();
    path.extend(&to[common..]);
    path
}
