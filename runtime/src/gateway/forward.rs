//! The HTTP hop to a service: which of the client's headers travel (never hop-by-hop or
//! identity headers), `X-Forwarded-For`, and the request forwarded with its answer streamed
//! back.

use super::*;

/// Headers that describe one connection, not the message (RFC 9110 section 7.6.1), and so are
/// never forwarded.
pub(super) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Identity headers a client could use to impersonate someone if a service trusted them.
/// Services never read them, and the gateway removes them anyway (defence in depth); every
/// `x-svcgen-*` header is removed too.
pub(super) const IDENTITY_HEADERS: &[&str] = &[
    "authorization",
    "x-user-id",
    "x-user-roles",
    "x-forwarded-user",
];

/// The client's headers minus hop-by-hop, identity and `x-svcgen-*` headers and `Host`.
pub(super) fn forwardable_headers(inbound: &HeaderMap) -> HeaderMap {
    let mut headers = strip_hop_by_hop(inbound);
    headers.remove(header::HOST);
    for name in IDENTITY_HEADERS {
        headers.remove(*name);
    }
    let internal: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-svcgen-"))
        .cloned()
        .collect();
    for name in internal {
        headers.remove(name);
    }
    headers
}

/// Removes hop-by-hop headers, including those the `Connection` header lists.
pub(super) fn strip_hop_by_hop(inbound: &HeaderMap) -> HeaderMap {
    let listed: Vec<String> = inbound
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut headers = inbound.clone();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .chain(listed.iter().map(String::as_str))
    {
        headers.remove(name);
    }
    headers
}

pub(super) fn append_forwarded_for(
    headers: &mut HeaderMap,
    inbound: &HeaderMap,
    addr: std::net::IpAddr,
) {
    let previous = inbound
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok());
    let chain = match previous {
        Some(previous) => format!("{previous}, {addr}"),
        None => addr.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert("x-forwarded-for", value);
    }
}

pub(super) async fn forward_http(
    client: &reqwest::Client,
    service: &str,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut outbound = client.request(method, &url).headers(headers);
    // A body known to be empty is not sent at all (no chunked empty body on a GET).
    if axum::body::HttpBody::size_hint(&body).exact() != Some(0) {
        outbound = outbound.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    let upstream = match outbound.send().await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(service, %error, "upstream request failed");
            return unavailable(service);
        }
    };
    let status = upstream.status();
    let headers = strip_hop_by_hop(upstream.headers());
    let stream = upstream.bytes_stream().map_err(|error| {
        tracing::warn!(%error, "upstream response body interrupted");
        error
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
