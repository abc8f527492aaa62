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
    },
    GatewayRoute {
        method: "GET",
        path: "/public",
        service: "notes",
        auth: RouteAuth::Public,
    },
    GatewayRoute {
        method: "GET",
        path: "/notes/{id}",
        service: "notes",
        auth: RouteAuth::User,
    },
    GatewayRoute {
        method: "POST",
        path: "/notes",
        service: "notes",
        auth: RouteAuth::User,
    },
    GatewayRoute {
        method: "GET",
        path: "/billing",
        service: "billing",
        auth: RouteAuth::Public,
    },
];

async fn notes_service(settings: Arc<Settings>) -> (Router, tempfile::TempDir) {
    let (db, dir) = sqlite_db().await;
    let ctx = ServiceContext {
        service: "notes",
        db,
        bus: Bus::in_process(),
        settings,
    };
    let routes = Router::new()
        .route("/inspect", get(inspect))
        .route("/public", get(inspect))
        .route("/notes/{id}", get(show))
        .route("/notes", post(create));
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
    }];
    let _ = router("", &routes, BTreeMap::new(), settings());
}
