//! Everything that is not Rust or a manifest, through the templates in `templates/` (embedded in
//! the binary, so svcgen needs no files beside it).

use crate::ident;
use crate::lower::Ir;
use crate::model::*;
use serde::Serialize;
use std::sync::OnceLock;
use tera::{Context, Tera};

fn templates() -> &'static Tera {
    static TERA: OnceLock<Tera> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut tera = Tera::default();
        tera.add_raw_templates([
            (
                "README.md",
                include_str!("../../../templates/README.md.tera"),
            ),
            (
                "migration.sql",
                include_str!("../../../templates/migration.sql.tera"),
            ),
            ("proto", include_str!("../../../templates/proto.tera")),
            (
                "table.sql",
                include_str!("../../../templates/table.sql.tera"),
            ),
            (
                "changes.sql",
                include_str!("../../../templates/changes.sql.tera"),
            ),
        ])
        .expect("svcgen's templates parse");
        tera.autoescape_on(vec![]);
        tera
    })
}

/// Renders one of the embedded templates.
pub(crate) fn render_template(name: &str, context: &Context) -> String {
    render(name, context)
}

fn render(name: &str, context: &Context) -> String {
    match templates().render(name, context) {
        Ok(text) => text,
        Err(error) => panic!("template {name} failed: {error:?}"),
    }
}

#[derive(Serialize)]
struct RouteView {
    method: &'static str,
    path: String,
    service: String,
    auth: &'static str,
    summary: String,
}

#[derive(Serialize)]
struct ServiceView {
    /// `SVCGEN_<PEER>_URL=... ` for every service it calls.
    peers: String,
    name: String,
    description: String,
    database_env: String,
    url_env: String,
    engine: &'static str,
    database: String,
    /// The database URLs the service accepts: its store's engine, and SQLite.
    schemes: String,
}

#[derive(Serialize)]
struct ContractView {
    /// `ProductApiService`, when the gateway reaches the service over gRPC.
    api: Option<String>,
    service: String,
    package: String,
    path: String,
    methods: Vec<MethodView>,
}

#[derive(Serialize)]
struct MethodView {
    name: String,
    idempotent: bool,
    description: String,
    callers: String,
}

#[derive(Serialize)]
struct EventView<'a> {
    name: String,
    description: String,
    fields: String,
    producers: Vec<&'a str>,
    consumers: Vec<&'a str>,
}

/// The generated workspace's README: how to run it in each mode, its API and its events.
pub fn readme(ir: &Ir, header: &str) -> String {
    let system = ir.system;
    let name = &system.name.value;
    let routes: Vec<RouteView> = ir
        .gateway_routes
        .iter()
        .map(|route| RouteView {
            method: route.method.as_str(),
            path: route.path.clone(),
            service: route.service.clone(),
            auth: if route.public { "public" } else { "user" },
            summary: route.summary.clone(),
        })
        .collect();
    let services: Vec<ServiceView> = ir
        .services
        .iter()
        .map(|lowered| {
            let (s, engine) = (lowered.model, lowered.engine);
            let database = format!("{name}_{}", s.name.value);
            let mut called: Vec<&str> = Vec::new();
            for call in &s.calls {
                if !called.contains(&call.service.as_str()) {
                    called.push(call.service.as_str());
                }
            }
            let peers = called
                .iter()
                .map(|peer| {
                    let index = system
                        .services
                        .iter()
                        .position(|t| t.name.value == *peer)
                        .unwrap_or(0);
                    format!(
                        "{}=http://127.0.0.1:{} ",
                        ident::service_url_env(peer),
                        3101 + index
                    )
                })
                .collect::<String>();
            ServiceView {
                peers,
                name: s.name.value.clone(),
                description: s.description.clone().unwrap_or_default(),
                database_env: ident::database_url_env(&s.name.value),
                url_env: ident::service_url_env(&s.name.value),
                engine: engine.keyword(),
                database: match engine {
                    Engine::Postgres => format!("postgres://postgres@127.0.0.1:5432/{database}"),
                    Engine::Mysql => format!("mysql://root@127.0.0.1:3306/{database}"),
                    Engine::Sqlite => format!("sqlite://./data/{database}.sqlite"),
                },
                schemes: match engine {
                    Engine::Sqlite => "`sqlite://...`".to_owned(),
                    other => format!("`{}://...` or `sqlite://...`", other.keyword()),
                },
            }
        })
        .collect();
    let events: Vec<EventView> = system
        .events
        .iter()
        .map(|event| {
            let (producers, consumers) = ir.parties(&event.name.value);
            EventView {
                name: event.name.value.clone(),
                description: event.description.clone().unwrap_or_default(),
                fields: event
                    .fields
                    .iter()
                    .map(|f| format!("`{}`: {}", f.name.value, f.ty.spec_text()))
                    .collect::<Vec<_>>()
                    .join(", "),
                producers: producers.to_vec(),
                consumers: consumers.to_vec(),
            }
        })
        .collect();
    let mut context = Context::new();
    context.insert("header", header.trim_end());
    context.insert("system", name);
    context.insert(
        "description",
        &system.description.clone().unwrap_or_default(),
    );
    context.insert("port", &system.gateway.port);
    context.insert("prefix", &system.gateway.prefix);
    context.insert("routes", &routes);
    context.insert("services", &services);
    context.insert("events", &events);
    let contracts: Vec<ContractView> = ir
        .services
        .iter()
        .filter_map(|lowered| lowered.contract.as_ref().map(|file| (lowered.model, file)))
        .map(|(s, file)| ContractView {
            api: (s.transport == Transport::Grpc).then(|| crate::rpc::api_service_name(s)),
            service: s.name.value.clone(),
            package: file.package.clone(),
            path: file.path.clone(),
            methods: s
                .rpcs
                .iter()
                .map(|rpc| MethodView {
                    name: format!("{}/{}", crate::contract::service_name(s), rpc.name.value),
                    idempotent: rpc.idempotent || matches!(rpc.kind, RpcKind::Get { .. }),
                    description: rpc.description.clone().unwrap_or_default(),
                    callers: system
                        .services
                        .iter()
                        .filter(|c| {
                            c.calls.iter().any(|r| {
                                r.service.value == s.name.value && r.rpc.value == rpc.name.value
                            })
                        })
                        .map(|c| c.name.value.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
                .collect(),
        })
        .collect();
    context.insert("contracts", &contracts);
    context.insert("takes_payments", &system.takes_payments());
    render("README.md", &context)
}
