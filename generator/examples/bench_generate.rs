//! How validation and generation scale with the number of services: builds synthetic specs of
//! growing size and prints, for each, its size, the time to validate and to generate (every
//! stage but writing), and the time per service, so that linear growth is visible.
//!
//! Run it with `cargo run --release -p svcgen --example bench_generate`; pass service counts to
//! measure others, e.g. `-- 10 50`. Figures, never assertions: see DESIGN.md section 8.
//!
//! The generator formats every Rust file with the external `rustfmt`. Each spec is therefore
//! generated a second time with `RUSTFMT` pointing at a script that passes its input through
//! unchanged; the difference is the time rustfmt spends formatting (starting a process per
//! file is in both).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Service counts measured when none are given.
const DEFAULT_COUNTS: &[usize] = &[10, 100, 500, 2000];

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("service counts are whole numbers"))
        .collect();
    let counts = if counts.is_empty() {
        DEFAULT_COUNTS.to_vec()
    } else {
        counts
    };
    println!(
        "{:>8} {:>11} {:>10} {:>10} {:>12} {:>11} {:>12} {:>7} {:>12} {:>12}",
        "services",
        "spec bytes",
        "yaml nodes",
        "validate",
        "generate",
        "of which",
        "generate",
        "files",
        "validate",
        "generate"
    );
    println!(
        "{:>8} {:>11} {:>10} {:>10} {:>12} {:>11} {:>12} {:>7} {:>12} {:>12}",
        "", "", "", "", "", "rustfmt", "w/o rustfmt", "", "/service", "/service"
    );
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let pass_through = pass_through_script(scratch.path());
    for n in counts {
        let spec = synthetic_spec(n);
        let nodes = svcgen::load::load(&spec)
            .expect("the synthetic spec is YAML")
            .count();
        let validate = time(|| {
            let checked = svcgen::check(&spec).unwrap_or_else(|problems| fail(&spec, &problems));
            if !checked.warnings.is_empty() {
                fail(&spec, &checked.warnings);
            }
        });
        let (generate, files) = time_generate(&spec);
        // SAFETY: set between generations, when no other thread of the benchmark runs.
        unsafe { std::env::set_var("RUSTFMT", &pass_through) };
        let (unformatted, _) = time_generate(&spec);
        // SAFETY: as above.
        unsafe { std::env::remove_var("RUSTFMT") };
        let rustfmt = generate.saturating_sub(unformatted);
        println!(
            "{n:>8} {:>11} {nodes:>10} {:>10} {:>12} {:>11} {:>12} {files:>7} {:>12} {:>12}",
            spec.len(),
            ms(validate),
            ms(generate),
            ms(rustfmt),
            ms(unformatted),
            ms_fine(validate / n as u32),
            ms_fine(generate / n as u32),
        );
    }
}

/// Runs every stage but writing; returns the time taken and how many files it produced.
fn time_generate(spec: &str) -> (Duration, usize) {
    let options = svcgen::Options {
        spec_name: "bench.yaml".into(),
        runtime_path: "../../runtime".into(),
        history: Default::default(),
    };
    let mut files = 0;
    let elapsed = time(|| {
        // The spec passed `check` already: a failure here is the generator's.
        let (_, output) = svcgen::generate(spec, &options)
            .unwrap_or_else(|error| panic!("generation failed: {error:?}"));
        files = output.len();
    });
    (elapsed, files)
}

/// A stand-in for rustfmt that answers its input unchanged, whatever the arguments.
fn pass_through_script(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("rustfmt-pass-through");
    std::fs::write(&path, "#!/bin/sh\nexec cat\n").expect("the script is written");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("the script is made executable");
    path
}

fn time(run: impl FnOnce()) -> Duration {
    let start = Instant::now();
    run();
    start.elapsed()
}

fn fail(spec: &str, problems: &[svcgen::diag::Diagnostic]) -> ! {
    panic!(
        "the synthetic spec does not validate cleanly:\n{}",
        svcgen::diag::render("bench.yaml", spec, problems)
    )
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn ms_fine(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Every how many entity services one has its `created` event consumed by the notify service.
const CONSUMED_EVERY: usize = 10;

/// A spec that validates cleanly, with `services` entity services besides an auth and a
/// notify service. Entity service `i` is `catalog<i>` with store `catalog<i>_db` and an owned
/// entity `item<i>` (several field types and an index) served by the five CRUD routes under
/// `/item<i>s`; its create, update and delete routes emit `item<i>.created`, `.updated` and
/// `.deleted`. Every tenth `created` event notifies the item's owner.
pub fn synthetic_spec(services: usize) -> String {
    let ids: Vec<String> = (1..=services).map(|i| format!("{i:04}")).collect();
    let mut spec = String::from(
        "# Synthetic spec of the generator benchmark (generator/examples/bench_generate.rs).\n\
         system: bench\n\
         description: A synthetic system of many similar services.\n\n\
         auth:\n  service: auth\n  roles: [user, admin]\n\n\
         stores:\n  auth_db: { engine: postgres }\n  notification_db: { engine: postgres }\n",
    );
    for id in &ids {
        let _ = writeln!(spec, "  catalog{id}_db: {{ engine: postgres }}");
    }
    spec.push_str(
        "\nevents:\n  user.registered:\n    description: A new account was created.\n    \
         fields: { user_id: uuid, email: email, username: string }\n",
    );
    for id in &ids {
        let row = format!("item{id}_id: uuid, owner_id: uuid");
        let _ = write!(
            spec,
            "  item{id}.created:\n    description: An item was created.\n    fields: {{ {row}, title: string }}\n\
             \x20 item{id}.updated:\n    description: An item was changed.\n    fields: {{ {row}, title: string }}\n\
             \x20 item{id}.deleted:\n    description: An item was deleted.\n    fields: {{ {row} }}\n"
        );
    }
    spec.push_str(
        "\nservices:\n  auth:\n    description: Accounts, passwords and tokens.\n    uses: auth\n    \
         store: auth_db\n    emit:\n      registered: user.registered\n\n  \
         notification:\n    description: In-app notifications.\n    uses: notify\n    \
         store: notification_db\n    on:\n      user.registered:\n        \
         notify: { user: user_id, kind: welcome, message: \"Welcome, {username}!\" }\n",
    );
    for id in ids.iter().step_by(CONSUMED_EVERY) {
        let _ = writeln!(
            spec,
            "      item{id}.created:\n        attempts: 3\n        \
             notify: {{ user: owner_id, kind: item_created, message: \"You created {{title}}.\" }}"
        );
    }
    for id in &ids {
        spec.push('\n');
        spec.push_str(&entity_service(id));
    }
    spec
}

/// Service `catalog<id>`: one store, one owned entity, its CRUD routes.
fn entity_service(id: &str) -> String {
    format!(
        "  catalog{id}:
    description: Items of catalog {id}, each visible to its owner only.
    store: catalog{id}_db
    entities:
      item{id}:
        description: An item a user keeps.
        owner: owner_id
        fields:
          title: string(1..200)
          body: text
          quantity: int
          done: bool
          due_at: timestamp?
          tags: \"[string]?\"
        indexes:
          - [owner_id, created_at]
    routes:
      POST /item{id}s: {{ create: item{id}, emit: item{id}.created }}
      GET /item{id}s: {{ list: item{id} }}
      GET /item{id}s/{{id}}: {{ get: item{id} }}
      PATCH /item{id}s/{{id}}: {{ update: item{id}, emit: item{id}.updated }}
      DELETE /item{id}s/{{id}}: {{ delete: item{id}, emit: item{id}.deleted }}
"
    )
}
