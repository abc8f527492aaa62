//! Action routes: an `update` whose change is set by the spec (`set:`), applied only to a row
//! in the state `when:` names (`POST /orders/{id}/cancel` of a pending order). Each value fits
//! its field, and is a literal, `$now` (plus a duration), `$caller` or the row's `$id`.

use crate::diag::{Diagnostics, did_you_mean};
use crate::model::*;

/// Whether literal `expr` is a value `ty` holds; `None` for a value computed when the route
/// runs.
pub(super) fn literal_fits(expr: &Expr, ty: &Type) -> Option<bool> {
    let ty = ty.required();
    Some(match expr {
        Expr::Int(n) => match ty {
            Type::Int { min, max } => min.is_none_or(|m| *n >= m) && max.is_none_or(|m| *n <= m),
            _ => false,
        },
        Expr::Bool(_) => matches!(ty, Type::Bool),
        Expr::Text(text) => match ty {
            Type::Enum(words) => words.contains(text),
            Type::String { min, max } => {
                let len = text.chars().count() as u32;
                min.is_none_or(|m| len >= m) && max.is_none_or(|m| len <= m)
            }
            Type::Text | Type::Email => true,
            _ => false,
        },
        _ => return None,
    })
}

/// Whether a value computed when the route runs (`$now`, `$caller`, `$caller.roles`, `$id`) or a
/// literal fits `ty`; `None` for a path (`$input...`, a step's answer, a path parameter), whose
/// type depends on where it points.
pub(super) fn computed_fits(expr: &Expr, ty: &Type) -> Option<bool> {
    match expr {
        Expr::Now { .. } => Some(matches!(ty.required(), Type::Timestamp)),
        Expr::Caller | Expr::Id => Some(matches!(ty.required(), Type::Uuid)),
        Expr::CallerRoles => Some(super::assignable(&crate::rpc::caller_roles_type(), ty).is_ok()),
        Expr::Path { .. } => None,
        literal => Some(literal_fits(literal, ty).unwrap_or(false)),
    }
}

/// Checks the `set` and `when` of every `update` route of `service`.
pub(super) fn check(system: &System, service: &Service, d: &mut Diagnostics) {
    for route in &service.routes {
        if route.operation != Operation::Update {
            continue;
        }
        let Some(entity) = service.entity(&route.entity.value) else {
            continue;
        };
        if !route.when.is_empty() && route.set.is_empty() {
            d.error(
                route.span,
                "`when` names the state a set change applies to: the route has no `set`",
            );
        }
        let field_of = |name: &Name, d: &mut Diagnostics| {
            let found = entity.fields.iter().find(|f| f.name.value == name.value);
            if found.is_none() {
                d.error(
                    name.span,
                    format!(
                        "entity `{}` has no field `{}` a route can set",
                        entity.name.value, name.value
                    ),
                )
                .with_hint_opt_mut(did_you_mean(
                    &name.value,
                    entity.fields.iter().map(|f| f.name.as_str()),
                ));
            }
            found
        };
        for (name, expr) in &route.set {
            let Some(field) = field_of(name, d) else {
                continue;
            };
            let fits = match expr {
                // A step's answer, or a parameter of the path.
                Expr::Path { root, .. }
                    if route
                        .steps
                        .iter()
                        .any(|s| s.name.as_ref().is_some_and(|n| n.value == root.value))
                        || route.params().contains(&root.value.as_str()) =>
                {
                    match crate::rpc::expr_type(system, service, route, &route.steps, expr) {
                        Ok(typed) => typed.fits(&crate::rpc::Typed {
                            ty: field.ty.clone(),
                            owner: service,
                        }),
                        Err(problem) => {
                            d.error(name.span, problem);
                            continue;
                        }
                    }
                }
                Expr::Path { .. } => {
                    d.error(
                        name.span,
                        format!(
                            "`{}`: a set change takes a literal, `$now`, `$caller`, `$caller.roles`, `$id`, a path parameter or a field of a step's answer",
                            name.value
                        ),
                    )
                    .hint("a route that takes its values from the body is a plain `update`");
                    continue;
                }
                computed => computed_fits(computed, &field.ty).unwrap_or(false),
            };
            if !fits {
                d.error(
                    name.span,
                    format!(
                        "`{}` is {}, which the value set does not fit",
                        name.value,
                        field.ty.spec_text()
                    ),
                );
            }
            if matches!(expr, Expr::Caller | Expr::CallerRoles) && route.public {
                d.error(name.span, "`$caller` is not known on a public route");
            }
            if matches!(expr, Expr::Id) && !route.has_id() {
                d.error(name.span, "`$id` needs `{id}` in the route's path");
            }
        }
        for (name, expr) in &route.when {
            let Some(field) = field_of(name, d) else {
                continue;
            };
            let comparable = matches!(
                field.ty,
                Type::Bool | Type::Int { .. } | Type::Enum(_) | Type::String { .. } | Type::Email
            );
            if !comparable || literal_fits(expr, &field.ty) != Some(true) {
                d.error(
                    name.span,
                    format!(
                        "`when` compares `{}` ({}) with a literal of its type",
                        name.value,
                        field.ty.spec_text()
                    ),
                )
                .hint("e.g. `when: { status: pending }` for an enum, `when: { published: false }`");
            }
        }
    }
}
