//! Routes whose work is the user's own code (`handler: custom`): their function names are
//! Rust identifiers, unique in the service; their request fields are not path parameters;
//! the events they emit are declared; their roles exist.

use super::{Declared, check_roles, find_event};
use crate::diag::Diagnostics;
use crate::model::*;

/// Checks every custom route of `service`.
pub(super) fn check(system: &System, service: &Service, declared: &Declared, d: &mut Diagnostics) {
    let mut names: Vec<&str> = Vec::new();
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
    for route in &service.custom_routes {
        let name = &route.name;
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
        if names.contains(&name.as_str()) {
            d.error(
                name.span,
                format!(
                    "two custom routes of service `{}` are named `{}`",
                    service.name.value, name.value
                ),
            )
            .hint("give one of them `name: <function name>`: it names the function and its file");
        }
        names.push(&name.value);
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
        for event in &route.emit {
            find_event(system, declared, event, d);
        }
        check_roles(system, &route.roles, d);
    }
}
