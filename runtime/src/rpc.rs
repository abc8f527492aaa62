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
//! * [`ToProto`] / [`FromProto`]: plain values and their protobuf forms ([`convert`]).

mod convert;

pub use convert::{FromProto, ToProto, required};

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use tonic::{Code, Status};

use crate::db::{DbError, Transient};
use crate::events::EventError;
use crate::http::ApiError;
use crate::identity::{Caller, INTERNAL_HEADER, VerifiedIdentity};
use crate::service::Settings;

/// Errors of the transport under a call.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

/// A failed call answers its HTTP request per [`api_error`], so that `?` takes a call's
/// status (or a failed conversion of its answer) straight to the client.
impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        api_error(&status)
    }
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

/// Metadata of a failed call that carries the exact HTTP status of the service's error (402,
/// say, has no gRPC code of its own), for the gateway's answer.
pub const HTTP_STATUS_METADATA: &str = "x-svcgen-http-status";

/// The gRPC status for an HTTP error: the inverse of [`http_status`] (server faults keep the
/// message [`ApiError::internal`] already reduced to "internal error"), with the exact HTTP
/// status in [`HTTP_STATUS_METADATA`].
pub fn status_of(error: &ApiError) -> Status {
    let code = match error.status() {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Code::InvalidArgument,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::CONFLICT => Code::FailedPrecondition,
        StatusCode::TOO_MANY_REQUESTS => Code::ResourceExhausted,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
        StatusCode::NOT_IMPLEMENTED => Code::Unimplemented,
        _ => Code::Internal,
    };
    let mut status = Status::new(code, error.message().to_owned());
    if let Ok(value) = error.status().as_u16().to_string().parse() {
        status.metadata_mut().insert(HTTP_STATUS_METADATA, value);
    }
    status
}

/// The HTTP answer for a failed call: the service's own HTTP status when it sent one (a 4xx
/// only: a client never learns more about a server fault), else [`http_status`].
pub fn failure_response(status: &Status) -> Response {
    let exact = status
        .metadata()
        .get(HTTP_STATUS_METADATA)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(|v| StatusCode::from_u16(v).ok())
        .filter(StatusCode::is_client_error);
    let error = match exact {
        Some(code) => ApiError::new(code, status.message()),
        None => api_error(status),
    };
    axum::response::IntoResponse::into_response(error)
}

/// A JSON answer of the gateway for a service reached over gRPC.
pub fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    (status, axum::Json(body)).into_response()
}

/// [`json_response`] of one row, with its version as its `ETag`, as the HTTP route answers.
pub fn tagged_json_response<T: serde::Serialize>(
    status: StatusCode,
    version: i64,
    body: &T,
) -> Response {
    (status, crate::http::ETag(version), axum::Json(body)).into_response()
}

/// The query string of a list route run as an RPC: the request's `query` (what the gateway
/// passes on as the client sent it), with the `limit` and `cursor` fields a gRPC client may set
/// instead (both ways at once is a repeated parameter, a 400 of the list).
pub fn list_query(query: Option<&str>, limit: Option<i64>, cursor: Option<&str>) -> Option<String> {
    let mut parts: Vec<String> = query
        .filter(|q| !q.is_empty())
        .map(str::to_owned)
        .into_iter()
        .collect();
    let mut page = form_urlencoded::Serializer::new(String::new());
    if let Some(limit) = limit {
        page.append_pair("limit", &limit.to_string());
    }
    if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
        page.append_pair("cursor", cursor);
    }
    let page = page.finish();
    if !page.is_empty() {
        parts.push(page);
    }
    (!parts.is_empty()).then(|| parts.join("&"))
}

/// One request the gateway passes to a service reached over gRPC: the service's generated
/// [`GatewayAdapter`] turns it into the route's RPC and the answer back into HTTP.
#[derive(Debug)]
pub struct GatewayCall {
    /// Calls on behalf of the request's caller, until the route's deadline.
    pub outgoing: Outgoing,
    /// The request's method.
    pub method: axum::http::Method,
    /// The route's path pattern, e.g. `/products/{id}`.
    pub route: &'static str,
    /// The request, without its body, with the path below the gateway's prefix.
    pub parts: Parts,
    /// The body.
    pub body: axum::body::Bytes,
}

/// How the gateway reaches a service over gRPC (generated per service).
///
/// A route the adapter does not carry over gRPC (one whose path has parameters besides `{id}`,
/// an action route, a route with steps other than a `create`, a route backed by an RPC) is
/// handed back, and the gateway forwards it over HTTP, on the same port.
pub type GatewayAdapter = fn(GatewayCall) -> Adapted;

/// What a [`GatewayAdapter`] makes of a call: the answer to come, or the call handed back
/// (boxed: a call is large beside a future).
pub type Adapted = Result<BoxFuture<'static, Response>, Box<GatewayCall>>;

impl GatewayCall {
    /// The JSON body, with exactly the errors of [`crate::http::Json`].
    pub async fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        let request = axum::http::Request::from_parts(
            self.parts.clone(),
            axum::body::Body::from(self.body.clone()),
        );
        match <crate::http::Json<T> as axum::extract::FromRequest<()>>::from_request(request, &())
            .await
        {
            Ok(crate::http::Json(value)) => Ok(value),
            Err(error) => Err(error),
        }
    }

    /// The `If-Match` precondition as the route's RPC carries it: the header's value as sent
    /// (the service reads it with [`crate::http::IfMatch::parse`]). A value that is not text is
    /// a 400.
    pub fn if_match(&self) -> Result<Option<String>, ApiError> {
        crate::http::IfMatch::header_text(&self.parts.headers)
    }

    /// The `{id}` of the path, with the errors of [`crate::http::IdPath`].
    pub fn id(&self) -> Result<uuid::Uuid, ApiError> {
        let raw = self.parts.uri.path().rsplit('/').next().unwrap_or_default();
        uuid::Uuid::parse_str(raw).map_err(|_| {
            let shown: String = raw.chars().take(64).collect();
            ApiError::bad_request(format!("malformed id `{shown}`"))
        })
    }

    /// Milliseconds left before the route's deadline.
    pub fn outgoing_deadline_ms(&self) -> u128 {
        self.outgoing.deadline.remaining().as_millis()
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        status_of(&error)
    }
}

impl From<DbError> for Status {
    fn from(error: DbError) -> Self {
        let mut status = status_of(&ApiError::of_db(&error));
        // Kept so that `db::retrying` in a gRPC server can tell a transient refusal.
        status.set_source(Arc::new(error));
        status
    }
}

impl From<EventError> for Status {
    fn from(error: EventError) -> Self {
        match error {
            EventError::Db(error) => error.into(),
            other => status_of(&ApiError::from(other)),
        }
    }
}

impl Transient for Status {
    fn is_transient(&self) -> bool {
        std::error::Error::source(self)
            .and_then(|source| source.downcast_ref::<DbError>())
            .is_some_and(DbError::is_transient)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Deadline {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Deadline::from_headers(&parts.headers))
    }
}

/// What a gRPC server method knows about the call it serves.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The signed-in user on whose behalf the call is made (from the internal credential).
    pub caller: Option<Caller>,
    /// When the caller stops waiting.
    pub deadline: Deadline,
}

/// A call of the service's own RPC in process (a route backed by it): the message, with the
/// caller it is made for (read by [`Incoming::of`] as a verified identity) and the time left.
pub fn in_process<T>(
    message: T,
    caller: Option<&Caller>,
    deadline: &Deadline,
) -> tonic::Request<T> {
    let mut call = tonic::Request::new(message);
    call.set_timeout(deadline.remaining());
    call.extensions_mut()
        .insert(VerifiedIdentity(caller.cloned()));
    call
}

impl Incoming {
    /// The signed-in caller, for an RPC that runs a route which needs one: `UNAUTHENTICATED`
    /// when the call carries no user.
    pub fn signed_in(&self) -> Result<Caller, Status> {
        self.caller
            .clone()
            .ok_or_else(|| Status::unauthenticated("the route needs a signed-in caller"))
    }

    /// The caller and deadline of a request the service's middleware has verified.
    pub fn of<T>(request: &tonic::Request<T>) -> Incoming {
        let caller = request
            .extensions()
            .get::<VerifiedIdentity>()
            .and_then(|identity| identity.0.clone());
        let timeout = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        Incoming {
            caller,
            deadline: Deadline::after(timeout),
        }
    }

    /// Runs `work` until the deadline; past it the work is dropped (its transaction rolls
    /// back) and the answer is `DEADLINE_EXCEEDED`.
    pub async fn within<T>(
        &self,
        work: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        match tokio::time::timeout(self.deadline.remaining(), work).await {
            Ok(result) => result,
            Err(_) => Err(Status::deadline_exceeded("the deadline passed")),
        }
    }
}

/// A connection to one service's gRPC server: its app in this process (embedded mode, no
/// network hop, the same middleware) or an HTTP/2 channel to its URL (distributed mode).
#[derive(Debug, Clone)]
pub enum Channel {
    /// The service's app in this process.
    Local(Router),
    /// A lazily connecting, reconnecting HTTP/2 channel.
    Remote(tonic::transport::Channel),
}

impl tower::Service<axum::http::Request<tonic::body::Body>> for Channel {
    type Response = axum::http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Channel::Local(_) => Poll::Ready(Ok(())),
            Channel::Remote(channel) => {
                tower::Service::poll_ready(channel, cx).map_err(BoxError::from)
            }
        }
    }

    fn call(&mut self, request: axum::http::Request<tonic::body::Body>) -> Self::Future {
        match self {
            Channel::Local(app) => {
                let app = app.clone();
                Box::pin(async move {
                    let request = request.map(axum::body::Body::new);
                    let response = tower::ServiceExt::oneshot(app, request)
                        .await
                        .unwrap_or_else(|never| match never {});
                    Ok(response.map(tonic::body::Body::new))
                })
            }
            Channel::Remote(channel) => {
                let call = tower::Service::call(channel, request);
                Box::pin(async move { call.await.map_err(BoxError::from) })
            }
        }
    }
}

/// The services this process can call: the apps of embedded mode, or channels to the URLs of
/// distributed mode (`SVCGEN_<SERVICE>_URL`, the same variables the gateway reads).
#[derive(Debug, Clone, Default)]
pub struct Peers {
    local: Arc<OnceLock<BTreeMap<&'static str, Router>>>,
    remote: Arc<Mutex<BTreeMap<String, tonic::transport::Channel>>>,
}

impl Peers {
    /// Embedded mode: every service's app, once all are built.
    pub fn set_local(&self, apps: BTreeMap<&'static str, Router>) {
        // Set once at start; a second call (a restart in tests) keeps the first map, which
        // is what the running services already use.
        let _ = self.local.set(apps);
    }

    /// The channel to `service`.
    pub fn channel(&self, service: &str) -> Result<Channel, Status> {
        if let Some(apps) = self.local.get() {
            return apps
                .get(service)
                .cloned()
                .map(Channel::Local)
                .ok_or_else(|| Status::unavailable(format!("no service `{service}` here")));
        }
        let mut remote = self.remote.lock().expect("peers lock");
        if let Some(channel) = remote.get(service) {
            return Ok(Channel::Remote(channel.clone()));
        }
        let variable = format!("SVCGEN_{}_URL", env_key(service));
        let url = std::env::var(&variable)
            .ok()
            .filter(|url| !url.trim().is_empty())
            .ok_or_else(|| Status::unavailable(format!("{variable} is not set")))?;
        let endpoint = tonic::transport::Endpoint::from_shared(url.trim().to_owned())
            .map_err(|error| Status::unavailable(format!("{variable}: {error}")))?
            .connect_timeout(Duration::from_secs(5));
        let channel = endpoint.connect_lazy();
        remote.insert(service.to_owned(), channel.clone());
        Ok(Channel::Remote(channel))
    }
}

/// `user-profile` -> `USER_PROFILE`.
pub(crate) fn env_key(service: &str) -> String {
    service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Attempts of an idempotent call that finds its service unavailable.
const IDEMPOTENT_ATTEMPTS: u32 = 3;

/// The calls a handler makes on behalf of one request: each carries the internal credential
/// for its target with the request's caller, the time left until the request's deadline as
/// `grpc-timeout`, and the trace context.
#[derive(Debug, Clone)]
pub struct Outgoing {
    settings: Arc<Settings>,
    caller: Option<Caller>,
    deadline: Deadline,
    traceparent: Option<String>,
    request_id: Option<String>,
}

impl Outgoing {
    /// Calls made for `caller` until `deadline`.
    pub fn new(settings: &Arc<Settings>, caller: Option<&Caller>, deadline: Deadline) -> Outgoing {
        Outgoing {
            settings: settings.clone(),
            caller: caller.cloned(),
            deadline,
            traceparent: crate::telemetry::current_traceparent(),
            request_id: crate::telemetry::current_request_id(),
        }
    }

    /// The same calls with a deadline of their own, for compensations: undoing a step must not
    /// fail because the request that made it ran out of time.
    pub fn compensating(&self) -> Outgoing {
        Outgoing {
            deadline: Deadline::after(DEFAULT_TIMEOUT),
            ..self.clone()
        }
    }

    /// Calls `service` with `message` through `send` (a generated client method). A call to an
    /// `idempotent` RPC that finds its service unavailable is retried, with backoff, while the
    /// deadline allows; any other failure is returned as it is.
    pub async fn call<Req, Res, F, Fut>(
        &self,
        service: &str,
        idempotent: bool,
        message: Req,
        send: F,
    ) -> Result<Res, Status>
    where
        Req: Clone,
        F: Fn(Channel, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Res>, Status>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = self.deadline.remaining();
            if remaining.is_zero() {
                return Err(Status::deadline_exceeded(format!(
                    "no time left to call `{service}`"
                )));
            }
            let mut request = tonic::Request::new(message.clone());
            request.set_timeout(remaining);
            let token = self
                .settings
                .internal_tokens
                .sign(service, self.caller.as_ref())
                .map_err(|error| {
                    Status::internal(format!("cannot sign the internal credential: {error}"))
                })?;
            let metadata = request.metadata_mut();
            if let Ok(value) = token.parse() {
                metadata.insert(INTERNAL_HEADER, value);
            }
            // The callee's middleware continues the trace from it.
            if let Some(value) = self.traceparent.as_deref().and_then(|t| t.parse().ok()) {
                metadata.insert(crate::telemetry::TRACEPARENT_HEADER, value);
            }
            if let Some(value) = self.request_id.as_deref().and_then(|id| id.parse().ok()) {
                metadata.insert(crate::telemetry::REQUEST_ID_HEADER, value);
            }
            let channel = self.settings.peers.channel(service)?;
            match send(channel, request).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status)
                    if idempotent
                        && status.code() == Code::Unavailable
                        && attempt < IDEMPOTENT_ATTEMPTS =>
                {
                    let backoff = Duration::from_millis(50 * 2u64.pow(attempt));
                    tracing::warn!(service, attempt, %status, "retrying an idempotent call");
                    tokio::time::sleep(backoff.min(self.deadline.remaining())).await;
                }
                Err(status) => return Err(status),
            }
        }
    }
}

/// Answers a gRPC call with a generated server (`XServiceServer::new(...)`): generated
/// services mount this on `/<package>.<Service>/{*method}` of their app, so gRPC and HTTP share
/// one port, one middleware and one internal credential.
pub async fn serve<S>(server: S, request: axum::extract::Request) -> Response
where
    S: tower::Service<
            axum::http::Request<axum::body::Body>,
            Response = axum::http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        >,
{
    match tower::ServiceExt::oneshot(server, request).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(never) => match never {},
    }
}

pub use crate::saga::Saga;

/// A codec that passes encoded messages through as bytes: compensations stored by a saga are
/// replayed with it, without their message types.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut message = vec![0; bytes::Buf::remaining(src)];
        bytes::Buf::copy_to_slice(src, &mut message);
        Ok(Some(message))
    }
}

impl Outgoing {
    /// Calls the RPC at `path` (`/package.Service/Method`) of `service` with an encoded
    /// request, as [`Outgoing::call`] does.
    pub async fn call_encoded(
        &self,
        service: &str,
        idempotent: bool,
        path: &str,
        request: Vec<u8>,
    ) -> Result<Vec<u8>, Status> {
        let path = axum::http::uri::PathAndQuery::try_from(path)
            .map_err(|_| Status::internal(format!("`{path}` is not an RPC path")))?;
        self.call(service, idempotent, request, |channel, request| {
            let path = path.clone();
            async move {
                let mut grpc = tonic::client::Grpc::new(channel);
                grpc.ready()
                    .await
                    .map_err(|error| Status::unavailable(error.to_string()))?;
                grpc.unary(request, path, RawCodec).await
            }
        })
        .await
    }

    /// When the calls' deadline passes.
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// The same calls on behalf of nobody (a recovery, after the request is long gone).
    pub(crate) fn anonymous(settings: &Arc<Settings>) -> Outgoing {
        Outgoing {
            settings: settings.clone(),
            caller: None,
            deadline: Deadline::after(DEFAULT_TIMEOUT),
            traceparent: None,
            request_id: None,
        }
    }
}

#[cfg(test)]
mod tests;
