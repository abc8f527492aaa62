//! Consumers lowered: each action with the entity, columns and event it works on, the type of
//! every value it writes, and its SQL with positional parameters.

use super::{event, resolved};
use crate::model::{
    Action, Call, Column, Consumer, Entity, Event, Expr, Field, Name, Recipient, Rpc, Service,
    System, Type, Write,
};
use crate::validate::ConsumerScope as Scope;

/// A consumer with the event it consumes and its actions resolved.
#[derive(Debug)]
pub struct ConsumerIr<'m> {
    /// The consumer as the spec declares it.
    pub model: &'m Consumer,
    /// The event.
    pub event: &'m Event,
    /// Its actions, in order.
    pub actions: Vec<ActionIr<'m>>,
}

/// One action of a consumer.
#[derive(Debug)]
pub enum ActionIr<'m> {
    /// A notification (the `notify` capability).
    Notify {
        /// Who receives it.
        to: &'m Recipient,
        /// Its kind.
        kind: &'m Name,
        /// Its message, with `{field}` placeholders.
        message: &'m Name,
    },
    /// A change to rows of an entity of the service.
    Write {
        /// The write as the spec declares it.
        model: &'m Write,
        /// Its entity.
        entity: &'m Entity,
        /// The columns it sets, each with its value.
        set: Vec<(Column, ConsumerValue)>,
        /// The columns that select its rows, each with its value.
        filter: Vec<(Column, ConsumerValue)>,
    },
    /// An SQL statement.
    Sql {
        /// The SQL with `$1, $2, ...` in place of its `:name` parameters.
        sql: String,
        /// Each placeholder's parameter, in number order, with its type.
        params: Vec<(String, Type, SqlParam)>,
    },
    /// An event emitted through the outbox.
    Emit {
        /// The event.
        event: &'m Event,
        /// Every field of it, with its value (none: an optional field left empty).
        fields: Vec<(&'m Field, Option<ConsumerValue>)>,
    },
    /// A call of another service's RPC, made before the transaction.
    Call(CallActionIr<'m>),
}

/// A call of a consumer or a job, with its target resolved.
#[derive(Debug)]
pub struct CallActionIr<'m> {
    /// The call as the spec writes it.
    pub model: &'m Call,
    /// The name later actions read its response by.
    pub name: Option<&'m Name>,
    /// The service called.
    pub service: &'m Service,
    /// The RPC called.
    pub rpc: &'m Rpc,
    /// Each request field given a value, with the value.
    pub with: Vec<(&'m Field, ConsumerValue)>,
    /// The fields of its response that later actions read (`$<name>.<field>`).
    pub read: Vec<&'m Field>,
    /// Those of them that the actions in the transaction read (the others only later calls).
    pub handed: Vec<&'m Field>,
}

/// Where an SQL parameter of a consumer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlParam {
    /// The time the event is applied (`:now`).
    Now,
    /// A fresh UUIDv7 (`:new_id`).
    NewId,
    /// A constant of the service.
    Constant(i64),
    /// A field of the event.
    Event,
}

/// An `sql` action with positional parameters, each from `:now`, `:new_id`, a constant of
/// the service, or else the event (typed by `event_type`).
pub(super) fn sql_action<'m>(
    service: &Service,
    sql: &str,
    event_type: impl Fn(&str) -> Option<Type>,
) -> ActionIr<'m> {
    let (sql, names) = crate::rpc::positional_sql(sql);
    let params = names
        .into_iter()
        .map(|name| {
            let constant = service.constants.iter().find(|(n, _)| n.value == name);
            let source = match (name.as_str(), constant) {
                ("now", _) => SqlParam::Now,
                ("new_id", _) => SqlParam::NewId,
                (_, Some((_, value))) => SqlParam::Constant(*value),
                (_, None) => SqlParam::Event,
            };
            let ty = event_type(&name).unwrap_or(Type::INT);
            (name, ty, source)
        })
        .collect();
    ActionIr::Sql { sql, params }
}

/// A value a consumer writes, with the type it has before it fills its place.
#[derive(Debug, Clone)]
pub struct ConsumerValue {
    /// The value.
    pub expr: Expr,
    /// Its type.
    pub ty: Type,
}

pub(super) fn lower_consumer<'m>(
    system: &'m System,
    service: &'m Service,
    consumer: &'m Consumer,
) -> ConsumerIr<'m> {
    let consumed = resolved(event(system, &consumer.event), &consumer.event);
    ConsumerIr {
        model: consumer,
        event: consumed,
        actions: lower_actions(system, service, Some(consumed), &consumer.actions),
    }
}

/// The actions of a consumer of `consumed`, or of a job (no event), lowered.
pub(super) fn lower_actions<'m>(
    system: &'m System,
    service: &'m Service,
    consumed: Option<&'m Event>,
    actions: &'m [Action],
) -> Vec<ActionIr<'m>> {
    actions
        .iter()
        .enumerate()
        .map(|(index, action)| {
            let scope = Scope::before(system, consumed, &actions[..index]);
            let value = |expr: &Expr| ConsumerValue {
                ty: crate::validate::consumer_value_type(&scope, expr).unwrap_or_else(|problem| {
                    panic!("validation let through a value it rejects: {problem}")
                }),
                expr: expr.clone(),
            };
            lower_action(
                system,
                service,
                consumed,
                &actions[index + 1..],
                action,
                value,
            )
        })
        .collect()
}

fn lower_action<'m>(
    system: &'m System,
    service: &'m Service,
    consumed: Option<&'m Event>,
    after: &'m [Action],
    action: &'m Action,
    value: impl Fn(&Expr) -> ConsumerValue,
) -> ActionIr<'m> {
    match action {
        Action::Notify { to, kind, message } => ActionIr::Notify { to, kind, message },
        Action::Write(write) => {
            let entity = resolved(service.entity(&write.entity.value), &write.entity);
            let columns = |values: &[(Name, Expr)]| {
                values
                    .iter()
                    .map(|(name, expr)| (resolved(entity.column(&name.value), name), value(expr)))
                    .collect()
            };
            ActionIr::Write {
                model: write,
                entity,
                set: columns(&write.set),
                filter: columns(&write.filter),
            }
        }
        Action::Sql { sql, .. } => match consumed {
            Some(consumed) => {
                let scope = crate::validate::consumer_sql_scope(service, consumed);
                sql_action(service, sql, |name| scope.get(name).cloned())
            }
            // A job has no event: validation let only `:now`, `:new_id` and constants through.
            None => sql_action(service, sql, |_| None),
        },
        Action::Emit { event: name, with } => {
            let emitted = resolved(event(system, name), name);
            let fields = emitted
                .fields
                .iter()
                .map(|field| {
                    let given = with.iter().find(|(n, _)| n.value == field.name.value);
                    let expr = match given {
                        Some((_, expr)) => Some(expr.clone()),
                        // A field left out is the consumed event's field of its name; an
                        // optional one the consumed event lacks stays empty.
                        None => consumed
                            .and_then(|consumed| consumed.field(&field.name.value))
                            .map(|_| Expr::Path {
                                root: Name {
                                    value: "event".into(),
                                    span: field.name.span,
                                },
                                fields: vec![field.name.clone()],
                            }),
                    };
                    (field, expr.map(|expr| value(&expr)))
                })
                .collect();
            ActionIr::Emit {
                event: emitted,
                fields,
            }
        }
        Action::Call { call, name } => {
            let (target, rpc, with) = super::call_values(system, call, value);
            // The response fields later actions read, each converted once; those the
            // transaction's actions read are handed to it.
            let reads = |actions: &[&Action], field: &Field| {
                name.as_ref()
                    .is_some_and(|name| reads_result(actions, &name.value, &field.name.value))
            };
            let later: Vec<&Action> = after.iter().collect();
            let changes: Vec<&Action> = after
                .iter()
                .filter(|a| !matches!(a, Action::Call { .. }))
                .collect();
            let read = rpc.response.iter().filter(|f| reads(&later, f)).collect();
            let handed = rpc.response.iter().filter(|f| reads(&changes, f)).collect();
            ActionIr::Call(CallActionIr {
                model: call,
                name: name.as_ref(),
                service: target,
                rpc,
                with,
                read,
                handed,
            })
        }
    }
}

/// Whether any of `actions` reads `$<call>.<field>`.
fn reads_result(actions: &[&Action], call: &str, field: &str) -> bool {
    let reads = |values: &[(Name, Expr)]| {
        values.iter().any(|(_, expr)| {
            matches!(expr, Expr::Path { root, fields } if root.value == call && fields.first().is_some_and(|f| f.value == field))
        })
    };
    actions.iter().any(|action| match action {
        Action::Write(write) => reads(&write.set) || reads(&write.filter),
        Action::Emit { with, .. } => reads(with),
        Action::Call { call, .. } => reads(&call.with),
        Action::Notify { .. } | Action::Sql { .. } => false,
    })
}
