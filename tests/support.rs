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

/// At most this many paths of each kind (missing, extra, differing) are shown in a message.
const MAX_FILES_SHOWN: usize = 10;
/// At most this many lines of diff are shown per differing file.
const MAX_DIFF_LINES: usize = 40;
/// Unchanged lines shown around each change.
const CONTEXT_LINES: usize = 3;
/// Lines per side of the differing region that are diffed line by line; the message only shows
/// the beginning of a long change, and the quadratic diff stays cheap.
const DIFF_WINDOW: usize = 400;

/// Compares two trees; the message lists the missing and extra files and shows the first
/// differing lines of each different file (`-` as in `expected`, `+` as in `actual`).
pub fn assert_same_tree(expected: &Path, actual: &Path, bless_hint: &str) {
    let differences = describe_tree_differences(&read_tree(expected), &read_tree(actual));
    if let Some(differences) = differences {
        panic!(
            "{} differs from a fresh generation in {} (-want +got):\n{differences}{bless_hint}",
            expected.display(),
            actual.display()
        );
    }
}

/// What differs between two trees (relative path -> bytes, as [`read_tree`] reads them): the
/// missing and extra paths, then a unified-style diff per differing file, each list capped at
/// [`MAX_FILES_SHOWN`]. `None` when the trees are the same.
pub fn describe_tree_differences(
    want: &BTreeMap<PathBuf, Vec<u8>>,
    got: &BTreeMap<PathBuf, Vec<u8>>,
) -> Option<String> {
    let missing: Vec<&PathBuf> = want.keys().filter(|p| !got.contains_key(*p)).collect();
    let extra: Vec<&PathBuf> = got.keys().filter(|p| !want.contains_key(*p)).collect();
    let differing: Vec<(&PathBuf, &Vec<u8>, &Vec<u8>)> = want
        .iter()
        .filter_map(|(path, bytes)| {
            let other = got.get(path)?;
            (other != bytes).then_some((path, bytes, other))
        })
        .collect();
    if missing.is_empty() && extra.is_empty() && differing.is_empty() {
        return None;
    }
    let mut message = String::new();
    list_paths(&mut message, "missing", &missing);
    list_paths(&mut message, "extra", &extra);
    for (path, want_bytes, got_bytes) in differing.iter().take(MAX_FILES_SHOWN) {
        message.push_str(&unified_diff(path, want_bytes, got_bytes));
    }
    if differing.len() > MAX_FILES_SHOWN {
        let more = differing.len() - MAX_FILES_SHOWN;
        message.push_str(&format!("... and {more} more differing files\n"));
    }
    Some(message)
}

/// Appends `<kind>: <path>` lines, at most [`MAX_FILES_SHOWN`], then how many were left out.
fn list_paths(message: &mut String, kind: &str, paths: &[&PathBuf]) {
    for path in paths.iter().take(MAX_FILES_SHOWN) {
        message.push_str(&format!("{kind}: {}\n", path.display()));
    }
    if paths.len() > MAX_FILES_SHOWN {
        let more = paths.len() - MAX_FILES_SHOWN;
        message.push_str(&format!("... and {more} more {kind} files\n"));
    }
}

/// One line of a line-by-line diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit<'a> {
    /// In both texts.
    Kept(&'a str),
    /// Only in the wanted text.
    Removed(&'a str),
    /// Only in the text got.
    Added(&'a str),
}

/// A unified-style diff of one file's two contents: `--- want`/`+++ got` headers, then hunks
/// with [`CONTEXT_LINES`] of context, cut after [`MAX_DIFF_LINES`] lines.
pub fn unified_diff(path: &Path, want: &[u8], got: &[u8]) -> String {
    let mut out = format!("--- want {0}\n+++ got  {0}\n", path.display());
    let (Ok(want), Ok(got)) = (std::str::from_utf8(want), std::str::from_utf8(got)) else {
        out.push_str(&format!(
            "binary contents differ ({} bytes wanted, {} bytes got)\n",
            want.len(),
            got.len()
        ));
        return out;
    };
    // Lines keep their '\n', so a missing final newline is a difference like any other.
    let want: Vec<&str> = want.split_inclusive('\n').collect();
    let got: Vec<&str> = got.split_inclusive('\n').collect();
    let (edits, cut) = line_edits(&want, &got);
    let mut lines = Vec::new();
    for hunk in hunks(&edits) {
        lines.push(hunk_header(&edits, hunk.clone()));
        lines.extend(edits[hunk].iter().map(|edit| diff_line(*edit)));
    }
    if lines.len() > MAX_DIFF_LINES {
        let more = lines.len() - MAX_DIFF_LINES;
        lines.truncate(MAX_DIFF_LINES);
        lines.push(format!("... {more} more diff lines not shown"));
    } else if cut {
        lines.push(format!(
            "... later differences not shown (only the first {DIFF_WINDOW} lines of the change are compared)"
        ));
    }
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The edits that turn `want` into `got`: the common head and tail kept, and between them a
/// longest-common-subsequence diff of at most [`DIFF_WINDOW`] lines a side. The second value
/// is true when the differing region was longer and the edits stop inside it.
fn line_edits<'a>(want: &[&'a str], got: &[&'a str]) -> (Vec<Edit<'a>>, bool) {
    let head = want.iter().zip(got).take_while(|(w, g)| w == g).count();
    let tail = want[head..]
        .iter()
        .rev()
        .zip(got[head..].iter().rev())
        .take_while(|(w, g)| w == g)
        .count();
    let want_middle = &want[head..want.len() - tail];
    let got_middle = &got[head..got.len() - tail];
    let cut = want_middle.len() > DIFF_WINDOW || got_middle.len() > DIFF_WINDOW;
    let mut edits: Vec<Edit> = want[..head].iter().copied().map(Edit::Kept).collect();
    let mut middle = lcs_edits(
        &want_middle[..want_middle.len().min(DIFF_WINDOW)],
        &got_middle[..got_middle.len().min(DIFF_WINDOW)],
    );
    if cut {
        // After the last kept line, the window's edge, not the texts, decides what looks
        // removed or added.
        if let Some(last_kept) = middle.iter().rposition(|e| matches!(e, Edit::Kept(_))) {
            middle.truncate(last_kept + 1);
        }
        edits.extend(middle);
    } else {
        edits.extend(middle);
        edits.extend(want[want.len() - tail..].iter().copied().map(Edit::Kept));
    }
    (edits, cut)
}

/// A minimal line diff by longest common subsequence (quadratic: for short regions only).
fn lcs_edits<'a>(want: &[&'a str], got: &[&'a str]) -> Vec<Edit<'a>> {
    let columns = got.len() + 1;
    // common[i * columns + j]: length of the longest common subsequence of want[i..] and got[j..].
    let mut common = vec![0u32; (want.len() + 1) * columns];
    for i in (0..want.len()).rev() {
        for j in (0..got.len()).rev() {
            common[i * columns + j] = if want[i] == got[j] {
                common[(i + 1) * columns + j + 1] + 1
            } else {
                common[(i + 1) * columns + j].max(common[i * columns + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut edits = Vec::with_capacity(want.len() + got.len());
    while i < want.len() || j < got.len() {
        if i < want.len() && j < got.len() && want[i] == got[j] {
            edits.push(Edit::Kept(want[i]));
            (i, j) = (i + 1, j + 1);
        } else if j == got.len()
            || (i < want.len() && common[(i + 1) * columns + j] >= common[i * columns + j + 1])
        {
            edits.push(Edit::Removed(want[i]));
            i += 1;
        } else {
            edits.push(Edit::Added(got[j]));
            j += 1;
        }
    }
    edits
}

/// The ranges of `edits` shown as hunks: every change with [`CONTEXT_LINES`] around it,
/// changes closer than twice that merged into one hunk.
fn hunks(edits: &[Edit]) -> Vec<std::ops::Range<usize>> {
    let mut hunks: Vec<std::ops::Range<usize>> = Vec::new();
    let changes = edits
        .iter()
        .enumerate()
        .filter(|(_, edit)| !matches!(edit, Edit::Kept(_)))
        .map(|(index, _)| index);
    for change in changes {
        let start = change.saturating_sub(CONTEXT_LINES);
        let end = (change + 1 + CONTEXT_LINES).min(edits.len());
        match hunks.last_mut() {
            Some(last) if start <= last.end => last.end = end,
            _ => hunks.push(start..end),
        }
    }
    hunks
}

/// `@@ -<first>,<count> +<first>,<count> @@` of the hunk `range` of `edits` (1-based lines).
fn hunk_header(edits: &[Edit], range: std::ops::Range<usize>) -> String {
    let in_want = |edit: &Edit| !matches!(edit, Edit::Added(_));
    let in_got = |edit: &Edit| !matches!(edit, Edit::Removed(_));
    let want_first = edits[..range.start].iter().filter(|e| in_want(e)).count() + 1;
    let got_first = edits[..range.start].iter().filter(|e| in_got(e)).count() + 1;
    let want_count = edits[range.clone()].iter().filter(|e| in_want(e)).count();
    let got_count = edits[range].iter().filter(|e| in_got(e)).count();
    format!("@@ -{want_first},{want_count} +{got_first},{got_count} @@")
}

/// One edit as a diff line: its mark and text, and a note when the line has no final newline.
fn diff_line(edit: Edit) -> String {
    let (mark, line) = match edit {
        Edit::Kept(line) => (' ', line),
        Edit::Removed(line) => ('-', line),
        Edit::Added(line) => ('+', line),
    };
    match line.strip_suffix('\n') {
        Some(text) => format!("{mark}{text}"),
        None => format!("{mark}{line}\n\\ No newline at end of file"),
    }
}

/// What a test does when something it needs (a server, a tool) is missing: fails under
/// SVCGEN_REQUIRE_INFRA=1 (CI, which must have everything); otherwise prints `SKIPPED: <reason>`,
/// appends a line to the file SVCGEN_SKIP_LOG names (so `cargo xtask test` can list every skip
/// at the end of a run), and returns so that the caller returns.
pub fn skip_or_fail(reason: &str) {
    // Logged in both cases, so that the run's summary names what was missing.
    if let Some(log) = std::env::var_os("SVCGEN_SKIP_LOG") {
        append_skip(Path::new(&log), &skip_line(reason));
    }
    if std::env::var_os("SVCGEN_REQUIRE_INFRA").is_some_and(|v| v == "1") {
        panic!("{reason} and SVCGEN_REQUIRE_INFRA=1");
    }
    eprintln!("SKIPPED: {reason}");
}

/// `[<test binary>] <test name>: <reason>` and a newline, on one line.
pub fn skip_line(reason: &str) -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| test_binary_name(&stem).to_string())
        .unwrap_or_else(|| "?".into());
    // libtest runs each test on a thread named after it.
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    format!("[{binary}] {test}: {}\n", reason.replace('\n', " "))
}

/// `golden` of `golden-0123456789abcdef`: Cargo names test binaries `<target>-<hash>`.
fn test_binary_name(file_stem: &str) -> &str {
    match file_stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name
        }
        _ => file_stem,
    }
}

/// Appends `line` to `log` with one write, so that lines of tests running at the same time
/// do not interleave (O_APPEND puts each write at the end).
pub fn append_skip(log: &Path, line: &str) {
    use std::io::Write as _;
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    // A skip that is not recorded would make the run's summary claim fewer skips than happened.
    if let Err(e) = appended {
        panic!("cannot append to the skip log {}: {e}", log.display());
    }
}
