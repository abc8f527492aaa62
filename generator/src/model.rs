//! The resolved model of a system: what the spec means, with no YAML left in it. Every later stage
//! (validate, plan, render) reads only this.

use crate::diag::Span;

/// A name as written in the spec, with its position (for references that may be wrong).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The name.
    pub value: String,
    /// Where it was written.
    pub span: Span,
}

impl Name {
    /// The name's text.
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

/// One whole system: everything one spec describes.
#[derive(Debug, Clone)]
pub struct System {
    /// `system:`, e.g. `notes`.
    pub name: Name,
    /// What the system is for.
    pub description: Option<String>,
    /// The API gateway.
    pub gateway: Gateway,
    /// Token settings, when a service issues tokens.
    pub auth: Option<Auth>,
    /// Stores, in spec order.
    pub stores: Vec<Store>,
    /// Events, in spec order.
    pub events: Vec<Event>,
    /// Services, in spec order.
    pub services: Vec<Service>,
    /// Message brokers the distributed mode can use (which one is configuration).
    pub brokers: Vec<Broker>,
    /// Breaking changes its authors accept, each as `svcgen diff` names it (`acknowledged:`).
    pub acknowledged: Vec<Name>,
}

/// A message broker of distributed mode; embedded mode always has its in-process bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Broker {
    /// RabbitMQ (AMQP 0-9-1).
    Rabbitmq,
    /// NATS JetStream.
    Nats,
}

impl Broker {
    /// The spec keyword, also the runtime's cargo feature.
    pub fn keyword(self) -> &'static str {
        match self {
            Broker::Rabbitmq => "rabbitmq",
            Broker::Nats => "nats",
        }
    }
}

impl System {
    /// Whether a route's steps take a payment (through the runtime's demo provider).
    pub fn takes_payments(&self) -> bool {
        self.services
            .iter()
            .flat_map(|service| &service.routes)
            .flat_map(|route| &route.steps)
            .any(|step| matches!(step.action, StepAction::Pay { .. }))
    }

    /// The services that produce `event` and those that consume it, in spec order.
    pub fn parties(&self, event: &str) -> (Vec<&str>, Vec<&str>) {
        let producers = self
            .services
            .iter()
            .filter(|s| s.emitted_events().any(|e| e.value == event));
        let consumers = self
            .services
            .iter()
            .filter(|s| s.consumers.iter().any(|c| c.event.value == event));
        (
            producers.map(|s| s.name.as_str()).collect(),
            consumers.map(|s| s.name.as_str()).collect(),
        )
    }
}

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Port of the gateway (embedded and distributed default).
    pub port: u16,
    /// Prefix of every API route, e.g. `/api/v1`.
    pub prefix: String,
    /// Cross-origin access for browsers; `None`: off.
    pub cors: Option<Cors>,
    /// Largest request body, bytes (default 1 MiB).
    pub body_limit: Option<u64>,
    /// How long a service may take to answer, milliseconds (default 30 s).
    pub timeout_ms: Option<u64>,
    /// Default rate limit per client IP of every route.
    pub per_ip: Limit,
    /// Default rate limit per signed-in user of every route.
    pub per_user: Limit,
    /// Limit per client IP of the routes that take credentials (default 10/min).
    pub credentials: Limit,
}

/// A rate limit as the spec sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Limit {
    /// Not set here: the default applies.
    #[default]
    Default,
    /// No limit.
    Off,
    /// `requests` per `per_secs` seconds.
    Rate {
        /// Requests per period (and burst).
        requests: u32,
        /// The period, seconds.
        per_secs: u64,
    },
}

/// Cross-origin resource sharing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// Allowed origins (`*` for any).
    pub origins: Vec<String>,
    /// Allowed methods (empty: the runtime's default list).
    pub methods: Vec<String>,
    /// Allowed request headers (empty: the runtime's default list).
    pub headers: Vec<String>,
    /// Whether browsers may send credentials.
    pub credentials: bool,
    /// How long a preflight answer may be cached, seconds.
    pub max_age_secs: u64,
}

/// Token settings.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The service that issues tokens (it must use the `auth` capability).
    pub service: Name,
    /// Access token lifetime, seconds.
    pub access_token_ttl: i64,
    /// Refresh token lifetime, seconds.
    pub refresh_token_ttl: i64,
    /// The roles accounts can have (always with `user` and `admin`).
    pub roles: Vec<Name>,
}

/// A database owned by one service.
#[derive(Debug, Clone)]
pub struct Store {
    /// Store name.
    pub name: Name,
    /// Engine in distributed mode (embedded mode always uses SQLite).
    pub engine: Engine,
    /// What it holds.
    pub description: Option<String>,
}

/// A database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Engine {
    /// One SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
    /// A MySQL or MariaDB database.
    Mysql,
}

impl Engine {
    /// The engine as specs, migration directories and URL schemes name it.
    pub fn keyword(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        }
    }
}

/// An event with a typed payload.
#[derive(Debug, Clone)]
pub struct Event {
    /// Dotted name, e.g. `user.registered`.
    pub name: Name,
    /// What happened.
    pub description: Option<String>,
    /// Version of the payload schema.
    pub version: u32,
    /// Whether the event travels ahead of standard ones, in queues of its own.
    pub critical: bool,
    /// Payload fields.
    pub fields: Vec<Field>,
}

impl Event {
    /// A payload field by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name.value == name)
    }
}

/// A typed field of an entity, event or message.
#[derive(Debug, Clone)]
pub struct Field {
    /// Field name.
    pub name: Name,
    /// Its type.
    pub ty: Type,
    /// What an entity's field promises beyond its type (none elsewhere).
    pub rules: Rules,
}

impl Field {
    /// A field with no rules beyond its type.
    pub fn plain(name: Name, ty: Type) -> Field {
        Field {
            name,
            ty,
            rules: Rules::default(),
        }
    }
}

/// The rules of an entity's field beyond its type, written in the field's long form
/// (`{ type: ..., unique: true, default: ..., references: ... }`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// What the field holds.
    pub description: Option<String>,
    /// No two rows have the same value (`unique: true`).
    pub unique: bool,
    /// The value a row gets when a create leaves the field out.
    pub default: Option<FieldDefault>,
    /// The row of another entity of the same store the value names.
    pub references: Option<Reference>,
    /// The field's earlier name (`renamed_from:`): the migration renames that column, keeping
    /// its values, instead of asking what to do with a column the spec no longer has.
    pub renamed_from: Option<Name>,
    /// The SQL expression that fills the field in the rows a table already holds
    /// (`backfill:`), when a migration adds it as a required field without a default, or makes
    /// an optional field required.
    pub backfill: Option<String>,
}

/// A field's default value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDefault {
    /// The value.
    pub value: DefaultValue,
    /// Where it was written.
    pub span: Span,
}

/// What a default is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultValue {
    /// A text or enum word.
    Text(String),
    /// A whole number.
    Int(i64),
    /// `true` or `false`.
    Bool(bool),
    /// `$now`, or `$now + <duration>`: the time of the create, plus this many seconds.
    Now {
        /// Seconds added to the current time.
        plus_secs: i64,
    },
}

/// A field that names a row of another entity (a foreign key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The entity whose `id` the field holds.
    pub entity: Name,
    /// What deleting that row does to rows that name it.
    pub on_delete: OnDelete,
}

/// What deleting a referenced row does to the rows that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDelete {
    /// The delete is refused (409) while rows name it.
    #[default]
    Restrict,
    /// The rows that name it are deleted with it.
    Cascade,
    /// The field of the rows that name it is cleared (the field must be optional).
    SetNull,
}

impl OnDelete {
    /// The spec keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            OnDelete::Restrict => "restrict",
            OnDelete::Cascade => "cascade",
            OnDelete::SetNull => "set_null",
        }
    }
}

/// A field type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// Short text with optional bounds on its length in characters.
    String {
        /// Minimum length.
        min: Option<u32>,
        /// Maximum length.
        max: Option<u32>,
    },
    /// Long text.
    Text,
    /// 64-bit integer, with optional inclusive bounds.
    Int {
        /// Smallest value allowed.
        min: Option<i64>,
        /// Largest value allowed.
        max: Option<i64>,
    },
    /// One of a fixed list of words (`enum(draft|published)`), carried as text.
    Enum(Vec<String>),
    /// Boolean.
    Bool,
    /// UUID.
    Uuid,
    /// An e-mail address (validated).
    Email,
    /// A point in time (UTC).
    Timestamp,
    /// A list of values.
    List(Box<Type>),
    /// A value that may be absent.
    Optional(Box<Type>),
    /// A structured value: a message or entity of the same service (`order_line`).
    Message(String),
}

impl Type {
    /// `int`: any 64-bit integer.
    pub const INT: Type = Type::Int {
        min: None,
        max: None,
    };

    /// The type without its optional wrapper.
    pub fn required(&self) -> &Type {
        match self {
            Type::Optional(inner) => inner,
            other => other,
        }
    }

    /// Whether values of `self` can be stored where `target` is expected (for event contracts).
    pub fn fits(&self, target: &Type) -> bool {
        match (self, target) {
            (Type::Optional(a), Type::Optional(b)) => a.fits(b),
            (a, Type::Optional(b)) => a.fits(b),
            (Type::Optional(_), _) => false,
            (Type::List(a), Type::List(b)) => a.fits(b),
            (
                Type::String { .. } | Type::Text | Type::Email | Type::Enum(_),
                Type::String { .. } | Type::Text,
            ) => true,
            (Type::Enum(words), Type::Enum(allowed)) => words.iter().all(|w| allowed.contains(w)),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }

    /// The type as written in a spec.
    pub fn spec_text(&self) -> String {
        match self {
            Type::String {
                min: None,
                max: None,
            } => "string".into(),
            Type::String { min, max } => format!(
                "string({}..{})",
                min.map(|m| m.to_string()).unwrap_or_default(),
                max.map(|m| m.to_string()).unwrap_or_default()
            ),
            Type::Text => "text".into(),
            Type::Int {
                min: None,
                max: None,
            } => "int".into(),
            Type::Int { min, max } => format!(
                "int({}..{})",
                min.map(|m| m.to_string()).unwrap_or_default(),
                max.map(|m| m.to_string()).unwrap_or_default()
            ),
            Type::Enum(words) => format!("enum({})", words.join("|")),
            Type::Bool => "bool".into(),
            Type::Uuid => "uuid".into(),
            Type::Email => "email".into(),
            Type::Timestamp => "timestamp".into(),
            Type::List(inner) => format!("[{}]", inner.spec_text()),
            Type::Optional(inner) => format!("{}?", inner.spec_text()),
            Type::Message(name) => name.clone(),
        }
    }
}

/// A service: one crate, one process in distributed mode, one store.
#[derive(Debug, Clone)]
pub struct Service {
    /// Service name.
    pub name: Name,
    /// What it does.
    pub description: Option<String>,
    /// Built-in capability it provides.
    pub uses: Option<Capability>,
    /// Its store.
    pub store: Option<Name>,
    /// Events the `auth` capability emits.
    pub auth_emit: AuthEmit,
    /// Entities it owns.
    pub entities: Vec<Entity>,
    /// HTTP routes it serves through the gateway, each an operation on an entity.
    pub routes: Vec<Route>,
    /// HTTP routes it serves through the gateway, each backed by an RPC (`rpc:`).
    pub rpc_routes: Vec<RpcRoute>,
    /// HTTP routes it serves through the gateway with its authors' own code
    /// (`handler: custom`).
    pub custom_routes: Vec<CustomRoute>,
    /// Events it consumes.
    pub consumers: Vec<Consumer>,
    /// Structured types its routes and RPCs use (`messages:`).
    pub messages: Vec<Message>,
    /// The gRPC operations it serves to other services (`rpc:`).
    pub rpcs: Vec<Rpc>,
    /// The RPCs of other services it may call (`calls:`).
    pub calls: Vec<RpcRef>,
    /// Named integer values its SQL can use as `:name` (`constants:`).
    pub constants: Vec<(Name, i64)>,
    /// How the gateway reaches it (`transport:`).
    pub transport: Transport,
    /// Its scheduled jobs (`jobs:`).
    pub jobs: Vec<Job>,
    /// Entities it had and has no more, whose tables the next migration drops (`removed:`).
    pub removed: Vec<Name>,
}

/// The method, path and access of a route of either kind.
#[derive(Debug, Clone, Copy)]
pub struct RouteKey<'s> {
    /// HTTP method.
    pub method: Method,
    /// Path below the gateway prefix.
    pub path: &'s str,
    /// Where the route key was written.
    pub span: Span,
    /// Whether callers need no token.
    pub public: bool,
    /// Roles of which the caller needs one.
    pub roles: &'s [Name],
}

/// A job a service runs on a schedule.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its name.
    pub name: Name,
    /// What it does.
    pub description: Option<String>,
    /// When it runs.
    pub schedule: JobSchedule,
    /// Its actions (`sql` and `emit`), in order, in one transaction.
    pub actions: Vec<Action>,
    /// Its work as the user's own code (`handler: custom`), instead of actions.
    pub custom: Option<CustomCode>,
}

/// What a piece of the user's own code (other than a route's) serves.
#[derive(Debug, Clone, Copy)]
pub enum CodeOwner<'s> {
    /// A consumer: the code gets each event.
    Consumer(&'s Consumer),
    /// A scheduled job: the code runs at each tick.
    Job(&'s Job),
    /// An RPC: the code gets the request and answers the response.
    Rpc(&'s Rpc),
}

/// The user's own code behind a consumer, a job or an RPC (`handler: custom`).
#[derive(Debug, Clone)]
pub struct CustomCode {
    /// The function (and its file): `name:`, else `on_<event>` for a consumer (dots as `_`)
    /// and the job's name for a job.
    pub name: Name,
    /// The events the code may emit.
    pub emit: Vec<Name>,
}

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobSchedule {
    /// Every so many seconds (`every: 1h`).
    Every(u64),
    /// At the times of a cron expression, in UTC (`cron: "0 3 * * *"`).
    Cron(String),
}

/// How the gateway reaches a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// HTTP: requests are forwarded as they came.
    #[default]
    Http,
    /// gRPC: each route is also an RPC of the service's `<Name>ApiService`, which the gateway
    /// calls, turning JSON into messages and back.
    Grpc,
}

impl Service {
    /// Every event this service emits (from its routes and its capability).
    pub fn emitted_events(&self) -> impl Iterator<Item = &Name> {
        self.routes
            .iter()
            .filter_map(|r| r.emit.as_ref())
            .chain(self.custom_routes.iter().flat_map(|r| &r.emit))
            .chain(self.custom_code().flat_map(|(_, code)| &code.emit))
            .chain(self.auth_emit.events().map(|(_, name)| name))
            .chain(self.rpcs.iter().flat_map(|rpc| match &rpc.kind {
                RpcKind::Sql(statements) => {
                    statements.iter().filter_map(|s| s.emit.as_ref()).collect()
                }
                RpcKind::Get { .. } | RpcKind::Custom(_) => Vec::new(),
            }))
            .chain(
                self.consumers
                    .iter()
                    .flat_map(|c| &c.actions)
                    .chain(self.jobs.iter().flat_map(|j| &j.actions))
                    .filter_map(|action| match action {
                        Action::Emit { event, .. } => Some(event),
                        _ => None,
                    }),
            )
    }

    /// The user's code of its consumers, jobs and RPCs (`handler: custom`), each with what
    /// it serves.
    pub fn custom_code(&self) -> impl Iterator<Item = (CodeOwner<'_>, &CustomCode)> {
        let consumers = self
            .consumers
            .iter()
            .filter_map(|c| Some((CodeOwner::Consumer(c), c.custom.as_ref()?)));
        let jobs = self
            .jobs
            .iter()
            .filter_map(|j| Some((CodeOwner::Job(j), j.custom.as_ref()?)));
        let rpcs = self.rpcs.iter().filter_map(|rpc| match &rpc.kind {
            RpcKind::Custom(code) => Some((CodeOwner::Rpc(rpc), code)),
            _ => None,
        });
        consumers.chain(jobs).chain(rpcs)
    }

    /// What the gateway needs of each of its routes, both kinds, in spec order by kind.
    pub fn route_keys(&self) -> Vec<RouteKey<'_>> {
        let entity = self.routes.iter().map(|r| RouteKey {
            method: r.method,
            path: &r.path,
            span: r.span,
            public: r.public,
            roles: &r.roles,
        });
        let rpc = self.rpc_routes.iter().map(|r| RouteKey {
            method: r.method,
            path: &r.path,
            span: r.span,
            public: r.public,
            roles: &r.roles,
        });
        let custom = self.custom_routes.iter().map(|r| RouteKey {
            method: r.method,
            path: &r.path,
            span: r.span,
            public: r.public,
            roles: &r.roles,
        });
        entity.chain(rpc).chain(custom).collect()
    }

    /// An entity by name.
    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name.value == name)
    }

    /// The entities with every referenced entity before the entities that reference it (spec
    /// order otherwise), or the entities on a cycle of references.
    pub fn entities_in_reference_order(&self) -> Result<Vec<&Entity>, Vec<&Entity>> {
        let mut placed: Vec<&Entity> = Vec::new();
        let mut waiting: Vec<&Entity> = self.entities.iter().collect();
        while !waiting.is_empty() {
            let ready = waiting.iter().position(|entity| {
                entity.references().all(|(_, r)| {
                    r.entity.value == entity.name.value
                        || self.entity(r.entity.as_str()).is_none()
                        || placed.iter().any(|p| p.name.value == r.entity.value)
                })
            });
            match ready {
                Some(at) => placed.push(waiting.remove(at)),
                None => break,
            }
        }
        if waiting.is_empty() {
            return Ok(placed);
        }
        // What is left references a cycle or is on one; those that nothing left references
        // are not on one.
        loop {
            let referenced = |entity: &Entity, among: &[&Entity]| {
                among.iter().any(|other| {
                    other.name.value != entity.name.value
                        && other
                            .references()
                            .any(|(_, r)| r.entity.value == entity.name.value)
                })
            };
            let before = waiting.len();
            let among = waiting.clone();
            waiting.retain(|entity| referenced(entity, &among));
            if waiting.len() == before {
                return Err(waiting);
            }
        }
    }

    /// An RPC by name.
    pub fn rpc(&self, name: &str) -> Option<&Rpc> {
        self.rpcs.iter().find(|r| r.name.value == name)
    }

    /// The fields of a structured type this service knows: a message, an entity (every
    /// column), or, in a service that uses `auth`, the built-in `user` account.
    pub fn record(&self, name: &str) -> Option<Vec<Field>> {
        if let Some(message) = self.messages.iter().find(|m| m.name.value == name) {
            return Some(message.fields.clone());
        }
        if let Some(entity) = self.entity(name) {
            let span = entity.name.span;
            return Some(
                entity
                    .columns()
                    .into_iter()
                    .map(|c| Field {
                        name: Name {
                            value: c.name,
                            span,
                        },
                        ty: c.ty,
                        rules: c.rules,
                    })
                    .collect(),
            );
        }
        if self.uses == Some(Capability::Auth) && name == "user" {
            let span = self.name.span;
            return Some(
                auth_account_fields()
                    .into_iter()
                    .map(|(field, ty)| Field {
                        name: Name {
                            value: field.into(),
                            span,
                        },
                        ty,
                        rules: Rules::default(),
                    })
                    .collect(),
            );
        }
        None
    }
}

/// The fields of an account as the `auth` capability's built-in `user` record exposes it.
pub fn auth_account_fields() -> Vec<(&'static str, Type)> {
    vec![
        ("id", Type::Uuid),
        ("email", Type::Email),
        (
            "username",
            Type::String {
                min: None,
                max: None,
            },
        ),
        (
            "roles",
            Type::List(Box::new(Type::String {
                min: None,
                max: None,
            })),
        ),
        ("created_at", Type::Timestamp),
    ]
}

/// A named structured type (`messages:`).
#[derive(Debug, Clone)]
pub struct Message {
    /// Its name, e.g. `order_line`.
    pub name: Name,
    /// What it holds.
    pub description: Option<String>,
    /// Its fields.
    pub fields: Vec<Field>,
}

/// A reference to another service's RPC: `product.ReserveStock`.
#[derive(Debug, Clone)]
pub struct RpcRef {
    /// The service.
    pub service: Name,
    /// The RPC.
    pub rpc: Name,
    /// Where the reference was written.
    pub span: Span,
}

impl RpcRef {
    /// `service.Rpc`.
    pub fn text(&self) -> String {
        format!("{}.{}", self.service.value, self.rpc.value)
    }
}

/// A gRPC operation a service serves.
#[derive(Debug, Clone)]
pub struct Rpc {
    /// Its name in PascalCase, e.g. `ReserveStock`.
    pub name: Name,
    /// What it does.
    pub description: Option<String>,
    /// Whether calling it twice has the effect of calling it once (callers may then retry).
    pub idempotent: bool,
    /// What backs it.
    pub kind: RpcKind,
    /// The request's fields.
    pub request: Vec<Field>,
    /// The response's fields.
    pub response: Vec<Field>,
}

/// What backs an RPC.
#[derive(Debug, Clone)]
pub enum RpcKind {
    /// One row of an entity (or the `auth` account) by id: request `{id}`, response the row
    /// under the record's name; NOT_FOUND when there is none.
    Get {
        /// The entity (or `user`).
        record: Name,
    },
    /// Named SQL statements run in one transaction.
    Sql(Vec<Statement>),
    /// The user's own code (`handler: custom`), in one transaction.
    Custom(CustomCode),
}

/// One SQL statement of an RPC.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The SQL, with `:name` parameters.
    pub sql: String,
    /// Where the SQL was written.
    pub span: Span,
    /// A list field of the request: the statement runs once per element, whose fields are
    /// parameters too.
    pub for_each: Option<Name>,
    /// When each run must touch (or return) a row, the gRPC status otherwise.
    pub expect: Option<Expectation>,
    /// The response field the returned rows fill.
    pub into: Option<Name>,
    /// An event emitted for each returned row (columns named as its fields).
    pub emit: Option<Name>,
}

/// The failure of a statement that touched no row.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// The gRPC status, e.g. `failed_precondition`.
    pub status: Name,
    /// The message, with `{field}` placeholders of the statement's parameters.
    pub message: String,
}

/// gRPC status codes a spec can name, with the HTTP status the gateway maps them to.
pub const RPC_STATUSES: &[(&str, u16)] = &[
    ("invalid_argument", 400),
    ("not_found", 404),
    ("already_exists", 409),
    ("permission_denied", 403),
    ("failed_precondition", 409),
    ("aborted", 409),
    ("resource_exhausted", 429),
    ("unavailable", 503),
];

/// A value in a route's steps: `$caller`, `$id`, `$input.items`, `$reserved.total_cents`,
/// or a literal.
#[derive(Debug, Clone)]
pub enum Expr {
    /// The signed-in caller's user id.
    Caller,
    /// The signed-in caller's roles (`$caller.roles`).
    CallerRoles,
    /// The id of the row the route creates.
    Id,
    /// A path into the request body (`input`) or a step's result.
    Path {
        /// `input` or a step's `as` name.
        root: Name,
        /// Field names below it.
        fields: Vec<Name>,
    },
    /// A text literal.
    Text(String),
    /// An integer literal.
    Int(i64),
    /// A boolean literal.
    Bool(bool),
    /// `$now`, or `$now + <duration>`: the current time, plus this many seconds.
    Now {
        /// Seconds added to the current time.
        plus_secs: i64,
    },
}

impl Expr {
    /// Whether the value is read from an earlier step's result (which arrives in protobuf
    /// form), rather than from the request, the caller or a literal.
    pub fn reads_step_result(&self) -> bool {
        matches!(self, Expr::Path { root, .. } if root.value != "input" && root.value != "event")
    }
}

/// One step of a route backed by a saga.
#[derive(Debug, Clone)]
pub struct Step {
    /// What the step does.
    pub action: StepAction,
    /// The name later steps use for its result.
    pub name: Option<Name>,
    /// What undoes it when a later step fails.
    pub undo: Option<Call>,
    /// Where the step was written.
    pub span: Span,
}

/// An RPC call with its arguments.
#[derive(Debug, Clone)]
pub struct Call {
    /// The RPC.
    pub target: RpcRef,
    /// Request fields and their values.
    pub with: Vec<(Name, Expr)>,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum StepAction {
    /// Call another service.
    Call(Call),
    /// Take a payment (mock provider): declined -> 402; undone by a refund.
    Pay {
        /// Amount in cents.
        amount_cents: Expr,
        /// Card number (optional: without one the charge goes on account).
        card: Expr,
    },
}

/// A built-in capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Accounts: register, login, tokens.
    Auth,
    /// In-app notifications.
    Notify,
}

/// Events emitted by the `auth` capability.
#[derive(Debug, Clone, Default)]
pub struct AuthEmit {
    /// After an account is created.
    pub registered: Option<Name>,
    /// After each successful login.
    pub logged_in: Option<Name>,
    /// When a password reset is requested for an existing account (carries the reset token).
    pub password_reset: Option<Name>,
}

impl AuthEmit {
    /// Every configured event with its `emit` key (`registered`, `logged_in`, `password_reset`).
    pub fn events(&self) -> impl Iterator<Item = (&'static str, &Name)> {
        [
            ("registered", &self.registered),
            ("logged_in", &self.logged_in),
            ("password_reset", &self.password_reset),
        ]
        .into_iter()
        .filter_map(|(key, name)| name.as_ref().map(|n| (key, n)))
    }
}

/// A stored entity (one table).
#[derive(Debug, Clone)]
pub struct Entity {
    /// Entity name, e.g. `note`.
    pub name: Name,
    /// What it is.
    pub description: Option<String>,
    /// The field holding the owning user's id, when rows belong to users.
    pub owner: Option<Name>,
    /// Who may read its rows (an entity without owner: everyone the route admits).
    pub read: Read,
    /// Roles whose holders read and change every row as if it were theirs (`managers:`).
    pub managers: Vec<Name>,
    /// Declared fields (implicit ones are added by [`Entity::columns`]).
    pub fields: Vec<Field>,
    /// Indexes, each a list of field names.
    pub indexes: Vec<Vec<Name>>,
    /// Keys no two rows share, each a list of field names (`unique:`; a field's own
    /// `unique: true` is a key of one field, listed by [`Entity::unique_keys`]).
    pub unique: Vec<Vec<Name>>,
    /// The text fields its lists search with `?q=` (`search:`), in one index.
    pub search: Vec<Name>,
    /// Fields it had and has no more, whose columns the next migration drops (`removed:`).
    pub removed: Vec<Name>,
    /// The entity's earlier name (`renamed_from:`): the migration renames that table, keeping
    /// its rows.
    pub renamed_from: Option<Name>,
}

/// Who may read the rows of an entity (`read:`); only their owner, or a manager, changes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Only the row's owner (the default of an owned entity).
    Owner,
    /// Everyone the route admits (an entity without owner is always read so).
    All,
    /// Everyone when the row's `bool` field is true, else only its owner (`read: { if: f }`).
    If(Name),
}

/// A column of an entity's table, implicit or declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column and field name.
    pub name: String,
    /// Its type.
    pub ty: Type,
    /// What sets it.
    pub source: ColumnSource,
    /// Its rules (a declared field's; none for the implicit columns).
    pub rules: Rules,
}

/// Who sets a column's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnSource {
    /// The primary key, a UUIDv7 made by the service.
    Id,
    /// The caller's user id.
    Owner,
    /// The client, in the request body.
    Input,
    /// Creation time.
    CreatedAt,
    /// Last change time.
    UpdatedAt,
    /// How many times the row was written (1 when created); the database counts the changes.
    Version,
}

impl Entity {
    /// Every column in table order: id, owner, declared fields, created_at, updated_at,
    /// version.
    pub fn columns(&self) -> Vec<Column> {
        let implicit = |name: &str, ty: Type, source: ColumnSource| Column {
            name: name.into(),
            ty,
            source,
            rules: Rules::default(),
        };
        let mut columns = vec![implicit("id", Type::Uuid, ColumnSource::Id)];
        if let Some(owner) = &self.owner {
            columns.push(implicit(&owner.value, Type::Uuid, ColumnSource::Owner));
        }
        columns.extend(self.fields.iter().map(|f| Column {
            name: f.name.value.clone(),
            ty: f.ty.clone(),
            source: ColumnSource::Input,
            rules: f.rules.clone(),
        }));
        columns.push(implicit(
            "created_at",
            Type::Timestamp,
            ColumnSource::CreatedAt,
        ));
        columns.push(implicit(
            "updated_at",
            Type::Timestamp,
            ColumnSource::UpdatedAt,
        ));
        columns.push(implicit("version", Type::INT, ColumnSource::Version));
        columns
    }

    /// The fields of the body that creates a row: the declared fields, those with a default
    /// made optional (left out, they take the default).
    pub fn create_fields(&self) -> Vec<Field> {
        self.fields
            .iter()
            .map(|f| match (&f.rules.default, &f.ty) {
                (Some(_), ty) if !matches!(ty, Type::Optional(_)) => Field {
                    ty: Type::Optional(Box::new(ty.clone())),
                    ..f.clone()
                },
                _ => f.clone(),
            })
            .collect()
    }

    /// Every key no two rows share, in declaration order: each field's own `unique: true`,
    /// then the entity's `unique:` lists.
    pub fn unique_keys(&self) -> Vec<Vec<&str>> {
        let single = self
            .fields
            .iter()
            .filter(|f| f.rules.unique)
            .map(|f| vec![f.name.as_str()]);
        let listed = self
            .unique
            .iter()
            .map(|key| key.iter().map(Name::as_str).collect());
        single.chain(listed).collect()
    }

    /// The fields that name rows of other entities, with what they reference.
    pub fn references(&self) -> impl Iterator<Item = (&Field, &Reference)> {
        self.fields
            .iter()
            .filter_map(|f| f.rules.references.as_ref().map(|r| (f, r)))
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<Column> {
        self.columns().into_iter().find(|c| c.name == name)
    }

    /// The column an event field of this name is filled from: the column of that name, or the
    /// id for `<entity>_id` (a `note.created` event's `note_id` is the note's `id`).
    pub fn event_source(&self, field: &str) -> Option<Column> {
        self.column(field).or_else(|| {
            (field == format!("{}_id", self.name.value))
                .then(|| self.column("id"))
                .flatten()
        })
    }
}

/// An HTTP method a route can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl Method {
    /// Upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// A CRUD operation on an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Insert from the request body.
    Create,
    /// Page through rows (the caller's own when owned).
    List,
    /// One row by id.
    Get,
    /// Change some fields of one row.
    Update,
    /// Remove one row.
    Delete,
}

impl Operation {
    /// The spec keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::List => "list",
            Operation::Get => "get",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// A route a service serves through the gateway.
#[derive(Debug, Clone)]
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path below the gateway prefix, e.g. `/notes/{id}`.
    pub path: String,
    /// Where the route key was written.
    pub span: Span,
    /// What it does.
    pub operation: Operation,
    /// On which entity.
    pub entity: Name,
    /// Event to emit after the change.
    pub emit: Option<Name>,
    /// Whether callers need no token.
    pub public: bool,
    /// Roles of which the caller needs one (empty: any signed-in user).
    pub roles: Vec<Name>,
    /// A list of only the caller's own rows (`mine: true`).
    pub mine: bool,
    /// The fields a list filters on (`filter:`).
    pub filter: Vec<Name>,
    /// The fields a list sorts on besides `created_at` (`sort:`).
    pub sort: Vec<Name>,
    /// This route's limit per client IP.
    pub per_ip: Limit,
    /// This route's limit per user.
    pub per_user: Limit,
    /// This route's body limit, bytes.
    pub body_limit: Option<u64>,
    /// This route's timeout, milliseconds.
    pub timeout_ms: Option<u64>,
    /// The body's fields when they are not the entity's (`input:`).
    pub input: Option<Vec<Field>>,
    /// Steps run before the row is written (`steps:`), undone in reverse on failure.
    pub steps: Vec<Step>,
    /// Column values of the created row (`set:`), or the set change of an `update` route.
    pub set: Vec<(Name, Expr)>,
    /// What the row must hold for an `update` with `set` to apply (`when:`): 409 otherwise.
    pub when: Vec<(Name, Expr)>,
}

/// The names of the parameters of `path`, in order (`/posts/{post_id}/comments/{id}`:
/// `post_id`, `id`).
pub fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

impl Route {
    /// The names of its path's parameters, in order (`/posts/{post_id}/comments/{id}`:
    /// `post_id`, `id`).
    pub fn params(&self) -> Vec<&str> {
        path_params(&self.path)
    }

    /// Whether its path names the row by `{id}`.
    pub fn has_id(&self) -> bool {
        self.params().contains(&"id")
    }

    /// Whether it is a `create` backed by steps, its own input or set values.
    pub fn has_steps(&self) -> bool {
        self.operation == Operation::Create
            && (!self.steps.is_empty() || self.input.is_some() || !self.set.is_empty())
    }

    /// Whether it is a `create` that keeps an existing row: a `PUT` creates the row its path
    /// names, or answers the one that exists.
    pub fn keeps_existing(&self) -> bool {
        self.operation == Operation::Create && self.method == Method::Put
    }
}

/// A route backed by an RPC (`rpc: Name` of the service, or `rpc: service.Name` of one it
/// calls): the request made of the path's parameters, `with` values and the body (or, for
/// `GET` and `DELETE`, the query string); the answer the RPC's response.
#[derive(Debug, Clone)]
pub struct RpcRoute {
    /// HTTP method.
    pub method: Method,
    /// Path below the gateway prefix, e.g. `/posts/{post_id}/stats`.
    pub path: String,
    /// Where the route key was written.
    pub span: Span,
    /// What it does (documentation).
    pub description: Option<String>,
    /// The RPC; its service is the route's own when the spec names the RPC alone.
    pub target: RpcRef,
    /// Request fields given by the spec: `$caller`, `$caller.roles`, `$now` or literals.
    pub with: Vec<(Name, Expr)>,
    /// Whether callers need no token.
    pub public: bool,
    /// Roles of which the caller needs one (empty: any signed-in user).
    pub roles: Vec<Name>,
    /// This route's limit per client IP.
    pub per_ip: Limit,
    /// This route's limit per user.
    pub per_user: Limit,
    /// This route's body limit, bytes.
    pub body_limit: Option<u64>,
    /// This route's timeout, milliseconds.
    pub timeout_ms: Option<u64>,
}

impl RpcRoute {
    /// The names of its path's parameters, in order.
    pub fn params(&self) -> Vec<&str> {
        path_params(&self.path)
    }

    /// Whether the rest of its request comes from the query string (`GET`, `DELETE`) rather
    /// than a JSON body.
    pub fn reads_query(&self) -> bool {
        matches!(self.method, Method::Get | Method::Delete)
    }
}

/// A route whose work is the user's own Rust (`handler: custom`): svcgen checks the caller,
/// reads and checks the path and the request, opens the transaction, and calls the user's
/// function, which answers with the output.
#[derive(Debug, Clone)]
pub struct CustomRoute {
    /// HTTP method.
    pub method: Method,
    /// Path below the gateway prefix.
    pub path: String,
    /// Where the route key was written.
    pub span: Span,
    /// The function's name: `name:`, else made from the method and the path
    /// (`POST /notes/{id}/share`: `post_notes_share`).
    pub name: Name,
    /// What it does (documentation).
    pub description: Option<String>,
    /// The request's fields: the JSON body's, or the query string's for `GET` and `DELETE`.
    pub input: Vec<Field>,
    /// The answer's fields.
    pub output: Vec<Field>,
    /// The events the function may emit, in its transaction.
    pub emit: Vec<Name>,
    /// Whether callers need no token.
    pub public: bool,
    /// Roles of which the caller needs one (empty: any signed-in user).
    pub roles: Vec<Name>,
    /// This route's limit per client IP.
    pub per_ip: Limit,
    /// This route's limit per user.
    pub per_user: Limit,
    /// This route's body limit, bytes.
    pub body_limit: Option<u64>,
    /// This route's timeout, milliseconds.
    pub timeout_ms: Option<u64>,
}

impl CustomRoute {
    /// The names of its path's parameters, in order.
    pub fn params(&self) -> Vec<&str> {
        path_params(&self.path)
    }

    /// Whether its request comes from the query string (`GET`, `DELETE`) rather than a JSON
    /// body.
    pub fn reads_query(&self) -> bool {
        matches!(self.method, Method::Get | Method::Delete)
    }

    /// The function name made from a method and a path: `post_notes_share` for
    /// `POST /notes/{id}/share` (parameters left out).
    pub fn default_name(method: Method, path: &str) -> String {
        let mut name = method.as_str().to_lowercase();
        for segment in path
            .split('/')
            .filter(|s| !s.is_empty() && !s.starts_with('{'))
        {
            name.push('_');
            name.push_str(&segment.replace('-', "_").to_lowercase());
        }
        name
    }
}

/// A consumer of an event.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// The event consumed.
    pub event: Name,
    /// Whether this consumer's queue is critical traffic.
    pub critical: bool,
    /// Attempts before the event is dead-lettered.
    pub attempts: u32,
    /// What to do with it, in order, in the transaction that records the event in the inbox.
    pub actions: Vec<Action>,
    /// Its work as the user's own code (`handler: custom`), instead of actions.
    pub custom: Option<CustomCode>,
}

/// One thing a consumer does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Store an in-app notification for a user (the `notify` capability).
    Notify {
        /// Who receives it.
        to: Recipient,
        /// Kind of notification, e.g. `welcome`.
        kind: Name,
        /// Message, with `{field}` placeholders.
        message: Name,
    },
    /// Create, upsert, update or delete rows of one of the service's entities.
    Write(Write),
    /// An SQL statement with `:field` parameters from the event.
    Sql {
        /// The SQL.
        sql: String,
        /// Where it was written.
        span: Span,
    },
    /// Emit an event (through the outbox, with the consumer's changes).
    Emit {
        /// The event.
        event: Name,
        /// Its fields' values; a field left out takes the consumed event's field of its name.
        with: Vec<(Name, Expr)>,
    },
    /// Call an RPC of another service, before the transaction (`call:`, `with:`, `as:`).
    Call {
        /// The RPC and its request values.
        call: Call,
        /// The name later actions read its response by (`$<name>.<field>`).
        name: Option<Name>,
    },
}

/// A change to rows of an entity made by a consumer.
#[derive(Debug, Clone)]
pub struct Write {
    /// What the change is.
    pub kind: WriteKind,
    /// The entity.
    pub entity: Name,
    /// Column values (`set:`).
    pub set: Vec<(Name, Expr)>,
    /// Which rows, each column equal to its value (`where:`; update and delete).
    pub filter: Vec<(Name, Expr)>,
    /// Where the action was written.
    pub span: Span,
}

/// What a consumer's write does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteKind {
    /// Insert a row.
    Create,
    /// Insert a row, or change the `set` columns of the row with the same key.
    Upsert {
        /// A unique key of the entity (or `id`).
        key: Vec<Name>,
    },
    /// Change the `set` columns of the rows `where` selects.
    Update,
    /// Delete the rows `where` selects.
    Delete,
}

impl WriteKind {
    /// The spec keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            WriteKind::Create => "create",
            WriteKind::Upsert { .. } => "upsert",
            WriteKind::Update => "update",
            WriteKind::Delete => "delete",
        }
    }
}

/// Who receives a notification.
#[derive(Debug, Clone)]
pub enum Recipient {
    /// The user whose id is in this event field (`user:`).
    User(Name),
    /// Every account with this role (`role:`), e.g. an alert for admins.
    Role(Name),
}

/// Fields the `auth` capability can put in the event it emits at `moment` (an `emit` key).
pub fn auth_event_fields(moment: &str) -> Vec<(&'static str, Type)> {
    let text = Type::String {
        min: None,
        max: None,
    };
    let mut fields = vec![
        ("user_id", Type::Uuid),
        ("email", Type::Email),
        ("username", text.clone()),
    ];
    if moment == "password_reset" {
        fields.extend([("token", text), ("expires_at", Type::Timestamp)]);
    }
    fields
}

/// The `{field}` placeholders of a message (a notification's text, an SQL failure's message).
pub fn placeholders(message: &str) -> Vec<&str> {
    message
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.trim()))
        .collect()
}
