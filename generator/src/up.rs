//! `svcgen up`: generate, build with Cargo (its progress shown as it goes), then become the
//! system's process in embedded mode, so that Ctrl-C and SIGTERM reach it directly and it shuts
//! down cleanly.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Cargo puts the build of a generated workspace.
pub fn target_dir(workspace: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from)
}

/// Builds the system's binary and returns its path.
pub fn build(workspace: &Path, system: &str) -> Result<PathBuf> {
    let target = target_dir(workspace);
    eprintln!(
        "svcgen: building {} (cargo build --bin {system})",
        workspace.display()
    );
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .args(["--bin", system])
        .arg("--target-dir")
        .arg(&target)
        .status()
        .context("could not run cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    Ok(target.join("debug").join(system))
}

/// Replaces this process with the system running embedded.
pub fn run_embedded(binary: &Path, port: u16, data: &Path) -> Result<()> {
    let mut command = Command::new(binary);
    command
        .arg("run")
        .arg("--port")
        .arg(port.to_string())
        .arg("--data")
        .arg(data);
    eprintln!(
        "svcgen: starting {} (data in {})",
        binary.display(),
        data.display()
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        let error = command.exec();
        Err(error).context("could not start the system")
    }
    #[cfg(not(unix))]
    {
        let status = command.status().context("could not start the system")?;
        if status.success() {
            Ok(())
        } else {
            bail!("the system stopped with {status}")
        }
    }
}
