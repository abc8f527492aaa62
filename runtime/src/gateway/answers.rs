//! The gateway's own answers: refusals (401, 403, 413, 429), and the failures of a service
//! it could not reach in time or at all (502, 504).

use super::*;

pub(super) fn unauthorized(message: &str) -> Response {
    let mut response = error_response(StatusCode::UNAUTHORIZED, message);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

pub(super) fn forbidden(roles: &[&str]) -> Response {
    let listed: Vec<String> = roles.iter().map(|role| format!("`{role}`")).collect();
    let message = match listed.as_slice() {
        [one] => format!("this route requires the role {one}"),
        _ => format!("this route requires one of the roles {}", listed.join(", ")),
    };
    error_response(StatusCode::FORBIDDEN, &message)
}

pub(super) fn too_many_requests(retry_after_secs: u64) -> Response {
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many requests; retry in {retry_after_secs} s"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// Refused bodies up to this size are read and discarded, so that the client gets its 413 and
/// can keep using the connection; larger ones are not worth the traffic.
pub(super) const DRAIN_LIMIT_BYTES: u64 = 16 * 1024 * 1024;
/// How long a refused body may take to arrive before the connection is closed on it.
pub(super) const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a body to its end, discarding it; `false` when it fails or grows past the limit.
pub(super) async fn drain(body: Body) -> bool {
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                read += bytes.len() as u64;
                if read > DRAIN_LIMIT_BYTES {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// The 413 answer. When the body was left unread (`close`), the connection cannot carry
/// another request: say so (`Connection: close`), or keep-alive clients would send their next
/// request into a closed connection.
pub(super) fn payload_too_large(limit: u64, close: bool) -> Response {
    let mut response = error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body too large (at most {limit} bytes)"),
    );
    if close {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

pub(super) fn gateway_timeout(service: &str, timeout: Duration) -> Response {
    let millis = timeout.as_millis();
    let limit = if millis.is_multiple_of(1000) {
        format!("{} s", millis / 1000)
    } else {
        format!("{millis} ms")
    };
    error_response(
        StatusCode::GATEWAY_TIMEOUT,
        &format!("service `{service}` did not answer within {limit}"),
    )
}

pub(super) fn unavailable(service: &str) -> Response {
    error_response(
        StatusCode::BAD_GATEWAY,
        &format!("service `{service}` is unavailable"),
    )
}
