//! A consumer-made profile, field rules, unique keys, references and `If-Match`.

use super::*;

pub(super) async fn rules_hold(gateway: &str, tag: &str) {
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
