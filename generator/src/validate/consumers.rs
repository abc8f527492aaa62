//! Consumers: each action type-checked against the consumed event. A notification goes from
//! the `notify` service to a user field or a role; a write names an entity of the consumer's
//! own service and gives its columns values the event can fill; an SQL statement reads only
//! the event's fields; an emitted event gets every field it needs.

use super::*;

/// Checks the actions of `consumer`, a consumer of `event` in `service`.
pub(super) fn check(
    system: &System,
    declared: &Declared,
    service: &Service,
    consumer: &Consumer,
    event: &Event,
    d: &mut Diagnostics,
) {
    check_call_order_and_names(&consumer.actions, d);
    for (index, action) in consumer.actions.iter().enumerate() {
        let scope = Scope::before(system, Some(event), &consumer.actions[..index]);
        match action {
            Action::Notify { to, message, .. } => {
                if service.uses != Some(Capability::Notify) {
                    d.error(consumer.event.span, format!("service `{}` cannot `notify`: it does not use the `notify` capability", service.name.value))
                        .hint("add `uses: notify` to the service, or move the consumer to the service that has it");
                }
                check_recipient(system, event, to, d);
                check_message_placeholders(event, message, d);
            }
            Action::Write(write) => check_write(service, &scope, write, d),
            Action::Sql { sql, span } => check_sql(service, event, sql, *span, d),
            Action::Emit { event: name, with } => {
                if let Some(emitted) = find_event(system, declared, name, d) {
                    check_emit(&scope, emitted, with, name.span, d);
                }
            }
            Action::Call { call, .. } => check_call(system, service, call, &scope, d),
        }
    }
}

/// What the values of a consumer's or a job's actions can read: the consumed event (a job has
/// none) and the responses of the calls before them that have a name (`as:`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope<'m> {
    /// The consumed event.
    pub event: Option<&'m Event>,
    /// Each named call before: its name, and the RPC it calls.
    pub results: Vec<(&'m str, &'m Rpc)>,
}

impl<'m> Scope<'m> {
    /// The scope of the action that follows `before`.
    pub(crate) fn before(
        system: &'m System,
        event: Option<&'m Event>,
        before: &'m [Action],
    ) -> Scope<'m> {
        let results = before
            .iter()
            .filter_map(|action| match action {
                Action::Call {
                    call,
                    name: Some(name),
                } => {
                    crate::rpc::find_rpc(system, &call.target).map(|(_, rpc)| (name.as_str(), rpc))
                }
                _ => None,
            })
            .collect();
        Scope { event, results }
    }
}

/// Calls run before the transaction of the other actions, so they are written first; each
/// name (`as:`) is given once, and is not `event`.
pub(super) fn check_call_order_and_names(actions: &[Action], d: &mut Diagnostics) {
    let mut named: Vec<&str> = Vec::new();
    for action in actions {
        if let Action::Call {
            name: Some(name), ..
        } = action
        {
            if name.value == "event" || named.contains(&name.as_str()) {
                d.error(
                    name.span,
                    format!("the call name `{}` is already taken", name.value),
                )
                .hint("give each call its own name");
            }
            named.push(name.as_str());
        }
    }
    let mut other = false;
    for action in actions {
        match action {
            Action::Call { call, .. } if other => {
                d.error(
                    call.target.span,
                    format!("`call: {}` comes after an action that changes data", call.target.text()),
                )
                .hint("calls run first, before the transaction of the other actions: move every `call` to the start of `do:`");
            }
            Action::Call { .. } => {}
            _ => other = true,
        }
    }
}

/// A call of a consumer or a job: to an RPC the service declares in `calls:` that may be
/// repeated (an event is delivered again, a job run again after a failure), with a value of
/// the right type for each request field.
pub(super) fn check_call(
    system: &System,
    service: &Service,
    call: &Call,
    scope: &Scope,
    d: &mut Diagnostics,
) {
    if service.entities.is_empty() {
        d.error(
            call.target.span,
            format!(
                "service `{}` has no entities of its own: calls are made by consumers and jobs of services that keep data",
                service.name.value
            ),
        );
        return;
    }
    let Some((target, rpc)) = crate::rpc::declared_call(system, service, call, d) else {
        return;
    };
    if !rpc.idempotent && !matches!(rpc.kind, RpcKind::Get { .. }) {
        d.error(
            call.target.span,
            format!(
                "`{}` is not idempotent, and an event or a job may call it again after a failure",
                call.target.text()
            ),
        )
        .hint(format!(
            "mark the RPC `idempotent: true` once calling it twice does what calling it once does (service `{}`)",
            target.name.value
        ));
    }
    crate::rpc::check_call_values(call, target, rpc, d, |expr| {
        let ty = value_type(scope, expr)?;
        // A value that may break a rule of the request's field (`string` into
        // `string(1..80)`) is checked by the service called, like any request.
        Ok(crate::rpc::Typed { ty, owner: service })
    });
}

fn check_recipient(system: &System, event: &Event, to: &Recipient, d: &mut Diagnostics) {
    match to {
        Recipient::Role(role) => {
            let roles = system
                .auth
                .as_ref()
                .map(|a| a.roles.as_slice())
                .unwrap_or_default();
            if !roles.iter().any(|r| r.value == role.value) {
                d.error(
                    role.span,
                    format!("`{}` is not a role of the system", role.value),
                )
                .with_hint_opt_mut(did_you_mean(&role.value, roles.iter().map(|r| r.as_str())));
            }
        }
        Recipient::User(user) => match event.field(&user.value) {
            None => {
                d.error(
                    user.span,
                    format!("event `{}` has no field `{}`", event.name.value, user.value),
                )
                .with_hint_opt_mut(did_you_mean(
                    &user.value,
                    event.fields.iter().map(|f| f.name.as_str()),
                ));
            }
            Some(field) if field.ty != Type::Uuid => {
                d.error(
                    user.span,
                    format!(
                        "`user` must name a uuid field, but `{}` is {}",
                        user.value,
                        field.ty.spec_text()
                    ),
                );
            }
            Some(_) => {}
        },
    }
}

pub(super) fn check_write(service: &Service, scope: &Scope, write: &Write, d: &mut Diagnostics) {
    let keyword = write.kind.keyword();
    let Some(entity) = service.entity(&write.entity.value) else {
        d.error(
            write.entity.span,
            format!(
                "service `{}` has no entity `{}`: a consumer changes its own service's rows",
                service.name.value, write.entity.value
            ),
        )
        .with_hint_opt_mut(did_you_mean(
            &write.entity.value,
            service.entities.iter().map(|e| e.name.as_str()),
        ));
        return;
    };
    let columns = entity.columns();
    // The column a `set` or `where` field names, or an error naming the closest one.
    let column_of = |name: &Name, d: &mut Diagnostics| {
        let found = columns.iter().find(|c| c.name == name.value);
        if found.is_none() {
            d.error(
                name.span,
                format!("`{}` has no field `{}`", entity.name.value, name.value),
            )
            .with_hint_opt_mut(did_you_mean(
                &name.value,
                columns.iter().map(|c| c.name.as_str()),
            ));
        }
        found
    };
    let inserts = matches!(write.kind, WriteKind::Create | WriteKind::Upsert { .. });
    for (name, expr) in &write.set {
        let Some(column) = column_of(name, d) else {
            continue;
        };
        match column.source {
            ColumnSource::CreatedAt | ColumnSource::UpdatedAt | ColumnSource::Version => {
                d.error(
                    name.span,
                    format!("`{}` is kept by the service and cannot be set", name.value),
                );
                continue;
            }
            ColumnSource::Id if !inserts => {
                d.error(name.span, "a row's `id` cannot change")
                    .hint("select the row with `where: { id: ... }` instead");
                continue;
            }
            _ => {}
        }
        check_value(scope, &column.name, &column.ty, expr, name.span, d);
    }
    for (name, expr) in &write.filter {
        let Some(column) = column_of(name, d) else {
            continue;
        };
        if matches!(
            column.ty,
            Type::Optional(_) | Type::List(_) | Type::Message(_)
        ) {
            d.error(
                name.span,
                format!(
                    "`where` compares single, required values; `{}` is {}",
                    name.value,
                    column.ty.spec_text()
                ),
            );
            continue;
        }
        check_value(
            scope,
            &column.name,
            column.ty.required(),
            expr,
            name.span,
            d,
        );
    }
    let set = |name: &str| write.set.iter().any(|(n, _)| n.value == name);
    match &write.kind {
        WriteKind::Create | WriteKind::Upsert { .. } => {
            let missing: Vec<&str> = columns
                .iter()
                .filter(|c| matches!(c.source, ColumnSource::Owner | ColumnSource::Input))
                .filter(|c| !matches!(c.ty, Type::Optional(_)) && c.rules.default.is_none())
                .filter(|c| !set(&c.name))
                .map(|c| c.name.as_str())
                .collect();
            if !missing.is_empty() {
                d.error(
                    write.span,
                    format!(
                        "`{keyword}: {}` leaves {} without a value",
                        entity.name.value,
                        missing
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .hint(format!(
                    "give each one in `set:`, e.g. `set: {{ {}: $event.{} }}`, or a `default`",
                    missing[0], missing[0]
                ));
            }
        }
        WriteKind::Update if write.set.is_empty() => {
            d.error(
                write.span,
                format!("`update: {}` changes nothing", entity.name.value),
            )
            .hint("give the new values in `set:`");
        }
        WriteKind::Update | WriteKind::Delete => {}
    }
    if let WriteKind::Upsert { key } = &write.kind {
        let names: Vec<&str> = key.iter().map(Name::as_str).collect();
        let mut keys = entity.unique_keys();
        keys.push(vec!["id"]);
        let is_key = keys
            .iter()
            .any(|k| k.len() == names.len() && k.iter().all(|field| names.contains(field)));
        if !is_key {
            d.error(
                key[0].span,
                format!(
                    "`{}` is not a unique key of `{}`: an upsert finds its row by one",
                    names.join(", "),
                    entity.name.value
                ),
            )
            .hint(format!(
                "mark the field `unique: true`, or list the fields under the entity's `unique:`; keys of `{}`: {}",
                entity.name.value,
                keys.iter()
                    .map(|k| format!("`{}`", k.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        for field in key {
            if !set(&field.value) {
                d.error(
                    field.span,
                    format!("the key field `{}` has no value in `set:`", field.value),
                );
            }
        }
    }
    if matches!(write.kind, WriteKind::Update | WriteKind::Delete) && write.filter.is_empty() {
        d.error(
            write.span,
            format!(
                "`{keyword}: {}` needs `where:`, or it would {keyword} every row",
                entity.name.value
            ),
        )
        .hint(format!(
            "select the rows, e.g. `where: {{ id: $event.{}_id }}`",
            entity.name.value
        ));
    }
}

/// The type of a consumer's or a job's value: a field of the event, of an earlier call's
/// response, the current time or a literal.
pub(crate) fn value_type(scope: &Scope, expr: &Expr) -> Result<Type, String> {
    match expr {
        Expr::Path { root, fields } if root.value == "event" => {
            let Some(event) = scope.event else {
                return Err(
                    "a job has no event: values are `$now`, `$<call>.<field>` or literals".into(),
                );
            };
            match fields.as_slice() {
                [field] => event.field(&field.value).map(|f| f.ty.clone()).ok_or_else(|| {
                    format!(
                        "event `{}` has no field `{}`{}",
                        event.name.value,
                        field.value,
                        did_you_mean(&field.value, event.fields.iter().map(|f| f.name.as_str()))
                            .map(|h| format!(" ({h})"))
                            .unwrap_or_default()
                    )
                }),
                _ => Err("read one field of the event: `$event.<field>`".into()),
            }
        }
        Expr::Path { root, fields } => {
            let Some((_, rpc)) = scope.results.iter().find(|(name, _)| *name == root.value) else {
                let known = if scope.event.is_some() { "`$event.<field>`, " } else { "" };
                return Err(format!(
                    "`${}` is not known here: values are {known}`$<call>.<field>` of a call before (`as: {}`), `$now` or literals",
                    root.value, root.value
                ));
            };
            let [field] = fields.as_slice() else {
                return Err(format!(
                    "read one field of the call's response: `${}.<field>`",
                    root.value
                ));
            };
            let found = rpc.response.iter().find(|f| f.name.value == field.value);
            let Some(found) = found else {
                return Err(format!(
                    "the response of `{}` has no field `{}`{}",
                    rpc.name.value,
                    field.value,
                    did_you_mean(&field.value, rpc.response.iter().map(|f| f.name.as_str()))
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default()
                ));
            };
            if crate::lower::record_of(&found.ty).is_some() {
                return Err(format!(
                    "`${}.{}` is a message ({}); values are single fields and lists of them",
                    root.value,
                    field.value,
                    found.ty.spec_text()
                ));
            }
            Ok(found.ty.clone())
        }
        Expr::Caller | Expr::CallerRoles | Expr::Id => Err(
            "a consumer or a job has no caller and makes no row id: values are `$event.<field>`, `$<call>.<field>`, `$now` or literals"
                .into(),
        ),
        Expr::Now { .. } => Ok(Type::Timestamp),
        Expr::Int(_) => Ok(Type::INT),
        Expr::Bool(_) => Ok(Type::Bool),
        Expr::Text(_) => Ok(Type::String {
            min: None,
            max: None,
        }),
    }
}

/// Checks that `expr` can fill `name` of type `ty`. A literal must fit the type here; a value
/// from the event that may not fit (a string into `string(1..80)`, into an `enum`) is checked
/// by the generated code, and an event that breaks the rule goes to the dead letters.
fn check_value(scope: &Scope, name: &str, ty: &Type, expr: &Expr, at: Span, d: &mut Diagnostics) {
    let from = match value_type(scope, expr) {
        Ok(from) => from,
        Err(problem) => {
            d.error(at, problem);
            return;
        }
    };
    if let Err(problem) = assignable(&from, ty) {
        d.error(
            at,
            format!("`{name}` cannot take {}: {problem}", describe(expr, &from)),
        );
        return;
    }
    let literal_fits = match (expr, ty.required()) {
        (Expr::Int(n), Type::Int { min, max }) => {
            min.is_none_or(|m| *n >= m) && max.is_none_or(|m| *n <= m)
        }
        (Expr::Text(text), Type::Enum(words)) => words.contains(text),
        (Expr::Text(text), Type::String { min, max }) => {
            let length = text.chars().count() as u32;
            min.is_none_or(|m| length >= m) && max.is_none_or(|m| length <= m)
        }
        (Expr::Text(_), Type::Uuid | Type::Timestamp) => false,
        _ => true,
    };
    if !literal_fits {
        d.error(
            at,
            format!(
                "{} does not fit `{name}`, which is {}",
                describe(expr, &from),
                ty.spec_text()
            ),
        );
    }
}

fn describe(expr: &Expr, ty: &Type) -> String {
    match expr {
        Expr::Path { root, fields } => format!(
            "`${}.{}` ({})",
            root.value,
            fields.first().map_or("", |f| f.as_str()),
            ty.spec_text()
        ),
        Expr::Now { .. } => "`$now` (timestamp)".into(),
        Expr::Int(n) => format!("`{n}`"),
        Expr::Bool(b) => format!("`{b}`"),
        Expr::Text(text) => format!("`{text:?}`"),
        Expr::Caller | Expr::CallerRoles | Expr::Id => String::new(),
    }
}

/// Whether a value of type `from` can fill a place of type `to`: the same kind of value (any
/// text-like types, any whole numbers; their bounds are checked when the value is known), and
/// never a value that may be missing where one is required.
pub(crate) fn assignable(from: &Type, to: &Type) -> Result<(), String> {
    match (from, to) {
        (Type::Optional(from), Type::Optional(to)) => assignable(from, to),
        (from, Type::Optional(to)) => assignable(from, to),
        (Type::Optional(_), _) => Err("it may be missing, and the field is required".into()),
        (Type::List(from), Type::List(to)) => assignable(from, to),
        (Type::Message(a), Type::Message(b)) if a == b => Ok(()),
        (from, to) if kind(from).is_some() && kind(from) == kind(to) => Ok(()),
        (_, to) => Err(format!("the field is {}", to.spec_text())),
    }
}

/// The kind of a plain value, bounds and formats aside.
fn kind(ty: &Type) -> Option<&'static str> {
    Some(match ty {
        Type::String { .. } | Type::Text | Type::Email | Type::Enum(_) => "text",
        Type::Int { .. } => "int",
        Type::Bool => "bool",
        Type::Uuid => "uuid",
        Type::Timestamp => "timestamp",
        _ => return None,
    })
}

/// The names an SQL statement of a consumer can use, with their types: `now`, `new_id`, the
/// service's constants and the event's fields.
pub(crate) fn sql_scope(service: &Service, event: &Event) -> BTreeMap<String, Type> {
    let mut scope = BTreeMap::new();
    scope.insert("now".to_owned(), Type::Timestamp);
    scope.insert("new_id".to_owned(), Type::Uuid);
    for (name, _) in &service.constants {
        scope.insert(name.value.clone(), Type::INT);
    }
    for field in &event.fields {
        scope.insert(field.name.value.clone(), field.ty.clone());
    }
    scope
}

fn check_sql(service: &Service, event: &Event, sql: &str, span: Span, d: &mut Diagnostics) {
    let scope = sql_scope(service, event);
    for param in crate::rpc::sql_params(sql) {
        if !scope.contains_key(&param) {
            let at = d.span_within(span, sql, &format!(":{param}"));
            d.error(
                at,
                format!(
                    "the SQL uses `:{param}`, which is not a field of event `{}`",
                    event.name.value
                ),
            )
            .hint(
                did_you_mean(&param, scope.keys().map(String::as_str)).unwrap_or_else(|| {
                    format!(
                        "parameters: {}",
                        scope
                            .keys()
                            .map(|k| format!("`:{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }),
            );
        }
    }
}

pub(super) fn check_emit(
    scope: &Scope,
    emitted: &Event,
    with: &[(Name, Expr)],
    at: Span,
    d: &mut Diagnostics,
) {
    for (name, _) in with {
        if emitted.field(&name.value).is_none() {
            d.error(
                name.span,
                format!(
                    "event `{}` has no field `{}`",
                    emitted.name.value, name.value
                ),
            )
            .with_hint_opt_mut(did_you_mean(
                &name.value,
                emitted.fields.iter().map(|f| f.name.as_str()),
            ));
        }
    }
    for field in &emitted.fields {
        match with.iter().find(|(n, _)| n.value == field.name.value) {
            Some((name, expr)) => {
                check_value(scope, &field.name.value, &field.ty, expr, name.span, d)
            }
            None => match scope
                .event
                .and_then(|consumed| consumed.field(&field.name.value))
            {
                Some(same) => {
                    if let Err(problem) = assignable(&same.ty, &field.ty) {
                        d.error(
                            at,
                            format!(
                                "`{}` of event `{}` cannot take `$event.{}` ({}): {problem}",
                                field.name.value,
                                emitted.name.value,
                                field.name.value,
                                same.ty.spec_text()
                            ),
                        );
                    }
                }
                None if matches!(field.ty, Type::Optional(_)) => {}
                None => match scope.event {
                    Some(consumed) => {
                        d.error(
                            at,
                            format!(
                                "emitting `{}` needs `{}`, and event `{}` has no field of that name",
                                emitted.name.value, field.name.value, consumed.name.value
                            ),
                        )
                        .hint(format!(
                            "give it in `with:`, e.g. `with: {{ {}: $event.<field> }}`",
                            field.name.value
                        ));
                    }
                    None => {
                        d.error(
                            at,
                            format!(
                                "the job does not say what `{}` of event `{}` is",
                                field.name.value, emitted.name.value
                            ),
                        )
                        .hint(format!(
                            "add it to `with:`, e.g. `with: {{ {}: ... }}`",
                            field.name.value
                        ));
                    }
                },
            },
        }
    }
}
