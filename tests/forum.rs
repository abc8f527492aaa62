//! The forum (`tests/systems/forum.yaml`), the system that puts the spec language's building
//! blocks together, run embedded (SQLite) and distributed with its posts store on PostgreSQL
//! and on MariaDB. Each run checks the same answers:
//!
//! * the accounts service (the auth capability with an entity of its own) makes each member's
//!   profile from its own `user.registered`; field rules answer 400 naming the field, a taken
//!   unique key 409, a missing reference 400; a stale `If-Match` 412;
//! * access beyond owner-only: a draft is its author's alone (404 to others, anonymous callers
//!   included), a published post everyone's to read but only its author's to change (403), a
//!   member's own list has their drafts, moderators and admins (`managers`) read, change and
//!   delete every post; a bookmark is private to its member and admins; an announcement is read
//!   by every member and changed by its author alone;
//! * lists people expect: filters on a uuid, an enum, number ranges, a list of tags and
//!   creation times; search that ranks the better match first and ignores case; sort on text
//!   and numbers either way; cursors that page through every order without a row lost or
//!   repeated; a total on request; and a 400 naming anything unknown or malformed;
//! * routes on any path: comments under their post, made and read only under a post the
//!   caller can see, and not found under another post; fifty concurrent likes of one member
//!   make one row (one 201, the others 200), a like is taken back by its path, and deleting a
//!   post takes its comments and likes with it; publishing is an action route that applies to
//!   a draft once (409 after), by its author only;
//! * scheduled jobs: a draft whose publish time has come is published by the posts service's
//!   job, run by an admin through its route (recorded with its outcome) and by its schedule;
//! * calls from consumers and jobs: a consumer of `post.published` asks the posts service for
//!   the author's count of published posts and keeps it on their profile; a job asks it for a
//!   census of the posts and records it; an action route's step asks it for a recount, which
//!   the row takes;
//! * routes backed by RPCs: named SQL queries answer with the request from the path, the query
//!   string (checked, unknown parameters refused) or the JSON body, and a route of the
//!   accounts service answers with the posts service's RPC for the signed-in caller.
//!
//! The distributed tests skip with a message when a server is down, and fail instead when
//! `SVCGEN_REQUIRE_INFRA=1` (as on CI).

#[path = "forum/access.rs"]
mod access;
#[path = "forum/calls.rs"]
mod calls;
mod harness;
#[path = "forum/jobs.rs"]
mod jobs;
#[path = "forum/lists.rs"]
mod lists;
#[path = "forum/paths.rs"]
mod paths;
#[path = "forum/rpc_routes.rs"]
mod rpc_routes;
#[path = "forum/rules.rs"]
mod rules;
mod support;

use harness::{Api, FORUM, SystemRun, admin_env, only_for, register, runtime};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN_EMAIL: &str = "forum-admin@example.com";
const ADMIN_PASSWORD: &str = "forum admin password";

fn admin() -> Vec<(String, String)> {
    admin_env(ADMIN_EMAIL, ADMIN_PASSWORD)
}

/// One call that must answer `expected`; its body.
async fn expect(
    api: &Api,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
    expected: StatusCode,
) -> Value {
    let (status, answer) = api.call(method.clone(), path, token, body).await;
    assert_eq!(status, expected, "{method} {path}: {answer}");
    answer
}

/// The ids of a page's items, in order.
fn ids(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect()
}

/// Publishes a new post of `token`'s member; the post.
async fn published(api: &Api, token: Option<&str>, title: &str) -> Value {
    let post = expect(
        api,
        token,
        Method::POST,
        "/posts",
        Some(json!({"title": title, "body": "Published."})),
        StatusCode::CREATED,
    )
    .await;
    let path = format!("/posts/{}/publish", post["id"].as_str().unwrap());
    expect(api, token, Method::POST, &path, None, StatusCode::OK).await
}

async fn admin_token(api: &Api) -> String {
    let login = expect(
        api,
        None,
        Method::POST,
        "/auth/login",
        Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
        StatusCode::OK,
    )
    .await;
    login["access_token"].as_str().unwrap().to_owned()
}

#[test]
fn embedded_sqlite_forum() {
    let data = tempfile::tempdir().unwrap();
    let running = FORUM.embedded(data.path(), &admin());
    runtime().block_on(rules::rules_hold(&running.url, "embedded"));
    runtime().block_on(access::access_holds(&running.url, "embedded"));
    runtime().block_on(lists::lists_hold(&running.url, "embedded"));
    runtime().block_on(paths::paths_hold(&running.url, "embedded"));
    runtime().block_on(jobs::jobs_hold(&running.url, "embedded"));
    runtime().block_on(calls::calls_hold(&running.url, "embedded"));
    runtime().block_on(calls::steps_hold(&running.url, "embedded"));
    runtime().block_on(rpc_routes::rpc_routes_hold(&running.url, "embedded"));
    running.stop();
}

/// The secrets of the distributed runs: access tokens, internal credentials.
const SECRETS: (&str, &str) = (
    "forum-access-secret-0123456789abcdef01234",
    "forum-internal-secret-0123456789abcdef012",
);

#[test]
fn distributed_postgres_forum() {
    let Some(run) = SystemRun::start(
        &FORUM,
        "postgres",
        "distributed forum on PostgreSQL",
        SECRETS,
        only_for("accounts", admin()),
    ) else {
        return;
    };
    runtime().block_on(rules::rules_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(access::access_holds(
        &run.system.gateway.url,
        &run.system.run,
    ));
    runtime().block_on(lists::lists_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(paths::paths_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(jobs::jobs_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(calls::calls_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(calls::steps_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(rpc_routes::rpc_routes_hold(
        &run.system.gateway.url,
        &run.system.run,
    ));
    run.stop();
}

#[test]
fn distributed_mariadb_forum() {
    let Some(run) = SystemRun::start(
        &FORUM,
        "mysql",
        "distributed forum on MariaDB",
        SECRETS,
        only_for("accounts", admin()),
    ) else {
        return;
    };
    runtime().block_on(rules::rules_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(access::access_holds(
        &run.system.gateway.url,
        &run.system.run,
    ));
    runtime().block_on(lists::lists_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(paths::paths_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(jobs::jobs_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(calls::calls_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(calls::steps_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(rpc_routes::rpc_routes_hold(
        &run.system.gateway.url,
        &run.system.run,
    ));
    run.stop();
}
