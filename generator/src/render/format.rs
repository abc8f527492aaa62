//! Formatting of the generated Rust: prettyplease turns tokens into text, then `rustfmt` (the
//! version `rust-toolchain.toml` pins) makes it what `cargo fmt` keeps. Its absence or failure
//! is an error, never a silent fallback: output bytes must not depend on the machine. Every Rust
//! file of a generation goes through one `rustfmt` process: a process per file would cost more
//! than the rest of the generation.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Rust could not be formatted: the output would depend on the machine, so nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// What went wrong, with what to do about it.
    pub message: String,
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FormatError {}

/// The `rustfmt` to run: `$RUSTFMT`, else the one on the path.
fn program() -> String {
    std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into())
}

/// The error for `program` failing with `what`.
fn failed(program: &str, what: impl std::fmt::Display) -> FormatError {
    FormatError {
        message: format!(
            "cannot format the generated Rust with `{program}`: {what}; svcgen needs rustfmt \
             (`rustup component add rustfmt`, or set RUSTFMT to its path)"
        ),
    }
}

/// Formats every `(path, source)` with one `rustfmt` run over a scratch copy of the files at
/// their paths (so that `mod` declarations find their files); the formatted sources, in order.
pub(super) fn rustfmt_all(sources: &[(PathBuf, String)]) -> Result<Vec<String>, FormatError> {
    rustfmt_all_with(&program(), sources)
}

fn rustfmt_all_with(
    program: &str,
    sources: &[(PathBuf, String)],
) -> Result<Vec<String>, FormatError> {
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let scratch = scratch_dir().map_err(|error| failed(program, error))?;
    for (path, source) in sources {
        let file = scratch.path().join(path);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|error| failed(program, error))?;
        }
        std::fs::write(&file, source).map_err(|error| failed(program, error))?;
    }
    // rustfmt follows `mod name;` into the module's file. A module that is not generated
    // (the user's own, like a custom handler's) gets an empty stand-in, formatted and thrown
    // away: only the generated files are read back.
    for (path, source) in sources {
        for child in declared_modules(source) {
            let dir = match path.file_name().and_then(|n| n.to_str()) {
                Some("lib.rs" | "main.rs" | "mod.rs") => path.parent().map(Path::to_path_buf),
                _ => Some(path.with_extension("")),
            }
            .unwrap_or_default();
            let (flat, nested) = (
                scratch.path().join(&dir).join(format!("{child}.rs")),
                scratch.path().join(&dir).join(&child).join("mod.rs"),
            );
            if !flat.exists() && !nested.exists() {
                if let Some(parent) = flat.parent() {
                    std::fs::create_dir_all(parent).map_err(|error| failed(program, error))?;
                }
                std::fs::write(&flat, "").map_err(|error| failed(program, error))?;
            }
        }
    }
    let output = Command::new(program)
        .args(["--edition", "2024", "--emit", "files", "--quiet"])
        .args(sources.iter().map(|(path, _)| path))
        .current_dir(scratch.path())
        .stdin(Stdio::null())
        .output()
        .map_err(|error| failed(program, error))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(failed(
            program,
            format!("{} ({})", output.status, stderr.trim()),
        ));
    }
    sources
        .iter()
        .map(|(path, _)| read(program, &scratch.path().join(path)))
        .collect()
}

/// The names of the modules `source` declares in files of their own (`mod name;`).
fn declared_modules(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line.strip_prefix("pub ").unwrap_or(line);
            let name = rest.strip_prefix("mod ")?.strip_suffix(';')?;
            name.chars()
                .all(|c| c.is_alphanumeric() || c == '_')
                .then(|| name.to_owned())
        })
        .collect()
}

/// A scratch directory for the copies rustfmt formats: in memory where the system has a memory
/// file system (creating a thousand small files on a disk costs more than formatting them).
fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    let memory = Path::new("/dev/shm");
    if memory.is_dir()
        && let Ok(dir) = tempfile::Builder::new()
            .prefix("svcgen-")
            .tempdir_in(memory)
    {
        return Ok(dir);
    }
    tempfile::Builder::new().prefix("svcgen-").tempdir()
}

fn read(program: &str, file: &Path) -> Result<String, FormatError> {
    std::fs::read_to_string(file).map_err(|error| failed(program, error))
}

/// Pretty-prints Rust tokens (prettyplease), with blank lines between items; [`rustfmt_all`]
/// then makes it exactly what `cargo fmt` keeps (prettyplease alone differs from rustfmt in
/// small ways).
pub(super) fn pretty(tokens: proc_macro2::TokenStream) -> String {
    let file: syn::File = match syn::parse2(tokens.clone()) {
        Ok(file) => file,
        Err(error) => panic!("svcgen rendered invalid Rust ({error}):\n{tokens}"),
    };
    separate_items(&prettyplease::unparse(&file))
}

/// Puts a blank line between consecutive items (prettyplease writes them back to back), the
/// way people write Rust; rustfmt keeps such lines.
fn separate_items(source: &str) -> String {
    const ITEM_STARTS: &[&str] = &[
        "///",
        "#[",
        "pub ",
        "fn ",
        "async fn ",
        "impl",
        "static ",
        "const ",
        "struct ",
        "enum ",
        "mod ",
        "use ",
    ];
    let mut out = String::with_capacity(source.len() + source.len() / 20);
    let mut previous: Option<&str> = None;
    // The latest item is a `use` (a `pub use` when true), perhaps written over several lines.
    let mut latest_use: Option<bool> = None;
    for line in source.lines() {
        if let Some(before) = previous {
            let indent = |l: &str| l.len() - l.trim_start().len();
            let (item, prior) = (line.trim_start(), before.trim_start());
            let same_level = indent(line) == indent(before) && !prior.is_empty();
            let starts_item = ITEM_STARTS.iter().any(|s| item.starts_with(s));
            let ends_item = prior.ends_with('}') || prior.ends_with(';');
            let both_uses = match latest_use {
                Some(true) => item.starts_with("pub use"),
                Some(false) => item.starts_with("use "),
                None => false,
            };
            let after_inner_doc = prior.starts_with("//!") && !item.starts_with("//!");
            if same_level && ((starts_item && ends_item && !both_uses) || after_inner_doc) {
                out.push('\n');
            }
        }
        let item = line.trim_start();
        if ITEM_STARTS.iter().any(|s| item.starts_with(s)) {
            latest_use = if item.starts_with("pub use") {
                Some(true)
            } else {
                item.starts_with("use ").then_some(false)
            };
        }
        out.push_str(line);
        out.push('\n');
        previous = Some(line);
    }
    out
}

/// Formats Rust source with `rustfmt` (edition 2024, default style). Its absence or failure is
/// an error, never a silent fallback: output bytes must not depend on the machine. The version
/// used is the one `rust-toolchain.toml` pins (the golden trees are formatted by it).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_formatted_together_and_mod_declarations_find_their_files() {
        let sources = vec![
            (
                PathBuf::from("a/src/lib.rs"),
                "pub mod proto {\n    pub mod user;\n}\nfn  one( ){}\n".to_string(),
            ),
            (
                PathBuf::from("a/src/proto/user.rs"),
                "struct  User{id:u8}".to_string(),
            ),
            (
                PathBuf::from("b/src/main.rs"),
                "fn main( ){let x=1;}".to_string(),
            ),
        ];
        let formatted = rustfmt_all(&sources).expect("rustfmt is installed");
        assert_eq!(
            formatted,
            [
                "pub mod proto {\n    pub mod user;\n}\nfn one() {}\n",
                "struct User {\n    id: u8,\n}\n",
                "fn main() {\n    let x = 1;\n}\n",
            ]
        );
    }

    fn one() -> Vec<(PathBuf, String)> {
        vec![(PathBuf::from("src/main.rs"), "fn main() {}".to_string())]
    }

    #[test]
    fn a_missing_formatter_is_an_error_that_says_what_to_install() {
        let error = rustfmt_all_with("/nonexistent/rustfmt", &one()).unwrap_err();
        assert!(error.message.contains("/nonexistent/rustfmt"), "{error}");
        assert!(
            error.message.contains("rustup component add rustfmt"),
            "{error}"
        );
    }

    #[test]
    fn a_failing_formatter_is_an_error_too() {
        let error = rustfmt_all_with("false", &one()).unwrap_err();
        assert!(error.message.contains("exit status"), "{error}");
    }

    #[test]
    fn items_get_a_blank_line_between_them_but_uses_stay_together() {
        let source = "use a::b;\nuse c::d;\nfn one() {}\nfn two() {}\n";
        assert_eq!(
            separate_items(source),
            "use a::b;\nuse c::d;\n\nfn one() {}\n\nfn two() {}\n"
        );
        // A use written over several lines is still a use.
        let source = "use a::{\n    b, c,\n};\nuse d::e;\npub use f::g;\nfn one() {}\n";
        assert_eq!(
            separate_items(source),
            "use a::{\n    b, c,\n};\nuse d::e;\n\npub use f::g;\n\nfn one() {}\n"
        );
    }
}
