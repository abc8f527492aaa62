use axum::http::Method;
use axum::routing::post;
use serde_json::{Value, json};
use uuid::Uuid;

use super::*;
use crate::bus::Bus;
use crate::http::{IdPath, Json};
use crate::identity::MaybeCaller;
use crate::service::{ServiceContext, service_app};
use crate::telemetry::RequestId;
use crate::test_support::{call, request, settings, sqlite_db};

/// What the tiny upstream service saw of a request.
async fn inspect(
    MaybeCaller(caller): MaybeCaller,
    RequestId(request_id): RequestId,
    uri: Uri,
    headers: HeaderMap,
) -> axum::Json<Value> {
    let seen = |name: &str| headers.contains_key(name);
    axum::Json(json!({
        "path": uri.path(),
        "query": uri.query(),
        "user_id": caller.map(|c| c.user_id),
        "request_id": request_id,
        "authorization": seen("authorization"),
        "x_user_id": seen("x-user-id"),
        "x_user_roles": seen("x-user-roles"),
        "x_forwarded_user": seen("x-forwarded-user"),
        "x_svcgen_extra": seen("x-svcgen-extra"),
        "custom": headers.get("x-custom").and_then(|v| v.to_str().ok()),
        "timeout_ms": headers.get(crate::rpc::TIMEOUT_HEADER).and_then(|v| v.to_str().ok()),
    }))
}

async fn show(IdPath(id): IdPath) -> axum::Json<Value> {
    axum::Json(json!({ "id": id }))
}

async fn create(Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    (StatusCode::CREATED, Json(body))
}

const ROUTES: &[GatewayRoute] = &[
    GatewayRoute {
        method: "GET",
        path: "/inspect",
        service: "notes",
        auth: RouteAuth::User,
        roles: &[],
        policy: RoutePolicy::DEFAULT,
    },
    GatewayRoute {
        method: "GET",
        path: "/public",
        service: "notes",
        auth: RouteAuth::Public,
        roles: &[],
        policy: RoutePolicy::DEFAULT,
    },
    GatewayRoute {
        method: "GET",
        path: "/notes/{id}",
        service: "notes",
        auth: RouteAuth::User,
        roles: &[],
        policy: RoutePolicy::DEFAULT,
    },
    GatewayRoute {
        method: "POST",
        path: "/notes",
        service: "notes",
        auth: RouteAuth::User,
        roles: &[],
        policy: RoutePolicy::DEFAULT,
    },
    GatewayRoute {
        method: "GET",
        path: "/billing",
        service: "billing",
        auth: RouteAuth::Public,
        roles: &[],
        policy: RoutePolicy::DEFAULT,
    },
];

async fn notes_service(settings: Arc<Settings>) -> (Router, tempfile::TempDir) {
    let (db, dir) = sqlite_db().await;
    let ctx = ServiceContext {
        service: "notes",
        db,
        bus: Bus::in_process(),
        settings,
        events: Default::default(),
    };
    let routes = Router::new()
        .route("/inspect", get(inspect))
        .route("/public", get(inspect))
        .route("/notes/{id}", get(show))
        .route("/notes", post(create))
        .route("/slow", get(std::future::pending::<()>))
        .route("/auth/login", post(create))
        .route("/auth/password-reset", post(create));
    (service_app(ctx, routes), dir)
}

/// A gateway with `notes` in process and `billing` at an address where nothing listens.
async fn gateway() -> (Router, Arc<Settings>, tempfile::TempDir) {
    let settings = settings();
    let (notes, dir) = notes_service(settings.clone()).await;
    let mut upstreams = BTreeMap::new();
    upstreams.insert("notes", Upstream::InProcess(notes));
    upstreams.insert(
        "billing",
        Upstream::Http(format!("http://{}", closed_port())),
    );
    (
        router("/api/v1/", ROUTES, upstreams, settings.clone()),
        settings,
        dir,
    )
}

/// A loopback address with (almost certainly) nothing listening: bind, read the port, close.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn bearer(settings: &Settings, user: Uuid) -> String {
    format!(
        "Bearer {}",
        settings
            .access_tokens
            .issue(user, &["user".to_owned()])
            .unwrap()
    )
}

#[tokio::test]
async fn user_routes_require_a_valid_bearer_token() {
    let (app, _, _dir) = gateway().await;
    let response = app
        .clone()
        .oneshot(request(Method::GET, "/api/v1/inspect", None, &[]))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");

    let (status, body) = call(&app, request(Method::GET, "/api/v1/inspect", None, &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("missing bearer token"),
        "{body}"
    );

    let (status, body) = call(
        &app,
        request(
            Method::GET,
            "/api/v1/inspect",
            None,
            &[("authorization", "Bearer nope")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({ "error": "invalid access token" }));

    let expired = expired_bearer();
    let (status, body) = call(
        &app,
        request(
            Method::GET,
            "/api/v1/inspect",
            None,
            &[("authorization", &expired)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({ "error": "access token expired" }));
}

/// A bearer token with the test settings' system and secret, expired long ago.
fn expired_bearer() -> String {
    let live = settings();
    let tokens =
        crate::identity::AccessTokens::new(&live.system, crate::test_support::JWT_SECRET, -600);
    format!("Bearer {}", tokens.issue(Uuid::now_v7(), &[]).unwrap())
}

#[tokio::test]
async fn identity_headers_are_stripped_and_the_path_is_forwarded_without_prefix() {
    let (app, settings, _dir) = gateway().await;
    let user = Uuid::now_v7();
    let auth = bearer(&settings, user);
    let headers = [
        ("authorization", auth.as_str()),
        ("x-user-id", "00000000-0000-0000-0000-000000000001"),
        ("x-user-roles", "admin"),
        ("x-forwarded-user", "admin"),
        ("x-svcgen-internal", "forged"),
        ("x-svcgen-extra", "forged"),
        ("x-svcgen-timeout-ms", "999999"),
        ("x-custom", "kept"),
        ("x-request-id", "req-42"),
    ];
    let response = app
        .clone()
        .oneshot(request(
            Method::GET,
            "/api/v1/inspect?a=1&b=two",
            None,
            &headers,
        ))
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-42");
    let (status, body) = call(
        &app,
        request(Method::GET, "/api/v1/inspect?a=1&b=two", None, &headers),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "path": "/inspect",
            "query": "a=1&b=two",
            "user_id": user,
            "request_id": "req-42",
            "authorization": false,
            "x_user_id": false,
            "x_user_roles": false,
            "x_forwarded_user": false,
            "x_svcgen_extra": false,
            "custom": "kept",
            // The route's deadline (the default 30 s), never the client's.
            "timeout_ms": "30000",
        })
    );
}

#[tokio::test]
async fn public_routes_pass_identity_only_for_a_valid_token() {
    let (app, settings, _dir) = gateway().await;
    let (status, body) = call(
        &app,
        request(
            Method::GET,
            "/api/v1/public",
            None,
            &[("x-user-id", "spoofed")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user_id"], Value::Null);

    let user = Uuid::now_v7();
    let auth = bearer(&settings, user);
    let (_, body) = call(
        &app,
        request(
            Method::GET,
            "/api/v1/public",
            None,
            &[("authorization", &auth)],
        ),
    )
    .await;
    assert_eq!(body["user_id"], json!(user));

    let (status, body) = call(
        &app,
        request(
            Method::GET,
            "/api/v1/public",
            None,
            &[("authorization", "Bearer junk")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user_id"], Value::Null);
}

#[tokio::test]
async fn route_parameters_bodies_and_service_errors_pass_through() {
    let (app, settings, _dir) = gateway().await;
    let auth = bearer(&settings, Uuid::now_v7());
    let id = Uuid::now_v7();
    let (status, body) = call(
        &app,
        request(
            Method::GET,
            &format!("/api/v1/notes/{id}"),
            None,
            &[("authorization", &auth)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "id": id }));

    let (status, body) = call(
        &app,
        request(
            Method::GET,
            "/api/v1/notes/xyz",
            None,
            &[("authorization", &auth)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({ "error": "malformed id `xyz`" }));

    let note = json!({ "title": "hello" });
    let (status, body) = call(
        &app,
        request(
            Method::POST,
            "/api/v1/notes",
            Some(note.clone()),
            &[("authorization", &auth)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body, note);
}

#[tokio::test]
async fn unknown_paths_are_404_and_unreachable_services_502() {
    let (app, _, _dir) = gateway().await;
    let (status, body) = call(&app, request(Method::GET, "/api/v1/nope", None, &[])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({ "error": "no route for GET /api/v1/nope" }));
    // Service paths are reachable only through the prefix.
    assert_eq!(
        call(&app, request(Method::GET, "/inspect", None, &[]))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    let (status, body) = call(&app, request(Method::DELETE, "/api/v1/notes", None, &[])).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["error"].is_string());

    let (status, body) = call(&app, request(Method::GET, "/api/v1/billing", None, &[])).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body, json!({ "error": "service `billing` is unavailable" }));
}

#[tokio::test]
async fn health_lists_every_service() {
    let (app, _, _dir) = gateway().await;
    let response = app
        .clone()
        .oneshot(request(Method::GET, "/health", None, &[]))
        .await
        .unwrap();
    assert!(response.headers().contains_key("x-request-id"));
    let (status, body) = call(&app, request(Method::GET, "/health", None, &[])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({ "status": "degraded", "services": { "billing": "unavailable", "notes": "ok" } })
    );

    let settings = settings();
    let (notes, _dir) = notes_service(settings.clone()).await;
    let healthy = router(
        "",
        &ROUTES[..4],
        BTreeMap::from([("notes", Upstream::InProcess(notes))]),
        settings,
    );
    let (status, body) = call(&healthy, request(Method::GET, "/health", None, &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "status": "ok", "services": { "notes": "ok" } })
    );
}

#[tokio::test]
async fn http_upstreams_are_proxied_over_the_network() {
    let settings = settings();
    let (notes, _dir) = notes_service(settings.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, notes).await });

    let upstreams = BTreeMap::from([("notes", Upstream::Http(format!("http://{addr}/")))]);
    let app = router("/api/v1", ROUTES, upstreams, settings.clone());
    let user = Uuid::now_v7();
    let auth = bearer(&settings, user);

    let (status, body) = call(
        &app,
        request(
            Method::GET,
            "/api/v1/inspect?x=1",
            None,
            &[("authorization", &auth), ("x-user-id", "spoofed")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["path"], "/inspect");
    assert_eq!(body["query"], "x=1");
    assert_eq!(body["user_id"], json!(user));
    assert_eq!(body["x_user_id"], false);

    let note = json!({ "title": "over the wire", "tags": ["a"] });
    let (status, body) = call(
        &app,
        request(
            Method::POST,
            "/api/v1/notes",
            Some(note.clone()),
            &[("authorization", &auth)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body, note);

    let (status, body) = call(&app, request(Method::GET, "/health", None, &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["services"]["notes"], "ok");
    server.abort();
}

#[test]
fn prefixes_are_normalized() {
    assert_eq!(normalize_prefix(""), "");
    assert_eq!(normalize_prefix("/"), "");
    assert_eq!(normalize_prefix("api/v1/"), "/api/v1");
    assert_eq!(normalize_prefix("/api/v1"), "/api/v1");
}

#[test]
fn hop_by_hop_headers_including_listed_ones_are_removed() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "connection",
        HeaderValue::from_static("keep-alive, x-secret-hop"),
    );
    headers.insert("x-secret-hop", HeaderValue::from_static("1"));
    headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let kept = strip_hop_by_hop(&headers);
    assert_eq!(kept.len(), 1);
    assert!(kept.contains_key("content-type"));
}

#[test]
#[should_panic(expected = "unsupported HTTP method")]
fn an_invalid_method_in_the_route_table_is_caught_at_startup() {
    let routes = [GatewayRoute {
        method: "GE T",
        path: "/x",
        service: "notes",
        auth: RouteAuth::Public,
        roles: &[],
        policy: RoutePolicy::DEFAULT,
    }];
    let _ = router("", &routes, BTreeMap::new(), settings());
}

// --- Policy: roles, rate limits, body limit, timeout, CORS -----------------------------------

/// A route of the `notes` service with the default policy.
const fn route(method: &'static str, path: &'static str, auth: RouteAuth) -> GatewayRoute {
    GatewayRoute {
        method,
        path,
        service: "notes",
        auth,
        roles: &[],
        policy: RoutePolicy::DEFAULT,
    }
}

const POLICY_ROUTES: &[GatewayRoute] = &[
    GatewayRoute {
        roles: &["admin"],
        ..route("GET", "/inspect", RouteAuth::User)
    },
    GatewayRoute {
        roles: &["admin", "auditor"],
        ..route("GET", "/public", RouteAuth::Public)
    },
    GatewayRoute {
        policy: RoutePolicy {
            per_ip: RouteRateLimit::Limit(RateLimit::per_hour(2)),
            per_user: RouteRateLimit::Limit(RateLimit::per_hour(1)),
            ..RoutePolicy::DEFAULT
        },
        ..route("GET", "/notes/{id}", RouteAuth::Public)
    },
    GatewayRoute {
        policy: RoutePolicy {
            body_limit_bytes: Some(16),
            ..RoutePolicy::DEFAULT
        },
        ..route("POST", "/notes", RouteAuth::Public)
    },
    GatewayRoute {
        policy: RoutePolicy {
            timeout_ms: Some(100),
            ..RoutePolicy::DEFAULT
        },
        ..route("GET", "/slow", RouteAuth::Public)
    },
    route("POST", "/auth/login", RouteAuth::Public),
    GatewayRoute {
        policy: RoutePolicy {
            per_ip: RouteRateLimit::Off,
            ..RoutePolicy::DEFAULT
        },
        ..route("POST", "/auth/password-reset", RouteAuth::Public)
    },
];

async fn policy_gateway(policy: GatewayPolicy) -> (Router, Arc<Settings>, tempfile::TempDir) {
    let settings = settings();
    let (notes, dir) = notes_service(settings.clone()).await;
    let upstreams = BTreeMap::from([("notes", Upstream::InProcess(notes))]);
    let app = router_with_policy(
        "/api/v1",
        POLICY_ROUTES,
        &policy,
        upstreams,
        settings.clone(),
    );
    (app, settings, dir)
}

fn bearer_with_roles(settings: &Settings, user: Uuid, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|role| (*role).to_owned()).collect();
    format!(
        "Bearer {}",
        settings.access_tokens.issue(user, &roles).unwrap()
    )
}

/// A request as it arrives from the network, from the client address `ip`.
fn from_ip(ip: [u8; 4], mut request: axum::http::Request<Body>) -> axum::http::Request<Body> {
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
    request
}

async fn raw(app: &Router, request: axum::http::Request<Body>) -> Response {
    app.clone().oneshot(request).await.unwrap()
}

async fn json_of(response: Response) -> (StatusCode, HeaderMap, Value) {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, headers, body)
}

#[tokio::test]
async fn routes_with_roles_answer_403_without_one_of_them() {
    let (app, settings, _dir) = policy_gateway(GatewayPolicy::DEFAULT).await;
    let user = bearer_with_roles(&settings, Uuid::now_v7(), &["user"]);
    let admin = bearer_with_roles(&settings, Uuid::now_v7(), &["user", "admin"]);
    let auditor = bearer_with_roles(&settings, Uuid::now_v7(), &["auditor"]);

    let response = raw(
        &app,
        request(
            Method::GET,
            "/api/v1/inspect",
            None,
            &[("authorization", &user)],
        ),
    )
    .await;
    let (status, headers, body) = json_of(response).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({ "error": "this route requires the role `admin`" })
    );
    assert!(headers.contains_key("x-request-id"));

    let (status, body) = call(
        &app,
        request(
            Method::GET,
            "/api/v1/inspect",
            None,
            &[("authorization", &admin)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Any one of the listed roles will do.
    let (status, _) = call(
        &app,
        request(
            Method::GET,
            "/api/v1/public",
            None,
            &[("authorization", &auditor)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(
        &app,
        request(
            Method::GET,
            "/api/v1/public",
            None,
            &[("authorization", &user)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({ "error": "this route requires one of the roles `admin`, `auditor`" })
    );

    // A route with roles needs a token even when it is otherwise public.
    for path in ["/api/v1/inspect", "/api/v1/public"] {
        let (status, _) = call(&app, request(Method::GET, path, None, &[])).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn rate_limits_apply_per_client_ip_and_per_user() {
    let (app, settings, _dir) = policy_gateway(GatewayPolicy::DEFAULT).await;
    let id = Uuid::now_v7();
    let path = format!("/api/v1/notes/{id}");

    // Per IP: two anonymous requests an hour from one address, then 429 with Retry-After.
    for _ in 0..2 {
        let (status, _) = call(
            &app,
            from_ip([10, 0, 0, 1], request(Method::GET, &path, None, &[])),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let response = raw(
        &app,
        from_ip([10, 0, 0, 1], request(Method::GET, &path, None, &[])),
    )
    .await;
    let (status, headers, body) = json_of(response).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(
        body,
        json!({ "error": format!("too many requests; retry in {retry_after} s") })
    );
    assert!(headers.contains_key("x-request-id"));
    // Another address has its own bucket.
    let (status, _) = call(
        &app,
        from_ip([10, 0, 0, 2], request(Method::GET, &path, None, &[])),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Per user: one request an hour per user, whatever the address.
    let ada = bearer(&settings, Uuid::now_v7());
    let bob = bearer(&settings, Uuid::now_v7());
    let as_user = |ip: [u8; 4], auth: &str| {
        from_ip(
            ip,
            request(Method::GET, &path, None, &[("authorization", auth)]),
        )
    };
    assert_eq!(
        call(&app, as_user([10, 0, 1, 1], &ada)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, as_user([10, 0, 1, 2], &ada)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        call(&app, as_user([10, 0, 1, 3], &bob)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn credential_routes_are_rate_limited_by_default() {
    let (app, _, _dir) = policy_gateway(GatewayPolicy::DEFAULT).await;
    let login = || {
        from_ip(
            [192, 0, 2, 7],
            request(
                Method::POST,
                "/api/v1/auth/login",
                Some(json!({ "email": "a@b.c" })),
                &[],
            ),
        )
    };
    let limit = GatewayPolicy::DEFAULT.credential_per_ip.unwrap().requests;
    for _ in 0..limit {
        assert_eq!(call(&app, login()).await.0, StatusCode::CREATED);
    }
    assert_eq!(call(&app, login()).await.0, StatusCode::TOO_MANY_REQUESTS);

    // A route can switch the default off.
    for _ in 0..limit + 1 {
        let (status, _) = call(
            &app,
            from_ip(
                [192, 0, 2, 7],
                request(
                    Method::POST,
                    "/api/v1/auth/password-reset",
                    Some(json!({})),
                    &[],
                ),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }

    // And the gateway-wide default can be changed.
    let strict = GatewayPolicy {
        credential_per_ip: Some(RateLimit::per_hour(1)),
        ..GatewayPolicy::DEFAULT
    };
    let (app, _, _dir) = policy_gateway(strict).await;
    assert_eq!(call(&app, login()).await.0, StatusCode::CREATED);
    assert_eq!(call(&app, login()).await.0, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let (app, _, _dir) = policy_gateway(GatewayPolicy::DEFAULT).await;
    // Declared length over the route's 16 bytes.
    let (status, body) = call(
        &app,
        request(
            Method::POST,
            "/api/v1/notes",
            Some(json!({ "title": "far more than sixteen bytes" })),
            &[],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body,
        json!({ "error": "request body too large (at most 16 bytes)" })
    );
    let (status, _) = call(
        &app,
        request(Method::POST, "/api/v1/notes", Some(json!({ "t": 1 })), &[]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // A streamed body of unknown length is cut off once over the limit.
    let chunks: Vec<Result<&'static str, std::io::Error>> =
        vec![Ok("{\"title\": \""), Ok("0123456789"), Ok("\"}")];
    let streamed = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/notes")
        .header("content-type", "application/json")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let (status, body) = call(&app, streamed).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // The default limit is 1 MiB.
    let (app, _, _dir) = policy_gateway(GatewayPolicy::DEFAULT).await;
    let big = "x".repeat(1024 * 1024);
    let (status, body) = call(
        &app,
        request(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({ "big": big })),
            &[],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body,
        json!({ "error": "request body too large (at most 1048576 bytes)" })
    );
}

#[tokio::test]
async fn a_service_that_does_not_answer_in_time_is_504() {
    let (app, _, _dir) = policy_gateway(GatewayPolicy::DEFAULT).await;
    let response = raw(&app, request(Method::GET, "/api/v1/slow", None, &[])).await;
    let (status, headers, body) = json_of(response).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        body,
        json!({ "error": "service `notes` did not answer within 100 ms" })
    );
    assert!(headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn cors_follows_the_policy() {
    // Off by default: no CORS header at all.
    let (app, _, _dir) = policy_gateway(GatewayPolicy::DEFAULT).await;
    let response = raw(
        &app,
        request(
            Method::GET,
            "/api/v1/notes/00000000-0000-0000-0000-000000000000",
            None,
            &[("origin", "https://app.example.com")],
        ),
    )
    .await;
    assert!(
        !response
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );

    let policy = GatewayPolicy {
        cors: Cors {
            allowed_origins: &["https://app.example.com"],
            ..Cors::DISABLED
        },
        ..GatewayPolicy::DEFAULT
    };
    let (app, _, _dir) = policy_gateway(policy).await;
    let preflight = raw(
        &app,
        request(
            Method::OPTIONS,
            "/api/v1/notes",
            None,
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
            ],
        ),
    )
    .await;
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    let methods = headers[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let allowed = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap();
    assert!(allowed.contains("authorization"), "{allowed}");
    assert!(allowed.contains("if-match"), "{allowed}");
    assert!(headers.contains_key("x-request-id"));

    let simple = raw(
        &app,
        request(
            Method::GET,
            "/api/v1/notes/00000000-0000-0000-0000-000000000000",
            None,
            &[("origin", "https://app.example.com")],
        ),
    )
    .await;
    assert_eq!(
        simple.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    let exposed = simple.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    assert!(exposed.contains("etag"), "{exposed}");

    let other = raw(
        &app,
        request(
            Method::GET,
            "/api/v1/notes/00000000-0000-0000-0000-000000000000",
            None,
            &[("origin", "https://evil.example.net")],
        ),
    )
    .await;
    assert!(
        !other
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[test]
#[should_panic(expected = "invalid rate limit")]
fn a_zero_rate_limit_is_caught_at_startup() {
    let routes = [GatewayRoute {
        policy: RoutePolicy {
            per_ip: RouteRateLimit::Limit(RateLimit::per_minute(0)),
            ..RoutePolicy::DEFAULT
        },
        ..route("GET", "/x", RouteAuth::Public)
    }];
    let _ = router("", &routes, BTreeMap::new(), settings());
}

#[test]
#[should_panic(expected = "credentials cannot be allowed for the origin `*`")]
fn cors_with_any_origin_and_credentials_is_caught_at_startup() {
    let policy = GatewayPolicy {
        cors: Cors {
            allowed_origins: &["*"],
            allow_credentials: true,
            ..Cors::DISABLED
        },
        ..GatewayPolicy::DEFAULT
    };
    let _ = router_with_policy("", &[], &policy, BTreeMap::new(), settings());
}

#[test]
fn credential_routes_are_recognised_by_path() {
    for path in [
        "/auth/login",
        "/auth/register",
        "/auth/password-reset",
        "/auth/password-reset/confirm",
    ] {
        assert!(is_credential_route(path), "{path}");
    }
    for path in ["/auth/me", "/auth/refresh", "/notes"] {
        assert!(!is_credential_route(path), "{path}");
    }
}

#[tokio::test]
async fn limits_hold_for_http_upstreams_too() {
    let settings = settings();
    let (notes, _dir) = notes_service(settings.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, notes).await });
    let upstreams = BTreeMap::from([("notes", Upstream::Http(format!("http://{addr}")))]);
    let app = router_with_policy(
        "/api/v1",
        POLICY_ROUTES,
        &GatewayPolicy::DEFAULT,
        upstreams,
        settings,
    );

    let chunks: Vec<Result<&'static str, std::io::Error>> =
        vec![Ok("{\"title\": \""), Ok("0123456789"), Ok("\"}")];
    let streamed = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/notes")
        .header("content-type", "application/json")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let (status, body) = call(&app, streamed).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (status, _) = call(
        &app,
        request(Method::POST, "/api/v1/notes", Some(json!({ "t": 1 })), &[]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, body) = call(&app, request(Method::GET, "/api/v1/slow", None, &[])).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    server.abort();
}

/// A stand-in for a generated transcoder: echoes what the gateway handed it, and hands back
/// `/inspect`, which it does not carry.
fn echo_adapter(call: crate::rpc::GatewayCall) -> crate::rpc::Adapted {
    if call.route == "/inspect" {
        return Err(Box::new(call));
    }
    Ok(Box::pin(async move {
        let id = call.id().ok();
        let body: Option<Value> = call.json().await.ok();
        crate::rpc::json_response(
            StatusCode::ACCEPTED,
            &json!({
                "method": call.method.as_str(),
                "route": call.route,
                "path": call.parts.uri.path(),
                "id": id,
                "body": body,
                "remaining_ms_at_most_route_timeout":
                    call.outgoing_deadline_ms() <= 30_000,
            }),
        )
    }))
}

#[tokio::test]
async fn grpc_upstreams_get_each_checked_request_through_their_adapter() {
    let settings = settings();
    let (notes, _dir) = notes_service(settings.clone()).await;
    let upstreams = BTreeMap::from([(
        "notes",
        Upstream::Grpc {
            http: Box::new(Upstream::InProcess(notes)),
            adapter: echo_adapter,
        },
    )]);
    let app = router("/api/v1", ROUTES, upstreams, settings.clone());
    let user = Uuid::now_v7();
    let auth = bearer(&settings, user);
    let id = Uuid::now_v7();

    let (status, body) = call(
        &app,
        request(
            Method::GET,
            &format!("/api/v1/notes/{id}"),
            None,
            &[("authorization", &auth)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["route"], "/notes/{id}");
    assert_eq!(body["path"], format!("/notes/{id}"));
    assert_eq!(body["id"], id.to_string());
    assert_eq!(body["remaining_ms_at_most_route_timeout"], true);

    let (status, body) = call(
        &app,
        request(
            Method::POST,
            "/api/v1/notes",
            Some(json!({"title": "hi"})),
            &[("authorization", &auth)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["body"], json!({"title": "hi"}));

    // Authentication, like every check, happens before: the adapter is never reached.
    let (status, _) = call(&app, request(Method::GET, "/api/v1/inspect", None, &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A route the adapter hands back is forwarded to the service's HTTP side, as any route of
    // a service reached over HTTP: below the prefix, with the caller's internal credential.
    let (status, body) = call(
        &app,
        request(
            Method::GET,
            "/api/v1/inspect?page=2",
            None,
            &[("authorization", &auth)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["path"], "/inspect");
    assert_eq!(body["query"], "page=2");
    assert_eq!(body["user_id"], user.to_string());

    // The health check still goes to the service's HTTP side.
    let (status, body) = call(&app, request(Method::GET, "/health", None, &[])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
