//! Attacks on the committed generated notes system, through its gateway (and, distributed,
//! straight at the services), embedded and distributed: the same list of attacks in both modes
//! (see [`attack`]). Every attack asserts the exact status AND that nothing changed: the
//! victim's notes are byte for byte what they were, the attacker's list stays empty, injected
//! text comes back exactly as sent.
//!
//! The distributed test needs PostgreSQL on 127.0.0.1:5432 and RabbitMQ on 127.0.0.1:5672; it
//! says `SKIPPED` when they are unreachable, and fails instead when `SVCGEN_REQUIRE_INFRA=1`.
//!
//! Every simulated person talks from a loopback address of their own (127.0.0.x), so that the
//! gateway's per-IP limit on the credential routes (10 a minute) only bites the login flood.

mod harness;
mod support;

use harness::{Distributed, Running, System, infrastructure, runtime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The system's name: issuer and audience of its access tokens.
const SYSTEM: &str = "notes";
/// The gateway's route prefix.
const PREFIX: &str = "/api/v1";
/// The first administrator, created from SVCGEN_ADMIN_EMAIL / SVCGEN_ADMIN_PASSWORD.
const ADMIN_EMAIL: &str = "root-admin@example.com";
const ADMIN_PASSWORD: &str = "admin passphrase 4 attacks";
/// Everybody's password (except where the password itself is the attack).
const PASSWORD: &str = "correct horse battery";
/// Neither the system's access-token secret nor its internal one.
const ATTACKER_SECRET: &[u8] = b"mallory-signing-key-Zx81qPv0Lm3Ns7Rb5Tc9Wd2Kf4";
/// The body-size limit of the gateway (1 MiB) and what the attacks send (3 MB).
const BODY_LIMIT: usize = 1024 * 1024;
const HUGE: usize = 3 * 1000 * 1000;

// Source addresses, one per simulated person (127.0.0.<host>).
const ALICE: u8 = 101;
const MALLORY: u8 = 102;
const EVE: u8 = 103;
const ADMIN: u8 = 104;
const INJECTORS: [u8; 3] = [110, 111, 112];
const PROBER_A: u8 = 113;
const PROBER_B: u8 = 114;
const BIG_BODY: u8 = 115;
const FLOOD_OWNER: u8 = 116;
const FLOODER: u8 = 77;
const CAROL: u8 = 117;
const ANONYMOUS: u8 = 118;

/// Strings that break naively built SQL, and unicode that breaks naive text handling
/// (no NUL: PostgreSQL refuses it in text). Each is at most 64 characters (a username's limit).
const INJECTIONS: &[&str] = &[
    "'; DROP TABLE note; --",
    "\" OR 1=1 --",
    "' OR '1'='1",
    "Robert'); DROP TABLE users;--",
    "1; DELETE FROM note WHERE 1=1; --",
    "x' UNION SELECT id, email, password_hash FROM users --",
    "\\'; DROP TABLE refresh_tokens; -- $1 $2 ? %s",
    "/* */ ; SELECT pg_sleep(10); -- ` ; sqlite_master",
    "Ünïcødé ʼ OR ʼ1ʼ=ʼ1 — 表 ＇；ＤＲＯＰ 😈 \u{202e}txet\u{200b}",
];

fn notes() -> System {
    System::committed("notes")
}

/// A client whose connections come from `127.0.0.<host>`.
fn client_from(host: u8) -> Client {
    Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, host]))
        .no_proxy()
        .build()
        .expect("client")
}

/// An answer: status, headers, and the body as JSON (Null when not JSON).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    /// The answer is `expected` with a JSON `{"error": "<non-empty>"}`.
    fn error(&self, expected: StatusCode, context: &str) -> &Self {
        assert_eq!(self.status, expected, "{context}: {}", self.body);
        assert!(
            self.body["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{context}: no JSON error in {:?}",
            self
        );
        self
    }

    /// A gateway 401: JSON error and `WWW-Authenticate: Bearer`.
    fn unauthorized(&self, context: &str) -> &Self {
        self.error(StatusCode::UNAUTHORIZED, context);
        assert_eq!(
            self.headers
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "{context}"
        );
        self
    }

    fn ok(&self, expected: StatusCode, context: &str) -> &Value {
        assert_eq!(self.status, expected, "{context}: {}", self.body);
        &self.body
    }
}

async fn send(request: RequestBuilder) -> Answer {
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// One person's (or one attacker's) connection to the gateway.
#[derive(Clone)]
struct Peer {
    http: Client,
    gateway: String,
}

impl Peer {
    fn new(gateway: &str, host: u8) -> Peer {
        Peer {
            http: client_from(host),
            gateway: gateway.to_owned(),
        }
    }

    /// A request to `<gateway>/api/v1<path>`.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{PREFIX}{path}", self.gateway))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self.request(method, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        send(request).await
    }
}

/// A registered account and its current tokens.
struct Person {
    peer: Peer,
    email: String,
    username: String,
    password: String,
    id: String,
    access: String,
    refresh: String,
}

impl Person {
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        self.peer.call(method, path, Some(&self.access), body).await
    }

    /// The caller's notes (all of them: fewer than one page).
    async fn notes(&self) -> Vec<Value> {
        let answer = self.call(Method::GET, "/notes?limit=100", None).await;
        let page = answer.ok(StatusCode::OK, "list notes");
        assert!(page["next_cursor"].is_null(), "one page: {page}");
        page["items"].as_array().cloned().expect("items")
    }

    async fn me(&self) -> Value {
        self.call(Method::GET, "/auth/me", None)
            .await
            .ok(StatusCode::OK, "me")
            .clone()
    }
}

async fn register(peer: Peer, email: &str, username: &str, password: &str) -> Person {
    let answer = peer
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(&json!({"email": email, "username": username, "password": password})),
        )
        .await;
    let body = answer.ok(StatusCode::CREATED, &format!("register {email}"));
    Person {
        email: email.to_owned(),
        username: username.to_owned(),
        password: password.to_owned(),
        id: body["user_id"].as_str().expect("user_id").to_owned(),
        access: body["access_token"].as_str().expect("access").to_owned(),
        refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
        peer,
    }
}

async fn login(peer: &Peer, email: &str, password: &str) -> Answer {
    peer.call(
        Method::POST,
        "/auth/login",
        None,
        Some(&json!({"email": email, "password": password})),
    )
    .await
}

async fn refresh(peer: &Peer, token: &str) -> Answer {
    peer.call(
        Method::POST,
        "/auth/refresh",
        None,
        Some(&json!({ "refresh_token": token })),
    )
    .await
}

/// Every notification of the caller once those of `kinds` have come (bounded wait).
async fn notifications_with(person: &Person, kinds: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = person.call(Method::GET, "/notifications", None).await;
        let items = answer.ok(StatusCode::OK, "notifications")["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let found: Vec<&str> = items.iter().filter_map(|n| n["kind"].as_str()).collect();
        if kinds.iter().all(|k| found.contains(k)) || Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Forged tokens.

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a valid access token for `sub`.
fn access_claims(sub: &str) -> Value {
    let now = now();
    json!({
        "sub": sub, "iss": SYSTEM, "aud": SYSTEM,
        "exp": now + 600, "nbf": now - 5, "iat": now - 5, "roles": ["user"],
    })
}

/// The claims of a valid gateway-to-service token for `service`, carrying `sub`.
fn internal_claims(service: &str, sub: &str, roles: &[&str]) -> Value {
    let now = now();
    json!({
        "sub": sub, "iss": "gateway", "aud": service,
        "exp": now + 60, "nbf": now - 5, "iat": now - 5, "roles": roles,
    })
}

fn sign(algorithm: Algorithm, kid: Option<&str>, claims: &Value, secret: &[u8]) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("signs")
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// A token with any header and claims, and no signature at all.
fn unsigned(header: Value, claims: &Value) -> String {
    format!("{}.{}.", b64(&header), b64(claims))
}

/// `token` with its claims changed and its original signature kept.
fn tamper(token: &str, change: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT");
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url")).unwrap();
    change(&mut claims);
    format!("{}.{}.{}", parts[0], b64(&claims), parts[2])
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

/// Percent-encodes everything but unreserved characters (one path segment).
fn pct(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The attacks.

/// Where the services listen in distributed mode (the `serve` processes' printed addresses).
struct Services {
    auth: String,
    notes: String,
    notification: String,
}

/// What every attack checks afterwards: the victim and her notes, the attacker.
struct World<'a> {
    gateway: &'a str,
    jwt_secret: &'a [u8],
    internal_secret: &'a [u8],
    alice: Person,
    /// Alice's notes as they were before any attack, newest first.
    alice_notes: Vec<Value>,
    /// The note every attack goes after.
    target: String,
    mallory: Person,
}

impl World<'_> {
    /// Alice's notes are exactly what they were (same text, same `updated_at`), each one still
    /// readable by her, and mallory has no note.
    async fn assert_untouched(&self, context: &str) {
        assert_eq!(
            self.alice.notes().await,
            self.alice_notes,
            "{context}: the victim's notes changed"
        );
        for note in &self.alice_notes {
            let id = note["id"].as_str().unwrap();
            let answer = self
                .alice
                .call(Method::GET, &format!("/notes/{id}"), None)
                .await;
            assert_eq!(answer.ok(StatusCode::OK, context), note, "{context}");
        }
        assert_eq!(
            self.mallory.notes().await,
            Vec::<Value>::new(),
            "{context}: the attacker owns a note"
        );
    }

    fn target_path(&self) -> String {
        format!("/notes/{}", self.target)
    }
}

/// Runs every attack against the system whose gateway is at `gateway`; `services` in
/// distributed mode (then the services are attacked directly too). `jwt_secret` and
/// `internal_secret` are the system's own, used to make tokens that differ from valid ones in
/// exactly one respect (and, as controls, valid ones).
async fn attack(
    gateway: &str,
    services: Option<&Services>,
    jwt_secret: &[u8],
    internal_secret: &[u8],
) {
    let health = send(client_from(ANONYMOUS).get(format!("{gateway}/health"))).await;
    assert_eq!(health.ok(StatusCode::OK, "health")["status"], "ok");

    // The victim and the attacker.
    let alice = register(
        Peer::new(gateway, ALICE),
        "alice@example.com",
        "alice",
        PASSWORD,
    )
    .await;
    for (title, body) in [("diary", "my secret"), ("plans", "do not share")] {
        alice
            .call(
                Method::POST,
                "/notes",
                Some(&json!({"title": title, "body": body, "tags": ["private"]})),
            )
            .await
            .ok(StatusCode::CREATED, "alice writes");
    }
    let alice_notes = alice.notes().await;
    assert_eq!(alice_notes.len(), 2);
    let target = alice_notes[0]["id"].as_str().unwrap().to_owned();
    let mallory = register(
        Peer::new(gateway, MALLORY),
        "mallory@example.com",
        "mallory",
        PASSWORD,
    )
    .await;
    let world = World {
        gateway,
        jwt_secret,
        internal_secret,
        alice,
        alice_notes,
        target,
        mallory,
    };
    world.assert_untouched("before any attack").await;

    forged_tokens(&world).await;
    world.assert_untouched("forged tokens").await;
    spoofed_identity_headers(&world).await;
    world.assert_untouched("spoofed identity headers").await;
    match services {
        Some(services) => {
            direct_service_calls(&world, services).await;
            world.assert_untouched("direct service calls").await;
        }
        None => eprintln!("embedded mode: no service port to attack directly"),
    }
    cross_user_access(&world).await;
    world.assert_untouched("cross-user access").await;
    admin_routes(&world).await;
    world.assert_untouched("admin routes").await;
    sql_injection(&world).await;
    world.assert_untouched("SQL injection").await;
    huge_bodies(&world).await;
    world.assert_untouched("huge bodies").await;
    let flooded = login_flood(&world).await;
    world.assert_untouched("login flood").await;
    refresh_token_reuse(&world).await;
    world.assert_untouched("refresh-token reuse").await;

    // The request refused with 429 never reached the auth service: no login was recorded for
    // the flooded account (its welcome, emitted before, has arrived by now).
    let items = notifications_with(&flooded, &["welcome"]).await;
    let kinds: Vec<&str> = items.iter().filter_map(|n| n["kind"].as_str()).collect();
    assert_eq!(kinds, ["welcome"], "flooded account: {items:?}");

    // A keep-alive client's request after a 413 on the same connection.
    early_413_closes_cleanly_or_keeps_serving(gateway, BIG_BODY, &world.mallory.access).await;
    world
        .assert_untouched("3 MB body on a raw connection")
        .await;
}

/// Requests each forged token is tried on: reads and writes of the victim's note, a note
/// planted in her name, her account, the admin list.
fn token_targets(world: &World<'_>) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/auth/me".into(), None),
        (Method::GET, world.target_path(), None),
        (
            Method::PATCH,
            world.target_path(),
            Some(json!({"title": "pwned"})),
        ),
        (Method::DELETE, world.target_path(), None),
        (
            Method::POST,
            "/notes".into(),
            Some(json!({"title": "planted", "body": "by a forged token"})),
        ),
        (Method::GET, "/notes".into(), None),
        (Method::GET, "/notifications".into(), None),
        (Method::GET, "/auth/users".into(), None),
    ]
}

async fn forged_tokens(world: &World<'_>) {
    let alice = world.alice.id.as_str();
    let secret = world.jwt_secret;
    let valid = access_claims(alice);
    let k1 = Some("k1");

    // Controls: tokens made here with the system's own key and valid claims are accepted, so
    // every refusal below is due to the one thing that differs.
    let control = sign(
        Algorithm::HS256,
        k1,
        &access_claims(&world.mallory.id),
        secret,
    );
    let me = world
        .mallory
        .peer
        .call(Method::GET, "/auth/me", Some(&control), None)
        .await;
    assert_eq!(
        me.ok(StatusCode::OK, "control token")["user_id"],
        world.mallory.id.as_str()
    );
    let control = sign(Algorithm::HS256, k1, &valid, secret);
    let read = world
        .mallory
        .peer
        .call(Method::GET, &world.target_path(), Some(&control), None)
        .await;
    assert_eq!(
        read.ok(StatusCode::OK, "control token for alice"),
        &world.alice_notes[0]
    );

    let admin_roles = json!(["user", "admin"]);
    let forged: Vec<(&str, String)> = vec![
        (
            "signed with another secret",
            sign(Algorithm::HS256, k1, &valid, ATTACKER_SECRET),
        ),
        (
            "signed with another secret, admin role",
            sign(
                Algorithm::HS256,
                k1,
                &with(valid.clone(), "roles", admin_roles.clone()),
                ATTACKER_SECRET,
            ),
        ),
        (
            "alg none, no signature",
            unsigned(json!({"alg": "none", "typ": "JWT", "kid": "k1"}), &valid),
        ),
        (
            "alg None, no signature",
            unsigned(json!({"alg": "None", "typ": "JWT", "kid": "k1"}), &valid),
        ),
        (
            "alg none, the signature of a real token kept",
            format!(
                "{}{}",
                unsigned(json!({"alg": "none", "typ": "JWT", "kid": "k1"}), &valid),
                world.mallory.access.rsplit('.').next().unwrap()
            ),
        ),
        (
            "alg HS256, signature stripped",
            unsigned(json!({"alg": "HS256", "typ": "JWT", "kid": "k1"}), &valid),
        ),
        (
            "HS384 with the system's secret",
            sign(Algorithm::HS384, k1, &valid, secret),
        ),
        (
            "HS512 with the system's secret",
            sign(Algorithm::HS512, k1, &valid, secret),
        ),
        (
            "expired an hour ago",
            sign(
                Algorithm::HS256,
                k1,
                &json!({"sub": alice, "iss": SYSTEM, "aud": SYSTEM, "exp": now() - 3600,
                        "nbf": now() - 7200, "iat": now() - 7200, "roles": ["user"]}),
                secret,
            ),
        ),
        (
            "not valid before an hour from now",
            sign(
                Algorithm::HS256,
                k1,
                &json!({"sub": alice, "iss": SYSTEM, "aud": SYSTEM, "exp": now() + 7200,
                        "nbf": now() + 3600, "iat": now(), "roles": ["user"]}),
                secret,
            ),
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::HS256,
                k1,
                &with(valid.clone(), "iss", json!("evil")),
                secret,
            ),
        ),
        (
            "issuer gateway (an internal token's)",
            sign(
                Algorithm::HS256,
                k1,
                &with(valid.clone(), "iss", json!("gateway")),
                secret,
            ),
        ),
        (
            "wrong audience",
            sign(
                Algorithm::HS256,
                k1,
                &with(valid.clone(), "aud", json!("notes-admin")),
                secret,
            ),
        ),
        ("no kid", sign(Algorithm::HS256, None, &valid, secret)),
        (
            "unknown kid",
            sign(Algorithm::HS256, Some("k2"), &valid, secret),
        ),
        (
            "kid with SQL",
            sign(Algorithm::HS256, Some("k1' OR '1'='1"), &valid, secret),
        ),
        (
            "kid path traversal",
            sign(
                Algorithm::HS256,
                Some("../../../../dev/null"),
                &valid,
                secret,
            ),
        ),
        (
            "no exp",
            sign(Algorithm::HS256, k1, &without(valid.clone(), "exp"), secret),
        ),
        (
            "no nbf",
            sign(Algorithm::HS256, k1, &without(valid.clone(), "nbf"), secret),
        ),
        (
            "no iss",
            sign(Algorithm::HS256, k1, &without(valid.clone(), "iss"), secret),
        ),
        (
            "no aud",
            sign(Algorithm::HS256, k1, &without(valid.clone(), "aud"), secret),
        ),
        (
            "no sub",
            sign(Algorithm::HS256, k1, &without(valid.clone(), "sub"), secret),
        ),
        (
            "sub is not a user id",
            sign(
                Algorithm::HS256,
                k1,
                &with(valid.clone(), "sub", json!("' OR 1=1 --")),
                secret,
            ),
        ),
        (
            "mallory's token with sub changed to alice, old signature",
            tamper(&world.mallory.access, |claims| claims["sub"] = json!(alice)),
        ),
        (
            "mallory's token with the admin role added, old signature",
            tamper(&world.mallory.access, |claims| {
                claims["roles"] = admin_roles.clone()
            }),
        ),
        (
            "mallory's token with exp pushed back, old signature",
            tamper(&world.mallory.access, |claims| {
                claims["exp"] = json!(now() + 86_400 * 365)
            }),
        ),
        (
            "an internal token (signed with the internal secret) as a bearer token",
            sign(
                Algorithm::HS256,
                None,
                &internal_claims("notes", alice, &["user"]),
                world.internal_secret,
            ),
        ),
        (
            "alice's claims under the internal secret",
            sign(Algorithm::HS256, k1, &valid, world.internal_secret),
        ),
        ("a key URL (jku, x5u) pointing at the attacker's key", {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("k1".into());
            header.jku = Some("http://127.0.0.1:9/jwks.json".into());
            header.x5u = Some("http://127.0.0.1:9/cert.pem".into());
            jsonwebtoken::encode(&header, &valid, &EncodingKey::from_secret(ATTACKER_SECRET))
                .expect("signs")
        }),
        ("a refresh token as bearer", world.alice.refresh.clone()),
        ("garbage", "not.a.token".to_owned()),
        ("two dots only", "..".to_owned()),
    ];

    for (what, token) in &forged {
        for (method, path, body) in token_targets(world) {
            let answer = world
                .mallory
                .peer
                .call(method.clone(), &path, Some(token), body.as_ref())
                .await;
            answer.unauthorized(&format!("{what}: {method} {path}"));
        }
    }

    // HEAD is GET without a body: the same check.
    let answer = send(
        world
            .mallory
            .peer
            .request(Method::HEAD, &world.target_path()),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "HEAD without a token"
    );
    let answer = send(
        world
            .mallory
            .peer
            .request(Method::HEAD, &world.target_path())
            .bearer_auth(&forged[0].1),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "HEAD, forged token"
    );

    // Other ways of presenting credentials are not bearer tokens.
    let basic = URL_SAFE_NO_PAD.encode(format!("{}:{PASSWORD}", world.alice.email));
    let answer = send(
        world
            .mallory
            .peer
            .request(Method::GET, "/notes")
            .header("authorization", format!("Basic {basic}")),
    )
    .await;
    answer.unauthorized("basic authentication");
    let answer = send(
        world
            .mallory
            .peer
            .request(Method::GET, &format!("/notes?access_token={control}")),
    )
    .await;
    answer.unauthorized("a token in the query string");
    let answer = send(
        world
            .mallory
            .peer
            .request(Method::GET, "/notes")
            .header("cookie", format!("access_token={control}")),
    )
    .await;
    answer.unauthorized("a token in a cookie");
}

async fn spoofed_identity_headers(world: &World<'_>) {
    let alice = world.alice.id.as_str();
    // A VALID internal credential for each service, carrying alice as an admin: the gateway
    // must drop it (and every other identity header) and put its own in its place.
    let internal_for = |service: &str| {
        sign(
            Algorithm::HS256,
            None,
            &internal_claims(service, alice, &["user", "admin"]),
            world.internal_secret,
        )
    };
    let spoof = |request: RequestBuilder, service: &str| {
        request
            .header("x-user-id", alice)
            .header("x-user-roles", "admin")
            .header("x-forwarded-user", alice)
            .header("x-svcgen-internal", internal_for(service))
            .header("x-svcgen-user", alice)
    };

    // Without a token: 401 on every user route, whatever the headers say.
    let anonymous = Peer::new(world.gateway, ANONYMOUS);
    for (method, path, service) in [
        (Method::GET, "/notes".to_owned(), "notes"),
        (Method::GET, world.target_path(), "notes"),
        (Method::DELETE, world.target_path(), "notes"),
        (Method::GET, "/auth/me".to_owned(), "auth"),
        (Method::GET, "/auth/users".to_owned(), "auth"),
        (Method::GET, "/notifications".to_owned(), "notification"),
        (
            Method::GET,
            "/admin/notification/dead-letters".to_owned(),
            "notification",
        ),
    ] {
        let answer = send(spoof(anonymous.request(method.clone(), &path), service)).await;
        answer.unauthorized(&format!("spoofed headers, no token: {method} {path}"));
    }
    for (method, body) in [
        (Method::PATCH, json!({"title": "pwned"})),
        (Method::POST, json!({"title": "planted", "body": "x"})),
    ] {
        let path = if method == Method::POST {
            "/notes".to_owned()
        } else {
            world.target_path()
        };
        let answer =
            send(spoof(anonymous.request(method.clone(), &path), "notes").json(&body)).await;
        answer.unauthorized(&format!("spoofed headers, no token: {method} {path}"));
    }

    // With mallory's token: still mallory, and only mallory.
    let mallory = &world.mallory;
    let as_mallory = |method: Method, path: &str, service: &str| {
        spoof(mallory.peer.request(method, path), service).bearer_auth(&mallory.access)
    };
    let me = send(as_mallory(Method::GET, "/auth/me", "auth")).await;
    let me = me.ok(StatusCode::OK, "spoofed me");
    assert_eq!(me["user_id"], mallory.id.as_str());
    assert_eq!(me["roles"], json!(["user"]));
    let list = send(as_mallory(Method::GET, "/notes", "notes")).await;
    assert_eq!(
        list.ok(StatusCode::OK, "spoofed list")["items"],
        json!([]),
        "x-user-id / x-svcgen-internal must not be trusted"
    );
    send(as_mallory(Method::GET, &world.target_path(), "notes"))
        .await
        .error(StatusCode::NOT_FOUND, "spoofed read");
    send(as_mallory(Method::PATCH, &world.target_path(), "notes").json(&json!({"title": "pwned"})))
        .await
        .error(StatusCode::NOT_FOUND, "spoofed update");
    send(as_mallory(Method::DELETE, &world.target_path(), "notes"))
        .await
        .error(StatusCode::NOT_FOUND, "spoofed delete");
    send(as_mallory(Method::GET, "/auth/users", "auth"))
        .await
        .error(StatusCode::FORBIDDEN, "spoofed admin role");
    send(as_mallory(
        Method::GET,
        "/admin/notification/dead-letters",
        "notification",
    ))
    .await
    .error(StatusCode::FORBIDDEN, "spoofed admin role, dead letters");
    let inbox = send(as_mallory(Method::GET, "/notifications", "notification")).await;
    // Mallory's own inbox: at most his welcome (events are asynchronous), nothing of alice's.
    let items = inbox.ok(StatusCode::OK, "spoofed notifications")["items"]
        .as_array()
        .cloned()
        .unwrap();
    assert!(items.len() <= 1, "{items:?}");
    for item in &items {
        assert_eq!(item["message"], "Welcome to notes, mallory!", "{item}");
    }
}

async fn direct_service_calls(world: &World<'_>, services: &Services) {
    let alice = world.alice.id.as_str();
    let http = &world.mallory.peer.http;
    let target = world.target_path();
    let routes: Vec<(&str, &str, Method, String, Option<Value>)> = vec![
        ("auth", &services.auth, Method::GET, "/auth/me".into(), None),
        (
            "auth",
            &services.auth,
            Method::GET,
            "/auth/users".into(),
            None,
        ),
        (
            "auth",
            &services.auth,
            Method::POST,
            "/auth/logout".into(),
            Some(json!({"refresh_token": world.alice.refresh})),
        ),
        ("notes", &services.notes, Method::GET, "/notes".into(), None),
        ("notes", &services.notes, Method::GET, target.clone(), None),
        (
            "notes",
            &services.notes,
            Method::PATCH,
            target.clone(),
            Some(json!({"title": "pwned"})),
        ),
        (
            "notes",
            &services.notes,
            Method::DELETE,
            target.clone(),
            None,
        ),
        (
            "notes",
            &services.notes,
            Method::POST,
            "/notes".into(),
            Some(json!({"title": "planted", "body": "behind the gateway"})),
        ),
        (
            "notification",
            &services.notification,
            Method::GET,
            "/notifications".into(),
            None,
        ),
        (
            "notification",
            &services.notification,
            Method::GET,
            "/admin/notification/dead-letters".into(),
            None,
        ),
    ];
    let other_service = |service: &str| if service == "notes" { "auth" } else { "notes" };
    for (service, base, method, path, body) in &routes {
        let secret = world.internal_secret;
        let valid = internal_claims(service, alice, &["user", "admin"]);
        let credentials: Vec<(&str, Option<String>)> = vec![
            ("no credential", None),
            ("a forged string", Some("forged".to_owned())),
            (
                "signed with another secret",
                Some(sign(Algorithm::HS256, None, &valid, ATTACKER_SECRET)),
            ),
            (
                "signed with the access-token secret",
                Some(sign(Algorithm::HS256, None, &valid, world.jwt_secret)),
            ),
            ("alice's access token", Some(world.alice.access.clone())),
            (
                "alg none",
                Some(unsigned(json!({"alg": "none", "typ": "JWT"}), &valid)),
            ),
            (
                "HS512 with the internal secret",
                Some(sign(Algorithm::HS512, None, &valid, secret)),
            ),
            (
                "minted for another service",
                Some(sign(
                    Algorithm::HS256,
                    None,
                    &internal_claims(other_service(service), alice, &["user", "admin"]),
                    secret,
                )),
            ),
            (
                "expired",
                Some(sign(
                    Algorithm::HS256,
                    None,
                    &json!({"sub": alice, "iss": "gateway", "aud": service,
                            "exp": now() - 3600, "nbf": now() - 3700, "iat": now() - 3700,
                            "roles": ["user", "admin"]}),
                    secret,
                )),
            ),
            (
                "wrong issuer",
                Some(sign(
                    Algorithm::HS256,
                    None,
                    &with(valid.clone(), "iss", json!(SYSTEM)),
                    secret,
                )),
            ),
        ];
        for (what, credential) in credentials {
            let mut request = http
                .request(method.clone(), format!("{base}{path}"))
                .header("x-user-id", alice)
                .header("x-user-roles", "admin")
                // Services take no bearer tokens: only the gateway's credential.
                .bearer_auth(&world.alice.access);
            if let Some(credential) = credential {
                request = request.header("x-svcgen-internal", credential);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            send(request).await.error(
                StatusCode::UNAUTHORIZED,
                &format!("{service} {method} {path}, {what}"),
            );
        }
    }

    // Control: the services do answer a credential made with their secret, so the 401s above
    // are the credential check and nothing else.
    let credential = sign(
        Algorithm::HS256,
        None,
        &internal_claims("notes", &world.mallory.id, &["user"]),
        world.internal_secret,
    );
    let answer = send(
        http.get(format!("{}/notes", services.notes))
            .header("x-svcgen-internal", credential),
    )
    .await;
    assert_eq!(
        answer.ok(StatusCode::OK, "control credential")["items"],
        json!([])
    );
    // Health stays open, and says nothing about anyone.
    for base in [&services.auth, &services.notes, &services.notification] {
        let answer = send(http.get(format!("{base}/health"))).await;
        assert_eq!(answer.ok(StatusCode::OK, "service health")["status"], "ok");
    }
    // Alice's refresh token, sent to the auth service's logout above, is checked to still work
    // at the end of `refresh_token_reuse` (using it here would rotate it).
}

async fn cross_user_access(world: &World<'_>) {
    let mallory = &world.mallory;
    let path = world.target_path();
    mallory
        .call(Method::GET, &path, None)
        .await
        .error(StatusCode::NOT_FOUND, "mallory reads alice's note");
    mallory
        .call(
            Method::PATCH,
            &path,
            Some(&json!({"title": "mine now", "body": "pwned", "tags": null})),
        )
        .await
        .error(StatusCode::NOT_FOUND, "mallory changes alice's note");
    mallory
        .call(Method::DELETE, &path, None)
        .await
        .error(StatusCode::NOT_FOUND, "mallory deletes alice's note");
    // Taking ownership through the body is not possible either.
    mallory
        .call(Method::PATCH, &path, Some(&json!({"owner_id": mallory.id})))
        .await
        .error(StatusCode::BAD_REQUEST, "mallory claims alice's note");
    world
        .alice
        .call(
            Method::PATCH,
            &path,
            Some(&json!({"owner_id": mallory.id, "title": "given away"})),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "alice cannot hand a note over");
    mallory
        .call(
            Method::POST,
            "/notes",
            Some(&json!({"title": "planted", "body": "x", "owner_id": world.alice.id})),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "mallory writes in alice's name");
    mallory
        .call(
            Method::POST,
            "/notes",
            Some(&json!({"title": "x", "body": "x", "id": world.target})),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "mallory chooses an id");
    // Ids that do not exist, and ids that are not ids.
    for id in [
        "00000000-0000-0000-0000-000000000000".to_owned(),
        uuid::Uuid::now_v7().to_string(),
    ] {
        for method in [Method::GET, Method::DELETE] {
            mallory
                .call(method.clone(), &format!("/notes/{id}"), None)
                .await
                .error(StatusCode::NOT_FOUND, &format!("{method} unknown id {id}"));
        }
    }
    let malformed = [
        "not-a-uuid".to_owned(),
        pct("1 OR 1=1"),
        pct("'; DROP TABLE note; --"),
        pct(&format!("{}' OR '1'='1", world.target)),
        pct("../../auth/users"),
        pct(&format!("{}/../x", world.target)),
        pct("☃"),
        "x".repeat(500),
    ];
    for id in &malformed {
        let path = format!("/notes/{id}");
        for (method, body) in [
            (Method::GET, None),
            (Method::PATCH, Some(json!({"title": "pwned"}))),
            (Method::DELETE, None),
        ] {
            mallory
                .call(method.clone(), &path, body.as_ref())
                .await
                .error(StatusCode::BAD_REQUEST, &format!("{method} {path}"));
            world
                .alice
                .call(method.clone(), &path, body.as_ref())
                .await
                .error(StatusCode::BAD_REQUEST, &format!("alice: {method} {path}"));
        }
    }
    // Query parameters are checked, never pasted into SQL.
    for query in [
        format!("limit={}", pct("1 OR 1=1")),
        "limit=-1".to_owned(),
        "limit=100000".to_owned(),
        format!("cursor={}", pct("' OR 1=1 --")),
        format!(
            "cursor={}",
            URL_SAFE_NO_PAD.encode(
                r#"{"s":"created_at","d":true,"v":"2020-01-01T00:00:00Z' OR '1'='1","i":"x"}"#
            )
        ),
        format!("sort={}", pct("title; DROP TABLE note")),
        format!("created_at.gte={}", pct("' OR 1=1 --")),
        format!("{}=1", pct("1=1 OR owner_id")),
    ] {
        mallory
            .call(Method::GET, &format!("/notes?{query}"), None)
            .await
            .error(StatusCode::BAD_REQUEST, &format!("GET /notes?{query}"));
    }
    // Filter and search values are bound, never pasted: they find nothing of alice's.
    for query in [
        format!("tags={}", pct("' OR '1'='1")),
        format!("q={}", pct("' OR 1=1 -- note")),
    ] {
        let answer = mallory
            .call(Method::GET, &format!("/notes?{query}"), None)
            .await;
        assert_eq!(
            answer.ok(StatusCode::OK, &format!("GET /notes?{query}"))["items"],
            json!([]),
            "{query}"
        );
    }
    // A well-formed cursor pointing into alice's list shows mallory nothing of hers.
    let cursor = URL_SAFE_NO_PAD.encode(
        r#"{"s":"created_at","d":true,"v":"9999-12-31T00:00:00Z","i":"ffffffff-ffff-ffff-ffff-ffffffffffff"}"#,
    );
    let answer = mallory
        .call(Method::GET, &format!("/notes?cursor={cursor}"), None)
        .await;
    assert_eq!(
        answer.ok(StatusCode::OK, "foreign cursor")["items"],
        json!([])
    );
}

async fn admin_routes(world: &World<'_>) {
    let mallory = &world.mallory;
    let some_id = uuid::Uuid::now_v7();
    for (method, path) in [
        (Method::GET, "/auth/users".to_owned()),
        (Method::GET, "/auth/users?limit=100".to_owned()),
        (Method::GET, "/admin/notification/dead-letters".to_owned()),
        (
            Method::POST,
            format!("/admin/notification/dead-letters/{some_id}/replay"),
        ),
    ] {
        mallory
            .call(method.clone(), &path, None)
            .await
            .error(StatusCode::FORBIDDEN, &format!("a user on {method} {path}"));
    }

    // Mass assignment: roles in the registration body are ignored.
    let eve = register_with(
        Peer::new(world.gateway, EVE),
        json!({"email": "eve@example.com", "username": "eve", "password": PASSWORD,
               "roles": ["admin"], "role": "admin", "is_admin": true}),
    )
    .await;
    assert_eq!(eve.me().await["roles"], json!(["user"]));
    eve.call(Method::GET, "/auth/users", None)
        .await
        .error(StatusCode::FORBIDDEN, "self-declared admin");

    // Taking over the admin's address with another spelling of it.
    let admin_peer = Peer::new(world.gateway, ADMIN);
    for email in [ADMIN_EMAIL.to_uppercase(), format!("  {ADMIN_EMAIL} ")] {
        admin_peer
            .call(
                Method::POST,
                "/auth/register",
                None,
                Some(
                    &json!({"email": email, "username": "admin", "password": "attacker password"}),
                ),
            )
            .await
            .error(StatusCode::CONFLICT, &format!("register {email:?}"));
    }
    login(&admin_peer, ADMIN_EMAIL, "attacker password")
        .await
        .error(
            StatusCode::UNAUTHORIZED,
            "admin with the attacker's password",
        );

    // The real admin.
    let answer = login(&admin_peer, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let token = answer.ok(StatusCode::OK, "admin login")["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = admin_peer
        .call(Method::GET, "/auth/me", Some(&token), None)
        .await;
    let roles = me.ok(StatusCode::OK, "admin me")["roles"].clone();
    assert!(
        roles.as_array().unwrap().contains(&json!("admin")),
        "{roles}"
    );
    let users = admin_peer
        .call(Method::GET, "/auth/users?limit=100", Some(&token), None)
        .await;
    let users = users.ok(StatusCode::OK, "admin lists users");
    let emails: Vec<&str> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["email"].as_str())
        .collect();
    for email in [
        ADMIN_EMAIL,
        "alice@example.com",
        "mallory@example.com",
        "eve@example.com",
    ] {
        assert!(emails.contains(&email), "{email} in {emails:?}");
    }
    assert_eq!(
        emails.iter().filter(|e| **e == ADMIN_EMAIL).count(),
        1,
        "one admin account: {emails:?}"
    );
    let letters = admin_peer
        .call(
            Method::GET,
            "/admin/notification/dead-letters",
            Some(&token),
            None,
        )
        .await;
    assert!(letters.ok(StatusCode::OK, "admin dead letters").is_array());
    // The admin can read the user list, not alice's notes.
    admin_peer
        .call(Method::GET, &world.target_path(), Some(&token), None)
        .await
        .error(StatusCode::NOT_FOUND, "the admin reads alice's note");
}

async fn register_with(peer: Peer, body: Value) -> Person {
    let answer = peer
        .call(Method::POST, "/auth/register", None, Some(&body))
        .await;
    let answer = answer.ok(StatusCode::CREATED, &format!("register {body}"));
    Person {
        email: body["email"].as_str().unwrap().to_owned(),
        username: body["username"].as_str().unwrap().to_owned(),
        password: body["password"].as_str().unwrap().to_owned(),
        id: answer["user_id"].as_str().unwrap().to_owned(),
        access: answer["access_token"].as_str().unwrap().to_owned(),
        refresh: answer["refresh_token"].as_str().unwrap().to_owned(),
        peer,
    }
}

async fn sql_injection(world: &World<'_>) {
    // Accounts whose every field is an injection: plausible e-mail addresses full of SQL
    // (lowercase: addresses are stored lowercased), usernames and passwords of pure SQL.
    let accounts = [
        ("x'or'1'='1@example.com", INJECTIONS[0], INJECTIONS[3]),
        (
            "\"';drop_table_users;--\"@example.com",
            "\" OR 1=1 -- {user_id} {{username}} %s %n",
            INJECTIONS[5],
        ),
        (
            "robert');delete-from-users;--@example.com",
            INJECTIONS[8],
            INJECTIONS[6],
        ),
    ];
    let mut injectors = Vec::new();
    for ((email, username, password), host) in accounts.iter().zip(INJECTORS) {
        let person = register(Peer::new(world.gateway, host), email, username, password).await;
        let me = person.me().await;
        assert_eq!(me["user_id"], person.id.as_str());
        assert_eq!(me["email"], *email, "the e-mail is stored as sent");
        assert_eq!(me["username"], *username, "the username is stored as sent");
        assert_eq!(me["roles"], json!(["user"]));
        let answer = login(&person.peer, email, password).await;
        assert_eq!(
            answer.ok(StatusCode::OK, "login with an injected password")["user_id"],
            person.id.as_str()
        );
        login(&person.peer, email, "' OR '1'='1").await.error(
            StatusCode::UNAUTHORIZED,
            "an injected password is a wrong one",
        );
        injectors.push(person);
    }

    // Injections that are not e-mail addresses: 400, nothing created.
    let prober = Peer::new(world.gateway, PROBER_A);
    let invalid = ["' OR 1=1 --", "\"; DROP TABLE users; --", "x' OR 'a'='a"];
    for email in invalid {
        prober
            .call(
                Method::POST,
                "/auth/register",
                None,
                Some(&json!({"email": email, "username": "x", "password": PASSWORD})),
            )
            .await
            .error(StatusCode::BAD_REQUEST, &format!("register {email:?}"));
    }
    // Operators instead of strings.
    prober
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(&json!({"email": {"$ne": null}, "password": {"$ne": null}})),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "operator login");
    // Login injections: never a session, and the same answer as any wrong login.
    let prober = Peer::new(world.gateway, PROBER_B);
    let unknown = login(&prober, "nobody@example.com", "wrong password").await;
    unknown.error(StatusCode::UNAUTHORIZED, "unknown account");
    for (email, password) in [
        ("' OR 1=1 --", PASSWORD),
        ("' OR '1'='1' --", "' OR '1'='1"),
        ("alice@example.com' --", "anything"),
        ("alice@example.com", "' OR '1'='1' --"),
    ] {
        let answer = login(&prober, email, password).await;
        answer.error(StatusCode::UNAUTHORIZED, &format!("login {email:?}"));
        assert_eq!(answer.body, unknown.body, "login {email:?}");
    }

    // Notes whose every field is an injection, created and changed: stored and returned as sent.
    let writer = &injectors[0];
    let tags: Vec<&str> = INJECTIONS.to_vec();
    let mut written = Vec::new();
    for (i, text) in INJECTIONS.iter().enumerate() {
        let note =
            json!({"title": text, "body": INJECTIONS[(i + 1) % INJECTIONS.len()], "tags": tags});
        let answer = writer.call(Method::POST, "/notes", Some(&note)).await;
        let created = answer
            .ok(StatusCode::CREATED, &format!("note {text:?}"))
            .clone();
        for field in ["title", "body", "tags"] {
            assert_eq!(created[field], note[field], "{field} of {text:?}");
        }
        assert_eq!(created["owner_id"], writer.id.as_str());
        written.push(created);
    }
    // The last one changed with other injections.
    let last = written.last_mut().unwrap();
    let patch =
        json!({"title": INJECTIONS[2], "body": INJECTIONS[4], "tags": [INJECTIONS[0], "", " "]});
    let answer = writer
        .call(
            Method::PATCH,
            &format!("/notes/{}", last["id"].as_str().unwrap()),
            Some(&patch),
        )
        .await;
    let changed = answer.ok(StatusCode::OK, "patch with injections").clone();
    for field in ["title", "body", "tags"] {
        assert_eq!(changed[field], patch[field], "patched {field}");
    }
    *last = changed;
    written.reverse(); // newest first, as lists are
    assert_eq!(
        writer.notes().await,
        written,
        "every injected note, as sent"
    );
    for note in &written {
        let answer = writer
            .call(
                Method::GET,
                &format!("/notes/{}", note["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(answer.ok(StatusCode::OK, "read injected note"), note);
    }
    // The other injectors' lists are empty: no injected note leaked into anyone else's.
    for person in &injectors[1..] {
        assert_eq!(person.notes().await, Vec::<Value>::new());
    }

    // The tables are all there: each injector's welcome quotes the username exactly (the event
    // carried it through the bus), and everyone still signs in.
    for person in &injectors {
        let items = notifications_with(person, &["welcome"]).await;
        let welcome = items
            .iter()
            .find(|n| n["kind"] == "welcome")
            .unwrap_or_else(|| panic!("no welcome for {:?}: {items:?}", person.username));
        assert_eq!(
            welcome["message"],
            format!("Welcome to notes, {}!", person.username)
        );
        let answer = login(&person.peer, &person.email, &person.password).await;
        answer.ok(StatusCode::OK, "login after the injections");
    }
    // The admin's list: every account, the injected ones exactly as sent, none of the refused.
    let admin = Peer::new(world.gateway, ADMIN);
    let answer = login(&admin, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let token = answer.ok(StatusCode::OK, "admin login")["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = admin
        .call(Method::GET, "/auth/users?limit=100", Some(&token), None)
        .await;
    let users = answer.ok(StatusCode::OK, "admin lists users")["items"]
        .as_array()
        .cloned()
        .unwrap();
    for person in injectors.iter().chain([&world.alice, &world.mallory]) {
        let user = users
            .iter()
            .find(|u| u["user_id"] == person.id.as_str())
            .unwrap_or_else(|| panic!("{} missing from {users:?}", person.email));
        assert_eq!(user["email"], person.email.as_str());
        assert_eq!(user["username"], person.username.as_str());
    }
    for email in invalid {
        assert!(
            users.iter().all(|u| u["email"] != email),
            "{email:?} was registered"
        );
    }
}

async fn huge_bodies(world: &World<'_>) {
    let huge = "A".repeat(HUGE);
    let path = world.target_path();
    // Each oversized request goes out on a fresh client (same source address): the gateway
    // closes the connection after an early 413 without saying so, and a pooled connection
    // would make the NEXT request fail (see `early_413_closes_cleanly_or_keeps_serving`).
    let fresh = |host: u8| Peer::new(world.gateway, host);
    // With a Content-Length: refused before the service sees anything.
    for (who, host, method, path) in [
        (&world.alice, ALICE, Method::PATCH, path.as_str()),
        (&world.mallory, MALLORY, Method::PATCH, path.as_str()),
        (&world.mallory, MALLORY, Method::POST, "/notes"),
    ] {
        let body = json!({"title": "big", "body": huge});
        fresh(host)
            .call(method.clone(), path, Some(&who.access), Some(&body))
            .await
            .error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("3 MB {method} {path}"),
            );
    }
    // Streamed, of unknown length: cut off once over the limit.
    let chunk = vec![b'A'; 64 * 1024];
    let chunks = HUGE / chunk.len() + 1;
    assert!(chunks * chunk.len() > BODY_LIMIT);
    let stream = futures_util::stream::iter(
        std::iter::once(b"{\"title\": \"big\", \"body\": \"".to_vec())
            .chain(std::iter::repeat_n(chunk, chunks))
            .chain(std::iter::once(b"\"}".to_vec()))
            .map(Ok::<_, std::io::Error>),
    );
    let answer = send(
        fresh(ALICE)
            .request(Method::PATCH, &path)
            .bearer_auth(&world.alice.access)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream)),
    )
    .await;
    answer.error(StatusCode::PAYLOAD_TOO_LARGE, "3 MB streamed PATCH");
    // A public credential route: no account is made.
    fresh(BIG_BODY)
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(&json!({"email": "big@example.com", "username": huge, "password": PASSWORD})),
        )
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "3 MB registration");
    login(&fresh(BIG_BODY), "big@example.com", PASSWORD)
        .await
        .error(
            StatusCode::UNAUTHORIZED,
            "the 3 MB registration made no account",
        );
}

/// One HTTP/1.1 response read off a raw connection: status, lowercased headers, body.
async fn read_response(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
) -> std::io::Result<(u16, Vec<(String, String)>, Vec<u8>)> {
    use tokio::io::AsyncReadExt as _;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > 64 * 1024 {
            return Err(std::io::Error::other("response head too long"));
        }
        let read = reader.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let read = reader.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Ok((status, headers, body))
}

/// A keep-alive client sends a 3 MB body with its Content-Length, as an ordinary client does
/// (writing the body while it watches for the answer), gets the 413, and then sends its next
/// request on the same connection.
///
/// The gateway refuses such a body unread, so it must not leave the client guessing: RFC 9112
/// section 9.6 asks for `Connection: close` on an answer after which the connection is closed;
/// otherwise the connection must keep serving. (Keep-alive clients such as reqwest, browsers and
/// most SDKs would otherwise send their next request into a closed connection.)
async fn early_413_closes_cleanly_or_keeps_serving(gateway: &str, host: u8, token: &str) {
    use tokio::io::AsyncWriteExt as _;
    let address: std::net::SocketAddr = gateway
        .trim_start_matches("http://")
        .parse()
        .expect("the gateway's address");
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, host], 0)))
        .unwrap();
    let stream = socket.connect(address).await.expect("connects");
    let (mut reader, mut writer) = stream.into_split();
    let body = format!(r#"{{"title":"big","body":"{}"}}"#, "A".repeat(HUGE));
    let head = format!(
        "POST {PREFIX}/notes HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    writer.write_all(head.as_bytes()).await.expect("head sent");
    let sending = tokio::spawn(async move {
        // The server may stop reading at any point: errors are its answer, not ours.
        let sent = tokio::time::timeout(Duration::from_secs(20), writer.write_all(body.as_bytes()))
            .await
            .is_ok_and(|written| written.is_ok());
        (writer, sent)
    });
    let first = tokio::time::timeout(Duration::from_secs(20), read_response(&mut reader))
        .await
        .expect("an answer to the 3 MB body in time");
    let (status, headers, _) = first.unwrap_or_else(|error| {
        panic!("the 413 to a 3 MB body was lost to the connection's reset: {error}")
    });
    assert_eq!(status, 413, "3 MB body on a raw connection");
    let closing = headers
        .iter()
        .any(|(name, value)| name == "connection" && value.eq_ignore_ascii_case("close"));
    if closing {
        return; // the client knows not to reuse the connection
    }
    let (mut writer, body_sent) = sending.await.expect("the sender ends");
    let next = format!(
        "GET {PREFIX}/notes HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let second = async {
        writer.write_all(next.as_bytes()).await?;
        read_response(&mut reader).await
    };
    let second = tokio::time::timeout(Duration::from_secs(20), second).await;
    match second {
        Ok(Ok((status, _, _))) => assert_eq!(status, 200, "the request after the 413"),
        outcome => panic!(
            "the gateway answered 413 without `Connection: close` (headers {headers:?}), \
             then closed the connection: the client's next request on it failed ({outcome:?}; \
             the 3 MB body was {} sent)",
            if body_sent { "fully" } else { "not fully" }
        ),
    }
}

/// Ten logins a minute from one address, then 429 with Retry-After, whatever else the client
/// claims; other addresses and other routes are not affected. Returns the flooded account.
async fn login_flood(world: &World<'_>) -> Person {
    let owner = register(
        Peer::new(world.gateway, FLOOD_OWNER),
        "flooded@example.com",
        "flooded",
        PASSWORD,
    )
    .await;
    let flooder = Peer::new(world.gateway, FLOODER);
    let wrong = json!({"email": owner.email, "password": "guess 000"});
    let mut first = None;
    for attempt in 1..=10 {
        let answer = send(
            flooder
                .request(Method::POST, "/auth/login")
                .header("x-forwarded-for", format!("10.0.0.{attempt}"))
                .json(&wrong),
        )
        .await;
        answer.error(StatusCode::UNAUTHORIZED, &format!("guess {attempt}"));
        let first = first.get_or_insert_with(|| answer.body.clone());
        assert_eq!(&answer.body, first, "guess {attempt}");
    }
    // The 11th, with the RIGHT password and every trick to look like another client.
    let answer = send(
        flooder
            .request(Method::POST, "/auth/login")
            .header("x-forwarded-for", "203.0.113.7")
            .header("x-real-ip", "203.0.113.7")
            .header("forwarded", "for=203.0.113.7")
            .header("true-client-ip", "203.0.113.7")
            .json(&json!({"email": owner.email, "password": PASSWORD})),
    )
    .await;
    answer.error(StatusCode::TOO_MANY_REQUESTS, "the 11th login in a minute");
    let retry_after: u64 = answer
        .headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("429 without a numeric Retry-After: {:?}", answer.headers));
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert!(answer.body.get("access_token").is_none());
    // Other spellings of the route do not reach the login handler (no second bucket).
    for path in [
        "/auth/login/",
        "/auth//login",
        "/AUTH/login",
        "/auth/login%2F",
        "/auth/%6Cogin",
    ] {
        let answer = flooder
            .call(
                Method::POST,
                path,
                None,
                Some(&json!({"email": owner.email, "password": PASSWORD})),
            )
            .await;
        answer.error(StatusCode::NOT_FOUND, &format!("POST {path}"));
        assert!(answer.body.get("access_token").is_none());
    }
    // Still refused, on the same route, for any account.
    login(&flooder, &world.alice.email, PASSWORD)
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "the 12th login");
    // The flood costs nobody else anything.
    let answer = login(&world.alice.peer, &world.alice.email, PASSWORD).await;
    assert_eq!(
        answer.ok(StatusCode::OK, "alice from her own address")["user_id"],
        world.alice.id.as_str()
    );
    // Nor the flooder's other routes: only credential routes are limited.
    let answer = flooder
        .call(Method::GET, "/notes", Some(&owner.access), None)
        .await;
    assert_eq!(
        answer.ok(StatusCode::OK, "flooder's notes")["items"],
        json!([])
    );
    owner
}

async fn refresh_token_reuse(world: &World<'_>) {
    let carol = register(
        Peer::new(world.gateway, CAROL),
        "carol@example.com",
        "carol",
        PASSWORD,
    )
    .await;
    let peer = &carol.peer;
    // Rotate once: fine.
    let answer = refresh(peer, &carol.refresh).await;
    let rotated = answer.ok(StatusCode::OK, "first refresh").clone();
    let second = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, carol.refresh);
    assert_eq!(rotated["user_id"], carol.id.as_str());
    // The old one again (a thief replaying it): refused, and the whole family dies with it.
    refresh(peer, &carol.refresh)
        .await
        .error(StatusCode::UNAUTHORIZED, "reused refresh token");
    refresh(peer, &second).await.error(
        StatusCode::UNAUTHORIZED,
        "the family's newest token after a reuse",
    );
    refresh(peer, &carol.refresh)
        .await
        .error(StatusCode::UNAUTHORIZED, "reused refresh token, again");

    // A race: the same refresh token presented many times at once. Exactly one wins, the
    // others are refused, and the reuse kills the family, the winner's new token included.
    let answer = login(peer, &carol.email, PASSWORD).await;
    let raced = answer.ok(StatusCode::OK, "carol logs in for the race")["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let answers = futures_util::future::join_all((0..8).map(|_| refresh(peer, &raced))).await;
    let winners: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one refresh wins: {answers:?}");
    for answer in answers.iter().filter(|a| a.status != StatusCode::OK) {
        answer.error(StatusCode::UNAUTHORIZED, "a losing refresh");
    }
    let won = winners[0].body["refresh_token"].as_str().unwrap();
    refresh(peer, won).await.error(
        StatusCode::UNAUTHORIZED,
        "the race winner's token after the reuse",
    );

    // Tokens that never were refresh tokens.
    for token in [
        "garbage".to_owned(),
        String::new(),
        INJECTIONS[0].to_owned(),
        "' OR 1=1 --".to_owned(),
        carol.access.clone(),
        "A".repeat(10_000),
    ] {
        refresh(peer, &token).await.error(
            StatusCode::UNAUTHORIZED,
            &format!("refresh with {:.20}", token),
        );
    }

    // A new session is a new family, unaffected.
    let answer = login(peer, &carol.email, PASSWORD).await;
    let session = answer.ok(StatusCode::OK, "carol logs in again").clone();
    let answer = refresh(peer, session["refresh_token"].as_str().unwrap()).await;
    let current = answer.ok(StatusCode::OK, "refresh of the new session")["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Mallory cannot end carol's session: 204 (no oracle), but the token still works.
    let answer = world
        .mallory
        .call(
            Method::POST,
            "/auth/logout",
            Some(&json!({"refresh_token": current})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{:?}", answer.body);
    let answer = refresh(peer, &current).await;
    let current =
        answer.ok(StatusCode::OK, "carol's session survives mallory's logout")["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    // Logout without a token is a user route.
    peer.call(
        Method::POST,
        "/auth/logout",
        None,
        Some(&json!({"refresh_token": current})),
    )
    .await
    .unauthorized("logout without an access token");
    // Carol logs out: the token is dead.
    let answer = carol
        .call(
            Method::POST,
            "/auth/logout",
            Some(&json!({"refresh_token": current})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{:?}", answer.body);
    refresh(peer, &current)
        .await
        .error(StatusCode::UNAUTHORIZED, "refresh after logout");

    // Alice's refresh token, which the direct attacks sent to the auth service's logout, and
    // mallory's, are untouched: each still rotates.
    for person in [&world.alice, &world.mallory] {
        refresh(&person.peer, &person.refresh).await.ok(
            StatusCode::OK,
            &format!("{}'s own refresh", person.username),
        );
    }
}

// ---------------------------------------------------------------------------------------
// The two modes.

#[test]
fn embedded_mode_withstands_the_attacks() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let system = Running::start(
        &notes(),
        "security-embedded",
        &["run", "--port", "0", "--data", data_dir],
        &[
            ("SVCGEN_ADMIN_EMAIL".into(), ADMIN_EMAIL.into()),
            ("SVCGEN_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
        ],
    );
    // The secrets the embedded run generated on its first start.
    let secrets: Value = serde_json::from_slice(
        &std::fs::read(data.path().join("secrets.json")).expect("secrets.json"),
    )
    .expect("secrets.json is JSON");
    let jwt_secret = secrets["jwt_secret"].as_str().expect("jwt_secret");
    let internal_secret = secrets["internal_secret"]
        .as_str()
        .expect("internal_secret");
    runtime().block_on(attack(
        &system.url,
        None,
        jwt_secret.as_bytes(),
        internal_secret.as_bytes(),
    ));
    system.stop();
}

#[test]
fn distributed_mode_withstands_the_attacks() {
    if !infrastructure(
        "distributed security",
        &[
            ("PostgreSQL", "127.0.0.1:5432"),
            ("RabbitMQ", "127.0.0.1:5672"),
        ],
    ) {
        return;
    }
    let run = harness::run_id("sec");
    // Production-grade secrets: 32+ bytes, no development words.
    let jwt_secret = format!("Jq7vX2mR9kL4pT8wZ3nB6cF1hY5sD0gA-{run}");
    let internal_secret = format!("Wm4tK8qP2xV7bN3rH9jC5fL1yG6dS0zE-{run}");
    let env = harness::rabbitmq_env(&run, &jwt_secret, &internal_secret);
    let system = Distributed::start(
        &notes(),
        run.clone(),
        &["auth", "notes", "notification"],
        &env,
        |service| {
            if service == "auth" {
                vec![
                    ("SVCGEN_ADMIN_EMAIL".into(), ADMIN_EMAIL.into()),
                    ("SVCGEN_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
                ]
            } else {
                Vec::new()
            }
        },
    );
    let services = Services {
        auth: system.service_url("auth").to_string(),
        notes: system.service_url("notes").to_string(),
        notification: system.service_url("notification").to_string(),
    };
    runtime().block_on(attack(
        &system.gateway.url,
        Some(&services),
        jwt_secret.as_bytes(),
        internal_secret.as_bytes(),
    ));
    system.stop();
}
