//! Changes of the gRPC contracts, by the rules of `buf breaking`'s FILE category that the
//! generated contracts can break: a file, service, RPC, message or field (by number) gone, a
//! field's name, type or label changed at its number, an RPC's request, response or
//! idempotency changed. The new contracts are numbered as generating them over the old ones
//! would: a field keeps its number, a new one takes the next, a removed one's is reserved.

use super::{Change, Surface};
use crate::contract::{ProtoFile, ProtoMessage};
use crate::model::System;
use std::collections::BTreeMap;

/// Every contract of `system`, by path.
fn contracts(system: &System) -> BTreeMap<String, ProtoFile> {
    crate::lower::lower(system)
        .services
        .into_iter()
        .filter_map(|s| s.contract)
        .map(|c| (c.path.clone(), c))
        .collect()
}

/// The contract changes from `old` to `new`.
pub(super) fn changes(old: &System, new: &System) -> Vec<Change> {
    let before = contracts(old);
    // The new contracts as generating them over the old ones would number them.
    let mut after = contracts(new);
    for (path, file) in &mut after {
        if let Some(was) = before.get(path) {
            file.renumber(&crate::contract::Numbering::of(was));
        }
    }
    let mut changes = Vec::new();
    for (path, was) in &before {
        let Some(now) = after.get(path) else {
            changes.push(Change::breaking(Surface::Proto, path, "file removed"));
            continue;
        };
        if was.package != now.package {
            changes.push(Change::breaking(
                Surface::Proto,
                path,
                format!("package `{}` is now `{}`", was.package, now.package),
            ));
        }
        file(was, now, &mut changes);
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        changes.push(Change::safe(Surface::Proto, path, "file added"));
    }
    changes
}

fn file(was: &ProtoFile, now: &ProtoFile, changes: &mut Vec<Change>) {
    let package = &was.package;
    for service in &was.services {
        let subject = format!("{package}.{}", service.name);
        let Some(new_service) = now.services.iter().find(|s| s.name == service.name) else {
            changes.push(Change::breaking(
                Surface::Proto,
                &subject,
                "service removed",
            ));
            continue;
        };
        for method in &service.methods {
            let Some(new_method) = new_service.methods.iter().find(|m| m.name == method.name)
            else {
                changes.push(Change::breaking(
                    Surface::Proto,
                    &subject,
                    format!("rpc `{}` removed", method.name),
                ));
                continue;
            };
            for (what, a, b) in [
                ("request", &method.input, &new_method.input),
                ("response", &method.output, &new_method.output),
            ] {
                if a != b {
                    changes.push(Change::breaking(
                        Surface::Proto,
                        &subject,
                        format!("rpc `{}` {what} is `{b}`, was `{a}`", method.name),
                    ));
                }
            }
            if method.idempotency != new_method.idempotency {
                changes.push(Change::breaking(
                    Surface::Proto,
                    &subject,
                    format!("rpc `{}` idempotency level changed", method.name),
                ));
            }
        }
        for method in new_service
            .methods
            .iter()
            .filter(|m| !service.methods.iter().any(|o| o.name == m.name))
        {
            changes.push(Change::safe(
                Surface::Proto,
                &subject,
                format!("rpc `{}` added", method.name),
            ));
        }
    }
    for service in now
        .services
        .iter()
        .filter(|s| !was.services.iter().any(|o| o.name == s.name))
    {
        changes.push(Change::safe(
            Surface::Proto,
            format!("{package}.{}", service.name),
            "service added",
        ));
    }
    for message in &was.messages {
        let subject = format!("{package}.{}", message.name);
        match now.messages.iter().find(|m| m.name == message.name) {
            None => changes.push(Change::breaking(
                Surface::Proto,
                &subject,
                "message removed",
            )),
            Some(new_message) => fields(&subject, message, new_message, changes),
        }
    }
    for message in now
        .messages
        .iter()
        .filter(|m| !was.messages.iter().any(|o| o.name == m.name))
    {
        changes.push(Change::safe(
            Surface::Proto,
            format!("{package}.{}", message.name),
            "message added",
        ));
    }
}

fn fields(subject: &str, was: &ProtoMessage, now: &ProtoMessage, changes: &mut Vec<Change>) {
    for field in &was.fields {
        let number = field.number;
        let Some(new_field) = now.fields.iter().find(|f| f.number == number) else {
            changes.push(Change::breaking(
                Surface::Proto,
                subject,
                format!("field {number} (`{}`) removed", field.name),
            ));
            continue;
        };
        if new_field.name != field.name {
            changes.push(Change::breaking(
                Surface::Proto,
                subject,
                format!(
                    "field {number} is `{}`, was `{}`",
                    new_field.name, field.name
                ),
            ));
        }
        if new_field.type_name != field.type_name {
            changes.push(Change::breaking(
                Surface::Proto,
                subject,
                format!(
                    "field {number} has type `{}`, was `{}`",
                    new_field.type_name, field.type_name
                ),
            ));
        }
        if new_field.label != field.label {
            let label = |l: &str| {
                if l.is_empty() {
                    "singular".to_owned()
                } else {
                    l.to_owned()
                }
            };
            changes.push(Change::breaking(
                Surface::Proto,
                subject,
                format!(
                    "field {number} (`{}`) is {}, was {}",
                    new_field.name,
                    label(new_field.label),
                    label(field.label)
                ),
            ));
        }
    }
    for field in now
        .fields
        .iter()
        .filter(|f| !was.fields.iter().any(|o| o.number == f.number))
    {
        changes.push(Change::safe(
            Surface::Proto,
            subject,
            format!("field {} (`{}`) added", field.number, field.name),
        ));
    }
}
