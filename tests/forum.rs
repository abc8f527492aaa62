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
//!   job, run by an admin through its route (recorded with its outcome) and by its schedule.
//!
//! The distributed tests skip with a message when a server is down, and fail instead when
//! `SVCGEN_REQUIRE_INFRA=1` (as on CI).

mod harness;
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

async fn access_holds(gateway: &str, tag: &str) {
    let api = Api::new(gateway);
    let (ada_id, ada) = register(&api, &format!("ada-{tag}@example.com")).await;
    let (_, bob) = register(&api, &format!("bob-{tag}@example.com")).await;
    let admin = admin_token(&api).await;
    let (ada, bob, admin) = (Some(ada.as_str()), Some(bob.as_str()), Some(admin.as_str()));

    let post = |title: &str, published: bool| json!({"title": title, "body": "Words.", "published": published});
    let draft = expect(
        &api,
        ada,
        Method::POST,
        "/posts",
        Some(post("Draft", false)),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(draft["author_id"], ada_id.as_str(), "{tag}: {draft}");
    let shown = expect(
        &api,
        ada,
        Method::POST,
        "/posts",
        Some(post("Shown", true)),
        StatusCode::CREATED,
    )
    .await;
    let (draft_id, shown_id) = (draft["id"].as_str().unwrap(), shown["id"].as_str().unwrap());
    let (draft_path, shown_path) = (format!("/posts/{draft_id}"), format!("/posts/{shown_id}"));

    // Everyone reads published posts, anonymous callers included; a draft is nobody else's.
    for who in [None, bob] {
        let page = expect(&api, who, Method::GET, "/posts", None, StatusCode::OK).await;
        assert_eq!(ids(&page), [shown_id], "{tag}: {page}");
        expect(&api, who, Method::GET, &shown_path, None, StatusCode::OK).await;
        expect(
            &api,
            who,
            Method::GET,
            &draft_path,
            None,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    // The author sees both, through the public list (the gateway passes the token on) and
    // through their own; another member's own list is empty.
    let page = expect(&api, ada, Method::GET, "/posts", None, StatusCode::OK).await;
    assert_eq!(
        ids(&page),
        [shown_id, draft_id],
        "{tag}: newest first: {page}"
    );
    let page = expect(&api, ada, Method::GET, "/me/posts", None, StatusCode::OK).await;
    assert_eq!(ids(&page), [shown_id, draft_id], "{tag}: {page}");
    let page = expect(&api, bob, Method::GET, "/me/posts", None, StatusCode::OK).await;
    assert!(ids(&page).is_empty(), "{tag}: {page}");
    expect(
        &api,
        None,
        Method::GET,
        "/me/posts",
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // Only the author changes a post: another member gets 403 for a post they can read, 404
    // for one they cannot; anonymous callers cannot change anything.
    let edit = json!({"title": "Edited"});
    let refused = expect(
        &api,
        bob,
        Method::PATCH,
        &shown_path,
        Some(edit.clone()),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        refused["error"], "this post belongs to another user: only its owner may change it",
        "{tag}"
    );
    expect(
        &api,
        bob,
        Method::DELETE,
        &shown_path,
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect(
        &api,
        bob,
        Method::PATCH,
        &draft_path,
        Some(edit.clone()),
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(
        &api,
        bob,
        Method::DELETE,
        &draft_path,
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(
        &api,
        None,
        Method::PATCH,
        &shown_path,
        Some(edit.clone()),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let read = expect(&api, None, Method::GET, &shown_path, None, StatusCode::OK).await;
    assert_eq!(read["title"], "Shown", "{tag}: nothing changed: {read}");
    let edited = expect(
        &api,
        ada,
        Method::PATCH,
        &shown_path,
        Some(edit.clone()),
        StatusCode::OK,
    )
    .await;
    assert_eq!(edited["title"], "Edited", "{tag}: {edited}");

    // Publishing a draft shows it to everyone.
    expect(
        &api,
        ada,
        Method::PATCH,
        &draft_path,
        Some(json!({"published": true})),
        StatusCode::OK,
    )
    .await;
    let page = expect(&api, None, Method::GET, "/posts", None, StatusCode::OK).await;
    assert_eq!(ids(&page).len(), 2, "{tag}: {page}");
    expect(
        &api,
        ada,
        Method::PATCH,
        &draft_path,
        Some(json!({"published": false})),
        StatusCode::OK,
    )
    .await;

    // A manager (the admin) reads drafts, changes and deletes another member's posts.
    let page = expect(&api, admin, Method::GET, "/posts", None, StatusCode::OK).await;
    assert_eq!(ids(&page), [shown_id, draft_id], "{tag}: {page}");
    expect(&api, admin, Method::GET, &draft_path, None, StatusCode::OK).await;
    let moderated = expect(
        &api,
        admin,
        Method::PATCH,
        &draft_path,
        Some(json!({"body": "Moderated."})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        moderated["author_id"],
        ada_id.as_str(),
        "{tag}: still ada's: {moderated}"
    );

    // Bookmarks are private: their member's, and the admins'.
    let mark = expect(
        &api,
        bob,
        Method::POST,
        "/bookmarks",
        Some(json!({"post_id": shown_id})),
        StatusCode::CREATED,
    )
    .await;
    let mark_path = format!("/bookmarks/{}", mark["id"].as_str().unwrap());
    let page = expect(&api, ada, Method::GET, "/bookmarks", None, StatusCode::OK).await;
    assert!(ids(&page).is_empty(), "{tag}: {page}");
    expect(
        &api,
        ada,
        Method::GET,
        &mark_path,
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(
        &api,
        ada,
        Method::DELETE,
        &mark_path,
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    let page = expect(&api, admin, Method::GET, "/bookmarks", None, StatusCode::OK).await;
    assert_eq!(ids(&page), [mark["id"].as_str().unwrap()], "{tag}: {page}");

    // Announcements: made by moderators and admins (the route's roles), read by every member,
    // changed by their author alone.
    expect(
        &api,
        ada,
        Method::POST,
        "/announcements",
        Some(json!({"text": "Hello"})),
        StatusCode::FORBIDDEN,
    )
    .await;
    let news = expect(
        &api,
        admin,
        Method::POST,
        "/announcements",
        Some(json!({"text": "Welcome to the forum."})),
        StatusCode::CREATED,
    )
    .await;
    let page = expect(
        &api,
        bob,
        Method::GET,
        "/announcements",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&page), [news["id"].as_str().unwrap()], "{tag}: {page}");
    let news_path = format!("/announcements/{}", news["id"].as_str().unwrap());
    expect(
        &api,
        bob,
        Method::PATCH,
        &news_path,
        Some(json!({"text": "Mine now"})),
        StatusCode::FORBIDDEN,
    )
    .await;

    // The moderator deletes a post: its bookmarks go with it (cascade).
    expect(
        &api,
        admin,
        Method::DELETE,
        &shown_path,
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect(
        &api,
        bob,
        Method::GET,
        &mark_path,
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(
        &api,
        None,
        Method::GET,
        &shown_path,
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
}

/// Every page of `path` (a query string included), following the cursors.
async fn every_page(api: &Api, token: Option<&str>, path: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(cursor) => format!("{path}&cursor={cursor}"),
            None => path.to_owned(),
        };
        let page = expect(api, token, Method::GET, &url, None, StatusCode::OK).await;
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
        assert!(all.len() <= 200, "the pages of {path} end");
    }
}

async fn lists_hold(gateway: &str, tag: &str) {
    let api = Api::new(gateway);
    let (ada_id, ada) = register(&api, &format!("lister-{tag}@example.com")).await;
    let (_, bob) = register(&api, &format!("other-{tag}@example.com")).await;
    let (ada, bob) = (Some(ada.as_str()), Some(bob.as_str()));
    // 24 published posts of ada's: topics, scores and tags repeat, titles sort apart.
    let topics = ["news", "help", "chat"];
    for i in 0..24_usize {
        let body = if i == 7 {
            "Rust rust RUST, all about rust.".to_owned()
        } else if i % 4 == 0 {
            format!("Notes on rust number {i}.")
        } else {
            format!("Plain words number {i}.")
        };
        let tags = if i % 3 == 0 {
            json!(["tips", "weekly"])
        } else {
            json!(["weekly"])
        };
        expect(
            &api,
            ada,
            Method::POST,
            "/posts",
            Some(json!({
                "title": format!("Post {:02} {}", 23 - i, if i == 7 { "Rust" } else { "" }).trim(),
                "body": body,
                "published": true,
                "topic": topics[i % 3],
                "score": i % 5,
                "tags": tags,
            })),
            StatusCode::CREATED,
        )
        .await;
    }
    // A draft that matches the search: only its author finds it.
    expect(
        &api,
        ada,
        Method::POST,
        "/posts",
        Some(json!({"title": "Secret rust draft", "body": "rust", "topic": "help"})),
        StatusCode::CREATED,
    )
    .await;
    expect(
        &api,
        bob,
        Method::POST,
        "/posts",
        Some(json!({"title": "Bob's", "body": "Other words.", "published": true, "topic": "news", "score": 4})),
        StatusCode::CREATED,
    )
    .await;

    // Filters, alone and together, with the total.
    let count = |query: &str| {
        let path = format!("/posts?total=true&limit=1&{query}");
        let api = &api;
        async move {
            let page = expect(api, None, Method::GET, &path, None, StatusCode::OK).await;
            page["total"]
                .as_i64()
                .unwrap_or_else(|| panic!("a total: {page}"))
        }
    };
    assert_eq!(count(&format!("author_id={ada_id}")).await, 24, "{tag}");
    assert_eq!(count("topic=help").await, 8, "{tag}");
    assert_eq!(count("topic=news").await, 9, "{tag}: ada's 8 and bob's");
    assert_eq!(count("score.gte=3&score.lt=4").await, 5, "{tag}");
    assert_eq!(
        count(&format!("author_id={ada_id}&score=4")).await,
        4,
        "{tag}"
    );
    assert_eq!(count("tags=tips").await, 8, "{tag}");
    assert_eq!(count("tags=weekly&topic=chat").await, 8, "{tag}");
    let future = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    assert_eq!(
        count(&format!("created_at.gte={}", urlencode(&future))).await,
        0,
        "{tag}"
    );
    assert_eq!(
        count(&format!("created_at.lt={}", urlencode(&future))).await,
        25,
        "{tag}"
    );

    // Search: the better match first, case ignored, drafts only for their author.
    let found = expect(
        &api,
        None,
        Method::GET,
        "/posts?q=RUST",
        None,
        StatusCode::OK,
    )
    .await;
    let titles: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles.len(),
        7,
        "{tag}: posts 0, 4, 7, 8, 12, 16, 20: {found}"
    );
    assert_eq!(
        titles[0], "Post 16 Rust",
        "{tag}: the better match first: {titles:?}"
    );
    let mine = expect(
        &api,
        ada,
        Method::GET,
        "/posts?q=rust&total=true",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mine["total"], 8, "{tag}: with the draft: {mine}");
    let both = expect(
        &api,
        None,
        Method::GET,
        "/posts?q=rust%20notes&topic=news",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&both).len(), 2, "{tag}: posts 0 and 12: {both}");

    // Every order pages through every row once, in order.
    for (query, field, descending) in [
        ("/posts?limit=4", "created_at", true),
        ("/posts?limit=5&sort=created_at", "created_at", false),
        ("/posts?limit=3&sort=title", "title", false),
        ("/posts?limit=3&sort=-title", "title", true),
        ("/posts?limit=4&sort=score", "score", false),
        ("/posts?limit=4&sort=-score", "score", true),
        ("/posts?limit=2&q=rust", "", true),
        ("/posts?limit=2&q=rust&sort=-score", "score", true),
    ] {
        let rows = every_page(&api, None, query).await;
        let mut seen: Vec<&str> = rows.iter().map(|p| p["id"].as_str().unwrap()).collect();
        let expected = if query.contains("q=") { 7 } else { 25 };
        assert_eq!(rows.len(), expected, "{tag}: {query}");
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), expected, "{tag}: no row twice: {query}");
        if !field.is_empty() {
            let keys: Vec<SortKey> = rows.iter().map(|p| SortKey::of(&p[field])).collect();
            let ordered = keys.windows(2).all(|w| {
                if descending {
                    w[0] >= w[1]
                } else {
                    w[0] <= w[1]
                }
            });
            assert!(ordered, "{tag}: {query} in order: {keys:?}");
        }
    }

    // Anything unknown or malformed is a 400 that names it.
    for (query, says) in [
        ("/posts?colour=red", "unknown query parameter `colour`"),
        (
            "/posts?topic=opinion",
            "topic must be one of news, help, chat",
        ),
        ("/posts?score.gte=lots", "score must be a whole number"),
        ("/posts?topic.gt=news", "unknown query parameter `topic.gt`"),
        ("/posts?sort=body", "cannot sort on `body`"),
        ("/posts?limit=500", "limit must be an integer from 1 to 100"),
        ("/posts?author_id=ada", "author_id must be a uuid"),
        ("/posts?cursor=nonsense", "invalid cursor"),
        ("/bookmarks?q=rust", "unknown query parameter `q`"),
    ] {
        let answer = expect(&api, ada, Method::GET, query, None, StatusCode::BAD_REQUEST).await;
        let message = answer["error"].as_str().unwrap();
        assert!(message.starts_with(says), "{tag}: {query}: {message}");
    }
    let page = expect(
        &api,
        None,
        Method::GET,
        "/posts?limit=2&sort=title",
        None,
        StatusCode::OK,
    )
    .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let answer = expect(
        &api,
        None,
        Method::GET,
        &format!("/posts?sort=-score&cursor={cursor}"),
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("the cursor belongs to a list in another order"),
        "{tag}: {answer}"
    );
}

/// A row's value of a sort field, compared as the database orders it.
#[derive(Debug, PartialEq, PartialOrd)]
enum SortKey {
    Number(i64),
    Time(chrono::DateTime<chrono::Utc>),
    Text(String),
}

impl SortKey {
    fn of(value: &Value) -> SortKey {
        if let Some(n) = value.as_i64() {
            return SortKey::Number(n);
        }
        let text = value
            .as_str()
            .unwrap_or_else(|| panic!("a sort key: {value}"));
        match text.parse() {
            Ok(time) => SortKey::Time(time),
            Err(_) => SortKey::Text(text.to_owned()),
        }
    }
}

async fn paths_hold(gateway: &str, tag: &str) {
    let api = Api::new(gateway);
    let (_, ada) = register(&api, &format!("poster-{tag}@example.com")).await;
    let (bob_id, bob) = register(&api, &format!("commenter-{tag}@example.com")).await;
    let admin = admin_token(&api).await;
    let (ada, bob, admin) = (Some(ada.as_str()), Some(bob.as_str()), Some(admin.as_str()));
    let post = |title: &str, published: bool| json!({"title": title, "body": "Words.", "published": published});
    let shown = expect(
        &api,
        ada,
        Method::POST,
        "/posts",
        Some(post("Open", true)),
        StatusCode::CREATED,
    )
    .await;
    let other = expect(
        &api,
        ada,
        Method::POST,
        "/posts",
        Some(post("Other", true)),
        StatusCode::CREATED,
    )
    .await;
    let draft = expect(
        &api,
        ada,
        Method::POST,
        "/posts",
        Some(post("Draft", false)),
        StatusCode::CREATED,
    )
    .await;
    let (shown_id, other_id, draft_id) = (
        shown["id"].as_str().unwrap(),
        other["id"].as_str().unwrap(),
        draft["id"].as_str().unwrap(),
    );
    let comments = format!("/posts/{shown_id}/comments");

    // A comment is made under a post the caller sees; its post comes from the path.
    let comment = expect(
        &api,
        bob,
        Method::POST,
        &comments,
        Some(json!({"text": "Well said."})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(comment["post_id"], shown_id, "{tag}: {comment}");
    assert_eq!(comment["author_id"], bob_id.as_str(), "{tag}: {comment}");
    let comment_id = comment["id"].as_str().unwrap();
    for (path, body, status) in [
        (
            format!("/posts/{draft_id}/comments"),
            json!({"text": "Hidden?"}),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/posts/{}/comments", uuid::Uuid::now_v7()),
            json!({"text": "Nowhere"}),
            StatusCode::NOT_FOUND,
        ),
        (
            comments.clone(),
            json!({"text": "x", "post_id": other_id}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/posts/not-a-uuid/comments".to_owned(),
            json!({"text": "x"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let answer = expect(&api, bob, Method::POST, &path, Some(body), status).await;
        assert!(answer["error"].is_string(), "{tag}: {path}: {answer}");
    }

    // Listed under their post only, by anyone who sees the post.
    let page = expect(&api, None, Method::GET, &comments, None, StatusCode::OK).await;
    assert_eq!(ids(&page), [comment_id], "{tag}: {page}");
    let page = expect(
        &api,
        None,
        Method::GET,
        &format!("/posts/{other_id}/comments"),
        None,
        StatusCode::OK,
    )
    .await;
    assert!(ids(&page).is_empty(), "{tag}: {page}");
    expect(
        &api,
        bob,
        Method::GET,
        &format!("/posts/{draft_id}/comments"),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(
        &api,
        ada,
        Method::GET,
        &format!("/posts/{draft_id}/comments"),
        None,
        StatusCode::OK,
    )
    .await;

    // One comment by its post and id: not found under another post; changed by its author.
    let one = format!("{comments}/{comment_id}");
    expect(&api, None, Method::GET, &one, None, StatusCode::OK).await;
    expect(
        &api,
        None,
        Method::GET,
        &format!("/posts/{other_id}/comments/{comment_id}"),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(
        &api,
        ada,
        Method::PATCH,
        &one,
        Some(json!({"text": "Mine"})),
        StatusCode::FORBIDDEN,
    )
    .await;
    expect(
        &api,
        bob,
        Method::PATCH,
        &format!("/posts/{other_id}/comments/{comment_id}"),
        Some(json!({"text": "Moved?"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    let edited = expect(
        &api,
        bob,
        Method::PATCH,
        &one,
        Some(json!({"text": "Very well said."})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (edited["text"].as_str(), edited["version"].as_i64()),
        (Some("Very well said."), Some(2)),
        "{tag}"
    );

    // Fifty concurrent likes of one member make one row: one 201, the others 200.
    let like = format!("/posts/{shown_id}/like");
    let likes = (0..50).map(|_| {
        let (api, like) = (&api, &like);
        async move { api.call(Method::PUT, like, bob, None).await }
    });
    let answers = futures_util::future::join_all(likes).await;
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    let kept = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    assert_eq!(
        (created, kept),
        (1, 49),
        "{tag}: {:?}",
        answers.iter().find(|(s, _)| !s.is_success())
    );
    let first = &answers[0].1;
    assert!(
        answers.iter().all(|(_, row)| row["id"] == first["id"]),
        "{tag}: one row for all"
    );
    expect(&api, ada, Method::PUT, &like, None, StatusCode::CREATED).await;
    let likes_path = format!("/posts/{shown_id}/likes?total=true&limit=1");
    let count = || async {
        let page = expect(&api, None, Method::GET, &likes_path, None, StatusCode::OK).await;
        page["total"].as_i64().unwrap()
    };
    assert_eq!(count().await, 2, "{tag}");
    expect(
        &api,
        bob,
        Method::PUT,
        &format!("/posts/{draft_id}/like"),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Taken back by its path; a second time finds nothing.
    expect(
        &api,
        bob,
        Method::DELETE,
        &like,
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect(
        &api,
        bob,
        Method::DELETE,
        &like,
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(count().await, 1, "{tag}");

    // An action route: publishing applies to a draft only, by its author.
    let publish = format!("/posts/{draft_id}/publish");
    expect(
        &api,
        bob,
        Method::POST,
        &publish,
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(
        &api,
        None,
        Method::POST,
        &publish,
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let published = expect(&api, ada, Method::POST, &publish, None, StatusCode::OK).await;
    assert_eq!(
        (
            published["published"].as_bool(),
            published["version"].as_i64()
        ),
        (Some(true), Some(2)),
        "{tag}: {published}"
    );
    let again = expect(
        &api,
        ada,
        Method::POST,
        &publish,
        None,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(
        again["error"],
        "this post is not in a state for `POST /posts/{id}/publish`: published must be false",
        "{tag}"
    );
    expect(
        &api,
        bob,
        Method::POST,
        &publish,
        None,
        StatusCode::FORBIDDEN,
    )
    .await;

    // A post's comments and likes go with it.
    expect(
        &api,
        admin,
        Method::DELETE,
        &format!("/posts/{shown_id}"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect(
        &api,
        None,
        Method::GET,
        &comments,
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(&api, ada, Method::GET, &one, None, StatusCode::NOT_FOUND).await;
}

async fn jobs_hold(gateway: &str, tag: &str) {
    let api = Api::new(gateway);
    let (_, ada) = register(&api, &format!("scheduler-{tag}@example.com")).await;
    let admin = admin_token(&api).await;
    let (ada, admin) = (Some(ada.as_str()), Some(admin.as_str()));
    let past = (chrono::Utc::now() - chrono::TimeDelta::minutes(1)).to_rfc3339();
    let future = (chrono::Utc::now() + chrono::TimeDelta::days(1)).to_rfc3339();
    let draft = |title: &str, at: &str| json!({"title": title, "body": "Later.", "publish_at": at});
    let due = expect(
        &api,
        ada,
        Method::POST,
        "/posts",
        Some(draft("Due", &past)),
        StatusCode::CREATED,
    )
    .await;
    let later = expect(
        &api,
        ada,
        Method::POST,
        "/posts",
        Some(draft("Later", &future)),
        StatusCode::CREATED,
    )
    .await;
    let due_path = format!("/posts/{}", due["id"].as_str().unwrap());
    let later_path = format!("/posts/{}", later["id"].as_str().unwrap());

    // An admin runs the job now: the run is answered and recorded with its outcome.
    let job = "/admin/posts/jobs/publish_scheduled";
    expect(
        &api,
        ada,
        Method::POST,
        &format!("{job}/run"),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect(
        &api,
        admin,
        Method::POST,
        "/admin/posts/jobs/nothing/run",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    let ran = expect(
        &api,
        admin,
        Method::POST,
        &format!("{job}/run"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (ran["cause"].as_str(), ran["outcome"].as_str()),
        (Some("admin"), Some("succeeded")),
        "{tag}: {ran}"
    );
    let shown = expect(&api, None, Method::GET, &due_path, None, StatusCode::OK).await;
    assert_eq!(shown["published"], true, "{tag}: {shown}");
    expect(
        &api,
        None,
        Method::GET,
        &later_path,
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    let jobs = expect(
        &api,
        admin,
        Method::GET,
        "/admin/posts/jobs",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(jobs[0]["name"], "publish_scheduled", "{tag}: {jobs}");
    assert!(jobs[0]["next_run_at"].is_string(), "{tag}: {jobs}");

    // On its schedule (every 2 s), with nobody asking.
    let soon = (chrono::Utc::now() + chrono::TimeDelta::seconds(1)).to_rfc3339();
    let scheduled = expect(
        &api,
        ada,
        Method::POST,
        "/posts",
        Some(draft("Soon", &soon)),
        StatusCode::CREATED,
    )
    .await;
    let scheduled_path = format!("/posts/{}", scheduled["id"].as_str().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, _) = api.call(Method::GET, &scheduled_path, None, None).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{tag}: the job publishes the draft on its own"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let runs = expect(
        &api,
        admin,
        Method::GET,
        &format!("{job}/runs"),
        None,
        StatusCode::OK,
    )
    .await;
    let runs = runs.as_array().unwrap();
    assert!(
        runs.iter()
            .any(|r| r["cause"] == "schedule" && r["outcome"] == "succeeded"),
        "{tag}: {runs:?}"
    );
    assert!(
        runs.iter().any(|r| r["cause"] == "admin"),
        "{tag}: {runs:?}"
    );
}

async fn rules_hold(gateway: &str, tag: &str) {
    let api = Api::new(gateway);
    let username = format!("member-{tag}");
    let (member_id, member) = register(&api, &format!("{username}@example.com")).await;
    let (_, other) = register(&api, &format!("neighbour-{tag}@example.com")).await;
    let (member, other) = (Some(member.as_str()), Some(other.as_str()));

    // The consumer of `user.registered` made the profile, with its default.
    let path = format!("/profiles?user_id={member_id}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let profile = loop {
        let page = expect(&api, None, Method::GET, &path, None, StatusCode::OK).await;
        if let Some(profile) = page["items"].as_array().and_then(|items| items.first()) {
            break profile.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{tag}: the profile is made"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        (profile["display_name"].as_str(), profile["bio"].as_str()),
        (Some(username.as_str()), Some("")),
        "{tag}: {profile}"
    );
    let profile_path = format!("/profiles/{}", profile["id"].as_str().unwrap());
    expect(
        &api,
        other,
        Method::PATCH,
        &profile_path,
        Some(json!({"bio": "Not mine"})),
        StatusCode::FORBIDDEN,
    )
    .await;
    expect(
        &api,
        member,
        Method::PATCH,
        &profile_path,
        Some(json!({"bio": "Reads a lot."})),
        StatusCode::OK,
    )
    .await;

    // Field rules: 400 naming the field.
    for (body, field) in [
        (json!({"title": "", "body": "x"}), "title"),
        (json!({"title": "x", "body": "x", "score": -1}), "score"),
        (
            json!({"title": "x", "body": "x", "topic": "opinion"}),
            "topic",
        ),
    ] {
        let answer = expect(
            &api,
            member,
            Method::POST,
            "/posts",
            Some(body),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{tag}: {answer}"
        );
    }
    let post = expect(
        &api,
        member,
        Method::POST,
        "/posts",
        Some(json!({"title": "Rules", "body": "x", "published": true})),
        StatusCode::CREATED,
    )
    .await;
    let post_id = post["id"].as_str().unwrap();
    // A unique key taken: 409 naming its fields; a reference to no row: 400 naming the field.
    expect(
        &api,
        member,
        Method::POST,
        "/bookmarks",
        Some(json!({"post_id": post_id})),
        StatusCode::CREATED,
    )
    .await;
    let taken = expect(
        &api,
        member,
        Method::POST,
        "/bookmarks",
        Some(json!({"post_id": post_id})),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(
        taken["error"], "a bookmark with these values of post_id, member_id already exists",
        "{tag}"
    );
    let missing = expect(
        &api,
        member,
        Method::POST,
        "/bookmarks",
        Some(json!({"post_id": uuid::Uuid::now_v7()})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(missing["error"], "post_id names no existing post", "{tag}");

    // A change held to a version read before another change: 412.
    let post_path = format!("/posts/{post_id}");
    let (status, headers, _) = api
        .call_with(Method::GET, &post_path, None, &[], None)
        .await;
    assert_eq!(
        (status, headers["etag"].to_str().unwrap()),
        (StatusCode::OK, "\"1\""),
        "{tag}"
    );
    for expected in [StatusCode::OK, StatusCode::PRECONDITION_FAILED] {
        let (status, _, body) = api
            .call_with(
                Method::PATCH,
                &post_path,
                member,
                &[("if-match", "\"1\"")],
                Some(json!({"score": 3})),
            )
            .await;
        assert_eq!(status, expected, "{tag}: {body}");
    }
    // The post goes, its bookmark with it (cascade), so the lists below start empty.
    let (status, _, body) = api
        .call_with(
            Method::DELETE,
            &post_path,
            member,
            &[("if-match", "\"2\"")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{tag}: {body}");
    let bookmarks = expect(
        &api,
        member,
        Method::GET,
        "/bookmarks",
        None,
        StatusCode::OK,
    )
    .await;
    assert!(ids(&bookmarks).is_empty(), "{tag}: {bookmarks}");
}

/// `text` as a query-string value.
fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[test]
fn embedded_sqlite_forum() {
    let data = tempfile::tempdir().unwrap();
    let running = FORUM.embedded(data.path(), &admin());
    runtime().block_on(rules_hold(&running.url, "embedded"));
    runtime().block_on(access_holds(&running.url, "embedded"));
    runtime().block_on(lists_hold(&running.url, "embedded"));
    runtime().block_on(paths_hold(&running.url, "embedded"));
    runtime().block_on(jobs_hold(&running.url, "embedded"));
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
    runtime().block_on(rules_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(access_holds(&run.system.gateway.url, &run.system.run));
    runtime().block_on(lists_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(paths_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(jobs_hold(&run.system.gateway.url, &run.system.run));
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
    runtime().block_on(rules_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(access_holds(&run.system.gateway.url, &run.system.run));
    runtime().block_on(lists_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(paths_hold(&run.system.gateway.url, &run.system.run));
    runtime().block_on(jobs_hold(&run.system.gateway.url, &run.system.run));
    run.stop();
}
