//! Scheduled jobs: run by an admin and by their schedule.

use super::*;

pub(super) async fn jobs_hold(gateway: &str, tag: &str) {
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
