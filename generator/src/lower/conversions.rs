//! The protobuf conversions a service crate needs (`ToProto`, `FromProto`), known before
//! anything is rendered: what its gRPC servers, its transcoder and its steps convert, and then
//! what the fields of those conversions convert in turn.

use super::{
    RouteIr, RouteRpc, RpcBacking, RpcIr, RpcRouteIr, StepActionIr, ValueSource, record_of,
};
use crate::model::{Field, Operation, Service, System, Type};
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
/// gRPC servers, its transcoder and its steps convert (read from the service lowered so far:
/// its routes, RPCs and routes as RPCs), and then what the fields of those conversions convert
/// in turn.
pub(super) fn needed(
    system: &System,
    service: &Service,
    routes: &[RouteIr],
    rpcs: &[RpcIr],
    route_rpcs: &[RouteRpc],
    rpc_routes: &[RpcRouteIr],
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
        let entity = &rpc.entity.name.value;
        need(Direction::ToProto, entity, own, entity);
        need(Direction::FromProto, entity, own, entity);
        let carried: Vec<Type> = match rpc.route.operation {
            Operation::Create => rpc.request.iter().map(|f| f.ty.clone()).collect(),
            Operation::Update => rpc.input.iter().map(|f| f.ty.required().clone()).collect(),
            Operation::List | Operation::Get | Operation::Delete => Vec::new(),
        };
        for record in carried.iter().filter_map(record_of) {
            need(Direction::ToProto, record, own, record);
            need(Direction::FromProto, record, own, record);
        }
    }
    // The service's own RPCs: rows of a `get`, and response fields filled by SQL.
    for rpc in rpcs {
        match &rpc.backing {
            RpcBacking::Row(entity) => {
                need(
                    Direction::ToProto,
                    &entity.name.value,
                    own,
                    &entity.name.value,
                );
            }
            // The user's code works with the protobuf types themselves.
            RpcBacking::Account(_) | RpcBacking::Custom(_) => {}
            RpcBacking::Statements(statements) => {
                let rows = statements
                    .iter()
                    .filter_map(|s| s.into.as_ref()?.1.as_ref());
                for column in rows.flatten() {
                    if let Some(record) = record_of(&column.ty) {
                        need(Direction::ToProto, record, own, record);
                    }
                }
            }
        }
    }
    // Steps: requests built from plain values, and step results set on the row.
    for route in routes {
        let calls = route.steps.iter().flat_map(|step| {
            let call = match &step.action {
                StepActionIr::Call(call) => Some(call),
                StepActionIr::Pay { .. } => None,
            };
            call.into_iter().chain(step.undo.as_ref())
        });
        for call in calls {
            for (field, value) in &call.with {
                if !matches!(value.source, ValueSource::StepResult { .. })
                    && let (Some(a), Some(b)) = (record_of(&value.ty), record_of(&field.ty))
                {
                    need(Direction::ToProto, a, &call.service.name.value, b);
                }
            }
        }
        for (column, value) in &route.set {
            if let ValueSource::StepResult { service, field, .. } = &value.source
                && let Some(column) = route.entity.column(&column.value)
                && let (Some(a), Some(b)) = (record_of(&column.ty), record_of(&field.ty))
            {
                need(Direction::FromProto, a, service, b);
            }
        }
    }
    // Routes backed by an RPC: the body sent as the request, the response read back. The
    // messages they carry have the same names on both sides (validation checks they fit).
    for route in rpc_routes {
        let target = &route.service.name.value;
        for record in route.body.iter().filter_map(|f| record_of(&f.ty)) {
            need(Direction::ToProto, record, target, record);
        }
        for record in route.rpc.response.iter().filter_map(|f| record_of(&f.ty)) {
            need(Direction::FromProto, record, target, record);
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
