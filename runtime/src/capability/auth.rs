//! The `auth` capability: accounts, passwords and tokens.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /auth/register` | `{email, username, password}` | 201 `{user_id, access_token, refresh_token, token_type, expires_in}` |
//! | `POST /auth/login` | `{email, password}` | 200 `{user_id, access_token, refresh_token, token_type, expires_in}` |
//! | `POST /auth/refresh` | `{refresh_token}` | 200 a new pair; the old refresh token stops working |
//! | `POST /auth/logout` | `{refresh_token}` | 204; the refresh token stops working |
//! | `GET /auth/me` | (user) | 200 `{user_id, email, username, roles, created_at}` |
//!
//! E-mail addresses are compared case-insensitively (stored trimmed and lowercased).
//! Passwords are hashed with argon2id on the blocking pool; refresh tokens are 32 random
//! bytes (base64url) of which only the SHA-256 is stored, so a database leak yields no
//! usable token.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::db::{self, Migration, Migrations};
use crate::http::{ApiError, ApiResult, Json};
use crate::identity::Caller;
use crate::service::ServiceContext;
use crate::validate::Validator;

/// The capability's tables, per engine.
pub static MIGRATIONS: Migrations = Migrations {
    sqlite: &[Migration {
        version: 1,
        description: "auth users and refresh tokens",
        sql: r#"
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens (user_id);
"#,
    }],
    postgres: &[Migration {
        version: 1,
        description: "auth users and refresh tokens",
        sql: r#"
CREATE TABLE users (
    id UUID PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE refresh_tokens (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens (user_id);
"#,
    }],
};

/// Which events the capability publishes (their names come from the spec); `None` publishes
/// nothing. Both carry `{user_id, email, username}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthEvents {
    /// Published after a successful registration.
    pub registered: Option<&'static str>,
    /// Published after a successful login.
    pub logged_in: Option<&'static str>,
}

/// Roles every new account gets.
const DEFAULT_ROLES: &[&str] = &["user"];
const PASSWORD_MIN_CHARS: usize = 8;
/// Caps the work one request can make argon2 do.
const PASSWORD_MAX_CHARS: usize = 256;
const USERNAME_MAX_CHARS: usize = 64;
/// The same answer for an unknown e-mail and a wrong password, so that the login form does
/// not tell which addresses have accounts.
const BAD_CREDENTIALS: &str = "invalid e-mail or password";
const BAD_REFRESH_TOKEN: &str = "invalid or expired refresh token";

/// The capability's routes, to be wrapped by [`crate::service::service_app`].
pub fn routes(events: AuthEvents) -> Router<ServiceContext> {
    Router::new()
        .route(
            "/auth/register",
            post(move |state, body| register(state, events, body)),
        )
        .route(
            "/auth/login",
            post(move |state, body| login(state, events, body)),
        )
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
}

#[derive(Deserialize)]
struct RegisterRequest {
    email: String,
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

#[derive(Serialize)]
struct TokenResponse {
    user_id: Uuid,
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: i64,
}

#[derive(Serialize)]
struct MeResponse {
    user_id: Uuid,
    email: String,
    username: String,
    roles: Vec<String>,
    created_at: DateTime<Utc>,
}

async fn register(
    State(ctx): State<ServiceContext>,
    events: AuthEvents,
    Json(request): Json<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    let email = normalize_email(&request.email);
    let username = request.username.trim().to_owned();
    let mut validator = Validator::new();
    validator.email("email", &email);
    validator.length("username", &username, Some(1), Some(USERNAME_MAX_CHARS));
    validator.length(
        "password",
        &request.password,
        Some(PASSWORD_MIN_CHARS),
        Some(PASSWORD_MAX_CHARS),
    );
    validator.finish()?;

    let password_hash = hash_password(request.password).await?;
    let user_id = Uuid::now_v7();
    let roles: Vec<String> = DEFAULT_ROLES
        .iter()
        .map(|role| (*role).to_owned())
        .collect();
    let now = crate::db::now();
    let inserted = db::query(
        "INSERT INTO users (id, email, username, password_hash, roles, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(user_id)
    .bind(email.clone())
    .bind(username.clone())
    .bind(password_hash)
    .bind_json(&roles)
    .bind(now)
    .bind(now)
    .execute(&ctx.db)
    .await;
    match inserted {
        Ok(_) => {}
        Err(error) if error.is_unique_violation() => {
            return Err(ApiError::conflict(
                "an account with this e-mail address already exists",
            ));
        }
        Err(error) => return Err(error.into()),
    }

    let tokens = issue_tokens(&ctx, user_id, &roles).await?;
    emit(&ctx, events.registered, user_id, &email, &username).await;
    Ok((StatusCode::CREATED, Json(tokens)))
}

async fn login(
    State(ctx): State<ServiceContext>,
    events: AuthEvents,
    Json(request): Json<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let email = normalize_email(&request.email);
    let row = db::query("SELECT id, username, password_hash, roles FROM users WHERE email = $1")
        .bind(email.clone())
        .fetch_optional(&ctx.db)
        .await?;
    let Some(row) = row else {
        // Spend the same time as for a wrong password, so that timing does not reveal
        // whether the address has an account.
        verify_password(request.password, None).await?;
        return Err(ApiError::unauthorized(BAD_CREDENTIALS));
    };
    let password_hash: String = row.get("password_hash")?;
    if !verify_password(request.password, Some(password_hash)).await? {
        return Err(ApiError::unauthorized(BAD_CREDENTIALS));
    }
    let user_id: Uuid = row.get("id")?;
    let username: String = row.get("username")?;
    let roles: Vec<String> = row.get_json("roles")?;

    let tokens = issue_tokens(&ctx, user_id, &roles).await?;
    emit(&ctx, events.logged_in, user_id, &email, &username).await;
    Ok(Json(tokens))
}

/// Exchanges a refresh token for a new pair. The old token is deleted first and only the
/// request that actually deleted it proceeds, so a token can be used once even under races.
async fn refresh(
    State(ctx): State<ServiceContext>,
    Json(request): Json<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let token_hash = hash_refresh_token(&request.refresh_token);
    let row = db::query("SELECT user_id, expires_at FROM refresh_tokens WHERE token_hash = $1")
        .bind(token_hash.clone())
        .fetch_optional(&ctx.db)
        .await?
        .ok_or_else(|| ApiError::unauthorized(BAD_REFRESH_TOKEN))?;
    let deleted = db::query("DELETE FROM refresh_tokens WHERE token_hash = $1")
        .bind(token_hash)
        .execute(&ctx.db)
        .await?;
    let expires_at: DateTime<Utc> = row.get("expires_at")?;
    if deleted == 0 || expires_at <= Utc::now() {
        return Err(ApiError::unauthorized(BAD_REFRESH_TOKEN));
    }
    let user_id: Uuid = row.get("user_id")?;
    let user = db::query("SELECT roles FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&ctx.db)
        .await?
        .ok_or_else(|| ApiError::unauthorized(BAD_REFRESH_TOKEN))?;
    let roles: Vec<String> = user.get_json("roles")?;
    Ok(Json(issue_tokens(&ctx, user_id, &roles).await?))
}

/// Revokes a refresh token. Always 204: logging out twice is not an error, and the answer
/// does not tell whether the token existed.
async fn logout(
    State(ctx): State<ServiceContext>,
    Json(request): Json<RefreshRequest>,
) -> ApiResult<StatusCode> {
    db::query("DELETE FROM refresh_tokens WHERE token_hash = $1")
        .bind(hash_refresh_token(&request.refresh_token))
        .execute(&ctx.db)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(ctx): State<ServiceContext>, caller: Caller) -> ApiResult<Json<MeResponse>> {
    let row = db::query("SELECT id, email, username, roles, created_at FROM users WHERE id = $1")
        .bind(caller.user_id)
        .fetch_optional(&ctx.db)
        .await?
        .ok_or_else(|| ApiError::not_found("user not found"))?;
    Ok(Json(MeResponse {
        user_id: row.get("id")?,
        email: row.get("email")?,
        username: row.get("username")?,
        roles: row.get_json("roles")?,
        created_at: row.get("created_at")?,
    }))
}

fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A new access token and a new stored refresh token for the user.
async fn issue_tokens(
    ctx: &ServiceContext,
    user_id: Uuid,
    roles: &[String],
) -> ApiResult<TokenResponse> {
    let access_token = ctx
        .settings
        .access_tokens
        .issue(user_id, roles)
        .map_err(|error| ApiError::internal(error.to_string()))?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let refresh_token = URL_SAFE_NO_PAD.encode(bytes);
    let now = crate::db::now();
    db::query("INSERT INTO refresh_tokens (id, user_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(Uuid::now_v7())
        .bind(user_id)
        .bind(hash_refresh_token(&refresh_token))
        .bind(now + chrono::Duration::seconds(ctx.settings.refresh_token_ttl_secs))
        .bind(now)
        .execute(&ctx.db)
        .await?;
    Ok(TokenResponse {
        user_id,
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: ctx.settings.access_token_ttl_secs,
    })
}

fn hash_refresh_token(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// Publishes an account event. A failure is logged, not returned: the account change is
/// already committed, and failing the request would make the client retry an operation that
/// succeeded. (A transactional outbox will close this gap.)
async fn emit(
    ctx: &ServiceContext,
    event_type: Option<&'static str>,
    user_id: Uuid,
    email: &str,
    username: &str,
) {
    let Some(event_type) = event_type else { return };
    let data = serde_json::json!({ "user_id": user_id, "email": email, "username": username });
    if let Err(error) = ctx.bus.publish_json(ctx.service, event_type, data).await {
        tracing::error!(event_type, %user_id, %error, "could not publish account event");
    }
}

/// Argon2id with the crate's defaults (OWASP's recommended parameters), off the async threads
/// because one hash takes tens of milliseconds of CPU.
async fn hash_password(password: String) -> ApiResult<String> {
    use argon2::password_hash::PasswordHasher as _;
    tokio::task::spawn_blocking(move || {
        argon2::Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
    })
    .await
    .map_err(|error| ApiError::internal(format!("password hashing task failed: {error}")))?
    .map_err(|error| ApiError::internal(format!("password hashing failed: {error}")))
}

/// True when `password` matches the stored PHC string; with `None`, checks against a dummy
/// hash (always false) to spend the same time.
async fn verify_password(password: String, stored: Option<String>) -> ApiResult<bool> {
    use argon2::password_hash::PasswordVerifier as _;
    use argon2::password_hash::phc::PasswordHash;
    tokio::task::spawn_blocking(move || {
        let stored = stored.as_deref().unwrap_or(DUMMY_HASH.as_str());
        let parsed = PasswordHash::new(stored)
            .map_err(|error| format!("stored password hash is malformed: {error}"))?;
        Ok::<bool, String>(
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
        )
    })
    .await
    .map_err(|error| ApiError::internal(format!("password verification task failed: {error}")))?
    .map_err(ApiError::internal)
}

/// A valid hash of a random password, verified against when the e-mail is unknown.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    use argon2::password_hash::PasswordHasher as _;
    let mut password = [0u8; 16];
    rand::rng().fill_bytes(&mut password);
    argon2::Argon2::default()
        .hash_password(&password)
        .map(|hash| hash.to_string())
        // Hashing 16 bytes with default parameters cannot fail. If it ever did, the empty
        // string would not parse as a hash: a login with an unknown e-mail would answer 500
        // instead of 401, but nobody could log in with it.
        .unwrap_or_default()
});

#[cfg(test)]
mod tests;
