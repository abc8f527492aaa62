//! The AsyncAPI 3.0 document of a system's events: channels (one per event, its routing key as
//! address), the operations each service performs on them, and every payload's schema inside
//! its CloudEvents envelope. Built as data and written as YAML.

use crate::ident::to_pascal;
use crate::lower::Ir;
use crate::model::*;
use serde_json::{Map, Value, json};

/// A channel or message key: `user.registered` -> `userRegistered`.
fn key(event: &str) -> String {
    let pascal = to_pascal(event);
    let mut chars = pascal.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The JSON Schema of a field type; `None` for the optional wrapper is handled by the caller.
fn schema(ty: &Type) -> Value {
    match ty {
        Type::String { min, max } => {
            let mut schema = json!({ "type": "string" });
            if let Some(min) = min {
                schema["minLength"] = json!(min);
            }
            if let Some(max) = max {
                schema["maxLength"] = json!(max);
            }
            schema
        }
        Type::Text => json!({ "type": "string" }),
        Type::Email => json!({ "type": "string", "format": "email" }),
        Type::Int { min, max } => {
            let mut schema = json!({ "type": "integer", "format": "int64" });
            if let Some(min) = min {
                schema["minimum"] = json!(min);
            }
            if let Some(max) = max {
                schema["maximum"] = json!(max);
            }
            schema
        }
        Type::Enum(words) => json!({ "type": "string", "enum": words }),
        Type::Bool => json!({ "type": "boolean" }),
        Type::Uuid => json!({ "type": "string", "format": "uuid" }),
        Type::Timestamp => json!({ "type": "string", "format": "date-time" }),
        Type::List(inner) => json!({ "type": "array", "items": schema(inner) }),
        Type::Optional(inner) => json!({ "oneOf": [schema(inner), { "type": "null" }] }),
        // Event payloads hold plain values only (the validator refuses messages in events).
        Type::Message(_) => json!({ "type": "object" }),
    }
}

fn payload_schema(event: &Event) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in &event.fields {
        properties.insert(field.name.value.clone(), schema(&field.ty));
        if !matches!(field.ty, Type::Optional(_)) {
            required.push(json!(field.name.value));
        }
    }
    json!({ "type": "object", "required": required, "properties": properties })
}

/// The envelope around `data`.
fn envelope_schema(event: &Event, data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["id", "source", "type", "time", "specversion", "datacontenttype", "schemaversion", "data"],
        "properties": {
            "id": { "type": "string", "format": "uuid", "description": "Unique per event; consumers use it to skip redeliveries." },
            "source": { "type": "string", "description": "The producing service." },
            "type": { "const": event.name.value },
            "time": { "type": "string", "format": "date-time" },
            "specversion": { "const": "1.0" },
            "datacontenttype": { "const": "application/json" },
            "schemaversion": { "const": event.version },
            "traceparent": { "type": "string", "description": "W3C trace context of the request that caused the event." },
            "critical": { "type": "boolean" },
            "data": data,
        },
    })
}

/// The document, as YAML after `header`.
pub fn document(ir: &Ir, header: &str) -> String {
    let system = ir.system;
    let name = &system.name.value;
    let exchange = format!("{name}.events");
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for event in &system.events {
        let key = key(&event.name.value);
        let description = event
            .description
            .clone()
            .unwrap_or_else(|| format!("Event `{}`.", event.name.value));
        messages.insert(
            key.clone(),
            json!({
                "name": event.name.value,
                "title": to_pascal(&event.name.value),
                "summary": description,
                "contentType": "application/cloudevents+json",
                "payload": envelope_schema(event, payload_schema(event)),
                "x-critical": event.critical,
            }),
        );
        channels.insert(
            key.clone(),
            json!({
                "address": event.name.value,
                "description": description,
                "messages": { key.clone(): { "$ref": format!("#/components/messages/{key}") } },
                "bindings": { "amqp": {
                    "is": "routingKey",
                    "exchange": { "name": exchange, "type": "topic", "durable": true, "autoDelete": false, "vhost": "/" },
                    "bindingVersion": "0.3.0",
                } },
            }),
        );
        let (producers, consumers) = ir.parties(&event.name.value);
        let reference = json!([{ "$ref": format!("#/channels/{key}/messages/{key}") }]);
        for producer in producers {
            operations.insert(
                format!("{producer}.send.{key}"),
                json!({
                    "action": "send",
                    "channel": { "$ref": format!("#/channels/{key}") },
                    "summary": format!("Service `{producer}` publishes `{}` through its outbox.", event.name.value),
                    "messages": reference,
                }),
            );
        }
        for consumer in consumers {
            operations.insert(
                format!("{consumer}.receive.{key}"),
                json!({
                    "action": "receive",
                    "channel": { "$ref": format!("#/channels/{key}") },
                    "summary": format!("Service `{consumer}` consumes `{}` from queue `{exchange}.{consumer}.{}`.", event.name.value, event.name.value),
                    "messages": reference,
                }),
            );
        }
    }
    let document = json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": format!("{name} events"),
            "version": "0.1.0",
            "description": system.description.clone().unwrap_or_else(|| format!("Events of the {name} system.")),
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "rabbitmq": { "host": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0.9.1", "description": "Distributed mode (SVCGEN_AMQP_URL)." },
        },
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages },
    });
    let yaml = serde_saphyr::to_string(&document).expect("a JSON value serializes to YAML");
    format!("{header}{yaml}")
}
