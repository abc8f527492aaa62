//! `svcgen diff OLD NEW` and `svcgen diff NEW --base <git-ref>`.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// How the report is written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// One line per change, then a summary.
    Human,
    /// One JSON document, for CI.
    Json,
}

/// Compares the specs and prints the report: exit 0 when every breaking change is
/// acknowledged, 1 when one is not, 2 when a spec has errors.
pub fn run(specs: &[PathBuf], base: Option<&str>, format: Format) -> Result<ExitCode> {
    let (old_name, old_source, new_path) = match (specs, base) {
        ([old, new], None) => (old.display().to_string(), crate::read(old)?, new.clone()),
        ([new], Some(base)) => (
            format!("{}@{base}", new.display()),
            at_revision(new, base)?,
            new.clone(),
        ),
        ([_], None) => bail!("give the old and the new spec, or the new one with --base <git-ref>"),
        _ => bail!("with --base, give only the new spec"),
    };
    let new_source = crate::read(&new_path)?;
    let mut systems = Vec::new();
    for (name, source) in [
        (old_name.as_str(), &old_source),
        (&new_path.display().to_string(), &new_source),
    ] {
        match svcgen::check(source) {
            Ok(checked) => systems.push(checked.system),
            Err(problems) => {
                crate::report(Path::new(name), source, &problems);
                eprintln!("svcgen: {name} has errors; nothing compared");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let changes = svcgen::compat::compare(&systems[0], &systems[1]);
    print!(
        "{}",
        match format {
            Format::Human => svcgen::compat::human(&changes),
            Format::Json => svcgen::compat::json(&changes),
        }
    );
    Ok(if svcgen::compat::unacknowledged(&changes) > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The text of `spec` at git revision `base` (`git show <base>:./<file>`, run beside it).
fn at_revision(spec: &Path, base: &str) -> Result<String> {
    let dir = match spec.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file = spec
        .file_name()
        .with_context(|| format!("{} names no file", spec.display()))?;
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .arg("show")
        .arg(format!("{base}:./{}", file.to_string_lossy()))
        .output()
        .context("cannot run git")?;
    if !output.status.success() {
        bail!(
            "cannot read {} at {base}: {}",
            spec.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout)
        .with_context(|| format!("{} at {base} is not UTF-8", spec.display()))
}
