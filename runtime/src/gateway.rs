//! The API gateway: the only entry point for clients.
//!
//! It holds no business logic. For each declared route it applies the route's policy (rate
//! limits, roles, body size, timeout), authenticates the client's bearer token, replaces
//! every identity header with a short-lived internal token for the target service, and
//! forwards the request (in-process or over HTTP), streaming bodies both ways.
//!
//! Ownership rules ("a user on another user's resource gets 404") are enforced by the service
//! that owns the resource, not here: the gateway only knows who calls and with which roles.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get};
use futures_util::{StreamExt as _, TryStreamExt as _};
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower::ServiceExt as _;
use tower_http::cors::{AllowOrigin, CorsLayer};
use uuid::Uuid;

use crate::http::error_response;
use crate::identity::{Caller, INTERNAL_HEADER, TokenError};
use crate::service::{Settings, method_not_allowed, not_found};
use crate::telemetry::{REQUEST_ID_HEADER, request_id_and_trace};

mod answers;
mod forward;

use answers::*;
use forward::*;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAuth {
    /// Anyone; a valid bearer token, when sent, still identifies the caller to the service.
    Public,
    /// Only requests with a valid bearer token.
    User,
}

/// One client-facing route and the service that serves it.
#[derive(Debug, Clone, Copy)]
pub struct GatewayRoute {
    /// HTTP method, e.g. `"GET"`.
    pub method: &'static str,
    /// Path in axum syntax without the prefix, e.g. `"/notes/{id}"`; forwarded unchanged.
    pub path: &'static str,
    /// The target service's name.
    pub service: &'static str,
    /// Who may call it.
    pub auth: RouteAuth,
    /// Roles of which the caller must have at least one (403 otherwise); empty: any caller
    /// `auth` admits. A route with roles always needs a valid bearer token (401 without),
    /// even when `auth` is `Public`.
    pub roles: &'static [&'static str],
    /// The route's own rate limits, body limit and timeout; [`RoutePolicy::DEFAULT`] takes
    /// every one from the [`GatewayPolicy`].
    pub policy: RoutePolicy,
}

/// A token-bucket rate limit: bursts of up to `requests` requests, refilled evenly over
/// `per_secs` seconds (`{requests: 10, per_secs: 60}`: 10 at once, then one every 6 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in a burst and per period; at least 1.
    pub requests: u32,
    /// The period, in seconds; at least 1.
    pub per_secs: u64,
}

impl RateLimit {
    /// `requests` per second.
    pub const fn per_second(requests: u32) -> RateLimit {
        RateLimit {
            requests,
            per_secs: 1,
        }
    }

    /// `requests` per minute.
    pub const fn per_minute(requests: u32) -> RateLimit {
        RateLimit {
            requests,
            per_secs: 60,
        }
    }

    /// `requests` per hour.
    pub const fn per_hour(requests: u32) -> RateLimit {
        RateLimit {
            requests,
            per_secs: 3600,
        }
    }

    fn quota(&self) -> Option<Quota> {
        let burst = NonZeroU32::new(self.requests)?;
        let period = Duration::from_secs(self.per_secs).checked_div(self.requests)?;
        Some(Quota::with_period(period)?.allow_burst(burst))
    }
}

/// A route's own rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteRateLimit {
    /// The gateway's default for this kind of route (see [`GatewayPolicy`]).
    Inherit,
    /// No limit, whatever the default.
    Off,
    /// This limit.
    Limit(RateLimit),
}

/// What a route changes of the gateway's policy; `None` / [`RouteRateLimit::Inherit`] keeps
/// the gateway's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutePolicy {
    /// Limit per client IP address (each route has its own buckets).
    pub per_ip: RouteRateLimit,
    /// Limit per signed-in user (each route has its own buckets; anonymous requests are not
    /// counted here).
    pub per_user: RouteRateLimit,
    /// Largest request body, in bytes (413 above).
    pub body_limit_bytes: Option<u64>,
    /// How long the service may take to start answering, in milliseconds (504 after).
    pub timeout_ms: Option<u64>,
}

impl RoutePolicy {
    /// Everything from the [`GatewayPolicy`].
    pub const DEFAULT: RoutePolicy = RoutePolicy {
        per_ip: RouteRateLimit::Inherit,
        per_user: RouteRateLimit::Inherit,
        body_limit_bytes: None,
        timeout_ms: None,
    };
}

impl Default for RoutePolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Cross-origin resource sharing, for browser clients served from other origins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cors {
    /// Origins allowed to call the API, e.g. `["https://app.example.com"]`; `["*"]`: any
    /// origin; empty: CORS is off (no CORS header is ever sent, browsers allow only
    /// same-origin calls).
    pub allowed_origins: &'static [&'static str],
    /// Methods allowed in cross-origin calls; empty: `GET, POST, PUT, PATCH, DELETE`.
    pub allowed_methods: &'static [&'static str],
    /// Request headers allowed in cross-origin calls; empty: `authorization, content-type,
    /// if-match, x-request-id`.
    pub allowed_headers: &'static [&'static str],
    /// Whether browsers may send cookies and HTTP authentication (not with origin `*`).
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer, in seconds.
    pub max_age_secs: u64,
}

impl Cors {
    /// CORS off.
    pub const DISABLED: Cors = Cors {
        allowed_origins: &[],
        allowed_methods: &[],
        allowed_headers: &[],
        allow_credentials: false,
        max_age_secs: 600,
    };
}

impl Default for Cors {
    fn default() -> Self {
        Self::DISABLED
    }
}

/// The gateway's policy for every route, which a route's [`RoutePolicy`] can override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayPolicy {
    /// CORS; off by default.
    pub cors: Cors,
    /// Largest request body, in bytes; default 1 MiB.
    pub body_limit_bytes: u64,
    /// How long a service may take to start answering, in milliseconds; default 30 s.
    pub timeout_ms: u64,
    /// Default limit per client IP of every route; none by default.
    pub per_ip: Option<RateLimit>,
    /// Default limit per user of every route; none by default.
    pub per_user: Option<RateLimit>,
    /// Default limit per client IP of the routes that take credentials or send mail, which
    /// attackers hammer: `/auth/login`, `/auth/register` and every path starting with
    /// `/auth/password-reset`; default 10 per minute (`None`: [`GatewayPolicy::per_ip`]).
    pub credential_per_ip: Option<RateLimit>,
}

impl GatewayPolicy {
    /// The defaults: no CORS, 1 MiB bodies, 30 s timeouts, no rate limit except 10 requests
    /// per minute and IP on the credential routes.
    pub const DEFAULT: GatewayPolicy = GatewayPolicy {
        cors: Cors::DISABLED,
        body_limit_bytes: 1024 * 1024,
        timeout_ms: 30_000,
        per_ip: None,
        per_user: None,
        credential_per_ip: Some(RateLimit::per_minute(10)),
    };
}

impl Default for GatewayPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// True for the routes limited by [`GatewayPolicy::credential_per_ip`].
fn is_credential_route(path: &str) -> bool {
    matches!(path, "/auth/login" | "/auth/register") || path.starts_with("/auth/password-reset")
}

/// Where a service is reached.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// The service's app in this process (embedded mode); called without a network hop.
    InProcess(Router),
    /// The service's base URL (distributed mode), e.g. `http://127.0.0.1:3101`.
    Http(String),
    /// The service reached over gRPC: its generated `adapter` turns each route's request into
    /// the route's RPC (sent through the settings' peers, on the same port as `http`), and the
    /// answer back into HTTP. `http` still answers the health check.
    Grpc {
        /// Where the service's health check is asked.
        http: Box<Upstream>,
        /// The service's generated transcoder.
        adapter: crate::rpc::GatewayAdapter,
    },
}

/// How long the health check waits for each service.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The shortest stall the HTTP client tolerates while reading from a service; longer when a
/// route's timeout is longer.
const MIN_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A rate limiter forgets idle clients every this many checks.
const LIMITER_HOUSEKEEPING_EVERY: u64 = 1024;

/// [`router_with_policy`] with [`GatewayPolicy::DEFAULT`].
///
/// # Panics
///
/// Like [`router_with_policy`].
pub fn router(
    prefix: &str,
    routes: &[GatewayRoute],
    upstreams: BTreeMap<&'static str, Upstream>,
    settings: Arc<Settings>,
) -> Router {
    router_with_policy(prefix, routes, &GatewayPolicy::DEFAULT, upstreams, settings)
}

/// Builds the gateway. Every route is mounted under `prefix`; `GET /health` (no prefix)
/// reports each service's health: 200 `{"status":"ok","services":{"auth":"ok",...}}`, or 503
/// with the failing ones marked `"unavailable"`.
///
/// Answers of its own, each `{"error": "..."}`: 429 with `Retry-After` (seconds) over a rate
/// limit (checked per client IP first, per user after authentication), 401 for a route that
/// needs a valid token, 403 when the token lacks every role the route lists, 413 for a body
/// over the limit, 504 when the service does not start answering in time, 502 when it cannot
/// be reached, 404 `no route ...` for an unknown path. Every answer has an `x-request-id`,
/// generated when the client sent none, and passed on to the service; with CORS on, every
/// answer to an allowed origin has the CORS headers and preflight requests are answered here.
///
/// # Panics
///
/// When a route's method is not a valid HTTP method, two routes share method and path, a
/// rate limit has 0 requests or 0 seconds, or the CORS settings hold an invalid origin,
/// method or header (or `*` with other origins or with credentials): all bugs in the
/// generated tables, caught the first time the binary starts.
pub fn router_with_policy(
    prefix: &str,
    routes: &[GatewayRoute],
    policy: &GatewayPolicy,
    upstreams: BTreeMap<&'static str, Upstream>,
    settings: Arc<Settings>,
) -> Router {
    let prefix = normalize_prefix(prefix);
    let longest_timeout = routes
        .iter()
        .map(|route| route_timeout(route, policy))
        .max()
        .unwrap_or_default();
    let client = reqwest::Client::builder()
        // Services are addressed explicitly; an HTTP_PROXY in the environment must not
        // redirect internal traffic.
        .no_proxy()
        // A redirect is the service's answer to the client, not something to follow here.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(longest_timeout.max(MIN_READ_TIMEOUT))
        .build()
        // Only TLS or resolver set-up can fail, and this client has neither; it runs once at
        // startup, never on a request.
        .expect("building the gateway's HTTP client");
    let gateway = Gateway(Arc::new(Inner {
        prefix: prefix.clone(),
        upstreams,
        settings,
        client,
    }));

    let mut by_path: BTreeMap<String, MethodRouter<Gateway>> = BTreeMap::new();
    for route in routes {
        let method = Method::from_bytes(route.method.as_bytes())
            .ok()
            .and_then(|method| MethodFilter::try_from(method).ok())
            .unwrap_or_else(|| {
                panic!(
                    "gateway route {} {}: unsupported HTTP method",
                    route.method, route.path
                )
            });
        let target = Arc::new(Target::new(route, policy));
        let handler = move |State(gateway): State<Gateway>, request: Request| {
            proxy(gateway, target.clone(), request)
        };
        let path = format!("{prefix}{}", route.path);
        let methods = by_path.remove(&path).unwrap_or_default();
        by_path.insert(path, methods.on(method, handler));
    }

    let mut app = Router::new().route("/health", get(health));
    for (path, methods) in by_path {
        app = app.route(&path, methods);
    }
    let app = app
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let app = match cors_layer(&policy.cors) {
        Some(cors) => app.layer(cors),
        None => app,
    };
    app.layer(axum::middleware::from_fn(request_id_and_trace))
        .with_state(gateway)
}

/// `""` or `"/api/v1"`: a leading slash, no trailing one.
fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

fn route_timeout(route: &GatewayRoute, policy: &GatewayPolicy) -> Duration {
    Duration::from_millis(route.policy.timeout_ms.unwrap_or(policy.timeout_ms))
}

/// The CORS layer, or `None` when no origin is allowed.
fn cors_layer(cors: &Cors) -> Option<CorsLayer> {
    if cors.allowed_origins.is_empty() {
        return None;
    }
    let any_origin = cors.allowed_origins.contains(&"*");
    let origin = if any_origin {
        assert!(
            cors.allowed_origins.len() == 1,
            "CORS: the origin `*` must be the only allowed origin"
        );
        assert!(
            !cors.allow_credentials,
            "CORS: credentials cannot be allowed for the origin `*`; list the origins"
        );
        AllowOrigin::any()
    } else {
        AllowOrigin::list(cors.allowed_origins.iter().map(|origin| {
            HeaderValue::from_str(origin.trim_end_matches('/'))
                .unwrap_or_else(|_| panic!("CORS: invalid origin `{origin}`"))
        }))
    };
    let methods: &[&str] = if cors.allowed_methods.is_empty() {
        &["GET", "POST", "PUT", "PATCH", "DELETE"]
    } else {
        cors.allowed_methods
    };
    let methods: Vec<Method> = methods
        .iter()
        .map(|method| {
            Method::from_bytes(method.as_bytes())
                .unwrap_or_else(|_| panic!("CORS: invalid method `{method}`"))
        })
        .collect();
    let headers: &[&str] = if cors.allowed_headers.is_empty() {
        &[
            "authorization",
            "content-type",
            "if-match",
            REQUEST_ID_HEADER,
        ]
    } else {
        cors.allowed_headers
    };
    let headers: Vec<HeaderName> = headers
        .iter()
        .map(|name| {
            HeaderName::from_bytes(name.as_bytes())
                .unwrap_or_else(|_| panic!("CORS: invalid header name `{name}`"))
        })
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods(methods)
            .allow_headers(headers)
            .expose_headers([
                HeaderName::from_static(REQUEST_ID_HEADER),
                header::RETRY_AFTER,
                header::ETAG,
            ])
            .allow_credentials(cors.allow_credentials)
            .max_age(Duration::from_secs(cors.max_age_secs)),
    )
}

#[derive(Clone)]
struct Gateway(Arc<Inner>);

struct Inner {
    prefix: String,
    upstreams: BTreeMap<&'static str, Upstream>,
    settings: Arc<Settings>,
    client: reqwest::Client,
}

/// One route with its policy resolved.
struct Target {
    service: &'static str,
    /// The route's path pattern (the adapter of a gRPC upstream dispatches on it).
    route: &'static str,
    auth: RouteAuth,
    roles: &'static [&'static str],
    per_ip: Option<Limiter<IpAddr>>,
    per_user: Option<Limiter<Uuid>>,
    body_limit: u64,
    timeout: Duration,
}

impl Target {
    fn new(route: &GatewayRoute, policy: &GatewayPolicy) -> Target {
        let ip_default = if is_credential_route(route.path) {
            policy.credential_per_ip.or(policy.per_ip)
        } else {
            policy.per_ip
        };
        let resolve = |own: RouteRateLimit, default: Option<RateLimit>| match own {
            RouteRateLimit::Inherit => default,
            RouteRateLimit::Off => None,
            RouteRateLimit::Limit(limit) => Some(limit),
        };
        Target {
            service: route.service,
            route: route.path,
            auth: route.auth,
            roles: route.roles,
            per_ip: resolve(route.policy.per_ip, ip_default).map(|limit| Limiter::of(route, limit)),
            per_user: resolve(route.policy.per_user, policy.per_user)
                .map(|limit| Limiter::of(route, limit)),
            body_limit: route
                .policy
                .body_limit_bytes
                .unwrap_or(policy.body_limit_bytes),
            timeout: route_timeout(route, policy),
        }
    }
}

/// A keyed GCRA rate limiter that forgets idle keys from time to time, so that its memory
/// stays proportional to the number of recently active clients.
struct Limiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    fn new(limit: RateLimit) -> Option<Self> {
        Some(Limiter {
            limiter: RateLimiter::keyed(limit.quota()?),
            checks: AtomicU64::new(0),
        })
    }

    fn of(route: &GatewayRoute, limit: RateLimit) -> Self {
        Self::new(limit).unwrap_or_else(|| {
            panic!(
                "gateway route {} {}: invalid rate limit {limit:?} (requests and per_secs must be at least 1)",
                route.method, route.path
            )
        })
    }

    /// `Err(seconds to wait)` when `key` is over the limit.
    fn check(&self, key: &K) -> Result<(), u64> {
        let checks = self.checks.fetch_add(1, Ordering::Relaxed) + 1;
        if checks.is_multiple_of(LIMITER_HOUSEKEEPING_EVERY) {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            // Whole seconds, rounded up, at least 1: retrying earlier would fail again.
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }
}

async fn proxy(gateway: Gateway, target: Arc<Target>, request: Request) -> Response {
    let client_addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    if let Some(limiter) = &target.per_ip {
        // Without a peer address (only in tests) every request shares one bucket.
        let key = client_addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if let Err(retry_after) = limiter.check(&key) {
            return too_many_requests(retry_after);
        }
    }
    let must_authenticate = target.auth == RouteAuth::User || !target.roles.is_empty();
    let caller = match authenticate(&gateway.0.settings, request.headers(), must_authenticate) {
        Ok(caller) => caller,
        Err(message) => return unauthorized(message),
    };
    if let Some(caller) = &caller {
        if !caller.has_any_role(target.roles) {
            return forbidden(target.roles);
        }
        if let Some(limiter) = &target.per_user
            && let Err(retry_after) = limiter.check(&caller.user_id)
        {
            return too_many_requests(retry_after);
        }
    }
    if let Some(length) =
        declared_body_length(&request).filter(|length| *length > target.body_limit)
    {
        // Read what the client is still sending before answering: a server that closes on a
        // client in mid-upload resets the connection, and the client never sees the 413.
        let drained = length <= DRAIN_LIMIT_BYTES
            && tokio::time::timeout(DRAIN_TIMEOUT, drain(request.into_body()))
                .await
                .unwrap_or(false);
        return payload_too_large(target.body_limit, !drained);
    }
    let token = match gateway
        .0
        .settings
        .internal_tokens
        .sign(target.service, caller.as_ref())
    {
        Ok(token) => token,
        Err(error) => {
            tracing::error!(%error, "cannot sign internal token");
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let Some(upstream) = gateway.0.upstreams.get(target.service) else {
        tracing::error!(
            service = target.service,
            "no upstream configured for service"
        );
        return unavailable(target.service);
    };

    // A service reached over gRPC answers the routes its adapter carries; the others go to
    // its HTTP side, on the same port.
    let (upstream, request) = match upstream {
        Upstream::Grpc { adapter, http } => {
            match call_over_grpc(&gateway, &target, caller, *adapter, request).await {
                Ok(response) => return response,
                Err(request) => (http.as_ref(), request),
            }
        }
        other => (other, request),
    };

    let (mut parts, body) = request.into_parts();
    let too_large = Arc::new(AtomicBool::new(false));
    let body = limit_body(body, target.body_limit, too_large.clone());
    let path_and_query = below_prefix(&parts.uri, &gateway.0.prefix);
    let mut headers = forwardable_headers(&parts.headers);
    if let Ok(value) = HeaderValue::from_str(&token) {
        headers.insert(INTERNAL_HEADER, value);
    }
    // The service's deadline: what it calls on this request's behalf must finish within it.
    headers.insert(
        crate::rpc::TIMEOUT_HEADER,
        HeaderValue::from(u64::try_from(target.timeout.as_millis()).unwrap_or(u64::MAX)),
    );
    if let Some(addr) = client_addr {
        append_forwarded_for(&mut headers, &parts.headers, addr);
    }

    let forwarded = async {
        match upstream {
            Upstream::InProcess(app) => {
                let Ok(uri) = Uri::try_from(path_and_query) else {
                    return error_response(StatusCode::BAD_REQUEST, "malformed request path");
                };
                parts.uri = uri;
                parts.headers = headers;
                // A fresh request as the network would deliver it: nothing of the gateway's
                // own request state may leak into the service.
                parts.extensions = Default::default();
                let response = match app.clone().oneshot(Request::from_parts(parts, body)).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                let (mut parts, body) = response.into_parts();
                parts.headers = strip_hop_by_hop(&parts.headers);
                Response::from_parts(parts, body)
            }
            Upstream::Grpc { .. } => unreachable!("answered over gRPC above"),
            Upstream::Http(base) => {
                let url = format!("{}{path_and_query}", base.trim_end_matches('/'));
                forward_http(
                    &gateway.0.client,
                    target.service,
                    parts.method,
                    url,
                    headers,
                    body,
                )
                .await
            }
        }
    };
    let answer = tokio::time::timeout(target.timeout, forwarded).await;
    // Whatever the service made of a body cut short, the client sent too much.
    if too_large.load(Ordering::Acquire) {
        // The rest of the body was never read: this connection cannot carry another request.
        return payload_too_large(target.body_limit, true);
    }
    match answer {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                service = target.service,
                timeout_ms = target.timeout.as_millis() as u64,
                "service did not answer in time"
            );
            gateway_timeout(target.service, target.timeout)
        }
    }
}

/// Answers a route of a service reached over gRPC: reads the body (within the route's limit),
/// then lets the service's adapter call the route's RPC for the caller, within the route's
/// timeout. A route the adapter does not carry comes back as the request it was, its body
/// read, for the service's HTTP side.
async fn call_over_grpc(
    gateway: &Gateway,
    target: &Target,
    caller: Option<Caller>,
    adapter: crate::rpc::GatewayAdapter,
    request: Request,
) -> Result<Response, Request> {
    let (mut parts, body) = request.into_parts();
    let limit = usize::try_from(target.body_limit).unwrap_or(usize::MAX);
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        Err(_) => return Ok(payload_too_large(target.body_limit, true)),
    };
    let original = parts.uri.clone();
    let path_and_query = below_prefix(&parts.uri, &gateway.0.prefix);
    let Ok(uri) = Uri::try_from(path_and_query) else {
        return Ok(error_response(
            StatusCode::BAD_REQUEST,
            "malformed request path",
        ));
    };
    parts.uri = uri;
    let extensions = std::mem::take(&mut parts.extensions);
    let deadline = crate::rpc::Deadline::after(target.timeout);
    let call = crate::rpc::GatewayCall {
        outgoing: crate::rpc::Outgoing::new(&gateway.0.settings, caller.as_ref(), deadline),
        method: parts.method.clone(),
        route: target.route,
        parts,
        body,
    };
    let answer = match adapter(call) {
        Ok(answer) => answer,
        Err(call) => {
            let call = *call;
            let mut parts = call.parts;
            parts.uri = original;
            parts.extensions = extensions;
            return Err(Request::from_parts(parts, Body::from(call.body)));
        }
    };
    Ok(match tokio::time::timeout(target.timeout, answer).await {
        Ok(response) => response,
        Err(_) => gateway_timeout(target.service, target.timeout),
    })
}

/// The request's path and query as the service sees them: without the gateway's prefix.
fn below_prefix(uri: &Uri, prefix: &str) -> String {
    let path = uri.path();
    let path = path
        .strip_prefix(prefix)
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(path);
    match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    }
}

/// The body size the request announces (`Content-Length`, or an exact size known in
/// advance), if any.
fn declared_body_length(request: &Request) -> Option<u64> {
    let from_header = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    from_header.or_else(|| axum::body::HttpBody::size_hint(request.body()).exact())
}

/// Passes `body` on, failing it (and raising `too_large`) as soon as more than `limit` bytes
/// have come. A body of a known size within the limit passes untouched (the server enforces
/// `Content-Length`), which keeps its size known to the service.
fn limit_body(body: Body, limit: u64, too_large: Arc<AtomicBool>) -> Body {
    if axum::body::HttpBody::size_hint(&body)
        .exact()
        .is_some_and(|size| size <= limit)
    {
        return body;
    }
    let mut seen: u64 = 0;
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(axum::BoxError::from)?;
        seen = seen.saturating_add(chunk.len() as u64);
        if seen > limit {
            too_large.store(true, Ordering::Release);
            return Err(axum::BoxError::from(format!(
                "request body over the limit of {limit} bytes"
            )));
        }
        Ok(chunk)
    });
    Body::from_stream(stream)
}

/// Resolves the caller from `Authorization: Bearer <token>`. When `required`, a valid token
/// is needed (401 otherwise); else a valid token's identity is passed on and a missing or
/// invalid one means anonymous. The error is the 401 message.
fn authenticate(
    settings: &Settings,
    headers: &HeaderMap,
    required: bool,
) -> Result<Option<Caller>, &'static str> {
    let token = bearer_token(headers);
    match (required, token) {
        (false, None) => Ok(None),
        (false, Some(token)) => Ok(settings.access_tokens.verify(token).ok()),
        (true, None) => Err("missing bearer token (send `Authorization: Bearer <access token>`)"),
        (true, Some(token)) => match settings.access_tokens.verify(token) {
            Ok(caller) => Ok(Some(caller)),
            Err(TokenError::Expired) => Err("access token expired"),
            Err(_) => Err("invalid access token"),
        },
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn health(State(gateway): State<Gateway>) -> Response {
    let checks = gateway.0.upstreams.iter().map(|(name, upstream)| {
        let client = gateway.0.client.clone();
        async move { (*name, service_is_healthy(&client, upstream).await) }
    });
    let results = futures_util::future::join_all(checks).await;
    let all_ok = results.iter().all(|(_, ok)| *ok);
    let services: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .map(|(name, ok)| {
            (
                name.to_owned(),
                serde_json::Value::from(if ok { "ok" } else { "unavailable" }),
            )
        })
        .collect();
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "status": if all_ok { "ok" } else { "degraded" }, "services": services });
    (status, axum::Json(body)).into_response()
}

async fn service_is_healthy(client: &reqwest::Client, upstream: &Upstream) -> bool {
    let upstream = match upstream {
        Upstream::Grpc { http, .. } => http.as_ref(),
        other => other,
    };
    match upstream {
        Upstream::InProcess(app) => {
            let Ok(request) = Request::get("/health").body(Body::empty()) else {
                return false;
            };
            let answer = tokio::time::timeout(HEALTH_TIMEOUT, app.clone().oneshot(request)).await;
            matches!(answer, Ok(Ok(response)) if response.status().is_success())
        }
        Upstream::Http(base) => {
            let url = format!("{}/health", base.trim_end_matches('/'));
            let answer = client.get(url).timeout(HEALTH_TIMEOUT).send().await;
            matches!(answer, Ok(response) if response.status().is_success())
        }
        Upstream::Grpc { .. } => unreachable!("a gRPC upstream is checked over its `http`"),
    }
}

#[cfg(test)]
mod tests;
