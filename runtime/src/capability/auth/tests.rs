//! The auth flows through the complete service app, on SQLite (and PostgreSQL and MySQL when
//! reachable).

use std::sync::Arc;

use axum::http::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;
use crate::bus::RetryPolicy;
use crate::bus::{Bus, Envelope, Event};
use crate::db::Db;
use crate::identity::INTERNAL_HEADER;
use crate::service::{Settings, service_app};
use crate::test_support::{
    MYSQL_PORT, MySqlDatabase, PgDatabase, call, infra_available, request, settings, sqlite_db,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AccountEvent {
    user_id: Uuid,
    email: String,
    username: String,
}

struct Registered(AccountEvent);
struct LoggedIn(AccountEvent);

#[derive(Serialize, Deserialize)]
struct UserRegistered(AccountEvent);
impl Event for UserRegistered {
    const NAME: &'static str = "user.registered";
}

#[derive(Serialize, Deserialize)]
struct UserLoggedIn(AccountEvent);
impl Event for UserLoggedIn {
    const NAME: &'static str = "user.logged_in";
}

struct Harness {
    /// Keeps the relay running; dropping it stops the relay.
    _stop_relay: tokio::sync::watch::Sender<bool>,
    app: Router,
    settings: Arc<Settings>,
    anonymous: String,
    registered: mpsc::UnboundedReceiver<Registered>,
    logged_in: mpsc::UnboundedReceiver<LoggedIn>,
}

impl Harness {
    async fn new(db: Db) -> Harness {
        db.migrate(&MIGRATIONS).await.expect("auth migrations");
        crate::events::prepare(&db).await.expect("event tables");
        let bus = Bus::in_process();
        let settings = settings();
        let ctx = ServiceContext {
            service: "auth",
            db,
            bus,
            settings: settings.clone(),
            events: Default::default(),
        };
        let (registered_tx, registered) = mpsc::unbounded_channel();
        ctx.subscribe::<UserRegistered, _, _>(
            RetryPolicy::default(),
            false,
            move |_: Envelope, event, tx| {
                let sender = registered_tx.clone();
                async move {
                    sender
                        .send(Registered(event.0))
                        .map_err(|_| anyhow::anyhow!("receiver gone"))?;
                    Ok(tx)
                }
            },
        )
        .await
        .unwrap();
        let (logged_in_tx, logged_in) = mpsc::unbounded_channel();
        ctx.subscribe::<UserLoggedIn, _, _>(
            RetryPolicy::default(),
            false,
            move |_: Envelope, event, tx| {
                let sender = logged_in_tx.clone();
                async move {
                    sender
                        .send(LoggedIn(event.0))
                        .map_err(|_| anyhow::anyhow!("receiver gone"))?;
                    Ok(tx)
                }
            },
        )
        .await
        .unwrap();
        // Events leave through the outbox: the relay runs as long as the test.
        let (stop_relay, stopping) = tokio::sync::watch::channel(false);
        tokio::spawn(crate::events::relay(ctx.clone(), stopping));
        let events = AuthEvents {
            registered: Some(UserRegistered::NAME),
            logged_in: Some(UserLoggedIn::NAME),
            password_reset: None,
        };
        let anonymous = settings.internal_tokens.sign("auth", None).unwrap();
        Harness {
            _stop_relay: stop_relay,
            app: service_app(ctx, routes(events)),
            settings,
            anonymous,
            registered,
            logged_in,
        }
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        call(
            &self.app,
            request(
                Method::POST,
                path,
                Some(body),
                &[(INTERNAL_HEADER, &self.anonymous)],
            ),
        )
        .await
    }

    async fn post_as(&self, path: &str, body: Value, user_id: Uuid) -> (StatusCode, Value) {
        let caller = Caller {
            user_id,
            roles: vec!["user".into()],
        };
        let token = self
            .settings
            .internal_tokens
            .sign("auth", Some(&caller))
            .unwrap();
        call(
            &self.app,
            request(Method::POST, path, Some(body), &[(INTERNAL_HEADER, &token)]),
        )
        .await
    }

    async fn get_as(&self, path: &str, user_id: Uuid) -> (StatusCode, Value) {
        let caller = Caller {
            user_id,
            roles: vec!["user".into()],
        };
        let token = self
            .settings
            .internal_tokens
            .sign("auth", Some(&caller))
            .unwrap();
        call(
            &self.app,
            request(Method::GET, path, None, &[(INTERNAL_HEADER, &token)]),
        )
        .await
    }
}

async fn next<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(20), receiver.recv())
        .await
        .expect("event in time")
        .expect("open")
}

/// Every flow, in order, against one database.
async fn auth_flows(db: Db) {
    let mut h = Harness::new(db).await;

    // Register: 201, a working access token, an event.
    let (status, body) = h
        .post(
            "/auth/register",
            json!({ "email": " Ada@Example.COM ", "username": "ada", "password": "correct horse" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user_id: Uuid = serde_json::from_value(body["user_id"].clone()).unwrap();
    let caller = h
        .settings
        .access_tokens
        .verify(body["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(caller.user_id, user_id);
    assert_eq!(caller.roles, ["user"]);
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 43)
    );
    let Registered(event) = next(&mut h.registered).await;
    assert_eq!(
        event,
        AccountEvent {
            user_id,
            email: "ada@example.com".into(),
            username: "ada".into()
        }
    );

    // The same address in another case is a duplicate.
    let (status, body) = h.post("/auth/register", json!({ "email": "ADA@example.com", "username": "other", "password": "another password" })).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body,
        json!({ "error": "an account with this e-mail address already exists" })
    );

    // Every validation problem at once.
    let (status, body) = h
        .post(
            "/auth/register",
            json!({ "email": "nope", "username": "  ", "password": "short" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        "email must be an e-mail address; username must be 1 to 64 characters; password must be 8 to 256 characters"
    );
    let (status, body) = h
        .post(
            "/auth/register",
            json!({ "email": "x@y.z", "password": "long enough" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("missing field `username`"),
        "{body}"
    );

    // Login: case-insensitive address, an event; wrong password and unknown address look alike.
    let (status, body) = h
        .post(
            "/auth/login",
            json!({ "email": "ada@EXAMPLE.com", "password": "correct horse" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        h.settings
            .access_tokens
            .verify(body["access_token"].as_str().unwrap())
            .unwrap()
            .user_id,
        user_id
    );
    let LoggedIn(event) = next(&mut h.logged_in).await;
    assert_eq!(event.user_id, user_id);
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();

    let wrong_password = h
        .post(
            "/auth/login",
            json!({ "email": "ada@example.com", "password": "wrong horse" }),
        )
        .await;
    let unknown_email = h
        .post(
            "/auth/login",
            json!({ "email": "bob@example.com", "password": "correct horse" }),
        )
        .await;
    assert_eq!(wrong_password.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password, unknown_email);
    assert_eq!(
        wrong_password.1,
        json!({ "error": "invalid e-mail or password" })
    );

    // Refresh rotates: the new pair works, the old refresh token no longer does.
    let (status, body) = h
        .post("/auth/refresh", json!({ "refresh_token": refresh_token }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rotated = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, refresh_token);
    let (status, _) = h
        .post("/auth/refresh", json!({ "refresh_token": refresh_token }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Logout needs a signed-in caller, revokes, and is idempotent.
    assert_eq!(
        h.post("/auth/logout", json!({ "refresh_token": rotated }))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.post_as("/auth/logout", json!({ "refresh_token": rotated }), user_id)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.post_as("/auth/logout", json!({ "refresh_token": rotated }), user_id)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.post("/auth/refresh", json!({ "refresh_token": rotated }))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    // The caller's own account.
    let (status, body) = h.get_as("/auth/me", user_id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["roles"], json!(["user"]));
    assert_eq!(
        h.get_as("/auth/me", Uuid::now_v7()).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = call(
        &h.app,
        request(
            Method::GET,
            "/auth/me",
            None,
            &[(INTERNAL_HEADER, &h.anonymous)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Without the internal credential nothing works, not even registration.
    let (status, _) = call(
        &h.app,
        request(Method::POST, "/auth/register", Some(json!({})), &[]),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn auth_flows_on_sqlite() {
    let (db, _dir) = sqlite_db().await;
    auth_flows(db).await;
}

#[tokio::test]
async fn auth_flows_on_postgres() {
    if !infra_available(5432, "PostgreSQL", "auth_flows_on_postgres") {
        return;
    }
    let database = PgDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    auth_flows(db.clone()).await;
    db.close().await;
}

#[tokio::test]
async fn auth_flows_on_mysql() {
    if !infra_available(MYSQL_PORT, "MySQL", "auth_flows_on_mysql") {
        return;
    }
    let database = MySqlDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    auth_flows(db.clone()).await;
    db.close().await;
}

#[tokio::test]
async fn expired_refresh_tokens_are_refused() {
    let (db, _dir) = sqlite_db().await;
    let h = Harness::new(db.clone()).await;
    let (_, body) = h
        .post(
            "/auth/register",
            json!({ "email": "c@d.ef", "username": "c", "password": "password1" }),
        )
        .await;
    let token = body["refresh_token"].as_str().unwrap();
    db::query("UPDATE refresh_tokens SET expires_at = $1")
        .bind(Utc::now() - chrono::Duration::seconds(1))
        .execute(&db)
        .await
        .unwrap();
    let (status, body) = h
        .post("/auth/refresh", json!({ "refresh_token": token }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({ "error": "invalid or expired refresh token" }));
}

#[test]
fn refresh_tokens_are_stored_hashed() {
    let hash = hash_refresh_token("token");
    assert_eq!(hash.len(), 64);
    assert_ne!(hash, "token");
    assert_eq!(hash, hash_refresh_token("token"));
}
