//! The gRPC contracts svcgen writes are real protobuf: the real `protoc` compiles every
//! `.proto` to exactly the descriptor svcgen generated the Rust code from, `buf lint`
//! (standard rules) finds nothing to say about them, and `svcgen diff` calls a contract change
//! breaking exactly when `buf breaking` does.

mod support;

use prost::Message as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every valid spec whose services serve RPCs, generated into `dir`.
fn generate_all(dir: &Path) -> Vec<(svcgen::model::System, PathBuf)> {
    let mut specs: Vec<PathBuf> = std::fs::read_dir(support::root().join("tests/specs/pass"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("spec.yaml"))
        .collect();
    specs.extend(
        std::fs::read_dir(support::root().join("examples"))
            .unwrap()
            .map(|entry| entry.unwrap().path()),
    );
    specs.sort();
    let mut systems = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let source = std::fs::read_to_string(spec).unwrap();
        let options = svcgen::Options {
            spec_name: "spec.yaml".into(),
            runtime_path: "../runtime".into(),
            history: Default::default(),
        };
        let (checked, files) = svcgen::generate(&source, &options)
            .unwrap_or_else(|problems| panic!("{}: {problems:?}", spec.display()));
        if checked
            .system
            .services
            .iter()
            .all(|s| !svcgen::rpc::has_contract(s))
        {
            continue;
        }
        let out = dir.join(index.to_string());
        svcgen::write::write_tree(&out, &files).unwrap();
        systems.push((checked.system, out));
    }
    assert!(!systems.is_empty(), "some valid spec serves RPCs");
    systems
}

/// Whether the tool at `path` is installed; when not, skips the test (or fails it under
/// SVCGEN_REQUIRE_INFRA=1).
fn tool_or_skip(path: &Path, what: &str) -> bool {
    if path.exists() {
        return true;
    }
    support::skip_or_fail(&format!("{what} is not installed ({})", path.display()));
    false
}

/// The `buf` binary, or `None` (the test skipped, or failed under SVCGEN_REQUIRE_INFRA=1).
fn buf() -> Option<PathBuf> {
    let buf = support::root().join("tests/tools/node_modules/@bufbuild/buf-linux-x64/bin/buf");
    tool_or_skip(&buf, "buf (npm ci --prefix tests/tools)").then_some(buf)
}

/// Source info and JSON names are presentation; the rest of a descriptor is the contract.
fn comparable(mut file: prost_types::FileDescriptorProto) -> prost_types::FileDescriptorProto {
    file.source_code_info = None;
    for message in &mut file.message_type {
        for field in &mut message.field {
            field.json_name = None;
        }
    }
    file
}

#[test]
fn protoc_compiles_every_contract_to_the_descriptor_svcgen_generated_code_from() {
    let protoc = PathBuf::from("/usr/bin/protoc");
    if !tool_or_skip(&protoc, "protoc (Debian package protobuf-compiler)") {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    for (system, out) in generate_all(temp.path()) {
        let ir = svcgen::lower::lower(&system);
        for (service, file) in ir
            .services
            .iter()
            .filter_map(|s| s.contract.as_ref().map(|file| (s.model, file)))
        {
            let set_path = out.join(format!("{}.pb", service.name.value));
            let result = Command::new(&protoc)
                .current_dir(out.join("proto"))
                .arg("-I.")
                .arg(format!("--descriptor_set_out={}", set_path.display()))
                .arg(&file.path)
                .output()
                .unwrap();
            assert!(
                result.status.success(),
                "protoc rejected {}:\n{}",
                file.path,
                String::from_utf8_lossy(&result.stderr)
            );
            let compiled = prost_types::FileDescriptorSet::decode(
                std::fs::read(&set_path).unwrap().as_slice(),
            )
            .unwrap();
            let ours = svcgen::render::proto::descriptor_set(file);
            let ours = ours.file.last().unwrap().clone();
            assert_eq!(compiled.file.len(), 1);
            assert_eq!(
                comparable(compiled.file[0].clone()),
                comparable(ours),
                "the .proto text of {} and the descriptor its Rust code comes from differ",
                file.path
            );
        }
    }
}

#[test]
fn buf_lint_finds_nothing_in_any_contract() {
    let Some(buf) = buf() else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    for (_, out) in generate_all(temp.path()) {
        let result = Command::new(&buf)
            .current_dir(out.join("proto"))
            .arg("lint")
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "buf lint failed on {}:\n{}{}",
            out.display(),
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
    }
}

/// The shop's spec with `edit` applied, checked and generated into `out` over what `out`
/// holds (as `svcgen generate` does: contracts already written keep their field numbers).
fn shop_variant(edit: impl Fn(&str) -> String, out: &Path) -> svcgen::model::System {
    let shop = std::fs::read_to_string(support::root().join("examples/shop.yaml")).unwrap();
    let source = edit(&shop);
    let options = svcgen::Options {
        spec_name: "shop.yaml".into(),
        runtime_path: "../runtime".into(),
        history: svcgen::evolve::History::read(out).unwrap(),
    };
    let (checked, files) = svcgen::generate(&source, &options).unwrap();
    svcgen::write::write_tree(out, &files).unwrap();
    checked.system
}

#[test]
fn svcgen_diff_and_buf_breaking_agree_on_contract_changes() {
    let Some(buf) = buf() else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let base = temp.path().join("base");
    let old = shop_variant(str::to_owned, &base);
    let reserve = r#"request: { order_id: uuid, items: "[stock_line]" }"#;
    let get_product = "      GetProduct:\n        description: One product by id.\n        get: product\n        idempotent: true\n";
    type Edit = Box<dyn Fn(&str) -> String>;
    let variants: Vec<(&str, Edit, bool)> = vec![
        ("unchanged", Box::new(str::to_owned), false),
        (
            "a request field added at the end",
            Box::new(move |s| {
                s.replace(
                    reserve,
                    r#"request: { order_id: uuid, items: "[stock_line]", note: "string?" }"#,
                )
            }),
            false,
        ),
        (
            // It takes the next number: the others keep theirs.
            "a request field added first",
            Box::new(move |s| {
                s.replace(
                    reserve,
                    r#"request: { note: "string?", order_id: uuid, items: "[stock_line]" }"#,
                )
            }),
            false,
        ),
        (
            "a field added first to a message",
            Box::new(|s| {
                s.replacen(
                    "fields: { product_id: uuid, quantity: int }",
                    "fields: { note: \"string?\", product_id: uuid, quantity: int }",
                    1,
                )
            }),
            false,
        ),
        (
            "a field of another type",
            Box::new(|s| s.replace("unit_price_cents: int }", "unit_price_cents: string }")),
            true,
        ),
        (
            // Its number and name stay reserved.
            "a field removed",
            Box::new(|s| {
                s.replacen("          description: text?\n          price_cents: int\n", "          price_cents: int\n", 1)
                    .replacen(
                        "        description: Something the shop sells.\n        fields:\n",
                        "        description: Something the shop sells.\n        removed: [description]\n        fields:\n",
                        1,
                    )
            }),
            true,
        ),
        (
            "an RPC removed",
            Box::new(move |s| s.replace(get_product, "")),
            true,
        ),
    ];
    for (index, (what, edit, breaking)) in variants.into_iter().enumerate() {
        let out = temp.path().join(index.to_string());
        copy_tree(&base, &out);
        let new = shop_variant(&edit, &out);
        let shop = std::fs::read_to_string(support::root().join("examples/shop.yaml")).unwrap();
        assert_eq!(edit(&shop) == shop, index == 0, "{what}: the edit applies");
        let changes = svcgen::compat::compare(&old, &new);
        let svcgen_says = changes
            .iter()
            .any(|c| c.surface == svcgen::compat::Surface::Proto && c.breaking);
        let result = Command::new(&buf)
            .current_dir(out.join("proto"))
            .args(["breaking", "--error-format=json", "--against"])
            .arg(base.join("proto"))
            .output()
            .unwrap();
        let buf_says = !result.status.success();
        let said = String::from_utf8_lossy(&result.stdout).into_owned()
            + &String::from_utf8_lossy(&result.stderr);
        // buf parsed both trees: a failure names the rules broken, never a syntax error.
        assert!(
            !buf_says
                || said.contains("FIELD_")
                || said.contains("RPC_")
                || said.contains("SERVICE_"),
            "{what}: {said}"
        );
        assert_eq!(
            (svcgen_says, buf_says),
            (breaking, breaking),
            "{what}: svcgen diff {changes:#?}\nbuf breaking:\n{}{}",
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
    }
}

/// Copies the tree at `from` to `to`.
fn copy_tree(from: &Path, to: &Path) {
    for (path, bytes) in support::read_tree(from) {
        let target = to.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
}
