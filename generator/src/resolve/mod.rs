//! Stage 2, resolve: the node tree becomes the typed model. Every key is checked against the
//! keys its place allows, every scalar is parsed, and every problem is recorded; the model is
//! built as far as possible anyway so that validation can report the problems it finds too.

use crate::diag::{Diagnostics, Span, closest, did_you_mean};
use crate::ident;
use crate::load::{Kind, Node};
use crate::model::*;

mod consumers;
mod entity;
mod routes;

use routes::ServiceRoute;
mod scalars;
pub(crate) mod types;

pub use types::parse_type;

/// Resolves a loaded spec into the model, recording every problem in `diagnostics`.
pub fn resolve(root: &Node, diagnostics: &mut Diagnostics) -> System {
    Resolver { d: diagnostics }.system(root)
}

struct Resolver<'d> {
    d: &'d mut Diagnostics,
}

/// The entries of a mapping whose keys were checked against the allowed ones.
struct Entries<'a> {
    entries: Vec<(&'a str, &'a Node, &'a Node)>,
}

impl<'a> Entries<'a> {
    fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| *v)
    }
}

const TOP_KEYS: &[&str] = &[
    "system",
    "description",
    "gateway",
    "auth",
    "stores",
    "events",
    "services",
    "brokers",
    "acknowledged",
];
const GATEWAY_KEYS: &[&str] = &[
    "port",
    "prefix",
    "cors",
    "body_limit",
    "timeout",
    "rate_limit",
];
const CORS_KEYS: &[&str] = &["origins", "methods", "headers", "credentials", "max_age"];
const GATEWAY_LIMIT_KEYS: &[&str] = &["per_ip", "per_user", "credentials"];
const ROUTE_LIMIT_KEYS: &[&str] = &["per_ip", "per_user"];
const AUTH_KEYS: &[&str] = &["service", "roles", "access_token_ttl", "refresh_token_ttl"];
const STORE_KEYS: &[&str] = &["engine", "description"];
const EVENT_KEYS: &[&str] = &["description", "version", "critical", "fields"];
const SERVICE_KEYS: &[&str] = &[
    "description",
    "uses",
    "store",
    "emit",
    "entities",
    "routes",
    "on",
    "messages",
    "rpc",
    "calls",
    "constants",
    "transport",
    "jobs",
    "removed",
];
/// The keys of a job.
const JOB_KEYS: &[&str] = &[
    "description",
    "every",
    "cron",
    "do",
    "handler",
    "name",
    "emit",
];
const MESSAGE_KEYS: &[&str] = &["description", "fields"];
const RPC_KEYS: &[&str] = &[
    "description",
    "idempotent",
    "get",
    "request",
    "response",
    "sql",
    "handler",
    "name",
    "emit",
];
const STATEMENT_KEYS: &[&str] = &["run", "for_each", "expect", "into", "emit"];
const EXPECT_KEYS: &[&str] = &["status", "message"];
const STEP_KEYS: &[&str] = &["call", "with", "as", "undo", "pay"];
const CALL_KEYS: &[&str] = &["call", "with"];
const PAY_KEYS: &[&str] = &["amount_cents", "card"];
const AUTH_EMIT_KEYS: &[&str] = &["registered", "logged_in", "password_reset"];
const ENTITY_KEYS: &[&str] = &[
    "description",
    "owner",
    "read",
    "managers",
    "fields",
    "indexes",
    "unique",
    "search",
    "removed",
    "renamed_from",
];
/// The keys of `read: { if: <field> }`.
const READ_KEYS: &[&str] = &["if"];
const FIELD_KEYS: &[&str] = &[
    "type",
    "description",
    "unique",
    "default",
    "references",
    "on_delete",
    "renamed_from",
    "backfill",
];
const ROUTE_KEYS: &[&str] = &[
    "create",
    "list",
    "get",
    "update",
    "delete",
    "emit",
    "public",
    "roles",
    "mine",
    "filter",
    "sort",
    "rate_limit",
    "body_limit",
    "timeout",
    "input",
    "steps",
    "set",
    "when",
    "rpc",
    "with",
    "description",
    "handler",
    "name",
    "output",
];
/// What a consumer can do, one per action.
const ACTION_KEYWORDS: &[&str] = &[
    "notify", "create", "upsert", "update", "delete", "sql", "emit", "call",
];
/// The keys of one action (`do:` items), beside its keyword.
const ACTION_MODIFIERS: &[&str] = &["set", "where", "key", "with", "as"];
/// The keys of a consumer: one action written inline, or `do:` a list of them.
const CONSUMER_KEYS: &[&str] = &[
    "notify", "create", "upsert", "update", "delete", "sql", "emit", "call", "set", "where", "key",
    "with", "as", "do", "critical", "attempts", "handler", "name",
];
const NOTIFY_KEYS: &[&str] = &["user", "role", "kind", "message"];
/// The built-in type names (for did-you-mean hints).
pub(crate) const TYPE_NAMES: &[&str] = &[
    "string",
    "text",
    "int",
    "bool",
    "uuid",
    "email",
    "timestamp",
    "enum",
];
/// Attempts at handling an event before it is dead-lettered, unless the consumer says otherwise.
pub const DEFAULT_ATTEMPTS: u32 = 5;
const IMPLICIT_FIELDS: &[&str] = &["id", "created_at", "updated_at", "version"];

impl Resolver<'_> {
    fn system(&mut self, root: &Node) -> System {
        let top = self.entries(root, "the spec", TOP_KEYS);
        let name = match top.get("system") {
            Some(node) => self.name(node, "system name"),
            None => {
                self.d
                    .error(
                        root.span,
                        "missing `system`: every spec starts with the system's name",
                    )
                    .hint("add `system: <name>`, e.g. `system: notes`");
                None
            }
        };
        if let Some(name) = name.as_ref().filter(|n| ident::is_rust_keyword(&n.value)) {
            self.d
                .error(name.span, format!("`{}` is a Rust keyword and cannot name a system: it names the binary and the crates", name.value))
                .hint(format!("e.g. `{}_app`", name.value));
        }
        let name = name.unwrap_or(Name {
            value: "system".into(),
            span: root.span,
        });
        let description = top
            .get("description")
            .and_then(|n| self.text(n, "description"));
        let gateway = self.gateway(top.get("gateway"));
        let auth = top.get("auth").map(|n| self.auth(n));
        let stores = self.each(top.get("stores"), "stores", |r, key, value| {
            r.store(key, value)
        });
        let events = self.each(top.get("events"), "events", |r, key, value| {
            r.event(key, value)
        });
        let services = match top.get("services") {
            Some(node) => self.each(Some(node), "services", |r, key, value| {
                r.service(key, value)
            }),
            None => {
                self.d.error(
                    root.span,
                    "missing `services`: a system has at least one service",
                );
                Vec::new()
            }
        };
        let brokers = self.brokers(top.get("brokers"));
        let acknowledged = match top.get("acknowledged") {
            Some(node) => self.seq(node, "`acknowledged`", |r, item| {
                let text = r.text(item, "a change")?;
                Some(Name {
                    value: text,
                    span: item.span,
                })
            }),
            None => Vec::new(),
        };
        System {
            brokers,
            acknowledged,
            name,
            description,
            gateway,
            auth: auth.flatten(),
            stores,
            events,
            services,
        }
    }

    fn gateway(&mut self, node: Option<&Node>) -> Gateway {
        let mut gateway = Gateway {
            port: 3000,
            prefix: "/api/v1".into(),
            cors: None,
            body_limit: None,
            timeout_ms: None,
            per_ip: Limit::Default,
            per_user: Limit::Default,
            credentials: Limit::Default,
        };
        let Some(node) = node else { return gateway };
        let entries = self.entries(node, "`gateway`", GATEWAY_KEYS);
        gateway.cors = entries.get("cors").and_then(|n| self.cors(n));
        gateway.body_limit = entries.get("body_limit").and_then(|n| self.size(n));
        gateway.timeout_ms = entries.get("timeout").and_then(|n| self.duration_ms(n));
        if let Some(limits) = entries.get("rate_limit") {
            let limits = self.entries(limits, "`rate_limit` of the gateway", GATEWAY_LIMIT_KEYS);
            gateway.per_ip = limits
                .get("per_ip")
                .map_or(Limit::Default, |n| self.limit(n));
            gateway.per_user = limits
                .get("per_user")
                .map_or(Limit::Default, |n| self.limit(n));
            gateway.credentials = limits
                .get("credentials")
                .map_or(Limit::Default, |n| self.limit(n));
        }
        if let Some(port) = entries.get("port") {
            match port
                .as_str()
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|p| *p > 0)
            {
                Some(p) => gateway.port = p,
                None => {
                    self.d
                        .error(port.span, "`port` must be a number from 1 to 65535");
                }
            }
        }
        if let Some(prefix) = entries
            .get("prefix")
            .and_then(|n| self.text(n, "`prefix`").map(|t| (n, t)))
        {
            let (node, text) = prefix;
            let valid = text.starts_with('/')
                && !text.ends_with('/')
                && text[1..].split('/').all(|s| {
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                });
            if valid {
                gateway.prefix = text;
            } else {
                self.d
                    .error(node.span, format!("`{text}` is not a route prefix"))
                    .hint("write it like `/api/v1`: starts with `/`, no trailing `/`");
            }
        }
        gateway
    }

    fn auth(&mut self, node: &Node) -> Option<Auth> {
        let entries = self.entries(node, "`auth`", AUTH_KEYS);
        let service = match entries.get("service") {
            Some(n) => self.name(n, "service name"),
            None => {
                self.d.error(
                    node.span,
                    "`auth` needs `service`: the service that uses the `auth` capability",
                );
                None
            }
        };
        let access = entries
            .get("access_token_ttl")
            .map_or(Some(15 * 60), |n| self.duration(n));
        let refresh = entries
            .get("refresh_token_ttl")
            .map_or(Some(30 * 86_400), |n| self.duration(n));
        let roles = match entries.get("roles") {
            Some(node) => {
                let roles = self.names(node, "role");
                for required in ["user", "admin"] {
                    if !roles.iter().any(|r| r.value == required) {
                        self.d.error(node.span, format!("`roles` must include `{required}`"))
                            .hint("new accounts get `user`; `admin` reaches the administration routes");
                    }
                }
                roles
            }
            None => ["user", "admin"]
                .map(|r| Name {
                    value: r.into(),
                    span: node.span,
                })
                .to_vec(),
        };
        Some(Auth {
            roles,
            service: service?,
            access_token_ttl: access.unwrap_or(900),
            refresh_token_ttl: refresh.unwrap_or(2_592_000),
        })
    }

    fn store(&mut self, key: &Node, value: &Node) -> Option<Store> {
        let name = self.declared_name(key, "store name")?;
        let entries = self.entries(value, &format!("store `{}`", name.value), STORE_KEYS);
        let engine = match entries.get("engine") {
            None => Engine::Postgres,
            Some(node) => match node.as_str() {
                Some("postgres") => Engine::Postgres,
                Some("mysql") => Engine::Mysql,
                Some("sqlite") => Engine::Sqlite,
                other => {
                    let hint = other.and_then(|o| did_you_mean(o, ["postgres", "mysql", "sqlite"]));
                    self.d
                        .error(
                            node.span,
                            format!("unknown store engine `{}`", other.unwrap_or("")),
                        )
                        .hint(
                            hint.unwrap_or_else(|| "engines: `postgres`, `mysql`, `sqlite`".into()),
                        );
                    Engine::Postgres
                }
            },
        };
        let description = entries
            .get("description")
            .and_then(|n| self.text(n, "description"));
        Some(Store {
            name,
            engine,
            description,
        })
    }

    fn event(&mut self, key: &Node, value: &Node) -> Option<Event> {
        let name = self.event_name(key)?;
        let entries = self.entries(value, &format!("event `{}`", name.value), EVENT_KEYS);
        let version = entries
            .get("version")
            .and_then(|n| self.count(n, "`version`", 1, 10_000))
            .unwrap_or(1);
        let critical = entries
            .get("critical")
            .and_then(|n| self.flag(n, "`critical`"))
            .unwrap_or(false);
        let description = entries
            .get("description")
            .and_then(|n| self.text(n, "description"));
        let fields = match entries.get("fields") {
            Some(node) => self.each(Some(node), "fields", |r, k, v| r.field(k, v)),
            None => {
                self.d
                    .error(
                        value.span,
                        format!("event `{}` has no `fields`", name.value),
                    )
                    .hint("describe its payload, e.g. `fields: { user_id: uuid }`");
                Vec::new()
            }
        };
        Some(Event {
            version,
            critical,
            name,
            description,
            fields,
        })
    }

    fn service(&mut self, key: &Node, value: &Node) -> Option<Service> {
        let name = self.declared_name(key, "service name")?;
        let what = format!("service `{}`", name.value);
        let entries = self.entries(value, &what, SERVICE_KEYS);
        let description = entries
            .get("description")
            .and_then(|n| self.text(n, "description"));
        let uses = entries.get("uses").and_then(|node| match node.as_str() {
            Some("auth") => Some(Capability::Auth),
            Some("notify") => Some(Capability::Notify),
            other => {
                let hint = other.and_then(|o| did_you_mean(o, ["auth", "notify"]));
                self.d
                    .error(
                        node.span,
                        format!("unknown capability `{}`", other.unwrap_or("")),
                    )
                    .hint(hint.unwrap_or_else(|| "capabilities: `auth`, `notify`".into()));
                None
            }
        });
        let store = entries
            .get("store")
            .and_then(|n| self.name(n, "store name"));
        let mut auth_emit = AuthEmit::default();
        if let Some(node) = entries.get("emit") {
            let emit = self.entries(node, &format!("`emit` of {what}"), AUTH_EMIT_KEYS);
            auth_emit.registered = emit.get("registered").and_then(|n| self.event_name(n));
            auth_emit.logged_in = emit.get("logged_in").and_then(|n| self.event_name(n));
            auth_emit.password_reset = emit.get("password_reset").and_then(|n| self.event_name(n));
            if uses != Some(Capability::Auth) {
                self.d.error(node.span, format!("{what} has `emit` but does not use the `auth` capability"))
                    .hint("routes emit with `emit:` inside the route; this `emit` is for `uses: auth`");
            }
        }
        let entities = self.each(entries.get("entities"), "entities", |r, k, v| {
            r.entity(k, v)
        });
        let (mut routes, mut rpc_routes, mut custom_routes) = (Vec::new(), Vec::new(), Vec::new());
        for route in self.each(entries.get("routes"), "routes", |r, k, v| r.route(k, v)) {
            match route {
                ServiceRoute::Entity(route) => routes.push(route),
                ServiceRoute::Rpc(mut route) => {
                    // `rpc: Name` names an RPC of the route's own service.
                    if route.target.service.value.is_empty() {
                        route.target.service.value = name.value.clone();
                    }
                    rpc_routes.push(route);
                }
                ServiceRoute::Custom(route) => custom_routes.push(route),
            }
        }
        let consumers = self.each(entries.get("on"), "on", |r, k, v| r.consumer(k, v));
        let messages = self.each(entries.get("messages"), "messages", |r, k, v| {
            r.message(k, v)
        });
        let rpcs = self.each(entries.get("rpc"), "rpc", |r, k, v| r.rpc(k, v));
        let calls = match entries.get("calls") {
            Some(node) => self.seq(node, "`calls`", |r, item| r.rpc_ref(item)),
            None => Vec::new(),
        };
        let transport = match entries.get("transport").map(|n| (n, n.as_str())) {
            None | Some((_, Some("http"))) => Transport::Http,
            Some((_, Some("grpc"))) => Transport::Grpc,
            Some((node, other)) => {
                self.d
                    .error(
                        node.span,
                        format!("unknown transport `{}`", other.unwrap_or("")),
                    )
                    .hint("transports: `http` (the default) or `grpc`");
                Transport::Http
            }
        };
        let jobs = self.each(entries.get("jobs"), "jobs", |r, k, v| r.job(k, v));
        let removed = entries
            .get("removed")
            .map(|n| self.names(n, "entity name"))
            .unwrap_or_default();
        let constants = self.each(entries.get("constants"), "constants", |r, k, v| {
            let name = r.name(k, "constant name")?;
            let value = v.as_str().and_then(|t| t.parse::<i64>().ok());
            if value.is_none() {
                r.d.error(
                    v.span,
                    format!("constant `{}` must be a whole number", name.value),
                );
            }
            Some((name, value?))
        });
        Some(Service {
            name,
            description,
            uses,
            store,
            auth_emit,
            entities,
            routes,
            rpc_routes,
            custom_routes,
            consumers,
            messages,
            rpcs,
            calls,
            constants,
            transport,
            jobs,
            removed,
        })
    }

    fn message(&mut self, key: &Node, value: &Node) -> Option<Message> {
        let name = self.declared_name(key, "message name")?;
        let is_described = matches!(&value.kind, Kind::Map(items)
            if items.iter().any(|(k, _)| k.as_str() == Some("fields")));
        let (description, fields) = if is_described {
            let entries = self.entries(value, &format!("message `{}`", name.value), MESSAGE_KEYS);
            let description = entries
                .get("description")
                .and_then(|n| self.text(n, "description"));
            let fields = self.each(entries.get("fields"), "fields", |r, k, v| r.field(k, v));
            (description, fields)
        } else {
            (
                None,
                self.each(Some(value), "fields", |r, k, v| r.field(k, v)),
            )
        };
        if fields.is_empty() {
            self.d.error(
                value.span,
                format!("message `{}` has no fields", name.value),
            );
        }
        Some(Message {
            name,
            description,
            fields,
        })
    }

    fn rpc(&mut self, key: &Node, value: &Node) -> Option<Rpc> {
        let text = self.text(key, "RPC name")?;
        let pascal = text.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && text.chars().all(|c| c.is_ascii_alphanumeric());
        if !pascal {
            self.d
                .error(
                    key.span,
                    format!("invalid RPC name `{text}`: use PascalCase, e.g. `GetProduct`"),
                )
                .hint(format!(
                    "perhaps `{}`",
                    ident::to_pascal(&ident::to_snake(&text))
                ));
        }
        let name = Name {
            value: text.clone(),
            span: key.span,
        };
        let what = format!("RPC `{text}`");
        let entries = self.entries(value, &what, RPC_KEYS);
        let description = entries
            .get("description")
            .and_then(|n| self.text(n, "description"));
        let idempotent = entries
            .get("idempotent")
            .and_then(|n| self.flag(n, "`idempotent`"))
            .unwrap_or(false);
        let request = entries
            .get("request")
            .map(|n| self.each(Some(n), "request", |r, k, v| r.field(k, v)));
        let response = entries
            .get("response")
            .map(|n| self.each(Some(n), "response", |r, k, v| r.field(k, v)));
        if entries.get("handler").is_some() {
            let default = crate::ident::to_snake(&name.value);
            let custom = self.custom_code(
                &entries,
                &what,
                default,
                &["description", "idempotent", "request", "response"],
            )?;
            return Some(Rpc {
                name,
                description,
                idempotent,
                kind: RpcKind::Custom(custom),
                request: request.unwrap_or_default(),
                response: response.unwrap_or_default(),
            });
        }
        let (kind, request, response) = match (entries.get("get"), entries.get("sql")) {
            (Some(get), None) => {
                let record = self.name(get, "entity name")?;
                if let Some(node) = entries.get("request").or(entries.get("response")) {
                    self.d
                        .error(
                            node.span,
                            format!(
                                "{what} is a `get`: its request is the id and its response the row"
                            ),
                        )
                        .hint("remove `request` and `response`");
                }
                let id = Field::plain(
                    Name {
                        value: "id".into(),
                        span: get.span,
                    },
                    Type::Uuid,
                );
                let row = Field::plain(record.clone(), Type::Message(record.value.clone()));
                (RpcKind::Get { record }, vec![id], vec![row])
            }
            (None, Some(sql)) => {
                let statements = self.seq(sql, "`sql`", |r, item| r.statement(item));
                if request.is_none() || response.is_none() {
                    self.d
                        .error(
                            value.span,
                            format!("{what} runs SQL and needs `request` and `response`"),
                        )
                        .hint(
                            "declare both, e.g. `request: { order_id: uuid }` and `response: {}`",
                        );
                }
                (
                    RpcKind::Sql(statements),
                    request.unwrap_or_default(),
                    response.unwrap_or_default(),
                )
            }
            (Some(_), Some(sql)) => {
                self.d
                    .error(sql.span, format!("{what} has both `get` and `sql`"));
                return None;
            }
            (None, None) => {
                self.d
                    .error(value.span, format!("{what} does nothing"))
                    .hint("back it with `get: <entity>` or a list of `sql` statements");
                return None;
            }
        };
        Some(Rpc {
            name,
            description,
            idempotent,
            kind,
            request,
            response,
        })
    }

    fn statement(&mut self, node: &Node) -> Option<Statement> {
        let entries = self.entries(node, "an SQL statement", STATEMENT_KEYS);
        let Some(run) = entries.get("run") else {
            self.d
                .error(node.span, "an SQL statement needs `run: <SQL>`");
            return None;
        };
        let sql = self.text(run, "`run`")?;
        let for_each = entries
            .get("for_each")
            .and_then(|n| self.name(n, "request field"));
        let expect = match entries.get("expect") {
            Some(e) => {
                let e = self.entries(e, "`expect`", EXPECT_KEYS);
                let status = e.get("status").and_then(|n| self.name(n, "status"));
                let message = e.get("message").and_then(|n| self.text(n, "message"));
                if status.is_none() || message.is_none() {
                    self.d.error(node.span, "`expect` needs `status` and `message`")
                        .hint("e.g. `expect: { status: failed_precondition, message: not enough stock }`");
                }
                Some(Expectation {
                    status: status?,
                    message: message?,
                })
            }
            None => None,
        };
        let into = entries
            .get("into")
            .and_then(|n| self.name(n, "response field"));
        let emit = entries.get("emit").and_then(|n| self.event_name(n));
        Some(Statement {
            sql,
            span: run.span,
            for_each,
            expect,
            into,
            emit,
        })
    }

    fn rpc_ref(&mut self, node: &Node) -> Option<RpcRef> {
        let text = self.text(node, "RPC reference")?;
        let Some((service, rpc)) = text.split_once('.') else {
            self.d
                .error(
                    node.span,
                    format!("`{text}` names no service: write `service.Rpc`"),
                )
                .hint("e.g. `product.ReserveStock`");
            return None;
        };
        Some(RpcRef {
            service: Name {
                value: service.into(),
                span: node.span,
            },
            rpc: Name {
                value: rpc.into(),
                span: node.span,
            },
            span: node.span,
        })
    }

    fn step(&mut self, node: &Node) -> Option<Step> {
        let entries = self.entries(node, "a step", STEP_KEYS);
        let name = entries.get("as").and_then(|n| self.name(n, "step name"));
        let undo = entries.get("undo").and_then(|n| self.call(n));
        let action = match (entries.get("call"), entries.get("pay")) {
            (Some(target), None) => StepAction::Call(Call {
                target: self.rpc_ref(target)?,
                with: self.assignments(entries.get("with")),
            }),
            (None, Some(pay)) => {
                let pay = self.entries(pay, "`pay`", PAY_KEYS);
                let amount = pay.get("amount_cents").and_then(|n| self.expr(n));
                let card = pay.get("card").and_then(|n| self.expr(n));
                if amount.is_none() {
                    self.d.error(node.span, "`pay` needs `amount_cents`");
                }
                StepAction::Pay {
                    amount_cents: amount?,
                    card: card.unwrap_or(Expr::Text(String::new())),
                }
            }
            _ => {
                self.d.error(
                    node.span,
                    "a step either calls an RPC (`call`) or takes a payment (`pay`)",
                );
                return None;
            }
        };
        Some(Step {
            action,
            name,
            undo,
            span: node.span,
        })
    }

    /// An `undo`: `call: service.Rpc` with `with: { field: value }`.
    fn call(&mut self, node: &Node) -> Option<Call> {
        let entries = self.entries(node, "an undo call", CALL_KEYS);
        let Some(target) = entries.get("call") else {
            self.d.error(node.span, "an undo needs `call: service.Rpc`");
            return None;
        };
        let target = self.rpc_ref(target)?;
        let with = self.assignments(entries.get("with"));
        Some(Call { target, with })
    }

    fn assignments(&mut self, node: Option<&Node>) -> Vec<(Name, Expr)> {
        self.each(node, "with", |r, k, v| {
            let name = r.name(k, "field name")?;
            Some((name, r.expr(v)?))
        })
    }

    fn expr(&mut self, node: &Node) -> Option<Expr> {
        let text = self.text(node, "value")?;
        let Some(path) = text.strip_prefix('$') else {
            return Some(if let Ok(n) = text.parse::<i64>() {
                Expr::Int(n)
            } else if text == "true" || text == "false" {
                Expr::Bool(text == "true")
            } else {
                Expr::Text(text)
            });
        };
        if let Some(rest) = path.strip_prefix("now") {
            let plus_secs = match rest.trim_start().strip_prefix('+') {
                _ if rest.is_empty() => Some(0),
                Some(duration) => self.duration(&Node {
                    kind: Kind::Scalar(duration.trim().to_owned()),
                    span: node.span,
                }),
                None => None,
            };
            if plus_secs.is_none() {
                self.d
                    .error(node.span, format!("invalid value `{text}`"))
                    .hint("write `$now` or `$now + <duration>`, e.g. `$now + 14d`");
            }
            return plus_secs.map(|plus_secs| Expr::Now { plus_secs });
        }
        let mut parts = path.split('.');
        let root = parts.next().unwrap_or_default();
        let name = |value: &str| Name {
            value: value.into(),
            span: node.span,
        };
        let fields: Vec<Name> = parts.map(name).collect();
        match (root, fields.is_empty()) {
            ("caller", true) => Some(Expr::Caller),
            ("id", true) => Some(Expr::Id),
            ("caller", false) if fields.len() == 1 && fields[0].value == "roles" => {
                Some(Expr::CallerRoles)
            }
            ("caller", false) => {
                self.d
                    .error(node.span, format!("invalid value `{text}`"))
                    .hint(
                        "the caller is `$caller` (their user id) and `$caller.roles` (their roles)",
                    );
                None
            }
            ("id", false) => {
                self.d.error(node.span, "`$id` has no fields");
                None
            }
            (root, _) if ident::is_snake(root) => Some(Expr::Path {
                root: name(root),
                fields,
            }),
            _ => {
                self.d.error(node.span, format!("invalid value `{text}`"))
                    .hint("values: `$caller`, `$caller.roles`, `$id`, `$now`, `$input.<field>`, `$<step>.<field>`, `$event.<field>` in a consumer, or a literal");
                None
            }
        }
    }

    /// Calls `each` for every item of a sequence.
    fn seq<T>(
        &mut self,
        node: &Node,
        what: &str,
        mut each: impl FnMut(&mut Self, &Node) -> Option<T>,
    ) -> Vec<T> {
        match &node.kind {
            Kind::Seq(items) => items.iter().filter_map(|item| each(self, item)).collect(),
            Kind::Null => Vec::new(),
            _ => {
                self.d.error(
                    node.span,
                    format!("{what} must be a list, found {}", node.shape()),
                );
                Vec::new()
            }
        }
    }
}
