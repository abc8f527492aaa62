//! Changes of the HTTP API: routes that appear or go, who may call them, the fields a request
//! takes (bodies refuse fields they do not know, so a field gone is breaking), the query
//! parameters a list reads, and the fields a response has.

use super::{Change, Surface};
use crate::evolve::diff::widens;
use crate::model::{Method, Operation, RpcKind, System, Type};
use std::collections::BTreeMap;

/// What a client sees of one route.
struct Shape {
    public: bool,
    /// Roles of which the caller needs one (empty: any signed-in caller).
    roles: Vec<String>,
    /// Body (or query-string) fields and their types; an optional type is a field the
    /// client may leave out.
    request: BTreeMap<String, Type>,
    /// A list's filter, sort and search parameters.
    query: Vec<String>,
    /// The fields of the answer (of each item, for a list).
    response: BTreeMap<String, Type>,
}

/// Every route of `system`, by `METHOD /path`.
fn shapes(system: &System) -> BTreeMap<String, Shape> {
    let mut shapes = BTreeMap::new();
    for service in &system.services {
        for route in &service.routes {
            let Some(entity) = service.entity(&route.entity.value) else {
                continue;
            };
            let body = matches!(route.operation, Operation::Create | Operation::Update);
            let patch = route.operation == Operation::Update;
            let request = if body {
                crate::rpc::route_input(service, route)
                    .into_iter()
                    .map(|f| {
                        let ty = match f.ty {
                            Type::Optional(_) => f.ty,
                            ty if patch => Type::Optional(Box::new(ty)),
                            ty => ty,
                        };
                        (f.name.value, ty)
                    })
                    .collect()
            } else {
                BTreeMap::new()
            };
            let mut query: Vec<String> = Vec::new();
            if route.operation == Operation::List {
                query.extend(route.filter.iter().map(|f| format!("filter `{}`", f.value)));
                query.extend(route.sort.iter().map(|f| format!("sort `{}`", f.value)));
                if !entity.search.is_empty() {
                    query.push("search `q`".into());
                }
            }
            let response = if route.operation == Operation::Delete {
                BTreeMap::new()
            } else {
                entity
                    .columns()
                    .into_iter()
                    .map(|c| (c.name, c.ty))
                    .collect()
            };
            shapes.insert(
                key(route.method, &route.path),
                Shape {
                    public: route.public,
                    roles: route.roles.iter().map(|r| r.value.clone()).collect(),
                    request,
                    query,
                    response,
                },
            );
        }
        for route in &service.rpc_routes {
            let Some((owner, rpc)) = crate::rpc::find_rpc(system, &route.target) else {
                continue;
            };
            let given: Vec<&str> = route
                .params()
                .into_iter()
                .chain(route.with.iter().map(|(n, _)| n.as_str()))
                .collect();
            let response = match &rpc.kind {
                RpcKind::Get { record } => owner
                    .entity(&record.value)
                    .map(|e| e.columns().into_iter().map(|c| (c.name, c.ty)).collect())
                    .unwrap_or_default(),
                RpcKind::Sql(_) | RpcKind::Custom(_) => rpc
                    .response
                    .iter()
                    .map(|f| (f.name.value.clone(), f.ty.clone()))
                    .collect(),
            };
            shapes.insert(
                key(route.method, &route.path),
                Shape {
                    public: route.public,
                    roles: route.roles.iter().map(|r| r.value.clone()).collect(),
                    request: rpc
                        .request
                        .iter()
                        .filter(|f| !given.contains(&f.name.as_str()))
                        .map(|f| (f.name.value.clone(), f.ty.clone()))
                        .collect(),
                    query: Vec::new(),
                    response,
                },
            );
        }
    }
    shapes
}

fn key(method: Method, path: &str) -> String {
    format!("{} {path}", method.as_str())
}

/// The API changes from `old` to `new`.
pub(super) fn changes(old: &System, new: &System) -> Vec<Change> {
    let (before, after) = (shapes(old), shapes(new));
    let mut changes = Vec::new();
    for (route, was) in &before {
        match after.get(route) {
            None => changes.push(Change::breaking(Surface::Route, route, "removed")),
            Some(now) => compare(route, was, now, &mut changes),
        }
    }
    for route in after.keys().filter(|r| !before.contains_key(*r)) {
        changes.push(Change::safe(Surface::Route, route, "added"));
    }
    changes
}

fn compare(route: &str, was: &Shape, now: &Shape, changes: &mut Vec<Change>) {
    if was.public && !now.public {
        changes.push(Change::breaking(
            Surface::Route,
            route,
            "needs a signed-in caller",
        ));
    } else if !was.public && now.public {
        changes.push(Change::safe(Surface::Route, route, "open to everyone"));
    }
    match (was.roles.is_empty(), now.roles.is_empty()) {
        (true, false) => changes.push(Change::breaking(
            Surface::Route,
            route,
            format!("needs the role {}", roles_text(&now.roles)),
        )),
        (false, true) => changes.push(Change::safe(
            Surface::Route,
            route,
            "allows every signed-in caller",
        )),
        (false, false) => {
            let lost: Vec<&String> = was
                .roles
                .iter()
                .filter(|r| !now.roles.contains(r))
                .collect();
            if !lost.is_empty() {
                changes.push(Change::breaking(
                    Surface::Route,
                    route,
                    format!("no longer allows {}", roles_text(&lost)),
                ));
            } else if was.roles != now.roles {
                changes.push(Change::safe(Surface::Route, route, "allows more roles"));
            }
        }
        (true, true) => {}
    }

    for (field, ty) in &was.request {
        match now.request.get(field) {
            None => changes.push(Change::breaking(
                Surface::Request,
                route,
                format!("field `{field}` no longer accepted"),
            )),
            Some(new_ty) => request_type(route, field, ty, new_ty, changes),
        }
    }
    for (field, ty) in now
        .request
        .iter()
        .filter(|(f, _)| !was.request.contains_key(*f))
    {
        let optional = matches!(ty, Type::Optional(_));
        changes.push(Change::new(
            Surface::Request,
            route,
            format!(
                "new {} field `{field}`",
                if optional { "optional" } else { "required" }
            ),
            !optional,
        ));
    }
    for parameter in &was.query {
        if !now.query.contains(parameter) {
            changes.push(Change::breaking(
                Surface::Request,
                route,
                format!("{parameter} removed"),
            ));
        }
    }
    for parameter in now.query.iter().filter(|p| !was.query.contains(p)) {
        changes.push(Change::safe(
            Surface::Request,
            route,
            format!("{parameter} added"),
        ));
    }

    for (field, ty) in &was.response {
        match now.response.get(field) {
            None => changes.push(Change::breaking(
                Surface::Response,
                route,
                format!("field `{field}` removed"),
            )),
            Some(new_ty) if new_ty != ty => {
                let breaking = response_breaks(ty, new_ty);
                changes.push(Change::new(
                    Surface::Response,
                    route,
                    format!(
                        "field `{field}` changes from `{}` to `{}`",
                        ty.spec_text(),
                        new_ty.spec_text()
                    ),
                    breaking,
                ));
            }
            Some(_) => {}
        }
    }
    for field in now
        .response
        .keys()
        .filter(|f| !was.response.contains_key(*f))
    {
        changes.push(Change::safe(
            Surface::Response,
            route,
            format!("new field `{field}`"),
        ));
    }
}

/// Whether a client that read a response field of type `was` may fail on `now`: a value may
/// now be missing, an `enum` has a word it does not know, or the field is of another kind.
/// Wider or narrower bounds of the same kind read as before.
fn response_breaks(was: &Type, now: &Type) -> bool {
    let may_be_missing = matches!(now, Type::Optional(_)) && !matches!(was, Type::Optional(_));
    let same_kind = match (was.required(), now.required()) {
        (Type::Enum(a), Type::Enum(b)) => b.iter().all(|w| a.contains(w)),
        (a, b) => widens(a, b).is_ok() || widens(b, a).is_ok(),
    };
    may_be_missing || !same_kind
}

/// A request field whose type changed: breaking when a value a client sent before may now
/// be refused (a narrower type, or a field it may no longer leave out).
fn request_type(route: &str, field: &str, was: &Type, now: &Type, changes: &mut Vec<Change>) {
    if was == now {
        return;
    }
    let now_required = !matches!(now, Type::Optional(_)) && matches!(was, Type::Optional(_));
    let (breaking, why) = match widens(was, now) {
        Err(why) => (true, format!(": {why}")),
        Ok(()) if now_required => (true, ": now required".to_owned()),
        Ok(()) => (false, String::new()),
    };
    changes.push(Change::new(
        Surface::Request,
        route,
        format!(
            "field `{field}` changes from `{}` to `{}`{why}",
            was.spec_text(),
            now.spec_text()
        ),
        breaking,
    ));
}

fn roles_text(roles: &[impl AsRef<str>]) -> String {
    roles
        .iter()
        .map(|r| format!("`{}`", r.as_ref()))
        .collect::<Vec<_>>()
        .join(" or ")
}
