//! Everything that is not Rust or a manifest, through the templates in `templates/` (embedded in
//! the binary, so svcgen needs no files beside it).

use crate::ident::{self, sql};
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
struct TableView {
    name: String,
    description: String,
    columns: Vec<ColumnView>,
    indexes: Vec<IndexView>,
    /// Written after the closing parenthesis of CREATE TABLE (MySQL's character set).
    options: &'static str,
}

#[derive(Serialize)]
struct ColumnView {
    definition: String,
}

#[derive(Serialize)]
struct IndexView {
    name: String,
    table: String,
    columns: String,
}

/// The SQL type of a column for an engine. `indexed`: the column is part of an index, which
/// matters on MySQL: it indexes no TEXT column without a prefix length.
fn sql_type(ty: &Type, engine: &str, indexed: bool) -> String {
    if engine == "mysql" {
        return mysql_type(ty, indexed).into_owned();
    }
    let postgres = engine == "postgres";
    let name = match ty.required() {
        Type::String { .. } | Type::Text | Type::Email => "TEXT",
        Type::Int => {
            if postgres {
                "BIGINT"
            } else {
                "INTEGER"
            }
        }
        Type::Bool => {
            if postgres {
                "BOOLEAN"
            } else {
                "INTEGER"
            }
        }
        Type::Uuid => {
            if postgres {
                "UUID"
            } else {
                "TEXT"
            }
        }
        Type::Timestamp => {
            if postgres {
                "TIMESTAMPTZ"
            } else {
                "TEXT"
            }
        }
        Type::List(_) | Type::Message(_) => {
            if postgres {
                "JSONB"
            } else {
                "TEXT"
            }
        }
        Type::Optional(_) => unreachable!("required() removes the optional wrapper"),
    };
    name.to_owned()
}

/// The longest indexed text MySQL keeps as a whole VARCHAR: 255 characters (1020 bytes in
/// utf8mb4), so that several such columns still fit an index key (3072 bytes).
const MYSQL_INDEXED_VARCHAR: u32 = 255;

/// The text MySQL cannot keep as an indexed VARCHAR (see [`mysql_type`]) is indexed by its
/// first characters, this many.
const MYSQL_INDEX_PREFIX: u32 = 255;

/// The MySQL type of a column, as the runtime stores values there (`svcgen_runtime::db::Bind`):
/// uuids as CHAR(36) text, timestamps as DATETIME(6) in UTC, lists as JSON. Text is LONGTEXT
/// (any length, as TEXT on the other engines), except indexed text whose values all fit a
/// VARCHAR: a bounded `string` up to [`MYSQL_INDEXED_VARCHAR`] characters, an `email` (at most
/// 254, as validated).
fn mysql_type(ty: &Type, indexed: bool) -> std::borrow::Cow<'static, str> {
    match ty.required() {
        Type::String { max: Some(max), .. } if indexed && *max <= MYSQL_INDEXED_VARCHAR => {
            format!("VARCHAR({max})").into()
        }
        Type::Email if indexed => "VARCHAR(254)".into(),
        Type::String { .. } | Type::Text | Type::Email => "LONGTEXT".into(),
        Type::Int => "BIGINT".into(),
        Type::Bool => "BOOLEAN".into(),
        Type::Uuid => "CHAR(36)".into(),
        Type::Timestamp => "DATETIME(6)".into(),
        Type::List(_) | Type::Message(_) => "JSON".into(),
        Type::Optional(_) => unreachable!("required() removes the optional wrapper"),
    }
}

/// An identifier quoted for an engine: double quotes, or backquotes on MySQL (which reads a
/// double-quoted token as a string).
fn quoted(name: &str, engine: &str) -> String {
    if engine == "mysql" {
        format!("`{}`", name.replace('`', "``"))
    } else {
        sql(name)
    }
}

/// MySQL's longest identifier, in characters.
const MYSQL_MAX_IDENTIFIER: usize = 64;

/// An index name that the engine accepts. MySQL refuses names over 64 characters (PostgreSQL
/// cuts them at 63): a longer one keeps its first 55 characters and gets a hash of the whole
/// name, so that two long names sharing a beginning stay distinct.
fn index_name(name: String, engine: &str) -> String {
    if engine != "mysql" || name.chars().count() <= MYSQL_MAX_IDENTIFIER {
        return name;
    }
    // FNV-1a: stable across Rust versions and platforms, unlike `DefaultHasher`.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    let head: String = name.chars().take(MYSQL_MAX_IDENTIFIER - 9).collect();
    format!("{head}_{hash:08x}")
}

/// A column as an index lists it; on MySQL, LONGTEXT is indexed by a prefix.
fn index_column(column: &Column, engine: &str) -> String {
    let name = quoted(&column.name, engine);
    if engine == "mysql" && mysql_type(&column.ty, true) == "LONGTEXT" {
        format!("{name}({MYSQL_INDEX_PREFIX})")
    } else {
        name
    }
}

/// A service's first migration: one table per entity, with its indexes.
pub fn initial_migration(_system: &System, service: &Service, engine: &str) -> String {
    let tables: Vec<TableView> = service
        .entities
        .iter()
        .map(|entity| {
            let indexed = |column: &str| {
                entity
                    .indexes
                    .iter()
                    .any(|fields| fields.iter().any(|f| f.as_str() == column))
            };
            let columns = entity
                .columns()
                .iter()
                .map(|c| {
                    let null = if matches!(c.ty, Type::Optional(_)) {
                        ""
                    } else {
                        " NOT NULL"
                    };
                    let key = if c.source == ColumnSource::Id {
                        " PRIMARY KEY"
                    } else {
                        ""
                    };
                    ColumnView {
                        definition: format!(
                            "{} {}{null}{key}",
                            quoted(&c.name, engine),
                            sql_type(&c.ty, engine, indexed(&c.name))
                        ),
                    }
                })
                .collect();
            let indexes = entity
                .indexes
                .iter()
                .map(|fields| {
                    let names: Vec<&str> = fields.iter().map(Name::as_str).collect();
                    let columns: Vec<String> = names
                        .iter()
                        .map(|n| match entity.column(n) {
                            Some(column) => index_column(&column, engine),
                            None => quoted(n, engine),
                        })
                        .collect();
                    let name = format!("{}_{}_idx", entity.name.value, names.join("_"));
                    IndexView {
                        name: quoted(&index_name(name, engine), engine),
                        table: quoted(&entity.name.value, engine),
                        columns: columns.join(", "),
                    }
                })
                .collect();
            TableView {
                name: quoted(&entity.name.value, engine),
                description: entity
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("Entity `{}`.", entity.name.value)),
                columns,
                indexes,
                // Binary collation: text compares case-sensitively, by code point, as on
                // the other engines (MySQL's default collation ignores case).
                options: if engine == "mysql" {
                    " DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin"
                } else {
                    ""
                },
            }
        })
        .collect();
    let mut context = Context::new();
    context.insert("service", &service.name.value);
    context.insert("engine", engine);
    context.insert("tables", &tables);
    render("migration.sql", &context)
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
