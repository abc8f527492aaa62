//! Lists: filters, search, sorts, cursors, totals and the 400s of anything unknown.

use super::*;

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

pub(super) async fn lists_hold(gateway: &str, tag: &str) {
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

/// `text` as a query-string value.
fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}
