//! Sessions (refresh-token families), logout, password reset, accounts for admins, the first
//! admin and password-hashing parameters, through the complete service app.

use std::sync::Arc;

use axum::http::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;
use crate::bus::{Bus, Envelope, Event, RetryPolicy};
use crate::db::Db;
use crate::identity::INTERNAL_HEADER;
use crate::service::{Settings, service_app};
use crate::test_support::{
    CHEAP_HASHING, MYSQL_PORT, MySqlDatabase, PgDatabase, call, infra_available, request,
    settings_with, sqlite_db,
};

const RESET_TTL_SECS: i64 = 1200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PasswordResetRequested {
    user_id: Uuid,
    email: String,
    username: String,
    token: String,
    expires_at: DateTime<Utc>,
}

impl Event for PasswordResetRequested {
    const NAME: &'static str = "user.password_reset_requested";
}

struct Harness {
    _stop_relay: tokio::sync::watch::Sender<bool>,
    app: Router,
    ctx: ServiceContext,
    settings: Arc<Settings>,
    anonymous: String,
    resets: mpsc::UnboundedReceiver<PasswordResetRequested>,
}

impl Harness {
    async fn new(db: Db) -> Harness {
        Self::with_settings(
            db,
            settings_with(|s| s.password_reset_ttl_secs = RESET_TTL_SECS),
        )
        .await
    }

    async fn with_settings(db: Db, settings: Arc<Settings>) -> Harness {
        db.migrate(&MIGRATIONS).await.expect("auth migrations");
        crate::events::prepare(&db).await.expect("event tables");
        let ctx = ServiceContext {
            service: "auth",
            db,
            bus: Bus::in_process(),
            settings: settings.clone(),
            events: Default::default(),
        };
        let (sender, resets) = mpsc::unbounded_channel();
        ctx.subscribe::<PasswordResetRequested, _, _>(
            RetryPolicy::default(),
            false,
            move |_: Envelope, event, tx| {
                let sender = sender.clone();
                async move {
                    sender
                        .send(event)
                        .map_err(|_| anyhow::anyhow!("receiver gone"))?;
                    Ok(tx)
                }
            },
        )
        .await
        .unwrap();
        let (stop_relay, stopping) = tokio::sync::watch::channel(false);
        tokio::spawn(crate::events::relay(ctx.clone(), stopping));
        let events = AuthEvents {
            registered: None,
            logged_in: None,
            password_reset: Some(PasswordResetRequested::NAME),
        };
        let anonymous = settings.internal_tokens.sign("auth", None).unwrap();
        Harness {
            _stop_relay: stop_relay,
            app: service_app(ctx.clone(), routes(events)),
            ctx,
            settings,
            anonymous,
            resets,
        }
    }

    fn internal_token(&self, user_id: Uuid, roles: &[&str]) -> String {
        let caller = Caller {
            user_id,
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        };
        self.settings
            .internal_tokens
            .sign("auth", Some(&caller))
            .unwrap()
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
        let token = self.internal_token(user_id, &["user"]);
        call(
            &self.app,
            request(Method::POST, path, Some(body), &[(INTERNAL_HEADER, &token)]),
        )
        .await
    }

    async fn get_with_roles(
        &self,
        path: &str,
        user_id: Uuid,
        roles: &[&str],
    ) -> (StatusCode, Value) {
        let token = self.internal_token(user_id, roles);
        call(
            &self.app,
            request(Method::GET, path, None, &[(INTERNAL_HEADER, &token)]),
        )
        .await
    }

    /// Registers an account; returns its id and refresh token.
    async fn register(&self, email: &str, username: &str, password: &str) -> (Uuid, String) {
        let (status, body) = self
            .post(
                "/auth/register",
                json!({ "email": email, "username": username, "password": password }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            serde_json::from_value(body["user_id"].clone()).unwrap(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/auth/login",
            json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Refreshes; the new refresh token on success.
    async fn refresh(&self, token: &str) -> Result<String, (StatusCode, Value)> {
        let (status, body) = self
            .post("/auth/refresh", json!({ "refresh_token": token }))
            .await;
        if status == StatusCode::OK {
            Ok(body["refresh_token"].as_str().unwrap().to_owned())
        } else {
            Err((status, body))
        }
    }

    async fn next_reset(&mut self) -> PasswordResetRequested {
        tokio::time::timeout(std::time::Duration::from_secs(20), self.resets.recv())
            .await
            .expect("password-reset event in time")
            .expect("open")
    }
}

fn unauthorized_refresh() -> (StatusCode, Value) {
    (
        StatusCode::UNAUTHORIZED,
        json!({ "error": "invalid or expired refresh token" }),
    )
}

async fn refresh_tokens_rotate_and_reuse_revokes_the_family(db: Db) {
    let h = Harness::new(db).await;
    let (_, t0) = h.register("ada@example.com", "ada", "correct horse").await;
    let t1 = h.refresh(&t0).await.expect("first rotation");
    let t2 = h.refresh(&t1).await.expect("second rotation");
    assert_ne!(t1, t2);

    // A second session of the same user, which the reuse below must not touch.
    let (status, body) = h.login("ada@example.com", "correct horse").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let other_session = body["refresh_token"].as_str().unwrap().to_owned();

    // t0 was used already: that call is refused, and so is every token of its family.
    assert_eq!(h.refresh(&t0).await.unwrap_err(), unauthorized_refresh());
    assert_eq!(h.refresh(&t2).await.unwrap_err(), unauthorized_refresh());
    assert_eq!(h.refresh(&t1).await.unwrap_err(), unauthorized_refresh());
    assert_eq!(h.refresh(&t0).await.unwrap_err(), unauthorized_refresh());

    let next = h.refresh(&other_session).await.expect("other session");
    h.refresh(&next)
        .await
        .expect("other session keeps rotating");

    assert_eq!(
        h.refresh("not-a-token").await.unwrap_err(),
        unauthorized_refresh()
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family_on_sqlite() {
    let (db, _dir) = sqlite_db().await;
    refresh_tokens_rotate_and_reuse_revokes_the_family(db).await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family_on_postgres() {
    if !infra_available(
        5432,
        "PostgreSQL",
        "refresh_tokens_rotate_and_reuse_revokes_the_family_on_postgres",
    ) {
        return;
    }
    let database = PgDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    refresh_tokens_rotate_and_reuse_revokes_the_family(db.clone()).await;
    db.close().await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family_on_mysql() {
    if !infra_available(
        MYSQL_PORT,
        "MySQL",
        "refresh_tokens_rotate_and_reuse_revokes_the_family_on_mysql",
    ) {
        return;
    }
    let database = MySqlDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    refresh_tokens_rotate_and_reuse_revokes_the_family(db.clone()).await;
    db.close().await;
}

#[tokio::test]
async fn logout_ends_only_the_callers_session() {
    let (db, _dir) = sqlite_db().await;
    let h = Harness::new(db).await;
    let (ada, ada_token) = h.register("ada@example.com", "ada", "correct horse").await;
    let (bob, bob_token) = h.register("bob@example.com", "bob", "battery staple").await;
    let (_, ada_second) = {
        let (_, body) = h.login("ada@example.com", "correct horse").await;
        (ada, body["refresh_token"].as_str().unwrap().to_owned())
    };

    // Anonymous: 401.
    let (status, _) = h
        .post("/auth/logout", json!({ "refresh_token": ada_token }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Bob cannot end Ada's session (and is not told so).
    let (status, body) = h
        .post_as("/auth/logout", json!({ "refresh_token": ada_token }), bob)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    let ada_token = h.refresh(&ada_token).await.expect("still valid");

    // Ada ends her session: its refresh token (the rotated one) no longer works.
    let (status, _) = h
        .post_as("/auth/logout", json!({ "refresh_token": ada_token }), ada)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.refresh(&ada_token).await.unwrap_err(),
        unauthorized_refresh()
    );
    // Her other session and Bob's are untouched.
    h.refresh(&ada_second).await.expect("other session of Ada");
    h.refresh(&bob_token).await.expect("Bob's session");
}

async fn password_reset_flow(db: Db) {
    let mut h = Harness::new(db.clone()).await;
    let (ada, session) = h.register("ada@example.com", "ada", "correct horse").await;

    // Unknown and known addresses get the same answer; only the known one gets an event.
    let unknown = h
        .post(
            "/auth/password-reset",
            json!({ "email": "nobody@example.com" }),
        )
        .await;
    let known = h
        .post(
            "/auth/password-reset",
            json!({ "email": " ADA@example.com " }),
        )
        .await;
    assert_eq!(unknown.0, StatusCode::ACCEPTED);
    assert_eq!(unknown, known);
    let event = h.next_reset().await;
    assert_eq!(event.user_id, ada);
    assert_eq!(event.email, "ada@example.com");
    assert_eq!(event.username, "ada");
    assert!(event.token.len() >= 43, "{}", event.token);
    let ttl = (event.expires_at - Utc::now()).num_seconds();
    assert!(ttl > 0 && ttl <= RESET_TTL_SECS, "{ttl}");
    // Only the token's hash is stored.
    let stored = db::query("SELECT token_hash FROM password_reset_tokens")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    let stored: String = stored[0].get("token_hash").unwrap();
    assert_eq!(stored, hash_refresh_token(&event.token));

    let bad_token = (
        StatusCode::BAD_REQUEST,
        json!({ "error": "invalid or expired password-reset token" }),
    );
    let confirm = |token: &str, password: &str| json!({ "token": token, "password": password });
    assert_eq!(
        h.post(
            "/auth/password-reset/confirm",
            confirm("wrong", "a new password")
        )
        .await,
        bad_token
    );
    // A password that fails validation does not use the token up.
    let (status, body) = h
        .post(
            "/auth/password-reset/confirm",
            confirm(&event.token, "short"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "password must be 8 to 256 characters");

    let (status, body) = h
        .post(
            "/auth/password-reset/confirm",
            confirm(&event.token, "a new password"),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Single use; the old password is gone, the new one works, every session is revoked.
    assert_eq!(
        h.post(
            "/auth/password-reset/confirm",
            confirm(&event.token, "yet another one")
        )
        .await,
        bad_token
    );
    assert_eq!(
        h.login("ada@example.com", "correct horse").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.login("ada@example.com", "a new password").await.0,
        StatusCode::OK
    );
    assert_eq!(
        h.refresh(&session).await.unwrap_err(),
        unauthorized_refresh()
    );

    // An expired token is refused.
    h.post(
        "/auth/password-reset",
        json!({ "email": "ada@example.com" }),
    )
    .await;
    let event = h.next_reset().await;
    db::query("UPDATE password_reset_tokens SET expires_at = $1")
        .bind(Utc::now() - chrono::Duration::seconds(1))
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(
        h.post(
            "/auth/password-reset/confirm",
            confirm(&event.token, "a third password")
        )
        .await,
        bad_token
    );
}

#[tokio::test]
async fn password_reset_on_sqlite() {
    let (db, _dir) = sqlite_db().await;
    password_reset_flow(db).await;
}

#[tokio::test]
async fn password_reset_on_postgres() {
    if !infra_available(5432, "PostgreSQL", "password_reset_on_postgres") {
        return;
    }
    let database = PgDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    password_reset_flow(db.clone()).await;
    db.close().await;
}

#[tokio::test]
async fn password_reset_on_mysql() {
    if !infra_available(MYSQL_PORT, "MySQL", "password_reset_on_mysql") {
        return;
    }
    let database = MySqlDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    password_reset_flow(db.clone()).await;
    db.close().await;
}

#[tokio::test]
async fn without_a_reset_event_there_is_no_password_reset() {
    let (db, _dir) = sqlite_db().await;
    db.migrate(&MIGRATIONS).await.unwrap();
    let settings = settings_with(|_| {});
    let ctx = ServiceContext {
        service: "auth",
        db,
        bus: Bus::in_process(),
        settings: settings.clone(),
        events: Default::default(),
    };
    let app = service_app(ctx, routes(AuthEvents::default()));
    let anonymous = settings.internal_tokens.sign("auth", None).unwrap();
    for path in ["/auth/password-reset", "/auth/password-reset/confirm"] {
        let (status, _) = call(
            &app,
            request(
                Method::POST,
                path,
                Some(json!({})),
                &[(INTERNAL_HEADER, &anonymous)],
            ),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

/// The account list pages with a cursor whose statement repeats a placeholder (`$1`), which
/// MySQL binds once per occurrence.
async fn only_admins_list_the_accounts_page_by_page(db: Db) {
    let h = Harness::new(db).await;
    let mut ids = Vec::new();
    for name in ["ada", "bob", "cyd"] {
        let (id, _) = h
            .register(&format!("{name}@example.com"), name, "correct horse")
            .await;
        ids.push(id);
    }

    let (status, body) = h.get_with_roles("/auth/users", ids[0], &["user"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, json!({ "error": "this requires the role `admin`" }));
    // The role is checked before anything else about the request.
    let (status, _) = h
        .get_with_roles("/auth/users?cursor=garbage", ids[0], &["user"])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &h.app,
        request(
            Method::GET,
            "/auth/users",
            None,
            &[(INTERNAL_HEADER, &h.anonymous)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let admin = Uuid::now_v7();
    let (status, first) = h
        .get_with_roles("/auth/users?limit=2", admin, &["user", "admin"])
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    // Newest first.
    assert_eq!(items[0]["user_id"], json!(ids[2]));
    assert_eq!(items[0]["email"], "cyd@example.com");
    assert_eq!(items[0]["roles"], json!(["user"]));
    assert!(items[0].get("password_hash").is_none());
    let cursor = first["next_cursor"].as_str().unwrap();
    let (status, second) = h
        .get_with_roles(
            &format!("/auth/users?limit=2&cursor={cursor}"),
            admin,
            &["admin"],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["user_id"], json!(ids[0]));
    assert_eq!(second["next_cursor"], Value::Null);

    // Me: the caller's own account.
    let (status, me) = h.get_with_roles("/auth/me", ids[1], &["user"]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "bob");
}

#[tokio::test]
async fn only_admins_list_the_accounts_page_by_page_on_sqlite() {
    let (db, _dir) = sqlite_db().await;
    only_admins_list_the_accounts_page_by_page(db).await;
}

#[tokio::test]
async fn only_admins_list_the_accounts_page_by_page_on_postgres() {
    if !infra_available(
        5432,
        "PostgreSQL",
        "only_admins_list_the_accounts_page_by_page_on_postgres",
    ) {
        return;
    }
    let database = PgDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    only_admins_list_the_accounts_page_by_page(db.clone()).await;
    db.close().await;
}

#[tokio::test]
async fn only_admins_list_the_accounts_page_by_page_on_mysql() {
    if !infra_available(
        MYSQL_PORT,
        "MySQL",
        "only_admins_list_the_accounts_page_by_page_on_mysql",
    ) {
        return;
    }
    let database = MySqlDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    only_admins_list_the_accounts_page_by_page(db.clone()).await;
    db.close().await;
}

#[tokio::test]
async fn the_first_admin_is_ensured_idempotently() {
    let (db, _dir) = sqlite_db().await;
    let h = Harness::new(db).await;

    let created = ensure_admin(&h.ctx, "Root@Example.com", "root", "admin password")
        .await
        .unwrap();
    let AdminAccount::Created(root) = created else {
        panic!("{created:?}")
    };
    assert_eq!(
        ensure_admin(&h.ctx, "root@example.com", "root", "another password")
            .await
            .unwrap(),
        AdminAccount::Unchanged(root)
    );
    // The password given first is the one that works; a later start does not change it.
    let (status, body) = h.login("root@example.com", "admin password").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let caller = h
        .settings
        .access_tokens
        .verify(body["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(caller.user_id, root);
    assert_eq!(caller.roles, ["user", "admin"]);
    assert_eq!(
        h.login("root@example.com", "another password").await.0,
        StatusCode::UNAUTHORIZED
    );

    // An existing account gains the role.
    let (ada, _) = h.register("ada@example.com", "ada", "correct horse").await;
    assert_eq!(
        ensure_admin(&h.ctx, "ada@example.com", "admin", "whatever it is")
            .await
            .unwrap(),
        AdminAccount::Promoted(ada)
    );
    let (_, me) = h.get_with_roles("/auth/me", ada, &["user"]).await;
    assert_eq!(me["roles"], json!(["user", "admin"]));
    assert_eq!(me["username"], "ada");

    // Invalid values are refused.
    let error = ensure_admin(&h.ctx, "not an address", "x", "short")
        .await
        .unwrap_err();
    assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    assert!(error.message().contains("email must be an e-mail address"));
}

#[test]
fn the_first_admin_comes_from_two_variables() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    };
    assert_eq!(AdminFromEnv::from_lookup(env(&[])).unwrap(), None);
    let admin = AdminFromEnv::from_lookup(env(&[
        ("SVCGEN_ADMIN_EMAIL", "root@example.com"),
        ("SVCGEN_ADMIN_PASSWORD", "admin password"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(admin.email, "root@example.com");
    assert_eq!(admin.username, "admin");
    assert!(!format!("{admin:?}").contains("admin password"));
    let named = AdminFromEnv::from_lookup(env(&[
        ("SVCGEN_ADMIN_EMAIL", "root@example.com"),
        ("SVCGEN_ADMIN_PASSWORD", "admin password"),
        ("SVCGEN_ADMIN_USERNAME", "root"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(named.username, "root");
    let half = AdminFromEnv::from_lookup(env(&[("SVCGEN_ADMIN_EMAIL", "root@example.com")]))
        .unwrap_err()
        .to_string();
    assert!(half.contains("SVCGEN_ADMIN_PASSWORD is not"), "{half}");
    assert!(
        AdminFromEnv::from_lookup(env(&[("SVCGEN_ADMIN_PASSWORD", "admin password")])).is_err()
    );
}

#[test]
fn argon2_parameters_come_from_the_environment() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    };
    assert_eq!(
        PasswordHashing::from_lookup(env(&[])).unwrap(),
        PasswordHashing {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1
        }
    );
    assert_eq!(PasswordHashing::default(), PasswordHashing::OWASP);
    assert_eq!(
        PasswordHashing::from_lookup(env(&[
            ("SVCGEN_ARGON2_MEMORY_KIB", "65536"),
            ("SVCGEN_ARGON2_ITERATIONS", "3"),
            ("SVCGEN_ARGON2_PARALLELISM", "4"),
        ]))
        .unwrap(),
        PasswordHashing {
            memory_kib: 65_536,
            iterations: 3,
            parallelism: 4
        }
    );
    let error = PasswordHashing::from_lookup(env(&[("SVCGEN_ARGON2_ITERATIONS", "many")]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("SVCGEN_ARGON2_ITERATIONS"), "{error}");
    // Less than 8 KiB per lane, or no pass at all, is not argon2.
    assert!(PasswordHashing::from_lookup(env(&[("SVCGEN_ARGON2_MEMORY_KIB", "4")])).is_err());
    assert!(PasswordHashing::from_lookup(env(&[("SVCGEN_ARGON2_ITERATIONS", "0")])).is_err());
}

#[tokio::test]
async fn hashes_follow_the_configured_parameters_and_are_renewed_at_login() {
    let (db, _dir) = sqlite_db().await;
    let h = Harness::new(db.clone()).await;
    let (ada, _) = h.register("ada@example.com", "ada", "correct horse").await;
    let stored = |db: Db| async move {
        let row = db::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(ada)
            .fetch_optional(&db)
            .await
            .unwrap()
            .unwrap();
        row.get::<String>("password_hash").unwrap()
    };
    let first = stored(db.clone()).await;
    assert!(first.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{first}");
    drop(h);

    // The same database under stronger parameters: the old hash still verifies, and the
    // login re-makes it.
    let stronger = PasswordHashing {
        memory_kib: 128,
        iterations: 2,
        parallelism: 1,
    };
    let h =
        Harness::with_settings(db.clone(), settings_with(|s| s.password_hashing = stronger)).await;
    assert_eq!(
        h.login("ada@example.com", "correct horse").await.0,
        StatusCode::OK
    );
    let renewed = stored(db.clone()).await;
    assert!(
        renewed.starts_with("$argon2id$v=19$m=128,t=2,p=1$"),
        "{renewed}"
    );
    assert!(!stronger.is_outdated(&renewed));
    assert!(CHEAP_HASHING.is_outdated(&renewed));
    assert_eq!(
        h.login("ada@example.com", "correct horse").await.0,
        StatusCode::OK
    );
    // Unknown address and wrong password still look alike under the new parameters.
    let wrong = h.login("ada@example.com", "wrong horse").await;
    let unknown = h.login("nobody@example.com", "correct horse").await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown);
}

/// A database migrated to version 1 only, with a refresh token in it, then upgraded.
async fn tokens_issued_before_the_families_keep_working(db: Db) {
    let v1 = db::Migrations {
        sqlite: &MIGRATIONS.sqlite[..1],
        postgres: &MIGRATIONS.postgres[..1],
        mysql: &MIGRATIONS.mysql[..1],
    };
    db.migrate(&v1).await.unwrap();
    let user = Uuid::now_v7();
    let now = db::now();
    db::query(
        "INSERT INTO users (id, email, username, password_hash, roles, created_at, updated_at) \
         VALUES ($1, 'old@example.com', 'old', 'x', '[\"user\"]', $2, $2)",
    )
    .bind(user)
    .bind(now)
    .execute(&db)
    .await
    .unwrap();
    db::query(
        "INSERT INTO refresh_tokens (id, user_id, token_hash, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(hash_refresh_token("old-token"))
    .bind(now + chrono::Duration::hours(1))
    .bind(now)
    .execute(&db)
    .await
    .unwrap();

    let h = Harness::new(db).await;
    let rotated = h
        .refresh("old-token")
        .await
        .expect("old token still works once");
    h.refresh(&rotated).await.expect("and rotates");
    assert_eq!(
        h.refresh("old-token").await.unwrap_err(),
        unauthorized_refresh()
    );
}

#[tokio::test]
async fn tokens_issued_before_the_families_keep_working_on_sqlite() {
    let (db, _dir) = sqlite_db().await;
    tokens_issued_before_the_families_keep_working(db).await;
}

#[tokio::test]
async fn tokens_issued_before_the_families_keep_working_on_postgres() {
    if !infra_available(
        5432,
        "PostgreSQL",
        "tokens_issued_before_the_families_keep_working_on_postgres",
    ) {
        return;
    }
    let database = PgDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    tokens_issued_before_the_families_keep_working(db.clone()).await;
    db.close().await;
}

#[tokio::test]
async fn tokens_issued_before_the_families_keep_working_on_mysql() {
    if !infra_available(
        MYSQL_PORT,
        "MySQL",
        "tokens_issued_before_the_families_keep_working_on_mysql",
    ) {
        return;
    }
    let database = MySqlDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    tokens_issued_before_the_families_keep_working(db.clone()).await;
    db.close().await;
}
