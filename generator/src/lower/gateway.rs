//! The gateway's route table: every route of every service (the spec's, its capability's, and
//! the dead-letter routes of services that consume events), with its access rules and limits.

use crate::model::{Limit, Method, Name, Operation, System};

/// A route of the gateway's table: every route of every service, capabilities included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRoute {
    /// HTTP method.
    pub method: Method,
    /// Path below the prefix.
    pub path: String,
    /// The service serving it.
    pub service: String,
    /// Whether it needs no token.
    pub public: bool,
    /// Roles of which the caller needs one.
    pub roles: Vec<String>,
    /// Limits of its own (rate limits, body limit, timeout); all default for capability routes.
    pub limits: RouteLimits,
    /// What it does, for docs.
    pub summary: String,
}

/// What a route changes of the gateway's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteLimits {
    /// Per client IP.
    pub per_ip: Limit,
    /// Per user.
    pub per_user: Limit,
    /// Largest body, bytes.
    pub body_limit: Option<u64>,
    /// Timeout, milliseconds.
    pub timeout_ms: Option<u64>,
}

/// The gateway's whole route table, ordered by path then method.
pub(super) fn gateway_routes(system: &System) -> Vec<GatewayRoute> {
    let mut routes = Vec::new();
    for service in &system.services {
        let name = service.name.value.clone();
        for route in crate::capability::routes(service) {
            routes.push(GatewayRoute {
                method: route.method,
                path: route.path.into(),
                service: name.clone(),
                public: route.public,
                roles: route.roles.iter().map(|r| (*r).to_string()).collect(),
                limits: RouteLimits::default(),
                summary: route.summary.into(),
            });
        }
        for route in &service.routes {
            let owned = service
                .entity(&route.entity.value)
                .is_some_and(|e| e.owner.is_some());
            let mut summary = format!("{} `{}`", route.operation.keyword(), route.entity.value);
            if owned && route.operation != Operation::Create {
                summary += " (the caller's own)";
            }
            if let Some(emit) = &route.emit {
                summary += &format!(", emits `{}`", emit.value);
            }
            let limits = (
                route.per_ip,
                route.per_user,
                route.body_limit,
                route.timeout_ms,
            );
            routes.push(spec_route(
                &route.path,
                route.method,
                &name,
                route.public,
                &route.roles,
                limits,
                summary,
            ));
        }
        // Routes backed by an RPC and custom routes: the same access and limits, each kind
        // with its own summary.
        let rpc = service.rpc_routes.iter().map(|r| {
            let summary = format!("answers with `{}`", r.target.text());
            (
                &r.path,
                r.method,
                r.public,
                &r.roles,
                (r.per_ip, r.per_user, r.body_limit, r.timeout_ms),
                summary,
            )
        });
        let custom = service.custom_routes.iter().map(|r| {
            let summary = r
                .description
                .clone()
                .unwrap_or_else(|| format!("custom handler `{}`", r.name.value));
            (
                &r.path,
                r.method,
                r.public,
                &r.roles,
                (r.per_ip, r.per_user, r.body_limit, r.timeout_ms),
                summary,
            )
        });
        for (path, method, public, roles, limits, summary) in rpc.chain(custom) {
            routes.push(spec_route(
                path, method, &name, public, roles, limits, summary,
            ));
        }
        if !service.jobs.is_empty() {
            let jobs = format!("/admin/{name}/jobs");
            for (method, path, summary) in [
                (
                    Method::Get,
                    jobs.clone(),
                    "the scheduled jobs, their next and last runs (admin)",
                ),
                (
                    Method::Get,
                    format!("{jobs}/{{job}}/runs"),
                    "the last runs of a job (admin)",
                ),
                (
                    Method::Post,
                    format!("{jobs}/{{job}}/run"),
                    "runs a job now (admin)",
                ),
            ] {
                routes.push(GatewayRoute {
                    method,
                    path,
                    service: name.clone(),
                    public: false,
                    roles: vec!["admin".into()],
                    limits: RouteLimits::default(),
                    summary: summary.into(),
                });
            }
        }
        if !service.consumers.is_empty() {
            let dead_letters = format!("/admin/{name}/dead-letters");
            routes.push(GatewayRoute {
                method: Method::Get,
                path: dead_letters.clone(),
                service: name.clone(),
                public: false,
                roles: vec!["admin".into()],
                limits: RouteLimits::default(),
                summary: "events this service gave up on (admin)".into(),
            });
            routes.push(GatewayRoute {
                method: Method::Post,
                path: format!("{dead_letters}/{{id}}/replay"),
                service: name.clone(),
                public: false,
                roles: vec!["admin".into()],
                limits: RouteLimits::default(),
                summary: "applies a dead letter again, at most once (admin)".into(),
            });
        }
    }
    routes.sort_by(|a, b| (&a.path, a.method).cmp(&(&b.path, b.method)));
    routes
}

/// A route of the spec (of either kind) in the gateway's table, with its own limits
/// (`per_ip`, `per_user`, `body_limit`, `timeout_ms`).
fn spec_route(
    path: &str,
    method: Method,
    service: &str,
    public: bool,
    roles: &[Name],
    (per_ip, per_user, body_limit, timeout_ms): (Limit, Limit, Option<u64>, Option<u64>),
    summary: String,
) -> GatewayRoute {
    GatewayRoute {
        method,
        path: path.to_owned(),
        service: service.to_owned(),
        public,
        roles: roles.iter().map(|r| r.value.clone()).collect(),
        limits: RouteLimits {
            per_ip,
            per_user,
            body_limit,
            timeout_ms,
        },
        summary,
    }
}
