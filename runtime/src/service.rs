//! A service's HTTP application: its routes behind the internal-credential check.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::bus::Bus;
use crate::capability::auth::PasswordHashing;
use crate::db::Db;
use crate::http::error_response;
use crate::identity::{
    AccessTokens, DEFAULT_KID, INTERNAL_HEADER, InternalTokens, JwtKey, JwtKeys, VerifiedIdentity,
};
use crate::telemetry::request_id_and_trace;

/// How long `/health` waits for the database before reporting it down.
const HEALTH_DB_TIMEOUT: Duration = Duration::from_secs(2);

/// Process-wide configuration shared by the gateway and every service.
#[derive(Debug)]
pub struct Settings {
    /// The system's name (issuer and audience of access tokens).
    pub system: String,
    /// Access tokens: verified by the gateway, issued by the auth capability.
    pub access_tokens: AccessTokens,
    /// Gateway-to-service tokens.
    pub internal_tokens: InternalTokens,
    /// Lifetime of access tokens, in seconds.
    pub access_token_ttl_secs: i64,
    /// Lifetime of refresh tokens, in seconds.
    pub refresh_token_ttl_secs: i64,
    /// Argon2id parameters of new password hashes (the auth capability).
    pub password_hashing: PasswordHashing,
    /// Lifetime of password-reset tokens, in seconds.
    pub password_reset_ttl_secs: i64,
    /// The services this process can call over gRPC.
    pub peers: crate::rpc::Peers,
}

/// Default lifetime of a password-reset token: 30 minutes.
pub const DEFAULT_PASSWORD_RESET_TTL_SECS: i64 = 30 * 60;

impl Settings {
    /// Builds the settings from the two secrets (which must differ) and the token lifetimes;
    /// access tokens get the key id [`DEFAULT_KID`]. Password hashing and the password-reset
    /// lifetime have their defaults (set the fields to change them).
    ///
    /// # Panics
    ///
    /// When `jwt_secret` is empty.
    pub fn new(
        system: &str,
        jwt_secret: &[u8],
        internal_secret: &[u8],
        access_token_ttl_secs: i64,
        refresh_token_ttl_secs: i64,
    ) -> Self {
        let key = JwtKey::new(DEFAULT_KID, jwt_secret).unwrap_or_else(|error| panic!("{error}"));
        Self::with_keys(
            system,
            &JwtKeys::new(key),
            internal_secret,
            access_token_ttl_secs,
            refresh_token_ttl_secs,
        )
    }

    /// Like [`Settings::new`], with access-token keys that may include the previous key of a
    /// rotation.
    pub fn with_keys(
        system: &str,
        jwt_keys: &JwtKeys,
        internal_secret: &[u8],
        access_token_ttl_secs: i64,
        refresh_token_ttl_secs: i64,
    ) -> Self {
        Settings {
            system: system.to_owned(),
            access_tokens: AccessTokens::with_keys(system, jwt_keys, access_token_ttl_secs),
            internal_tokens: InternalTokens::new(internal_secret),
            access_token_ttl_secs,
            refresh_token_ttl_secs,
            password_hashing: PasswordHashing::default(),
            password_reset_ttl_secs: DEFAULT_PASSWORD_RESET_TTL_SECS,
            peers: crate::rpc::Peers::default(),
        }
    }
}

/// Everything a service's handlers and consumers need; the axum state of its routes.
#[derive(Clone, Debug)]
pub struct ServiceContext {
    /// The service's name (the audience of its internal tokens, the source of its events).
    pub service: &'static str,
    /// The service's own database.
    pub db: Db,
    /// The event bus.
    pub bus: Bus,
    /// Shared settings.
    pub settings: Arc<Settings>,
    /// The service's outbox relay doorbell and its consumers.
    pub events: crate::events::Events,
}

/// Wraps a service's routes into its complete HTTP application:
///
/// * `GET /health` is open and answers `{"status":"ok"}` once the database answers, 503
///   otherwise;
/// * every other request must carry a valid [`INTERNAL_HEADER`] token minted for THIS service,
///   else 401 `{"error":"missing or invalid internal credential"}`; the identity it carries is
///   what [`crate::identity::Caller`] and [`crate::identity::MaybeCaller`] see;
/// * unknown paths and methods get JSON 404 / 405 answers;
/// * every request gets an `x-request-id` and a log line.
pub fn service_app(ctx: ServiceContext, routes: Router<ServiceContext>) -> Router {
    routes
        .merge(crate::events::admin_routes(ctx.service))
        .route("/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            ctx.clone(),
            require_internal_credential,
        ))
        .layer(middleware::from_fn(request_id_and_trace))
        .with_state(ctx)
}

async fn health(State(ctx): State<ServiceContext>) -> Response {
    match tokio::time::timeout(HEALTH_DB_TIMEOUT, ctx.db.ping()).await {
        Ok(Ok(())) => axum::Json(serde_json::json!({ "status": "ok" })).into_response(),
        Ok(Err(error)) => {
            tracing::warn!(service = ctx.service, %error, "health check: database error");
            unavailable()
        }
        Err(_) => {
            tracing::warn!(
                service = ctx.service,
                "health check: database did not answer in time"
            );
            unavailable()
        }
    }
}

fn unavailable() -> Response {
    let body = serde_json::json!({ "status": "unavailable", "error": "database unavailable" });
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

pub(crate) async fn not_found(method: Method, uri: Uri) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        &format!("no route for {method} {}", uri.path()),
    )
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method {method} not allowed on {}", uri.path()),
    )
}

/// Accepts only requests that come through the gateway (or another holder of the internal
/// secret) for this very service. The token is removed from the request once verified so that
/// nothing downstream can log or forward it.
async fn require_internal_credential(
    State(ctx): State<ServiceContext>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(INTERNAL_HEADER)
        .and_then(|value| value.to_str().ok());
    let verified = token.map(|token| ctx.settings.internal_tokens.verify(ctx.service, token));
    // gRPC clients understand a gRPC status, not an HTTP error page.
    let refuse = |headers: &axum::http::HeaderMap| {
        if crate::rpc::is_grpc(headers) {
            crate::rpc::unauthenticated(MISSING_CREDENTIAL)
        } else {
            missing_credential()
        }
    };
    let identity = match verified {
        Some(Ok(identity)) => identity,
        Some(Err(error)) => {
            tracing::debug!(service = ctx.service, %error, "rejected internal credential");
            return refuse(request.headers());
        }
        None => return refuse(request.headers()),
    };
    request.headers_mut().remove(INTERNAL_HEADER);
    request.extensions_mut().insert(VerifiedIdentity(identity));
    next.run(request).await
}

const MISSING_CREDENTIAL: &str = "missing or invalid internal credential";

fn missing_credential() -> Response {
    error_response(StatusCode::UNAUTHORIZED, MISSING_CREDENTIAL)
}

#[cfg(test)]
mod tests;
