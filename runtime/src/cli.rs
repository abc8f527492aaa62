//! The generated binary's `main`: one binary, three ways to run a system.
//!
//! * `run` — embedded: the gateway and every service in this process, a SQLite file per
//!   service, the in-process bus. Nothing to install.
//! * `gateway` — distributed: the gateway alone, calling services over HTTP.
//! * `serve <service>` — distributed: one service, on PostgreSQL (or SQLite) and a message
//!   broker (RabbitMQ or NATS JetStream, chosen by the URL in `SVCGEN_BROKER_URL`).
//!
//! Configuration comes from flags and environment variables (see the crate README).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::Router;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

mod memory;

use crate::bus::Bus;
use crate::capability::auth::PasswordHashing;
use crate::db::{CapabilityTables, Db, Migrations};
use crate::events::EventError;
use crate::gateway::{self, GatewayPolicy, GatewayRoute, Upstream};
use crate::identity::{DEFAULT_KID, JwtKey, JwtKeys, development_secret_problem};
use crate::jobs::JobDef;
use crate::rpc::env_key;
use crate::service::{ServiceContext, Settings, service_app};
use crate::telemetry;

pub use futures_util::future::BoxFuture;

/// One service of the system, as the generated `main.rs` declares it.
#[derive(Clone, Copy)]
pub struct ServiceDef {
    /// The service's name (`notes`).
    pub name: &'static str,
    /// Its own tables' migrations (its entities'; [`Migrations::NONE`] when it has none).
    pub migrations: &'static Migrations,
    /// The tables of the capability it uses, migrated before its own; `None` without one.
    pub capability: Option<&'static CapabilityTables>,
    /// Its scheduled jobs (`&[]` without).
    pub jobs: &'static [JobDef],
    /// Its routes (wrapped by [`service_app`]).
    pub routes: fn() -> Router<ServiceContext>,
    /// Registers the service's event consumers; [`no_consumers`] when it has none.
    pub consumers: fn(&ServiceContext) -> BoxFuture<'_, Result<(), EventError>>,
    /// Runs once when the service starts, after its migrations and before it subscribes or
    /// serves (embedded and distributed alike); an error stops the start. `None` for most
    /// services; `Some(svcgen_runtime::capability::auth::on_start)` for the auth service
    /// (first admin account).
    pub on_start: Option<StartHook>,
    /// How the gateway reaches the service over gRPC (its generated transcoder); `None`: over
    /// HTTP.
    pub grpc_gateway: Option<crate::rpc::GatewayAdapter>,
}

/// A [`ServiceDef::on_start`] hook.
pub type StartHook = fn(&ServiceContext) -> BoxFuture<'_, anyhow::Result<()>>;

/// A `ServiceDef::consumers` for services that consume no events.
pub fn no_consumers(_ctx: &ServiceContext) -> BoxFuture<'_, Result<(), EventError>> {
    Box::pin(async { Ok(()) })
}

/// The whole system, as the generated `main.rs` declares it.
#[derive(Clone, Copy)]
pub struct SystemDef {
    /// The system's name (`notes`): token issuer, default data directory, exchange name.
    pub name: &'static str,
    /// Default gateway port; in `serve` mode the n-th service (from 0) defaults to
    /// `default_port + 1 + n`.
    pub default_port: u16,
    /// Prefix of every gateway route (`/api/v1`).
    pub prefix: &'static str,
    /// Lifetime of access tokens, in seconds.
    pub access_token_ttl_secs: i64,
    /// Lifetime of refresh tokens, in seconds.
    pub refresh_token_ttl_secs: i64,
    /// The gateway's routes.
    pub routes: &'static [GatewayRoute],
    /// The gateway's policy (CORS, default rate limits, body limit, timeout), which routes
    /// can override; [`GatewayPolicy::DEFAULT`] for the defaults.
    pub gateway: GatewayPolicy,
    /// The services.
    pub services: &'static [ServiceDef],
}

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole system in this process: every service, a SQLite file per service, an
    /// in-process event bus, and the gateway.
    Run {
        /// Gateway port (0 picks a free one) [default: the system's port]
        #[arg(long, env = "SVCGEN_PORT")]
        port: Option<u16>,
        /// Directory for the SQLite files and generated secrets [default: ./.svcgen/<system>]
        #[arg(long, env = "SVCGEN_DATA_DIR")]
        data: Option<PathBuf>,
    },
    /// Run the gateway alone; service S is reached at $SVCGEN_<S>_URL.
    Gateway {
        /// Port to listen on (0 picks a free one) [default: the system's port]
        #[arg(long, env = "SVCGEN_PORT")]
        port: Option<u16>,
    },
    /// Run one service alone, on $<S>_DATABASE_URL and the message broker at
    /// $SVCGEN_BROKER_URL (RabbitMQ or NATS).
    Serve {
        /// The service to run.
        service: String,
        /// Port to listen on (0 picks a free one) [default: the system's port + 1 + the
        /// service's position in the spec]
        #[arg(long, env = "SVCGEN_PORT")]
        port: Option<u16>,
    },
}

/// Parses the command line, runs the chosen mode until Ctrl-C or SIGTERM, and shuts down
/// gracefully (in-flight requests finish, queues drain, pools close).
pub fn main(system: &'static SystemDef) -> ExitCode {
    let command = Cli::command()
        .name(system.name)
        .about(format!("The {} system (generated by svcgen).", system.name));
    let cli = match command
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(error) => {
            // Prints help/version to stdout and usage errors to stderr, like `exit()` would.
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    telemetry::init_tracing();
    memory::return_large_blocks();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { port, data } => run_embedded(system, port, data).await,
            Command::Gateway { port } => run_gateway(system, port).await,
            Command::Serve { service, port } => run_service(system, &service, port).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_embedded(
    system: &'static SystemDef,
    port: Option<u16>,
    data: Option<PathBuf>,
) -> anyhow::Result<()> {
    let data_dir = data.unwrap_or_else(|| Path::new(".svcgen").join(system.name));
    let embedded = Embedded::start(system, &data_dir).await?;
    let listener = bind(port.unwrap_or(system.default_port)).await?;
    println!("gateway listening on http://{}", listener.local_addr()?);
    tracing::info!(data_dir = %data_dir.display(), "embedded mode: every service in this process");
    let served = serve(listener, embedded.app.clone()).await;
    embedded.stop().await;
    served
}

/// A whole system in one process, ready to serve.
struct Embedded {
    /// The gateway, with every service behind it in process.
    app: Router,
    bus: Bus,
    databases: Vec<Db>,
    relays: Relays,
}

impl Embedded {
    /// Opens (and migrates) each service's SQLite file in `data_dir`, registers the consumers
    /// on an in-process bus and builds the gateway.
    async fn start(system: &'static SystemDef, data_dir: &Path) -> anyhow::Result<Embedded> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let secrets = EmbeddedSecrets::load_or_create(&data_dir.join("secrets.json"))?;
        let mut settings = Settings::new(
            system.name,
            secrets.jwt_secret.as_bytes(),
            secrets.internal_secret.as_bytes(),
            system.access_token_ttl_secs,
            system.refresh_token_ttl_secs,
        );
        apply_auth_env(&mut settings, &process_env)?;
        let settings = Arc::new(settings);
        let bus = Bus::in_process();

        let mut upstreams = BTreeMap::new();
        let mut databases = Vec::new();
        let mut contexts = Vec::new();
        for service in system.services {
            let url = sqlite_url(&data_dir.join(format!("{}.sqlite", service.name)));
            let db = start_database(service, &url).await?;
            let ctx = ServiceContext {
                service: service.name,
                db: db.clone(),
                bus: bus.clone(),
                settings: settings.clone(),
                events: Default::default(),
            };
            run_start_hook(service, &ctx).await?;
            register_consumers(service, &ctx).await?;
            let app = Upstream::InProcess(service_app(ctx.clone(), (service.routes)()));
            upstreams.insert(service.name, reached(app, service.grpc_gateway));
            databases.push(db);
            contexts.push((ctx, service.jobs));
        }
        // Services call each other through their apps in this process.
        settings.peers.set_local(
            upstreams
                .iter()
                .filter_map(|(name, upstream)| match upstream {
                    Upstream::InProcess(app) => Some((*name, app.clone())),
                    Upstream::Grpc { http, .. } => match http.as_ref() {
                        Upstream::InProcess(app) => Some((*name, app.clone())),
                        _ => None,
                    },
                    Upstream::Http(_) => None,
                })
                .collect(),
        );
        // Relays start once every consumer is subscribed: an in-process publish reaches only
        // the subscribers present at that moment.
        let relays = Relays::start(contexts);
        let app = gateway::router_with_policy(
            system.prefix,
            system.routes,
            &system.gateway,
            upstreams,
            settings,
        );
        Ok(Embedded {
            app,
            bus,
            databases,
            relays,
        })
    }

    /// Stops the relays, drains the event queues (handlers may still write), then closes the
    /// databases.
    async fn stop(self) {
        self.relays.stop().await;
        self.bus.close().await;
        for db in self.databases {
            db.close().await;
        }
    }
}

async fn run_gateway(system: &'static SystemDef, port: Option<u16>) -> anyhow::Result<()> {
    let settings = Arc::new(distributed_settings(system)?);
    let mut upstreams = BTreeMap::new();
    let mut missing = Vec::new();
    for service in system.services {
        let variable = format!("SVCGEN_{}_URL", env_key(service.name));
        match std::env::var(&variable) {
            Ok(url) if !url.trim().is_empty() => {
                let http = Upstream::Http(url.trim().to_owned());
                upstreams.insert(service.name, reached(http, service.grpc_gateway));
            }
            _ => missing.push(variable),
        }
    }
    if !missing.is_empty() {
        bail!(
            "the gateway needs the URL of every service; set {}",
            missing.join(", ")
        );
    }
    let app = gateway::router_with_policy(
        system.prefix,
        system.routes,
        &system.gateway,
        upstreams,
        settings,
    );
    let listener = bind(port.unwrap_or(system.default_port)).await?;
    println!("gateway listening on http://{}", listener.local_addr()?);
    serve(listener, app).await
}

async fn run_service(
    system: &'static SystemDef,
    name: &str,
    port: Option<u16>,
) -> anyhow::Result<()> {
    let Some(index) = system
        .services
        .iter()
        .position(|service| service.name == name)
    else {
        let known: Vec<&str> = system.services.iter().map(|service| service.name).collect();
        bail!(
            "unknown service `{name}`; the services are: {}",
            known.join(", ")
        );
    };
    let service = &system.services[index];
    let settings = Arc::new(distributed_settings(system)?);

    let db_variable = format!("{}_DATABASE_URL", env_key(service.name));
    let db_url = required_env(
        &db_variable,
        "the service's database, postgres://... or sqlite://...",
    )?;
    let broker = broker_from_env(system, &process_env)?;

    let db = start_database(service, &db_url).await?;
    let bus = Bus::connect(&broker.url, &broker.namespace)
        .await
        .with_context(|| format!("cannot use the message broker (${})", broker.url_variable))?;
    let ctx = ServiceContext {
        service: service.name,
        db: db.clone(),
        bus: bus.clone(),
        settings,
        events: Default::default(),
    };
    run_start_hook(service, &ctx).await?;
    register_consumers(service, &ctx).await?;
    let relays = Relays::start(vec![(ctx.clone(), service.jobs)]);

    let default_port = u16::try_from(index + 1)
        .ok()
        .and_then(|offset| system.default_port.checked_add(offset))
        .unwrap_or(0);
    let listener = bind(port.unwrap_or(default_port)).await?;
    println!(
        "service {} listening on http://{}",
        service.name,
        listener.local_addr()?
    );
    serve(listener, service_app(ctx, (service.routes)())).await?;

    relays.stop().await;
    bus.close().await;
    db.close().await;
    Ok(())
}

/// The outbox relays and job schedulers of the services running in this process.
struct Relays {
    stopping: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Relays {
    /// A relay for each service, and a scheduler for each one with jobs.
    fn start(services: Vec<(ServiceContext, &'static [JobDef])>) -> Relays {
        let (stopping, _) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for (ctx, jobs) in services {
            if !jobs.is_empty() {
                tasks.push(tokio::spawn(crate::jobs::schedule(
                    ctx.clone(),
                    jobs,
                    stopping.subscribe(),
                )));
            }
            tasks.push(tokio::spawn(crate::events::relay(
                ctx,
                stopping.subscribe(),
            )));
        }
        Relays { stopping, tasks }
    }

    /// Lets each relay finish its round and each job its run; what is left waits in the outbox
    /// for the next start.
    async fn stop(self) {
        let _ = self.stopping.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The service's upstream as the spec says the gateway reaches it: over HTTP, or over gRPC
/// through its generated adapter (same port; the HTTP side still answers `/health`).
fn reached(http: Upstream, grpc: Option<crate::rpc::GatewayAdapter>) -> Upstream {
    match grpc {
        Some(adapter) => Upstream::Grpc {
            http: Box::new(http),
            adapter,
        },
        None => http,
    }
}

async fn run_start_hook(service: &ServiceDef, ctx: &ServiceContext) -> anyhow::Result<()> {
    match service.on_start {
        Some(hook) => hook(ctx)
            .await
            .with_context(|| format!("service `{}` could not start", service.name)),
        None => Ok(()),
    }
}

async fn register_consumers(service: &ServiceDef, ctx: &ServiceContext) -> anyhow::Result<()> {
    (service.consumers)(ctx).await.with_context(|| {
        format!(
            "cannot subscribe the consumers of service `{}`",
            service.name
        )
    })
}

/// Connects to a service's database and brings its schema up to date.
async fn start_database(service: &ServiceDef, url: &str) -> anyhow::Result<Db> {
    let db = Db::connect(url)
        .await
        .with_context(|| format!("cannot open the database of service `{}`", service.name))?;
    if let Some(tables) = service.capability {
        db.migrate_capability(tables).await.with_context(|| {
            format!(
                "cannot migrate the capability tables of service `{}`",
                service.name
            )
        })?;
    }
    db.migrate(service.migrations)
        .await
        .with_context(|| format!("cannot migrate the database of service `{}`", service.name))?;
    crate::events::prepare(&db).await.with_context(|| {
        format!(
            "cannot create the event tables of service `{}`",
            service.name
        )
    })?;
    crate::jobs::prepare(&db, service.jobs)
        .await
        .with_context(|| format!("cannot create the job tables of service `{}`", service.name))?;
    Ok(db)
}

/// `SVCGEN_BIND` (default 127.0.0.1) and `port`; port 0 lets the OS pick a free port, which
/// the "listening on" line then reports.
async fn bind(port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    let ip = match std::env::var("SVCGEN_BIND") {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse::<IpAddr>()
            .with_context(|| format!("SVCGEN_BIND must be an IP address, got `{text}`"))?,
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let addr = SocketAddr::new(ip, port);
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

async fn serve(listener: tokio::net::TcpListener, app: Router) -> anyhow::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("the HTTP server failed")
}

/// Resolves on Ctrl-C or SIGTERM (what `docker stop` and Kubernetes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// Reads one environment variable of the process.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Settings from the environment: distributed processes must share secrets, so they are
/// never generated here.
fn distributed_settings(system: &SystemDef) -> anyhow::Result<Settings> {
    settings_from_env(system, &process_env)
}

/// [`distributed_settings`] with the variables read through `env`.
fn settings_from_env(
    system: &SystemDef,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Settings> {
    let jwt_keys = jwt_keys_from_env(env)?;
    let internal = secret_from_env(env, "SVCGEN_INTERNAL_SECRET")?;
    if env_value(env, "SVCGEN_JWT_SECRET").as_deref() == Some(internal.as_str()) {
        tracing::warn!(
            "SVCGEN_JWT_SECRET and SVCGEN_INTERNAL_SECRET are equal; use two different secrets"
        );
    }
    let mut settings = Settings::with_keys(
        system.name,
        &jwt_keys,
        internal.as_bytes(),
        system.access_token_ttl_secs,
        system.refresh_token_ttl_secs,
    );
    apply_auth_env(&mut settings, env)?;
    Ok(settings)
}

/// The access-token keys: `SVCGEN_JWT_SECRET` under the id `SVCGEN_JWT_KID` (default
/// [`DEFAULT_KID`]), and during a rotation `SVCGEN_JWT_PREVIOUS_SECRET` under the id
/// `SVCGEN_JWT_PREVIOUS_KID` (required then).
fn jwt_keys_from_env(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<JwtKeys> {
    let secret = secret_from_env(env, "SVCGEN_JWT_SECRET")?;
    let kid = env_value(env, "SVCGEN_JWT_KID").unwrap_or_else(|| DEFAULT_KID.to_owned());
    let current = JwtKey::new(kid.trim(), secret.as_bytes()).context("SVCGEN_JWT_KID")?;
    let keys = JwtKeys::new(current);
    if env_value(env, "SVCGEN_JWT_PREVIOUS_SECRET").is_none() {
        if env_value(env, "SVCGEN_JWT_PREVIOUS_KID").is_some() {
            tracing::warn!(
                "SVCGEN_JWT_PREVIOUS_KID is set without SVCGEN_JWT_PREVIOUS_SECRET; ignoring it"
            );
        }
        return Ok(keys);
    }
    let previous_secret = secret_from_env(env, "SVCGEN_JWT_PREVIOUS_SECRET")?;
    let Some(previous_kid) = env_value(env, "SVCGEN_JWT_PREVIOUS_KID") else {
        bail!(
            "SVCGEN_JWT_PREVIOUS_SECRET is set but SVCGEN_JWT_PREVIOUS_KID is not (the key id \
             the previous secret signed with, e.g. {DEFAULT_KID})"
        );
    };
    let previous = JwtKey::new(previous_kid.trim(), previous_secret.as_bytes())
        .context("SVCGEN_JWT_PREVIOUS_KID")?;
    keys.with_previous(previous)
        .context("SVCGEN_JWT_KID and SVCGEN_JWT_PREVIOUS_KID")
}

/// A secret fit for production, or why not (see [`development_secret_problem`]).
fn secret_from_env(env: &dyn Fn(&str) -> Option<String>, variable: &str) -> anyhow::Result<String> {
    let Some(secret) = env_value(env, variable) else {
        bail!("{variable} is not set (a random secret shared by the gateway and every service)");
    };
    if let Some(problem) = development_secret_problem(&secret) {
        bail!("{variable} is refused in distributed mode: {problem}");
    }
    Ok(secret)
}

/// The auth capability's settings every mode reads from the environment: argon2 parameters
/// (`SVCGEN_ARGON2_*`) and `SVCGEN_PASSWORD_RESET_TTL_SECS`.
fn apply_auth_env(
    settings: &mut Settings,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    settings.password_hashing = PasswordHashing::from_lookup(env)?;
    if let Some(text) = env_value(env, "SVCGEN_PASSWORD_RESET_TTL_SECS") {
        settings.password_reset_ttl_secs = text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|secs| *secs > 0)
            .with_context(|| {
                format!("SVCGEN_PASSWORD_RESET_TTL_SECS must be a positive number of seconds, got `{text}`")
            })?;
    }
    Ok(())
}

/// A variable's value, `None` when unset or blank.
fn env_value(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|value| !value.trim().is_empty())
}

/// Where `serve` finds its message broker.
#[derive(Debug, PartialEq, Eq)]
struct BrokerConfig {
    /// `amqp://...` (RabbitMQ) or `nats://...` (NATS).
    url: String,
    /// The variable `url` came from, for error messages (the URL itself may hold a password).
    url_variable: &'static str,
    /// RabbitMQ's exchange, or the prefix of NATS subjects.
    namespace: String,
}

/// `SVCGEN_BROKER_URL`, or the older `SVCGEN_AMQP_URL` when it is not set; the namespace from
/// `SVCGEN_BROKER_NAMESPACE`, or the older `SVCGEN_AMQP_EXCHANGE`, or `<system>.events`.
fn broker_from_env(
    system: &SystemDef,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<BrokerConfig> {
    let (url, url_variable) = match env_value(env, "SVCGEN_BROKER_URL") {
        Some(url) => (url, "SVCGEN_BROKER_URL"),
        None => match env_value(env, "SVCGEN_AMQP_URL") {
            Some(url) => (url, "SVCGEN_AMQP_URL"),
            None => bail!(
                "SVCGEN_BROKER_URL is not set (the message broker: amqp://guest:guest@127.0.0.1:5672/%2f for RabbitMQ, nats://127.0.0.1:4222 for NATS)"
            ),
        },
    };
    let namespace = env_value(env, "SVCGEN_BROKER_NAMESPACE")
        .or_else(|| env_value(env, "SVCGEN_AMQP_EXCHANGE"))
        .unwrap_or_else(|| format!("{}.events", system.name));
    Ok(BrokerConfig {
        url,
        url_variable,
        namespace: namespace.trim().to_owned(),
    })
}

fn required_env(variable: &str, meaning: &str) -> anyhow::Result<String> {
    match std::env::var(variable) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => bail!("{variable} is not set ({meaning})"),
    }
}

/// A `sqlite://` URL for a file path; `%`, `?` and `#` are escaped because sqlx reads the
/// path part of the URL percent-decoded and stops at `?`.
fn sqlite_url(path: &Path) -> String {
    let text = path
        .to_string_lossy()
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    format!("sqlite://{text}")
}

/// Secrets of an embedded run, generated on first start and kept in the data directory so
/// that tokens stay valid across restarts.
#[derive(Serialize, Deserialize)]
struct EmbeddedSecrets {
    jwt_secret: String,
    internal_secret: String,
}

impl EmbeddedSecrets {
    fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a valid secrets file; delete it to generate new secrets",
                    path.display()
                )
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let secrets = EmbeddedSecrets {
                    jwt_secret: random_secret(),
                    internal_secret: random_secret(),
                };
                write_private(path, &serde_json::to_vec_pretty(&secrets)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(secrets)
            }
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}

fn random_secret() -> String {
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

/// Writes a file readable by its owner only, atomically (a crash leaves no half-written file).
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_are_upper_snake_case() {
        assert_eq!(env_key("notes"), "NOTES");
        assert_eq!(env_key("user-profile"), "USER_PROFILE");
    }

    #[test]
    fn sqlite_urls_escape_special_characters() {
        assert_eq!(
            sqlite_url(Path::new("/tmp/a?b#c%d/x.sqlite")),
            "sqlite:///tmp/a%3Fb%23c%25d/x.sqlite"
        );
    }

    #[test]
    fn embedded_secrets_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        let first = EmbeddedSecrets::load_or_create(&path).unwrap();
        let second = EmbeddedSecrets::load_or_create(&path).unwrap();
        assert_eq!(first.jwt_secret, second.jwt_secret);
        assert_ne!(first.jwt_secret, first.internal_secret);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// A system declared the way generated code declares one: the auth capability, and a
    /// notification service that consumes `user.registered`.
    mod generated_like {
        use super::*;
        use crate::capability::{auth, notify};
        use crate::gateway::{RouteAuth, RoutePolicy};
        use uuid::Uuid;

        #[derive(Serialize, Deserialize)]
        pub(super) struct UserRegistered {
            user_id: Uuid,
            email: String,
            username: String,
        }

        impl crate::bus::Event for UserRegistered {
            const NAME: &'static str = "user.registered";
        }

        fn auth_routes() -> Router<ServiceContext> {
            auth::routes(auth::AuthEvents {
                registered: Some("user.registered"),
                logged_in: None,
                password_reset: None,
            })
        }

        fn notification_consumers(ctx: &ServiceContext) -> BoxFuture<'_, Result<(), EventError>> {
            Box::pin(async move {
                ctx.subscribe::<UserRegistered, _, _>(
                    crate::bus::RetryPolicy::default(),
                    false,
                    |envelope, event, mut tx| async move {
                        let message = format!("Welcome, {}!", event.username);
                        notify::notify(&mut tx, envelope.id, event.user_id, "welcome", &message)
                            .await?;
                        Ok(tx)
                    },
                )
                .await
            })
        }

        pub(super) static SYSTEM: SystemDef = SystemDef {
            name: "notes",
            default_port: 3000,
            prefix: "/api/v1",
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 86_400,
            routes: &[
                GatewayRoute {
                    method: "POST",
                    path: "/auth/register",
                    service: "auth",
                    auth: RouteAuth::Public,
                    roles: &[],
                    policy: RoutePolicy::DEFAULT,
                },
                GatewayRoute {
                    method: "GET",
                    path: "/auth/users",
                    service: "auth",
                    auth: RouteAuth::User,
                    roles: &["admin"],
                    policy: RoutePolicy::DEFAULT,
                },
                GatewayRoute {
                    method: "GET",
                    path: "/notifications",
                    service: "notification",
                    auth: RouteAuth::User,
                    roles: &[],
                    policy: RoutePolicy::DEFAULT,
                },
            ],
            gateway: GatewayPolicy::DEFAULT,
            services: &[
                ServiceDef {
                    name: "auth",
                    migrations: &Migrations::NONE,
                    capability: Some(&auth::TABLES),
                    jobs: &[],
                    routes: auth_routes,
                    consumers: no_consumers,
                    on_start: Some(auth::on_start),
                    grpc_gateway: None,
                },
                ServiceDef {
                    name: "notification",
                    migrations: &Migrations::NONE,
                    capability: Some(&notify::TABLES),
                    jobs: &[],
                    routes: notify::routes,
                    consumers: notification_consumers,
                    on_start: None,
                    grpc_gateway: None,
                },
            ],
        };
    }

    #[tokio::test]
    async fn an_embedded_system_works_end_to_end_and_survives_a_restart() {
        use crate::test_support::{call, request};
        use axum::http::{Method, StatusCode};
        use serde_json::{Value, json};

        let dir = tempfile::tempdir().unwrap();
        let system = &generated_like::SYSTEM;
        let embedded = Embedded::start(system, dir.path()).await.expect("start");
        assert!(dir.path().join("auth.sqlite").exists());
        assert!(dir.path().join("notification.sqlite").exists());

        let (status, body) = call(&embedded.app, request(Method::GET, "/health", None, &[])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["services"],
            json!({ "auth": "ok", "notification": "ok" })
        );

        let registration =
            json!({ "email": "ada@example.com", "username": "ada", "password": "correct horse" });
        let (status, body) = call(
            &embedded.app,
            request(
                Method::POST,
                "/api/v1/auth/register",
                Some(registration),
                &[],
            ),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());

        // The welcome notification arrives through the bus; wait for it (with a deadline).
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut page: Value;
        loop {
            let (status, body) = call(&embedded.app, list_request(&bearer)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            page = body;
            if !page["items"].as_array().unwrap().is_empty()
                || tokio::time::Instant::now() > deadline
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(page["items"][0]["message"], "Welcome, ada!");
        embedded.stop().await;

        // Same data directory: same secrets (the token still works) and same data.
        let restarted = Embedded::start(system, dir.path()).await.expect("restart");
        let (status, body) = call(&restarted.app, list_request(&bearer)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["items"].as_array().unwrap().len(), 1);
        restarted.stop().await;
    }

    fn list_request(bearer: &str) -> axum::http::Request<axum::body::Body> {
        crate::test_support::request(
            axum::http::Method::GET,
            "/api/v1/notifications",
            None,
            &[("authorization", bearer)],
        )
    }
}

#[cfg(test)]
mod env_tests;
