//! Every valid spec, awkward names included (Rust and SQL keywords as entity and field names,
//! every field type, public routes, no gateway or auth at all), generates a workspace that is
//! rustfmt-clean and passes clippy with warnings denied.

mod harness;
mod support;

use harness::{System, assert_formatted_and_clippy_clean};

#[test]
fn every_valid_spec_generates_code_that_passes_clippy() {
    let mut specs: Vec<(String, String)> =
        std::fs::read_dir(support::root().join("tests/specs/pass"))
            .expect("tests/specs/pass exists")
            .map(|entry| {
                let case = entry.unwrap().file_name().to_string_lossy().into_owned();
                (
                    format!("tests/specs/pass/{case}/spec.yaml"),
                    format!("pass-{case}"),
                )
            })
            .collect();
    specs.push(("tests/systems/courier.yaml".into(), "check-courier".into()));
    specs.push((
        "tests/systems/stockroom.yaml".into(),
        "check-stockroom".into(),
    ));
    // The workspace the rules and consumers tests run: one build for the three.
    specs.push(("tests/systems/clubs.yaml".into(), "clubs".into()));
    // The workspace the forum test runs.
    specs.push(("tests/systems/forum.yaml".into(), "forum".into()));
    specs.sort();
    for (spec, name) in specs {
        let system = System::generate(&spec, &name);
        assert_formatted_and_clippy_clean(&system);
    }
}
