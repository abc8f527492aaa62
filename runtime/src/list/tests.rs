use super::*;
use crate::db::query;
use crate::test_support::sqlite_db;

static POSTS: ListDef = ListDef {
    table: "post",
    columns: &["id", "title", "score", "kind", "created_at"],
    filters: &[
        Field {
            name: "kind",
            kind: Kind::Enum(&["news", "story"]),
        },
        Field {
            name: "score",
            kind: Kind::Int,
        },
        Field {
            name: "created_at",
            kind: Kind::Timestamp,
        },
        Field {
            name: "pinned",
            kind: Kind::Bool,
        },
    ],
    sorts: &[
        Field {
            name: "title",
            kind: Kind::Text,
        },
        Field {
            name: "score",
            kind: Kind::Int,
        },
    ],
    search: true,
};

fn parse(query: &str) -> ApiResult<ListRequest> {
    ListRequest::parse(Some(query), &POSTS)
}

fn message(query: &str) -> String {
    let error = parse(query).unwrap_err();
    assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{query}");
    error.message().to_owned()
}

#[test]
fn reads_filters_ranges_search_sort_and_limit() {
    let request =
        parse("kind=news&score.gte=3&score.lt=10&q=Rust,%20SQL!&sort=-score&limit=5&total=true")
            .unwrap();
    assert_eq!(request.limit, 5);
    assert!(request.total);
    assert_eq!(request.words, ["rust", "sql"]);
    assert_eq!(
        request.order,
        Order {
            field: Some(("score", Kind::Int)),
            descending: true
        }
    );
    let filters: Vec<(&str, Comparison)> = request
        .filters
        .iter()
        .map(|f| (f.column, f.comparison))
        .collect();
    assert_eq!(
        filters,
        [
            ("kind", Comparison::Equal),
            ("score", Comparison::GreaterOrEqual),
            ("score", Comparison::Less)
        ]
    );
    // Defaults: 20 newest first; a search without `sort` ranks.
    let plain = ListRequest::parse(None, &POSTS).unwrap();
    assert_eq!((plain.limit, plain.total), (DEFAULT_LIMIT, false));
    assert_eq!(plain.order.name(), "created_at");
    assert!(plain.order.descending);
    assert_eq!(parse("q=rust").unwrap().order.name(), "rank");
}

#[test]
fn anything_unknown_or_malformed_is_a_400_naming_it() {
    let unknown = message("colour=red");
    assert!(
        unknown.starts_with("unknown query parameter `colour`"),
        "{unknown}"
    );
    assert!(unknown.contains("score.gt/.gte/.lt/.lte"), "{unknown}");
    // Ranges only on numbers and times; text and words are compared whole.
    assert!(message("kind.gt=news").starts_with("unknown query parameter `kind.gt`"));
    assert_eq!(message("kind=opinion"), "kind must be one of news, story");
    assert_eq!(message("score=high"), "score must be a whole number");
    assert_eq!(message("pinned=yes"), "pinned must be true or false");
    assert!(message("created_at.gte=yesterday").starts_with("created_at must be an RFC 3339"));
    assert_eq!(message("limit=0"), "limit must be an integer from 1 to 100");
    assert_eq!(
        message("limit=101"),
        "limit must be an integer from 1 to 100"
    );
    assert_eq!(message("total=yes"), "total must be true or false");
    assert_eq!(message("score=1&score=2"), "`score` is given twice");
    assert!(
        message("sort=body").starts_with("cannot sort on `body`: sort on created_at, title, score")
    );
    assert_eq!(message("q=%20!!"), "q has no word to search for");
    assert!(message("cursor=abc").starts_with("invalid cursor"));
}

#[test]
fn a_cursor_holds_to_its_order() {
    let cursor = ListCursor {
        s: "score".into(),
        d: true,
        v: Value::Int(7),
        i: Uuid::now_v7(),
    };
    let text = cursor.encode();
    let request = parse(&format!("sort=-score&cursor={text}")).unwrap();
    assert_eq!(request.after, Some(cursor));
    for other in ["sort=score", "sort=title", ""] {
        let query = format!("{other}&cursor={text}");
        assert!(message(&query).starts_with("the cursor belongs to a list in another order"));
    }
}

/// The table of [`POSTS`] with its search index, as a generated SQLite migration makes them.
async fn posts_table(db: &Db) {
    for statement in [
        "CREATE TABLE \"post\" (\"id\" TEXT NOT NULL PRIMARY KEY, \"title\" TEXT NOT NULL, \"score\" INTEGER NOT NULL, \"kind\" TEXT NOT NULL, \"pinned\" INTEGER NOT NULL, \"created_at\" TEXT NOT NULL)",
        "CREATE VIRTUAL TABLE \"post_search\" USING fts5(\"title\", content='post', content_rowid='rowid')",
        "CREATE TRIGGER \"post_search_insert\" AFTER INSERT ON \"post\" BEGIN INSERT INTO \"post_search\"(rowid, \"title\") VALUES (new.rowid, new.\"title\"); END",
    ] {
        query(statement).execute(db).await.expect("schema");
    }
}

#[derive(Debug)]
struct Post {
    id: Uuid,
    title: String,
    score: i64,
}

fn post(row: &Row) -> Result<Post, DbError> {
    Ok(Post {
        id: row.get("id")?,
        title: row.get("title")?,
        score: row.get("score")?,
    })
}

/// Every page of `query`, following the cursors.
async fn every_page(db: &Db, query: &str) -> Vec<Post> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let text = match &cursor {
            Some(cursor) => format!("{query}&cursor={cursor}"),
            None => query.to_owned(),
        };
        let request = parse(&text).unwrap();
        let page = fetch(db, &POSTS, &request, None, |q| q, post)
            .await
            .unwrap();
        all.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return all,
        }
        assert!(all.len() <= 100, "the pages end");
    }
}

#[tokio::test]
async fn pages_cover_every_row_once_in_every_order() {
    let (db, _dir) = sqlite_db().await;
    posts_table(&db).await;
    // Many ties on purpose: scores repeat, titles repeat, one creation time for all.
    let now = crate::db::now();
    for i in 0..23_i64 {
        query("INSERT INTO \"post\" VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(Uuid::now_v7())
            .bind(format!(
                "{} rust",
                ["alpha", "beta", "gamma"][(i % 3) as usize]
            ))
            .bind(i % 4)
            .bind(if i % 2 == 0 { "news" } else { "story" })
            .bind(i % 5 == 0)
            .bind(now)
            .execute(&db)
            .await
            .unwrap();
    }
    for (query, expected) in [
        ("limit=4", 23),
        ("limit=4&sort=created_at", 23),
        ("limit=3&sort=-score", 23),
        ("limit=3&sort=title", 23),
        ("limit=5&kind=news&sort=score", 12),
        ("limit=2&score.gte=2&score.lt=3", 6),
        ("limit=2&q=gamma", 7),
        ("limit=2&q=beta%20rust&sort=-title", 8),
    ] {
        let rows = every_page(&db, query).await;
        let mut ids: Vec<Uuid> = rows.iter().map(|p| p.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!((ids.len(), rows.len()), (expected, expected), "{query}");
        // Each page continues the order of the one before.
        let scores: Vec<i64> = rows.iter().map(|p| p.score).collect();
        if query.contains("sort=-score") {
            assert!(
                scores.windows(2).all(|w| w[0] >= w[1]),
                "{query}: {scores:?}"
            );
        }
        if query.contains("sort=title") {
            let titles: Vec<&str> = rows.iter().map(|p| p.title.as_str()).collect();
            assert!(
                titles.windows(2).all(|w| w[0] <= w[1]),
                "{query}: {titles:?}"
            );
        }
    }
    let counted = fetch(
        &db,
        &POSTS,
        &parse("limit=1&kind=story&total=true").unwrap(),
        None,
        |q| q,
        post,
    )
    .await
    .unwrap();
    assert_eq!((counted.items.len(), counted.total), (1, Some(11)));
}

#[tokio::test]
async fn the_scope_comes_before_the_request() {
    let (db, _dir) = sqlite_db().await;
    posts_table(&db).await;
    for (title, score) in [("mine", 1), ("theirs", 2), ("mine too", 3)] {
        query("INSERT INTO \"post\" VALUES ($1, $2, $3, 'news', 0, $4)")
            .bind(Uuid::now_v7())
            .bind(title)
            .bind(score)
            .bind(crate::db::now())
            .execute(&db)
            .await
            .unwrap();
    }
    let request = parse("score.gte=2&q=mine").unwrap();
    let page = fetch(
        &db,
        &POSTS,
        &request,
        Some(("\"score\" <> $1", 1)),
        |q| q.bind(1_i64),
        post,
    )
    .await
    .unwrap();
    let titles: Vec<&str> = page.items.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(titles, ["mine too"]);
}
