//! The committed generated notes system, built and driven through its gateway over HTTP:
//! embedded (one process, SQLite) and distributed (one process per service, PostgreSQL and
//! RabbitMQ on this machine). Also: the generated workspace is rustfmt-clean and passes clippy
//! with warnings denied.
//!
//! Tests that need PostgreSQL or RabbitMQ say `SKIPPED` when those are unreachable, and fail
//! instead when `SVCGEN_REQUIRE_INFRA=1` (as on CI).

mod harness;
mod support;

use harness::{Api, Distributed, Running, System, infrastructure, runtime};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn notes() -> System {
    System::committed("notes")
}

#[test]
fn generated_workspace_is_formatted_and_clippy_clean() {
    harness::assert_formatted_and_clippy_clean(&notes());
}

/// The answer must be an error with a human message.
fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, context: &str) {
    assert_eq!(status, expected, "{context}: {body}");
    assert!(
        body["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{context}: no error message in {body}"
    );
}

struct User {
    id: String,
    token: String,
}

async fn register(api: &Api, email: &str, username: &str) -> User {
    let (status, body) = api
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(
                json!({"email": email, "username": username, "password": "correct horse battery"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "register {email}: {body}");
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    User {
        id: body["user_id"].as_str().expect("user_id").into(),
        token: body["access_token"].as_str().expect("access_token").into(),
    }
}

/// Waits for the caller's notifications to hold the given kinds (events are asynchronous).
async fn notifications_until(
    api: &Api,
    token: &str,
    kinds: &[&str],
    at_least: usize,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = api
            .call(Method::GET, "/notifications", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let items = body["items"].as_array().cloned().unwrap_or_default();
        let found: Vec<&str> = items.iter().filter_map(|n| n["kind"].as_str()).collect();
        if (kinds.iter().all(|k| found.contains(k)) && items.len() >= at_least)
            || Instant::now() > deadline
        {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The documented API of the notes system, end to end. Returns alice's credentials and the id of
/// a note she still has, for checks after a restart.
async fn drive_notes_api(gateway: &str, tag: &str) -> (String, String) {
    let api = Api::new(gateway);
    let health = reqwest::get(format!("{gateway}/health"))
        .await
        .expect("health answers");
    assert_eq!(health.status(), StatusCode::OK);
    let health: Value = health.json().await.unwrap();
    for service in ["auth", "notes", "notification"] {
        assert_eq!(health["services"][service], "ok", "{health}");
    }

    // Accounts.
    let alice_email = format!("alice-{tag}@example.com");
    let alice = register(&api, &alice_email, "alice").await;
    let (status, body) = api
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(
                json!({"email": alice_email, "username": "alice2", "password": "another password"}),
            ),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "duplicate e-mail");
    let (status, body) = api
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({"email": "not-an-email", "username": "x", "password": "long enough pw"})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid e-mail");
    let (status, body) = api.call(Method::POST, "/auth/register", None, Some(json!({"email": format!("short-{tag}@example.com"), "username": "x", "password": "short"}))).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "short password");
    let (status, body) = api
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": alice_email, "password": "wrong password"})),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "wrong password");
    let (status, unknown) = api
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(
                json!({"email": format!("nobody-{tag}@example.com"), "password": "wrong password"}),
            ),
        )
        .await;
    assert_eq!(
        (status, &unknown),
        (StatusCode::UNAUTHORIZED, &body),
        "unknown e-mail and wrong password look the same"
    );
    let (status, body) = api
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": alice_email, "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let login_token = body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    assert!(body["refresh_token"].as_str().is_some());

    // Notes: authentication and validation.
    let note = json!({"title": "first", "body": "hello", "tags": ["a", "b"]});
    let (status, body) = api
        .call(Method::POST, "/notes", None, Some(note.clone()))
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "no token");
    let (status, body) = api
        .call(
            Method::POST,
            "/notes",
            Some("not.a.token"),
            Some(note.clone()),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "bad token");
    let (status, body) = api
        .call(
            Method::POST,
            "/notes",
            Some(&alice.token),
            Some(json!({"body": "no title"})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "missing title");
    let (status, body) = api
        .call(
            Method::POST,
            "/notes",
            Some(&alice.token),
            Some(json!({"title": "", "body": "empty title"})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "empty title");
    let (status, body) = api.call(Method::POST, "/notes", Some(&alice.token), Some(json!({"title": "x", "body": "y", "owner_id": "00000000-0000-0000-0000-000000000000"}))).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "a client cannot set the owner",
    );

    // Create, list newest first with pages.
    let (status, first) = api
        .call(Method::POST, "/notes", Some(&alice.token), Some(note))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["owner_id"], alice.id.as_str());
    assert_eq!(first["title"], "first");
    assert_eq!(first["tags"], json!(["a", "b"]));
    for field in ["id", "created_at", "updated_at", "body"] {
        assert!(!first[field].is_null(), "{field} missing in {first}");
    }
    for title in ["second", "third"] {
        let (status, body) = api
            .call(
                Method::POST,
                "/notes",
                Some(&login_token),
                Some(json!({"title": title, "body": "b"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(body["tags"].is_null());
    }
    let (status, page) = api
        .call(Method::GET, "/notes?limit=2", Some(&alice.token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let titles: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["third", "second"]);
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let (status, rest) = api
        .call(
            Method::GET,
            &format!("/notes?limit=2&cursor={cursor}"),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    let titles: Vec<&str> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["first"]);
    let (status, body) = api
        .call(Method::GET, "/notes?limit=0", Some(&alice.token), None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "limit 0");
    let (status, body) = api
        .call(
            Method::GET,
            "/notes?cursor=garbage",
            Some(&alice.token),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad cursor");

    // Another user sees nothing of alice's.
    let bob = register(&api, &format!("bob-{tag}@example.com"), "bob").await;
    let id = first["id"].as_str().unwrap().to_string();
    let path = format!("/notes/{id}");
    let (status, body) = api.call(Method::GET, &path, Some(&bob.token), None).await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "bob reads alice's note",
    );
    let (status, body) = api
        .call(
            Method::PATCH,
            &path,
            Some(&bob.token),
            Some(json!({"title": "mine now"})),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "bob changes alice's note",
    );
    let (status, body) = api
        .call(Method::DELETE, &path, Some(&bob.token), None)
        .await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "bob deletes alice's note",
    );
    let (status, body) = api
        .call(Method::GET, "/notes", Some(&bob.token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"], json!([]));
    let (status, body) = api
        .call(Method::GET, "/notes/not-a-uuid", Some(&alice.token), None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "malformed id");

    // A spoofed identity header changes nothing.
    let spoofed = api
        .http
        .get(format!("{}/notes", api.base))
        .bearer_auth(&bob.token)
        .header("x-user-id", &alice.id)
        .send()
        .await
        .unwrap();
    let spoofed: Value = spoofed.json().await.unwrap();
    assert_eq!(spoofed["items"], json!([]), "x-user-id must not be trusted");
    let anonymous = api
        .http
        .get(format!("{}/notes", api.base))
        .header("x-user-id", &alice.id)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // A public note: everyone reads it (the public list needs no account), only alice
    // changes it; alice finds her notes by words (any case) and by tag.
    let (status, shared) = api
        .call(
            Method::POST,
            "/notes",
            Some(&alice.token),
            Some(json!({"title": "shared", "body": "Hello, World", "tags": ["work"], "public": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{shared}");
    let shared_path = format!("/notes/{}", shared["id"].as_str().unwrap());
    let (status, body) = api
        .call(Method::GET, &shared_path, Some(&bob.token), None)
        .await;
    assert_eq!(
        (status, &body["title"]),
        (StatusCode::OK, &json!("shared")),
        "{body}"
    );
    let (status, body) = api
        .call(
            Method::PATCH,
            &shared_path,
            Some(&bob.token),
            Some(json!({"title": "mine now"})),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "bob changes alice's public note",
    );
    let (status, public_page) = api.call(Method::GET, "/public/notes", None, None).await;
    assert_eq!(status, StatusCode::OK, "{public_page}");
    let public: Vec<&str> = public_page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert!(public.contains(&"shared"), "{page}");
    assert!(
        !public.contains(&"first"),
        "private notes stay private: {page}"
    );
    for (query, expected) in [
        ("/notes?q=world", vec!["shared"]),
        ("/notes?q=WORLD%20hello", vec!["shared"]),
        ("/notes?tags=work", vec!["shared"]),
        ("/notes?tags=a", vec!["first"]),
        ("/notes?public=true", vec!["shared"]),
        ("/notes?sort=title&limit=2", vec!["first", "second"]),
        ("/notes?sort=-title&limit=2", vec!["third", "shared"]),
    ] {
        let (status, found) = api.call(Method::GET, query, Some(&alice.token), None).await;
        assert_eq!(status, StatusCode::OK, "{query}: {found}");
        let titles: Vec<&str> = found["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, expected, "{query}");
    }
    let (status, body) = api
        .call(Method::GET, "/notes?colour=red", Some(&alice.token), None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "an unknown filter");
    let (status, body) = api
        .call(Method::DELETE, &shared_path, Some(&alice.token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Read, change, delete.
    let (status, body) = api.call(Method::GET, &path, Some(&alice.token), None).await;
    assert_eq!(
        (status, body["title"].as_str()),
        (StatusCode::OK, Some("first"))
    );
    let (status, body) = api
        .call(
            Method::PATCH,
            &path,
            Some(&alice.token),
            Some(json!({"title": "renamed", "tags": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["title"].as_str(), body["body"].as_str(), &body["tags"]),
        (Some("renamed"), Some("hello"), &Value::Null)
    );
    let (status, body) = api
        .call(
            Method::PATCH,
            &path,
            Some(&alice.token),
            Some(json!({"title": "x".repeat(201)})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "title too long");
    let (status, _) = api
        .call(Method::DELETE, &path, Some(&alice.token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.call(Method::GET, &path, Some(&alice.token), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "deleted note");

    // Notifications from events: welcome after registering, login after each login.
    let items = notifications_until(&api, &alice.token, &["welcome", "login"], 2).await;
    let kinds: Vec<&str> = items.iter().filter_map(|n| n["kind"].as_str()).collect();
    assert_eq!(kinds, ["login", "welcome"], "newest first: {items:?}");
    let bob_items = notifications_until(&api, &bob.token, &["welcome"], 1).await;
    assert_eq!(bob_items.len(), 1, "bob sees only his own: {bob_items:?}");

    // Password reset: always 202; the single-use token reaches the account's owner through the
    // `user.password_reset_requested` event and the notification service.
    let (status, _) = api
        .call(
            Method::POST,
            "/auth/password-reset",
            None,
            Some(json!({"email": format!("nobody-{tag}@example.com")})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "no enumeration: unknown e-mails get 202 too"
    );
    let (status, _) = api
        .call(
            Method::POST,
            "/auth/password-reset",
            None,
            Some(json!({"email": alice_email})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let items = notifications_until(&api, &alice.token, &["password_reset"], 3).await;
    let message = items
        .iter()
        .find(|n| n["kind"] == "password_reset")
        .and_then(|n| n["message"].as_str())
        .expect("a password reset notification");
    let token = message
        .split("code is ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("the token in the message");
    let (status, body) = api
        .call(
            Method::POST,
            "/auth/password-reset/confirm",
            None,
            Some(json!({"token": token, "password": "a brand new password"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = api
        .call(
            Method::POST,
            "/auth/password-reset/confirm",
            None,
            Some(json!({"token": token, "password": "once more please"})),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "a reset token works once",
    );
    let (status, body) = api
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": alice_email, "password": "correct horse battery"})),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "the old password");
    let (status, body) = api
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": alice_email, "password": "a brand new password"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the new password: {body}");

    let kept = page["items"][0]["id"].as_str().unwrap().to_string();
    (alice_email, kept)
}

#[test]
fn embedded_mode_serves_the_whole_api_and_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let system = Running::start(
        &notes(),
        "embedded",
        &["run", "--port", "0", "--data", data_dir],
        &[],
    );
    let gateway = system.url.clone();
    let (email, kept) = runtime().block_on(drive_notes_api(&gateway, "embedded"));
    system.stop();
    for service in ["auth", "notes", "notification"] {
        assert!(
            data.path().join(format!("{service}.sqlite")).is_file(),
            "one SQLite file per service"
        );
    }

    let again = Running::start(
        &notes(),
        "embedded-again",
        &["run", "--port", "0", "--data", data_dir],
        &[],
    );
    runtime().block_on(async {
        let api = Api::new(&again.url);
        let (status, body) = api
            .call(
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"email": email, "password": "a brand new password"})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "accounts (and the reset password) survive a restart: {body}"
        );
        let token = body["access_token"].as_str().unwrap();
        let (status, body) = api
            .call(Method::GET, &format!("/notes/{kept}"), Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "notes survive a restart: {body}");
        // welcome, login, password_reset, login (new password), and this login.
        let items = notifications_until(&api, token, &["welcome", "password_reset"], 5).await;
        assert!(
            items.len() == 5,
            "notifications survive a restart: {items:?}"
        );
    });
    again.stop();
}

#[test]
fn distributed_mode_serves_the_whole_api_over_postgres_and_rabbitmq() {
    if !infrastructure(
        "distributed e2e",
        &[
            ("PostgreSQL", "127.0.0.1:5432"),
            ("RabbitMQ", "127.0.0.1:5672"),
        ],
    ) {
        return;
    }
    let run = harness::run_id("e2e");
    let env = harness::rabbitmq_env(
        &run,
        "e2e-access-secret-0123456789abcdef0123456789",
        "e2e-internal-secret-0123456789abcdef012345",
    );
    let system = Distributed::start(
        &notes(),
        run.clone(),
        &["auth", "notes", "notification"],
        &env,
        |_| Vec::new(),
    );

    runtime().block_on(async {
        drive_notes_api(&system.gateway.url, &run).await;
        // The trust boundary: a service refuses requests that did not come through the gateway.
        let notes = system.service_url("notes");
        let client = Client::new();
        let direct = client
            .get(format!("{notes}/notes"))
            .header("x-user-id", "00000000-0000-0000-0000-000000000001")
            .send()
            .await
            .unwrap();
        assert_eq!(
            direct.status(),
            StatusCode::UNAUTHORIZED,
            "a service must refuse callers without the gateway's credential"
        );
        let forged = client
            .get(format!("{notes}/notes"))
            .header("x-svcgen-internal", "forged")
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    });
    system.stop();
}

/// A client whose connections come from `127.0.0.<host>`: one client per simulated person, so
/// that the gateway's per-IP limit on credential routes sees 40 people, not one.
fn client_from(host: u8) -> Client {
    Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, host]))
        .build()
        .expect("client")
}

#[test]
fn embedded_mode_loses_no_event_when_killed_right_after_answering() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let system = Running::start(
        &notes(),
        "embedded-kill",
        &["run", "--port", "0", "--data", data_dir],
        &[],
    );
    let gateway = system.url.clone();
    let people: Vec<(u8, String)> = (0..40u8)
        .map(|i| (10 + i, format!("person{i}-kill@example.com")))
        .collect();
    runtime().block_on(async {
        let registrations = people.iter().map(|(host, email)| {
            let api = Api { http: client_from(*host), base: format!("{gateway}/api/v1") };
            async move {
                api.call(Method::POST, "/auth/register", None, Some(json!({"email": email, "username": "p", "password": "correct horse battery"})))
                    .await
            }
        });
        for (status, body) in futures_util::future::join_all(registrations).await {
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    });
    // Right after the last 201: no graceful shutdown, no chance to publish what is pending.
    system.kill();

    let again = Running::start(
        &notes(),
        "embedded-after-kill",
        &["run", "--port", "0", "--data", data_dir],
        &[],
    );
    runtime().block_on(async {
        for (host, email) in &people {
            let api = Api {
                http: client_from(*host),
                base: format!("{}/api/v1", again.url),
            };
            let (status, body) = api
                .call(
                    Method::POST,
                    "/auth/login",
                    None,
                    Some(json!({"email": email, "password": "correct horse battery"})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let token = body["access_token"].as_str().unwrap();
            let items = notifications_until(&api, token, &["welcome", "login"], 2).await;
            let welcomes = items.iter().filter(|n| n["kind"] == "welcome").count();
            assert_eq!(welcomes, 1, "{email}: exactly one welcome, got {items:?}");
        }
    });
    again.stop();
}
