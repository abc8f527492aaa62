//! Logging and request ids, shared by the gateway and the services.

use std::time::Instant;

use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;
use uuid::Uuid;

/// The header that carries a request's id from the client through the gateway to services
/// and back in every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the current request (the client's `x-request-id` when it sent a sane one,
/// otherwise a fresh uuid). Available as an extractor, for handlers that log or forward it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The middleware always sets it; outside of it (e.g. a bare router in a test) make one.
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(Uuid::now_v7().to_string())))
    }
}

/// The W3C trace-context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";

tokio::task_local! {
    /// The trace context of the request (or event) the current task works for.
    static TRACEPARENT: String;
    /// The id of the request the current task works for.
    pub(crate) static REQUEST_ID: String;
}

/// The id of the request being handled, if any: calls made on its behalf carry it, so that
/// one id follows a request through the gateway and every service it reaches.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The W3C `traceparent` of the request or event being handled, if any: events written to the
/// outbox carry it, so a trace continues from the request into every consumer.
pub fn current_traceparent() -> Option<String> {
    TRACEPARENT.try_with(Clone::clone).ok()
}

/// Runs `work` with `traceparent` as the current trace context (consumers use it for the event
/// they handle).
pub async fn with_traceparent<F: std::future::Future>(
    traceparent: Option<String>,
    work: F,
) -> F::Output {
    match traceparent {
        Some(traceparent) => TRACEPARENT.scope(traceparent, work).await,
        None => work.await,
    }
}

/// This hop's trace context: the caller's trace id with a new span id, or a new trace.
fn next_traceparent(incoming: Option<&HeaderValue>) -> String {
    let trace_id = incoming
        .and_then(|value| value.to_str().ok())
        .and_then(|text| {
            let parts: Vec<&str> = text.split('-').collect();
            let hex = |s: &str, len: usize| {
                s.len() == len
                    && s.bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            };
            (parts.len() == 4
                && parts[0] == "00"
                && hex(parts[1], 32)
                && hex(parts[2], 16)
                && hex(parts[3], 2)
                && parts[1] != "0".repeat(32))
            .then(|| parts[1].to_owned())
        })
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>().max(1)));
    format!("00-{trace_id}-{:016x}-01", rand::random::<u64>().max(1))
}

/// Sets up `tracing` output: human-readable lines on stderr, filtered by `RUST_LOG`
/// (default `info`). Safe to call more than once (later calls do nothing).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // An error only means a subscriber is already installed, which is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal; in files and log collectors they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// A client-supplied id is kept only when it is short and made of safe characters, so that
/// it cannot forge log lines or bloat headers.
fn accepted_request_id(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let sane = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    sane.then_some(text)
}

/// Middleware: assigns the request id (request header, extension, response header) and logs
/// one line per request inside a span that carries the id, so every log line of the request
/// can be found by it.
pub(crate) async fn request_id_and_trace(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(accepted_request_id)
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    // Only [A-Za-z0-9-_.:] or a uuid reach here, both valid header values.
    let header = HeaderValue::from_str(&id).ok();
    if let Some(header) = &header {
        request
            .headers_mut()
            .insert(REQUEST_ID_HEADER, header.clone());
    }
    request.extensions_mut().insert(RequestId(id.clone()));

    let traceparent = next_traceparent(request.headers().get(TRACEPARENT_HEADER));
    if let Ok(value) = HeaderValue::from_str(&traceparent) {
        request.headers_mut().insert(TRACEPARENT_HEADER, value);
    }

    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let started = Instant::now();
    let mut response = REQUEST_ID
        .scope(
            id.clone(),
            TRACEPARENT.scope(traceparent, next.run(request).instrument(span.clone())),
        )
        .await;
    if let Some(header) = header {
        response.headers_mut().insert(REQUEST_ID_HEADER, header);
    }
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request finished"
        );
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_context_continues_a_valid_trace_and_starts_one_otherwise() {
        let incoming =
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let next = next_traceparent(Some(&incoming));
        assert!(
            next.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{next}"
        );
        assert_ne!(next, incoming.to_str().unwrap(), "a new span id per hop");
        for bad in [
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            let fresh = next_traceparent(Some(&HeaderValue::from_static(bad)));
            assert_eq!(fresh.len(), 55);
            assert!(!fresh.contains("4bf92f35"));
        }
    }

    #[test]
    fn only_sane_request_ids_are_kept() {
        assert_eq!(
            accepted_request_id(&HeaderValue::from_static("abc-123_x.y:z")),
            Some("abc-123_x.y:z")
        );
        assert_eq!(
            accepted_request_id(&HeaderValue::from_static("has space")),
            None
        );
        assert_eq!(accepted_request_id(&HeaderValue::from_static("")), None);
        let long = "a".repeat(129);
        assert_eq!(
            accepted_request_id(&HeaderValue::from_str(&long).unwrap()),
            None
        );
    }
}
