//! How long `cargo build` takes after a spec edit, since regeneration rewrites only the files
//! the edit changes. Generates the notes example into a workspace of its own, builds it once
//! (every dependency), then, each step timed in the same run:
//!
//! 1. rebuilds with nothing changed (Cargo's own floor);
//! 2. adds a service to the spec, regenerates over the tree, rebuilds;
//! 3. changes one route of an existing service, regenerates, rebuilds;
//! 4. rebuilds every crate of the workspace (the workspace's crates cleaned, dependencies
//!    kept): what a generator that rewrote every file would cost.
//!
//! For each step it prints the time, the crates Cargo compiled, and the ratio to step 4.
//!
//! `cargo run --release -p svcgen --example bench_rebuild` (the first build of the
//! dependencies takes minutes; its time is printed but is not the point).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The service the second step adds.
const BOOKMARKS: &str = "
  bookmarks:
    description: Links people keep.
    store: bookmarks_db
    entities:
      bookmark:
        owner: owner_id
        fields: { url: string(1..500), title: string(1..200) }
    routes:
      POST /bookmarks: { create: bookmark }
      GET /bookmarks: { list: bookmark, sort: [title] }
      DELETE /bookmarks/{id}: { delete: bookmark }
";

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().expect("the repository");
    let work = root.join("target").join("bench-rebuild");
    let out = work.join("notes");
    let target = work.join("target");
    if out.exists() {
        std::fs::remove_dir_all(&out).expect("the previous workspace is removed");
    }
    let original =
        std::fs::read_to_string(root.join("examples/notes.yaml")).expect("the notes example");
    let runtime = root.join("runtime").display().to_string();

    generate(&original, &out, &runtime);
    let (first, _) = build(&out, &target);
    println!("first build (every dependency): {}", secs(first));

    let (unchanged, unchanged_crates) = build(&out, &target);

    let with_bookmarks = original.replacen(
        "stores:\n",
        "stores:\n  bookmarks_db: { engine: postgres }\n",
        1,
    ) + BOOKMARKS;
    generate(&with_bookmarks, &out, &runtime);
    let (service_added, service_crates) = build(&out, &target);

    let route = "GET /notes: { list: note, mine: true, filter: [tags, public, created_at], sort: [title, updated_at] }";
    assert!(
        with_bookmarks.contains(route),
        "the notes example has its list route"
    );
    let route_changed = with_bookmarks.replace(
        route,
        &route.replace("sort: [title, updated_at]", "sort: [title]"),
    );
    generate(&route_changed, &out, &runtime);
    let (one_route, route_crates) = build(&out, &target);

    let members = workspace_crates(&out);
    let mut clean = Command::new("cargo");
    clean
        .arg("clean")
        .arg("--manifest-path")
        .arg(out.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target);
    for member in &members {
        clean.args(["-p", member]);
    }
    assert!(clean.status().expect("cargo clean runs").success());
    let (everything, all_crates) = build(&out, &target);

    println!();
    println!(
        "{:<34} {:>9} {:>10}  crates compiled",
        "step", "build", "vs all"
    );
    for (step, took, crates) in [
        ("nothing changed", unchanged, &unchanged_crates),
        ("a service added", service_added, &service_crates),
        ("one route changed", one_route, &route_crates),
        ("every workspace crate rebuilt", everything, &all_crates),
    ] {
        println!(
            "{step:<34} {:>9} {:>9.2}x  {}",
            secs(took),
            took.as_secs_f64() / everything.as_secs_f64(),
            if crates.is_empty() {
                "none".to_owned()
            } else {
                crates.join(", ")
            }
        );
    }
    println!(
        "\n{} cores; the workspace has {} crates of its own",
        std::thread::available_parallelism().map_or(1, usize::from),
        members.len()
    );
}

/// Generates `spec` into `out` over what earlier generations wrote there.
fn generate(spec: &str, out: &Path, runtime: &str) {
    let options = svcgen::Options {
        spec_name: "notes.yaml".into(),
        runtime_path: runtime.into(),
        history: svcgen::evolve::History::read(out).expect("the tree's migrations"),
    };
    let (_, files) = svcgen::generate(spec, &options)
        .unwrap_or_else(|error| panic!("generation failed: {error:?}"));
    svcgen::write::write_tree(out, &files).expect("the tree is written");
}

/// `cargo build` of the workspace's binary: how long it took and which crates it compiled.
fn build(out: &Path, target: &PathBuf) -> (Duration, Vec<String>) {
    let start = Instant::now();
    let output = Command::new("cargo")
        .args(["build", "--bin", "notes", "--manifest-path"])
        .arg(out.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("cargo runs");
    let took = start.elapsed();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the build failed:\n{log}");
    let compiled = log
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Compiling "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    (took, compiled)
}

/// The package names of the workspace's own crates.
fn workspace_crates(out: &Path) -> Vec<String> {
    let mut crates = Vec::new();
    for manifest in ["contracts/Cargo.toml", "system/Cargo.toml"]
        .into_iter()
        .map(|m| out.join(m))
        .chain(
            std::fs::read_dir(out.join("services"))
                .expect("the services")
                .map(|e| e.expect("a service").path().join("Cargo.toml")),
        )
    {
        let text = std::fs::read_to_string(&manifest).expect("a manifest");
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .expect("a package name")
            .trim_matches('"')
            .to_owned();
        crates.push(name);
    }
    crates.sort();
    crates
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
