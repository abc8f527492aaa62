//! Routes on any path: comments under their post, likes made once, an action route.

use super::*;

pub(super) async fn paths_hold(gateway: &str, tag: &str) {
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
