//! Consumers lowered: each action with the entity, columns and event it works on, the type of
//! every value it writes, and its SQL with positional parameters.

use super::{event, resolved};
use crate::model::{
    Action, Column, Consumer, Entity, Event, Expr, Field, Name, Recipient, Service, System, Type,
    Write,
};

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
    let value = |expr: &Expr| ConsumerValue {
        ty: crate::validate::consumer_value_type(consumed, expr).unwrap_or_else(|problem| {
            panic!("validation let through a value it rejects: {problem}")
        }),
        expr: expr.clone(),
    };
    let actions = consumer
        .actions
        .iter()
        .map(|action| match action {
            Action::Notify { to, kind, message } => ActionIr::Notify { to, kind, message },
            Action::Write(write) => {
                let entity = resolved(service.entity(&write.entity.value), &write.entity);
                let columns = |values: &[(Name, Expr)]| {
                    values
                        .iter()
                        .map(|(name, expr)| {
                            (resolved(entity.column(&name.value), name), value(expr))
                        })
                        .collect()
                };
                ActionIr::Write {
                    model: write,
                    entity,
                    set: columns(&write.set),
                    filter: columns(&write.filter),
                }
            }
            Action::Sql { sql, .. } => {
                let scope = crate::validate::consumer_sql_scope(service, consumed);
                sql_action(service, sql, |name| scope.get(name).cloned())
            }
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
                            None => consumed.field(&field.name.value).map(|_| Expr::Path {
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
        })
        .collect();
    ConsumerIr {
        model: consumer,
        event: consumed,
        actions,
    }
}
