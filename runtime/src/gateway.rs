//! The API gateway: the only entry point for clients.
//!
//! It holds no business logic. For each declared route it authenticates the client's bearer
//! token, replaces every identity header with a short-lived internal token for the target
//! service, and forwards the request (in-process or over HTTP), streaming bodies both ways.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get};
use futures_util::TryStreamExt as _;
use tower::ServiceExt as _;

use crate::http::error_response;
use crate::identity::{Caller, INTERNAL_HEADER, TokenError};
use crate::service::{Settings, method_not_allowed, not_found};
use crate::telemetry::request_id_and_trace;

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
}

/// Where a service is reached.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// The service's app in this process (embedded mode); called without a network hop.
    InProcess(Router),
    /// The service's base URL (distributed mode), e.g. `http://127.0.0.1:3101`.
    Http(String),
}

/// How long the health check waits for each service.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Headers that describe one connection, not the message (RFC 9110 section 7.6.1), and so are
/// never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Identity headers a client could use to impersonate someone if a service trusted them.
/// Services never read them, and the gateway removes them anyway (defence in depth); every
/// `x-svcgen-*` header is removed too.
const IDENTITY_HEADERS: &[&str] = &[
    "authorization",
    "x-user-id",
    "x-user-roles",
    "x-forwarded-user",
];

/// Builds the gateway. Every route is mounted under `prefix`; `GET /health` (no prefix)
/// reports each service's health: 200 `{"status":"ok","services":{"auth":"ok",...}}`, or 503
/// with the failing ones marked `"unavailable"`.
///
/// Answers of its own: 401 for a `User` route without a valid token, 404 `no route ...` for
/// an unknown path, 502 when the service cannot be reached. Every answer has an
/// `x-request-id`, generated when the client sent none, and passed on to the service.
///
/// # Panics
///
/// When a route's method is not a valid HTTP method, or two routes share method and path:
/// both are bugs in the generated route table, caught the first time the binary starts.
pub fn router(
    prefix: &str,
    routes: &[GatewayRoute],
    upstreams: BTreeMap<&'static str, Upstream>,
    settings: Arc<Settings>,
) -> Router {
    let prefix = normalize_prefix(prefix);
    let client = reqwest::Client::builder()
        // Services are addressed explicitly; an HTTP_PROXY in the environment must not
        // redirect internal traffic.
        .no_proxy()
        // A redirect is the service's answer to the client, not something to follow here.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(60))
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
        let target = Target {
            service: route.service,
            auth: route.auth,
        };
        let handler =
            move |State(gateway): State<Gateway>, request: Request| proxy(gateway, target, request);
        let path = format!("{prefix}{}", route.path);
        let methods = by_path.remove(&path).unwrap_or_default();
        by_path.insert(path, methods.on(method, handler));
    }

    let mut app = Router::new().route("/health", get(health));
    for (path, methods) in by_path {
        app = app.route(&path, methods);
    }
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(request_id_and_trace))
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

#[derive(Clone)]
struct Gateway(Arc<Inner>);

struct Inner {
    prefix: String,
    upstreams: BTreeMap<&'static str, Upstream>,
    settings: Arc<Settings>,
    client: reqwest::Client,
}

#[derive(Debug, Clone, Copy)]
struct Target {
    service: &'static str,
    auth: RouteAuth,
}

async fn proxy(gateway: Gateway, target: Target, request: Request) -> Response {
    let caller = match authenticate(&gateway.0.settings, request.headers(), target.auth) {
        Ok(caller) => caller,
        Err(message) => return unauthorized(message),
    };
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

    let (mut parts, body) = request.into_parts();
    let client_addr = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let path = parts.uri.path();
    let path = path
        .strip_prefix(gateway.0.prefix.as_str())
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(path);
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut headers = forwardable_headers(&parts.headers);
    if let Ok(value) = HeaderValue::from_str(&token) {
        headers.insert(INTERNAL_HEADER, value);
    }
    if let Some(addr) = client_addr {
        append_forwarded_for(&mut headers, &parts.headers, addr);
    }

    match upstream {
        Upstream::InProcess(app) => {
            let Ok(uri) = Uri::try_from(path_and_query) else {
                return error_response(StatusCode::BAD_REQUEST, "malformed request path");
            };
            parts.uri = uri;
            parts.headers = headers;
            // A fresh request as the network would deliver it: nothing of the gateway's own
            // request state may leak into the service.
            parts.extensions = Default::default();
            let response = match app.clone().oneshot(Request::from_parts(parts, body)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let (mut parts, body) = response.into_parts();
            parts.headers = strip_hop_by_hop(&parts.headers);
            Response::from_parts(parts, body)
        }
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
}

/// Resolves the caller from `Authorization: Bearer <token>`. `User` routes require a valid
/// token (401 otherwise); `Public` routes pass a valid token's identity on and treat a
/// missing or invalid one as anonymous. The error is the 401 message.
fn authenticate(
    settings: &Settings,
    headers: &HeaderMap,
    auth: RouteAuth,
) -> Result<Option<Caller>, &'static str> {
    let token = bearer_token(headers);
    match (auth, token) {
        (RouteAuth::Public, None) => Ok(None),
        (RouteAuth::Public, Some(token)) => Ok(settings.access_tokens.verify(token).ok()),
        (RouteAuth::User, None) => {
            Err("missing bearer token (send `Authorization: Bearer <access token>`)")
        }
        (RouteAuth::User, Some(token)) => match settings.access_tokens.verify(token) {
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

fn unauthorized(message: &str) -> Response {
    let mut response = error_response(StatusCode::UNAUTHORIZED, message);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn unavailable(service: &str) -> Response {
    error_response(
        StatusCode::BAD_GATEWAY,
        &format!("service `{service}` is unavailable"),
    )
}

/// The client's headers minus hop-by-hop, identity and `x-svcgen-*` headers and `Host`.
fn forwardable_headers(inbound: &HeaderMap) -> HeaderMap {
    let mut headers = strip_hop_by_hop(inbound);
    headers.remove(header::HOST);
    for name in IDENTITY_HEADERS {
        headers.remove(*name);
    }
    let internal: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-svcgen-"))
        .cloned()
        .collect();
    for name in internal {
        headers.remove(name);
    }
    headers
}

/// Removes hop-by-hop headers, including those the `Connection` header lists.
fn strip_hop_by_hop(inbound: &HeaderMap) -> HeaderMap {
    let listed: Vec<String> = inbound
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut headers = inbound.clone();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .chain(listed.iter().map(String::as_str))
    {
        headers.remove(name);
    }
    headers
}

fn append_forwarded_for(headers: &mut HeaderMap, inbound: &HeaderMap, addr: std::net::IpAddr) {
    let previous = inbound
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok());
    let chain = match previous {
        Some(previous) => format!("{previous}, {addr}"),
        None => addr.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert("x-forwarded-for", value);
    }
}

async fn forward_http(
    client: &reqwest::Client,
    service: &str,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut outbound = client.request(method, &url).headers(headers);
    // A body known to be empty is not sent at all (no chunked empty body on a GET).
    if axum::body::HttpBody::size_hint(&body).exact() != Some(0) {
        outbound = outbound.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    let upstream = match outbound.send().await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(service, %error, "upstream request failed");
            return unavailable(service);
        }
    };
    let status = upstream.status();
    let headers = strip_hop_by_hop(upstream.headers());
    let stream = upstream.bytes_stream().map_err(|error| {
        tracing::warn!(%error, "upstream response body interrupted");
        error
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
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
    }
}

#[cfg(test)]
mod tests;
