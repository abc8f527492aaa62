//! What the built-in capabilities offer a service that `uses` one: the routes `auth` and
//! `notify` add to it, and the tables they keep in its database. Validation checks them against the spec's own routes; the gateway's
//! table (in the IR) lists them.

use crate::model::{Capability, Method, Service};

/// A route served by a capability.
pub struct CapabilityRoute {
    /// HTTP method.
    pub method: Method,
    /// Path below the prefix.
    pub path: &'static str,
    /// Whether it needs no token.
    pub public: bool,
    /// Roles of which the caller needs one (empty: any signed-in user, or anyone when public).
    pub roles: &'static [&'static str],
    /// What it does, for docs.
    pub summary: &'static str,
}

const fn route(
    method: Method,
    path: &'static str,
    public: bool,
    roles: &'static [&'static str],
    summary: &'static str,
) -> CapabilityRoute {
    CapabilityRoute {
        method,
        path,
        public,
        roles,
        summary,
    }
}

/// The tables a capability keeps in the database of the service that uses it: the service's
/// own entities cannot take these names.
pub fn tables(capability: Capability) -> &'static [&'static str] {
    match capability {
        Capability::Auth => &[
            "users",
            "refresh_tokens",
            "refresh_token_families",
            "password_reset_tokens",
        ],
        Capability::Notify => &["notifications"],
    }
}

/// The routes a service's capability adds to it.
pub fn routes(service: &Service) -> Vec<CapabilityRoute> {
    match service.uses {
        Some(Capability::Auth) => {
            let mut routes = vec![
                route(
                    Method::Post,
                    "/auth/register",
                    true,
                    &[],
                    "creates an account; answers tokens",
                ),
                route(
                    Method::Post,
                    "/auth/login",
                    true,
                    &[],
                    "exchanges e-mail and password for tokens",
                ),
                route(
                    Method::Post,
                    "/auth/refresh",
                    true,
                    &[],
                    "rotates a refresh token; a reused one revokes its session",
                ),
                route(
                    Method::Post,
                    "/auth/logout",
                    false,
                    &[],
                    "ends the session of a refresh token",
                ),
                route(Method::Get, "/auth/me", false, &[], "the caller's account"),
                route(
                    Method::Get,
                    "/auth/users",
                    false,
                    &["admin"],
                    "every account, paginated (admin)",
                ),
            ];
            if service.auth_emit.password_reset.is_some() {
                routes.push(route(
                    Method::Post,
                    "/auth/password-reset",
                    true,
                    &[],
                    "sends a single-use reset token; always 202",
                ));
                routes.push(route(
                    Method::Post,
                    "/auth/password-reset/confirm",
                    true,
                    &[],
                    "sets a new password and ends every session",
                ));
            }
            routes
        }
        Some(Capability::Notify) => vec![route(
            Method::Get,
            "/notifications",
            false,
            &[],
            "the caller's notifications, newest first",
        )],
        None => Vec::new(),
    }
}
