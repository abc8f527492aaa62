//! The smallest system, declared the way `svcgen` generates a system's `main.rs`: two
//! built-in capabilities behind the gateway. Try it with
//! `cargo run -p svcgen-runtime --example minimal -- run --port 0`.

use svcgen_runtime::capability::{auth, notify};
use svcgen_runtime::cli::{self, ServiceDef, SystemDef, no_consumers};
use svcgen_runtime::gateway::{GatewayRoute, RouteAuth};
use svcgen_runtime::service::ServiceContext;

fn auth_routes() -> axum::Router<ServiceContext> {
    auth::routes(auth::AuthEvents::default())
}

static SYSTEM: SystemDef = SystemDef {
    name: "minimal",
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
        },
        GatewayRoute {
            method: "POST",
            path: "/auth/login",
            service: "auth",
            auth: RouteAuth::Public,
        },
        GatewayRoute {
            method: "GET",
            path: "/auth/me",
            service: "auth",
            auth: RouteAuth::User,
        },
        GatewayRoute {
            method: "GET",
            path: "/notifications",
            service: "notification",
            auth: RouteAuth::User,
        },
    ],
    services: &[
        ServiceDef {
            name: "auth",
            migrations: &auth::MIGRATIONS,
            routes: auth_routes,
            consumers: no_consumers,
        },
        ServiceDef {
            name: "notification",
            migrations: &notify::MIGRATIONS,
            routes: notify::routes,
            consumers: no_consumers,
        },
    ],
};

fn main() -> std::process::ExitCode {
    cli::main(&SYSTEM)
}
