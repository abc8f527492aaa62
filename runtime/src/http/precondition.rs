//! Optimistic concurrency over HTTP: every entity row carries a `version` (1 when created, one
//! more at every change, kept by the database itself), answered as the row's `ETag`, and a
//! change sent with `If-Match` is applied only to the version it names (RFC 9110, 13.1.1).
//!
//! A request whose row does not exist is a 404 whatever its `If-Match` says: preconditions are
//! evaluated only where the request would otherwise succeed (RFC 9110, 13.2.1).

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponseParts, ResponseParts};

use super::{ApiError, ApiResult, shorten};

/// A row's version as its entity tag: `ETag: "3"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ETag(pub i64);

impl ETag {
    /// The header value, `"3"`.
    pub fn header_value(self) -> HeaderValue {
        // A number in quotes is always a valid header value.
        HeaderValue::from_str(&format!("\"{}\"", self.0))
            .unwrap_or(HeaderValue::from_static("\"\""))
    }
}

impl IntoResponseParts for ETag {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        res.headers_mut().insert(header::ETAG, self.header_value());
        Ok(res)
    }
}

/// The `If-Match` precondition of a change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IfMatch {
    /// No `If-Match`: the change applies to whatever version the row has.
    #[default]
    Absent,
    /// `If-Match: *`: any version of an existing row.
    Any,
    /// `If-Match: "3", "4"`: one of these versions. Tags that are not versions of ours (weak
    /// tags `W/"3"`, which `If-Match` never matches, or `"abc"`) are left out, so a list of
    /// only such tags matches no version at all.
    Versions(Vec<i64>),
}

impl IfMatch {
    /// Reads the header's value; `None` is a request without one. A value that is not a list
    /// of entity tags (`3` without quotes) is a 400.
    pub fn parse(value: Option<&str>) -> ApiResult<IfMatch> {
        let Some(value) = value else {
            return Ok(IfMatch::Absent);
        };
        let value = value.trim();
        if value == "*" {
            return Ok(IfMatch::Any);
        }
        let malformed = || {
            ApiError::bad_request(format!(
                "If-Match must be `*` or a list of entity tags such as \"3\", not `{}`",
                shorten(value, 64)
            ))
        };
        let mut versions = Vec::new();
        for tag in value.split(',').map(str::trim) {
            let (weak, opaque) = match tag.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, tag),
            };
            let inner = opaque
                .strip_prefix('"')
                .and_then(|rest| rest.strip_suffix('"'))
                .filter(|inner| !inner.contains('"'))
                .ok_or_else(malformed)?;
            if let (false, Ok(version)) = (weak, inner.parse::<i64>()) {
                versions.push(version);
            }
        }
        Ok(IfMatch::Versions(versions))
    }

    /// Reads the precondition from a request's headers.
    pub fn from_headers(headers: &HeaderMap) -> ApiResult<IfMatch> {
        IfMatch::parse(IfMatch::header_text(headers)?.as_deref())
    }

    /// The `If-Match` headers of a request as one value (HTTP reads two such headers as one
    /// list); `None` without one. A value that is not text is a 400.
    pub fn header_text(headers: &HeaderMap) -> ApiResult<Option<String>> {
        let values: Vec<&str> = headers
            .get_all(header::IF_MATCH)
            .iter()
            .map(|value| {
                value
                    .to_str()
                    .map_err(|_| ApiError::bad_request("If-Match must be ASCII"))
            })
            .collect::<Result<_, _>>()?;
        Ok((!values.is_empty()).then(|| values.join(", ")))
    }

    /// Whether the row's version must be known to decide: only a list of versions needs it
    /// (without `If-Match` or with `*`, the row's existence is enough).
    pub fn names_versions(&self) -> bool {
        matches!(self, IfMatch::Versions(_))
    }

    /// Checks the row's `current` version: `Ok(Some(current))` when the precondition names it
    /// (the change must then find the row still at that version), `Ok(None)` when there is no
    /// version to hold it to, and a 412 when the row is at a version not named.
    pub fn check(&self, current: i64, what: &str) -> ApiResult<Option<i64>> {
        match self {
            IfMatch::Absent | IfMatch::Any => Ok(None),
            IfMatch::Versions(versions) if versions.contains(&current) => Ok(Some(current)),
            IfMatch::Versions(_) => Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                format!("the {what} is at version {current}, which If-Match does not name"),
            )),
        }
    }

    /// [`IfMatch::check`] of the version `current` reads, read only when the precondition
    /// names versions (a change without `If-Match` costs no extra read).
    pub async fn expected(
        &self,
        what: &str,
        current: impl Future<Output = ApiResult<i64>>,
    ) -> ApiResult<Option<i64>> {
        if self.names_versions() {
            self.check(current.await?, what)
        } else {
            Ok(None)
        }
    }

    /// The answer when a change held to `expected` touched no row: the row moved on to another
    /// version since it was read (412), or there is no such row (404, `not_found`).
    pub fn nothing_changed(expected: Option<i64>, what: &str, not_found: &str) -> ApiError {
        match expected {
            Some(version) => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                format!("the {what} changed after version {version} was read"),
            ),
            None => ApiError::not_found(not_found),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        IfMatch::from_headers(&parts.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_form_of_the_header() {
        assert_eq!(IfMatch::parse(None), Ok(IfMatch::Absent));
        assert_eq!(IfMatch::parse(Some(" * ")), Ok(IfMatch::Any));
        assert_eq!(
            IfMatch::parse(Some("\"3\"")),
            Ok(IfMatch::Versions(vec![3]))
        );
        assert_eq!(
            IfMatch::parse(Some("\"3\", \"7\"")),
            Ok(IfMatch::Versions(vec![3, 7]))
        );
        // Weak tags never match under If-Match, and tags of another form are not versions.
        assert_eq!(
            IfMatch::parse(Some("W/\"3\", \"abc\"")),
            Ok(IfMatch::Versions(vec![]))
        );
        for malformed in ["3", "\"3", "3\"", "\"3\"\"", "\"3\",", ""] {
            let error = IfMatch::parse(Some(malformed)).unwrap_err();
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{malformed:?}");
            assert!(error.message().contains("If-Match"), "{error}");
        }
    }

    #[test]
    fn headers_combine_into_one_list() {
        let mut headers = HeaderMap::new();
        assert_eq!(IfMatch::from_headers(&headers), Ok(IfMatch::Absent));
        headers.append(header::IF_MATCH, HeaderValue::from_static("\"1\""));
        headers.append(header::IF_MATCH, HeaderValue::from_static("\"2\""));
        assert_eq!(
            IfMatch::from_headers(&headers),
            Ok(IfMatch::Versions(vec![1, 2]))
        );
    }

    #[test]
    fn a_version_not_named_fails_the_precondition() {
        let named = IfMatch::Versions(vec![2, 3]);
        assert_eq!(named.check(3, "note"), Ok(Some(3)));
        let error = named.check(4, "note").unwrap_err();
        assert_eq!(error.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(
            error.message(),
            "the note is at version 4, which If-Match does not name"
        );
        assert_eq!(IfMatch::Any.check(9, "note"), Ok(None));
        assert_eq!(IfMatch::Absent.check(9, "note"), Ok(None));
        assert_eq!(
            IfMatch::Versions(vec![])
                .check(1, "note")
                .unwrap_err()
                .status(),
            StatusCode::PRECONDITION_FAILED
        );
    }

    #[tokio::test]
    async fn the_version_is_read_only_when_named() {
        let unread = async { panic!("no read without a version to compare") };
        assert_eq!(IfMatch::Any.expected("note", unread).await, Ok(None));
        assert_eq!(
            IfMatch::Versions(vec![5])
                .expected("note", async { Ok(5) })
                .await,
            Ok(Some(5))
        );
        let missing = IfMatch::Versions(vec![5])
            .expected("note", async { Err(ApiError::not_found("note not found")) })
            .await;
        assert_eq!(missing.unwrap_err().status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn nothing_changed_is_412_only_under_a_version() {
        let moved = IfMatch::nothing_changed(Some(3), "note", "note not found");
        assert_eq!(moved.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(moved.message(), "the note changed after version 3 was read");
        let gone = IfMatch::nothing_changed(None, "note", "note not found");
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_tag_is_the_quoted_version() {
        assert_eq!(ETag(12).header_value(), "\"12\"");
    }
}
