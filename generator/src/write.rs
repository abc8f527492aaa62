//! Stage 6, write: the rendered files into the output directory, never a partial tree.
//!
//! A new output directory is built beside its final place and renamed into it in one step. In an
//! existing directory, every changed file is first staged in a temporary directory on the same
//! file system, then each is renamed over its old version; unchanged files are not touched (their
//! timestamps stay, so Cargo rebuilds nothing). Files svcgen generated earlier that the spec no
//! longer produces are removed; files without svcgen's header belong to the user and are kept.

use crate::render::GENERATED_MARK;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What a write changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Files created or rewritten.
    pub written: Vec<PathBuf>,
    /// Files already up to date.
    pub unchanged: usize,
    /// Generated files the spec no longer produces, removed.
    pub removed: Vec<PathBuf>,
}

/// Writes `files` (paths relative to `out`) into `out`.
pub fn write_tree(out: &Path, files: &BTreeMap<PathBuf, String>) -> io::Result<WriteReport> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".svcgen-staging-")
        .tempdir_in(&parent)?;
    if !out.exists() {
        let tree = staging.path().join("tree");
        for (path, contents) in files {
            put(&tree.join(path), contents)?;
        }
        fs::rename(&tree, out)?;
        return Ok(WriteReport {
            written: files.keys().cloned().collect(),
            ..WriteReport::default()
        });
    }

    let mut report = WriteReport::default();
    let mut staged = Vec::new();
    for (index, (path, contents)) in files.iter().enumerate() {
        let target = out.join(path);
        if fs::read(&target).is_ok_and(|old| old == contents.as_bytes()) {
            report.unchanged += 1;
            continue;
        }
        let temporary = staging.path().join(index.to_string());
        fs::write(&temporary, contents)?;
        staged.push((temporary, target, path.clone()));
    }
    for (temporary, target, path) in staged {
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::rename(&temporary, &target)?;
        report.written.push(path);
    }
    for stale in generated_files(out)? {
        let relative = stale.strip_prefix(out).unwrap_or(&stale).to_path_buf();
        if !files.contains_key(&relative) {
            fs::remove_file(&stale)?;
            report.removed.push(relative);
        }
    }
    Ok(report)
}

/// How a tree on disk differs from what a spec generates.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drift {
    /// Files whose contents differ from what the spec generates.
    pub changed: Vec<PathBuf>,
    /// Files the spec generates that are not on disk.
    pub missing: Vec<PathBuf>,
    /// Generated files on disk (with svcgen's header) that the spec no longer produces.
    pub stale: Vec<PathBuf>,
}

impl Drift {
    /// Whether the tree is exactly what the spec generates (user files aside).
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.missing.is_empty() && self.stale.is_empty()
    }
}

/// How the tree at `out` differs from `files` (paths relative to `out`), without writing
/// anything; files without svcgen's header belong to the user and are not compared.
pub fn drift(out: &Path, files: &BTreeMap<PathBuf, String>) -> io::Result<Drift> {
    let mut drift = Drift::default();
    for (path, contents) in files {
        match fs::read(out.join(path)) {
            Ok(old) if old == contents.as_bytes() => {}
            Ok(_) => drift.changed.push(path.clone()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                drift.missing.push(path.clone());
            }
            Err(error) => return Err(error),
        }
    }
    if out.exists() {
        for stale in generated_files(out)? {
            let relative = stale.strip_prefix(out).unwrap_or(&stale).to_path_buf();
            if !files.contains_key(&relative) {
                drift.stale.push(relative);
            }
        }
        drift.stale.sort();
    }
    Ok(drift)
}

fn put(path: &Path, contents: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, contents)
}

/// Files under `dir` that carry svcgen's header (build output and hidden directories skipped).
fn generated_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type()?.is_dir() {
            if name != "target" && !name.starts_with('.') {
                found.extend(generated_files(&path)?);
            }
        } else if is_generated(&path) {
            found.push(path);
        }
    }
    Ok(found)
}

/// Whether a file's first line carries svcgen's header.
pub fn is_generated(path: &Path) -> bool {
    fs::read_to_string(path).is_ok_and(|text| {
        text.lines()
            .next()
            .is_some_and(|line| line.contains(GENERATED_MARK))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
        entries
            .iter()
            .map(|(p, c)| (PathBuf::from(p), c.to_string()))
            .collect()
    }

    #[test]
    fn rewrites_only_changes_and_keeps_user_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sys");
        let header = format!("// {GENERATED_MARK}\n");
        let first = tree(&[
            ("a.rs", &format!("{header}a")),
            ("old/b.rs", &format!("{header}b")),
        ]);
        let report = write_tree(&out, &first).unwrap();
        assert_eq!(report.written.len(), 2);
        fs::write(out.join("mine.rs"), "// my own code\n").unwrap();

        let second = tree(&[
            ("a.rs", &format!("{header}a")),
            ("c.rs", &format!("{header}c")),
        ]);
        let report = write_tree(&out, &second).unwrap();
        assert_eq!(report.written, vec![PathBuf::from("c.rs")]);
        assert_eq!(report.unchanged, 1);
        assert_eq!(report.removed, vec![PathBuf::from("old/b.rs")]);
        assert!(
            out.join("mine.rs").exists(),
            "a file without the header is the user's"
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers,
            vec![std::ffi::OsString::from("sys")],
            "no staging directory is left behind"
        );
    }

    #[test]
    fn drift_lists_changed_missing_and_stale_files_and_ignores_the_users() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sys");
        let header = format!("// {GENERATED_MARK}\n");
        let files = tree(&[
            ("a.rs", &format!("{header}a")),
            ("b.rs", &format!("{header}b")),
            ("c.rs", &format!("{header}c")),
        ]);
        assert_eq!(
            drift(&out, &files).unwrap().missing.len(),
            3,
            "nothing is there yet"
        );
        write_tree(&out, &files).unwrap();
        assert!(drift(&out, &files).unwrap().is_empty());
        fs::write(out.join("a.rs"), format!("{header}edited")).unwrap();
        fs::remove_file(out.join("b.rs")).unwrap();
        fs::write(out.join("old.rs"), format!("{header}old")).unwrap();
        fs::write(out.join("mine.rs"), "// my own code\n").unwrap();
        assert_eq!(
            drift(&out, &files).unwrap(),
            Drift {
                changed: vec![PathBuf::from("a.rs")],
                missing: vec![PathBuf::from("b.rs")],
                stale: vec![PathBuf::from("old.rs")],
            }
        );
    }
}
