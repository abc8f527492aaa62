//! RPCs, `calls` and route steps: the typing rules that validation and rendering share, and
//! the checks of stage 3 for them (references, call cycles, argument types, SQL parameters).

use crate::diag::{Diagnostics, did_you_mean};
use crate::model::*;
use std::collections::BTreeMap;

/// A type together with the service whose messages and entities it refers to.
#[derive(Debug, Clone)]
pub struct Typed<'s> {
    /// The type.
    pub ty: Type,
    /// The service that declares the messages it names.
    pub owner: &'s Service,
}

impl<'s> Typed<'s> {
    /// The type of field `name` inside this message type (optional when this one is).
    pub fn field(&self, name: &str) -> Option<Typed<'s>> {
        let (inner, optional) = match &self.ty {
            Type::Optional(inner) => (inner.as_ref(), true),
            other => (other, false),
        };
        let Type::Message(message) = inner else {
            return None;
        };
        let field = self
            .owner
            .record(message)?
            .into_iter()
            .find(|f| f.name.value == name)?;
        let ty = if optional && !matches!(field.ty, Type::Optional(_)) {
            Type::Optional(Box::new(field.ty))
        } else {
            field.ty
        };
        Some(Typed {
            ty,
            owner: self.owner,
        })
    }

    /// Whether a value of this type can be stored where `target` is expected: scalars as
    /// [`Type::fits`], messages field by field (every field of the target filled by the
    /// field of the same name, or optional).
    pub fn fits(&self, target: &Typed) -> bool {
        fits(&self.ty, self.owner, &target.ty, target.owner, 0)
    }
}

fn fits(from: &Type, from_owner: &Service, to: &Type, to_owner: &Service, depth: u32) -> bool {
    if depth > 16 {
        return false;
    }
    match (from, to) {
        (Type::Optional(a), Type::Optional(b)) => fits(a, from_owner, b, to_owner, depth + 1),
        (a, Type::Optional(b)) => fits(a, from_owner, b, to_owner, depth + 1),
        (Type::Optional(_), _) => false,
        (Type::List(a), Type::List(b)) => fits(a, from_owner, b, to_owner, depth + 1),
        (Type::Message(a), Type::Message(b)) => {
            let (Some(a), Some(b)) = (from_owner.record(a), to_owner.record(b)) else {
                return false;
            };
            b.iter().all(
                |target| match a.iter().find(|f| f.name.value == target.name.value) {
                    Some(source) => fits(&source.ty, from_owner, &target.ty, to_owner, depth + 1),
                    None => matches!(target.ty, Type::Optional(_)),
                },
            )
        }
        (Type::Message(_), _) | (_, Type::Message(_)) => false,
        (a, b) => a.fits(b),
    }
}

/// The service and RPC a reference names.
pub fn find_rpc<'s>(system: &'s System, target: &RpcRef) -> Option<(&'s Service, &'s Rpc)> {
    let service = system
        .services
        .iter()
        .find(|s| s.name.value == target.service.value)?;
    Some((service, service.rpc(&target.rpc.value)?))
}

/// The fields of a route's body: its `input`, else the entity's declared fields (on a create,
/// those with a default optional, but those its path gives and those it `set`s).
pub fn route_input(service: &Service, route: &Route) -> Vec<Field> {
    if let Some(input) = &route.input {
        return input.clone();
    }
    let Some(entity) = service.entity(&route.entity.value) else {
        return Vec::new();
    };
    // A create may leave out a field with a default; a patch leaves out any field.
    let fields = if route.operation == Operation::Create {
        let params = route.params();
        entity
            .create_fields()
            .into_iter()
            .filter(|f| !params.contains(&f.name.as_str()))
            .filter(|f| !route.set.iter().any(|(n, _)| n.value == f.name.value))
            .collect()
    } else {
        entity.fields.clone()
    };
    fields
        .into_iter()
        .map(|f| Field {
            name: Name {
                value: f.name.value,
                span: route.span,
            },
            ..f
        })
        .collect()
}

/// Whether the gateway carries `route` of a service reached over gRPC as an RPC of its
/// `<Name>ApiService`: a `create` whose path has no parameter, and the other operations by
/// `{id}` alone, without steps (but a `create`'s) or a set change. The gateway forwards the
/// others to the service's HTTP side, on the same port.
pub fn carried_over_grpc(route: &Route) -> bool {
    let params = route.params();
    match route.operation {
        Operation::Create => params.is_empty(),
        Operation::List => params.is_empty() && route.steps.is_empty(),
        Operation::Get | Operation::Update | Operation::Delete => {
            params == ["id"] && route.steps.is_empty() && route.set.is_empty()
        }
    }
}

/// Whether a service has a gRPC contract: it serves RPCs, or the gateway reaches it over gRPC.
pub fn has_contract(service: &Service) -> bool {
    !service.rpcs.is_empty() || service.transport == Transport::Grpc
}

/// The field of a patch RPC that lists the fields the patch sets.
pub const PATCHED_FIELDS: &str = "patched_fields";

/// The field of a patch RPC that lists the fields the patch sets to null.
pub const NULLED_FIELDS: &str = "nulled_fields";

/// The field of a change RPC (patch or delete) that carries the route's `If-Match` header.
pub const IF_MATCH: &str = "if_match";

/// The gRPC service that carries a service's routes for the gateway: `ProductApiService`.
pub fn api_service_name(service: &Service) -> String {
    format!("{}ApiService", crate::ident::to_pascal(&service.name.value))
}

/// The type of `$caller.roles`: a list of role names.
pub fn caller_roles_type() -> Type {
    Type::List(Box::new(Type::String {
        min: None,
        max: None,
    }))
}

/// The type of a value in a route's steps, given the steps before it.
pub fn expr_type<'s>(
    system: &'s System,
    service: &'s Service,
    route: &Route,
    before: &[Step],
    expr: &Expr,
) -> Result<Typed<'s>, String> {
    let plain = |ty| Typed { ty, owner: service };
    match expr {
        Expr::Caller | Expr::CallerRoles if route.public => {
            Err("`$caller` is not known on a public route".into())
        }
        Expr::Id if route.operation != Operation::Create && !route.has_id() => {
            Err("`$id` needs `{id}` in the route's path".into())
        }
        Expr::Caller | Expr::Id => Ok(plain(Type::Uuid)),
        Expr::CallerRoles => Ok(plain(caller_roles_type())),
        Expr::Now { .. } => Ok(plain(Type::Timestamp)),
        Expr::Int(_) => Ok(plain(Type::INT)),
        Expr::Bool(_) => Ok(plain(Type::Bool)),
        Expr::Text(_) => Ok(plain(Type::String {
            min: None,
            max: None,
        })),
        Expr::Path { root, .. }
            if root.value == "input" && route.operation != Operation::Create =>
        {
            Err("`$input` is the body of a `create` route".into())
        }
        // A path parameter: the field of the route's entity it names.
        Expr::Path { root, fields }
            if fields.is_empty() && route.params().contains(&root.value.as_str()) =>
        {
            let column = service
                .entity(&route.entity.value)
                .and_then(|entity| entity.column(&root.value))
                .ok_or_else(|| {
                    format!(
                        "`{{{}}}` names no field of `{}`",
                        root.value, route.entity.value
                    )
                })?;
            Ok(plain(column.ty))
        }
        Expr::Path { root, fields } => {
            let mut typed = if root.value == "input" {
                let fields = route_input(service, route);
                Typed {
                    ty: Type::Message(String::new()),
                    owner: service,
                }
                .with_fields(fields)
            } else {
                let step = before
                    .iter()
                    .find(|s| s.name.as_ref().is_some_and(|n| n.value == root.value))
                    .ok_or_else(|| {
                        let names = before.iter().filter_map(|s| s.name.as_ref());
                        let mut known: Vec<&str> = names.map(Name::as_str).collect();
                        known.push("input");
                        format!(
                            "`${}` is not the result of an earlier step{}",
                            root.value,
                            did_you_mean(&root.value, known.iter().copied())
                                .map(|h| format!(" ({h})"))
                                .unwrap_or_default()
                        )
                    })?;
                if fields.len() != 1 {
                    return Err(format!(
                        "read one field of a step's result: `${}.<field>`",
                        root.value
                    ));
                }
                let StepAction::Call(call) = &step.action else {
                    return Err(format!(
                        "a `pay` step has no result to read (`${}`)",
                        root.value
                    ));
                };
                let (target, rpc) = find_rpc(system, &call.target)
                    .ok_or_else(|| format!("unknown RPC `{}`", call.target.text()))?;
                Typed {
                    ty: Type::Message(String::new()),
                    owner: target,
                }
                .with_fields(rpc.response.clone())
            };
            let mut path = root.value.clone();
            for field in fields {
                typed = typed
                    .field_of(&field.value)
                    .ok_or_else(|| format!("`${path}` has no field `{}`", field.value))?;
                path = format!("{path}.{}", field.value);
            }
            match typed {
                Walk::Value(typed) => Ok(typed),
                Walk::Root(..) => Err(format!(
                    "`${path}` is a whole record: name one of its fields"
                )),
            }
        }
    }
}

/// A position in a path: the root (a list of fields) or a typed value.
enum Walk<'s> {
    Root(Vec<Field>, &'s Service),
    Value(Typed<'s>),
}

impl<'s> Typed<'s> {
    fn with_fields(self, fields: Vec<Field>) -> Walk<'s> {
        Walk::Root(fields, self.owner)
    }
}

impl<'s> Walk<'s> {
    fn field_of(self, name: &str) -> Option<Walk<'s>> {
        match self {
            Walk::Root(fields, owner) => {
                let field = fields.into_iter().find(|f| f.name.value == name)?;
                Some(Walk::Value(Typed {
                    ty: field.ty,
                    owner,
                }))
            }
            Walk::Value(typed) => typed.field(name).map(Walk::Value),
        }
    }
}

/// The `:name` parameters of an SQL statement, each once, in order of first appearance
/// (outside quoted text; PostgreSQL's `::type` casts are not parameters).
pub fn sql_params(sql: &str) -> Vec<String> {
    positional_sql(sql).1
}

/// The SQL with its `:name` parameters replaced by `$1, $2, ...` (the same number for every use
/// of a name), and the names in number order.
pub fn positional_sql(sql: &str) -> (String, Vec<String>) {
    let bytes = sql.as_bytes();
    let mut out = String::new();
    let mut names: Vec<String> = Vec::new();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b':' && bytes.get(i + 1) == Some(&b':') => {
                out.push_str("::");
                i += 2;
                continue;
            }
            None if c == b':' => {
                let start = i + 1;
                let mut end = start;
                while end < bytes.len()
                    && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_')
                {
                    end += 1;
                }
                if end > start && !bytes[start].is_ascii_digit() {
                    let name = &sql[start..end];
                    let number = match names.iter().position(|n| n == name) {
                        Some(index) => index + 1,
                        None => {
                            names.push(name.to_owned());
                            names.len()
                        }
                    };
                    out.push_str(&format!("${number}"));
                    i = end;
                    continue;
                }
            }
            None => {}
        }
        out.push(c as char);
        i += 1;
    }
    (out, names)
}

/// The parameters an SQL statement of an RPC can use, with their types: `now`, `new_id`, the
/// service's constants, the request's plain fields and those of the `for_each` element.
pub fn statement_scope(
    service: &Service,
    rpc: &Rpc,
    statement: &Statement,
) -> BTreeMap<String, Type> {
    let mut scope = BTreeMap::new();
    scope.insert("now".to_owned(), Type::Timestamp);
    scope.insert("new_id".to_owned(), Type::Uuid);
    for (name, _) in &service.constants {
        scope.insert(name.value.clone(), Type::INT);
    }
    for field in &rpc.request {
        if !matches!(field.ty.required(), Type::List(_) | Type::Message(_)) {
            scope.insert(field.name.value.clone(), field.ty.clone());
        }
    }
    if let Some(element) = statement
        .for_each
        .as_ref()
        .and_then(|each| for_each_fields(service, rpc, &each.value))
    {
        for field in element {
            scope.insert(field.name.value.clone(), field.ty);
        }
    }
    scope
}

/// The fields of the elements of a request's list field (a list of messages).
pub fn for_each_fields(service: &Service, rpc: &Rpc, field: &str) -> Option<Vec<Field>> {
    let field = rpc.request.iter().find(|f| f.name.value == field)?;
    let Type::List(inner) = field.ty.required() else {
        return None;
    };
    let Type::Message(name) = inner.as_ref() else {
        return None;
    };
    service.record(name)
}

/// Checks messages, RPCs, `calls` and route steps.
pub fn check(system: &System, d: &mut Diagnostics) {
    for service in &system.services {
        check_types(system, service, d);
        for rpc in &service.rpcs {
            check_rpc(system, service, rpc, d);
        }
        for call in &service.calls {
            match system
                .services
                .iter()
                .find(|s| s.name.value == call.service.value)
            {
                None => {
                    d.error(
                        call.span,
                        format!("unknown service `{}`", call.service.value),
                    )
                    .with_hint_opt_mut(did_you_mean(
                        &call.service.value,
                        system.services.iter().map(|s| s.name.as_str()),
                    ));
                }
                Some(target) if target.name.value == service.name.value => {
                    d.error(
                        call.span,
                        format!("service `{}` calls itself", service.name.value),
                    )
                    .hint("a service runs its own logic directly; `calls` lists other services");
                }
                Some(target) if target.rpc(&call.rpc.value).is_none() => {
                    d.error(
                        call.span,
                        format!(
                            "service `{}` has no RPC `{}`",
                            target.name.value, call.rpc.value
                        ),
                    )
                    .with_hint_opt_mut(did_you_mean(
                        &call.rpc.value,
                        target.rpcs.iter().map(|r| r.name.as_str()),
                    ));
                }
                Some(_) => {}
            }
        }
        for route in &service.routes {
            check_steps(system, service, route, d);
            if service.transport != Transport::Grpc || route.operation != Operation::Update {
                continue;
            }
            let taken = service
                .entity(&route.entity.value)
                .into_iter()
                .flat_map(|e| {
                    e.fields.iter().filter(|f| {
                        [PATCHED_FIELDS, NULLED_FIELDS, IF_MATCH].contains(&f.name.as_str())
                    })
                });
            for field in taken {
                d.error(field.name.span, format!("`{}` names a field of the patches of service `{}`, which is reached over gRPC", field.name.value, service.name.value))
                    .hint("rename the field");
            }
        }
        if service.transport == Transport::Grpc && service.uses.is_some() {
            d.error(
                service.name.span,
                format!(
                    "service `{}` uses a capability, whose routes are served over HTTP only",
                    service.name.value
                ),
            )
            .hint("remove `transport: grpc`");
        }
    }
    check_call_cycles(system, d);
}

/// Every named type must be a message or entity of the service; events hold plain values.
fn check_types(system: &System, service: &Service, d: &mut Diagnostics) {
    let mut fields: Vec<&Field> = Vec::new();
    for entity in &service.entities {
        fields.extend(&entity.fields);
    }
    for message in &service.messages {
        fields.extend(&message.fields);
    }
    for rpc in &service.rpcs {
        if !matches!(rpc.kind, RpcKind::Get { .. }) {
            fields.extend(rpc.request.iter().chain(&rpc.response));
        }
    }
    for route in &service.routes {
        fields.extend(route.input.iter().flatten());
    }
    let mut known: Vec<&str> = service.messages.iter().map(|m| m.name.as_str()).collect();
    known.extend(service.entities.iter().map(|e| e.name.as_str()));
    for field in fields {
        if let Some(name) = message_name(&field.ty)
            && service.record(name).is_none()
        {
            let builtin = crate::resolve::TYPE_NAMES.iter().copied();
            d.error(field.name.span, format!("unknown type `{name}`"))
                .hint(
                did_you_mean(name, builtin.chain(known.iter().copied())).unwrap_or_else(|| {
                    format!(
                        "declare `{name}` under the service's `messages:`, or use a built-in type"
                    )
                }),
            );
        }
    }
    for message in &service.messages {
        if refers_to(service, &message.name.value, &message.name.value, 0) {
            d.error(
                message.name.span,
                format!("message `{}` contains itself", message.name.value),
            )
            .hint("a message cannot hold itself, directly or through other messages");
        }
    }
    let _ = system;
}

fn message_name(ty: &Type) -> Option<&str> {
    match ty {
        Type::Message(name) => Some(name),
        Type::List(inner) | Type::Optional(inner) => message_name(inner),
        _ => None,
    }
}

fn refers_to(service: &Service, message: &str, target: &str, depth: u32) -> bool {
    if depth > 16 {
        return true;
    }
    let Some(m) = service.messages.iter().find(|m| m.name.value == message) else {
        return false;
    };
    m.fields.iter().any(|f| match message_name(&f.ty) {
        Some(name) => name == target || refers_to(service, name, target, depth + 1),
        None => false,
    })
}

fn check_rpc(system: &System, service: &Service, rpc: &Rpc, d: &mut Diagnostics) {
    match &rpc.kind {
        RpcKind::Get { record } => {
            let is_entity = service.entity(&record.value).is_some();
            let is_account = service.uses == Some(Capability::Auth) && record.value == "user";
            if !is_entity && !is_account {
                let mut known: Vec<&str> =
                    service.entities.iter().map(|e| e.name.as_str()).collect();
                if service.uses == Some(Capability::Auth) {
                    known.push("user");
                }
                d.error(
                    record.span,
                    format!(
                        "service `{}` has no entity `{}`",
                        service.name.value, record.value
                    ),
                )
                .with_hint_opt_mut(did_you_mean(&record.value, known.iter().copied()));
            }
        }
        RpcKind::Custom(_) => {
            if service.store.is_none() {
                d.error(
                    rpc.name.span,
                    format!(
                        "RPC `{}` is custom code, but service `{}` has no store: the code runs in a transaction of its database",
                        rpc.name.value, service.name.value
                    ),
                )
                .hint("give the service `store: <store>`");
            }
        }
        RpcKind::Sql(statements) => {
            if service.store.is_none() || (service.uses.is_some() && service.entities.is_empty()) {
                d.error(
                    rpc.name.span,
                    format!(
                        "RPC `{}` runs SQL, but service `{}` has no store of its own tables",
                        rpc.name.value, service.name.value
                    ),
                )
                .hint("SQL RPCs belong to services with a `store` and `entities`");
            }
            for statement in statements {
                check_statement(system, service, rpc, statement, d);
            }
        }
    }
}

fn check_statement(
    system: &System,
    service: &Service,
    rpc: &Rpc,
    statement: &Statement,
    d: &mut Diagnostics,
) {
    if let Some(each) = &statement.for_each
        && for_each_fields(service, rpc, &each.value).is_none()
    {
        d.error(
            each.span,
            format!(
                "`for_each` must name a request field that is a list of messages; `{}` is not one",
                each.value
            ),
        )
        .with_hint_opt_mut(did_you_mean(
            &each.value,
            rpc.request.iter().map(|f| f.name.as_str()),
        ));
    }
    let scope = statement_scope(service, rpc, statement);
    for param in sql_params(&statement.sql) {
        if !scope.contains_key(&param) {
            let at = d.span_within(statement.span, &statement.sql, &format!(":{param}"));
            d.error(
                at,
                format!("the SQL uses `:{param}`, which is not a parameter here"),
            )
            .hint(format!(
                "parameters: {}",
                scope
                    .keys()
                    .map(|k| format!("`:{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if let Some(expect) = &statement.expect {
        if !RPC_STATUSES.iter().any(|(s, _)| *s == expect.status.value) {
            d.error(
                expect.status.span,
                format!("unknown status `{}`", expect.status.value),
            )
            .hint(
                did_you_mean(&expect.status.value, RPC_STATUSES.iter().map(|(s, _)| *s))
                    .unwrap_or_else(|| {
                        format!(
                            "statuses: {}",
                            RPC_STATUSES
                                .iter()
                                .map(|(s, _)| *s)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }),
            );
        }
        for placeholder in crate::model::placeholders(&expect.message) {
            if !scope.contains_key(placeholder) {
                d.error(statement.span, format!("the `expect` message uses `{{{placeholder}}}`, which is not a parameter here"));
            }
        }
    }
    if let Some(into) = &statement.into
        && !rpc.response.iter().any(|f| f.name.value == into.value)
    {
        d.error(
            into.span,
            format!(
                "RPC `{}` has no response field `{}`",
                rpc.name.value, into.value
            ),
        )
        .with_hint_opt_mut(did_you_mean(
            &into.value,
            rpc.response.iter().map(|f| f.name.as_str()),
        ));
    }
    if let Some(field) = statement
        .into
        .as_ref()
        .and_then(|into| rpc.response.iter().find(|f| f.name.value == into.value))
        && let Type::List(inner) = field.ty.required()
        && !matches!(inner.as_ref(), Type::Message(_))
    {
        d.error(
            statement.span,
            format!(
                "`into: {}` needs a list of messages (one per row) or a single value, not {}",
                field.name.value,
                field.ty.spec_text()
            ),
        );
    }
    if statement.into.is_some() && statement.for_each.is_some() {
        d.error(
            statement.span,
            "a statement that fills a response field cannot run `for_each`",
        );
    }
    if let Some(event) = &statement.emit
        && !system.events.iter().any(|e| e.name.value == event.value)
    {
        d.error(event.span, format!("unknown event `{}`", event.value))
            .with_hint_opt_mut(did_you_mean(
                &event.value,
                system.events.iter().map(|e| e.name.as_str()),
            ));
    }
}

fn check_steps(system: &System, service: &Service, route: &Route, d: &mut Diagnostics) {
    if route.steps.is_empty()
        && (route.operation != Operation::Create || (route.set.is_empty() && route.input.is_none()))
    {
        return;
    }
    let creates = route.operation == Operation::Create;
    if !route.steps.is_empty() && !creates {
        check_change_steps(route, d);
    }
    for (index, step) in route.steps.iter().enumerate() {
        let before = &route.steps[..index];
        if let Some(name) = &step.name {
            let taken = ["input", "caller", "id"].contains(&name.as_str())
                || route.params().contains(&name.as_str())
                || before
                    .iter()
                    .any(|s| s.name.as_ref().is_some_and(|n| n.value == name.value));
            if taken {
                d.error(
                    name.span,
                    format!("the step name `{}` is already taken", name.value),
                );
            }
        }
        match &step.action {
            StepAction::Call(call) => {
                check_call(system, service, route, before, call, d);
                if let Some(undo) = &step.undo {
                    check_call(system, service, route, before, undo, d);
                }
            }
            StepAction::Pay { amount_cents, card } => {
                let int = Typed {
                    ty: Type::INT,
                    owner: service,
                };
                let text = Typed {
                    ty: Type::Optional(Box::new(Type::String {
                        min: None,
                        max: None,
                    })),
                    owner: service,
                };
                for (what, expr, target) in
                    [("amount_cents", amount_cents, int), ("card", card, text)]
                {
                    match expr_type(system, service, route, before, expr) {
                        Ok(typed) if typed.fits(&target) => {}
                        Ok(typed) => {
                            d.error(
                                step.span,
                                format!(
                                    "`pay` takes `{what}` as {}, not {}",
                                    target.ty.spec_text(),
                                    typed.ty.spec_text()
                                ),
                            );
                        }
                        Err(message) => {
                            d.error(step.span, message);
                        }
                    }
                }
                if step.undo.is_some() {
                    d.error(
                        step.span,
                        "a payment is undone by a refund: `pay` takes no `undo`",
                    );
                }
            }
        }
    }
    // (The set change of an `update` route is checked with the route's path.)
    if !creates {
        return;
    }
    let Some(entity) = service.entity(&route.entity.value) else {
        return;
    };
    let input = route_input(service, route);
    // The path's fields are given.
    let params = route.params();
    for column in entity
        .columns()
        .into_iter()
        .filter(|c| c.source == ColumnSource::Input && !params.contains(&c.name.as_str()))
    {
        let value = route.set.iter().find(|(name, _)| name.value == column.name);
        let target = Typed {
            ty: column.ty.clone(),
            owner: service,
        };
        match value {
            Some((name, expr)) => match expr_type(system, service, route, &route.steps, expr) {
                Ok(typed) if typed.fits(&target) => {}
                Ok(typed) => {
                    d.error(
                        name.span,
                        format!(
                            "`{}` is {} in entity `{}`, but the value is {}",
                            name.value,
                            column.ty.spec_text(),
                            entity.name.value,
                            typed.ty.spec_text()
                        ),
                    );
                }
                Err(message) => {
                    d.error(name.span, message);
                }
            },
            None => {
                let from_input = input.iter().find(|f| f.name.value == column.name);
                // A field with a default may come as optional: left out, it takes the default.
                let defaulted = column.rules.default.is_some();
                let fits = from_input.is_some_and(|f| {
                    let ty = match &f.ty {
                        Type::Optional(inner) if defaulted => inner.as_ref().clone(),
                        other => other.clone(),
                    };
                    Typed { ty, owner: service }.fits(&target)
                });
                if !fits && !defaulted && !matches!(column.ty, Type::Optional(_)) {
                    d.error(
                        route.span,
                        format!(
                            "the route does not say what `{}` of entity `{}` is",
                            column.name, entity.name.value
                        ),
                    )
                    .hint(format!(
                        "add it to `set:`, e.g. `set: {{ {}: $input.{} }}`",
                        column.name, column.name
                    ));
                }
            }
        }
    }
    for (name, _) in &route.set {
        if params.contains(&name.as_str()) {
            d.error(
                name.span,
                format!("`{}` is given by the route's path", name.value),
            );
        }
        if entity
            .column(&name.value)
            .is_none_or(|c| c.source != ColumnSource::Input)
        {
            d.error(
                name.span,
                format!(
                    "`set` names `{}`, which is not a field of entity `{}` the route can set",
                    name.value, entity.name.value
                ),
            );
        }
    }
}

/// The steps of a route other than `create`: for a signed-in caller; a read's steps undo
/// nothing, and only a `create` takes a payment.
fn check_change_steps(route: &Route, d: &mut Diagnostics) {
    let keyword = route.operation.keyword();
    let operation = if keyword.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an `{keyword}`")
    } else {
        format!("a `{keyword}`")
    };
    if route.public {
        d.error(
            route.span,
            format!("the steps of `{} {}` call other services for the signed-in caller, and the route is public", route.method.as_str(), route.path),
        )
        .hint("remove `public: true`, or the steps");
    }
    let reads = matches!(route.operation, Operation::Get | Operation::List);
    for step in &route.steps {
        if matches!(step.action, StepAction::Pay { .. }) {
            d.error(
                step.span,
                format!("{operation} route takes no payment: `pay` is a step of `create` routes"),
            );
        }
        if let (true, Some(undo)) = (reads, &step.undo) {
            d.error(
                undo.target.span,
                format!("{operation} route changes nothing, so its steps have nothing to undo"),
            );
        }
    }
}

fn check_call(
    system: &System,
    service: &Service,
    route: &Route,
    before: &[Step],
    call: &Call,
    d: &mut Diagnostics,
) {
    let Some((target, rpc)) = declared_call(system, service, call, d) else {
        return;
    };
    check_call_values(call, target, rpc, d, |expr| {
        expr_type(system, service, route, before, expr)
    });
}

/// The service and RPC `call` reaches, when `service` declares it in `calls:` (an error
/// otherwise) and it exists (the `calls:` entry reports it otherwise).
pub fn declared_call<'s>(
    system: &'s System,
    service: &Service,
    call: &Call,
    d: &mut Diagnostics,
) -> Option<(&'s Service, &'s Rpc)> {
    if !service.calls.iter().any(|c| c.text() == call.target.text()) {
        d.error(
            call.target.span,
            format!(
                "service `{}` does not declare that it calls `{}`",
                service.name.value,
                call.target.text()
            ),
        )
        .hint(format!(
            "add `{}` to the service's `calls:`",
            call.target.text()
        ));
        return None;
    }
    find_rpc(system, &call.target)
}

/// Checks the `with` values of `call` to `rpc` of `target`: each request field it names
/// exists and takes its value (typed by `type_of`), and every required one is given.
pub fn check_call_values<'s>(
    call: &Call,
    target: &'s Service,
    rpc: &Rpc,
    d: &mut Diagnostics,
    type_of: impl Fn(&Expr) -> Result<Typed<'s>, String>,
) {
    for field in &rpc.request {
        let expected = Typed {
            ty: field.ty.clone(),
            owner: target,
        };
        match call
            .with
            .iter()
            .find(|(name, _)| name.value == field.name.value)
        {
            Some((name, expr)) => match type_of(expr) {
                Ok(typed) if typed.fits(&expected) => {}
                Ok(typed) => {
                    d.error(
                        name.span,
                        format!(
                            "`{}` of `{}` is {}, but the value is {}",
                            field.name.value,
                            call.target.text(),
                            field.ty.spec_text(),
                            typed.ty.spec_text()
                        ),
                    );
                }
                Err(message) => {
                    d.error(name.span, message);
                }
            },
            None if matches!(field.ty, Type::Optional(_)) => {}
            None => {
                d.error(
                    call.target.span,
                    format!(
                        "the call to `{}` does not give `{}`",
                        call.target.text(),
                        field.name.value
                    ),
                )
                .hint(format!(
                    "add it under `with:`, e.g. `{}: $input.{}`",
                    field.name.value, field.name.value
                ));
            }
        }
    }
    for (name, _) in &call.with {
        if !rpc.request.iter().any(|f| f.name.value == name.value) {
            d.error(
                name.span,
                format!("`{}` takes no `{}`", call.target.text(), name.value),
            )
            .with_hint_opt_mut(did_you_mean(
                &name.value,
                rpc.request.iter().map(|f| f.name.as_str()),
            ));
        }
    }
}

/// Synchronous calls must not form a cycle: a failure would cascade around it.
fn check_call_cycles(system: &System, d: &mut Diagnostics) {
    let edges = |name: &str| -> Vec<&RpcRef> {
        system
            .services
            .iter()
            .find(|s| s.name.value == name)
            .map(|s| s.calls.iter().collect())
            .unwrap_or_default()
    };
    let mut reported = std::collections::BTreeSet::new();
    for service in &system.services {
        // Depth-first search from each service, remembering the path.
        let mut stack: Vec<(String, Vec<String>)> =
            vec![(service.name.value.clone(), vec![service.name.value.clone()])];
        while let Some((at, path)) = stack.pop() {
            for call in edges(&at) {
                let next = &call.service.value;
                if *next == service.name.value {
                    let mut cycle = path.clone();
                    cycle.push(next.clone());
                    let mut key = path.clone();
                    key.sort();
                    if reported.insert(key) {
                        d.error(call.span, format!("synchronous calls form a cycle: {}", cycle.join(" -> ")))
                            .hint("a failure would cascade around the cycle; let one side react to an event instead");
                    }
                } else if !path.contains(next) && path.len() < system.services.len() {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_parameters_become_numbered_ones_outside_quotes_and_casts() {
        let (sql, names) = positional_sql(
            "UPDATE t SET n = n - :q, note = ':q', at = :now::timestamptz WHERE id = :id AND n >= :q",
        );
        assert_eq!(
            sql,
            "UPDATE t SET n = n - $1, note = ':q', at = $2::timestamptz WHERE id = $3 AND n >= $1"
        );
        assert_eq!(names, ["q", "now", "id"]);
        assert_eq!(sql_params("SELECT ':x', :y, \":z\""), ["y"]);
    }
}
