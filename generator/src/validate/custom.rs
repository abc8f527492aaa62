//! Routes, consumers and jobs whose work is the user's own code (`handler: custom`): their
//! function names are Rust identifiers, unique in the service (each names a file of
//! `src/custom/`); a route's request fields are not path parameters; the events the code
//! emits are declared; a route's roles exist; the service has a store for the transaction.

use super::{Declared, check_roles, find_event};
use crate::diag::Diagnostics;
use crate::model::*;

/// Checks every custom route, consumer and job of `service`.
pub(super) fn check(system: &System, service: &Service, declared: &Declared, d: &mut Diagnostics) {
    if let (Some(route), None) = (service.custom_routes.first(), &service.store) {
        d.error(
            route.span,
            format!(
                "service `{}` has a custom route but no store: the code runs in a transaction of its database",
                service.name.value
            ),
        )
        .hint("give the service `store: <store>`");
    }
    let functions = service
        .custom_routes
        .iter()
        .map(|r| (&r.name, &r.emit))
        .chain(
            service
                .custom_code()
                .map(|(_, code)| (&code.name, &code.emit)),
        );
    let mut names: Vec<&str> = Vec::new();
    for (name, emit) in functions {
        check_function(service, name, &names, d);
        names.push(&name.value);
        for event in emit {
            find_event(system, declared, event, d);
        }
    }
    for route in &service.custom_routes {
        for field in &route.input {
            if route.params().contains(&field.name.as_str()) {
                d.error(
                    field.name.span,
                    format!(
                        "`{}` is a parameter of the path of `{} {}`; the request cannot have it too",
                        field.name.value,
                        route.method.as_str(),
                        route.path
                    ),
                );
            }
        }
        check_roles(system, &route.roles, d);
    }
}

/// A custom function's name: a Rust identifier no other custom function of the service has.
fn check_function(service: &Service, name: &Name, taken: &[&str], d: &mut Diagnostics) {
    let valid = name
        .value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase())
        && name
            .value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !crate::ident::is_rust_keyword(&name.value);
    if !valid {
        d.error(
            name.span,
            format!("`{}` cannot name a custom handler", name.value),
        )
        .hint("a function name in snake_case that is not a Rust keyword, e.g. `share_note`");
    }
    if taken.contains(&name.as_str()) {
        d.error(
            name.span,
            format!(
                "two custom handlers of service `{}` are named `{}`",
                service.name.value, name.value
            ),
        )
        .hint("give one of them `name: <function name>`: it names the function and its file");
    }
}
