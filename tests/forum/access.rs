//! Access beyond owner-only: drafts, published posts, managers, private bookmarks and
//! announcements.

use super::*;

pub(super) async fn access_holds(gateway: &str, tag: &str) {
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
