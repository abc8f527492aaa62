//! gRPC contracts: one versioned protobuf package per service that serves RPCs
//! (`shop.product.v1`). One description of each package ([`ProtoFile`], built by
//! [`crate::contract`]) is rendered twice:
//! as `.proto` text for people and other languages (through `templates/proto.tera`), and as
//! a descriptor from which svcgen generates the Rust messages, clients and servers itself with
//! `tonic-prost-build`, so neither svcgen's users nor the generated workspace need `protoc`.

use crate::contract::ProtoFile;
use prost_types::field_descriptor_proto::{Label, Type as ProtoType};
use prost_types::method_options::IdempotencyLevel;
use prost_types::source_code_info::Location;
use prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    MethodDescriptorProto, MethodOptions, OneofDescriptorProto, ServiceDescriptorProto,
    SourceCodeInfo,
};

const TIMESTAMP_FILE: &str = "google/protobuf/timestamp.proto";

/// The `.proto` text of a contract.
pub fn render_text(file: &ProtoFile) -> String {
    let mut context = tera::Context::new();
    context.insert("file", file);
    super::text::render_template("proto", &context)
}

/// The descriptor of a contract, with its documentation as source info (the generated Rust
/// code carries it as doc comments), in a set with the well-known types it imports.
pub fn descriptor_set(file: &ProtoFile) -> FileDescriptorSet {
    let mut locations = Vec::new();
    let comment = |path: Vec<i32>, text: &str| Location {
        path,
        span: vec![0, 0, 0],
        leading_comments: Some(format!(" {}\n", text.replace('\n', "\n "))),
        trailing_comments: None,
        leading_detached_comments: Vec::new(),
    };
    let mut message_types = Vec::new();
    for (index, message) in (0..).zip(&file.messages) {
        locations.push(comment(vec![4, index], &message.description));
        let mut fields = Vec::new();
        let mut oneofs = Vec::new();
        for (field_index, field) in (0..).zip(&message.fields) {
            locations.push(comment(vec![4, index, 2, field_index], &field.description));
            let (ty, type_name) = match field.type_name.as_str() {
                "string" => (ProtoType::String, None),
                "int64" => (ProtoType::Int64, None),
                "bool" => (ProtoType::Bool, None),
                "google.protobuf.Timestamp" => (
                    ProtoType::Message,
                    Some(".google.protobuf.Timestamp".to_owned()),
                ),
                name => (
                    ProtoType::Message,
                    Some(format!(".{}.{name}", file.package)),
                ),
            };
            let optional = field.label == "optional";
            // proto3 `optional` is a synthetic one-field oneof named `_<field>`.
            let oneof_index = optional.then(|| {
                oneofs.push(OneofDescriptorProto {
                    name: Some(format!("_{}", field.name)),
                    options: None,
                });
                i32::try_from(oneofs.len() - 1).expect("few fields")
            });
            fields.push(FieldDescriptorProto {
                name: Some(field.name.clone()),
                number: Some(field.number),
                label: Some(if field.label == "repeated" {
                    Label::Repeated
                } else {
                    Label::Optional
                } as i32),
                r#type: Some(ty as i32),
                type_name,
                json_name: Some(json_name(&field.name)),
                oneof_index,
                proto3_optional: optional.then_some(true),
                ..Default::default()
            });
        }
        message_types.push(DescriptorProto {
            name: Some(message.name.clone()),
            field: fields,
            oneof_decl: oneofs,
            reserved_range: message
                .reserved
                .iter()
                .map(|number| prost_types::descriptor_proto::ReservedRange {
                    start: Some(*number),
                    end: Some(number + 1),
                })
                .collect(),
            reserved_name: message.reserved_names.clone(),
            ..Default::default()
        });
    }
    let mut services = Vec::new();
    for (service_index, service) in (0..).zip(&file.services) {
        locations.push(comment(vec![6, service_index], &service.description));
        let methods = (0..)
            .zip(&service.methods)
            .map(|(index, method)| {
                locations.push(comment(
                    vec![6, service_index, 2, index],
                    &method.description,
                ));
                let level = match method.idempotency {
                    "NO_SIDE_EFFECTS" => Some(IdempotencyLevel::NoSideEffects),
                    "IDEMPOTENT" => Some(IdempotencyLevel::Idempotent),
                    _ => None,
                };
                MethodDescriptorProto {
                    name: Some(method.name.clone()),
                    input_type: Some(format!(".{}.{}", file.package, method.input)),
                    output_type: Some(format!(".{}.{}", file.package, method.output)),
                    options: level.map(|level| MethodOptions {
                        idempotency_level: Some(level as i32),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            })
            .collect();
        services.push(ServiceDescriptorProto {
            name: Some(service.name.clone()),
            method: methods,
            options: None,
        });
    }
    let contract = FileDescriptorProto {
        name: Some(file.path.clone()),
        package: Some(file.package.clone()),
        dependency: if file.uses_timestamp {
            vec![TIMESTAMP_FILE.to_owned()]
        } else {
            Vec::new()
        },
        message_type: message_types,
        service: services,
        source_code_info: Some(SourceCodeInfo {
            location: locations,
        }),
        syntax: Some("proto3".to_owned()),
        ..Default::default()
    };
    let mut files = Vec::new();
    if file.uses_timestamp {
        files.push(timestamp_file());
    }
    files.push(contract);
    FileDescriptorSet { file: files }
}

/// `google/protobuf/timestamp.proto`, which the generated code maps to `prost_types`.
fn timestamp_file() -> FileDescriptorProto {
    let field = |name: &str, number, ty: ProtoType| FieldDescriptorProto {
        name: Some(name.to_owned()),
        number: Some(number),
        label: Some(Label::Optional as i32),
        r#type: Some(ty as i32),
        json_name: Some(name.to_owned()),
        ..Default::default()
    };
    FileDescriptorProto {
        name: Some(TIMESTAMP_FILE.to_owned()),
        package: Some("google.protobuf".to_owned()),
        message_type: vec![DescriptorProto {
            name: Some("Timestamp".to_owned()),
            field: vec![
                field("seconds", 1, ProtoType::Int64),
                field("nanos", 2, ProtoType::Int32),
            ],
            ..Default::default()
        }],
        syntax: Some("proto3".to_owned()),
        ..Default::default()
    }
}

/// protoc's JSON name of a field: lowerCamelCase.
fn json_name(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The Rust code of a contract (messages, client, server), generated from its descriptor.
pub fn rust_code(file: &ProtoFile) -> String {
    let out = tempfile::tempdir().expect("a temporary directory can be made");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .out_dir(out.path())
        .compile_fds(descriptor_set(file))
        .unwrap_or_else(|error| {
            panic!("generating the Rust code of {} failed: {error}", file.path)
        });
    let generated = out.path().join(format!("{}.rs", file.package));
    std::fs::read_to_string(&generated)
        .unwrap_or_else(|error| panic!("reading {} failed: {error}", generated.display()))
}
