use axum::http::Method;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::identity::{Caller, MaybeCaller};
use crate::test_support::{call, request, settings, sqlite_db};

async fn whoami(caller: Caller) -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "user_id": caller.user_id, "roles": caller.roles }))
}

async fn maybe(MaybeCaller(caller): MaybeCaller) -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "user_id": caller.map(|c| c.user_id) }))
}

async fn echo_headers(headers: axum::http::HeaderMap) -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "internal": headers.get(INTERNAL_HEADER).is_some() }))
}

async fn app() -> (Router, Arc<Settings>, tempfile::TempDir) {
    let (db, dir) = sqlite_db().await;
    let settings = settings();
    let ctx = ServiceContext {
        service: "notes",
        db,
        bus: Bus::in_process(),
        settings: settings.clone(),
        events: Default::default(),
    };
    let routes = Router::new()
        .route("/whoami", get(whoami))
        .route("/maybe", get(maybe))
        .route("/headers", get(echo_headers));
    (service_app(ctx, routes), settings, dir)
}

#[tokio::test]
async fn health_is_open_and_checks_the_database() {
    let (app, _, _dir) = app().await;
    let (status, body) = call(&app, request(Method::GET, "/health", None, &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "status": "ok" }));
}

#[tokio::test]
async fn health_reports_a_closed_database_as_503() {
    let (db, _dir) = sqlite_db().await;
    db.close().await;
    let ctx = ServiceContext {
        service: "notes",
        db,
        bus: Bus::in_process(),
        settings: settings(),
        events: Default::default(),
    };
    let app = service_app(ctx, Router::new());
    let (status, body) = call(&app, request(Method::GET, "/health", None, &[])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unavailable");
}

#[tokio::test]
async fn requests_without_internal_credential_are_401_even_with_a_spoofed_user_header() {
    let (app, _, _dir) = app().await;
    let spoofed = Uuid::now_v7().to_string();
    for path in ["/whoami", "/maybe", "/no-such-path"] {
        let (status, body) = call(
            &app,
            request(Method::GET, path, None, &[("x-user-id", &spoofed)]),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            body,
            json!({ "error": "missing or invalid internal credential" })
        );
    }
}

#[tokio::test]
async fn grpc_calls_without_internal_credential_get_the_grpc_status_unauthenticated() {
    let (app, _, _dir) = app().await;
    let call = request(
        Method::POST,
        "/shop.product.v1.ProductService/GetProduct",
        None,
        &[("content-type", "application/grpc")],
    );
    let response = tower::ServiceExt::oneshot(app, call).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "16");
    assert_eq!(
        response.headers()["grpc-message"],
        "missing%20or%20invalid%20internal%20credential"
    );
}

#[tokio::test]
async fn the_verified_identity_wins_over_client_headers() {
    let (app, settings, _dir) = app().await;
    let caller = Caller {
        user_id: Uuid::now_v7(),
        roles: vec!["user".into()],
    };
    let token = settings
        .internal_tokens
        .sign("notes", Some(&caller))
        .unwrap();
    let spoofed = Uuid::now_v7().to_string();
    let headers = [
        (INTERNAL_HEADER, token.as_str()),
        ("x-user-id", spoofed.as_str()),
        ("x-user-roles", "admin"),
    ];
    let (status, body) = call(&app, request(Method::GET, "/whoami", None, &headers)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "user_id": caller.user_id, "roles": ["user"] })
    );

    // The token does not reach handlers.
    let (_, body) = call(&app, request(Method::GET, "/headers", None, &headers)).await;
    assert_eq!(body, json!({ "internal": false }));
}

#[tokio::test]
async fn anonymous_internal_calls_reach_maybe_caller_but_not_caller() {
    let (app, settings, _dir) = app().await;
    let token = settings.internal_tokens.sign("notes", None).unwrap();
    let headers = [(INTERNAL_HEADER, token.as_str()), ("x-user-id", "spoofed")];
    let (status, body) = call(&app, request(Method::GET, "/maybe", None, &headers)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "user_id": null }));
    let (status, body) = call(&app, request(Method::GET, "/whoami", None, &headers)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({ "error": "authentication required" }));
}

#[tokio::test]
async fn a_token_for_another_service_is_refused() {
    let (app, settings, _dir) = app().await;
    let caller = Caller {
        user_id: Uuid::now_v7(),
        roles: vec![],
    };
    let token = settings
        .internal_tokens
        .sign("billing", Some(&caller))
        .unwrap();
    let (status, _) = call(
        &app,
        request(Method::GET, "/whoami", None, &[(INTERNAL_HEADER, &token)]),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_json_errors_with_a_request_id() {
    let (app, settings, _dir) = app().await;
    let token = settings.internal_tokens.sign("notes", None).unwrap();
    let (status, body) = call(
        &app,
        request(Method::GET, "/nope", None, &[(INTERNAL_HEADER, &token)]),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({ "error": "no route for GET /nope" }));
    let (status, body) = call(
        &app,
        request(
            Method::DELETE,
            "/whoami",
            None,
            &[(INTERNAL_HEADER, &token)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["error"].is_string());

    let response = tower::ServiceExt::oneshot(
        app.clone(),
        request(Method::GET, "/health", None, &[("x-request-id", "abc-123")]),
    )
    .await
    .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    let response = tower::ServiceExt::oneshot(app, request(Method::GET, "/health", None, &[]))
        .await
        .unwrap();
    assert!(!response.headers()["x-request-id"].is_empty());
}
