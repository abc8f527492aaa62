//! gRPC contracts: one versioned protobuf package per service that serves RPCs
//! (`shop.product.v1`). One description of each package ([`ProtoFile`]) is rendered twice:
//! as `.proto` text for people and other languages (through `templates/proto.tera`), and as
//! a descriptor from which svcgen generates the Rust messages, clients and servers itself with
//! `tonic-prost-build`, so neither svcgen's users nor the generated workspace need `protoc`.

use crate::ident;
use crate::model::*;
use prost_types::field_descriptor_proto::{Label, Type as ProtoType};
use prost_types::method_options::IdempotencyLevel;
use prost_types::source_code_info::Location;
use prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    MethodDescriptorProto, MethodOptions, OneofDescriptorProto, ServiceDescriptorProto,
    SourceCodeInfo,
};
use serde::Serialize;

const TIMESTAMP_FILE: &str = "google/protobuf/timestamp.proto";

/// One service's protobuf package.
#[derive(Debug, Serialize)]
pub struct ProtoFile {
    /// `shop.product.v1`.
    pub package: String,
    /// Path below the workspace's `proto/` directory: `shop/product/v1/product.proto`.
    pub path: String,
    /// The gRPC services: `ProductService` (the spec's RPCs) and, for a service the gateway
    /// reaches over gRPC, `ProductApiService` (its routes).
    pub services: Vec<ProtoService>,
    /// Whether a field is a timestamp (the file imports the well-known type).
    pub uses_timestamp: bool,
    /// Request, response and record messages, in a fixed order.
    pub messages: Vec<ProtoMessage>,
}

/// A gRPC service of a package.
#[derive(Debug, Serialize)]
pub struct ProtoService {
    /// `ProductService`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its RPCs.
    pub methods: Vec<ProtoMethod>,
}

/// A protobuf message.
#[derive(Debug, Serialize)]
pub struct ProtoMessage {
    /// PascalCase name.
    pub name: String,
    /// Its documentation.
    pub description: String,
    /// Its fields, numbered from 1 in spec order.
    pub fields: Vec<ProtoField>,
}

/// A field of a protobuf message.
#[derive(Debug, Serialize)]
pub struct ProtoField {
    /// snake_case name.
    pub name: String,
    /// Field number.
    pub number: i32,
    /// `repeated`, `optional` or empty.
    pub label: &'static str,
    /// The type as written in `.proto`: `string`, `int64`, `StockLine`,
    /// `google.protobuf.Timestamp`.
    pub type_name: String,
    /// Its documentation.
    pub description: String,
}

/// An RPC of the service.
#[derive(Debug, Serialize)]
pub struct ProtoMethod {
    /// PascalCase name.
    pub name: String,
    /// Request message name.
    pub input: String,
    /// Response message name.
    pub output: String,
    /// Its documentation.
    pub description: String,
    /// `NO_SIDE_EFFECTS`, `IDEMPOTENT` or empty.
    pub idempotency: &'static str,
}

/// The package name of a service's contract.
pub fn package(system: &System, service: &Service) -> String {
    format!("{}.{}.v1", system.name.value, service.name.value).replace('-', "_")
}

/// The gRPC service name: `ProductService`.
pub fn service_name(service: &Service) -> String {
    format!("{}Service", ident::to_pascal(&service.name.value))
}

/// The path of a service's `.proto` below `proto/`.
pub fn file_path(system: &System, service: &Service) -> String {
    format!(
        "{}/{}/v1/{}.proto",
        system.name.value, service.name.value, service.name.value
    )
}

/// The contract of a service that serves RPCs; `None` when it serves none.
pub fn proto_file(system: &System, service: &Service) -> Option<ProtoFile> {
    let routes = crate::rpc::route_rpcs(service);
    if service.rpcs.is_empty() && routes.is_empty() {
        return None;
    }
    let mut messages = Vec::new();
    let mut records: Vec<String> = Vec::new();
    let mut methods = Vec::new();
    for rpc in &service.rpcs {
        let rpc_name = &rpc.name.value;
        for (suffix, fields) in [("Request", &rpc.request), ("Response", &rpc.response)] {
            let description = match suffix {
                "Request" => format!("What `{rpc_name}` takes."),
                _ => format!("What `{rpc_name}` answers."),
            };
            messages.push(message(&format!("{rpc_name}{suffix}"), description, fields));
            collect_records(service, fields, &mut records);
        }
        let idempotency = match (&rpc.kind, rpc.idempotent) {
            (RpcKind::Get { .. }, _) => "NO_SIDE_EFFECTS",
            (_, true) => "IDEMPOTENT",
            (_, false) => "",
        };
        methods.push(ProtoMethod {
            name: rpc_name.clone(),
            input: format!("{rpc_name}Request"),
            output: format!("{rpc_name}Response"),
            description: rpc
                .description
                .clone()
                .unwrap_or_else(|| format!("The `{rpc_name}` operation.")),
            idempotency,
        });
    }
    let mut services = Vec::new();
    if !methods.is_empty() {
        services.push(ProtoService {
            name: service_name(service),
            description: service
                .description
                .clone()
                .unwrap_or_else(|| format!("The `{}` service.", service.name.value)),
            methods,
        });
    }
    if !routes.is_empty() {
        let api = crate::rpc::api_service_name(service);
        let mut methods = Vec::new();
        for rpc in &routes {
            let route = format!("`{} {}`", rpc.route.method.as_str(), rpc.route.path);
            for (suffix, fields) in [("Request", &rpc.request), ("Response", &rpc.response)] {
                let description = match suffix {
                    "Request" => format!("What {route} takes."),
                    _ => format!("What {route} answers."),
                };
                messages.push(message(
                    &format!("{api}{}{suffix}", rpc.name),
                    description,
                    fields,
                ));
                collect_records(service, fields, &mut records);
            }
            methods.push(ProtoMethod {
                name: rpc.name.clone(),
                input: format!("{api}{}Request", rpc.name),
                output: format!("{api}{}Response", rpc.name),
                description: format!("The route {route}, for the gateway."),
                idempotency: if rpc.route.method == Method::Get {
                    "NO_SIDE_EFFECTS"
                } else {
                    ""
                },
            });
        }
        services.push(ProtoService {
            name: api,
            description: format!(
                "The HTTP routes of the `{}` service, as the gateway calls them.",
                service.name.value
            ),
            methods,
        });
    }
    for name in &records {
        let fields = service.record(name).expect("validated records exist");
        let description = service
            .messages
            .iter()
            .find(|m| m.name.value == *name)
            .and_then(|m| m.description.clone())
            .or_else(|| service.entity(name).and_then(|e| e.description.clone()))
            .unwrap_or_else(|| format!("A `{name}`."));
        messages.push(message(&ident::to_pascal(name), description, &fields));
    }
    let uses_timestamp = messages
        .iter()
        .flat_map(|m| &m.fields)
        .any(|f| f.type_name == "google.protobuf.Timestamp");
    Some(ProtoFile {
        package: package(system, service),
        path: file_path(system, service),
        services,
        uses_timestamp,
        messages,
    })
}

/// Adds the records (messages, entities) `fields` refer to, and those they refer to, in order of
/// first use.
fn collect_records(service: &Service, fields: &[Field], records: &mut Vec<String>) {
    for field in fields {
        if let Some(name) = record_name(&field.ty)
            && !records.iter().any(|r| r == name)
        {
            records.push(name.to_owned());
            if let Some(inner) = service.record(name) {
                collect_records(service, &inner, records);
            }
        }
    }
}

fn record_name(ty: &Type) -> Option<&str> {
    match ty {
        Type::Message(name) => Some(name),
        Type::List(inner) | Type::Optional(inner) => record_name(inner),
        _ => None,
    }
}

fn message(name: &str, description: String, fields: &[Field]) -> ProtoMessage {
    ProtoMessage {
        name: name.to_owned(),
        description,
        fields: fields
            .iter()
            .zip(1..)
            .map(|(field, number)| {
                let (label, type_name) = field_shape(&field.ty);
                ProtoField {
                    name: field.name.value.clone(),
                    number,
                    label,
                    type_name,
                    description: format!("`{}`: {}.", field.name.value, field.ty.spec_text()),
                }
            })
            .collect(),
    }
}

/// The label and `.proto` type of a field type. Optional plain values are proto3 `optional`;
/// messages have presence anyway; an optional list is a plain `repeated` (empty when absent).
fn field_shape(ty: &Type) -> (&'static str, String) {
    match ty {
        Type::List(inner) => ("repeated", scalar_name(inner)),
        Type::Optional(inner) => match inner.as_ref() {
            Type::List(element) => ("repeated", scalar_name(element)),
            Type::Message(_) | Type::Timestamp => ("", scalar_name(inner)),
            other => ("optional", scalar_name(other)),
        },
        other => ("", scalar_name(other)),
    }
}

fn scalar_name(ty: &Type) -> String {
    match ty {
        Type::String { .. } | Type::Text | Type::Email | Type::Uuid => "string".into(),
        Type::Int => "int64".into(),
        Type::Bool => "bool".into(),
        Type::Timestamp => "google.protobuf.Timestamp".into(),
        Type::Message(name) => ident::to_pascal(name),
        Type::List(inner) | Type::Optional(inner) => scalar_name(inner),
    }
}

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
