//! gRPC between services: the pieces generated servers and clients share.
//!
//! * [`http_status`] / [`api_error`]: how a gRPC status becomes an HTTP answer (the gateway
//!   and every route that calls another service answer with these).
//! * [`Deadline`]: the time a request has left, read from `grpc-timeout` (gRPC) or the
//!   gateway's [`TIMEOUT_HEADER`] (HTTP), and written back as `grpc-timeout` on every call
//!   made on the request's behalf, so a deadline shrinks as it travels and never grows.
//! * [`is_grpc`] / [`unauthenticated`]: a gRPC call without the internal credential is
//!   refused with the gRPC status `UNAUTHENTICATED`, as gRPC clients expect, where an HTTP
//!   request gets a 401.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use tonic::Code;

use crate::http::ApiError;

/// The header in which the gateway tells a service how long it may take, in milliseconds.
pub const TIMEOUT_HEADER: &str = "x-svcgen-timeout-ms";

/// How long a request may run when nobody said (a direct call with no deadline).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP status for a gRPC status code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).expect("499 is a valid status"),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The HTTP error for a failed call: the status per [`http_status`] with the status message,
/// except for server faults, whose details stay in the log.
pub fn api_error(status: &tonic::Status) -> ApiError {
    let http = http_status(status.code());
    if http.is_server_error()
        && http != StatusCode::SERVICE_UNAVAILABLE
        && http != StatusCode::GATEWAY_TIMEOUT
    {
        return ApiError::internal(format!("gRPC call failed: {status}"));
    }
    ApiError::new(http, status.message())
}

/// When a request must be answered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// The deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now() + timeout)
    }

    /// The deadline a request carries: its `grpc-timeout`, else the gateway's
    /// [`TIMEOUT_HEADER`], else [`DEFAULT_TIMEOUT`]. Malformed values count as absent.
    pub fn from_headers(headers: &HeaderMap) -> Deadline {
        Deadline::after(timeout_of(headers))
    }

    /// The time left (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// The timeout a request carries, as [`Deadline::from_headers`] reads it.
pub fn timeout_of(headers: &HeaderMap) -> Duration {
    {
        let grpc = headers
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let gateway = || {
            headers
                .get(TIMEOUT_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_millis)
        };
        grpc.or_else(gateway).unwrap_or(DEFAULT_TIMEOUT)
    }
}

/// Parses a `grpc-timeout` value: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Whether a request is a gRPC call (by its content type).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The answer to a gRPC call that lacks a valid internal credential: `UNAUTHENTICATED`.
pub fn unauthenticated(message: &str) -> Response {
    let mut response =
        tonic::Status::unauthenticated(message.to_owned()).into_http::<axum::body::Body>();
    response
        .headers_mut()
        .entry(axum::http::header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("application/grpc"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_statuses_map_to_the_http_statuses_clients_expect() {
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(http_status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::FailedPrecondition), StatusCode::CONFLICT);
        assert_eq!(http_status(Code::Aborted), StatusCode::CONFLICT);
        assert_eq!(http_status(Code::AlreadyExists), StatusCode::CONFLICT);
        assert_eq!(http_status(Code::PermissionDenied), StatusCode::FORBIDDEN);
        assert_eq!(http_status(Code::Unauthenticated), StatusCode::UNAUTHORIZED);
        assert_eq!(
            http_status(Code::ResourceExhausted),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            http_status(Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            http_status(Code::DeadlineExceeded),
            StatusCode::GATEWAY_TIMEOUT
        );
    }

    #[test]
    fn client_errors_keep_their_message_and_server_faults_hide_it() {
        let conflict = api_error(&tonic::Status::failed_precondition("not enough stock"));
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        assert_eq!(conflict.message(), "not enough stock");
        let fault = api_error(&tonic::Status::internal("db password is hunter2"));
        assert_eq!(fault.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(fault.message(), "internal error");
    }

    #[test]
    fn grpc_timeouts_parse_per_the_protocol() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "m", "10", "10x", "-1S", "123456789S", "1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_timeout_comes_from_grpc_timeout_then_the_gateway_header_then_the_default() {
        let mut headers = HeaderMap::new();
        assert_eq!(timeout_of(&headers), DEFAULT_TIMEOUT);
        headers.insert(TIMEOUT_HEADER, HeaderValue::from_static("5000"));
        assert_eq!(timeout_of(&headers), Duration::from_secs(5));
        headers.insert("grpc-timeout", HeaderValue::from_static("200m"));
        assert_eq!(timeout_of(&headers), Duration::from_millis(200));
        headers.insert("grpc-timeout", HeaderValue::from_static("soon"));
        assert_eq!(timeout_of(&headers), Duration::from_secs(5));
    }

    #[test]
    fn unauthenticated_calls_get_a_grpc_status_not_an_http_error() {
        let response = unauthenticated("missing or invalid internal credential");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "16");
        assert_eq!(response.headers()["content-type"], "application/grpc");
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert!(is_grpc(&headers));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        assert!(!is_grpc(&headers));
    }
}
