//! Tests of the runtime's RPC plumbing: statuses, deadlines, credentials, retries, sagas.

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
    // Custom code not written yet.
    assert_eq!(
        status_of(&ApiError::not_implemented("CountOpen")).code(),
        Code::Unimplemented
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
