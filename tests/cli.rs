//! The `svcgen` binary as a user runs it.

mod support;

use std::path::Path;
use std::process::{Command, Output};

fn svcgen(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_svcgen"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("svcgen runs")
}

#[test]
fn every_command_has_help() {
    for command in [
        vec!["--help"],
        vec!["validate", "--help"],
        vec!["generate", "--help"],
        vec!["check", "--help"],
        vec!["up", "--help"],
        vec!["diff", "--help"],
    ] {
        let output = svcgen(&command, &support::root());
        assert!(output.status.success(), "{command:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage:"),
            "{command:?}"
        );
    }
}

#[test]
fn validate_exits_zero_on_a_clean_spec_and_non_zero_with_every_problem() {
    let ok = svcgen(&["validate", "examples/notes.yaml"], &support::root());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let bad = svcgen(
        &["validate", "tests/specs/fail/many-errors/spec.yaml"],
        &support::root(),
    );
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    let errors = stderr
        .lines()
        .filter(|l| {
            l.starts_with("tests/specs/fail/many-errors/spec.yaml:") && l.contains(": error: ")
        })
        .count();
    assert!(errors >= 5, "every problem at once, got:\n{stderr}");
}

#[test]
fn a_bad_spec_writes_nothing_not_even_the_output_directory() {
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("out");
    let spec = support::root().join("tests/specs/fail/many-errors/spec.yaml");
    let output = svcgen(
        &[
            "generate",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        temp.path(),
    );
    assert!(!output.status.success());
    assert!(!out.exists(), "the output directory was created");
    assert_eq!(
        std::fs::read_dir(temp.path()).unwrap().count(),
        0,
        "something was written"
    );
}

#[test]
fn check_fails_on_drift_and_names_each_file_but_writes_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("notes");
    let spec = support::root().join("examples/notes.yaml");
    let (spec, out_arg) = (spec.to_str().unwrap(), out.to_str().unwrap());
    assert!(
        svcgen(&["generate", spec, "--out", out_arg], temp.path())
            .status
            .success()
    );
    let check = || svcgen(&["check", spec, "--out", out_arg], temp.path());
    let clean = check();
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );

    // A generated file edited, one removed, a generated file the spec no longer makes, and a
    // file of the user's (no header), which is not drift.
    let lib = out.join("services/notes/src/lib.rs");
    let edited = std::fs::read_to_string(&lib).unwrap() + "\n// an edit\n";
    std::fs::write(&lib, &edited).unwrap();
    std::fs::remove_file(out.join("asyncapi.yaml")).unwrap();
    let header = std::fs::read_to_string(out.join("Cargo.toml"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    std::fs::write(out.join("services/old.toml"), format!("{header}\n")).unwrap();
    std::fs::write(out.join("services/notes/src/mine.rs"), "// my own code\n").unwrap();
    let drifted = check();
    assert_eq!(drifted.status.code(), Some(1));
    let listed = String::from_utf8_lossy(&drifted.stdout);
    for (what, file) in [
        ("changed", "services/notes/src/lib.rs"),
        ("missing", "asyncapi.yaml"),
        ("stale", "services/old.toml"),
    ] {
        let line = format!("{what}: {}", out.join(file).display());
        assert!(listed.lines().any(|l| l == line), "{line} in:\n{listed}");
    }
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(
        String::from_utf8_lossy(&drifted.stderr).contains("svcgen generate"),
        "it says how to fix it"
    );
    assert_eq!(
        std::fs::read_to_string(&lib).unwrap(),
        edited,
        "check writes nothing"
    );
    assert!(!out.join("asyncapi.yaml").exists(), "check writes nothing");
}

#[test]
fn generate_writes_a_workspace_and_keeps_user_files_on_regeneration() {
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("notes");
    let spec = support::root().join("examples/notes.yaml");
    let args = [
        "generate",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    assert!(svcgen(&args, temp.path()).status.success());
    assert!(out.join("Cargo.toml").is_file() && out.join("system/src/main.rs").is_file());
    let manifest = std::fs::read_to_string(out.join("Cargo.toml")).unwrap();
    let runtime = support::root().join("runtime").canonicalize().unwrap();
    let line = manifest
        .lines()
        .find(|l| l.starts_with("svcgen-runtime"))
        .unwrap();
    let relative = line
        .split("path = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    assert_eq!(
        out.join(relative).canonicalize().unwrap(),
        runtime,
        "the runtime path resolves from the output dir"
    );

    std::fs::write(out.join("services/notes/src/extra.rs"), "// mine\n").unwrap();
    let again = svcgen(&args, temp.path());
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("0 file(s) written"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(out.join("services/notes/src/extra.rs").exists());
}

/// Every file under `dir` (relative path → contents).
fn tree(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_path_buf();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn adding_a_service_rewrites_only_that_service_the_workspace_lists_and_the_system_crate() {
    let temp = tempfile::tempdir().unwrap();
    let spec = temp.path().join("notes.yaml");
    let out = temp.path().join("notes");
    let original = std::fs::read_to_string(support::root().join("examples/notes.yaml")).unwrap();
    std::fs::write(&spec, &original).unwrap();
    let generate = || {
        let output = svcgen(
            &[
                "generate",
                spec.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            temp.path(),
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    generate();
    let before = tree(&out);
    let grown = original.replacen(
        "stores:\n",
        "stores:\n  bookmarks_db: { engine: postgres }\n",
        1,
    ) + "
  bookmarks:
    description: Links people keep.
    store: bookmarks_db
    entities:
      bookmark:
        owner: owner_id
        fields: { url: string(1..500) }
    routes:
      POST /bookmarks: { create: bookmark }
      GET /bookmarks: { list: bookmark }
";
    std::fs::write(&spec, grown).unwrap();
    generate();
    let after = tree(&out);
    let changed: Vec<String> = after
        .iter()
        .filter(|(path, contents)| before.get(*path) != Some(*contents))
        .map(|(path, _)| path.display().to_string())
        .filter(|path| !path.starts_with("services/bookmarks/"))
        .collect();
    assert_eq!(
        changed,
        [
            "Cargo.toml",
            "README.md",
            "system/Cargo.toml",
            "system/src/main.rs"
        ],
        "the other services' crates and the contracts stay byte-identical, so Cargo rebuilds none of them"
    );
    assert!(
        after
            .keys()
            .any(|p| p.starts_with("services/bookmarks/src"))
    );
    assert!(
        before.keys().all(|p| after.contains_key(p)),
        "nothing removed"
    );
}

#[test]
fn diff_exits_non_zero_only_on_a_breaking_change_nobody_acknowledged() {
    let temp = tempfile::tempdir().unwrap();
    let evolving = support::root().join("tests/systems/evolving");
    let (v1, v2) = (evolving.join("v1.yaml"), evolving.join("v2.yaml"));
    let run = |args: &[&str]| svcgen(args, temp.path());

    let same = run(&["diff", v1.to_str().unwrap(), v1.to_str().unwrap()]);
    assert!(same.status.success());
    assert!(String::from_utf8_lossy(&same.stdout).contains("0 change(s)"));

    let changed = run(&["diff", v1.to_str().unwrap(), v2.to_str().unwrap()]);
    assert_eq!(changed.status.code(), Some(1));
    let report = String::from_utf8_lossy(&changed.stdout);
    let line = report
        .lines()
        .find(|line| line.contains("column `draft_of` dropped with its values"))
        .unwrap_or_else(|| panic!("{report}"));
    let words: Vec<&str> = line.split_whitespace().take(3).collect();
    assert_eq!(words, ["BREAKING", "table", "shelf.note"], "{report}");

    // The same as JSON, for CI; each id, listed under `acknowledged:`, accepts its change.
    let json = run(&[
        "diff",
        v1.to_str().unwrap(),
        v2.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let open: Vec<String> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["breaking"] == true && c["acknowledged"] == false)
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(report["unacknowledged"], open.len());
    let list: String = open
        .iter()
        .map(|id| format!("  - {}\n", serde_json::to_string(id).unwrap()))
        .collect();
    let accepted = temp.path().join("v2.yaml");
    let v2_text = std::fs::read_to_string(&v2).unwrap();
    std::fs::write(
        &accepted,
        v2_text.replacen("stores:", &format!("acknowledged:\n{list}\nstores:"), 1),
    )
    .unwrap();
    let ok = run(&["diff", v1.to_str().unwrap(), accepted.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    // A spec with errors compares nothing (exit 2).
    let broken = temp.path().join("broken.yaml");
    std::fs::write(&broken, "system: x\n").unwrap();
    let error = run(&["diff", v1.to_str().unwrap(), broken.to_str().unwrap()]);
    assert_eq!(error.status.code(), Some(2));
}

#[test]
fn diff_compares_with_the_spec_at_a_git_revision() {
    let temp = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(temp.path())
            .output()
            .expect("git runs");
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
    };
    let evolving = support::root().join("tests/systems/evolving");
    let spec = temp.path().join("shelf.yaml");
    git(&["init", "-q"]);
    std::fs::copy(evolving.join("v1.yaml"), &spec).unwrap();
    git(&["add", "shelf.yaml"]);
    git(&["commit", "-q", "-m", "v1"]);
    std::fs::copy(evolving.join("v2.yaml"), &spec).unwrap();
    let output = svcgen(&["diff", "shelf.yaml", "--base", "HEAD"], temp.path());
    assert_eq!(output.status.code(), Some(1));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("route    POST /tags"), "{report}");
    let missing = svcgen(
        &["diff", "shelf.yaml", "--base", "no-such-ref"],
        temp.path(),
    );
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("cannot read shelf.yaml at no-such-ref")
    );
}
