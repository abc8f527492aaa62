use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::*;
use crate::bus::Bus;
use crate::db::Db;
use crate::identity::INTERNAL_HEADER;
use crate::service::service_app;
use crate::test_support::{
    MYSQL_PORT, MySqlDatabase, PgDatabase, call, infra_available, request, settings, sqlite_db,
};

async fn count(db: &Db) -> i64 {
    db::query("SELECT COUNT(*) AS n FROM notifications")
        .fetch_optional(db)
        .await
        .unwrap()
        .unwrap()
        .get("n")
        .unwrap()
}

/// Idempotency and the paginated listing, against one database.
async fn notify_flows(db: Db) {
    db.migrate(&MIGRATIONS).await.expect("notify migrations");
    let ada = Uuid::now_v7();
    let bob = Uuid::now_v7();

    // The same event twice (a redelivery) stores one notification.
    let event = Uuid::now_v7();
    notify(&db, event, ada, "welcome", "Welcome, Ada!")
        .await
        .unwrap();
    notify(&db, event, ada, "welcome", "Welcome, Ada!")
        .await
        .unwrap();
    assert_eq!(count(&db).await, 1);

    for n in 1..=4 {
        notify(&db, Uuid::now_v7(), ada, "note", &format!("note {n}"))
            .await
            .unwrap();
    }
    notify(&db, Uuid::now_v7(), bob, "welcome", "Welcome, Bob!")
        .await
        .unwrap();

    let settings = settings();
    let app_ctx_db = db.clone();
    let ctx = ServiceContext {
        service: "notification",
        db,
        bus: Bus::in_process(),
        settings: settings.clone(),
        events: Default::default(),
    };
    let app = service_app(ctx, routes());
    let as_ada = settings
        .internal_tokens
        .sign(
            "notification",
            Some(&Caller {
                user_id: ada,
                roles: vec![],
            }),
        )
        .unwrap();
    let list = |uri: String| {
        let app = app.clone();
        let token = as_ada.clone();
        async move {
            call(
                &app,
                request(Method::GET, &uri, None, &[(INTERNAL_HEADER, &token)]),
            )
            .await
        }
    };

    // Newest first, three per page, only Ada's.
    let (status, first) = list("/notifications?limit=3".into()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let messages = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["message"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(messages(&first), ["note 4", "note 3", "note 2"]);
    assert!(first["items"][0]["id"].is_string() && first["items"][0]["created_at"].is_string());
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a full page has a next cursor");

    let (_, second) = list(format!("/notifications?limit=3&cursor={cursor}")).await;
    assert_eq!(messages(&second), ["note 1", "Welcome, Ada!"]);
    assert_eq!(second["next_cursor"], Value::Null);

    let (status, body) = list("/notifications?cursor=bogus".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid cursor")
    );

    let anonymous = settings.internal_tokens.sign("notification", None).unwrap();
    let (status, _) = call(
        &app,
        request(
            Method::GET,
            "/notifications",
            None,
            &[(INTERNAL_HEADER, &anonymous)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // An alert for admins: Bob (an admin) sees it merged into his own, newest first, paged
    // with the same cursor; Ada (a user) never sees it.
    let alert = Uuid::now_v7();
    notify_role(&app_ctx_db, alert, "admin", "low_stock", "Only 2 left.")
        .await
        .unwrap();
    notify_role(&app_ctx_db, alert, "admin", "low_stock", "Only 2 left.")
        .await
        .unwrap();
    let as_bob = settings
        .internal_tokens
        .sign(
            "notification",
            Some(&Caller {
                user_id: bob,
                roles: vec!["user".into(), "admin".into()],
            }),
        )
        .unwrap();
    let list_as = |token: String, uri: &'static str| {
        let app = app.clone();
        async move {
            call(
                &app,
                request(Method::GET, uri, None, &[(INTERNAL_HEADER, &token)]),
            )
            .await
        }
    };
    let (_, bobs) = list_as(as_bob.clone(), "/notifications").await;
    assert_eq!(messages(&bobs), ["Only 2 left.", "Welcome, Bob!"]);
    let (_, first) = list_as(as_bob, "/notifications?limit=1").await;
    assert_eq!(messages(&first), ["Only 2 left."]);
    let (_, adas) = list_as(as_ada.clone(), "/notifications?limit=100").await;
    assert!(!messages(&adas).contains(&"Only 2 left.".to_owned()));
    assert_ne!(role_recipient("admin"), role_recipient("user"));
}

#[tokio::test]
async fn notify_on_sqlite() {
    let (db, _dir) = sqlite_db().await;
    notify_flows(db).await;
}

#[tokio::test]
async fn notify_on_postgres() {
    if !infra_available(5432, "PostgreSQL", "notify_on_postgres") {
        return;
    }
    let database = PgDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    notify_flows(db.clone()).await;
    db.close().await;
}

#[tokio::test]
async fn notify_on_mysql() {
    if !infra_available(MYSQL_PORT, "MySQL", "notify_on_mysql") {
        return;
    }
    let database = MySqlDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    notify_flows(db.clone()).await;
    db.close().await;
}
