//! The gRPC contract of each service as data: one versioned protobuf package per service that
//! serves RPCs or is reached over gRPC (`shop.product.v1`), with its messages, services and
//! methods. Built once, when the model is lowered; `render::proto` writes it as `.proto` text
//! and as the descriptor the Rust code is generated from.

use crate::ident;
use crate::model::*;
use serde::Serialize;

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

/// The contract of a service that serves RPCs (its own, and `routes`, its routes as RPCs);
/// `None` when it serves none.
pub fn proto_file(
    system: &System,
    service: &Service,
    routes: &[crate::lower::RouteRpc],
) -> Option<ProtoFile> {
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
        for rpc in routes {
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
        Type::String { .. } | Type::Text | Type::Email | Type::Enum(_) | Type::Uuid => {
            "string".into()
        }
        Type::Int { .. } => "int64".into(),
        Type::Bool => "bool".into(),
        Type::Timestamp => "google.protobuf.Timestamp".into(),
        Type::Message(name) => ident::to_pascal(name),
        Type::List(inner) | Type::Optional(inner) => scalar_name(inner),
    }
}
