//! Who is calling, across the trust boundary.
//!
//! Clients authenticate to the gateway with `Authorization: Bearer <access token>`, a JWT
//! (HS256, secret `SVCGEN_JWT_SECRET`, `iss` = `aud` = the system name, `sub` = user id,
//! `roles`). The gateway verifies it and calls the service with [`INTERNAL_HEADER`] carrying a
//! short-lived internal JWT (HS256, a different secret `SVCGEN_INTERNAL_SECRET`,
//! `iss` = `"gateway"`, `aud` = the target service, `sub` = user id when there is one).
//!
//! Services accept nothing else: no `x-user-id` or other client-supplied identity header is
//! ever read, and a token minted for one service is refused by every other one.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::Utc;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::ApiError;

/// The header carrying the internal token from the gateway to a service.
pub const INTERNAL_HEADER: &str = "x-svcgen-internal";

/// Issuer of internal tokens.
const INTERNAL_ISSUER: &str = "gateway";

/// Lifetime of an internal token: long enough for one hop, short enough to be useless if
/// it leaks into a log.
const INTERNAL_TTL_SECS: i64 = 60;

/// Tolerated clock difference between the machine that signs and the one that verifies.
const LEEWAY_SECS: u64 = 10;

/// An authenticated user, as a handler sees it. As an extractor it answers 401 when the
/// request carries no user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The user's id (the token's `sub`).
    pub user_id: Uuid,
    /// The user's roles.
    pub roles: Vec<String>,
}

impl Caller {
    /// True when the caller has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// The identity a service established for a request from its verified internal token; put
/// into the request extensions by the service middleware and read by [`Caller`] and
/// [`MaybeCaller`]. Absent when no internal token was verified.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedIdentity(pub(crate) Option<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<VerifiedIdentity>() {
            Some(VerifiedIdentity(Some(caller))) => Ok(caller.clone()),
            _ => Err(ApiError::unauthorized("authentication required")),
        }
    }
}

/// The caller when there is one; for routes open to anonymous users. Never rejects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaybeCaller(pub Option<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeCaller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let caller = parts
            .extensions
            .get::<VerifiedIdentity>()
            .and_then(|identity| identity.0.clone());
        Ok(MaybeCaller(caller))
    }
}

/// Why a token was not accepted, or could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The token was valid once but has expired.
    #[error("token expired")]
    Expired,
    /// Bad signature, wrong issuer or audience, malformed, missing claims...
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Signing failed (not expected with HMAC keys).
    #[error("cannot sign token: {0}")]
    Sign(String),
}

impl From<jsonwebtoken::errors::Error> for TokenError {
    fn from(error: jsonwebtoken::errors::Error) -> Self {
        match error.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid(error.to_string()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    sub: String,
    iss: String,
    aud: String,
    exp: i64,
    iat: i64,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct InternalClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    iss: String,
    aud: String,
    exp: i64,
    iat: i64,
    #[serde(default)]
    roles: Vec<String>,
}

fn hs256_validation(issuer: &str, required: &[&str]) -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_SECS;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(required);
    validation
}

fn parse_user_id(sub: &str) -> Result<Uuid, TokenError> {
    Uuid::parse_str(sub).map_err(|_| TokenError::Invalid("subject is not a user id".to_owned()))
}

/// Issues and verifies the access tokens clients present to the gateway.
#[derive(Clone)]
pub struct AccessTokens {
    system: String,
    ttl_secs: i64,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys.
        f.debug_struct("AccessTokens")
            .field("system", &self.system)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl AccessTokens {
    /// Tokens for `system` (their issuer and audience), signed with `secret`, valid `ttl_secs`.
    pub fn new(system: &str, secret: &[u8], ttl_secs: i64) -> Self {
        let mut validation = hs256_validation(system, &["exp", "iss", "aud", "sub"]);
        validation.set_audience(&[system]);
        AccessTokens {
            system: system.to_owned(),
            ttl_secs,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// How long an issued token is valid, in seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// A signed access token for `user_id` with `roles`.
    pub fn issue(&self, user_id: Uuid, roles: &[String]) -> Result<String, TokenError> {
        let now = Utc::now().timestamp();
        let claims = AccessClaims {
            sub: user_id.to_string(),
            iss: self.system.clone(),
            aud: self.system.clone(),
            exp: now + self.ttl_secs,
            iat: now,
            roles: roles.to_vec(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| TokenError::Sign(error.to_string()))
    }

    /// Checks signature, algorithm, issuer, audience and expiry, and returns the caller.
    pub fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        let claims =
            jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)?.claims;
        Ok(Caller {
            user_id: parse_user_id(&claims.sub)?,
            roles: claims.roles,
        })
    }
}

/// Signs and verifies the gateway-to-service tokens.
#[derive(Clone)]
pub struct InternalTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for InternalTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalTokens").finish_non_exhaustive()
    }
}

impl InternalTokens {
    /// Internal tokens signed with `secret` (which must differ from the access-token secret).
    pub fn new(secret: &[u8]) -> Self {
        InternalTokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation: hs256_validation(INTERNAL_ISSUER, &["exp", "iss", "aud"]),
        }
    }

    /// A token valid for one minute, only for `service`, carrying `caller` when there is one.
    pub fn sign(&self, service: &str, caller: Option<&Caller>) -> Result<String, TokenError> {
        let now = Utc::now().timestamp();
        let claims = InternalClaims {
            sub: caller.map(|c| c.user_id.to_string()),
            iss: INTERNAL_ISSUER.to_owned(),
            aud: service.to_owned(),
            exp: now + INTERNAL_TTL_SECS,
            iat: now,
            roles: caller.map(|c| c.roles.clone()).unwrap_or_default(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| TokenError::Sign(error.to_string()))
    }

    /// Verifies a token presented to `service`; `Ok(None)` is a valid anonymous request.
    pub fn verify(&self, service: &str, token: &str) -> Result<Option<Caller>, TokenError> {
        let mut validation = self.validation.clone();
        validation.set_audience(&[service]);
        let claims =
            jsonwebtoken::decode::<InternalClaims>(token, &self.decoding, &validation)?.claims;
        match claims.sub {
            Some(sub) => Ok(Some(Caller {
                user_id: parse_user_id(&sub)?,
                roles: claims.roles,
            })),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
