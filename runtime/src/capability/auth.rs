//! The `auth` capability: accounts, passwords and tokens.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /auth/register` | `{email, username, password}` | 201 `{user_id, access_token, refresh_token, token_type, expires_in}` |
//! | `POST /auth/login` | `{email, password}` | 200 `{user_id, access_token, refresh_token, token_type, expires_in}` |
//! | `POST /auth/refresh` | `{refresh_token}` | 200 a new pair; the old refresh token stops working |
//! | `POST /auth/logout` | `{refresh_token}` (user) | 204; the refresh token stops working |
//! | `POST /auth/password-reset` | `{email}` | 202, whether the account exists or not |
//! | `POST /auth/password-reset/confirm` | `{token, password}` | 204; every session is revoked |
//! | `GET /auth/me` | (user) | 200 `{user_id, email, username, roles, created_at}` |
//! | `GET /auth/users` | (role `admin`) `?limit=&cursor=` | 200 `{items: [account...], next_cursor}` |
//!
//! E-mail addresses are compared case-insensitively (stored trimmed and lowercased).
//! Passwords are hashed with argon2id on the blocking pool, with the parameters of
//! [`PasswordHashing`] (a hash made with other parameters is re-made at the next login).
//! Login answers an unknown e-mail and a wrong password with the same status and body, after
//! the same work.
//!
//! **Sessions.** Every login or registration starts a refresh-token *family* (a session).
//! Refresh tokens are 32 random bytes (base64url) of which only the SHA-256 is stored, so a
//! database leak yields no usable token. A refresh token works once: `POST /auth/refresh`
//! marks it used and hands out a new one of the same family. Presenting a used token again
//! means that two parties hold the family (one of them stole it), so the whole family is
//! revoked: that call and every later one with any token of the family get 401. Logout
//! revokes the family of the token it is given; a password reset revokes every family of
//! the account. Access tokens are not stored: they stay valid until they expire.
//!
//! **Password reset.** `POST /auth/password-reset` always answers 202 the same way, and does
//! its work after answering, so neither the answer nor its timing tells whether the address
//! has an account. For an account, it stores a single-use token (32 random bytes, only the
//! SHA-256 kept) valid [`crate::service::Settings::password_reset_ttl_secs`] (default 30
//! minutes) and emits the [`AuthEvents::password_reset`] event
//! `{user_id, email, username, token, expires_at}` (in the transaction that stores the token)
//! for the service that delivers it. The routes exist only when that event is configured.
//!
//! **First admin.** [`on_start`] (run by the CLI when the service starts, embedded and
//! distributed alike) makes sure the account named by `SVCGEN_ADMIN_EMAIL` and
//! `SVCGEN_ADMIN_PASSWORD` exists and has the role `admin`; see [`ensure_admin`].

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::db::{self, CapabilityTables, DbError, Migration, Migrations};
use crate::http::{ApiError, ApiResult, Cursor, Json, Page, Paginated};
use crate::identity::Caller;
use crate::service::ServiceContext;
use crate::validate::Validator;

/// The capability's tables as a service that uses it migrates them: recorded in
/// `_svcgen_auth_migrations`, apart from the service's own.
pub static TABLES: CapabilityTables = CapabilityTables {
    history: "_svcgen_auth_migrations",
    adopt: "ALTER TABLE _sqlx_migrations RENAME TO _svcgen_auth_migrations",
    migrations: &MIGRATIONS,
};

/// The capability's tables, per engine.
pub static MIGRATIONS: Migrations = Migrations {
    sqlite: &[
        Migration {
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
        },
        Migration {
            version: 2,
            description: "auth refresh-token families, password-reset tokens",
            sql: r#"
CREATE TABLE refresh_token_families (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX refresh_token_families_user_id ON refresh_token_families (user_id);
INSERT INTO refresh_token_families (id, user_id, created_at)
    SELECT id, user_id, created_at FROM refresh_tokens;
ALTER TABLE refresh_tokens ADD COLUMN family_id TEXT
    REFERENCES refresh_token_families (id) ON DELETE CASCADE;
ALTER TABLE refresh_tokens ADD COLUMN used_at TEXT;
UPDATE refresh_tokens SET family_id = id;
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE TABLE password_reset_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX password_reset_tokens_user_id ON password_reset_tokens (user_id);
CREATE INDEX users_created_at_id ON users (created_at, id);
"#,
        },
    ],
    postgres: &[
        Migration {
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
        },
        Migration {
            version: 2,
            description: "auth refresh-token families, password-reset tokens",
            sql: r#"
CREATE TABLE refresh_token_families (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX refresh_token_families_user_id ON refresh_token_families (user_id);
INSERT INTO refresh_token_families (id, user_id, created_at)
    SELECT id, user_id, created_at FROM refresh_tokens;
ALTER TABLE refresh_tokens ADD COLUMN family_id UUID
    REFERENCES refresh_token_families (id) ON DELETE CASCADE;
ALTER TABLE refresh_tokens ADD COLUMN used_at TIMESTAMPTZ;
UPDATE refresh_tokens SET family_id = id;
ALTER TABLE refresh_tokens ALTER COLUMN family_id SET NOT NULL;
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE TABLE password_reset_tokens (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX password_reset_tokens_user_id ON password_reset_tokens (user_id);
CREATE INDEX users_created_at_id ON users (created_at, id);
"#,
        },
    ],
    // Keyed text is VARCHAR/CHAR (MySQL indexes no TEXT without a prefix), uuids CHAR(36),
    // timestamps DATETIME(6) in UTC; foreign keys are table constraints because MySQL ignores
    // REFERENCES written on a column. The binary collation keeps comparisons case-sensitive,
    // as on the other engines.
    mysql: &[
        Migration {
            version: 1,
            description: "auth users and refresh tokens",
            sql: r#"
CREATE TABLE users (
    id CHAR(36) NOT NULL PRIMARY KEY,
    email VARCHAR(320) NOT NULL UNIQUE,
    username LONGTEXT NOT NULL,
    password_hash LONGTEXT NOT NULL,
    roles JSON NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE TABLE refresh_tokens (
    id CHAR(36) NOT NULL PRIMARY KEY,
    user_id CHAR(36) NOT NULL,
    token_hash CHAR(64) NOT NULL UNIQUE,
    expires_at DATETIME(6) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    INDEX refresh_tokens_user_id (user_id),
    CONSTRAINT refresh_tokens_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
"#,
        },
        Migration {
            version: 2,
            description: "auth refresh-token families, password-reset tokens",
            sql: r#"
CREATE TABLE refresh_token_families (
    id CHAR(36) NOT NULL PRIMARY KEY,
    user_id CHAR(36) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    revoked_at DATETIME(6) NULL,
    INDEX refresh_token_families_user_id (user_id),
    CONSTRAINT refresh_token_families_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
INSERT INTO refresh_token_families (id, user_id, created_at)
    SELECT id, user_id, created_at FROM refresh_tokens;
ALTER TABLE refresh_tokens ADD COLUMN family_id CHAR(36) NULL, ADD COLUMN used_at DATETIME(6) NULL;
UPDATE refresh_tokens SET family_id = id;
ALTER TABLE refresh_tokens MODIFY family_id CHAR(36) NOT NULL,
    ADD INDEX refresh_tokens_family_id (family_id),
    ADD CONSTRAINT refresh_tokens_family FOREIGN KEY (family_id)
        REFERENCES refresh_token_families (id) ON DELETE CASCADE;
CREATE TABLE password_reset_tokens (
    id CHAR(36) NOT NULL PRIMARY KEY,
    user_id CHAR(36) NOT NULL,
    token_hash CHAR(64) NOT NULL UNIQUE,
    expires_at DATETIME(6) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    INDEX password_reset_tokens_user_id (user_id),
    CONSTRAINT password_reset_tokens_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX users_created_at_id ON users (created_at, id);
"#,
        },
    ],
};

/// Which events the capability publishes (their names come from the spec); `None` publishes
/// nothing. `registered` and `logged_in` carry `{user_id, email, username}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthEvents {
    /// Published after a successful registration.
    pub registered: Option<&'static str>,
    /// Published after a successful login.
    pub logged_in: Option<&'static str>,
    /// Published when a password reset is requested for an existing account, for the service
    /// that delivers the token to its owner: `{user_id, email, username, token, expires_at}`
    /// (`token` in clear, valid once, until `expires_at`). `None`: there is no password reset
    /// (its routes answer 404).
    pub password_reset: Option<&'static str>,
}

/// Roles every new account gets.
const DEFAULT_ROLES: &[&str] = &["user"];
/// The role of administrators (`GET /auth/users`, the first admin account).
pub const ADMIN_ROLE: &str = "admin";
const PASSWORD_MIN_CHARS: usize = 8;
/// Caps the work one request can make argon2 do.
const PASSWORD_MAX_CHARS: usize = 256;
const USERNAME_MAX_CHARS: usize = 64;
/// The same answer for an unknown e-mail and a wrong password, so that the login form does
/// not tell which addresses have accounts.
const BAD_CREDENTIALS: &str = "invalid e-mail or password";
const BAD_REFRESH_TOKEN: &str = "invalid or expired refresh token";
const BAD_RESET_TOKEN: &str = "invalid or expired password-reset token";
/// Families without any token left are deleted once they are this old (a new family gets its
/// first token right after it is created, well within this time).
const EMPTY_FAMILY_GRACE_SECS: i64 = 60;

/// The capability's routes, to be wrapped by [`crate::service::service_app`].
pub fn routes(events: AuthEvents) -> Router<ServiceContext> {
    let router = Router::new()
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
        .route("/auth/users", get(list_users));
    match events.password_reset {
        Some(event_type) => router
            .route(
                "/auth/password-reset",
                post(move |state, body| request_password_reset(state, event_type, body)),
            )
            .route("/auth/password-reset/confirm", post(confirm_password_reset)),
        None => router,
    }
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

#[derive(Deserialize)]
struct PasswordResetRequest {
    email: String,
}

#[derive(Deserialize)]
struct PasswordResetConfirmation {
    token: String,
    password: String,
}

#[derive(Serialize)]
struct Accepted {
    message: &'static str,
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

/// An account as `GET /auth/me` and `GET /auth/users` show it (and the `get: user` RPC
/// answers it).
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    /// The account's id (the `sub` of its tokens).
    pub user_id: Uuid,
    /// Its e-mail address, lower case.
    pub email: String,
    /// Its display name.
    pub username: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// The account with this id, if there is one.
pub async fn find_account(db: &db::Db, id: Uuid) -> Result<Option<Account>, DbError> {
    let row = db::query("SELECT id, email, username, roles, created_at FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(account).transpose()
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

    let password_hash = hash_password(ctx.settings.password_hashing, request.password).await?;
    let user_id = Uuid::now_v7();
    let roles: Vec<String> = DEFAULT_ROLES
        .iter()
        .map(|role| (*role).to_owned())
        .collect();
    let now = crate::db::now();
    // The account and its `registered` event commit together (transactional outbox).
    let mut tx = ctx.begin().await?;
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
    .execute(&mut tx)
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

    emit(&ctx, &mut tx, events.registered, user_id, &email, &username).await?;
    ctx.commit(tx).await?;
    let tokens = issue_tokens(&ctx, user_id, &roles, None).await?;
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
    let hashing = ctx.settings.password_hashing;
    let Some(row) = row else {
        // Spend the same time as for a wrong password, so that timing does not reveal
        // whether the address has an account.
        verify_password(hashing, request.password, None).await?;
        return Err(ApiError::unauthorized(BAD_CREDENTIALS));
    };
    let password_hash: String = row.get("password_hash")?;
    let verified = verify_password(
        hashing,
        request.password.clone(),
        Some(password_hash.clone()),
    )
    .await?;
    if !verified {
        return Err(ApiError::unauthorized(BAD_CREDENTIALS));
    }
    let user_id: Uuid = row.get("id")?;
    let username: String = row.get("username")?;
    let roles: Vec<String> = row.get_json("roles")?;
    if hashing.is_outdated(&password_hash) {
        rehash_password(&ctx, user_id, request.password).await;
    }

    let tokens = issue_tokens(&ctx, user_id, &roles, None).await?;
    let mut tx = ctx.begin().await?;
    emit(&ctx, &mut tx, events.logged_in, user_id, &email, &username).await?;
    ctx.commit(tx).await?;
    Ok(Json(tokens))
}

/// Exchanges a refresh token for a new pair of the same family. The token is claimed with
/// one conditional update, so that of two requests presenting it at once exactly one wins;
/// a token presented after it was used (or by the loser of such a race) revokes its family.
async fn refresh(
    State(ctx): State<ServiceContext>,
    Json(request): Json<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let token_hash = hash_refresh_token(&request.refresh_token);
    let row = db::query(
        "SELECT t.id, t.user_id, t.family_id, t.expires_at, t.used_at, f.revoked_at \
         FROM refresh_tokens t JOIN refresh_token_families f ON f.id = t.family_id \
         WHERE t.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(&ctx.db)
    .await?
    .ok_or_else(|| ApiError::unauthorized(BAD_REFRESH_TOKEN))?;
    let token_id: Uuid = row.get("id")?;
    let user_id: Uuid = row.get("user_id")?;
    let family_id: Uuid = row.get("family_id")?;
    let expires_at: DateTime<Utc> = row.get("expires_at")?;
    let used_at: Option<DateTime<Utc>> = row.get("used_at")?;
    let revoked_at: Option<DateTime<Utc>> = row.get("revoked_at")?;
    if revoked_at.is_some() {
        return Err(ApiError::unauthorized(BAD_REFRESH_TOKEN));
    }
    if used_at.is_some() {
        reuse_detected(&ctx, user_id, family_id).await?;
        return Err(ApiError::unauthorized(BAD_REFRESH_TOKEN));
    }
    let now = db::now();
    if expires_at <= now {
        return Err(ApiError::unauthorized(BAD_REFRESH_TOKEN));
    }
    let claimed =
        db::query("UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(token_id)
            .execute(&ctx.db)
            .await?;
    if claimed == 0 {
        // Another request used it between the read and the claim.
        reuse_detected(&ctx, user_id, family_id).await?;
        return Err(ApiError::unauthorized(BAD_REFRESH_TOKEN));
    }
    let user = db::query("SELECT roles FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&ctx.db)
        .await?
        .ok_or_else(|| ApiError::unauthorized(BAD_REFRESH_TOKEN))?;
    let roles: Vec<String> = user.get_json("roles")?;
    // Should a revocation of the family commit while this runs, the new token is born into a
    // revoked family and is refused at its first use: the family is checked at every use.
    Ok(Json(
        issue_tokens(&ctx, user_id, &roles, Some(family_id)).await?,
    ))
}

async fn reuse_detected(ctx: &ServiceContext, user_id: Uuid, family_id: Uuid) -> ApiResult<()> {
    tracing::warn!(%user_id, %family_id, "a used refresh token was presented again; revoking its family");
    revoke_family(ctx, family_id).await
}

/// Ends a session: no token of its family can be refreshed any more.
async fn revoke_family(ctx: &ServiceContext, family_id: Uuid) -> ApiResult<()> {
    db::query(
        "UPDATE refresh_token_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
    )
    .bind(db::now())
    .bind(family_id)
    .execute(&ctx.db)
    .await?;
    db::query("DELETE FROM refresh_tokens WHERE family_id = $1")
        .bind(family_id)
        .execute(&ctx.db)
        .await?;
    Ok(())
}

/// Ends a refresh-token session of the caller's. Always 204: logging out twice is not an
/// error, and the answer does not tell whether the token existed (a token of another user is
/// left alone).
async fn logout(
    State(ctx): State<ServiceContext>,
    caller: Caller,
    Json(request): Json<RefreshRequest>,
) -> ApiResult<StatusCode> {
    let row = db::query("SELECT user_id, family_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(hash_refresh_token(&request.refresh_token))
        .fetch_optional(&ctx.db)
        .await?;
    if let Some(row) = row {
        let owner: Uuid = row.get("user_id")?;
        if owner == caller.user_id {
            revoke_family(&ctx, row.get("family_id")?).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Always the same 202, at once; the work happens after the answer (see the module docs).
async fn request_password_reset(
    State(ctx): State<ServiceContext>,
    event_type: &'static str,
    Json(request): Json<PasswordResetRequest>,
) -> (StatusCode, Json<Accepted>) {
    let email = normalize_email(&request.email);
    tokio::spawn(async move {
        if let Err(error) = start_password_reset(&ctx, event_type, &email).await {
            tracing::error!(%error, "could not start a password reset");
        }
    });
    (
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: "if an account exists for this address, a password-reset message is on its way",
        }),
    )
}

/// For an existing account: stores a new reset token and emits the reset event carrying it,
/// both in one transaction.
async fn start_password_reset(
    ctx: &ServiceContext,
    event_type: &'static str,
    email: &str,
) -> ApiResult<()> {
    let row = db::query("SELECT id, username FROM users WHERE email = $1")
        .bind(email.to_owned())
        .fetch_optional(&ctx.db)
        .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let user_id: Uuid = row.get("id")?;
    let username: String = row.get("username")?;
    let now = db::now();
    db::query("DELETE FROM password_reset_tokens WHERE user_id = $1 AND expires_at <= $2")
        .bind(user_id)
        .bind(now)
        .execute(&ctx.db)
        .await?;
    let token = random_token();
    let expires_at = now + chrono::Duration::seconds(ctx.settings.password_reset_ttl_secs);
    let mut tx = ctx.begin().await?;
    db::query(
        "INSERT INTO password_reset_tokens (id, user_id, token_hash, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(hash_refresh_token(&token))
    .bind(expires_at)
    .bind(now)
    .execute(&mut tx)
    .await?;
    let data = serde_json::json!({
        "user_id": user_id,
        "email": email,
        "username": username,
        "token": token,
        "expires_at": expires_at,
    });
    ctx.emit_json(&mut tx, event_type, data).await?;
    ctx.commit(tx).await?;
    Ok(())
}

/// Sets a new password with a password-reset token, which then no longer works (nor does any
/// other outstanding one of the account), and revokes every session of the account.
async fn confirm_password_reset(
    State(ctx): State<ServiceContext>,
    Json(request): Json<PasswordResetConfirmation>,
) -> ApiResult<StatusCode> {
    let mut validator = Validator::new();
    validator.length(
        "password",
        &request.password,
        Some(PASSWORD_MIN_CHARS),
        Some(PASSWORD_MAX_CHARS),
    );
    validator.finish()?;
    let row = db::query(
        "SELECT id, user_id, expires_at FROM password_reset_tokens WHERE token_hash = $1",
    )
    .bind(hash_refresh_token(&request.token))
    .fetch_optional(&ctx.db)
    .await?
    .ok_or_else(|| ApiError::bad_request(BAD_RESET_TOKEN))?;
    let token_id: Uuid = row.get("id")?;
    let user_id: Uuid = row.get("user_id")?;
    let expires_at: DateTime<Utc> = row.get("expires_at")?;
    if expires_at <= db::now() {
        return Err(ApiError::bad_request(BAD_RESET_TOKEN));
    }
    // Hash before claiming the token, so that a failure here does not use it up.
    let password_hash = hash_password(ctx.settings.password_hashing, request.password).await?;
    let now = db::now();
    let mut tx = ctx.begin().await?;
    let claimed = db::query("DELETE FROM password_reset_tokens WHERE id = $1")
        .bind(token_id)
        .execute(&mut tx)
        .await?;
    if claimed == 0 {
        // Used by a concurrent confirmation.
        return Err(ApiError::bad_request(BAD_RESET_TOKEN));
    }
    db::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(password_hash)
        .bind(now)
        .bind(user_id)
        .execute(&mut tx)
        .await?;
    db::query("DELETE FROM password_reset_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut tx)
        .await?;
    // Every session ends: the families are revoked (a token issued concurrently is refused
    // at its first use) and their tokens deleted.
    db::query(
        "UPDATE refresh_token_families SET revoked_at = $1 \
         WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .execute(&mut tx)
    .await?;
    db::query("DELETE FROM refresh_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    tracing::info!(%user_id, "password reset; every session revoked");
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(ctx): State<ServiceContext>, caller: Caller) -> ApiResult<Json<Account>> {
    let account = find_account(&ctx.db, caller.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user not found"))?;
    Ok(Json(account))
}

/// Every account, newest first, for administrators (403 for everybody else).
async fn list_users(
    State(ctx): State<ServiceContext>,
    caller: Caller,
    page: Result<Page, ApiError>,
) -> ApiResult<Json<Paginated<Account>>> {
    caller.require_role(ADMIN_ROLE)?;
    let page = page?;
    let before = page.before_key();
    let rows = db::query(
        "SELECT id, email, username, roles, created_at FROM users \
         WHERE (created_at < $1 OR (created_at = $1 AND id < $2)) \
         ORDER BY created_at DESC, id DESC LIMIT $3",
    )
    .bind(before.created_at)
    .bind(before.id)
    .bind(page.limit)
    .fetch_all(&ctx.db)
    .await?;
    let items = rows
        .iter()
        .map(account)
        .collect::<Result<Vec<_>, DbError>>()?;
    Ok(Json(Paginated::new(items, page.limit, |a| Cursor {
        created_at: a.created_at,
        id: a.user_id,
    })))
}

fn account(row: &db::Row) -> Result<Account, DbError> {
    Ok(Account {
        user_id: row.get("id")?,
        email: row.get("email")?,
        username: row.get("username")?,
        roles: row.get_json("roles")?,
        created_at: row.get("created_at")?,
    })
}

fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A new access token and a new stored refresh token for the user, in `family` or, for a
/// new session, in a new family.
async fn issue_tokens(
    ctx: &ServiceContext,
    user_id: Uuid,
    roles: &[String],
    family: Option<Uuid>,
) -> ApiResult<TokenResponse> {
    let access_token = ctx
        .settings
        .access_tokens
        .issue(user_id, roles)
        .map_err(|error| ApiError::internal(error.to_string()))?;
    let now = crate::db::now();
    let family_id = match family {
        Some(family_id) => family_id,
        None => {
            forget_dead_sessions(ctx, user_id, now).await?;
            let family_id = Uuid::now_v7();
            db::query(
                "INSERT INTO refresh_token_families (id, user_id, created_at) VALUES ($1, $2, $3)",
            )
            .bind(family_id)
            .bind(user_id)
            .bind(now)
            .execute(&ctx.db)
            .await?;
            family_id
        }
    };
    let refresh_token = random_token();
    db::query(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(family_id)
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

/// Housekeeping at each new session: deletes the user's expired refresh tokens and the
/// families left without tokens (revoked or expired sessions).
async fn forget_dead_sessions(
    ctx: &ServiceContext,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    db::query("DELETE FROM refresh_tokens WHERE user_id = $1 AND expires_at <= $2")
        .bind(user_id)
        .bind(now)
        .execute(&ctx.db)
        .await?;
    db::query(
        "DELETE FROM refresh_token_families WHERE user_id = $1 AND created_at < $2 \
         AND id NOT IN (SELECT family_id FROM refresh_tokens WHERE user_id = $1)",
    )
    .bind(user_id)
    .bind(now - chrono::Duration::seconds(EMPTY_FAMILY_GRACE_SECS))
    .execute(&ctx.db)
    .await?;
    Ok(())
}

/// 32 random bytes, base64url: refresh and password-reset tokens.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_refresh_token(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// Adds an account event to the outbox inside `tx` (nothing when the spec names no event).
async fn emit(
    ctx: &ServiceContext,
    tx: &mut db::Tx,
    event_type: Option<&'static str>,
    user_id: Uuid,
    email: &str,
    username: &str,
) -> ApiResult<()> {
    let Some(event_type) = event_type else {
        return Ok(());
    };
    let data = serde_json::json!({ "user_id": user_id, "email": email, "username": username });
    ctx.emit_json(tx, event_type, data).await?;
    Ok(())
}

/// Argon2id parameters of new password hashes. Existing hashes keep working whatever the
/// parameters (each hash records its own); one made with other parameters is re-made with
/// these at the owner's next login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PasswordHashing {
    /// Memory, in KiB (`SVCGEN_ARGON2_MEMORY_KIB`).
    pub memory_kib: u32,
    /// Number of passes (`SVCGEN_ARGON2_ITERATIONS`).
    pub iterations: u32,
    /// Degree of parallelism (`SVCGEN_ARGON2_PARALLELISM`).
    pub parallelism: u32,
}

impl PasswordHashing {
    /// OWASP's recommendation for argon2id: 19 MiB, 2 passes, parallelism 1.
    pub const OWASP: PasswordHashing = PasswordHashing {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// The parameters from `SVCGEN_ARGON2_MEMORY_KIB`, `SVCGEN_ARGON2_ITERATIONS` and
    /// `SVCGEN_ARGON2_PARALLELISM`, each defaulting to [`PasswordHashing::OWASP`]'s value.
    pub fn from_env() -> anyhow::Result<PasswordHashing> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`PasswordHashing::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<PasswordHashing> {
        let read = |name: &str, default: u32| -> anyhow::Result<u32> {
            match lookup(name) {
                Some(text) if !text.trim().is_empty() => text
                    .trim()
                    .parse::<u32>()
                    .with_context(|| format!("{name} must be a positive integer, got `{text}`")),
                _ => Ok(default),
            }
        };
        let hashing = PasswordHashing {
            memory_kib: read("SVCGEN_ARGON2_MEMORY_KIB", Self::OWASP.memory_kib)?,
            iterations: read("SVCGEN_ARGON2_ITERATIONS", Self::OWASP.iterations)?,
            parallelism: read("SVCGEN_ARGON2_PARALLELISM", Self::OWASP.parallelism)?,
        };
        hashing.params().map_err(|error| {
            anyhow::anyhow!(
                "invalid argon2 parameters (SVCGEN_ARGON2_MEMORY_KIB={}, SVCGEN_ARGON2_ITERATIONS={}, \
                 SVCGEN_ARGON2_PARALLELISM={}): {error}; memory must be at least 8 KiB per lane, \
                 iterations and parallelism at least 1",
                hashing.memory_kib,
                hashing.iterations,
                hashing.parallelism
            )
        })?;
        Ok(hashing)
    }

    fn params(&self) -> Result<argon2::Params, argon2::Error> {
        argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
    }

    fn hasher(&self) -> Result<argon2::Argon2<'static>, String> {
        let params = self
            .params()
            .map_err(|error| format!("invalid argon2 parameters: {error}"))?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }

    /// True when `stored` (a PHC string) was not made by argon2id with these parameters.
    fn is_outdated(&self, stored: &str) -> bool {
        use argon2::password_hash::phc::PasswordHash;
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let current = parsed.algorithm.as_str() == "argon2id"
            && argon2::Params::try_from(&parsed).is_ok_and(|params| {
                params.m_cost() == self.memory_kib
                    && params.t_cost() == self.iterations
                    && params.p_cost() == self.parallelism
            });
        !current
    }
}

impl Default for PasswordHashing {
    fn default() -> Self {
        Self::OWASP
    }
}

/// A slot to hash or check a password in. Hashes run at most one per core at a time: more
/// would not finish sooner (each is CPU-bound) but each would hold its own block of memory
/// (19 MiB with the default parameters), which the allocator keeps once it has grown to it.
async fn hashing_slot() -> ApiResult<tokio::sync::SemaphorePermit<'static>> {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            tokio::sync::Semaphore::new(cores)
        })
        .acquire()
        .await
        .map_err(|error| ApiError::internal(format!("password hashing is closed: {error}")))
}

/// Argon2id with `hashing`'s parameters, off the async threads because one hash takes tens
/// of milliseconds of CPU.
async fn hash_password(hashing: PasswordHashing, password: String) -> ApiResult<String> {
    let _slot = hashing_slot().await?;
    tokio::task::spawn_blocking(move || hash_password_blocking(hashing, password.as_bytes()))
        .await
        .map_err(|error| ApiError::internal(format!("password hashing task failed: {error}")))?
        .map_err(|error| ApiError::internal(format!("password hashing failed: {error}")))
}

fn hash_password_blocking(hashing: PasswordHashing, password: &[u8]) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher as _;
    hashing
        .hasher()?
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|error| error.to_string())
}

/// True when `password` matches the stored PHC string (checked with the parameters the hash
/// records); with `None`, checks against a dummy hash made with `hashing`'s parameters
/// (always false) to spend the same time.
async fn verify_password(
    hashing: PasswordHashing,
    password: String,
    stored: Option<String>,
) -> ApiResult<bool> {
    use argon2::password_hash::PasswordVerifier as _;
    use argon2::password_hash::phc::PasswordHash;
    let _slot = hashing_slot().await?;
    tokio::task::spawn_blocking(move || {
        let stored = match stored {
            Some(stored) => stored,
            None => dummy_hash(hashing)?,
        };
        let parsed = PasswordHash::new(&stored)
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

/// Re-makes a password hash with the current parameters. A failure only means that the old
/// hash stays (it still works), so it is logged.
async fn rehash_password(ctx: &ServiceContext, user_id: Uuid, password: String) {
    let rehashed = match hash_password(ctx.settings.password_hashing, password).await {
        Ok(hash) => hash,
        Err(error) => {
            tracing::warn!(%user_id, %error, "could not re-hash a password");
            return;
        }
    };
    let updated = db::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(rehashed)
        .bind(user_id)
        .execute(&ctx.db)
        .await;
    if let Err(error) = updated {
        tracing::warn!(%user_id, %error, "could not store a re-hashed password");
    }
}

/// Valid hashes of a random password, one per parameter set, verified against when the
/// e-mail is unknown.
static DUMMY_HASHES: LazyLock<Mutex<HashMap<PasswordHashing, String>>> =
    LazyLock::new(Default::default);

fn dummy_hash(hashing: PasswordHashing) -> Result<String, String> {
    let cached = DUMMY_HASHES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&hashing)
        .cloned();
    if let Some(hash) = cached {
        return Ok(hash);
    }
    let mut password = [0u8; 16];
    rand::rng().fill_bytes(&mut password);
    let hash = hash_password_blocking(hashing, &password)?;
    DUMMY_HASHES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(hashing, hash.clone());
    Ok(hash)
}

/// What [`ensure_admin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAccount {
    /// No account had the address: one was created with the roles `user` and `admin`.
    Created(Uuid),
    /// The account existed without the role `admin`, which it now has.
    Promoted(Uuid),
    /// The account existed and was already an administrator: nothing changed.
    Unchanged(Uuid),
}

/// The first administrator, as the environment describes it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminFromEnv {
    /// `SVCGEN_ADMIN_EMAIL`.
    pub email: String,
    /// `SVCGEN_ADMIN_USERNAME`, default `admin`.
    pub username: String,
    /// `SVCGEN_ADMIN_PASSWORD`.
    pub password: String,
}

impl std::fmt::Debug for AdminFromEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("AdminFromEnv")
            .field("email", &self.email)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl AdminFromEnv {
    /// Reads `SVCGEN_ADMIN_EMAIL`, `SVCGEN_ADMIN_PASSWORD` and `SVCGEN_ADMIN_USERNAME`
    /// through `lookup`: `None` when neither the e-mail nor the password is set, an error
    /// when only one of them is.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<AdminFromEnv>> {
        let read = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let email = read("SVCGEN_ADMIN_EMAIL");
        let password = read("SVCGEN_ADMIN_PASSWORD");
        let username = read("SVCGEN_ADMIN_USERNAME")
            .map(|name| name.trim().to_owned())
            .unwrap_or_else(|| "admin".to_owned());
        match (email, password) {
            (None, None) => Ok(None),
            (Some(email), Some(password)) => Ok(Some(AdminFromEnv {
                email,
                username,
                password,
            })),
            (Some(_), None) => bail!(
                "SVCGEN_ADMIN_EMAIL is set but SVCGEN_ADMIN_PASSWORD is not; set both to create \
                 the first admin, or neither"
            ),
            (None, Some(_)) => bail!(
                "SVCGEN_ADMIN_PASSWORD is set but SVCGEN_ADMIN_EMAIL is not; set both to create \
                 the first admin, or neither"
            ),
        }
    }
}

/// The auth service's start hook (`ServiceDef::on_start`): when `SVCGEN_ADMIN_EMAIL` and
/// `SVCGEN_ADMIN_PASSWORD` are set, [`ensure_admin`] with them (and `SVCGEN_ADMIN_USERNAME`,
/// default `admin`). Fails, so that the service does not start, when only one of the two is
/// set or they do not make a valid account.
pub fn on_start(ctx: &ServiceContext) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let Some(admin) = AdminFromEnv::from_lookup(|name| std::env::var(name).ok())? else {
            return Ok(());
        };
        let outcome = ensure_admin(ctx, &admin.email, &admin.username, &admin.password)
            .await
            .map_err(|error| {
                anyhow::anyhow!(
                    "cannot set up the first admin {} (SVCGEN_ADMIN_EMAIL): {}",
                    admin.email,
                    error.message()
                )
            })?;
        match outcome {
            AdminAccount::Created(user_id) => {
                tracing::info!(%user_id, email = %admin.email, "created the admin account");
            }
            AdminAccount::Promoted(user_id) => {
                tracing::info!(%user_id, email = %admin.email, "gave the existing account the role admin");
            }
            AdminAccount::Unchanged(user_id) => {
                tracing::debug!(%user_id, email = %admin.email, "the admin account exists");
            }
        }
        Ok(())
    })
}

/// Makes sure an account with `email` exists and has the role `admin`; idempotent, and safe
/// when several replicas run it at once. A new account gets the roles `user` and `admin`,
/// `username` and `password` (validated like a registration: 400 when invalid). An existing
/// account keeps its password and username and only gains the role. No event is emitted.
pub async fn ensure_admin(
    ctx: &ServiceContext,
    email: &str,
    username: &str,
    password: &str,
) -> ApiResult<AdminAccount> {
    let email = normalize_email(email);
    let username = username.trim().to_owned();
    let mut validator = Validator::new();
    validator.email("email", &email);
    validator.length("username", &username, Some(1), Some(USERNAME_MAX_CHARS));
    validator.length(
        "password",
        password,
        Some(PASSWORD_MIN_CHARS),
        Some(PASSWORD_MAX_CHARS),
    );
    validator.finish()?;

    if let Some(outcome) = promote_to_admin(ctx, &email).await? {
        return Ok(outcome);
    }
    let password_hash = hash_password(ctx.settings.password_hashing, password.to_owned()).await?;
    let user_id = Uuid::now_v7();
    let roles: Vec<String> = DEFAULT_ROLES
        .iter()
        .copied()
        .chain([ADMIN_ROLE])
        .map(str::to_owned)
        .collect();
    let now = db::now();
    let inserted = db::query(
        "INSERT INTO users (id, email, username, password_hash, roles, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(user_id)
    .bind(email.clone())
    .bind(username)
    .bind(password_hash)
    .bind_json(&roles)
    .bind(now)
    .bind(now)
    .execute(&ctx.db)
    .await;
    match inserted {
        Ok(_) => Ok(AdminAccount::Created(user_id)),
        // Created in the meantime (another replica starting, or a registration).
        Err(error) if error.is_unique_violation() => promote_to_admin(ctx, &email)
            .await?
            .ok_or_else(|| ApiError::internal("the admin account vanished while being created")),
        Err(error) => Err(error.into()),
    }
}

/// Gives the account with `email` the role `admin`; `None` when there is no such account.
async fn promote_to_admin(ctx: &ServiceContext, email: &str) -> ApiResult<Option<AdminAccount>> {
    let Some(row) = db::query("SELECT id, roles FROM users WHERE email = $1")
        .bind(email.to_owned())
        .fetch_optional(&ctx.db)
        .await?
    else {
        return Ok(None);
    };
    let user_id: Uuid = row.get("id")?;
    let mut roles: Vec<String> = row.get_json("roles")?;
    if roles.iter().any(|role| role == ADMIN_ROLE) {
        return Ok(Some(AdminAccount::Unchanged(user_id)));
    }
    roles.push(ADMIN_ROLE.to_owned());
    db::query("UPDATE users SET roles = $1, updated_at = $2 WHERE id = $3")
        .bind_json(&roles)
        .bind(db::now())
        .bind(user_id)
        .execute(&ctx.db)
        .await?;
    Ok(Some(AdminAccount::Promoted(user_id)))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod session_tests;
