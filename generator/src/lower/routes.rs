//! Routes lowered: each with the entity it works on, the event it emits (each payload field
//! with its column), its steps with the RPCs they call, and, for a service the gateway reaches
//! over gRPC, the route as an RPC.

use super::{event, resolved};
use crate::model::{
    Call, Column, Entity, Event, Expr, Field, Name, Operation, Route, Rpc, Service, Step,
    StepAction, System, Transport, Type,
};

/// A route of a service reached over gRPC, as an RPC of its `<Name>ApiService`.
#[derive(Debug)]
pub struct RouteRpc<'s> {
    /// The route.
    pub route: &'s Route,
    /// The entity the route works on.
    pub entity: &'s Entity,
    /// The RPC's name: the route's handler in PascalCase (`CreateProduct`, `ListProducts`).
    pub name: String,
    /// The request's fields.
    pub request: Vec<Field>,
    /// The response's fields.
    pub response: Vec<Field>,
}

/// A route with its references resolved.
#[derive(Debug)]
pub struct RouteIr<'m> {
    /// The route as the spec declares it.
    pub model: &'m Route,
    /// The entity it works on.
    pub entity: &'m Entity,
    /// The event it emits after its change, with where each field comes from.
    pub emit: Option<EmitIr<'m>>,
    /// Its steps, in order, with the RPCs they call.
    pub steps: Vec<StepIr<'m>>,
}

/// A step of a route, with the RPCs it calls resolved.
#[derive(Debug)]
pub struct StepIr<'m> {
    /// The step as the spec declares it.
    pub model: &'m Step,
    /// What it does.
    pub action: StepActionIr<'m>,
    /// The call that undoes it.
    pub undo: Option<CallIr<'m>>,
}

/// What a step does, with its call resolved.
#[derive(Debug)]
pub enum StepActionIr<'m> {
    /// Calls another service.
    Call(CallIr<'m>),
    /// Takes a payment of `amount_cents` with `card` (through the demo provider).
    Pay {
        /// The amount, in cents.
        amount_cents: &'m Expr,
        /// The card number.
        card: &'m Expr,
    },
}

/// A call of another service's RPC.
#[derive(Debug)]
pub struct CallIr<'m> {
    /// The call as the spec writes it (its target and `with` values).
    pub model: &'m Call,
    /// The service called.
    pub service: &'m Service,
    /// The RPC called.
    pub rpc: &'m Rpc,
}

/// An event a route emits, each payload field paired with the column it is read from.
#[derive(Debug)]
pub struct EmitIr<'m> {
    /// The event.
    pub event: &'m Event,
    /// Each payload field and its column of the row (`note_id` may come from `id`).
    pub sources: Vec<(&'m Field, Column)>,
}

/// The routes of a service reached over gRPC, as RPCs (none for one reached over HTTP).
pub(super) fn route_rpcs(service: &Service) -> Vec<RouteRpc<'_>> {
    if service.transport != Transport::Grpc {
        return Vec::new();
    }
    service
        .routes
        .iter()
        .map(|route| {
            let field = |name: &str, ty: Type| Field {
                name: Name {
                    value: name.to_owned(),
                    span: route.span,
                },
                ty,
            };
            let text = || Type::String {
                min: None,
                max: None,
            };
            let entity = route.entity.value.as_str();
            let row = || field(entity, Type::Message(entity.to_owned()));
            let (request, response) =
                match route.operation {
                    Operation::Create => (crate::rpc::route_input(service, route), vec![row()]),
                    Operation::List => (
                        vec![
                            field("limit", Type::Optional(Box::new(Type::Int))),
                            field("cursor", Type::Optional(Box::new(text()))),
                        ],
                        vec![
                            field(
                                "items",
                                Type::List(Box::new(Type::Message(entity.to_owned()))),
                            ),
                            field("next_cursor", Type::Optional(Box::new(text()))),
                        ],
                    ),
                    Operation::Get => (vec![field("id", Type::Uuid)], vec![row()]),
                    // A patch: the value of each field sent (its type without the optional
                    // wrapper), with the names of the fields sent and of those sent as null.
                    Operation::Update => {
                        let mut request = vec![field("id", Type::Uuid)];
                        request.extend(crate::rpc::route_input(service, route).into_iter().map(
                            |f| Field {
                                ty: f.ty.required().clone(),
                                ..f
                            },
                        ));
                        let names = || Type::List(Box::new(text()));
                        request.push(field(crate::rpc::PATCHED_FIELDS, names()));
                        request.push(field(crate::rpc::NULLED_FIELDS, names()));
                        (request, vec![row()])
                    }
                    Operation::Delete => (vec![field("id", Type::Uuid)], Vec::new()),
                };
            let handler = crate::ident::handler_name(route).to_string();
            let name = crate::ident::to_pascal(handler.trim_start_matches("r#"));
            RouteRpc {
                route,
                entity: resolved(service.entity(&route.entity.value), &route.entity),
                name,
                request,
                response,
            }
        })
        .collect()
}

pub(super) fn lower_route<'m>(
    system: &'m System,
    service: &'m Service,
    route: &'m Route,
) -> RouteIr<'m> {
    let entity = resolved(service.entity(&route.entity.value), &route.entity);
    let emit = route.emit.as_ref().map(|name| {
        let event = resolved(event(system, name), name);
        let sources = event
            .fields
            .iter()
            .map(|field| {
                let column = crate::validate::emit_source(entity, &field.name.value);
                (field, resolved(column, &field.name))
            })
            .collect();
        EmitIr { event, sources }
    });
    let call = |call: &'m Call| {
        let (service, rpc) = resolved(crate::rpc::find_rpc(system, &call.target), &call.target.rpc);
        CallIr {
            model: call,
            service,
            rpc,
        }
    };
    let steps = route
        .steps
        .iter()
        .map(|step| StepIr {
            model: step,
            action: match &step.action {
                StepAction::Call(target) => StepActionIr::Call(call(target)),
                StepAction::Pay { amount_cents, card } => StepActionIr::Pay { amount_cents, card },
            },
            undo: step.undo.as_ref().map(call),
        })
        .collect();
    RouteIr {
        model: route,
        entity,
        emit,
        steps,
    }
}
