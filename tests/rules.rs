//! Field rules hold on every store engine, in the API and in the database. The clubs system
//! (`tests/systems/clubs.yaml`) runs embedded (SQLite), then distributed with its clubs service
//! on PostgreSQL and on MariaDB, and each run checks the same answers:
//!
//! * defaults fill in what a create leaves out (`$now + 365d` computed at the create);
//! * a value outside its `int` range or `enum` is a 400 naming the field, on create and patch;
//! * a taken unique field, or composite key, is a 409 naming its fields;
//! * a reference to a row that does not exist is a 400 naming the field;
//! * deleting a row that a `restrict` reference names is a 409; `cascade` deletes the rows
//!   that name it, `set_null` clears their field;
//! * none of it is ever a 500;
//! * every row has a version, answered as its `ETag`; a change or delete sent with `If-Match`
//!   applies only to the version named (412 otherwise), also when eight clients race.
//!
//! The distributed tests skip with a message when a server is down, and fail instead when
//! `SVCGEN_REQUIRE_INFRA=1` (as on CI).

mod harness;
mod support;

use harness::{Api, CLUBS, Running, SystemRun, clubs, register, runtime};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// One call that must answer `expected`; its body.
async fn expect(
    api: &Api,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    expected: StatusCode,
) -> Value {
    let (status, answer) = api.call(method.clone(), path, Some(token), body).await;
    assert_eq!(status, expected, "{method} {path}: {answer}");
    answer
}

/// The error message of a 4xx answer.
fn message(answer: &Value) -> &str {
    answer["error"].as_str().unwrap_or_default()
}

async fn rules_hold(gateway: &str, tag: &str) {
    let api = Api::new(gateway);
    let (_, token) = register(&api, &format!("rules-{tag}@example.com")).await;
    let token = token.as_str();

    // Defaults fill in what is left out; the computed one is a year after the create.
    let chess = expect(
        &api,
        token,
        Method::POST,
        "/clubs",
        Some(json!({"name": "Chess"})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(chess["kind"], "other", "{tag}: {chess}");
    assert_eq!(chess["capacity"], 30, "{tag}: {chess}");
    assert_eq!(chess["open"], true, "{tag}: {chess}");
    assert_eq!(chess["motto"], "All welcome", "{tag}: {chess}");
    assert_eq!(chess["founded_year"], Value::Null, "{tag}: {chess}");
    let created: chrono::DateTime<chrono::Utc> =
        chess["created_at"].as_str().unwrap().parse().unwrap();
    let renews: chrono::DateTime<chrono::Utc> =
        chess["renews_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        renews - created,
        chrono::TimeDelta::days(365),
        "{tag}: {chess}"
    );
    let chess_id = chess["id"].as_str().unwrap().to_owned();
    let read = expect(
        &api,
        token,
        Method::GET,
        &format!("/clubs/{chess_id}"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read, chess, "{tag}: the stored row is the one answered");

    // Ranges and enums: 400 naming each field, on create and on patch.
    let bad = expect(
        &api,
        token,
        Method::POST,
        "/clubs",
        Some(json!({"name": "Opera", "capacity": 0, "kind": "opera", "founded_year": 1700})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let text = message(&bad);
    for field in ["capacity", "kind", "founded_year"] {
        assert!(text.contains(field), "{tag}: {text}");
    }
    let bad = expect(
        &api,
        token,
        Method::PATCH,
        &format!("/clubs/{chess_id}"),
        Some(json!({"capacity": 501})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(message(&bad), "capacity must be between 1 and 500", "{tag}");

    // A unique field: 409 naming it, on create and on a patch that takes another's name.
    let taken = expect(
        &api,
        token,
        Method::POST,
        "/clubs",
        Some(json!({"name": "Chess", "kind": "games"})),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(
        message(&taken),
        "a club with this name already exists",
        "{tag}"
    );
    let go = expect(
        &api,
        token,
        Method::POST,
        "/clubs",
        Some(json!({"name": "Go", "kind": "games", "capacity": 12, "open": false, "founded_year": 1990})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (
            go["kind"].clone(),
            go["capacity"].clone(),
            go["open"].clone()
        ),
        (json!("games"), json!(12), json!(false)),
        "{tag}"
    );
    let go_id = go["id"].as_str().unwrap().to_owned();
    let taken = expect(
        &api,
        token,
        Method::PATCH,
        &format!("/clubs/{go_id}"),
        Some(json!({"name": "Chess"})),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(
        message(&taken),
        "a club with this name already exists",
        "{tag}"
    );

    // A reference to nothing: 400 naming the field.
    let nowhere = expect(
        &api,
        token,
        Method::POST,
        "/members",
        Some(json!({"club_id": uuid::Uuid::new_v4(), "handle": "ghost"})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(message(&nowhere).contains("club_id"), "{tag}: {nowhere}");

    // A composite key: the same handle twice in one club is a 409, in another club fine.
    let ada = expect(
        &api,
        token,
        Method::POST,
        "/members",
        Some(json!({"club_id": chess_id, "handle": "ada"})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (ada["role"].clone(), ada["rank"].clone()),
        (json!("member"), json!(0)),
        "{tag}"
    );
    let ada_id = ada["id"].as_str().unwrap().to_owned();
    let twice = expect(
        &api,
        token,
        Method::POST,
        "/members",
        Some(json!({"club_id": chess_id, "handle": "ada", "role": "coach"})),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(
        message(&twice).contains("club_id, handle"),
        "{tag}: {twice}"
    );
    let bad_role = expect(
        &api,
        token,
        Method::POST,
        "/members",
        Some(json!({"club_id": chess_id, "handle": "bob", "role": "king", "rank": -1})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        message(&bad_role),
        "role must be one of member, captain, coach; rank must be at least 0",
        "{tag}"
    );
    expect(
        &api,
        token,
        Method::POST,
        "/members",
        Some(json!({"club_id": go_id, "handle": "ada"})),
        StatusCode::CREATED,
    )
    .await;
    let bob = expect(
        &api,
        token,
        Method::POST,
        "/members",
        Some(json!({"club_id": chess_id, "handle": "bob", "role": "captain", "mentor_id": ada_id})),
        StatusCode::CREATED,
    )
    .await;
    let bob_id = bob["id"].as_str().unwrap().to_owned();
    let mentor_nowhere = expect(
        &api,
        token,
        Method::PATCH,
        &format!("/members/{bob_id}"),
        Some(json!({"mentor_id": uuid::Uuid::new_v4()})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        message(&mentor_nowhere).contains("mentor_id"),
        "{tag}: {mentor_nowhere}"
    );

    // set_null: deleting the mentor clears the field of the members it mentored.
    expect(
        &api,
        token,
        Method::DELETE,
        &format!("/members/{ada_id}"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    let bob = expect(
        &api,
        token,
        Method::GET,
        &format!("/members/{bob_id}"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bob["mentor_id"], Value::Null, "{tag}: {bob}");

    // restrict: a club with a meeting cannot go; without it, its members go with it.
    let meeting = expect(
        &api,
        token,
        Method::POST,
        "/meetings",
        Some(json!({"club_id": chess_id, "topic": "Openings"})),
        StatusCode::CREATED,
    )
    .await;
    let refused = expect(
        &api,
        token,
        Method::DELETE,
        &format!("/clubs/{chess_id}"),
        None,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(message(&refused).contains("meeting"), "{tag}: {refused}");
    expect(
        &api,
        token,
        Method::GET,
        &format!("/members/{bob_id}"),
        None,
        StatusCode::OK,
    )
    .await;
    let meeting_id = meeting["id"].as_str().unwrap();
    expect(
        &api,
        token,
        Method::DELETE,
        &format!("/meetings/{meeting_id}"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect(
        &api,
        token,
        Method::DELETE,
        &format!("/clubs/{chess_id}"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect(
        &api,
        token,
        Method::GET,
        &format!("/members/{bob_id}"),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(
        &api,
        token,
        Method::GET,
        &format!("/clubs/{go_id}"),
        None,
        StatusCode::OK,
    )
    .await;
}

/// A versioned change: status, the answer's `ETag`, its body.
async fn versioned(
    api: &Api,
    token: &str,
    method: Method,
    path: &str,
    if_match: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let headers: Vec<(&str, &str)> = if_match.map(|tag| ("if-match", tag)).into_iter().collect();
    let (status, headers, body) = api
        .call_with(method, path, Some(token), &headers, body)
        .await;
    let etag = headers
        .get("etag")
        .map(|value| value.to_str().unwrap().to_owned());
    (status, etag, body)
}

/// Optimistic concurrency: every row has a version, answered as its ETag; a change sent with
/// `If-Match` applies only to the version it names.
async fn versions_hold(gateway: &str, tag: &str) {
    let api = Api::new(gateway);
    let (_, token) = register(&api, &format!("versions-{tag}@example.com")).await;
    let token = token.as_str();
    let club = expect(
        &api,
        token,
        Method::POST,
        "/clubs",
        Some(json!({"name": "Versioned"})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(club["version"], 1, "{tag}: {club}");
    let path = format!("/clubs/{}", club["id"].as_str().unwrap());
    let (status, etag, _) = versioned(&api, token, Method::GET, &path, None, None).await;
    assert_eq!(
        (status, etag.as_deref()),
        (StatusCode::OK, Some("\"1\"")),
        "{tag}"
    );

    // The version read: the change applies, and the answer has the next one.
    let (status, etag, body) = versioned(
        &api,
        token,
        Method::PATCH,
        &path,
        Some("\"1\""),
        Some(json!({"motto": "Second"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tag}: {body}");
    assert_eq!(etag.as_deref(), Some("\"2\""), "{tag}");
    assert_eq!(body["version"], 2, "{tag}: {body}");

    // A stale version: 412, and nothing changes.
    let (status, _, body) = versioned(
        &api,
        token,
        Method::PATCH,
        &path,
        Some("\"1\""),
        Some(json!({"motto": "Lost update"})),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{tag}: {body}");
    assert_eq!(
        message(&body),
        "the club is at version 2, which If-Match does not name",
        "{tag}"
    );
    let (_, _, row) = versioned(&api, token, Method::GET, &path, None, None).await;
    assert_eq!(row["motto"], "Second", "{tag}: {row}");
    assert_eq!(row["version"], 2, "{tag}: {row}");

    // A list names any of its versions; weak tags never match; `*` asks only that the row
    // exist; a value that is not a list of tags is a 400; no If-Match applies as before.
    for (if_match, expected) in [
        (Some("\"1\", \"2\""), StatusCode::OK),
        (Some("W/\"3\""), StatusCode::PRECONDITION_FAILED),
        (Some("3"), StatusCode::BAD_REQUEST),
        (Some("*"), StatusCode::OK),
        (None, StatusCode::OK),
    ] {
        let (status, _, body) = versioned(
            &api,
            token,
            Method::PATCH,
            &path,
            if_match,
            Some(json!({"capacity": 40})),
        )
        .await;
        assert_eq!(status, expected, "{tag}: If-Match {if_match:?}: {body}");
    }

    // Eight clients that read version 5 change it at once: one wins, the others get 412.
    let racers = (0..8).map(|i| {
        let (api, path) = (&api, &path);
        async move {
            versioned(
                api,
                token,
                Method::PATCH,
                path,
                Some("\"5\""),
                Some(json!({"capacity": 50 + i})),
            )
            .await
            .0
        }
    });
    let mut statuses = futures_util::future::join_all(racers).await;
    statuses.sort();
    let mut expected = vec![StatusCode::PRECONDITION_FAILED; 7];
    expected.insert(0, StatusCode::OK);
    assert_eq!(statuses, expected, "{tag}");
    let (_, etag, _) = versioned(&api, token, Method::GET, &path, None, None).await;
    assert_eq!(etag.as_deref(), Some("\"6\""), "{tag}");

    // Deletes, of a route that emits (it reads the row first) and of one that emits nothing
    // (it reads the row only to compare versions): a stale version keeps the row, the version
    // read deletes it, and a missing row is a 404 whatever If-Match says.
    let other = expect(
        &api,
        token,
        Method::POST,
        "/clubs",
        Some(json!({"name": "Versioned too"})),
        StatusCode::CREATED,
    )
    .await;
    let meeting = expect(
        &api,
        token,
        Method::POST,
        "/meetings",
        Some(json!({"club_id": other["id"], "topic": "Tags"})),
        StatusCode::CREATED,
    )
    .await;
    let meeting_path = format!("/meetings/{}", meeting["id"].as_str().unwrap());
    let missing = format!("/clubs/{}", uuid::Uuid::now_v7());
    for (path, if_match, expected) in [
        (&path, "\"5\"", StatusCode::PRECONDITION_FAILED),
        (&path, "\"6\"", StatusCode::NO_CONTENT),
        (&missing, "*", StatusCode::NOT_FOUND),
        (&meeting_path, "\"2\"", StatusCode::PRECONDITION_FAILED),
        (&meeting_path, "\"1\"", StatusCode::NO_CONTENT),
        (&meeting_path, "\"1\"", StatusCode::NOT_FOUND),
    ] {
        let (status, _, body) =
            versioned(&api, token, Method::DELETE, path, Some(if_match), None).await;
        assert_eq!(
            status, expected,
            "{tag}: DELETE {path} If-Match {if_match}: {body}"
        );
    }
}

#[test]
fn embedded_sqlite_enforces_every_field_rule() {
    let system = clubs("postgres");
    let data = tempfile::tempdir().unwrap();
    let running = Running::embedded(&system, "clubs-embedded", data.path());
    runtime().block_on(rules_hold(&running.url, "embedded"));
    runtime().block_on(versions_hold(&running.url, "embedded"));
    running.stop();
}

/// The secrets of the distributed runs: access tokens, internal credentials.
const SECRETS: (&str, &str) = (
    "clubs-access-secret-0123456789abcdef0123",
    "clubs-internal-secret-0123456789abcdef01",
);

#[test]
fn distributed_postgres_enforces_every_field_rule() {
    let Some(run) = SystemRun::start(
        &CLUBS,
        "postgres",
        "distributed clubs on PostgreSQL",
        SECRETS,
        |_| Vec::new(),
    ) else {
        return;
    };
    runtime().block_on(rules_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(versions_hold(&run.system.gateway.url, &run.system.run));
    run.stop();
}

#[test]
fn distributed_mariadb_enforces_every_field_rule() {
    let Some(run) = SystemRun::start(
        &CLUBS,
        "mysql",
        "distributed clubs on MariaDB",
        SECRETS,
        |_| Vec::new(),
    ) else {
        return;
    };
    runtime().block_on(rules_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(versions_hold(&run.system.gateway.url, &run.system.run));
    run.stop();
}
