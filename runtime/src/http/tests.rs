use axum::Router;
use axum::http::Method;
use axum::routing::{get, post};
use serde_json::json;

use super::*;
use crate::test_support::{call, request};

#[derive(Debug, Deserialize, Serialize)]
struct NewNote {
    title: String,
    pinned: bool,
}

async fn create(Json(note): Json<NewNote>) -> Json<NewNote> {
    Json(note)
}

async fn show(IdPath(id): IdPath) -> String {
    id.to_string()
}

async fn list(page: Page) -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "limit": page.limit, "after": page.after.map(|c| c.id) }))
}

async fn nested(params: PathParams) -> ApiResult<String> {
    let post = params.uuid("post_id")?;
    let n = params.int("n")?;
    let kind = params.word("kind", &["a", "b"])?;
    Ok(format!("{post} {n} {kind} {}", params.text("kind")?))
}

fn app() -> Router {
    Router::new()
        .route("/posts/{post_id}/items/{n}/{kind}", get(nested))
        .route("/notes", post(create).get(list))
        .route("/notes/{id}", get(show))
        .route("/users/{user_id}/notes/{id}", get(show))
        .route("/tags/{tag}", get(show))
}

#[tokio::test]
async fn json_accepts_a_valid_body() {
    let body = json!({ "title": "hello", "pinned": true });
    let (status, answer) = call(
        &app(),
        request(Method::POST, "/notes", Some(body.clone()), &[]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, body);
}

#[tokio::test]
async fn json_missing_field_is_a_400_with_the_serde_message() {
    let (status, body) = call(
        &app(),
        request(Method::POST, "/notes", Some(json!({ "pinned": true })), &[]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"].as_str().expect("error message");
    assert!(
        message.starts_with("invalid request body: missing field `title`"),
        "{message}"
    );
}

#[tokio::test]
async fn json_wrong_type_malformed_json_and_missing_content_type_are_400s() {
    let wrong_type = request(
        Method::POST,
        "/notes",
        Some(json!({ "title": 5, "pinned": true })),
        &[],
    );
    let (status, body) = call(&app(), wrong_type).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("invalid type"),
        "{body}"
    );

    let malformed = axum::http::Request::post("/notes")
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{\"title\": "))
        .unwrap();
    let (status, body) = call(&app(), malformed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid request body: "),
        "{body}"
    );

    let no_content_type = axum::http::Request::post("/notes")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let (status, body) = call(&app(), no_content_type).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        "invalid request body: expected `Content-Type: application/json`"
    );

    let vendor_json = axum::http::Request::post("/notes")
        .header("content-type", "application/vnd.api+json; charset=utf-8")
        .body(axum::body::Body::from(r#"{"title":"t","pinned":false}"#))
        .unwrap();
    assert_eq!(call(&app(), vendor_json).await.0, StatusCode::OK);
}

#[tokio::test]
async fn id_path_parses_uuids_and_rejects_garbage_with_a_400() {
    let id = Uuid::now_v7();
    let (status, body) = call(
        &app(),
        request(Method::GET, &format!("/notes/{id}"), None, &[]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!(id.to_string()));

    let (status, body) = call(&app(), request(Method::GET, "/notes/xyz", None, &[])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({ "error": "malformed id `xyz`" }));

    // With several parameters, `id` is the one read.
    let (status, _) = call(
        &app(),
        request(Method::GET, &format!("/users/nope/notes/{id}"), None, &[]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A single parameter of another name works too.
    let (status, _) = call(
        &app(),
        request(Method::GET, &format!("/tags/{id}"), None, &[]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Echoed input is shortened.
    let long = "x".repeat(500);
    let (_, body) = call(
        &app(),
        request(Method::GET, &format!("/notes/{long}"), None, &[]),
    )
    .await;
    assert!(body["error"].as_str().unwrap().len() < 100, "{body}");
}

#[tokio::test]
async fn page_defaults_and_limits() {
    let (status, body) = call(&app(), request(Method::GET, "/notes", None, &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "limit": 20, "after": null }));

    let (_, body) = call(
        &app(),
        request(Method::GET, "/notes?limit=100&other=1", None, &[]),
    )
    .await;
    assert_eq!(body["limit"], 100);

    for bad in ["0", "101", "-1", "ten", "1.5"] {
        let (status, body) = call(
            &app(),
            request(Method::GET, &format!("/notes?limit={bad}"), None, &[]),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            body["error"], "limit must be an integer from 1 to 100",
            "{bad}"
        );
    }
}

#[tokio::test]
async fn cursor_round_trips_through_the_query_and_bad_ones_are_400s() {
    let cursor = Cursor {
        created_at: Utc::now(),
        id: Uuid::now_v7(),
    };
    let uri = format!("/notes?limit=5&cursor={}", cursor.encode());
    let (status, body) = call(&app(), request(Method::GET, &uri, None, &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "limit": 5, "after": cursor.id }));

    for bad in [
        "garbage!",
        "bm90IGEgY3Vyc29y",
        "MjAyNC0wMS0wMXxub3QtYS11dWlk",
    ] {
        let (status, body) = call(
            &app(),
            request(Method::GET, &format!("/notes?cursor={bad}"), None, &[]),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid cursor"),
            "{body}"
        );
    }
}

#[test]
fn cursor_encoding_is_lossless_at_microsecond_precision() {
    let created_at = DateTime::parse_from_rfc3339("2024-03-04T05:06:07.123456Z")
        .unwrap()
        .to_utc();
    let cursor = Cursor {
        created_at,
        id: Uuid::now_v7(),
    };
    let encoded = cursor.encode();
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "URL-safe: {encoded}"
    );
    assert_eq!(Cursor::decode(&encoded).unwrap(), cursor);
}

#[test]
fn paginated_sets_the_next_cursor_only_on_full_pages() {
    let rows: Vec<(DateTime<Utc>, Uuid)> = (0..3).map(|_| (Utc::now(), Uuid::now_v7())).collect();
    let key = |row: &(DateTime<Utc>, Uuid)| Cursor {
        created_at: row.0,
        id: row.1,
    };

    let full = Paginated::new(rows.clone(), 3, key);
    let next = Cursor::decode(
        full.next_cursor
            .as_deref()
            .expect("full page has a next cursor"),
    )
    .unwrap();
    assert_eq!(next.id, rows[2].1);

    let partial = Paginated::new(rows[..2].to_vec(), 3, key);
    assert_eq!(partial.next_cursor, None);
    let empty = Paginated::new(Vec::new(), 3, key);
    assert_eq!(empty.next_cursor, None);
}

#[test]
fn first_page_key_sorts_above_real_rows() {
    let key = Page::default().before_key();
    assert!(sqlite_timestamp(&key.created_at) > sqlite_timestamp(&Utc::now()));
    assert_eq!(key.id, Uuid::max());
}

#[tokio::test]
async fn api_errors_render_as_json_and_hide_internal_details() {
    let response = ApiError::internal("connection refused to 10.0.0.5").into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
        json!({ "error": "internal error" })
    );

    let cases = [
        (ApiError::bad_request("b"), 400),
        (ApiError::unauthorized("u"), 401),
        (ApiError::forbidden("f"), 403),
        (ApiError::not_found("n"), 404),
        (ApiError::conflict("c"), 409),
    ];
    for (error, status) in cases {
        assert_eq!(error.status().as_u16(), status);
    }
}

#[test]
fn db_errors_map_to_409_or_500() {
    let error: ApiError = DbError::decode("x", "broken").into();
    assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error.message(), "internal error");
}

#[tokio::test]
async fn path_params_are_read_as_their_fields_types() {
    let id = uuid::Uuid::now_v7();
    let (status, _) = call(
        &app(),
        request(Method::GET, &format!("/posts/{id}/items/3/a"), None, &[]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for (path, message) in [
        ("/posts/x/items/3/a".to_owned(), "malformed post_id `x`"),
        (
            format!("/posts/{id}/items/three/a"),
            "n must be a whole number, not `three`",
        ),
        (format!("/posts/{id}/items/3/c"), "kind must be one of a, b"),
    ] {
        let (status, answer) = call(&app(), request(Method::GET, &path, None, &[])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(answer["error"], message, "{path}");
    }
}
