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

/// Conversion of a plain value into its protobuf form (uuids as text, timestamps as
/// `google.protobuf.Timestamp`); generated message types implement it field by field.
pub trait ToProto<P> {
    /// The protobuf form.
    fn to_proto(&self) -> P;
}

/// Conversion of a protobuf value into its plain form; fails with `INVALID_ARGUMENT` on
/// malformed input (a uuid that does not parse, a missing required message).
pub trait FromProto<P>: Sized {
    /// The plain form.
    fn from_proto(proto: P) -> Result<Self, Status>;
}

macro_rules! same_in_proto {
    ($($ty:ty),*) => {$(
        impl ToProto<$ty> for $ty {
            fn to_proto(&self) -> $ty {
                self.clone()
            }
        }
        impl FromProto<$ty> for $ty {
            fn from_proto(proto: $ty) -> Result<Self, Status> {
                Ok(proto)
            }
        }
    )*};
}

same_in_proto!(String, i64, bool);

impl ToProto<String> for uuid::Uuid {
    fn to_proto(&self) -> String {
        self.to_string()
    }
}

impl FromProto<String> for uuid::Uuid {
    fn from_proto(proto: String) -> Result<Self, Status> {
        proto
            .parse()
            .map_err(|_| Status::invalid_argument(format!("`{proto}` is not a UUID")))
    }
}

impl ToProto<prost_types::Timestamp> for chrono::DateTime<chrono::Utc> {
    fn to_proto(&self) -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: self.timestamp(),
            nanos: i32::try_from(self.timestamp_subsec_nanos()).unwrap_or(0),
        }
    }
}

impl FromProto<prost_types::Timestamp> for chrono::DateTime<chrono::Utc> {
    fn from_proto(proto: prost_types::Timestamp) -> Result<Self, Status> {
        u32::try_from(proto.nanos)
            .ok()
            .and_then(|nanos| chrono::DateTime::from_timestamp(proto.seconds, nanos))
            .ok_or_else(|| Status::invalid_argument("a timestamp is out of range"))
    }
}

impl<T: ToProto<P>, P> ToProto<Vec<P>> for Vec<T> {
    fn to_proto(&self) -> Vec<P> {
        self.iter().map(ToProto::to_proto).collect()
    }
}

impl<T: FromProto<P>, P> FromProto<Vec<P>> for Vec<T> {
    fn from_proto(proto: Vec<P>) -> Result<Self, Status> {
        proto.into_iter().map(T::from_proto).collect()
    }
}

impl<T: ToProto<P>, P> ToProto<Option<P>> for Option<T> {
    fn to_proto(&self) -> Option<P> {
        self.as_ref().map(ToProto::to_proto)
    }
}

impl<T: FromProto<P>, P> FromProto<Option<P>> for Option<T> {
    fn from_proto(proto: Option<P>) -> Result<Self, Status> {
        proto.map(T::from_proto).transpose()
    }
}

/// A required message field that arrived empty: `INVALID_ARGUMENT` naming it.
pub fn required<P>(field: &str, value: Option<P>) -> Result<P, Status> {
    value.ok_or_else(|| Status::invalid_argument(format!("`{field}` is required")))
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

    #[test]
    fn plain_values_round_trip_through_their_protobuf_form() {
        let id = uuid::Uuid::now_v7();
        let at = crate::db::now();
        let proto: String = id.to_proto();
        assert_eq!(uuid::Uuid::from_proto(proto).unwrap(), id);
        let stamp: prost_types::Timestamp = at.to_proto();
        assert_eq!(chrono::DateTime::from_proto(stamp).unwrap(), at);
        let list: Vec<String> = vec![id].to_proto();
        assert_eq!(Vec::<uuid::Uuid>::from_proto(list).unwrap(), vec![id]);
        let none: Option<String> = None::<uuid::Uuid>.to_proto();
        assert_eq!(Option::<uuid::Uuid>::from_proto(none).unwrap(), None);
        let bad = uuid::Uuid::from_proto("not-a-uuid".to_owned()).unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert_eq!(
            required::<i64>("item", None).unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    #[tokio::test]
    async fn a_failed_saga_undoes_its_steps_newest_first_even_when_one_undo_fails() {
        let undone = Arc::new(Mutex::new(Vec::new()));
        let mut saga = Saga::new();
        for step in ["reserve", "charge", "commit"] {
            let undone = undone.clone();
            saga.on_failure(step, move || async move {
                undone.lock().unwrap().push(step);
                if step == "charge" {
                    Err(Status::unavailable("provider down"))
                } else {
                    Ok(())
                }
            });
        }
        let error = saga.fail(ApiError::conflict("out of stock")).await;
        assert_eq!(error.status(), StatusCode::CONFLICT);
        assert_eq!(*undone.lock().unwrap(), ["commit", "charge", "reserve"]);
    }

    #[test]
    fn http_errors_become_the_matching_grpc_status() {
        assert_eq!(
            status_of(&ApiError::not_found("no such order")).code(),
            Code::NotFound
        );
        assert_eq!(
            status_of(&ApiError::conflict("taken")).code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            status_of(&ApiError::bad_request("bad")).code(),
            Code::InvalidArgument
        );
        assert_eq!(
            status_of(&ApiError::forbidden("no")).code(),
            Code::PermissionDenied
        );
    }

    #[tokio::test]
    async fn a_peer_without_a_url_is_unavailable_and_names_the_variable() {
        let peers = Peers::default();
        let error = peers.channel("no-such-peer").unwrap_err();
        assert_eq!(error.code(), Code::Unavailable);
        assert!(
            error.message().contains("SVCGEN_NO_SUCH_PEER_URL"),
            "{error}"
        );
        let local = Peers::default();
        local.set_local(BTreeMap::from([("product", Router::new())]));
        assert!(matches!(local.channel("product"), Ok(Channel::Local(_))));
        assert_eq!(local.channel("user").unwrap_err().code(), Code::Unavailable);
    }

    /// The `grpc-timeout`, internal credential and request id one call carried.
    type Seen = (Option<String>, Option<String>, Option<String>);

    /// A gRPC endpoint that answers UNAVAILABLE `failures` times, then OK, recording what each
    /// call carried.
    #[derive(Clone, Default)]
    struct Flaky {
        failures: usize,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl tonic::server::UnaryService<()> for Flaky {
        type Response = ();
        type Future = BoxFuture<'static, Result<tonic::Response<()>, Status>>;

        fn call(&mut self, request: tonic::Request<()>) -> Self::Future {
            let header = |name: &str| {
                request
                    .metadata()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let mut seen = self.seen.lock().unwrap();
            seen.push((
                header("grpc-timeout"),
                header(INTERNAL_HEADER),
                header(crate::telemetry::REQUEST_ID_HEADER),
            ));
            let result = if seen.len() <= self.failures {
                Err(Status::unavailable("restarting"))
            } else {
                Ok(tonic::Response::new(()))
            };
            Box::pin(async move { result })
        }
    }

    fn peer(flaky: Flaky) -> Arc<Settings> {
        let app = Router::new().route(
            "/test.v1.Echo/Call",
            axum::routing::post(move |request: axum::extract::Request| {
                let flaky = flaky.clone();
                async move {
                    let mut grpc =
                        tonic::server::Grpc::new(tonic_prost::ProstCodec::<(), ()>::default());
                    grpc.unary(flaky, request).await.map(axum::body::Body::new)
                }
            }),
        );
        let settings = crate::test_support::settings();
        settings.peers.set_local(BTreeMap::from([("echo", app)]));
        settings
    }

    async fn call_echo(outgoing: &Outgoing, idempotent: bool) -> Result<(), Status> {
        outgoing
            .call("echo", idempotent, (), |channel, request| async move {
                let mut grpc = tonic::client::Grpc::new(channel);
                grpc.ready()
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                grpc.unary(
                    request,
                    axum::http::uri::PathAndQuery::from_static("/test.v1.Echo/Call"),
                    tonic_prost::ProstCodec::<(), ()>::default(),
                )
                .await
            })
            .await
    }

    #[tokio::test]
    async fn idempotent_calls_are_retried_while_the_peer_is_unavailable_and_others_are_not() {
        let flaky = Flaky {
            failures: 2,
            ..Flaky::default()
        };
        let settings = peer(flaky.clone());
        let outgoing = Outgoing::new(&settings, None, Deadline::after(Duration::from_secs(10)));
        call_echo(&outgoing, true)
            .await
            .expect("succeeds on the third attempt");
        assert_eq!(flaky.seen.lock().unwrap().len(), 3);

        let flaky = Flaky {
            failures: 2,
            ..Flaky::default()
        };
        let settings = peer(flaky.clone());
        let outgoing = Outgoing::new(&settings, None, Deadline::after(Duration::from_secs(10)));
        let error = call_echo(&outgoing, false).await.unwrap_err();
        assert_eq!(error.code(), Code::Unavailable);
        assert_eq!(
            flaky.seen.lock().unwrap().len(),
            1,
            "a non-idempotent call is tried once"
        );
    }

    #[tokio::test]
    async fn calls_carry_the_deadline_left_and_a_credential_for_their_target_with_the_caller() {
        let flaky = Flaky::default();
        let settings = peer(flaky.clone());
        let caller = Caller {
            user_id: uuid::Uuid::now_v7(),
            roles: vec!["user".into()],
        };
        // Made while handling request `req-7`: the calls carry its id.
        let outgoing = crate::telemetry::REQUEST_ID
            .scope("req-7".to_owned(), async {
                Outgoing::new(
                    &settings,
                    Some(&caller),
                    Deadline::after(Duration::from_secs(2)),
                )
            })
            .await;
        call_echo(&outgoing, false).await.unwrap();
        let (timeout, token, request_id) = flaky.seen.lock().unwrap()[0].clone();
        assert_eq!(request_id.as_deref(), Some("req-7"));
        let timeout = parse_grpc_timeout(&timeout.expect("grpc-timeout is sent")).unwrap();
        assert!(
            timeout <= Duration::from_secs(2) && !timeout.is_zero(),
            "{timeout:?}"
        );
        let token = token.expect("the internal credential is sent");
        let verified = settings.internal_tokens.verify("echo", &token).unwrap();
        assert_eq!(verified, Some(caller));
        assert!(settings.internal_tokens.verify("other", &token).is_err());

        // No time left: the call is not even made.
        let late = Outgoing::new(&settings, None, Deadline(Instant::now()));
        assert_eq!(
            call_echo(&late, true).await.unwrap_err().code(),
            Code::DeadlineExceeded
        );
        assert_eq!(flaky.seen.lock().unwrap().len(), 1);
    }
}
