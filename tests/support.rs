//! Helpers shared by svcgen's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("generator/ has a parent")
        .to_path_buf()
}

/// Whether expected outputs should be rewritten instead of compared.
pub fn blessing() -> bool {
    std::env::var_os("SVCGEN_BLESS").is_some_and(|v| v == "1")
}

/// Every file under `dir` (relative path -> bytes), skipping what Cargo makes there.
pub fn read_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    collect(dir, dir, &mut files);
    files
}

fn collect(base: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
    {
        let entry = entry.expect("directory entry");
        let path = entry.path();
        let relative = path.strip_prefix(base).expect("under base").to_path_buf();
        // Build output of the generated workspace, not svcgen's output.
        if relative == Path::new("target") || relative == Path::new("Cargo.lock") {
            continue;
        }
        if entry.file_type().expect("file type").is_dir() {
            collect(base, &path, files);
        } else {
            files.insert(relative, std::fs::read(&path).expect("readable file"));
        }
    }
}

/// Compares two trees; the message lists every missing, extra and different file.
pub fn assert_same_tree(expected: &Path, actual: &Path, bless_hint: &str) {
    let want = read_tree(expected);
    let got = read_tree(actual);
    let mut problems = Vec::new();
    for (path, bytes) in &want {
        match got.get(path) {
            None => problems.push(format!("missing: {}", path.display())),
            Some(other) if other != bytes => problems.push(format!("differs: {}", path.display())),
            Some(_) => {}
        }
    }
    for path in got.keys().filter(|p| !want.contains_key(*p)) {
        problems.push(format!("extra: {}", path.display()));
    }
    assert!(
        problems.is_empty(),
        "{} differs from a fresh generation:\n  {}\n{bless_hint}",
        expected.display(),
        problems.join("\n  ")
    );
}
