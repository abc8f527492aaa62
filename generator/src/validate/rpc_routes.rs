//! Routes backed by an RPC (`rpc: Name` of the service, or `rpc: service.Name` of one it
//! calls): every request field is filled, by a path parameter of its name, a `with` value, or
//! the body (the query string of a `GET` or `DELETE`, which carries single values only); the
//! messages the request and the answer carry are the route's service's own.

use super::*;

/// Checks `route`, a route of `service` backed by an RPC.
pub(super) fn check(system: &System, service: &Service, route: &RpcRoute, d: &mut Diagnostics) {
    let Some((target, rpc)) = target(system, service, route, d) else {
        return;
    };
    // An RPC checks no ownership: one that reads any user's row is for the roles that may.
    if let RpcKind::Get { record } = &rpc.kind {
        let owned = target
            .entity(&record.value)
            .is_some_and(|entity| entity.owner.is_some());
        let account = target.uses == Some(Capability::Auth) && record.value == "user";
        if (owned || account) && route.roles.is_empty() {
            d.error(
                route.target.span,
                format!(
                    "`{}` reads any user's `{}`, and the route names no `roles` that may",
                    route.target.text(),
                    record.value
                ),
            )
            .hint("give the route `roles` (e.g. `roles: [admin]`), or serve the row with a `get` route, which answers only the users who may read it");
        }
    }
    let request = |name: &str| rpc.request.iter().find(|f| f.name.value == name);
    let params = route.params();
    for param in &params {
        match request(param) {
            None => {
                d.error(
                    route.span,
                    format!(
                        "`{{{param}}}` of the path is not a field of the request of `{}`",
                        route.target.text()
                    ),
                )
                .with_hint_opt_mut(did_you_mean(
                    param,
                    rpc.request.iter().map(|f| f.name.as_str()),
                ));
            }
            Some(field) if !carried_by_path(&field.ty) => {
                d.error(
                    route.span,
                    format!(
                        "`{param}` is {}, which a path does not carry: a path carries a uuid, a string, an email, an enum or an int",
                        field.ty.spec_text()
                    ),
                );
            }
            Some(_) => {}
        }
    }
    for (name, expr) in &route.with {
        let Some(field) = request(&name.value) else {
            d.error(
                name.span,
                format!(
                    "the request of `{}` has no field `{}`",
                    route.target.text(),
                    name.value
                ),
            )
            .with_hint_opt_mut(did_you_mean(
                &name.value,
                rpc.request.iter().map(|f| f.name.as_str()),
            ));
            continue;
        };
        if params.contains(&name.value.as_str()) {
            d.error(
                name.span,
                format!("`{}` is given by the path already", name.value),
            );
        }
        check_value(route, field, expr, name.span, d);
    }
    let given =
        |name: &str| params.contains(&name) || route.with.iter().any(|(n, _)| n.value == name);
    for field in rpc.request.iter().filter(|f| !given(&f.name.value)) {
        if route.reads_query() && !carried_by_query(&field.ty) {
            d.error(
                route.span,
                format!(
                    "`{}` ({}) of the request of `{}` cannot come from the query string of a `{}` route",
                    field.name.value,
                    field.ty.spec_text(),
                    route.target.text(),
                    route.method.as_str()
                ),
            )
            .hint("take it in a JSON body (`POST`, `PUT`, `PATCH`), or give it in `with:`");
        }
        check_shared_type(service, target, &field.ty, &field.ty, route, d);
    }
    for field in &rpc.response {
        check_shared_type(target, service, &field.ty, &field.ty, route, d);
    }
}

/// The service and RPC the route names, or an error at `rpc:`.
fn target<'s>(
    system: &'s System,
    service: &'s Service,
    route: &RpcRoute,
    d: &mut Diagnostics,
) -> Option<(&'s Service, &'s Rpc)> {
    if route.target.service.value != service.name.value {
        let call = Call {
            target: route.target.clone(),
            with: Vec::new(),
        };
        return crate::rpc::declared_call(system, service, &call, d);
    }
    let found = service.rpc(&route.target.rpc.value);
    if found.is_none() {
        d.error(
            route.target.span,
            format!(
                "service `{}` has no RPC `{}`",
                service.name.value, route.target.rpc.value
            ),
        )
        .hint(
            did_you_mean(
                &route.target.rpc.value,
                service.rpcs.iter().map(|r| r.name.as_str()),
            )
            .unwrap_or_else(|| {
                "declare it under the service's `rpc:`, or write `service.Rpc` for another service's".into()
            }),
        );
    }
    found.map(|rpc| (service, rpc))
}

/// A `with` value: `$caller`, `$caller.roles`, `$now` or a literal that fits `field`.
fn check_value(route: &RpcRoute, field: &Field, expr: &Expr, at: Span, d: &mut Diagnostics) {
    let fits = match expr {
        Expr::Caller | Expr::CallerRoles if route.public => {
            d.error(at, "`$caller` is not known on a public route");
            return;
        }
        Expr::Id | Expr::Path { .. } => {
            d.error(
                at,
                "`with` takes `$caller`, `$caller.roles`, `$now` or a literal",
            )
            .hint("a path parameter fills the request field of its name");
            return;
        }
        computed => actions::computed_fits(computed, &field.ty).unwrap_or(false),
    };
    if !fits {
        d.error(
            at,
            format!(
                "`{}` is {}, which the value does not fit",
                field.name.value,
                field.ty.spec_text()
            ),
        );
    }
}

/// Whether a path parameter can hold a value of `ty`.
fn carried_by_path(ty: &Type) -> bool {
    matches!(
        ty,
        Type::Uuid | Type::String { .. } | Type::Email | Type::Enum(_) | Type::Int { .. }
    )
}

/// Whether a query parameter can hold a value of `ty` (single values, maybe absent).
fn carried_by_query(ty: &Type) -> bool {
    matches!(
        ty.required(),
        Type::Uuid
            | Type::String { .. }
            | Type::Text
            | Type::Email
            | Type::Enum(_)
            | Type::Int { .. }
            | Type::Bool
            | Type::Timestamp
    )
}

/// A message carried from `from`'s contract to `to`'s plain types (or back) must be declared by
/// both, with fields that fit.
fn check_shared_type(
    from: &Service,
    to: &Service,
    from_ty: &Type,
    to_ty: &Type,
    route: &RpcRoute,
    d: &mut Diagnostics,
) {
    let Some(record) = crate::lower::record_of(from_ty) else {
        return;
    };
    let fits = crate::rpc::Typed {
        ty: from_ty.clone(),
        owner: from,
    }
    .fits(&crate::rpc::Typed {
        ty: to_ty.clone(),
        owner: to,
    });
    if !fits {
        let here = if from.name.value == route.target.service.value {
            to
        } else {
            from
        };
        d.error(
            route.span,
            format!(
                "`{}` carries message `{record}`, which service `{}` does not declare with fields that fit",
                route.target.text(),
                here.name.value
            ),
        )
        .hint(format!(
            "declare `{record}` under the `messages:` of service `{}` with the same fields",
            here.name.value
        ));
    }
}
