//! Stage 3, validate: references between parts of the model and the architecture rules. Every
//! problem is recorded; nothing stops at the first.

use crate::diag::{Diagnostics, Span, did_you_mean};
use crate::model::*;
use std::collections::{BTreeMap, BTreeSet};

mod actions;
mod consumers;
mod custom;
mod entities;
mod jobs;
mod paths;
mod rpc_routes;

pub(crate) use consumers::{
    Scope as ConsumerScope, assignable, sql_scope as consumer_sql_scope,
    value_type as consumer_value_type,
};

/// Names a service cannot take because the generated workspace uses them for its own crates.
const RESERVED_SERVICE_NAMES: &[&str] = &["contracts", "system", "gateway", "runtime"];

/// Checks the whole model.
pub fn validate(system: &System, d: &mut Diagnostics) {
    let declared = Declared::new(system);
    check_services(system, d);
    check_single_notify_service(system, d);
    check_stores(system, &declared, d);
    check_auth(system, &declared, d);
    check_routes(system, &declared, d);
    check_events(system, &declared, d);
    crate::rpc::check(system, d);
}

/// The stores and events of the system by name: every service and route refers to them, and a
/// large system has thousands of each, too many to search the lists for every reference.
pub(super) struct Declared<'a> {
    stores: BTreeSet<&'a str>,
    /// The first event of each name, as a search of the list would find.
    events: BTreeMap<&'a str, &'a Event>,
}

impl<'a> Declared<'a> {
    fn new(system: &'a System) -> Self {
        let mut events = BTreeMap::new();
        for event in &system.events {
            events.entry(event.name.as_str()).or_insert(event);
        }
        Self {
            stores: system.stores.iter().map(|s| s.name.as_str()).collect(),
            events,
        }
    }
}

fn check_services(system: &System, d: &mut Diagnostics) {
    for service in &system.services {
        if RESERVED_SERVICE_NAMES.contains(&service.name.as_str()) {
            d.error(
                service.name.span,
                format!(
                    "`{}` cannot be a service name: the generated workspace uses it",
                    service.name.value
                ),
            )
            .hint("pick another name, e.g. `{}_service`".replace("{}", service.name.as_str()));
        }
        entities::check(system, service, d);
        paths::check(service, d);
        actions::check(system, service, d);
        jobs::check(system, service, d);
    }
}

fn check_single_notify_service(system: &System, d: &mut Diagnostics) {
    let notify: Vec<&Service> = system
        .services
        .iter()
        .filter(|s| s.uses == Some(Capability::Notify))
        .collect();
    for extra in notify.iter().skip(1) {
        d.error(
            extra.name.span,
            format!(
                "service `{}` is a second `notify` service: a system has one",
                extra.name.value
            ),
        )
        .hint(format!(
            "consume the events in service `{}`",
            notify[0].name.value
        ));
    }
}

fn check_stores(system: &System, declared: &Declared, d: &mut Diagnostics) {
    let mut owner_of: BTreeMap<&str, &Service> = BTreeMap::new();
    for service in &system.services {
        let needs_store = service.uses.is_some() || !service.entities.is_empty();
        let Some(store) = &service.store else {
            if needs_store {
                d.error(
                    service.name.span,
                    format!(
                        "service `{}` keeps data but has no `store`",
                        service.name.value
                    ),
                )
                .hint("declare one under `stores:` and name it here with `store: <name>`");
            }
            continue;
        };
        if !declared.stores.contains(store.as_str()) {
            d.error(store.span, format!("unknown store `{}`", store.value))
                .hint(
                    did_you_mean(&store.value, system.stores.iter().map(|s| s.name.as_str()))
                        .unwrap_or_else(|| {
                            format!(
                                "declare it: `stores: {{ {}: {{ engine: postgres }} }}`",
                                store.value
                            )
                        }),
                );
            continue;
        }
        if let Some(first) = owner_of.get(store.value.as_str()) {
            d.error(store.span, format!("store `{}` is already used by service `{}`: each service owns its own database", store.value, first.name.value))
                .hint("declare a second store; share data through events or calls, not tables");
        } else {
            owner_of.insert(&store.value, service);
        }
    }
    for store in &system.stores {
        if !owner_of.contains_key(store.name.as_str()) {
            d.warning(
                store.name.span,
                format!("store `{}` is not used by any service", store.name.value),
            );
        }
    }
}

fn check_auth(system: &System, declared: &Declared, d: &mut Diagnostics) {
    let issuers: Vec<&Service> = system
        .services
        .iter()
        .filter(|s| s.uses == Some(Capability::Auth))
        .collect();
    if let (Some(issuer), None) = (issuers.first(), &system.auth) {
        d.error(
            issuer.name.span,
            format!(
                "service `{}` uses `auth`, but the spec has no top-level `auth`",
                issuer.name.value
            ),
        )
        .hint(format!(
            "add `auth: {{ service: {} }}` (token lifetimes can be set there too)",
            issuer.name.value
        ));
    }
    if let Some(auth) = &system.auth {
        match system
            .services
            .iter()
            .find(|s| s.name.value == auth.service.value)
        {
            None => {
                d.error(
                    auth.service.span,
                    format!("unknown service `{}`", auth.service.value),
                )
                .with_hint_opt_mut(did_you_mean(
                    &auth.service.value,
                    system.services.iter().map(|s| s.name.as_str()),
                ));
            }
            Some(service) if service.uses != Some(Capability::Auth) => {
                d.error(auth.service.span, format!("service `{}` does not use the `auth` capability, so it cannot issue tokens", auth.service.value))
                    .hint(format!("add `uses: auth` to service `{}`", auth.service.value));
            }
            Some(_) => {}
        }
    }
    if issuers.len() > 1 {
        for extra in &issuers[1..] {
            d.error(
                extra.name.span,
                format!(
                    "service `{}` is a second `auth` service: a system has one token issuer",
                    extra.name.value
                ),
            );
        }
    }
    let needs_tokens = system.services.iter().any(|s| {
        s.route_keys().iter().any(|r| !r.public)
            || crate::capability::routes(s).iter().any(|r| !r.public)
    });
    if needs_tokens && issuers.is_empty() {
        d.error(
            system.name.span,
            "routes need a signed-in user, but no service uses the `auth` capability",
        )
        .hint("add a service with `uses: auth`, or mark the routes `public: true`");
    }
    for service in &issuers {
        for (moment, event_name) in service.auth_emit.events() {
            let provided = auth_event_fields(moment);
            let Some(event) = find_event(system, declared, event_name, d) else {
                continue;
            };
            for field in &event.fields {
                match provided.iter().find(|(name, _)| *name == field.name.value) {
                    Some((_, ty)) if *ty == field.ty => {}
                    Some((_, ty)) => {
                        d.error(field.name.span, format!("the `auth` capability sends `{}` as {}, but event `{}` declares {}", field.name.value, ty.spec_text(), event.name.value, field.ty.spec_text()));
                    }
                    None => {
                        d.error(field.name.span, format!("event `{}` has field `{}`, which the `auth` capability cannot provide", event.name.value, field.name.value))
                            .hint("it provides `user_id: uuid`, `email: email` and `username: string`");
                    }
                }
            }
        }
    }
}

fn check_routes(system: &System, declared: &Declared, d: &mut Diagnostics) {
    // Same method and path (any parameter name) served twice: the gateway could not tell them apart.
    // What serves each method and path so far, and where the spec says so.
    let mut seen: BTreeMap<(Method, String), (String, Span, String)> = BTreeMap::new();
    let shape = |path: &str| {
        path.split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    };
    for service in &system.services {
        if let Some(capability) = service.uses {
            for route in crate::capability::routes(service) {
                seen.insert(
                    (route.method, shape(route.path)),
                    (
                        format!(
                            "the `{}` capability of service `{}`",
                            capability_name(capability),
                            service.name.value
                        ),
                        service.name.span,
                        format!(
                            "`uses: {}` in this service serves `{} {}`",
                            capability_name(capability),
                            route.method.as_str(),
                            route.path
                        ),
                    ),
                );
            }
        }
    }
    for service in &system.services {
        for route in service.route_keys() {
            if route.path == "/admin" || route.path.starts_with("/admin/") {
                d.error(route.span, format!("`{}` is under `/admin`, which svcgen keeps for its own administration routes", route.path))
                    .hint("pick another first segment, e.g. `/management/...`");
            }
            let key = (route.method, shape(route.path));
            if let Some((first, first_span, first_note)) = seen.get(&key) {
                d.error(
                    route.span,
                    format!(
                        "route `{} {}` is already served by {first}",
                        route.method.as_str(),
                        route.path
                    ),
                )
                .related(*first_span, first_note.clone())
                .hint("each method and path is served once through the gateway");
            } else {
                let here = format!("service `{}`", service.name.value);
                let note = format!("first served here, by service `{}`", service.name.value);
                seen.insert(key, (here, route.span, note));
            }
            check_route_roles(system, &route, d);
        }
        for route in &service.rpc_routes {
            rpc_routes::check(system, service, route, d);
        }
        custom::check(system, service, declared, d);
        for route in &service.routes {
            let Some(entity) = service.entity(&route.entity.value) else {
                d.error(
                    route.entity.span,
                    format!(
                        "service `{}` has no entity `{}`",
                        service.name.value, route.entity.value
                    ),
                )
                .with_hint_opt_mut(did_you_mean(
                    &route.entity.value,
                    service.entities.iter().map(|e| e.name.as_str()),
                ));
                continue;
            };
            check_route_access(entity, route, d);
            check_list(entity, route, d);
            if let Some(emit) = &route.emit {
                if matches!(route.operation, Operation::List | Operation::Get) {
                    d.error(
                        emit.span,
                        format!(
                            "a `{}` route changes nothing, so it cannot emit",
                            route.operation.keyword()
                        ),
                    );
                    continue;
                }
                let Some(event) = find_event(system, declared, emit, d) else {
                    continue;
                };
                check_emit_contract(entity, event, emit, d);
            }
        }
    }
}

/// A list's `filter` and `sort` name columns of its entity that hold one comparable value; a
/// sort's column is never empty (so that pages follow one another without gaps).
fn check_list(entity: &Entity, route: &Route, d: &mut Diagnostics) {
    let columns = entity.columns();
    let column_of = |name: &Name, what: &str, d: &mut Diagnostics| {
        let found = columns.iter().find(|c| c.name == name.value);
        if found.is_none() {
            d.error(
                name.span,
                format!(
                    "entity `{}` has no field `{}` to {what}",
                    entity.name.value, name.value
                ),
            )
            .with_hint_opt_mut(did_you_mean(
                &name.value,
                columns.iter().map(|c| c.name.as_str()),
            ));
        }
        found
    };
    let comparable =
        |ty: &Type| !matches!(ty.required(), Type::List(_) | Type::Message(_) | Type::Text);
    // A list of texts is filtered on what it holds (`?tags=work`).
    let texts = |ty: &Type| match ty.required() {
        Type::List(inner) => matches!(
            inner.as_ref(),
            Type::String { .. } | Type::Email | Type::Uuid | Type::Enum(_)
        ),
        _ => false,
    };
    for name in &route.filter {
        if let Some(column) = column_of(name, "filter on", d)
            && !comparable(&column.ty)
            && !texts(&column.ty)
        {
            d.error(
                name.span,
                format!(
                    "`{}` is {}, which a list cannot filter on",
                    name.value,
                    column.ty.spec_text()
                ),
            )
            .hint("filter on fields of one value (string, enum, int, bool, uuid, email, timestamp) or lists of texts; search long text with `search:` on the entity");
        }
    }
    for name in &route.sort {
        let Some(column) = column_of(name, "sort on", d) else {
            continue;
        };
        if name.value == "created_at" {
            d.warning(
                name.span,
                "lists always sort on `created_at`; no need to name it",
            );
        } else if !comparable(&column.ty) || matches!(column.ty, Type::Optional(_)) {
            d.error(
                name.span,
                format!(
                    "`{}` is {}, which a list cannot sort on",
                    name.value,
                    column.ty.spec_text()
                ),
            )
            .hint("sort on required fields of one value (an optional field has no place for its empty rows in a page order)");
        }
    }
}

/// A route of an owned entity: public only to read rows others may read, `mine` only on a list.
fn check_route_access(entity: &Entity, route: &Route, d: &mut Diagnostics) {
    let reads = matches!(route.operation, Operation::Get | Operation::List);
    if route.public && entity.owner.is_some() && !(reads && entity.read != Read::Owner) {
        let hint = if reads {
            "owned rows are only served to their owner; let others read them with `read: all` (or `read: { if: <bool field> }`) on the entity, or remove `public: true`"
        } else {
            "only a row's owner changes it; remove `public: true`"
        };
        d.error(
            route.span,
            format!(
                "route `{} {}` is public, but `{}` rows belong to users",
                route.method.as_str(),
                route.path,
                entity.name.value
            ),
        )
        .hint(hint);
    }
    if route.mine && (route.operation != Operation::List || entity.owner.is_none()) {
        d.error(
            route.span,
            format!(
                "`mine` lists the caller's own rows: route `{} {}` is not a list of an owned entity",
                route.method.as_str(),
                route.path
            ),
        )
        .hint("use `mine: true` on a `list` of an entity with `owner`");
    } else if route.mine && route.public {
        d.error(
            route.span,
            format!(
                "route `{} {}` lists the caller's own rows, so it cannot be public",
                route.method.as_str(),
                route.path
            ),
        );
    }
}

/// Roles a route requires must be declared under `auth.roles`, and make no sense on a public
/// route.
fn check_route_roles(system: &System, route: &RouteKey, d: &mut Diagnostics) {
    if route.roles.is_empty() {
        return;
    }
    if route.public {
        d.error(
            route.span,
            format!(
                "route `{} {}` is public but requires roles",
                route.method.as_str(),
                route.path
            ),
        )
        .hint("a role needs a signed-in user: remove `public: true` or `roles`");
    }
    check_roles(system, route.roles, d);
}

/// Every role named must be declared under `auth.roles`.
pub(super) fn check_roles(system: &System, roles: &[Name], d: &mut Diagnostics) {
    let declared: Vec<&str> = system
        .auth
        .as_ref()
        .map(|a| a.roles.iter().map(Name::as_str).collect())
        .unwrap_or_default();
    for role in roles {
        if !declared.contains(&role.as_str()) {
            d.error(role.span, format!("unknown role `{}`", role.value))
                .hint(
                    did_you_mean(&role.value, declared.iter().copied()).unwrap_or_else(|| {
                        format!(
                            "declare it once: `auth: {{ roles: [user, admin, {}] }}`",
                            role.value
                        )
                    }),
                );
        }
    }
}

/// Every field of an emitted event must be filled from the entity: same name, or `<entity>_id`
/// from `id`, with a type that fits.
fn check_emit_contract(entity: &Entity, event: &Event, emit: &Name, d: &mut Diagnostics) {
    for field in &event.fields {
        match entity.event_source(&field.name.value) {
            Some(column) if column.ty.fits(&field.ty) => {}
            Some(column) => {
                d.error(
                    emit.span,
                    format!(
                        "event `{}` declares `{}` as {}, but entity `{}` has it as {}",
                        event.name.value,
                        field.name.value,
                        field.ty.spec_text(),
                        entity.name.value,
                        column.ty.spec_text()
                    ),
                );
            }
            None => {
                let columns: Vec<String> = entity.columns().into_iter().map(|c| c.name).collect();
                d.error(emit.span, format!("event `{}` needs field `{}`, which entity `{}` does not have", event.name.value, field.name.value, entity.name.value))
                    .hint(did_you_mean(&field.name.value, columns.iter().map(String::as_str))
                        .unwrap_or_else(|| format!("an event field is filled from the entity field of the same name, or `{}_id` from `id`", entity.name.value)));
            }
        }
    }
}

fn check_events(system: &System, declared: &Declared, d: &mut Diagnostics) {
    let mut produced: BTreeSet<&str> = BTreeSet::new();
    let mut consumed: BTreeSet<&str> = BTreeSet::new();
    for service in &system.services {
        produced.extend(service.emitted_events().map(Name::as_str));
        consumed.extend(service.consumers.iter().map(|c| c.event.as_str()));
    }
    for service in &system.services {
        for consumer in &service.consumers {
            let Some(event) = find_event(system, declared, &consumer.event, d) else {
                continue;
            };
            if !produced.contains(event.name.as_str()) {
                d.error(
                    consumer.event.span,
                    format!(
                        "event `{}` is consumed by service `{}` but no service produces it",
                        event.name.value, service.name.value
                    ),
                )
                .hint("emit it from a route (`emit:`) or a capability, or remove this consumer");
            }
            consumers::check(system, declared, service, consumer, event, d);
        }
    }
    for event in &system.events {
        if produced.contains(event.name.as_str())
            && !consumed.contains(event.name.as_str())
            && event.description.is_none()
        {
            d.warning(
                event.name.span,
                format!(
                    "event `{}` is produced but nobody consumes it",
                    event.name.value
                ),
            )
            .hint("consume it, or give it a `description` saying who it is for");
        }
    }
}

/// Every `{field}` of a notification's message is a single, required field of the event.
fn check_message_placeholders(event: &Event, message: &Name, d: &mut Diagnostics) {
    for placeholder in crate::model::placeholders(&message.value) {
        if let Some(field) = event
            .field(placeholder)
            .filter(|f| matches!(f.ty, Type::Optional(_) | Type::List(_)))
        {
            d.error(message.span, format!("the message uses `{{{placeholder}}}`, but `{placeholder}` is {}: only single, required values can be shown", field.ty.spec_text()));
        }
        if event.field(placeholder).is_none() {
            d.error(message.span, format!("the message uses `{{{placeholder}}}`, but event `{}` has no field `{placeholder}`", event.name.value))
                        .hint(did_you_mean(placeholder, event.fields.iter().map(|f| f.name.as_str()))
                            .unwrap_or_else(|| format!("fields of `{}`: {}", event.name.value, event.fields.iter().map(|f| format!("`{}`", f.name.value)).collect::<Vec<_>>().join(", "))));
        }
    }
}

pub(super) fn find_event<'a>(
    system: &System,
    declared: &Declared<'a>,
    name: &Name,
    d: &mut Diagnostics,
) -> Option<&'a Event> {
    let found = declared.events.get(name.as_str()).copied();
    if found.is_none() {
        d.error(name.span, format!("unknown event `{}`", name.value))
            .hint(did_you_mean(&name.value, system.events.iter().map(|e| e.name.as_str()))
                .unwrap_or_else(|| format!("declare it under `events:` with its fields, e.g. `{}: {{ fields: {{ ... }} }}`", name.value)));
    }
    found
}

/// The spec keyword of a capability.
pub fn capability_name(capability: Capability) -> &'static str {
    match capability {
        Capability::Auth => "auth",
        Capability::Notify => "notify",
    }
}
