//! Any service reacts to events with its own rows. In the clubs system
//! (`tests/systems/clubs.yaml`) the roster service keeps each club's roster and standing from
//! the clubs service's events, and the clubs service applies the event the roster emits back.
//! Run embedded (SQLite), then distributed on PostgreSQL and on MariaDB, each run checks:
//!
//! * `create` makes a roster entry from `club.member.joined`, with values from the event and
//!   `$now`;
//! * `upsert` by a unique key makes a club's standing once and changes it on later joins, and an
//!   `sql` statement counts the members in the same transaction;
//! * `emit` from a consumer reaches another service, whose `update` records the newest member on
//!   the club;
//! * `delete` with `where` removes the entry of a member who left, and every roster row of a
//!   deleted club;
//! * an event whose value breaks a rule of the consumer's rows (a handle too long for the roster)
//!   is dead-lettered with the rule named, and none of that event's actions is applied;
//! * a service that uses the auth capability also keeps entities of its own: the accounts
//!   service makes each account's profile from its own `user.registered`, and serves it beside
//!   the capability's routes.
//!
//! The distributed tests skip with a message when a server is down, and fail instead when
//! `SVCGEN_REQUIRE_INFRA=1` (as on CI).

mod harness;
mod support;

use harness::{Api, CLUBS, Running, SystemRun, admin_env, clubs, only_for, register, runtime};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ADMIN_EMAIL: &str = "roster-admin@example.com";
const ADMIN_PASSWORD: &str = "roster admin password";

fn admin() -> Vec<(String, String)> {
    admin_env(ADMIN_EMAIL, ADMIN_PASSWORD)
}

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

/// Reads `path` until `done` holds for its body (events are applied asynchronously); the body.
async fn eventually(
    api: &Api,
    token: &str,
    path: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = expect(api, token, Method::GET, path, None, StatusCode::OK).await;
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never happened; last {path}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The items of a list answer that belong to `club`.
fn of_club<'v>(page: &'v Value, club: &str) -> Vec<&'v Value> {
    page["items"]
        .as_array()
        .expect("a page of items")
        .iter()
        .filter(|item| item["club_id"] == club)
        .collect()
}

/// A new member of `club`.
async fn join(api: &Api, token: &str, club: &str, handle: &str, role: &str) -> Value {
    let body = json!({"club_id": club, "handle": handle, "role": role});
    expect(
        api,
        token,
        Method::POST,
        "/members",
        Some(body),
        StatusCode::CREATED,
    )
    .await
}

async fn consumers_apply(gateway: &str, tag: &str) {
    let api = Api::new(gateway);
    let username = format!("roster-{tag}");
    let (user_id, token) = register(&api, &format!("{username}@example.com")).await;
    let token = token.as_str();

    // The auth service's own entity, made from its own event.
    let profiles = eventually(
        &api,
        token,
        "/profiles",
        "the new account's profile",
        |page| {
            page["items"]
                .as_array()
                .is_some_and(|items| items.len() == 1)
        },
    )
    .await;
    let profile = &profiles["items"][0];
    assert_eq!(profile["user_id"], user_id.as_str(), "{tag}: {profile}");
    assert_eq!(
        profile["display_name"],
        username.as_str(),
        "{tag}: {profile}"
    );
    assert_eq!(profile["bio"], "", "{tag}: the default: {profile}");
    let changed = expect(
        &api,
        token,
        Method::PATCH,
        &format!("/profiles/{}", profile["id"].as_str().unwrap()),
        Some(json!({"bio": "Reads everything."})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["bio"], "Reads everything.", "{tag}: {changed}");
    let club = expect(
        &api,
        token,
        Method::POST,
        "/clubs",
        Some(json!({"name": "Readers"})),
        StatusCode::CREATED,
    )
    .await;
    let club_id = club["id"].as_str().unwrap().to_owned();
    assert_eq!(
        club["version"], 1,
        "{tag}: a new row is at version 1: {club}"
    );
    // create + upsert + sql + emit, all from one `club.member.joined`.
    let ada = join(&api, token, &club_id, "ada", "captain").await;
    let entries = eventually(&api, token, "/entries", "ada's roster entry", |page| {
        of_club(page, &club_id).len() == 1
    })
    .await;
    let entry = of_club(&entries, &club_id)[0];
    assert_eq!(entry["member_id"], ada["id"], "{tag}: {entry}");
    assert_eq!(entry["handle"], "ada", "{tag}: {entry}");
    assert_eq!(entry["role"], "captain", "{tag}: {entry}");
    let listed: chrono::DateTime<chrono::Utc> =
        entry["listed_at"].as_str().unwrap().parse().unwrap();
    let created: chrono::DateTime<chrono::Utc> =
        ada["created_at"].as_str().unwrap().parse().unwrap();
    assert!(
        listed >= created,
        "{tag}: listed at the time the event was applied: {entry}"
    );
    let standings = eventually(&api, token, "/standings", "the club's standing", |page| {
        of_club(page, &club_id).len() == 1
    })
    .await;
    let standing = of_club(&standings, &club_id)[0];
    assert_eq!(standing["members"], 1, "{tag}: {standing}");
    assert_eq!(standing["last_handle"], "ada", "{tag}: {standing}");
    // The database counts every change, the consumer's own SQL included: made by the upsert
    // (1), then counted up by the statement (2).
    assert_eq!(standing["version"], 2, "{tag}: {standing}");
    let club_path = format!("/clubs/{club_id}");
    let club = eventually(
        &api,
        token,
        &club_path,
        "the roster's event applied to the club",
        |club| club["newest_member"] == "ada",
    )
    .await;
    assert!(club["active_at"].is_string(), "{tag}: {club}");
    assert_eq!(
        club["version"], 2,
        "{tag}: the consumer's update counts: {club}"
    );

    // A second join changes the one standing row instead of adding one.
    let grace = join(&api, token, &club_id, "grace", "coach").await;
    let standings = eventually(&api, token, "/standings", "grace counted", |page| {
        of_club(page, &club_id)
            .first()
            .is_some_and(|s| s["members"] == 2)
    })
    .await;
    let standing = of_club(&standings, &club_id);
    assert_eq!(
        standing.len(),
        1,
        "{tag}: one standing per club: {standings}"
    );
    assert_eq!(standing[0]["last_handle"], "grace", "{tag}: {standings}");
    // The upsert's update and the statement: two more changes.
    assert_eq!(standing[0]["version"], 4, "{tag}: {standings}");
    eventually(
        &api,
        token,
        &club_path,
        "grace is the newest member",
        |club| club["newest_member"] == "grace",
    )
    .await;

    // A handle the clubs accept but the roster does not: the event is dead-lettered, naming
    // the rule, and none of its actions is applied (the count stays 2).
    let long = join(&api, token, &club_id, "a-handle-of-25-characters", "member").await;
    let (status, admin) = api
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tag}: the admin signs in: {admin}");
    let admin = admin["access_token"].as_str().unwrap().to_owned();
    let letters = eventually(
        &api,
        &admin,
        "/admin/roster/dead-letters",
        "the rejected event dead-lettered",
        |letters| {
            letters.as_array().is_some_and(|l| {
                l.iter()
                    .any(|letter| letter["envelope"]["data"]["member_id"] == long["id"])
            })
        },
    )
    .await;
    let letter = letters
        .as_array()
        .unwrap()
        .iter()
        .find(|letter| letter["envelope"]["data"]["member_id"] == long["id"])
        .unwrap();
    let error = letter["error"].as_str().unwrap();
    assert!(
        error.contains("handle"),
        "{tag}: the rule is named: {letter}"
    );
    assert_eq!(
        letter["attempts"], 1,
        "{tag}: a broken rule is not retried: {letter}"
    );
    let entries = expect(&api, token, Method::GET, "/entries", None, StatusCode::OK).await;
    assert_eq!(of_club(&entries, &club_id).len(), 2, "{tag}: {entries}");
    let standings = expect(&api, token, Method::GET, "/standings", None, StatusCode::OK).await;
    assert_eq!(
        of_club(&standings, &club_id)[0]["members"],
        2,
        "{tag}: {standings}"
    );

    // delete + sql from `club.member.left`.
    expect(
        &api,
        token,
        Method::DELETE,
        &format!("/members/{}", ada["id"].as_str().unwrap()),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    let entries = eventually(&api, token, "/entries", "ada's entry removed", |page| {
        of_club(page, &club_id).len() == 1
    })
    .await;
    assert_eq!(
        of_club(&entries, &club_id)[0]["member_id"],
        grace["id"],
        "{tag}: {entries}"
    );
    eventually(&api, token, "/standings", "ada no longer counted", |page| {
        of_club(page, &club_id)
            .first()
            .is_some_and(|s| s["members"] == 1)
    })
    .await;

    // Deleting the club cascades to its members in the clubs store; its `club.deleted` clears
    // the roster.
    expect(
        &api,
        token,
        Method::DELETE,
        &club_path,
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    eventually(
        &api,
        token,
        "/entries",
        "the club's entries removed",
        |page| of_club(page, &club_id).is_empty(),
    )
    .await;
    eventually(
        &api,
        token,
        "/standings",
        "the club's standing removed",
        |page| of_club(page, &club_id).is_empty(),
    )
    .await;
}

#[test]
fn embedded_sqlite_consumers_keep_their_own_rows() {
    let system = clubs("postgres");
    let data = tempfile::tempdir().unwrap();
    let running = Running::start(
        &system,
        "roster-embedded",
        &[
            "run",
            "--port",
            "0",
            "--data",
            data.path().to_str().unwrap(),
        ],
        &admin(),
    );
    runtime().block_on(consumers_apply(&running.url, "embedded"));
    running.stop();
}

/// The secrets of the distributed runs: access tokens, internal credentials.
const SECRETS: (&str, &str) = (
    "roster-access-secret-0123456789abcdef0123",
    "roster-internal-secret-0123456789abcdef01",
);

#[test]
fn distributed_postgres_consumers_keep_their_own_rows() {
    let Some(run) = SystemRun::start(
        &CLUBS,
        "postgres",
        "distributed roster on PostgreSQL",
        SECRETS,
        only_for("accounts", admin()),
    ) else {
        return;
    };
    runtime().block_on(consumers_apply(&run.system.gateway.url, &run.system.run));
    run.stop();
}

#[test]
fn distributed_mariadb_consumers_keep_their_own_rows() {
    let Some(run) = SystemRun::start(
        &CLUBS,
        "mysql",
        "distributed roster on MariaDB",
        SECRETS,
        only_for("accounts", admin()),
    ) else {
        return;
    };
    runtime().block_on(consumers_apply(&run.system.gateway.url, &run.system.run));
    run.stop();
}
