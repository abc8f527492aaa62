//! Calls from consumers and jobs: the accounts service asks the posts service, over its RPCs,
//! for what the posts service alone knows.

use super::*;

/// Reads the page of one member's profile at `profiles` until it counts `posts` published
/// posts (the consumer counts them asynchronously); the page.
async fn counted(api: &Api, profiles: &str, posts: i64, tag: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let page = expect(api, None, Method::GET, profiles, None, StatusCode::OK).await;
        if page["items"][0]["posts"] == posts {
            return page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{tag}: the profile counts {posts} published post(s): {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Runs the census job as an admin; the census it took.
async fn census(api: &Api, admin: Option<&str>, tag: &str) -> (i64, i64) {
    let ran = expect(
        api,
        admin,
        Method::POST,
        "/admin/accounts/jobs/take_census/run",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ran["outcome"], "succeeded", "{tag}: {ran}");
    let page = expect(api, admin, Method::GET, "/census", None, StatusCode::OK).await;
    let newest = &page["items"][0];
    (
        newest["published"].as_i64().unwrap(),
        newest["drafts"].as_i64().unwrap(),
    )
}

pub(super) async fn calls_hold(gateway: &str, tag: &str) {
    let api = Api::new(gateway);
    let (grace_id, grace) = register(&api, &format!("counted-{tag}@example.com")).await;
    let admin = admin_token(&api).await;
    let (grace, admin) = (Some(grace.as_str()), Some(admin.as_str()));

    // A consumer calls before it writes: each `post.published` has the accounts service ask
    // the posts service how many of the author's posts are published, then keep the count on
    // the author's profile.
    published(&api, grace, "First").await;
    published(&api, grace, "Second").await;
    counted(&api, &format!("/profiles?user_id={grace_id}"), 2, tag).await;

    // A job calls, then writes what it was told: the census counts the posts the posts
    // service holds, and a later census sees one more of each kind.
    expect(
        &api,
        grace,
        Method::GET,
        "/census",
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    let (published_before, drafts_before) = census(&api, admin, tag).await;
    assert!(published_before >= 2, "{tag}: {published_before}");
    published(&api, grace, "Third").await;
    expect(
        &api,
        grace,
        Method::POST,
        "/posts",
        Some(json!({"title": "Unfinished", "body": "Not yet."})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        census(&api, admin, tag).await,
        (published_before + 1, drafts_before + 1),
        "{tag}: the second census"
    );
}

/// A step of an action route: the recount asks the posts service, and the row takes its
/// answer; only the profile's owner changes it.
pub(super) async fn steps_hold(gateway: &str, tag: &str) {
    let api = Api::new(gateway);
    let (ada_id, ada) = register(&api, &format!("recounted-{tag}@example.com")).await;
    let (_, bob) = register(&api, &format!("onlooker-{tag}@example.com")).await;
    let (ada, bob) = (Some(ada.as_str()), Some(bob.as_str()));
    published(&api, ada, "Counted once").await;
    // Once the consumer of `post.published` has counted the post, nothing else changes the
    // profile.
    let profiles = format!("/profiles?user_id={ada_id}");
    let page = counted(&api, &profiles, 1, tag).await;
    let profile = format!("/profiles/{}", page["items"][0]["id"].as_str().unwrap());
    let wrong = expect(
        &api,
        ada,
        Method::PATCH,
        &profile,
        Some(json!({"posts": 99})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(wrong["posts"], 99, "{tag}: {wrong}");
    let recount = format!("{profile}/recount");
    expect(
        &api,
        bob,
        Method::POST,
        &recount,
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    let right = expect(&api, ada, Method::POST, &recount, None, StatusCode::OK).await;
    assert_eq!(right["posts"], 1, "{tag}: {right}");
    assert_eq!(
        right["version"].as_i64(),
        wrong["version"].as_i64().map(|v| v + 1),
        "{tag}: one change: {right}"
    );

    // A create under its parent with a step: an endorsement weighs what its endorser has
    // published, and needs a profile to endorse.
    let endorsements = format!("{profile}/endorsements");
    let by_ada = expect(
        &api,
        ada,
        Method::POST,
        &endorsements,
        None,
        StatusCode::CREATED,
    )
    .await;
    let by_bob = expect(
        &api,
        bob,
        Method::POST,
        &endorsements,
        None,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (&by_ada["weight"], &by_bob["weight"]),
        (&json!(1), &json!(0)),
        "{tag}: {by_ada} {by_bob}"
    );
    assert_eq!(
        by_ada["profile_id"], page["items"][0]["id"],
        "{tag}: {by_ada}"
    );
    let listed = expect(&api, None, Method::GET, &endorsements, None, StatusCode::OK).await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(2),
        "{tag}: {listed}"
    );
    let nobody = format!("/profiles/{}/endorsements", uuid_like(&ada_id));
    expect(
        &api,
        bob,
        Method::POST,
        &nobody,
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    // A second endorsement by the same member is refused by the unique key.
    expect(
        &api,
        bob,
        Method::POST,
        &endorsements,
        None,
        StatusCode::CONFLICT,
    )
    .await;
}

/// A uuid that names no row: `id` with its last digit changed.
fn uuid_like(id: &str) -> String {
    let (head, last) = id.split_at(id.len() - 1);
    format!("{head}{}", if last == "0" { "1" } else { "0" })
}
