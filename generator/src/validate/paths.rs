//! Routes on any path: each path parameter names the row's `id` or a field of the entity, a
//! route that reads or changes one row names it (by `{id}`, or by the fields of a unique key,
//! the owner's taken from the caller), and a `PUT` create names the row it keeps.

use crate::diag::{Diagnostics, did_you_mean};
use crate::model::*;

/// The types a path parameter can hold.
fn path_type(ty: &Type) -> bool {
    matches!(
        ty,
        Type::Uuid | Type::String { .. } | Type::Email | Type::Enum(_) | Type::Int { .. }
    )
}

/// Whether the path's fields (and the owner, taken from the caller) cover a unique key.
fn names_one_row(entity: &Entity, route: &Route) -> bool {
    let mut known: Vec<&str> = route.params();
    if let Some(owner) = &entity.owner {
        known.push(owner.as_str());
    }
    entity
        .unique_keys()
        .iter()
        .any(|key| key.iter().all(|field| known.contains(field)))
}

/// Checks the path of every route of `service`.
pub(super) fn check(service: &Service, d: &mut Diagnostics) {
    for route in &service.routes {
        let Some(entity) = service.entity(&route.entity.value) else {
            continue;
        };
        let text = format!("{} {}", route.method.as_str(), route.path);
        // A parameter the entity lacks says enough: the row it names is not looked for.
        let mut unknown = false;
        for param in route.params().into_iter().filter(|p| *p != "id") {
            match entity.column(param) {
                Some(column) if path_type(&column.ty) => {}
                Some(column) => {
                    d.error(
                        route.span,
                        format!(
                            "route `{text}`: `{param}` is {}, which a path cannot hold",
                            column.ty.spec_text()
                        ),
                    )
                    .hint("a path parameter is a uuid, a string, an email, an enum's word or a whole number, never empty");
                }
                None => {
                    unknown = true;
                    let names: Vec<String> = entity.columns().into_iter().map(|c| c.name).collect();
                    d.error(
                        route.span,
                        format!(
                            "route `{text}`: `{{{param}}}` is neither `{{id}}` nor a field of entity `{}`",
                            entity.name.value
                        ),
                    )
                    .with_hint_opt_mut(did_you_mean(param, names.iter().map(String::as_str)));
                }
            }
        }
        let one_row = matches!(
            route.operation,
            Operation::Get | Operation::Update | Operation::Delete
        );
        if one_row && !unknown && !route.has_id() && !names_one_row(entity, route) {
            d.error(
                route.span,
                format!("route `{text}` does not name one `{}`", entity.name.value),
            )
            .hint("end the path in `{id}`, or name the fields of one of the entity's unique keys (the owner's comes from the caller)");
        }
        if route.keeps_existing() && route.has_steps() {
            d.error(
                route.span,
                format!(
                    "route `{text}` creates with `PUT`, which keeps the row its path names when it exists: it takes no `steps`, `input` or `set`"
                ),
            )
            .hint("create with `POST` to run steps, or leave them to another route");
        }
        if route.keeps_existing() && !unknown && !names_one_row(entity, route) {
            d.error(
                route.span,
                format!(
                    "route `{text}` creates with `PUT`, which keeps the row its path names, but the path names no one `{}`",
                    entity.name.value
                ),
            )
            .hint("name the fields of a unique key in the path (`PUT /posts/{post_id}/like` with `unique: [[post_id, user_id]]` and `owner: user_id`), or create with `POST`");
        }
    }
}
