//! Project tasks, run as `cargo xtask <task>`.
//!
//! `cargo xtask test [cargo test arguments]` runs `cargo test --workspace --all-features` with
//! the given arguments added, then lists every test that skipped itself for missing
//! infrastructure (the tests append a line to the file SVCGEN_SKIP_LOG names). It exits with
//! cargo test's exit code, and non-zero too when SVCGEN_REQUIRE_INFRA=1 and a test skipped.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask test [cargo test arguments]";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    match args.next() {
        Some(task) if task == "test" => test(args.collect()),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `cargo xtask test`: the test suite, then the summary of skipped tests.
fn test(extra: Vec<OsString>) -> ExitCode {
    let log = match fresh_skip_log() {
        Ok(log) => log,
        Err(e) => {
            eprintln!("xtask: cannot prepare the skip log: {e}");
            return ExitCode::FAILURE;
        }
    };
    let status = Command::new(cargo())
        .current_dir(workspace_root())
        .args(cargo_test_args(&extra))
        .env("SVCGEN_SKIP_LOG", &log)
        .status();
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            eprintln!("xtask: cannot run cargo test: {e}");
            return ExitCode::FAILURE;
        }
    };
    let skips = read_skips(&log);
    let infrastructure_required =
        std::env::var_os("SVCGEN_REQUIRE_INFRA").is_some_and(|v| v == "1");
    println!();
    print!("{}", skip_summary(&skips, infrastructure_required));
    if !status.success() {
        // A test binary killed by a signal has no exit code.
        let code = status.code().unwrap_or(1);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    if infrastructure_required && !skips.is_empty() {
        eprintln!("xtask: SVCGEN_REQUIRE_INFRA=1, yet tests skipped for missing infrastructure");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The arguments of `cargo test`: the whole workspace with every feature, then `extra`. With
/// `-p`/`--package` in `extra`, `--workspace` is left out: cargo would ignore the selection.
fn cargo_test_args(extra: &[OsString]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["test".into()];
    if !selects_packages(extra) {
        args.push("--workspace".into());
    }
    args.push("--all-features".into());
    args.extend(extra.iter().cloned());
    args
}

/// Whether cargo's own arguments (those before a `--`) pick packages.
fn selects_packages(extra: &[OsString]) -> bool {
    extra
        .iter()
        .map(|arg| arg.to_string_lossy())
        .take_while(|arg| arg != "--")
        .any(|arg| arg.starts_with("-p") || arg == "--package" || arg.starts_with("--package="))
}

/// The skip log of this run, created empty: `<target dir>/xtask/skipped-tests.log`.
fn fresh_skip_log() -> std::io::Result<PathBuf> {
    let dir = target_dir().join("xtask");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("skipped-tests.log");
    std::fs::write(&log, "")?;
    Ok(log)
}

/// Every line the tests logged, sorted (tests running at the same time log in any order).
fn read_skips(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut skips: Vec<String> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect();
    skips.sort();
    skips
}

/// The end of the run's output: how many tests skipped and each one's line, or that none did.
/// When the infrastructure is `required`, those tests failed instead of skipping.
fn skip_summary(skips: &[String], required: bool) -> String {
    let outcome = if required {
        "failed (SVCGEN_REQUIRE_INFRA=1)"
    } else {
        "skipped"
    };
    match skips.len() {
        0 => "no test skipped\n".to_string(),
        count => {
            let tests = if count == 1 { "test" } else { "tests" };
            let mut summary = format!("{count} {tests} {outcome} for missing infrastructure:\n");
            for skip in skips {
                summary.push_str(&format!("  {skip}\n"));
            }
            summary
        }
    }
}

/// The cargo that runs this task (cargo sets CARGO for what it runs), else the one on PATH.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The repository root: the parent of this crate.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_path_buf()
}

/// Where cargo builds: CARGO_TARGET_DIR when set, else `target/` of the workspace.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_whole_workspace_is_tested_unless_packages_are_picked() {
        assert_eq!(
            cargo_test_args(&args(&["--", "--nocapture"])),
            args(&["test", "--workspace", "--all-features", "--", "--nocapture"])
        );
        assert_eq!(
            cargo_test_args(&args(&["-p", "svcgen", "--test", "golden"])),
            args(&["test", "--all-features", "-p", "svcgen", "--test", "golden"])
        );
        assert!(selects_packages(&args(&["--package=svcgen"])));
        assert!(selects_packages(&args(&["-psvcgen"])));
        // After `--` the arguments are the test binaries', not cargo's.
        assert!(!selects_packages(&args(&["--", "-p"])));
    }

    #[test]
    fn the_summary_counts_and_lists_the_skips() {
        assert_eq!(skip_summary(&[], false), "no test skipped\n");
        assert_eq!(
            skip_summary(
                &["[e2e] distributed: PostgreSQL not reachable".into()],
                false
            ),
            "1 test skipped for missing infrastructure:\n  [e2e] distributed: PostgreSQL not reachable\n"
        );
        assert!(skip_summary(&["a".into(), "b".into()], false).starts_with("2 tests skipped"));
        assert!(
            skip_summary(&["a".into()], true)
                .starts_with("1 test failed (SVCGEN_REQUIRE_INFRA=1) for missing")
        );
    }
}
