//! Stage 4, lower: the validated model becomes the IR that plan and render read. What a
//! generation derives from the spec is computed here, once: each service's store engine and
//! migration engines, its routes with their entity, event and steps ([`routes`]), its RPCs
//! with what backs them and the parameters of their SQL ([`rpcs`]), its consumers' actions
//! ([`consumers`]), the protobuf conversions
//! its crate needs ([`conversions`]), its routes as RPCs and its gRPC contract. Plan and render
//! take these as handles and do not look them up by name.

mod consumers;
mod conversions;
mod gateway;
mod jobs;
mod routes;
mod rpc_routes;
mod rpcs;

pub use consumers::{ActionIr, CallActionIr, ConsumerIr, ConsumerValue, SqlParam};
pub use conversions::{Conversion, Direction, Pair};
pub use gateway::{GatewayRoute, RouteLimits};
pub use jobs::JobIr;
pub use routes::{
    CallIr, EmitIr, ParamIr, RouteIr, RouteRpc, StepActionIr, StepIr, ValueIr, ValueSource,
};
pub use rpc_routes::RpcRouteIr;
pub use rpcs::{Param, ParamSource, RpcBacking, RpcIr, StatementIr};

use crate::contract::{self, ProtoFile};
use crate::evolve::{Evolution, ServiceMigrations};
use crate::model::{Engine, Event, Name, Service, System, Type};
use std::collections::BTreeMap;

/// A validated system, lowered.
#[derive(Debug)]
pub struct Ir<'m> {
    /// The model it was lowered from.
    pub system: &'m System,
    /// One per service, in spec order.
    pub services: Vec<ServiceIr<'m>>,
    /// Per event, the services that produce it and those that consume it, in spec order.
    pub parties: BTreeMap<&'m str, Parties<'m>>,
    /// The gateway's route table, ordered by path then method.
    pub gateway_routes: Vec<GatewayRoute>,
}

/// The services that produce an event and those that consume it.
#[derive(Debug, Default)]
pub struct Parties<'m> {
    /// Producers, in spec order.
    pub producers: Vec<&'m str>,
    /// Consumers, in spec order.
    pub consumers: Vec<&'m str>,
}

/// One service, with what is derived from it.
#[derive(Debug)]
pub struct ServiceIr<'m> {
    /// The service as the spec declares it.
    pub model: &'m Service,
    /// The engine of its store in distributed mode (SQLite for a service without a store).
    pub engine: Engine,
    /// The engines its own tables have migrations for: SQLite (embedded runs) and, when
    /// another, its store's distributed engine. Empty when it has no entity (a capability's
    /// tables are the runtime's).
    pub migration_engines: Vec<Engine>,
    /// Its migrations per engine and the schema they build ([`crate::evolve`]).
    pub migrations: ServiceMigrations,
    /// Its routes, each with the entity it works on and the event it emits.
    pub routes: Vec<RouteIr<'m>>,
    /// Its routes backed by an RPC, each with the RPC it calls.
    pub rpc_routes: Vec<RpcRouteIr<'m>>,
    /// Its consumers, each with the event it consumes.
    pub consumers: Vec<ConsumerIr<'m>>,
    /// Its scheduled jobs.
    pub jobs: Vec<JobIr<'m>>,
    /// The RPCs it serves, with what backs each.
    pub rpcs: Vec<RpcIr<'m>>,
    /// Its routes as RPCs, when the gateway reaches it over gRPC (else empty).
    pub route_rpcs: Vec<RouteRpc<'m>>,
    /// Its gRPC contract, when it serves RPCs or is reached over gRPC.
    pub contract: Option<ProtoFile>,
    /// The protobuf conversions its crate needs, each with the fields it matches.
    pub conversions: BTreeMap<Pair, Conversion>,
}

impl Ir<'_> {
    /// The producers and consumers of `event` (none when nobody produces or consumes it).
    pub fn parties(&self, event: &str) -> (&[&str], &[&str]) {
        self.parties.get(event).map_or((&[], &[]), |p| {
            (p.producers.as_slice(), p.consumers.as_slice())
        })
    }

    /// Whether any service has a gRPC contract.
    pub fn has_contracts(&self) -> bool {
        self.services.iter().any(|s| s.contract.is_some())
    }
}

/// Lowers a validated `system` whose services have never been generated before (each
/// service's first migration holds its whole schema).
pub fn lower(system: &System) -> Ir<'_> {
    let evolution = crate::evolve::evolve(system, &crate::evolve::History::default(), "")
        .expect("a first generation has nothing to migrate from");
    lower_evolved(system, evolution)
}

/// Lowers a validated `system` with the migrations [`crate::evolve::evolve`] planned.
pub fn lower_evolved(system: &System, mut evolution: Evolution) -> Ir<'_> {
    let services = system
        .services
        .iter()
        .map(|service| {
            let engine = store_engine(system, service);
            let migrations = evolution
                .services
                .remove(&service.name.value)
                .unwrap_or_default();
            let migration_engines = migrations.engines.clone();
            let route_rpcs = routes::route_rpcs(service);
            let rpcs: Vec<RpcIr> = service
                .rpcs
                .iter()
                .map(|rpc| rpcs::lower_rpc(system, service, rpc))
                .collect();
            let routes: Vec<RouteIr> = service
                .routes
                .iter()
                .map(|route| routes::lower_route(system, service, route))
                .collect();
            let rpc_routes = rpc_routes::lower_rpc_routes(system, service);
            let conversions =
                conversions::needed(system, service, &routes, &rpcs, &route_rpcs, &rpc_routes);
            ServiceIr {
                model: service,
                engine,
                migration_engines,
                migrations,
                routes,
                rpc_routes,
                consumers: service
                    .consumers
                    .iter()
                    .map(|consumer| consumers::lower_consumer(system, service, consumer))
                    .collect(),
                jobs: service
                    .jobs
                    .iter()
                    .map(|job| jobs::lower_job(system, service, job))
                    .collect(),
                rpcs,
                contract: contract::proto_file(system, service, &route_rpcs).map(|mut file| {
                    // A contract already written keeps its field numbers.
                    if let Some(previous) = evolution.contracts.get(&file.path) {
                        file.renumber(previous);
                    }
                    file
                }),
                conversions,
                route_rpcs,
            }
        })
        .collect();
    let mut parties: BTreeMap<&str, Parties> = BTreeMap::new();
    for service in &system.services {
        let name = service.name.as_str();
        let mut produced: Vec<&str> = service.emitted_events().map(Name::as_str).collect();
        produced.dedup();
        for event in produced {
            let producers = &mut parties.entry(event).or_default().producers;
            if !producers.contains(&name) {
                producers.push(name);
            }
        }
        for consumer in &service.consumers {
            let consumers = &mut parties
                .entry(consumer.event.as_str())
                .or_default()
                .consumers;
            if !consumers.contains(&name) {
                consumers.push(name);
            }
        }
    }
    Ir {
        system,
        services,
        parties,
        gateway_routes: gateway::gateway_routes(system),
    }
}

pub(super) fn event<'m>(system: &'m System, name: &Name) -> Option<&'m Event> {
    system.events.iter().find(|e| e.name.value == name.value)
}

/// What a reference of a validated model names. Validation reports every reference that
/// names nothing, so reaching the panic is a bug of the validator, never of the spec.
pub(super) fn resolved<T>(found: Option<T>, reference: &Name) -> T {
    found.unwrap_or_else(|| {
        panic!(
            "validation let through `{}` at {}:{}, which names nothing",
            reference.value, reference.span.line, reference.span.col
        )
    })
}

/// The service and RPC `call` reaches, and each request field it gives with its value, in the
/// request's order.
pub(super) fn call_values<'m, V>(
    system: &'m System,
    call: &'m crate::model::Call,
    value: impl Fn(&'m crate::model::Expr) -> V,
) -> (
    &'m Service,
    &'m crate::model::Rpc,
    Vec<(&'m crate::model::Field, V)>,
) {
    let (target, rpc) = resolved(crate::rpc::find_rpc(system, &call.target), &call.target.rpc);
    let with = rpc
        .request
        .iter()
        .filter_map(|field| {
            let (_, expr) = call
                .with
                .iter()
                .find(|(n, _)| n.value == field.name.value)?;
            Some((field, value(expr)))
        })
        .collect();
    (target, rpc, with)
}

/// The message a type names, through lists and options.
pub(crate) fn record_of(ty: &Type) -> Option<&str> {
    match ty {
        Type::Message(name) => Some(name),
        Type::List(inner) | Type::Optional(inner) => record_of(inner),
        _ => None,
    }
}

/// The engine of a service's store in distributed mode; SQLite for a service without a store.
pub(crate) fn store_engine(system: &System, service: &Service) -> Engine {
    service
        .store
        .as_ref()
        .and_then(|store| system.stores.iter().find(|st| st.name.value == store.value))
        .map_or(Engine::Sqlite, |st| st.engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lowered(spec: &str) -> Vec<(String, Engine, Vec<Engine>, bool)> {
        let checked = crate::check(spec).unwrap_or_else(|problems| panic!("{problems:?}"));
        let ir = lower(&checked.system);
        ir.services
            .iter()
            .map(|s| {
                (
                    s.model.name.value.clone(),
                    s.engine,
                    s.migration_engines.clone(),
                    s.contract.is_some(),
                )
            })
            .collect()
    }

    #[test]
    fn each_service_gets_its_engine_its_migration_engines_and_its_contract_once() {
        let spec = "system: depot
stores:
  crate_db: { engine: mysql }
  label_db: { engine: sqlite }
services:
  crates:
    store: crate_db
    entities:
      parcel: { fields: { name: string } }
    routes:
      POST /parcels: { create: parcel, public: true }
    rpc:
      GetParcel: { get: parcel }
  labels:
    store: label_db
    transport: grpc
    entities:
      label: { fields: { text: string } }
    routes:
      GET /labels/{id}: { get: label, public: true }
";
        assert_eq!(
            lowered(spec),
            vec![
                (
                    "crates".into(),
                    Engine::Mysql,
                    vec![Engine::Sqlite, Engine::Mysql],
                    true
                ),
                ("labels".into(), Engine::Sqlite, vec![Engine::Sqlite], true),
            ]
        );
    }

    #[test]
    fn a_saga_route_is_lowered_with_its_calls_and_the_source_of_every_value() {
        let checked = crate::check(include_str!("../../../examples/shop.yaml"))
            .unwrap_or_else(|problems| panic!("{problems:?}"));
        let ir = lower(&checked.system);
        let order = ir
            .services
            .iter()
            .find(|s| s.model.name.value == "order")
            .expect("the shop has an order service");
        let create = &order.routes[0];
        assert_eq!(create.entity.name.value, "order");
        assert_eq!(
            create.emit.as_ref().map(|e| e.event.name.as_str()),
            Some("order.created")
        );
        let source = |value: &ValueIr| match &value.source {
            ValueSource::Direct => "direct".to_string(),
            ValueSource::PathParam(name) => format!("path.{name}"),
            ValueSource::Input(path) => {
                let names: Vec<&str> = path.iter().map(|f| f.name.as_str()).collect();
                format!("input.{}", names.join("."))
            }
            ValueSource::StepResult { step, field, .. } => format!("{step}.{}", field.name.value),
        };
        let calls: Vec<String> = create
            .steps
            .iter()
            .map(|step| match &step.action {
                StepActionIr::Call(call) => {
                    let with: Vec<String> = call
                        .with
                        .iter()
                        .map(|(field, value)| format!("{}={}", field.name.value, source(value)))
                        .collect();
                    format!(
                        "{}.{}({}) undo: {}",
                        call.service.name.value,
                        call.rpc.name.value,
                        with.join(", "),
                        step.undo.as_ref().map_or("-", |u| u.rpc.name.as_str())
                    )
                }
                StepActionIr::Pay { amount_cents, card } => format!(
                    "pay({}, {})",
                    source(amount_cents),
                    card.as_ref().map_or("-".into(), |c| source(c))
                ),
            })
            .collect();
        assert_eq!(
            calls,
            [
                "user.GetUser(id=direct) undo: -",
                "product.ReserveStock(order_id=direct, items=input.items) undo: ReleaseStock",
                "pay(reserved.total_cents, input.payment.card)",
                "product.CommitStock(order_id=direct) undo: ReleaseStock",
            ]
        );
        let set: Vec<String> = create
            .set
            .iter()
            .map(|(column, value)| format!("{}={}", column.value, source(value)))
            .collect();
        assert_eq!(
            set,
            [
                "status=direct",
                "total_cents=reserved.total_cents",
                "items=reserved.items"
            ]
        );
        // The card crosses an optional `payment`: its type says so.
        let StepActionIr::Pay {
            card: Some(card), ..
        } = &create.steps[2].action
        else {
            panic!("the third step pays with a card")
        };
        assert!(matches!(card.ty, Type::Optional(_)), "{:?}", card.ty);
    }
}
