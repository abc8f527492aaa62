//! Stage 6, write: the rendered files into the output directory, never a partial tree.
//!
//! A new output directory is built beside its final place and renamed into it in one step. In an
//! existing directory, every changed file is first staged in a temporary directory on the same
//! file system, then each is renamed over its old version; unchanged files are not touched (their
//! timestamps stay, so Cargo rebuilds nothing). Files svcgen generated earlier that the spec no
//! longer produces are removed; files without svcgen's header belong to the user and are kept.
//!
//! A file whose rendered text starts with [`SEED_MARK`] is a starting point for the user (a
//! custom handler's file): it is written, without the mark, only when it does not exist, and
//! is never compared, rewritten or removed after.

use crate::render::GENERATED_MARK;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The start of a rendered file that belongs to the user once written (see the module doc).
pub const SEED_MARK: &str = "\u{0}svcgen-seed\n";

/// The text of a seed without its mark; `None` for a file svcgen owns.
pub fn seed_text(contents: &str) -> Option<&str> {
    contents.strip_prefix(SEED_MARK)
}

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
            put(&tree.join(path), seed_text(contents).unwrap_or(contents))?;
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
        let contents = match seed_text(contents) {
            // The user's file: written once.
            Some(_) if target.exists() => {
                report.unchanged += 1;
                continue;
            }
            Some(seed) => seed,
            None => contents.as_str(),
        };
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
        if seed_text(contents).is_some() {
            // The user's file: only its absence is drift.
            if !out.join(path).exists() {
                drift.missing.push(path.clone());
            }
            continue;
        }
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

/// What a generation changes for the user's custom handlers in the tree at `out`, in words:
/// each function whose inputs or answer changed (the build then fails in its file when the
/// code no longer fits), and each file no route uses any more (kept, never deleted).
pub fn custom_handler_notices(out: &Path, files: &BTreeMap<PathBuf, String>) -> Vec<String> {
    use crate::render::custom_signatures as listed;
    let mut notices = Vec::new();
    let services = out.join("services");
    let Ok(entries) = fs::read_dir(&services) else {
        return notices;
    };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let relative = dir.strip_prefix(out).unwrap_or(&dir).join("src/custom");
        let Ok(old) = fs::read_to_string(dir.join("src/custom/mod.rs")) else {
            continue;
        };
        let new = files
            .get(&relative.join("mod.rs"))
            .map(|text| listed(text))
            .unwrap_or_default();
        for (name, was) in listed(&old) {
            let file = relative.join(format!("{name}.rs"));
            match new.iter().find(|(n, _)| *n == name) {
                None => notices.push(format!(
                    "{}: no route calls `{name}` any more; svcgen keeps the file: move its code, or delete it",
                    file.display()
                )),
                Some((_, now)) if *now != was => notices.push(format!(
                    "{}: what `{name}` receives or answers changed; the build fails there if the code no longer fits\n  was: {was}\n  now: {now}",
                    file.display()
                )),
                Some(_) => {}
            }
        }
    }
    notices
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

    #[test]
    fn a_seed_is_written_once_without_its_mark_and_is_the_users_after() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sys");
        let files = tree(&[("src/custom/go.rs", &format!("{SEED_MARK}// start here\n"))]);
        write_tree(&out, &files).unwrap();
        let path = out.join("src/custom/go.rs");
        assert_eq!(fs::read_to_string(&path).unwrap(), "// start here\n");
        fs::write(&path, "// my code\n").unwrap();
        assert!(
            drift(&out, &files).unwrap().is_empty(),
            "the user's edits are no drift"
        );
        let report = write_tree(&out, &files).unwrap();
        assert!(
            report.written.is_empty() && report.removed.is_empty(),
            "{report:?}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "// my code\n");
        // Nor is it removed when the spec no longer has it.
        write_tree(&out, &BTreeMap::new()).unwrap();
        assert!(path.exists());
        // Deleted, it is missing, and the next generation writes it again.
        fs::remove_file(&path).unwrap();
        assert_eq!(
            drift(&out, &files).unwrap().missing,
            [PathBuf::from("src/custom/go.rs")]
        );
    }
}
