//! Routes lowered: each with the entity it works on, the event it emits (each payload field
//! with its column), its steps with the RPCs they call, and, for a service the gateway reaches
//! over gRPC, the route as an RPC.

use super::{event, record_of, resolved};
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
    /// The fields of the route's body.
    pub input: Vec<Field>,
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
    /// The fields of its body: its own `input`, or the entity's fields.
    pub input: Vec<Field>,
    /// The event it emits after its change, with where each field comes from.
    pub emit: Option<EmitIr<'m>>,
    /// Its steps, in order, with the RPCs they call.
    pub steps: Vec<StepIr<'m>>,
    /// The values `set` gives columns of the created row.
    pub set: Vec<(&'m Name, ValueIr<'m>)>,
    /// Its path's parameters, in order.
    pub params: Vec<ParamIr<'m>>,
}

/// A parameter of a route's path.
#[derive(Debug)]
pub struct ParamIr<'m> {
    /// Its name, which is its column's.
    pub name: &'m str,
    /// The column it names: `None` for the row's `id`.
    pub column: Option<Column>,
    /// The entity of the service whose row the field references (`{post_id}` of a comment):
    /// the caller must see that row for the route to answer.
    pub parent: Option<&'m Entity>,
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
        amount_cents: Box<ValueIr<'m>>,
        /// The card number (none: the charge goes on account).
        card: Option<Box<ValueIr<'m>>>,
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
    /// Each request field given a value, with the value.
    pub with: Vec<(&'m Field, ValueIr<'m>)>,
}

impl CallIr<'_> {
    /// Whether every field of the request is given a value.
    pub fn is_complete(&self) -> bool {
        self.with.len() == self.rpc.request.len()
    }
}

/// A value in a route's steps or `set`, typed, with where it is read from.
#[derive(Debug)]
pub struct ValueIr<'m> {
    /// The value as the spec writes it.
    pub expr: &'m Expr,
    /// Its type (for a path, the type of what it reaches; optional when it crosses an optional
    /// value).
    pub ty: Type,
    /// Where it is read from.
    pub source: ValueSource,
}

/// Where a value of a route's steps is read from.
#[derive(Debug)]
pub enum ValueSource {
    /// `$caller`, `$id` or a literal.
    Direct,
    /// A path into the request body: each field on the way with the type it is declared with.
    Input(Vec<Field>),
    /// A parameter of the route's path (`$post_id`), held in a local of its name.
    PathParam(String),
    /// A field of an earlier step's result (in protobuf form).
    StepResult {
        /// The step's name (`as:`).
        step: String,
        /// The service the step calls (whose contract the result belongs to).
        service: String,
        /// The field of the RPC's response (boxed: a field is large beside the other sources).
        field: Box<Field>,
    },
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
        .filter(|route| crate::rpc::carried_over_grpc(route))
        .map(|route| {
            let field = |name: &str, ty: Type| {
                Field::plain(
                    Name {
                        value: name.to_owned(),
                        span: route.span,
                    },
                    ty,
                )
            };
            let text = || Type::String {
                min: None,
                max: None,
            };
            let entity = route.entity.value.as_str();
            let row = || field(entity, Type::Message(entity.to_owned()));
            // A change carries the route's `If-Match` header as sent.
            let if_match = || field(crate::rpc::IF_MATCH, Type::Optional(Box::new(text())));
            let (request, response) =
                match route.operation {
                    Operation::Create => (crate::rpc::route_input(service, route), vec![row()]),
                    // A list: its page, and the rest of the route's query string (filters,
                    // search, sort, total) as sent.
                    Operation::List => (
                        vec![
                            field("limit", Type::Optional(Box::new(Type::INT))),
                            field("cursor", Type::Optional(Box::new(text()))),
                            field("query", Type::Optional(Box::new(text()))),
                        ],
                        vec![
                            field(
                                "items",
                                Type::List(Box::new(Type::Message(entity.to_owned()))),
                            ),
                            field("next_cursor", Type::Optional(Box::new(text()))),
                            field("total", Type::Optional(Box::new(Type::INT))),
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
                        request.push(if_match());
                        (request, vec![row()])
                    }
                    Operation::Delete => (vec![field("id", Type::Uuid), if_match()], Vec::new()),
                };
            let handler = crate::ident::handler_name(&service.routes, route).to_string();
            let name = crate::ident::to_pascal(handler.trim_start_matches("r#"));
            RouteRpc {
                route,
                entity: resolved(service.entity(&route.entity.value), &route.entity),
                input: crate::rpc::route_input(service, route),
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
                let column = entity.event_source(&field.name.value);
                (field, resolved(column, &field.name))
            })
            .collect();
        EmitIr { event, sources }
    });
    let value =
        |before: &'m [Step], expr: &'m Expr| lower_value(system, service, route, before, expr);
    let call = |before: &'m [Step], call: &'m Call| {
        let (target, rpc, with) = super::call_values(system, call, |expr| value(before, expr));
        CallIr {
            model: call,
            service: target,
            rpc,
            with,
        }
    };
    let steps = route
        .steps
        .iter()
        .enumerate()
        .map(|(index, step)| {
            let before = &route.steps[..index];
            StepIr {
                model: step,
                action: match &step.action {
                    StepAction::Call(target) => StepActionIr::Call(call(before, target)),
                    StepAction::Pay { amount_cents, card } => StepActionIr::Pay {
                        amount_cents: Box::new(value(before, amount_cents)),
                        card: match card {
                            Expr::Text(text) if text.is_empty() => None,
                            card => Some(Box::new(value(before, card))),
                        },
                    },
                },
                undo: step.undo.as_ref().map(|undo| call(before, undo)),
            }
        })
        .collect();
    let set = route
        .set
        .iter()
        .map(|(column, expr)| (column, value(&route.steps, expr)))
        .collect();
    let params = route
        .params()
        .into_iter()
        .map(|name| {
            let column = (name != "id").then(|| entity.column(name)).flatten();
            let parent = entity
                .fields
                .iter()
                .find(|f| f.name.value == name)
                .and_then(|f| f.rules.references.as_ref())
                .and_then(|reference| service.entity(&reference.entity.value));
            ParamIr {
                name,
                column,
                parent,
            }
        })
        .collect();
    RouteIr {
        model: route,
        entity,
        input: crate::rpc::route_input(service, route),
        emit,
        steps,
        set,
        params,
    }
}

/// `expr` of `route`, typed given the steps `before` it, with its source resolved.
fn lower_value<'m>(
    system: &'m System,
    service: &'m Service,
    route: &'m Route,
    before: &'m [Step],
    expr: &'m Expr,
) -> ValueIr<'m> {
    let typed = crate::rpc::expr_type(system, service, route, before, expr)
        .unwrap_or_else(|problem| panic!("validation let through a value it rejects: {problem}"));
    let source = match expr {
        Expr::Path { root, fields } if root.value == "input" => {
            let input = crate::rpc::route_input(service, route);
            let mut segments: Vec<Field> = Vec::new();
            for name in fields {
                let found = match segments.last() {
                    None => input.iter().find(|f| f.name.value == name.value).cloned(),
                    Some(parent) => record_of(&parent.ty)
                        .and_then(|record| service.record(record))
                        .and_then(|fields| fields.into_iter().find(|f| f.name.value == name.value)),
                };
                segments.push(resolved(found, name));
            }
            ValueSource::Input(segments)
        }
        Expr::Path { root, fields }
            if fields.is_empty() && route.params().contains(&root.value.as_str()) =>
        {
            ValueSource::PathParam(root.value.clone())
        }
        Expr::Path { root, fields } => {
            let step = before
                .iter()
                .find(|s| s.name.as_ref().is_some_and(|n| n.value == root.value));
            let call = step.and_then(|step| match &step.action {
                StepAction::Call(call) => Some(call),
                StepAction::Pay { .. } => None,
            });
            let call = resolved(call, root);
            let (target, rpc) =
                resolved(crate::rpc::find_rpc(system, &call.target), &call.target.rpc);
            let first = &fields[0];
            let field = rpc.response.iter().find(|f| f.name.value == first.value);
            ValueSource::StepResult {
                step: root.value.clone(),
                service: target.name.value.clone(),
                field: Box::new(resolved(field, first).clone()),
            }
        }
        _ => ValueSource::Direct,
    };
    ValueIr {
        expr,
        ty: typed.ty,
        source,
    }
}
