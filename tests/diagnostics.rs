//! Every failing spec under tests/specs/fail/<case>/spec.yaml yields exactly the diagnostics
//! committed beside it in `expected.txt`; every spec under tests/specs/pass/ is clean.
//! Re-bless after an intended change: `SVCGEN_BLESS=1 cargo test -p svcgen --test diagnostics`.

mod support;

use std::fs;

#[test]
fn failing_specs_report_every_problem_with_positions() {
    let cases_dir = support::root().join("tests/specs/fail");
    let mut cases: Vec<_> = fs::read_dir(&cases_dir)
        .expect("tests/specs/fail exists")
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 15,
        "at least 15 failing specs, found {}",
        cases.len()
    );
    let mut mismatches = Vec::new();
    for case in &cases {
        let spec = case.join("spec.yaml");
        let source =
            fs::read_to_string(&spec).unwrap_or_else(|e| panic!("{}: {e}", spec.display()));
        let shown = format!(
            "tests/specs/fail/{}/spec.yaml",
            case.file_name().unwrap().to_string_lossy()
        );
        let problems = match svcgen::check(&source) {
            Ok(_) => {
                mismatches.push(format!("{shown}: expected errors, the spec is valid"));
                continue;
            }
            Err(problems) => problems,
        };
        for problem in &problems {
            assert!(
                problem.span.line >= 1 && problem.span.col >= 1,
                "{shown}: a diagnostic without a position: {problem:?}"
            );
        }
        let rendered = svcgen::diag::render(&shown, &source, &problems);
        let expected_path = case.join("expected.txt");
        if support::blessing() {
            fs::write(&expected_path, &rendered).unwrap();
            continue;
        }
        match fs::read_to_string(&expected_path) {
            Ok(expected) if expected == rendered => {}
            Ok(expected) => mismatches.push(format!(
                "{shown}:\n--- expected\n{expected}\n--- actual\n{rendered}"
            )),
            Err(_) => mismatches.push(format!("{shown}: no expected.txt (bless it)")),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\nre-bless with SVCGEN_BLESS=1 if the change is intended",
        mismatches.join("\n")
    );
}

#[test]
fn passing_specs_are_clean() {
    let mut specs: Vec<_> = fs::read_dir(support::root().join("tests/specs/pass"))
        .expect("tests/specs/pass exists")
        .map(|e| e.unwrap().path().join("spec.yaml"))
        .collect();
    specs.push(support::root().join("examples/notes.yaml"));
    specs.sort();
    for spec in specs {
        let source = fs::read_to_string(&spec).unwrap();
        if let Err(problems) = svcgen::check(&source) {
            panic!(
                "{}",
                svcgen::diag::render(&spec.display().to_string(), &source, &problems)
            );
        }
    }
}
