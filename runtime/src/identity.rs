//! Who is calling, across the trust boundary.
//!
//! Clients authenticate to the gateway with `Authorization: Bearer <access token>`, a JWT
//! (HS256 and nothing else, a `kid` header naming the key, `iss` = `aud` = the system name,
//! `sub` = user id, `roles`, `exp`, `nbf`, `iat`; all of `exp`, `nbf`, `iss`, `aud` and `sub`
//! are required and checked). Tokens are signed with the current key
//! (`SVCGEN_JWT_SECRET` / `SVCGEN_JWT_KID`); during a key rotation the previous key
//! (`SVCGEN_JWT_PREVIOUS_SECRET` / `SVCGEN_JWT_PREVIOUS_KID`) is still accepted, so two keys
//! are valid at once (see [`JwtKeys`]). The gateway verifies the token and calls the service
//! with [`INTERNAL_HEADER`] carrying a short-lived internal JWT (HS256, a different secret
//! `SVCGEN_INTERNAL_SECRET`, `iss` = `"gateway"`, `aud` = the target service, `sub` = user id
//! when there is one).
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

    /// True when `roles` is empty or the caller has at least one of them.
    pub fn has_any_role(&self, roles: &[&str]) -> bool {
        roles.is_empty() || roles.iter().any(|role| self.has_role(role))
    }

    /// `Ok` when the caller has `role`, else 403 `{"error": "this requires the role `<role>`"}`:
    /// for checks inside a service (the gateway checks the roles a route declares).
    pub fn require_role(&self, role: &str) -> Result<(), ApiError> {
        if self.has_role(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this requires the role `{role}`"
            )))
        }
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
    nbf: i64,
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
    nbf: i64,
    iat: i64,
    #[serde(default)]
    roles: Vec<String>,
}

/// HS256 only (a token whose header names another algorithm, `none` included, is refused
/// before its signature is even looked at), `exp` and `nbf` checked with a small leeway.
fn hs256_validation(issuer: &str, required: &[&str]) -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.algorithms = vec![Algorithm::HS256];
    validation.leeway = LEEWAY_SECS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(required);
    validation
}

/// The key id used when none is configured (`SVCGEN_JWT_KID`).
pub const DEFAULT_KID: &str = "k1";

/// Longest accepted key id.
const MAX_KID_CHARS: usize = 64;

/// Why a signing key was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The key id is empty, too long or has characters other than `A-Z a-z 0-9 . _ -`.
    #[error("invalid key id `{0}`: use 1 to 64 characters among letters, digits, `.`, `_` and `-`")]
    InvalidKid(String),
    /// The secret is empty.
    #[error("the key `{0}` has an empty secret")]
    EmptySecret(String),
    /// The current and the previous key have the same id.
    #[error("the current and the previous key both have the id `{0}`; give the new key a new id")]
    DuplicateKid(String),
}

/// One HMAC key of access tokens and its id (the JWT `kid` header).
#[derive(Clone)]
pub struct JwtKey {
    kid: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key material.
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl JwtKey {
    /// A key with id `kid` (1 to 64 characters among letters, digits, `.`, `_`, `-`).
    pub fn new(kid: &str, secret: &[u8]) -> Result<JwtKey, KeyError> {
        let valid_kid = !kid.is_empty()
            && kid.chars().count() <= MAX_KID_CHARS
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid_kid {
            return Err(KeyError::InvalidKid(kid.to_owned()));
        }
        if secret.is_empty() {
            return Err(KeyError::EmptySecret(kid.to_owned()));
        }
        Ok(JwtKey {
            kid: kid.to_owned(),
            secret: secret.to_vec(),
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// The keys of access tokens: the current one, which signs and verifies, and during a key
/// rotation the previous one, which only verifies (tokens it signed stay valid until they
/// expire).
///
/// A rotation: give every gateway and the auth service the new key as current (new `kid`)
/// and the old one as previous, gateways first; once the longest access-token lifetime has
/// passed, drop the previous key.
#[derive(Clone, Debug)]
pub struct JwtKeys {
    current: JwtKey,
    previous: Option<JwtKey>,
}

impl JwtKeys {
    /// Only the current key.
    pub fn new(current: JwtKey) -> JwtKeys {
        JwtKeys {
            current,
            previous: None,
        }
    }

    /// Adds the previous key of a rotation; its id must differ from the current one's.
    pub fn with_previous(self, previous: JwtKey) -> Result<JwtKeys, KeyError> {
        if previous.kid == self.current.kid {
            return Err(KeyError::DuplicateKid(previous.kid));
        }
        Ok(JwtKeys {
            previous: Some(previous),
            ..self
        })
    }

    /// The key that signs.
    pub fn current(&self) -> &JwtKey {
        &self.current
    }

    /// The previous key of a rotation, when there is one.
    pub fn previous(&self) -> Option<&JwtKey> {
        self.previous.as_ref()
    }
}

/// Shortest secret accepted in distributed mode: HS256 keys should have at least 256 bits
/// (RFC 7518 section 3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// Fewest distinct characters a production secret must have (catches `aaaa...`,
/// `secretsecret...`, `01230123...`).
const MIN_DISTINCT_SECRET_CHARS: usize = 8;

/// Words that mark a secret as a development or placeholder value.
pub const DEVELOPMENT_SECRET_WORDS: &[&str] = &[
    "dev",
    "development",
    "changeme",
    "insecure",
    "example",
    "placeholder",
    "default",
    "test",
];

/// Why `secret` is not fit for production (distributed mode refuses to start with it), or
/// `None` when it is. A secret is refused when
///
/// * it is shorter than [`MIN_SECRET_BYTES`] bytes, or
/// * it has fewer than 8 distinct characters (`aaaa...`, `secretsecret...`), or
/// * cut into words at every character that is not an ASCII letter or digit, and compared
///   case-insensitively, one of its words is in [`DEVELOPMENT_SECRET_WORDS`]
///   (`dev-jwt-key-...`, `...-changeme-...`), or
/// * with those characters removed it contains `changeme` (`change-me`, `Change_Me`).
///
/// Random secrets (e.g. `openssl rand -base64 48`) pass.
pub fn development_secret_problem(secret: &str) -> Option<String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Some(format!(
            "it is shorter than {MIN_SECRET_BYTES} bytes; use at least {MIN_SECRET_BYTES} random bytes (e.g. `openssl rand -base64 48`)"
        ));
    }
    let distinct: std::collections::BTreeSet<char> = secret.chars().collect();
    if distinct.len() < MIN_DISTINCT_SECRET_CHARS {
        return Some(format!(
            "it has fewer than {MIN_DISTINCT_SECRET_CHARS} distinct characters; use random bytes (e.g. `openssl rand -base64 48`)"
        ));
    }
    let lower = secret.to_ascii_lowercase();
    let development_word = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|word| DEVELOPMENT_SECRET_WORDS.contains(word));
    if let Some(word) = development_word {
        return Some(format!(
            "it looks like a development value (it contains the word `{word}`); use random bytes (e.g. `openssl rand -base64 48`)"
        ));
    }
    let squeezed: String = lower.chars().filter(char::is_ascii_alphanumeric).collect();
    if squeezed.contains("changeme") {
        return Some(
            "it looks like a placeholder (it contains `change me`); use random bytes (e.g. `openssl rand -base64 48`)"
                .to_owned(),
        );
    }
    None
}

fn parse_user_id(sub: &str) -> Result<Uuid, TokenError> {
    Uuid::parse_str(sub).map_err(|_| TokenError::Invalid("subject is not a user id".to_owned()))
}

/// Issues and verifies the access tokens clients present to the gateway.
#[derive(Clone)]
pub struct AccessTokens {
    system: String,
    ttl_secs: i64,
    /// The current key's id, written into the `kid` header of every issued token.
    kid: String,
    encoding: EncodingKey,
    /// Every key a token may name in its `kid`: the current one and, during a rotation, the
    /// previous one.
    decoding: Vec<(String, DecodingKey)>,
    validation: Validation,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys, only their ids.
        let kids: Vec<&str> = self.decoding.iter().map(|(kid, _)| kid.as_str()).collect();
        f.debug_struct("AccessTokens")
            .field("system", &self.system)
            .field("ttl_secs", &self.ttl_secs)
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

impl AccessTokens {
    /// Tokens for `system` (their issuer and audience), signed with `secret` under the key id
    /// [`DEFAULT_KID`], valid `ttl_secs`.
    ///
    /// # Panics
    ///
    /// When `secret` is empty.
    pub fn new(system: &str, secret: &[u8], ttl_secs: i64) -> Self {
        let key = JwtKey::new(DEFAULT_KID, secret).unwrap_or_else(|error| panic!("{error}"));
        Self::with_keys(system, &JwtKeys::new(key), ttl_secs)
    }

    /// Tokens for `system`, signed with the current key of `keys` and verified with any of
    /// them, valid `ttl_secs`.
    pub fn with_keys(system: &str, keys: &JwtKeys, ttl_secs: i64) -> Self {
        let mut validation = hs256_validation(system, &["exp", "nbf", "iss", "aud", "sub"]);
        validation.set_audience(&[system]);
        let decoding = std::iter::once(&keys.current)
            .chain(keys.previous.as_ref())
            .map(|key| (key.kid.clone(), DecodingKey::from_secret(&key.secret)))
            .collect();
        AccessTokens {
            system: system.to_owned(),
            ttl_secs,
            kid: keys.current.kid.clone(),
            encoding: EncodingKey::from_secret(&keys.current.secret),
            decoding,
            validation,
        }
    }

    /// How long an issued token is valid, in seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// The id of the key that signs (the `kid` of issued tokens).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A signed access token for `user_id` with `roles`.
    pub fn issue(&self, user_id: Uuid, roles: &[String]) -> Result<String, TokenError> {
        let now = Utc::now().timestamp();
        let claims = AccessClaims {
            sub: user_id.to_string(),
            iss: self.system.clone(),
            aud: self.system.clone(),
            exp: now + self.ttl_secs,
            nbf: now,
            iat: now,
            roles: roles.to_vec(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|error| TokenError::Sign(error.to_string()))
    }

    /// Checks algorithm (HS256 only), key id, signature, issuer, audience, expiry and
    /// not-before, and returns the caller.
    pub fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid(
                "the token's algorithm is not HS256".to_owned(),
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Invalid("the token names no key (`kid`)".to_owned()))?;
        let (_, key) = self
            .decoding
            .iter()
            .find(|(known, _)| *known == kid)
            .ok_or_else(|| TokenError::Invalid("the token names an unknown key".to_owned()))?;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)?.claims;
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
            validation: hs256_validation(INTERNAL_ISSUER, &["exp", "nbf", "iss", "aud"]),
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
            nbf: now,
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
