//! The protobuf conversions a service crate needs (`ToProto`, `FromProto`), known before
//! anything is rendered: what its gRPC servers, its transcoder and its steps convert, and then
//! what the fields of those conversions convert in turn.

use super::{RouteRpc, record_of};
use crate::model::{
    Capability, Expr, Field, Operation, RpcKind, Service, StepAction, System, Type,
};
use crate::rpc::{expr_type, find_rpc, route_input};
use std::collections::{BTreeMap, BTreeSet};

/// Which way a conversion goes between a plain type of this crate and a protobuf message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// A plain value of the crate to a protobuf message (`ToProto`).
    ToProto,
    /// A protobuf message to a plain value of the crate (`FromProto`).
    FromProto,
}

/// A conversion the generated code needs: a record of this service and a message of some
/// service's contract, with fields matched by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pair {
    /// Which way it goes.
    pub direction: Direction,
    /// The plain record of this service.
    pub record: String,
    /// The service whose contract has the message.
    pub proto_service: String,
    /// The message.
    pub proto_record: String,
}

/// Every conversion the crate of `service` needs, known before anything is rendered: what its
/// gRPC servers, its transcoder and its steps convert, and then what the fields of those
/// conversions convert in turn.
pub(super) fn needed(
    system: &System,
    service: &Service,
    route_rpcs: &[RouteRpc],
) -> BTreeMap<Pair, Conversion> {
    let mut pairs = BTreeSet::new();
    let own = service.name.value.as_str();
    let mut need = |direction: Direction, record: &str, proto_service: &str, proto_record: &str| {
        pairs.insert(Pair {
            direction,
            record: record.to_owned(),
            proto_service: proto_service.to_owned(),
            proto_record: proto_record.to_owned(),
        });
    };
    // The routes as RPCs: the transcoder sends inputs and reads rows, the server reads inputs
    // and sends rows.
    for rpc in route_rpcs {
        let route = rpc.route;
        let entity = &route.entity.value;
        need(Direction::ToProto, entity, own, entity);
        need(Direction::FromProto, entity, own, entity);
        let carried: Vec<Type> = match route.operation {
            Operation::Create => rpc.request.iter().map(|f| f.ty.clone()).collect(),
            Operation::Update => route_input(service, route)
                .iter()
                .map(|f| f.ty.required().clone())
                .collect(),
            Operation::List | Operation::Get | Operation::Delete => Vec::new(),
        };
        for record in carried.iter().filter_map(record_of) {
            need(Direction::ToProto, record, own, record);
            need(Direction::FromProto, record, own, record);
        }
    }
    // The service's own RPCs: rows of a `get`, and response fields filled by SQL.
    for rpc in &service.rpcs {
        match &rpc.kind {
            RpcKind::Get { record } if service.uses != Some(Capability::Auth) => {
                need(Direction::ToProto, &record.value, own, &record.value);
            }
            RpcKind::Get { .. } => {}
            RpcKind::Sql(statements) => {
                let filled = statements
                    .iter()
                    .filter_map(|s| s.into.as_ref())
                    .filter_map(|into| rpc.response.iter().find(|f| f.name.value == into.value));
                for field in filled {
                    let row_record = match field.ty.required() {
                        Type::List(inner) => record_of(inner),
                        Type::Message(name) => Some(name.as_str()),
                        _ => None,
                    };
                    let columns = row_record.and_then(|record| service.record(record));
                    for column in columns.iter().flatten() {
                        if let Some(record) = record_of(&column.ty) {
                            need(Direction::ToProto, record, own, record);
                        }
                    }
                }
            }
        }
    }
    // Steps: requests built from plain values, and step results set on the row.
    for route in &service.routes {
        for (index, step) in route.steps.iter().enumerate() {
            let before = &route.steps[..index];
            let calls = match &step.action {
                StepAction::Call(call) => vec![call],
                StepAction::Pay { .. } => Vec::new(),
            };
            for call in calls.into_iter().chain(step.undo.as_ref()) {
                let Some((target, rpc)) = find_rpc(system, &call.target) else {
                    continue;
                };
                for (name, expr) in &call.with {
                    let field = rpc.request.iter().find(|f| f.name.value == name.value);
                    let typed = expr_type(system, service, route, before, expr);
                    if let (Some(field), Ok(typed), true) =
                        (field, typed, !expr.reads_step_result())
                        && let (Some(a), Some(b)) = (record_of(&typed.ty), record_of(&field.ty))
                    {
                        need(Direction::ToProto, a, &target.name.value, b);
                    }
                }
            }
        }
        for (column, expr) in &route.set {
            let Expr::Path { root, fields } = expr else {
                continue;
            };
            let call = route.steps.iter().find_map(|step| match &step.action {
                StepAction::Call(call)
                    if step.name.as_ref().is_some_and(|n| n.value == root.value) =>
                {
                    Some(call)
                }
                _ => None,
            });
            let entity = service.entity(&route.entity.value);
            let column = entity.and_then(|e| e.column(&column.value));
            let target = call.and_then(|call| find_rpc(system, &call.target));
            if let (Some(column), Some((target, rpc)), Some(first)) =
                (column, target, fields.first())
                && let Some(field) = rpc.response.iter().find(|f| f.name.value == first.value)
                && let (Some(a), Some(b)) = (record_of(&column.ty), record_of(&field.ty))
            {
                need(Direction::FromProto, a, &target.name.value, b);
            }
        }
    }
    with_nested(system, service, pairs)
}

/// The fields a conversion matches by name: the plain record's and the protobuf message's.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The plain record's fields.
    pub plain: Vec<Field>,
    /// The message's fields.
    pub proto: Vec<Field>,
}

/// `pairs` and, transitively, the conversions their message fields need, each with the fields
/// it converts.
fn with_nested(
    system: &System,
    service: &Service,
    pairs: BTreeSet<Pair>,
) -> BTreeMap<Pair, Conversion> {
    let mut resolved = BTreeMap::new();
    let mut pending: Vec<Pair> = pairs.into_iter().collect();
    while let Some(pair) = pending.pop() {
        if resolved.contains_key(&pair) {
            continue;
        }
        let target = system
            .services
            .iter()
            .find(|s| s.name.value == pair.proto_service);
        let fields = Conversion {
            plain: service.record(&pair.record).unwrap_or_default(),
            proto: target
                .and_then(|t| t.record(&pair.proto_record))
                .unwrap_or_default(),
        };
        for plain_field in &fields.plain {
            let Some(proto_field) = fields
                .proto
                .iter()
                .find(|f| f.name.value == plain_field.name.value)
            else {
                continue;
            };
            if let (Some(a), Some(b)) = (record_of(&plain_field.ty), record_of(&proto_field.ty)) {
                pending.push(Pair {
                    direction: pair.direction.clone(),
                    record: a.to_owned(),
                    proto_service: pair.proto_service.clone(),
                    proto_record: b.to_owned(),
                });
            }
        }
        resolved.insert(pair, fields);
    }
    resolved
}
