//! HTTP errors and extractors for service handlers.
//!
//! The rule throughout: bad client input is a 4xx with a JSON body `{"error": "<message>"}`
//! that tells a person what to fix; only server faults are 500, and those never leak details.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod precondition;

pub use precondition::{ETag, IfMatch};

use crate::bus::BusError;
use crate::db::{DbError, Transient, Violation, sqlite_timestamp};

/// An error answer: a status and a message for the client, rendered as `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// The database refused for a reason that may pass: the transaction is worth running again.
    transient: bool,
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with any status; prefer the named constructors.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            transient: false,
        }
    }

    /// 400: the request is malformed or fails validation.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no or invalid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404: no such resource (also used for resources the caller may not see).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: the request conflicts with existing state (e.g. a duplicate).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 500: a server fault. The message is logged here; the client only sees
    /// "internal error", because details of server faults help attackers, not users.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!(error = %message, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.message)
    }
}

/// The one place the error body shape is written.
pub(crate) fn error_response(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        ApiError::of_db(&error)
    }
}

impl ApiError {
    /// The answer for a database error: 409 for a duplicate, 503 for a transient refusal, else
    /// a 500 (logged, never shown).
    pub(crate) fn of_db(error: &DbError) -> Self {
        if let DbError::Violation(violation) = error {
            match violation {
                Violation::Duplicate(message) | Violation::StillReferenced(message) => {
                    ApiError::conflict(message.clone())
                }
                Violation::MissingReference(message) | Violation::Check(message) => {
                    ApiError::bad_request(message.clone())
                }
            }
        } else if error.is_unique_violation() {
            ApiError::conflict("already exists")
        } else if error.is_transient() {
            // Retried by `db::retrying`; a client sees this only once the retries are used up,
            // and then as what it is: a busy server, worth trying again.
            tracing::warn!(%error, "transaction refused by the database");
            ApiError {
                transient: true,
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is busy; try again",
                )
            }
        } else if error.is_pool_exhausted() {
            tracing::warn!(%error, "no database connection came free in time");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is busy; try again",
            )
        } else {
            ApiError::internal(error.to_string())
        }
    }
}

impl Transient for ApiError {
    fn is_transient(&self) -> bool {
        self.transient
    }
}

impl From<BusError> for ApiError {
    fn from(error: BusError) -> Self {
        ApiError::internal(error.to_string())
    }
}

/// JSON request body extractor and JSON response.
///
/// Any problem with the body — no `Content-Type: application/json`, malformed JSON, a
/// missing field, a wrong type — is a 400 `{"error": "invalid request body: <detail>"}`.
/// A body over the size limit (axum's default 2 MB) is a 413 with the same shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(request.headers()) {
            return Err(ApiError::bad_request(
                "invalid request body: expected `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let status = match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError::new(
                    status,
                    format!("invalid request body: {}", rejection.body_text()),
                )
            })?;
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|error| ApiError::bad_request(format!("invalid request body: {error}")))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query string extractor: the parameters read into `T` (a struct whose fields are the
/// parameters, each a single value). A parameter `T` does not take (with
/// `#[serde(deny_unknown_fields)]`), one given twice, one missing or one that does not parse
/// is a 400 `{"error": "invalid query string: <detail>"}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| {
                let detail = rejection.body_text();
                let detail = detail
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&detail);
                ApiError::bad_request(format!("invalid query string: {detail}"))
            })
    }
}

/// `application/json` or any `application/*+json`, with or without parameters.
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The `{id}` path parameter parsed as a uuid; a malformed one is a 400
/// `{"error": "malformed id `xyz`"}` rather than a routing miss or a 500.
///
/// Reads the parameter named `id`; a route with a single parameter of another name works too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = raw_path_params(parts, state).await?;
        let params: Vec<(&str, &str)> = params.iter().collect();
        let raw = match params.iter().find(|(name, _)| *name == "id") {
            Some((_, value)) => *value,
            None if params.len() == 1 => params[0].1,
            // A route without an id parameter using this extractor is a bug in the service.
            None => {
                return Err(ApiError::internal(
                    "IdPath used on a route without an `{id}` parameter",
                ));
            }
        };
        Uuid::parse_str(raw)
            .map(IdPath)
            .map_err(|_| ApiError::bad_request(format!("malformed id `{}`", shorten(raw, 64))))
    }
}

/// The parameters of a route's path (`/posts/{post_id}/comments/{id}`), each read as the type
/// of the field it names; a malformed one is a 400 naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathParams(Vec<(String, String)>);

impl PathParams {
    fn raw(&self, name: &str) -> ApiResult<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_str())
            // A handler reading a parameter its route lacks is a bug in the service.
            .ok_or_else(|| ApiError::internal(format!("the route has no path parameter `{name}`")))
    }

    /// A uuid parameter.
    pub fn uuid(&self, name: &str) -> ApiResult<Uuid> {
        let raw = self.raw(name)?;
        Uuid::parse_str(raw)
            .map_err(|_| ApiError::bad_request(format!("malformed {name} `{}`", shorten(raw, 64))))
    }

    /// A whole-number parameter.
    pub fn int(&self, name: &str) -> ApiResult<i64> {
        let raw = self.raw(name)?;
        raw.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "{name} must be a whole number, not `{}`",
                shorten(raw, 64)
            ))
        })
    }

    /// A text parameter.
    pub fn text(&self, name: &str) -> ApiResult<String> {
        self.raw(name).map(str::to_owned)
    }

    /// A parameter that is one of `words`.
    pub fn word(&self, name: &str, words: &[&str]) -> ApiResult<String> {
        let raw = self.raw(name)?;
        if words.contains(&raw) {
            Ok(raw.to_owned())
        } else {
            Err(ApiError::bad_request(format!(
                "{name} must be one of {}",
                words.join(", ")
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = raw_path_params(parts, state).await?;
        Ok(PathParams(
            params
                .iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
        ))
    }
}

/// The path's parameters as axum reads them. Undecodable percent-escapes are the client's fault
/// (400); anything else means an extractor is used on a route without parameters, a bug in
/// the service (500).
async fn raw_path_params<S: Send + Sync>(parts: &mut Parts, state: &S) -> ApiResult<RawPathParams> {
    RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|rejection| {
            if rejection.status().is_server_error() {
                ApiError::internal(rejection.body_text())
            } else {
                ApiError::bad_request(rejection.body_text())
            }
        })
}

/// Cuts echoed client input to a sane length (by characters, never inside one).
fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// Keyset pagination parameters from `?limit=&cursor=`.
///
/// `limit` defaults to 20 and must be 1..=100; `cursor` is the opaque `next_cursor` of the
/// previous page. Either one wrong is a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// How many items to return.
    pub limit: i64,
    /// Return items strictly after this one in `(created_at, id)` DESC order.
    pub after: Option<Cursor>,
}

impl Page {
    /// Page size when the client does not ask for one.
    pub const DEFAULT_LIMIT: i64 = 20;
    /// Largest page a client may ask for.
    pub const MAX_LIMIT: i64 = 100;

    /// The key every returned row must sort below, so that one SQL statement serves the
    /// first page and the following ones:
    /// `WHERE (created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC LIMIT $3`.
    /// That is the cursor, or on the first page a key above every real row.
    pub fn before_key(&self) -> Cursor {
        self.after.clone().unwrap_or_else(Cursor::max)
    }
}

impl Page {
    /// A page from a limit and a cursor already parsed from their text (what a route RPC
    /// carries), with the checks of the query-string form: 400 for a limit out of 1..=100 or
    /// an invalid cursor.
    pub fn with(limit: Option<i64>, cursor: Option<&str>) -> Result<Page, ApiError> {
        let limit = match limit {
            None => Self::DEFAULT_LIMIT,
            Some(limit) if (1..=Self::MAX_LIMIT).contains(&limit) => limit,
            Some(_) => return Err(Self::bad_limit()),
        };
        let after = match cursor {
            None | Some("") => None,
            Some(text) => Some(Cursor::decode(text)?),
        };
        Ok(Page { limit, after })
    }

    fn bad_limit() -> ApiError {
        ApiError::bad_request(format!(
            "limit must be an integer from 1 to {}",
            Self::MAX_LIMIT
        ))
    }
}

impl Default for Page {
    fn default() -> Self {
        Page {
            limit: Self::DEFAULT_LIMIT,
            after: None,
        }
    }
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = axum::extract::Query::<PageQuery>::try_from_uri(&parts.uri)
            .map_err(|rejection| {
                ApiError::bad_request(format!("invalid query string: {}", rejection.body_text()))
            })?
            .0;
        let limit = match query.limit.as_deref() {
            None | Some("") => None,
            Some(text) => Some(text.parse::<i64>().map_err(|_| Self::bad_limit())?),
        };
        Page::with(limit, query.cursor.as_deref())
    }
}

/// A position in a list ordered by `(created_at, id)`, handed to clients as an opaque string
/// (base64url of the two values) so that they cannot depend on its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// `created_at` of the last item of the previous page.
    pub created_at: DateTime<Utc>,
    /// `id` of the last item of the previous page (breaks ties between equal timestamps).
    pub id: Uuid,
}

impl Cursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}|{}",
            sqlite_timestamp(&self.created_at),
            self.id
        ))
    }

    /// Parses the text form; anything else is a 400 `invalid cursor`.
    pub fn decode(text: &str) -> Result<Cursor, ApiError> {
        let invalid =
            || ApiError::bad_request("invalid cursor (pass back `next_cursor` unchanged)");
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| invalid())?;
        let decoded = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (time, id) = decoded.split_once('|').ok_or_else(invalid)?;
        Ok(Cursor {
            created_at: DateTime::parse_from_rfc3339(time)
                .map_err(|_| invalid())?
                .to_utc(),
            id: Uuid::parse_str(id).map_err(|_| invalid())?,
        })
    }

    /// A key above every real row: the last microsecond of year 9999 and the largest uuid.
    /// (Not chrono's maximum, whose five-digit year would break SQLite's text ordering.)
    fn max() -> Cursor {
        let created_at = DateTime::parse_from_rfc3339("9999-12-31T23:59:59.999999Z")
            .map(|t| t.to_utc())
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        Cursor {
            created_at,
            id: Uuid::max(),
        }
    }
}

/// A page of items plus the cursor of the next page (`null` on the last page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paginated<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `?cursor=` to get the next page; absent when this page was not full.
    pub next_cursor: Option<String>,
    /// How many items every page together holds, when the client asked (`?total=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

impl<T> Paginated<T> {
    /// Wraps a page fetched with `LIMIT limit`; `next_cursor` is set from the last item when
    /// the page is full (there may be more), otherwise this is the last page.
    pub fn new(items: Vec<T>, limit: i64, key: impl Fn(&T) -> Cursor) -> Self {
        let full = limit > 0 && i64::try_from(items.len()).is_ok_and(|len| len >= limit);
        let next_cursor = if full {
            items.last().map(|last| key(last).encode())
        } else {
            None
        };
        Paginated {
            items,
            next_cursor,
            total: None,
        }
    }
}

#[cfg(test)]
mod tests;
