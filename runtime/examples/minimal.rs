//! The smallest system, declared the way `svcgen` generates a system's `main.rs`: two
//! built-in capabilities behind the gateway. Try it with
//! `cargo run -p svcgen-runtime --example minimal -- run --port 0`.

use svcgen_runtime::capability::{auth, notify};
use svcgen_runtime::cli::{self, ServiceDef, SystemDef, no_consumers};
use svcgen_runtime::db::Migrations;
use svcgen_runtime::gateway::{
    GatewayPolicy, GatewayRoute, RateLimit, RouteAuth, RoutePolicy, RouteRateLimit,
};
use svcgen_runtime::service::ServiceContext;

fn auth_routes() -> axum::Router<ServiceContext> {
    auth::routes(auth::AuthEvents {
        // A real system names the event its mailer consumes; without one there is no
        // password reset.
        password_reset: Some("user.password_reset_requested"),
        ..auth::AuthEvents::default()
    })
}

/// A public route of the auth service with the gateway's defaults.
const fn public(method: &'static str, path: &'static str) -> GatewayRoute {
    GatewayRoute {
        method,
        path,
        service: "auth",
        auth: RouteAuth::Public,
        roles: &[],
        policy: RoutePolicy::DEFAULT,
    }
}

static SYSTEM: SystemDef = SystemDef {
    name: "minimal",
    default_port: 3000,
    prefix: "/api/v1",
    access_token_ttl_secs: 900,
    refresh_token_ttl_secs: 86_400,
    routes: &[
        public("POST", "/auth/register"),
        public("POST", "/auth/login"),
        public("POST", "/auth/refresh"),
        public("POST", "/auth/password-reset"),
        public("POST", "/auth/password-reset/confirm"),
        GatewayRoute {
            method: "POST",
            path: "/auth/logout",
            service: "auth",
            auth: RouteAuth::User,
            roles: &[],
            policy: RoutePolicy::DEFAULT,
        },
        GatewayRoute {
            method: "GET",
            path: "/auth/me",
            service: "auth",
            auth: RouteAuth::User,
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
            policy: RoutePolicy {
                per_user: RouteRateLimit::Limit(RateLimit::per_minute(120)),
                timeout_ms: Some(5_000),
                ..RoutePolicy::DEFAULT
            },
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
            consumers: no_consumers,
            on_start: None,
            grpc_gateway: None,
        },
    ],
};

fn main() -> std::process::ExitCode {
    cli::main(&SYSTEM)
}
