//! Routes backed by RPCs: the posts service answers named SQL queries with the request taken
//! from the path, the query string or the JSON body; the accounts service answers with the
//! posts service's RPC, called with the caller's identity.

use super::*;

pub(super) async fn rpc_routes_hold(gateway: &str, tag: &str) {
    let api = Api::new(gateway);
    let (ada_id, ada) = register(&api, &format!("ranked-{tag}@example.com")).await;
    let (_, bob) = register(&api, &format!("liker-{tag}@example.com")).await;
    let (ada, bob) = (Some(ada.as_str()), Some(bob.as_str()));
    let popular = published(&api, ada, "Popular").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let quiet = published(&api, ada, "Quiet").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for member in [ada, bob] {
        let like = format!("/posts/{popular}/like");
        expect(&api, member, Method::PUT, &like, None, StatusCode::CREATED).await;
    }
    expect(
        &api,
        bob,
        Method::POST,
        &format!("/posts/{popular}/comments"),
        Some(json!({"text": "Well said."})),
        StatusCode::CREATED,
    )
    .await;

    // A path parameter fills the request; the statement's `expect` answers 404.
    let stats = expect(
        &api,
        None,
        Method::GET,
        &format!("/posts/{popular}/stats"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stats, json!({"likes": 2, "comments": 1}), "{tag}");
    // The path fills the whole request: any query parameter is one it does not have.
    expect(
        &api,
        None,
        Method::GET,
        &format!("/posts/{popular}/stats?likes=9"),
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let draft = expect(
        &api,
        ada,
        Method::POST,
        "/posts",
        Some(json!({"title": "Draft", "body": "Not yet."})),
        StatusCode::CREATED,
    )
    .await;
    let draft_stats = format!("/posts/{}/stats", draft["id"].as_str().unwrap());
    expect(
        &api,
        None,
        Method::GET,
        &draft_stats,
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    let malformed = expect(
        &api,
        None,
        Method::GET,
        "/posts/not-a-uuid/stats",
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        malformed["error"].as_str().unwrap().contains("post_id"),
        "{tag}: {malformed}"
    );

    // The query string fills the rest of a `GET`'s request, checked against its rules.
    let top = expect(
        &api,
        None,
        Method::GET,
        "/top-posts?min_likes=1",
        None,
        StatusCode::OK,
    )
    .await;
    let ranked = top["posts"].as_array().unwrap();
    assert!(
        ranked.iter().all(|p| p["likes"].as_i64().unwrap() >= 1),
        "{tag}: {top}"
    );
    assert!(
        !ranked.iter().any(|p| p["post_id"] == quiet.as_str()),
        "{tag}: a post without likes is not ranked: {top}"
    );
    let mine = ranked
        .iter()
        .find(|p| p["post_id"] == popular.as_str())
        .unwrap_or_else(|| panic!("{tag}: the popular post is ranked: {top}"));
    assert_eq!(
        (&mine["title"], &mine["likes"]),
        (&json!("Popular"), &json!(2)),
        "{tag}"
    );
    for (query, named) in [
        ("", "min_likes"),
        ("?min_likes=-1", "min_likes"),
        ("?min_likes=many", "min_likes"),
        ("?min_likes=1&colour=red", "colour"),
    ] {
        let refused = expect(
            &api,
            None,
            Method::GET,
            &format!("/top-posts{query}"),
            None,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(
            refused["error"].as_str().unwrap().contains(named),
            "{tag}: `{query}` names `{named}`: {refused}"
        );
    }

    // The same RPC behind a path and behind a JSON body.
    let counted = expect(
        &api,
        None,
        Method::GET,
        &format!("/authors/{ada_id}/published"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(counted, json!({"count": 2}), "{tag}");
    let counted = expect(
        &api,
        None,
        Method::POST,
        "/published-counts",
        Some(json!({"author_id": ada_id})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(counted, json!({"count": 2}), "{tag}");
    expect(
        &api,
        None,
        Method::POST,
        "/published-counts",
        Some(json!({"author": ada_id})),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Another service's RPC, with the caller's own id as its request.
    let own = expect(
        &api,
        ada,
        Method::GET,
        "/me/published",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(own, json!({"count": 2}), "{tag}");
    let own = expect(
        &api,
        bob,
        Method::GET,
        "/me/published",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(own, json!({"count": 0}), "{tag}");
    expect(
        &api,
        None,
        Method::GET,
        "/me/published",
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}
