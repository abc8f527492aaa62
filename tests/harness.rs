//! Running generated systems in tests: building a generated workspace, starting its binary,
//! calling its gateway, and deciding what a test does when PostgreSQL or RabbitMQ is missing.
#![allow(dead_code)]

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support;

/// One target directory for every generated workspace the tests build.
pub fn target_dir() -> PathBuf {
    support::root().join("target").join("generated")
}

/// A generated workspace and the name of its binary.
pub struct System {
    /// The workspace directory.
    pub workspace: PathBuf,
    /// The system's name (its binary's name).
    pub name: String,
}

impl System {
    /// The committed `generated/<name>`.
    pub fn committed(name: &str) -> System {
        System {
            workspace: support::root().join("generated").join(name),
            name: name.into(),
        }
    }

    /// Generates `spec` (relative to the repository) into `target/svcgen-tests/<name>`.
    pub fn generate(spec: &str, name: &str) -> System {
        let source = std::fs::read_to_string(support::root().join(spec)).expect("spec readable");
        System::generate_text(&source, name)
    }

    /// Generates the spec `source` into `target/svcgen-tests/<name>`.
    pub fn generate_text(source: &str, name: &str) -> System {
        System::generate_over(source, name, Default::default())
    }

    /// Where [`System::generate_text`] writes the system `name`.
    pub fn out_dir(name: &str) -> PathBuf {
        support::root()
            .join("target")
            .join("svcgen-tests")
            .join(name)
    }

    /// Generates the spec `source` into `target/svcgen-tests/<name>`, over the migrations of
    /// `history` (what an earlier generation wrote there, as `svcgen generate` reads it).
    pub fn generate_over(source: &str, name: &str, history: svcgen::evolve::History) -> System {
        let out = System::out_dir(name);
        let options = svcgen::Options {
            spec_name: format!("{name}.yaml"),
            runtime_path: "../../../runtime".into(),
            history,
        };
        let (_, files) = svcgen::generate(source, &options)
            .unwrap_or_else(|problems| panic!("{name}: {problems:?}"));
        svcgen::write::write_tree(&out, &files).expect("generated tree written");
        System {
            workspace: out,
            name: name.into(),
        }
    }

    /// A workspace generated earlier at `workspace`.
    pub fn existing(workspace: &std::path::Path, name: &str) -> System {
        System {
            workspace: workspace.to_path_buf(),
            name: name.into(),
        }
    }

    /// `cargo <sub-command> --manifest-path <workspace> <args...>` in the shared target dir.
    pub fn cargo(&self, args: &[&str]) -> Command {
        let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        // The sub-command first, then the workspace, then its own arguments (which may end in `-- ...`).
        command
            .arg(args[0])
            .arg("--manifest-path")
            .arg(self.workspace.join("Cargo.toml"))
            .args(&args[1..])
            .env("CARGO_TARGET_DIR", target_dir());
        command
    }

    /// Builds the binary (a no-op when up to date) and returns its path.
    pub fn binary(&self) -> PathBuf {
        let status = self
            .cargo(&["build", "--bin", &self.name])
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "{} does not build",
            self.workspace.display()
        );
        target_dir().join("debug").join(&self.name)
    }
}

/// A running process of the generated binary, killed when dropped.
pub struct Running {
    child: Child,
    /// The address it reported.
    pub url: String,
    name: String,
}

impl Running {
    /// Starts `system`'s binary with `args` and waits for its "listening on" line.
    pub fn start(system: &System, name: &str, args: &[&str], env: &[(String, String)]) -> Running {
        let mut command = Command::new(system.binary());
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("RUST_LOG", "warn,lapin=off,async_nats=off");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the system binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        let label = name.to_string();
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.split("listening on ").nth(1)
                    && let Some(sender) = sender.take()
                {
                    let _ = sender.send(url.trim().to_string());
                }
                eprintln!("[{label}] {line}");
            }
        });
        let url = receiver
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("{name} did not report its address"));
        Running {
            child,
            url,
            name: name.to_string(),
        }
    }

    /// SIGTERM, then the exit status must be a clean one.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exited = self.child.wait().expect("wait");
        assert!(
            exited.success(),
            "{} did not shut down cleanly: {exited}",
            self.name
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of the gateway.
pub struct Api {
    /// The HTTP client.
    pub http: Client,
    /// `<gateway>/<prefix>`.
    pub base: String,
}

impl Api {
    /// A client of the gateway at `gateway` with the `/api/v1` prefix.
    pub fn new(gateway: &str) -> Api {
        Api {
            http: Client::new(),
            base: format!("{gateway}/api/v1"),
        }
    }

    /// One JSON request; the answer's status and JSON body (Null when not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self.call_with(method, path, token, &[], body).await;
        (status, body)
    }

    /// [`Api::call`] with request headers; the answer's headers too.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the gateway answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }
}

/// Registers an account named after `email`'s local part; its user id and access token.
pub async fn register(api: &Api, email: &str) -> (String, String) {
    let (status, body) = api
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(serde_json::json!({"email": email, "username": email.split('@').next().unwrap(), "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "register {email}: {body}");
    (
        body["user_id"].as_str().unwrap().to_owned(),
        body["access_token"].as_str().unwrap().to_owned(),
    )
}

/// A multi-threaded runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Whether something listens at `address`.
pub fn reachable(address: &str) -> bool {
    std::net::TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(2)).is_ok()
}

/// Whether the servers a test needs are up; when not, skips the test (or fails it under
/// SVCGEN_REQUIRE_INFRA=1) through [`support::skip_or_fail`].
pub fn infrastructure(test: &str, needs: &[(&str, &str)]) -> bool {
    let missing: Vec<String> = needs
        .iter()
        .filter(|(_, address)| !reachable(address))
        .map(|(name, address)| format!("{name} at {address}"))
        .collect();
    if missing.is_empty() {
        return true;
    }
    support::skip_or_fail(&format!("{test}: {} not reachable", missing.join(", ")));
    false
}

impl Running {
    /// `system` running embedded (every service in one process) on SQLite files in `data`.
    pub fn embedded(system: &System, name: &str, data: &std::path::Path) -> Running {
        let data = data.to_str().expect("a UTF-8 path");
        Running::start(system, name, &["run", "--port", "0", "--data", data], &[])
    }

    /// SIGKILL: the process gets no chance to finish anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every notification the caller has, newest first (all pages).
pub async fn all_notifications(api: &Api, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut path = "/notifications?limit=100".to_string();
    loop {
        let (status, page) = api.call(Method::GET, &path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/notifications?limit=100&cursor={cursor}"),
            None => return items,
        }
    }
}

/// The generated workspace is exactly what rustfmt would write, and clippy finds nothing in it
/// with warnings denied.
pub fn assert_formatted_and_clippy_clean(system: &System) {
    // rustfmt on exactly the generated files (`cargo fmt --all` would also walk into the
    // runtime's workspace through the path dependency).
    let sources: Vec<_> = support::read_tree(&system.workspace)
        .into_keys()
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| system.workspace.join(path))
        .collect();
    assert!(!sources.is_empty());
    let fmt = Command::new("rustfmt")
        .args(["--check", "--edition", "2024"])
        .args(&sources)
        .output()
        .expect("rustfmt runs");
    assert!(
        fmt.status.success(),
        "generated code is not rustfmt-formatted:\n{}",
        String::from_utf8_lossy(&fmt.stdout)
    );
    let clippy = system
        .cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .output()
        .expect("cargo clippy runs");
    assert!(
        clippy.status.success(),
        "clippy found problems in {}:\n{}",
        system.workspace.display(),
        String::from_utf8_lossy(&clippy.stderr)
    );
}

/// A name no other run uses, for databases, exchanges and streams: `<prefix>_<pid>_<millis>`.
pub fn run_id(prefix: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    format!("{prefix}_{}_{millis}", std::process::id())
}

/// The environment every distributed run shares: its two secrets (each at least 32 bytes, as
/// the services require) and a RabbitMQ exchange of the run's own, so parallel runs never
/// receive each other's events.
pub fn rabbitmq_env(run: &str, jwt_secret: &str, internal_secret: &str) -> Vec<(String, String)> {
    vec![
        ("SVCGEN_JWT_SECRET".into(), jwt_secret.into()),
        ("SVCGEN_INTERNAL_SECRET".into(), internal_secret.into()),
        (
            "SVCGEN_AMQP_URL".into(),
            "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
        ),
        ("SVCGEN_AMQP_EXCHANGE".into(), format!("{run}.events")),
    ]
}

/// Drops the PostgreSQL databases a run created (also when its processes are still connected).
pub fn drop_databases(databases: &[String]) {
    for database in databases {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
            ))
            .output();
    }
}

/// A generated system running distributed: one `serve` process per service, each on a fresh
/// PostgreSQL database of its own, and a gateway in front. Its databases are dropped with it.
pub struct Distributed {
    /// The run's unique name (database prefix).
    pub run: String,
    /// The services, in the order given, with their processes.
    pub services: Vec<(String, Running)>,
    /// The gateway.
    pub gateway: Running,
    databases: Databases,
}

/// PostgreSQL databases dropped when this is dropped, also when a test fails.
struct Databases(Vec<String>);

impl Drop for Databases {
    fn drop(&mut self) {
        drop_databases(&self.0);
    }
}

impl Distributed {
    /// Starts `services` of `system`, in order, with `env` (secrets, broker) plus, per service,
    /// its database URL, the URLs of the services started before it (which it may call) and
    /// `extra(service)`; then the gateway with every service's URL.
    pub fn start(
        system: &System,
        run: String,
        services: &[&str],
        env: &[(String, String)],
        extra: impl Fn(&str) -> Vec<(String, String)>,
    ) -> Distributed {
        let mut running = Vec::new();
        let mut databases = Vec::new();
        let mut gateway_env = env.to_vec();
        for service in services {
            let database = format!("{run}_{service}");
            let mut service_env = env.to_vec();
            service_env.push((
                format!("{}_DATABASE_URL", service.to_uppercase()),
                format!("postgres://postgres@127.0.0.1:5432/{database}"),
            ));
            // The services started before this one: it may call them.
            service_env.extend(gateway_env[env.len()..].iter().cloned());
            service_env.extend(extra(service));
            databases.push(database);
            let process = Running::start(
                system,
                &format!("{run}-{service}"),
                &["serve", service, "--port", "0"],
                &service_env,
            );
            gateway_env.push((
                format!("SVCGEN_{}_URL", service.to_uppercase()),
                process.url.clone(),
            ));
            running.push((service.to_string(), process));
        }
        let gateway = Running::start(
            system,
            &format!("{run}-gateway"),
            &["gateway", "--port", "0"],
            &gateway_env,
        );
        Distributed {
            run,
            services: running,
            gateway,
            databases: Databases(databases),
        }
    }

    /// Where `service` listens.
    pub fn service_url(&self, service: &str) -> &str {
        let (_, process) = self
            .services
            .iter()
            .find(|(name, _)| name == service)
            .expect("a started service");
        &process.url
    }

    /// Stops every process with SIGTERM (each must exit cleanly), then drops the databases.
    pub fn stop(self) {
        let Distributed {
            gateway,
            services,
            databases,
            ..
        } = self;
        gateway.stop();
        for (_, process) in services {
            process.stop();
        }
        drop(databases);
    }
}

/// A MariaDB database a run uses, dropped when this is dropped (also when a test fails).
pub struct MariaDbDatabase(pub String);

impl Drop for MariaDbDatabase {
    fn drop(&mut self) {
        let _ = Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-u", "root", "-e"])
            .arg(format!("DROP DATABASE IF EXISTS `{}`", self.0))
            .output();
    }
}

/// The `<SERVICE>_DATABASE_URL` of `service` when one of `databases` (named `<run>_<service>`)
/// is its own, for [`Distributed::start`]'s `extra`.
pub fn mariadb_url(service: &str, databases: &[&MariaDbDatabase]) -> Vec<(String, String)> {
    databases
        .iter()
        .filter(|db| db.0.ends_with(&format!("_{service}")))
        .map(|db| {
            (
                format!("{}_DATABASE_URL", service.to_uppercase()),
                format!("mysql://root@127.0.0.1:3306/{}", db.0),
            )
        })
        .collect()
}

/// The environment of the auth service that makes the first admin at its start.
pub fn admin_env(email: &str, password: &str) -> Vec<(String, String)> {
    vec![
        ("SVCGEN_ADMIN_EMAIL".into(), email.into()),
        ("SVCGEN_ADMIN_PASSWORD".into(), password.into()),
    ]
}

/// `env` for the service `for_service` only, as [`SystemRun::start`]'s `extra`.
pub fn only_for(
    for_service: &'static str,
    env: Vec<(String, String)>,
) -> impl Fn(&str) -> Vec<(String, String)> {
    move |service| {
        if service == for_service {
            env.clone()
        } else {
            Vec::new()
        }
    }
}

/// A system of `tests/systems/` that runs on each engine: its services, and those whose store
/// takes the engine of a run (the others stay on PostgreSQL).
pub struct TestSystem {
    /// The spec, relative to the repository.
    pub spec: &'static str,
    /// The system's name in the spec.
    pub name: &'static str,
    /// Every service, in start order.
    pub services: &'static [&'static str],
    /// `(service, store)` of the services whose store follows the run's engine.
    pub switched: &'static [(&'static str, &'static str)],
}

/// The clubs system (`tests/systems/clubs.yaml`): its clubs and roster stores follow the engine.
pub const CLUBS: TestSystem = TestSystem {
    spec: "tests/systems/clubs.yaml",
    name: "clubs",
    services: &["accounts", "clubs", "roster"],
    switched: &[("clubs", "clubs_db"), ("roster", "roster_db")],
};

/// The forum (`tests/systems/forum.yaml`): its posts store follows the engine.
pub const FORUM: TestSystem = TestSystem {
    spec: "tests/systems/forum.yaml",
    name: "forum",
    // The accounts service calls the posts service, which therefore starts first.
    services: &["posts", "accounts"],
    switched: &[("posts", "posts_db")],
};

impl TestSystem {
    /// The system with its switched stores on `engine`, under a system name of its own (but
    /// for PostgreSQL, the spec's own engine) so that the variants build side by side.
    pub fn generate(&self, engine: &str) -> System {
        if engine == "postgres" {
            return System::generate(self.spec, self.name);
        }
        let spec = std::fs::read_to_string(support::root().join(self.spec)).expect("the spec");
        let name = format!("{}_{engine}", self.name);
        let mut variant = spec.replace(
            &format!("system: {}", self.name),
            &format!("system: {name}"),
        );
        for (_, store) in self.switched {
            variant = variant.replace(
                &format!("{store}: {{ engine: postgres }}"),
                &format!("{store}: {{ engine: {engine} }}"),
            );
        }
        assert_eq!(
            variant.matches(&format!("engine: {engine}")).count(),
            self.switched.len(),
            "the spec names its system and stores as expected"
        );
        System::generate_text(&variant, &name)
    }

    /// The system running embedded, on SQLite files in `data`, with `env`.
    pub fn embedded(&self, data: &std::path::Path, env: &[(String, String)]) -> Running {
        Running::start(
            &self.generate("postgres"),
            &format!("{}-embedded", self.name),
            &["run", "--port", "0", "--data", data.to_str().unwrap()],
            env,
        )
    }
}

/// The clubs system with its clubs and roster stores on `engine`.
pub fn clubs(engine: &str) -> System {
    CLUBS.generate(engine)
}

/// A [`TestSystem`] running distributed, with its switched stores on `engine` (`postgres`, or
/// `mysql` for MariaDB), over RabbitMQ with the two `secrets` (access, internal), each service
/// also given `extra(service)`.
pub struct SystemRun {
    /// The running system.
    pub system: Distributed,
    mariadb: Vec<MariaDbDatabase>,
}

impl SystemRun {
    /// Starts it, or returns `None` when a server it needs is down (the test is then skipped, or
    /// failed under SVCGEN_REQUIRE_INFRA=1).
    pub fn start(
        under_test: &TestSystem,
        engine: &str,
        test: &str,
        secrets: (&str, &str),
        extra: impl Fn(&str) -> Vec<(String, String)>,
    ) -> Option<SystemRun> {
        let mut needs = vec![
            ("PostgreSQL", "127.0.0.1:5432"),
            ("RabbitMQ", "127.0.0.1:5672"),
        ];
        if engine == "mysql" {
            needs.push(("MariaDB", "127.0.0.1:3306"));
        }
        if !infrastructure(test, &needs) {
            return None;
        }
        let system = under_test.generate(engine);
        let run = run_id(&format!("{}_{engine}", under_test.name));
        let mariadb: Vec<MariaDbDatabase> = if engine == "mysql" {
            under_test
                .switched
                .iter()
                .map(|(service, _)| MariaDbDatabase(format!("{run}_{service}")))
                .collect()
        } else {
            Vec::new()
        };
        let databases: Vec<&MariaDbDatabase> = mariadb.iter().collect();
        let env = rabbitmq_env(&run, secrets.0, secrets.1);
        let system = Distributed::start(&system, run, under_test.services, &env, |service| {
            let mut env = mariadb_url(service, &databases);
            env.extend(extra(service));
            env
        });
        Some(SystemRun { system, mariadb })
    }

    /// Stops every process, then drops the databases.
    pub fn stop(self) {
        self.system.stop();
        drop(self.mariadb);
    }
}
