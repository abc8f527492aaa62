//! Stage 2, resolve: the node tree becomes the typed model. Every key is checked against the
//! keys its place allows, every scalar is parsed, and every problem is recorded; the model is
//! built as far as possible anyway so that validation can report the problems it finds too.

use crate::diag::{Diagnostics, Span, did_you_mean};
use crate::ident;
use crate::load::{Kind, Node};
use crate::model::*;

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
];
const MESSAGE_KEYS: &[&str] = &["description", "fields"];
const RPC_KEYS: &[&str] = &[
    "description",
    "idempotent",
    "get",
    "request",
    "response",
    "sql",
];
const STATEMENT_KEYS: &[&str] = &["run", "for_each", "expect", "into", "emit"];
const EXPECT_KEYS: &[&str] = &["status", "message"];
const STEP_KEYS: &[&str] = &["call", "with", "as", "undo", "pay"];
const CALL_KEYS: &[&str] = &["call", "with"];
const PAY_KEYS: &[&str] = &["amount_cents", "card"];
const AUTH_EMIT_KEYS: &[&str] = &["registered", "logged_in", "password_reset"];
const ENTITY_KEYS: &[&str] = &["description", "owner", "fields", "indexes"];
const ROUTE_KEYS: &[&str] = &[
    "create",
    "list",
    "get",
    "update",
    "delete",
    "emit",
    "public",
    "roles",
    "rate_limit",
    "body_limit",
    "timeout",
    "input",
    "steps",
    "set",
];
const CONSUMER_KEYS: &[&str] = &["notify", "critical", "attempts"];
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
];
/// Attempts at handling an event before it is dead-lettered, unless the consumer says otherwise.
pub const DEFAULT_ATTEMPTS: u32 = 5;
const IMPLICIT_FIELDS: &[&str] = &["id", "created_at", "updated_at"];

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
        System {
            brokers,
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
        let routes = self.each(entries.get("routes"), "routes", |r, k, v| r.route(k, v));
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
        if uses.is_some() && (entries.get("entities").is_some() || entries.get("routes").is_some())
        {
            let span = entries
                .get("entities")
                .or(entries.get("routes"))
                .map_or(value.span, |n| n.span);
            self.d
                .error(
                    span,
                    format!("{what} uses a capability and cannot also declare entities or routes"),
                )
                .hint("put your own entities in a service of their own");
        }
        Some(Service {
            name,
            description,
            uses,
            store,
            auth_emit,
            entities,
            routes,
            consumers,
            messages,
            rpcs,
            calls,
            constants,
            transport,
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
                let id = Field {
                    name: Name {
                        value: "id".into(),
                        span: get.span,
                    },
                    ty: Type::Uuid,
                };
                let row = Field {
                    name: record.clone(),
                    ty: Type::Message(record.value.clone()),
                };
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
            ("caller" | "id", false) => {
                self.d.error(node.span, format!("`${root}` has no fields"));
                None
            }
            (root, _) if ident::is_snake(root) => Some(Expr::Path {
                root: name(root),
                fields,
            }),
            _ => {
                self.d.error(node.span, format!("invalid value `{text}`"))
                    .hint("values: `$caller`, `$id`, `$input.<field>`, `$<step>.<field>`, or a literal");
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

    fn entity(&mut self, key: &Node, value: &Node) -> Option<Entity> {
        let name = self.declared_name(key, "entity name")?;
        let entries = self.entries(value, &format!("entity `{}`", name.value), ENTITY_KEYS);
        let description = entries
            .get("description")
            .and_then(|n| self.text(n, "description"));
        let owner = entries
            .get("owner")
            .and_then(|n| self.name(n, "owner field"));
        if let Some(owner) = owner
            .as_ref()
            .filter(|o| IMPLICIT_FIELDS.contains(&o.value.as_str()))
        {
            self.d
                .error(
                    owner.span,
                    format!(
                        "the owner field cannot be `{}`: svcgen adds that field to every entity",
                        owner.value
                    ),
                )
                .hint("name it after the user, e.g. `owner_id`");
        }
        let fields = match entries.get("fields") {
            Some(node) => self.each(Some(node), "fields", |r, k, v| r.field(k, v)),
            None => {
                self.d.error(
                    value.span,
                    format!("entity `{}` has no `fields`", name.value),
                );
                Vec::new()
            }
        };
        for field in &fields {
            if IMPLICIT_FIELDS.contains(&field.name.as_str())
                || owner.as_ref().is_some_and(|o| o.value == field.name.value)
            {
                self.d.error(field.name.span, format!("field `{}` is added by svcgen and cannot be declared", field.name.value))
                    .hint("every entity has `id`, `created_at` and `updated_at`; `owner:` adds the owner field");
            }
        }
        let mut indexes = Vec::new();
        if let Some(node) = entries.get("indexes") {
            match &node.kind {
                Kind::Seq(items) => {
                    for item in items {
                        match &item.kind {
                            Kind::Seq(columns) if !columns.is_empty() => {
                                indexes.push(
                                    columns
                                        .iter()
                                        .filter_map(|c| self.name(c, "index field"))
                                        .collect(),
                                );
                            }
                            _ => {
                                self.d.error(item.span, "an index is a list of field names, e.g. `[owner_id, created_at]`");
                            }
                        }
                    }
                }
                _ => {
                    self.d.error(
                        node.span,
                        "`indexes` must be a list of field lists, e.g. `- [owner_id, created_at]`",
                    );
                }
            }
        }
        Some(Entity {
            name,
            description,
            owner,
            fields,
            indexes,
        })
    }

    fn route(&mut self, key: &Node, value: &Node) -> Option<Route> {
        let text = self.text(key, "route")?;
        let (method, path) = self.route_key(key, &text)?;
        let entries = self.entries(value, &format!("route `{text}`"), ROUTE_KEYS);
        let operations: Vec<(Operation, &Node)> = [
            Operation::Create,
            Operation::List,
            Operation::Get,
            Operation::Update,
            Operation::Delete,
        ]
        .into_iter()
        .filter_map(|op| entries.get(op.keyword()).map(|n| (op, n)))
        .collect();
        let (operation, entity_node) = match operations.as_slice() {
            [one] => *one,
            [] => {
                self.d.error(value.span, format!("route `{text}` does nothing"))
                    .hint("give it one operation: `create`, `list`, `get`, `update` or `delete`, with the entity as value");
                return None;
            }
            [_, second, ..] => {
                self.d.error(
                    second.1.span,
                    format!("route `{text}` has more than one operation"),
                );
                return None;
            }
        };
        let entity = self.name(entity_node, "entity name")?;
        let emit = entries.get("emit").and_then(|n| self.event_name(n));
        let public = entries
            .get("public")
            .and_then(|n| self.flag(n, "`public`"))
            .unwrap_or(false);
        let roles = entries
            .get("roles")
            .map(|n| self.names(n, "role"))
            .unwrap_or_default();
        let (mut per_ip, mut per_user) = (Limit::Default, Limit::Default);
        if let Some(limits) = entries.get("rate_limit") {
            let limits = self.entries(
                limits,
                &format!("`rate_limit` of route `{text}`"),
                ROUTE_LIMIT_KEYS,
            );
            per_ip = limits
                .get("per_ip")
                .map_or(Limit::Default, |n| self.limit(n));
            per_user = limits
                .get("per_user")
                .map_or(Limit::Default, |n| self.limit(n));
        }
        let body_limit = entries.get("body_limit").and_then(|n| self.size(n));
        let timeout_ms = entries.get("timeout").and_then(|n| self.duration_ms(n));
        let input = entries
            .get("input")
            .map(|n| self.each(Some(n), "input", |r, k, v| r.field(k, v)));
        let steps = match entries.get("steps") {
            Some(node) => self.seq(node, "`steps`", |r, item| r.step(item)),
            None => Vec::new(),
        };
        let set = self.assignments(entries.get("set"));
        if operation != Operation::Create
            && let Some((key, node)) = ["input", "steps", "set"]
                .iter()
                .find_map(|k| entries.get(k).map(|n| (k, n)))
        {
            self.d
                .error(node.span, format!("`{key}` is only for `create` routes"));
        }
        let needs_id = matches!(
            operation,
            Operation::Get | Operation::Update | Operation::Delete
        );
        let has_id = path.ends_with("/{id}");
        if needs_id && !has_id {
            self.d
                .error(
                    key.span,
                    format!(
                        "`{}` needs the row's id: its path must end in `/{{id}}`",
                        operation.keyword()
                    ),
                )
                .hint(format!(
                    "e.g. `{} {}/{{id}}`",
                    method.as_str(),
                    path.trim_end_matches('/')
                ));
        } else if !needs_id && path.contains('{') {
            self.d.error(
                key.span,
                format!("`{}` routes take no path parameters", operation.keyword()),
            );
        }
        Some(Route {
            method,
            path,
            span: key.span,
            operation,
            entity,
            emit,
            public,
            roles,
            per_ip,
            per_user,
            body_limit,
            timeout_ms,
            input,
            steps,
            set,
        })
    }

    fn route_key(&mut self, key: &Node, text: &str) -> Option<(Method, String)> {
        let mut parts = text.split_whitespace();
        let (Some(method), Some(path), None) = (parts.next(), parts.next(), parts.next()) else {
            self.d.error(
                key.span,
                format!("route `{text}` must be written `METHOD /path`, e.g. `GET /notes`"),
            );
            return None;
        };
        let method = match method {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            other => {
                let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
                let hint = did_you_mean(&other.to_ascii_uppercase(), methods);
                self.d
                    .error(key.span, format!("unknown HTTP method `{other}`"))
                    .hint(hint.unwrap_or_else(|| "methods: GET, POST, PUT, PATCH, DELETE".into()));
                return None;
            }
        };
        let segments_ok = path.starts_with('/')
            && path.len() > 1
            && path[1..].split('/').all(|s| {
                s == "{id}"
                    || (!s.is_empty()
                        && s.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
                        }))
            });
        if !segments_ok {
            self.d
                .error(key.span, format!("`{path}` is not a route path"))
                .hint("use lower-case segments and `{id}`, e.g. `/notes/{id}`");
            return None;
        }
        Some((method, path.to_string()))
    }

    fn consumer(&mut self, key: &Node, value: &Node) -> Option<Consumer> {
        let event = self.event_name(key)?;
        let entries = self.entries(
            value,
            &format!("consumer of `{}`", event.value),
            CONSUMER_KEYS,
        );
        let Some(notify) = entries.get("notify") else {
            self.d.error(value.span, format!("the consumer of `{}` does nothing", event.value)).hint("give it an action, e.g. `notify: { user: user_id, kind: welcome, message: ... }`");
            return None;
        };
        let fields = self.entries(notify, "`notify`", NOTIFY_KEYS);
        let required = |r: &mut Self, key: &str| match fields.get(key) {
            Some(node) => r.text(node, key).map(|value| Name {
                value,
                span: node.span,
            }),
            None => {
                r.d.error(notify.span, format!("`notify` needs `{key}`"));
                None
            }
        };
        let to = match (fields.get("user"), fields.get("role")) {
            (Some(user), None) => self.text(user, "user").map(|value| {
                Recipient::User(Name {
                    value,
                    span: user.span,
                })
            }),
            (None, Some(role)) => self.name(role, "role").map(Recipient::Role),
            (Some(_), Some(role)) => {
                self.d.error(
                    role.span,
                    "`notify` goes to a `user` or to a `role`, not both",
                );
                None
            }
            (None, None) => {
                self.d
                    .error(
                        notify.span,
                        "`notify` needs `user` (an event field) or `role`",
                    )
                    .hint("e.g. `user: user_id`, or `role: admin` for every admin");
                None
            }
        };
        let kind = required(self, "kind");
        let message = required(self, "message");
        if let Some((kind, problem)) = kind
            .as_ref()
            .and_then(|k| ident::snake_problem(&k.value).map(|p| (k, p)))
        {
            self.d.error(kind.span, problem);
        }
        let critical = entries
            .get("critical")
            .and_then(|n| self.flag(n, "`critical`"))
            .unwrap_or(false);
        let attempts = entries
            .get("attempts")
            .and_then(|n| self.count(n, "`attempts`", 1, 100))
            .unwrap_or(DEFAULT_ATTEMPTS);
        Some(Consumer {
            event,
            critical,
            attempts,
            action: Action::Notify {
                to: to?,
                kind: kind?,
                message: message?,
            },
        })
    }

    fn field(&mut self, key: &Node, value: &Node) -> Option<Field> {
        let name = self.name(key, "field name")?;
        if let Kind::Seq(items) = &value.kind {
            let inner = items.first().and_then(Node::as_str).unwrap_or("string");
            self.d
                .error(
                    value.span,
                    format!("the type of `{}` is written as a YAML list", name.value),
                )
                .hint(format!("quote list types: `{}: \"[{inner}]\"`", name.value));
            return None;
        }
        let text = self.text(value, &format!("type of `{}`", name.value))?;
        match parse_type(&text) {
            Ok(ty) => Some(Field { name, ty }),
            Err((message, hint)) => {
                self.d.error(value.span, message).hint(hint);
                None
            }
        }
    }

    // --- scalars and shapes ---

    fn entries<'a>(&mut self, node: &'a Node, what: &str, known: &[&str]) -> Entries<'a> {
        let mut entries = Vec::new();
        match &node.kind {
            Kind::Map(items) => {
                for (key, value) in items {
                    let Some(k) = key.as_str() else {
                        self.d
                            .error(key.span, format!("keys of {what} must be words"));
                        continue;
                    };
                    if known.contains(&k) {
                        entries.push((k, key, value));
                    } else {
                        let hint = did_you_mean(k, known.iter().copied());
                        let listed = known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        self.d
                            .error(key.span, format!("unknown key `{k}` in {what}"))
                            .hint(hint.unwrap_or_else(|| format!("allowed here: {listed}")));
                    }
                }
            }
            Kind::Null => {}
            _ => {
                self.d.error(
                    node.span,
                    format!("{what} must be a mapping, found {}", node.shape()),
                );
            }
        }
        Entries { entries }
    }

    /// Calls `each` for every entry of an optional mapping of named things.
    fn each<T>(
        &mut self,
        node: Option<&Node>,
        what: &str,
        mut each: impl FnMut(&mut Self, &Node, &Node) -> Option<T>,
    ) -> Vec<T> {
        let Some(node) = node else { return Vec::new() };
        match &node.kind {
            Kind::Map(items) => items.iter().filter_map(|(k, v)| each(self, k, v)).collect(),
            Kind::Null => Vec::new(),
            _ => {
                self.d.error(
                    node.span,
                    format!("`{what}` must be a mapping, found {}", node.shape()),
                );
                Vec::new()
            }
        }
    }

    /// `brokers: [rabbitmq, nats]`; RabbitMQ when absent.
    fn brokers(&mut self, node: Option<&Node>) -> Vec<Broker> {
        let Some(node) = node else {
            return vec![Broker::Rabbitmq];
        };
        let mut brokers = Vec::new();
        for (text, span) in self.texts(node, "brokers") {
            match text.as_str() {
                "rabbitmq" => brokers.push(Broker::Rabbitmq),
                "nats" => brokers.push(Broker::Nats),
                other => {
                    let hint = did_you_mean(other, ["rabbitmq", "nats"])
                        .unwrap_or_else(|| "brokers: `rabbitmq`, `nats`".into());
                    self.d
                        .error(span, format!("unknown broker `{other}`"))
                        .hint(hint);
                }
            }
        }
        if brokers.is_empty() {
            self.d
                .error(node.span, "`brokers` lists no broker")
                .hint("e.g. `brokers: [rabbitmq]`");
        }
        brokers.sort();
        brokers.dedup();
        brokers
    }

    /// A list of names, e.g. `[user, admin]`.
    fn names(&mut self, node: &Node, what: &str) -> Vec<Name> {
        match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .filter_map(|item| self.name(item, what))
                .collect(),
            _ => {
                self.d.error(
                    node.span,
                    format!("a list of {what}s is expected, e.g. `[admin]`"),
                );
                Vec::new()
            }
        }
    }

    /// A list of free texts, e.g. origins.
    fn texts(&mut self, node: &Node, what: &str) -> Vec<(String, Span)> {
        match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .filter_map(|item| self.text(item, what).map(|t| (t, item.span)))
                .collect(),
            _ => {
                self.d.error(node.span, format!("`{what}` must be a list"));
                Vec::new()
            }
        }
    }

    fn cors(&mut self, node: &Node) -> Option<Cors> {
        let entries = self.entries(node, "`cors`", CORS_KEYS);
        let origins = entries
            .get("origins")
            .map(|n| self.texts(n, "origins"))
            .unwrap_or_default();
        let credentials = entries
            .get("credentials")
            .and_then(|n| self.flag(n, "`credentials`"))
            .unwrap_or(false);
        if origins.is_empty() {
            self.d
                .error(
                    node.span,
                    "`cors` needs `origins`: the web origins allowed to call the API",
                )
                .hint("e.g. `cors: { origins: [https://app.example.com] }`, or `[\"*\"]` for any");
        }
        for (origin, span) in &origins {
            let scheme = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let valid =
                origin == "*" || scheme.is_some_and(|host| !host.is_empty() && !host.contains('/'));
            if !valid {
                self.d
                    .error(*span, format!("`{origin}` is not an origin"))
                    .hint("write `https://host[:port]` without a path, or `*`");
            }
        }
        if origins.len() > 1 && origins.iter().any(|(o, _)| o == "*") {
            self.d
                .error(
                    node.span,
                    "origin `*` allows every origin and cannot be listed with others",
                )
                .hint("keep only `\"*\"`, or list the origins");
        }
        let methods = entries
            .get("methods")
            .map(|n| self.texts(n, "methods"))
            .unwrap_or_default();
        for (method, span) in &methods {
            if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
                .contains(&method.as_str())
            {
                self.d
                    .error(*span, format!("`{method}` is not an HTTP method"))
                    .hint("methods: GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS");
            }
        }
        let headers = entries
            .get("headers")
            .map(|n| self.texts(n, "headers"))
            .unwrap_or_default();
        for (header, span) in &headers {
            if header.is_empty()
                || !header
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                self.d
                    .error(*span, format!("`{header}` is not a header name"))
                    .hint("letters, digits and `-`, e.g. `x-request-id`");
            }
        }
        if credentials && origins.iter().any(|(o, _)| o == "*") {
            self.d
                .error(
                    node.span,
                    "`credentials: true` cannot be combined with origin `*`",
                )
                .hint("list the origins that may send credentials");
        }
        let max_age_secs = entries
            .get("max_age")
            .and_then(|n| self.duration(n))
            .map_or(600, |s| s as u64);
        let methods = entries
            .get("methods")
            .map(|n| self.texts(n, "methods"))
            .unwrap_or_default();
        let headers = entries
            .get("headers")
            .map(|n| self.texts(n, "headers"))
            .unwrap_or_default();
        Some(Cors {
            origins: origins.into_iter().map(|(o, _)| o).collect(),
            methods: methods.into_iter().map(|(m, _)| m).collect(),
            headers: headers.into_iter().map(|(h, _)| h).collect(),
            credentials,
            max_age_secs,
        })
    }

    /// `10/min`, `5/s`, `1000/h`, or `off`.
    fn limit(&mut self, node: &Node) -> Limit {
        let Some(text) = self.text(node, "rate limit") else {
            return Limit::Default;
        };
        if text == "off" {
            return Limit::Off;
        }
        let parsed = text.split_once('/').and_then(|(count, unit)| {
            let requests: u32 = count.trim().parse().ok().filter(|n| *n > 0)?;
            let per_secs = match unit.trim() {
                "s" | "sec" | "second" => 1,
                "min" | "minute" => 60,
                "h" | "hour" => 3600,
                _ => return None,
            };
            Some(Limit::Rate { requests, per_secs })
        });
        parsed.unwrap_or_else(|| {
            self.d
                .error(node.span, format!("`{text}` is not a rate limit"))
                .hint("write requests per unit, e.g. `10/min`, `5/s`, `1000/h`, or `off`");
            Limit::Default
        })
    }

    /// `512KiB`, `1MiB`, `2000B`.
    fn size(&mut self, node: &Node) -> Option<u64> {
        let text = self.text(node, "size")?;
        let (number, factor) = if let Some(n) = text.strip_suffix("MiB") {
            (n, 1024 * 1024)
        } else if let Some(n) = text.strip_suffix("KiB") {
            (n, 1024)
        } else if let Some(n) = text.strip_suffix('B') {
            (n, 1)
        } else {
            ("", 0)
        };
        let parsed = number
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .and_then(|n| n.checked_mul(factor));
        if parsed.is_none() {
            self.d
                .error(node.span, format!("`{text}` is not a size"))
                .hint("write a whole number and a unit: `64KiB`, `1MiB`, `5000B`");
        }
        parsed
    }

    /// A duration in milliseconds: `500ms`, `5s`, `2m`.
    fn duration_ms(&mut self, node: &Node) -> Option<u64> {
        let millis = node
            .as_str()
            .and_then(|t| t.strip_suffix("ms"))
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n > 0);
        if millis.is_some() {
            return millis;
        }
        self.duration(node).map(|secs| secs as u64 * 1000)
    }

    fn flag(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.as_str() {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => {
                self.d
                    .error(node.span, format!("{what} must be `true` or `false`"));
                None
            }
        }
    }

    fn count(&mut self, node: &Node, what: &str, min: u32, max: u32) -> Option<u32> {
        let value = node
            .as_str()
            .and_then(|t| t.parse::<u32>().ok())
            .filter(|n| (min..=max).contains(n));
        if value.is_none() {
            self.d.error(
                node.span,
                format!("{what} must be a whole number from {min} to {max}"),
            );
        }
        value
    }

    fn text(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.as_str() {
            Some(text) => Some(text.to_string()),
            None => {
                self.d.error(
                    node.span,
                    format!("{what} must be a single value, found {}", node.shape()),
                );
                None
            }
        }
    }

    fn name(&mut self, node: &Node, what: &str) -> Option<Name> {
        let value = self.text(node, what)?;
        if let Some(problem) = ident::snake_problem(&value) {
            self.d
                .error(node.span, format!("invalid {what}: {problem}"));
            return None;
        }
        Some(Name {
            value,
            span: node.span,
        })
    }

    /// The name of something declared here: an invalid one is reported, and what it names is
    /// still read (under the name as written) so that its own problems are reported too.
    fn declared_name(&mut self, node: &Node, what: &str) -> Option<Name> {
        let value = self.text(node, what)?;
        if let Some(problem) = ident::snake_problem(&value) {
            self.d
                .error(node.span, format!("invalid {what}: {problem}"));
        }
        Some(Name {
            value,
            span: node.span,
        })
    }

    fn event_name(&mut self, node: &Node) -> Option<Name> {
        let value = self.text(node, "event name")?;
        let segments: Vec<&str> = value.split('.').collect();
        if segments.len() < 2 || segments.iter().any(|s| !ident::is_snake(s)) {
            let suggestion = ident::to_snake(&value).replacen('_', ".", 1);
            self.d.error(node.span, format!("invalid event name `{value}`: use dotted lower snake_case, e.g. `user.registered`"))
                .hint(format!("perhaps `{suggestion}`"));
            return None;
        }
        Some(Name {
            value,
            span: node.span,
        })
    }

    fn duration(&mut self, node: &Node) -> Option<i64> {
        let text = self.text(node, "duration")?;
        let parsed = text.len().checked_sub(1).and_then(|split| {
            let (number, unit) = text.split_at(split);
            let n: i64 = number.parse().ok().filter(|n| *n > 0)?;
            let factor = match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                _ => return None,
            };
            n.checked_mul(factor)
        });
        if parsed.is_none() {
            self.d
                .error(node.span, format!("`{text}` is not a duration"))
                .hint("write a whole number and a unit: `90s`, `15m`, `12h`, `30d`");
        }
        parsed
    }
}

/// Parses a field type: `string(1..200)`, `[string]?`, `uuid`, ...
pub fn parse_type(text: &str) -> Result<Type, (String, String)> {
    let text = text.trim();
    if let Some(inner) = text.strip_suffix('?') {
        let inner = parse_type(inner)?;
        if matches!(inner, Type::Optional(_)) {
            return Err((
                format!("`{text}`: a type can be optional only once"),
                "remove one `?`".into(),
            ));
        }
        return Ok(Type::Optional(Box::new(inner)));
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let inner = parse_type(inner)?;
        if matches!(inner, Type::List(_) | Type::Optional(_)) {
            return Err((
                format!("`{text}`: lists hold plain values"),
                "use e.g. `[string]` or `[string]?`".into(),
            ));
        }
        return Ok(Type::List(Box::new(inner)));
    }
    if let Some(bounds) = text
        .strip_prefix("string(")
        .and_then(|t| t.strip_suffix(')'))
    {
        let hint = || {
            "write the length bounds as `string(MIN..MAX)`, e.g. `string(1..200)`, `string(3..)` or `string(..80)`".to_string()
        };
        let Some((min, max)) = bounds.split_once("..") else {
            return Err((format!("`{text}` has malformed bounds"), hint()));
        };
        let bound = |b: &str| {
            if b.trim().is_empty() {
                Ok(None)
            } else {
                b.trim().parse::<u32>().map(Some)
            }
        };
        let (Ok(min), Ok(max)) = (bound(min), bound(max)) else {
            return Err((format!("`{text}` has malformed bounds"), hint()));
        };
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            return Err((
                format!("`{text}`: the minimum length {lo} is above the maximum {hi}"),
                format!("perhaps `string({hi}..{lo})`"),
            ));
        }
        if max == Some(0) {
            return Err((
                format!("`{text}`: a maximum length of 0 allows only the empty string"),
                hint(),
            ));
        }
        return Ok(Type::String { min, max });
    }
    match text {
        "string" => Ok(Type::String {
            min: None,
            max: None,
        }),
        "text" => Ok(Type::Text),
        "int" => Ok(Type::Int),
        "bool" => Ok(Type::Bool),
        "uuid" => Ok(Type::Uuid),
        "email" => Ok(Type::Email),
        "timestamp" => Ok(Type::Timestamp),
        // A message or entity of the service; the validator checks that it exists.
        other
            if ident::is_snake(other)
                && did_you_mean(other, TYPE_NAMES.iter().copied()).is_none() =>
        {
            Ok(Type::Message(other.into()))
        }
        other => {
            let word = other.split(['(', '[', '?']).next().unwrap_or(other);
            let hint = did_you_mean(word, TYPE_NAMES.iter().copied()).unwrap_or_else(|| {
                "types: string, string(MIN..MAX), text, int, bool, uuid, email, timestamp, [T] for lists, T? when optional".into()
            });
            Err((format!("unknown type `{other}`"), hint))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_type() {
        assert_eq!(
            parse_type("string(1..200)").unwrap(),
            Type::String {
                min: Some(1),
                max: Some(200)
            }
        );
        assert_eq!(
            parse_type("string(..80)").unwrap(),
            Type::String {
                min: None,
                max: Some(80)
            }
        );
        assert_eq!(
            parse_type("[string]?").unwrap(),
            Type::Optional(Box::new(Type::List(Box::new(Type::String {
                min: None,
                max: None
            }))))
        );
        assert_eq!(
            parse_type("timestamp?").unwrap(),
            Type::Optional(Box::new(Type::Timestamp))
        );
        for (bad, hint) in [
            ("strng", "did you mean `string`?"),
            ("integer", "did you mean `int`?"),
        ] {
            let (message, h) = parse_type(bad).unwrap_err();
            assert!(message.contains(bad));
            assert_eq!(h, hint);
        }
        assert!(parse_type("string(10..2)").is_err());
        assert!(parse_type("uuid??").is_err());
        assert!(parse_type("[[int]]").is_err());
    }
}
