//! The gRPC contract of each service as data: one versioned protobuf package per service that
//! serves RPCs or is reached over gRPC (`shop.product.v1`), with its messages, services and
//! methods. Built once, when the model is lowered; `render::proto` writes it as `.proto` text
//! and as the descriptor the Rust code is generated from.

use crate::ident;
use crate::model::*;
use serde::Serialize;
use std::collections::BTreeMap;

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
    /// Its fields, numbered from 1 in spec order in a first contract; later ones keep the
    /// numbers earlier ones gave ([`ProtoFile::renumber`]).
    pub fields: Vec<ProtoField>,
    /// Numbers of fields it had and has no more: never given again.
    pub reserved: Vec<i32>,
    /// Names of fields it had and has no more.
    pub reserved_names: Vec<String>,
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
        reserved: Vec::new(),
        reserved_names: Vec::new(),
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

/// The field numbers of a contract's messages, as a contract already written gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Numbering {
    /// By message name.
    pub messages: BTreeMap<String, MessageNumbers>,
}

/// The numbers of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageNumbers {
    /// By field name.
    pub fields: BTreeMap<String, i32>,
    /// Numbers it reserved.
    pub reserved: Vec<i32>,
    /// Names it reserved.
    pub reserved_names: Vec<String>,
}

impl Numbering {
    /// The numbers of `file`.
    pub fn of(file: &ProtoFile) -> Numbering {
        Numbering {
            messages: file
                .messages
                .iter()
                .map(|m| {
                    let numbers = MessageNumbers {
                        fields: m
                            .fields
                            .iter()
                            .map(|f| (f.name.clone(), f.number))
                            .collect(),
                        reserved: m.reserved.clone(),
                        reserved_names: m.reserved_names.clone(),
                    };
                    (m.name.clone(), numbers)
                })
                .collect(),
        }
    }

    /// The numbers of a `.proto` file svcgen wrote: its messages' fields
    /// (`<label>? <type> <name> = <number>;`) and `reserved` lines.
    pub fn parse(text: &str) -> Numbering {
        let mut numbering = Numbering::default();
        let mut current: Option<String> = None;
        for line in text.lines().map(str::trim) {
            if line.starts_with("//") || line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("message ") {
                let name = rest.trim_end_matches('{').trim().to_owned();
                numbering.messages.entry(name.clone()).or_default();
                current = Some(name);
                continue;
            }
            if line == "}" {
                current = None;
                continue;
            }
            let Some(message) = current.as_ref().and_then(|m| numbering.messages.get_mut(m)) else {
                continue;
            };
            let Some(statement) = line.strip_suffix(';') else {
                continue;
            };
            if let Some(reserved) = statement.strip_prefix("reserved ") {
                for item in reserved.split(',').map(str::trim) {
                    match item.parse::<i32>() {
                        Ok(number) => message.reserved.push(number),
                        Err(_) => message
                            .reserved_names
                            .push(item.trim_matches('"').to_owned()),
                    }
                }
            } else if let Some((declaration, number)) = statement.split_once(" = ")
                && let (Some(name), Ok(number)) = (
                    declaration.split_whitespace().last(),
                    number.trim().parse::<i32>(),
                )
            {
                message.fields.insert(name.to_owned(), number);
            }
        }
        numbering
    }
}

impl ProtoFile {
    /// Keeps the numbers `previous` gave: a field of a message it knows keeps its number, a
    /// new one takes the next number never used, and a field gone leaves its number and name
    /// reserved, so that a contract changes on the wire only where the spec changed it.
    pub fn renumber(&mut self, previous: &Numbering) {
        for message in &mut self.messages {
            let Some(before) = previous.messages.get(&message.name) else {
                continue;
            };
            let mut next = before
                .fields
                .values()
                .chain(&before.reserved)
                .copied()
                .max()
                .unwrap_or(0)
                + 1;
            for field in &mut message.fields {
                field.number = match before.fields.get(&field.name) {
                    Some(number) => *number,
                    None => {
                        next += 1;
                        next - 1
                    }
                };
            }
            message.reserved = before.reserved.clone();
            message.reserved_names = before.reserved_names.clone();
            for (name, number) in &before.fields {
                if !message.fields.iter().any(|f| &f.name == name) {
                    message.reserved.push(*number);
                    message.reserved_names.push(name.clone());
                }
            }
            message.reserved.sort_unstable();
            message.reserved.dedup();
            // A name that comes back is a field again (under a new number).
            let names: Vec<String> = message.fields.iter().map(|f| f.name.clone()).collect();
            message.reserved_names.retain(|name| !names.contains(name));
            message.reserved_names.sort();
            message.reserved_names.dedup();
        }
    }
}

#[cfg(test)]
mod numbering_tests {
    use super::*;

    fn field(name: &str, number: i32) -> ProtoField {
        ProtoField {
            name: name.into(),
            number,
            label: "",
            type_name: "string".into(),
            description: String::new(),
        }
    }

    fn file(fields: &[&str]) -> ProtoFile {
        ProtoFile {
            package: "shop.catalog.v1".into(),
            path: "shop/catalog/v1/catalog.proto".into(),
            services: Vec::new(),
            uses_timestamp: false,
            messages: vec![ProtoMessage {
                name: "Item".into(),
                description: String::new(),
                fields: (1..).zip(fields).map(|(n, f)| field(f, n)).collect(),
                reserved: Vec::new(),
                reserved_names: Vec::new(),
            }],
        }
    }

    fn numbers(file: &ProtoFile) -> Vec<(String, i32)> {
        file.messages[0]
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.number))
            .collect()
    }

    #[test]
    fn a_contract_keeps_its_numbers_and_reserves_the_ones_it_loses() {
        let first = file(&["name", "price", "stock"]);
        // A field added first, one removed: the others keep their numbers.
        let mut second = file(&["sku", "name", "stock"]);
        second.renumber(&Numbering::of(&first));
        assert_eq!(
            numbers(&second),
            [("sku".into(), 4), ("name".into(), 1), ("stock".into(), 3)]
        );
        assert_eq!(second.messages[0].reserved, [2]);
        assert_eq!(second.messages[0].reserved_names, ["price"]);
        // The text svcgen writes gives the same numbers back.
        let text = crate::render::proto::render_text(&second);
        assert!(text.contains("reserved 2;"), "{text}");
        assert_eq!(Numbering::parse(&text), Numbering::of(&second));
        // A name that comes back takes a new number; the old one stays reserved.
        let mut third = file(&["sku", "name", "stock", "price"]);
        third.renumber(&Numbering::parse(&text));
        assert_eq!(numbers(&third)[3], ("price".into(), 5));
        assert_eq!(third.messages[0].reserved, [2]);
        assert!(third.messages[0].reserved_names.is_empty());
    }

    #[test]
    fn a_message_new_to_the_contract_is_numbered_from_one() {
        let mut file = file(&["a", "b"]);
        file.renumber(&Numbering::default());
        assert_eq!(numbers(&file), [("a".into(), 1), ("b".into(), 2)]);
    }
}
