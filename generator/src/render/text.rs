//! Everything that is not Rust or a manifest, through the templates in `templates/` (embedded in
//! the binary, so svcgen needs no files beside it).

use crate::ident::{self, sql};
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
        ])
        .expect("svcgen's templates parse");
        tera.autoescape_on(vec![]);
        tera
    })
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

/// The SQL type of a column for an engine.
fn sql_type(ty: &Type, engine: &str) -> &'static str {
    let postgres = engine == "postgres";
    match ty.required() {
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
        Type::List(_) => {
            if postgres {
                "JSONB"
            } else {
                "TEXT"
            }
        }
        Type::Optional(_) => unreachable!("required() removes the optional wrapper"),
    }
}

/// A service's first migration: one table per entity, with its indexes.
pub fn initial_migration(_system: &System, service: &Service, engine: &str) -> String {
    let tables: Vec<TableView> = service
        .entities
        .iter()
        .map(|entity| {
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
                            sql(&c.name),
                            sql_type(&c.ty, engine)
                        ),
                    }
                })
                .collect();
            let indexes = entity
                .indexes
                .iter()
                .map(|fields| {
                    let names: Vec<&str> = fields.iter().map(Name::as_str).collect();
                    IndexView {
                        name: sql(&format!("{}_{}_idx", entity.name.value, names.join("_"))),
                        table: sql(&entity.name.value),
                        columns: names.iter().map(|n| sql(n)).collect::<Vec<_>>().join(", "),
                    }
                })
                .collect();
            TableView {
                name: sql(&entity.name.value),
                description: entity
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("Entity `{}`.", entity.name.value)),
                columns,
                indexes,
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
    name: String,
    description: String,
    database_env: String,
    url_env: String,
    engine: &'static str,
    database: String,
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
pub fn readme(system: &System, header: &str) -> String {
    let name = &system.name.value;
    let routes: Vec<RouteView> = crate::validate::gateway_routes(system)
        .into_iter()
        .map(|route| RouteView {
            method: route.method.as_str(),
            path: route.path,
            service: route.service,
            auth: if route.public { "public" } else { "user" },
            summary: route.summary,
        })
        .collect();
    let services: Vec<ServiceView> = system
        .services
        .iter()
        .map(|s| {
            let engine = s
                .store
                .as_ref()
                .and_then(|store| system.stores.iter().find(|st| st.name.value == store.value))
                .map_or(Engine::Sqlite, |st| st.engine);
            let database = format!("{name}_{}", s.name.value);
            ServiceView {
                name: s.name.value.clone(),
                description: s.description.clone().unwrap_or_default(),
                database_env: ident::database_url_env(&s.name.value),
                url_env: ident::service_url_env(&s.name.value),
                engine: if engine == Engine::Postgres {
                    "postgres"
                } else {
                    "sqlite"
                },
                database: match engine {
                    Engine::Postgres => format!("postgres://postgres@127.0.0.1:5432/{database}"),
                    Engine::Sqlite => format!("sqlite://./data/{database}.sqlite"),
                },
            }
        })
        .collect();
    let events: Vec<EventView> = system
        .events
        .iter()
        .map(|event| {
            let (producers, consumers) = system.parties(&event.name.value);
            EventView {
                name: event.name.value.clone(),
                description: event.description.clone().unwrap_or_default(),
                fields: event
                    .fields
                    .iter()
                    .map(|f| format!("`{}`: {}", f.name.value, f.ty.spec_text()))
                    .collect::<Vec<_>>()
                    .join(", "),
                producers,
                consumers,
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
    render("README.md", &context)
}
