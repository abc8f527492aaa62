//! The shop system (`examples/shop.yaml`, committed as `generated/shop`) end to end, embedded
//! and distributed (PostgreSQL, MariaDB and RabbitMQ): products by admins only, orders as a
//! saga over gRPC (get the user, reserve stock, pay, commit stock, save the order), stock never
//! oversold under 50 concurrent orders, a declined payment undone, each customer seeing only
//! their orders, and a real gRPC client that is not svcgen's (`buf curl`) calling a service
//! directly: with the internal credential it is answered, without it refused.
//!
//! The distributed test skips with a message when a server is down, and fails instead when
//! `SVCGEN_REQUIRE_INFRA=1` (as on CI).

mod harness;
mod support;

use harness::{Api, Distributed, Running, System, infrastructure, register, runtime};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ADMIN_EMAIL: &str = "shopkeeper@example.com";
const ADMIN_PASSWORD: &str = "shopkeeper passphrase 1";
const DECLINED_CARD: &str = "4000000000000002";

fn shop() -> System {
    System::committed("shop")
}

fn admin_env() -> Vec<(String, String)> {
    vec![
        ("SVCGEN_ADMIN_EMAIL".into(), ADMIN_EMAIL.into()),
        ("SVCGEN_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
    ]
}

#[test]
fn generated_workspace_is_formatted_and_clippy_clean() {
    harness::assert_formatted_and_clippy_clean(&shop());
}

async fn login(api: &Api, email: &str, password: &str) -> String {
    let (status, body) = api
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "login {email}: {body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn stock_of(api: &Api, product: &str) -> i64 {
    let (status, body) = api
        .call(Method::GET, &format!("/products/{product}"), None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["stock"].as_i64().expect("stock")
}

fn order(items: &[(&str, i64)], card: Option<&str>) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(product, quantity)| json!({"product_id": product, "quantity": quantity}))
        .collect();
    match card {
        Some(card) => json!({"items": items, "payment": {"card": card}}),
        None => json!({"items": items}),
    }
}

/// The shop's documented API, end to end. Returns the id of a product with stock left.
async fn drive_shop(gateway: &str, tag: &str) -> String {
    let api = Api::new(gateway);
    let admin = login(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (alice_id, alice) = register(&api, &format!("alice-{tag}@example.com")).await;
    let (_, bob) = register(&api, &format!("bob-{tag}@example.com")).await;

    // Products: admins only.
    let lamp =
        json!({"name": "Lamp", "description": "A desk lamp.", "price_cents": 2500, "stock": 10});
    let (status, body) = api
        .call(Method::POST, "/products", Some(&alice), Some(lamp.clone()))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a customer creates a product: {body}"
    );
    let (status, body) = api
        .call(Method::POST, "/products", None, Some(lamp.clone()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, lamp) = api
        .call(Method::POST, "/products", Some(&admin), Some(lamp))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lamp}");
    let lamp_id = lamp["id"].as_str().unwrap().to_owned();
    let (status, pen) = api
        .call(
            Method::POST,
            "/products",
            Some(&admin),
            Some(
                json!({"name": "Pen", "description": "Blue ink.", "price_cents": 300, "stock": 50}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pen}");
    let pen_id = pen["id"].as_str().unwrap().to_owned();
    // Admins change products (PATCH carried over gRPC): a field sent is set, `null` clears an
    // optional one, an absent one stays.
    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/products/{pen_id}"),
            Some(&alice),
            Some(json!({"price_cents": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, patched) = api
        .call(
            Method::PATCH,
            &format!("/products/{pen_id}"),
            Some(&admin),
            Some(json!({"description": null, "price_cents": 350})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["description"], Value::Null);
    assert_eq!(patched["price_cents"], 350);
    assert_eq!(patched["name"], "Pen");
    assert_eq!(patched["stock"], 50);
    let (status, patched) = api
        .call(
            Method::PATCH,
            &format!("/products/{pen_id}"),
            Some(&admin),
            Some(json!({"description": "Blue ink.", "price_cents": 300})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["description"], "Blue ink.");
    // Versions travel over gRPC too: the ETag of the row, and If-Match held to it.
    let pen_path = format!("/products/{pen_id}");
    let (status, headers, _) = api.call_with(Method::GET, &pen_path, None, &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["etag"], "\"3\"");
    for (if_match, expected, etag) in [
        ("\"2\"", StatusCode::PRECONDITION_FAILED, None),
        ("2", StatusCode::BAD_REQUEST, None),
        ("\"3\"", StatusCode::OK, Some("\"4\"")),
    ] {
        let (status, headers, body) = api
            .call_with(
                Method::PATCH,
                &pen_path,
                Some(&admin),
                &[("if-match", if_match)],
                Some(json!({"price_cents": 300})),
            )
            .await;
        assert_eq!(status, expected, "If-Match {if_match}: {body}");
        assert_eq!(
            headers.get("etag").map(|v| v.to_str().unwrap()),
            etag,
            "If-Match {if_match}"
        );
    }
    for (path, bad, expected) in [
        (
            format!("/products/{pen_id}"),
            json!({"price_cents": "cheap"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/products/{pen_id}"),
            json!({"colour": "red"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/products/{pen_id}"),
            json!({"name": ""}),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/products/{}", uuid::Uuid::now_v7()),
            json!({"stock": 1}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/products/not-an-id".to_owned(),
            json!({"stock": 1}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, body) = api
            .call(Method::PATCH, &path, Some(&admin), Some(bad.clone()))
            .await;
        assert_eq!(status, expected, "{path} {bad}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    assert_eq!(stock_of(&api, &pen_id).await, 50);

    let (status, listed) = api.call(Method::GET, "/products", None, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let lamp_listed = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == lamp_id.as_str())
        .expect("the lamp is listed");
    assert_eq!(lamp_listed["stock"], 10);

    // A declined payment: 402, the reservation released, no order saved.
    let (status, body) = api
        .call(
            Method::POST,
            "/orders",
            Some(&alice),
            Some(order(&[(&lamp_id, 2), (&pen_id, 5)], Some(DECLINED_CARD))),
        )
        .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(
        stock_of(&api, &lamp_id).await,
        10,
        "a declined payment leaves stock unchanged"
    );
    assert_eq!(stock_of(&api, &pen_id).await, 50);
    let (_, mine) = api.call(Method::GET, "/orders", Some(&alice), None).await;
    assert_eq!(mine["items"], json!([]), "no order is saved: {mine}");

    // Bad orders are 4xx with a message, and change nothing.
    for (bad, expected) in [
        (
            json!({"items": [{"product_id": lamp_id, "quantity": "two"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"items": [{"product_id": "not-a-uuid", "quantity": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            order(&[(&lamp_id, 1)], Some("123")),
            StatusCode::BAD_REQUEST,
        ),
        (order(&[(&lamp_id, 11)], None), StatusCode::CONFLICT),
        (order(&[(&lamp_id, -3)], None), StatusCode::CONFLICT),
        (order(&[], None), StatusCode::BAD_REQUEST),
        (
            order(&[(&uuid::Uuid::now_v7().to_string(), 1)], None),
            StatusCode::CONFLICT,
        ),
    ] {
        let (status, body) = api
            .call(Method::POST, "/orders", Some(&alice), Some(bad.clone()))
            .await;
        assert!(
            status == expected
                || (expected == StatusCode::UNPROCESSABLE_ENTITY
                    && status == StatusCode::BAD_REQUEST),
            "{bad} -> {status} {body}"
        );
        assert!(body["error"].is_string(), "{body}");
    }
    assert_eq!(stock_of(&api, &lamp_id).await, 10);

    // A good order of two lines.
    let (status, placed) = api
        .call(
            Method::POST,
            "/orders",
            Some(&alice),
            Some(order(
                &[(&lamp_id, 1), (&pen_id, 4)],
                Some("4242424242424242"),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    assert_eq!(placed["status"], "paid");
    assert_eq!(placed["total_cents"], 2500 + 4 * 300);
    assert_eq!(placed["user_id"], alice_id.as_str());
    let items = placed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{placed}");
    let lamp_line = items
        .iter()
        .find(|i| i["product_id"] == lamp_id.as_str())
        .unwrap();
    assert_eq!(lamp_line["quantity"], 1);
    assert_eq!(lamp_line["unit_price_cents"], 2500);
    assert_eq!(lamp_line["name"], "Lamp");
    assert_eq!(stock_of(&api, &lamp_id).await, 9);
    assert_eq!(stock_of(&api, &pen_id).await, 46);
    let order_id = placed["id"].as_str().unwrap().to_owned();

    // Each customer sees only their own orders.
    let (status, got) = api
        .call(
            Method::GET,
            &format!("/orders/{order_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, placed);
    let (status, body) = api
        .call(
            Method::GET,
            &format!("/orders/{order_id}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, bobs) = api.call(Method::GET, "/orders", Some(&bob), None).await;
    assert_eq!(bobs["items"], json!([]));

    // A cancel, an action route backed by a step: the stock comes back, once, and only the
    // customer who ordered cancels (the gateway carries it over HTTP).
    let (status, second) = api
        .call(
            Method::POST,
            "/orders",
            Some(&alice),
            Some(order(&[(&lamp_id, 2)], None)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(stock_of(&api, &lamp_id).await, 7);
    let cancel = format!("/orders/{}/cancel", second["id"].as_str().unwrap());
    // Another customer's order is not found before any step runs: its stock stays held.
    let (status, body) = api.call(Method::POST, &cancel, Some(&bob), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        stock_of(&api, &lamp_id).await,
        7,
        "nothing given back for a stranger"
    );
    let (status, cancelled) = api.call(Method::POST, &cancel, Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(stock_of(&api, &lamp_id).await, 9);
    let (status, body) = api.call(Method::POST, &cancel, Some(&alice), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        stock_of(&api, &lamp_id).await,
        9,
        "a second cancel gives nothing back"
    );

    // 50 concurrent orders of one widget each with 10 in stock: exactly 10 succeed.
    let (status, widget) = api
        .call(
            Method::POST,
            "/products",
            Some(&admin),
            Some(json!({"name": "Widget", "description": "Limited.", "price_cents": 100, "stock": 10})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{widget}");
    let widget_id = widget["id"].as_str().unwrap().to_owned();
    let mut orders = Vec::new();
    for _ in 0..50 {
        let api = Api::new(gateway);
        let (token, widget_id) = (bob.clone(), widget_id.clone());
        orders.push(tokio::spawn(async move {
            api.call(
                Method::POST,
                "/orders",
                Some(&token),
                Some(order(&[(&widget_id, 1)], None)),
            )
            .await
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for handle in orders {
        let (status, body) = handle.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {
                assert!(
                    body["error"].as_str().is_some_and(|e| e.contains("stock")),
                    "{body}"
                );
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created, conflicts), (10, 40), "never oversell");
    assert_eq!(stock_of(&api, &widget_id).await, 0);
    let (_, bobs) = api
        .call(Method::GET, "/orders?limit=100", Some(&bob), None)
        .await;
    assert_eq!(bobs["items"].as_array().unwrap().len(), 10);

    // Stock fell under the threshold once (3 -> 2): one alert, for admins only.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let items = harness::all_notifications(&api, &admin).await;
        let alerts: Vec<&Value> = items.iter().filter(|n| n["kind"] == "low_stock").collect();
        if !alerts.is_empty() {
            assert_eq!(alerts.len(), 1, "{alerts:?}");
            assert_eq!(alerts[0]["message"], "Only 2 left of Widget.");
            break;
        }
        assert!(Instant::now() < deadline, "no low-stock alert: {items:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bobs_notes = harness::all_notifications(&api, &bob).await;
    assert!(
        bobs_notes.iter().all(|n| n["kind"] != "low_stock"),
        "customers get no alerts"
    );

    // The order confirmation reaches alice through `order.created`.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let items = harness::all_notifications(&api, &alice).await;
        let kinds: Vec<&str> = items.iter().filter_map(|n| n["kind"].as_str()).collect();
        // One confirmation per order (the cancelled one included), each naming its order.
        let confirmations: Vec<&Value> = items.iter().filter(|n| n["kind"] == "order").collect();
        if confirmations.len() == 2 && kinds.contains(&"welcome") {
            assert!(
                confirmations
                    .iter()
                    .any(|c| c["message"].as_str().unwrap().contains(&order_id)),
                "{confirmations:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no order confirmation: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pen_id
}

#[test]
fn embedded_mode_runs_the_shop_end_to_end() {
    let data = tempfile::tempdir().unwrap();
    let system = Running::start(
        &shop(),
        "shop-embedded",
        &[
            "run",
            "--port",
            "0",
            "--data",
            data.path().to_str().unwrap(),
        ],
        &admin_env(),
    );
    runtime().block_on(drive_shop(&system.url, "embedded"));
    system.stop();
}

#[test]
fn distributed_mode_runs_the_shop_over_postgres_mariadb_and_rabbitmq() {
    if !infrastructure(
        "distributed shop",
        &[
            ("PostgreSQL", "127.0.0.1:5432"),
            ("MariaDB", "127.0.0.1:3306"),
            ("RabbitMQ", "127.0.0.1:5672"),
        ],
    ) {
        return;
    }
    let run = harness::run_id("shop");
    let internal_secret = "shop-internal-secret-0123456789abcdef0123456";
    let mut env = admin_env();
    env.extend(harness::rabbitmq_env(
        &run,
        "shop-access-secret-0123456789abcdef012345",
        internal_secret,
    ));
    let users = harness::MariaDbDatabase(format!("{run}_user"));
    let mysql_url = format!("mysql://root@127.0.0.1:3306/{}", users.0);
    let system = Distributed::start(
        &shop(),
        run.clone(),
        &["user", "product", "order", "notification"],
        &env,
        |service| match service {
            "user" => vec![("USER_DATABASE_URL".to_string(), mysql_url.clone())],
            _ => Vec::new(),
        },
    );
    let pen = runtime().block_on(drive_shop(&system.gateway.url, &run));
    call_a_service_with_buf_curl(&system, internal_secret, &pen);
    system.stop();
    drop(users);
}

/// `buf curl` (not svcgen's client) calls the product service's gRPC API directly.
fn call_a_service_with_buf_curl(system: &Distributed, internal_secret: &str, product: &str) {
    let buf = support::root().join("tests/tools/node_modules/@bufbuild/buf-linux-x64/bin/buf");
    assert!(
        buf.exists(),
        "buf is installed (npm ci --prefix tests/tools)"
    );
    let url = format!(
        "{}/shop.product.v1.ProductService/GetProduct",
        system.service_url("product")
    );
    let curl = |credential: Option<&str>| {
        let mut command = std::process::Command::new(&buf);
        command
            .arg("curl")
            .arg("--schema")
            .arg(shop().workspace.join("proto"))
            .args(["--protocol", "grpc", "--http2-prior-knowledge"])
            .args(["--data", &json!({"id": product}).to_string()]);
        if let Some(credential) = credential {
            command.args(["--header", &format!("x-svcgen-internal: {credential}")]);
        }
        command.arg(&url).output().expect("buf runs")
    };
    let now = chrono_now();
    let claims = json!({
        "iss": "gateway", "aud": "product", "exp": now + 60, "nbf": now - 5, "iat": now - 5, "roles": [],
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(internal_secret.as_bytes()),
    )
    .unwrap();
    let answered = curl(Some(&token));
    assert!(
        answered.status.success(),
        "buf curl with the internal credential: {}",
        String::from_utf8_lossy(&answered.stderr)
    );
    let body: Value = serde_json::from_slice(&answered.stdout).expect("JSON from buf curl");
    assert_eq!(body["product"]["id"], product, "{body}");
    assert_eq!(body["product"]["name"], "Pen");
    assert_eq!(
        body["product"]["stock"], "46",
        "int64 is a JSON string in protobuf JSON"
    );

    let refused = curl(None);
    assert!(
        !refused.status.success(),
        "a call without the credential must fail"
    );
    let error = String::from_utf8_lossy(&refused.stdout).to_string()
        + &String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("unauthenticated"), "{error}");
    let forged = curl(Some("forged"));
    assert!(!forged.status.success());

    // The product service is reached over gRPC (`transport: grpc`): its routes are RPCs too, the
    // ones the gateway calls.
    let listed = std::process::Command::new(&buf)
        .arg("curl")
        .arg("--schema")
        .arg(shop().workspace.join("proto"))
        .args([
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--data",
            "{}",
        ])
        .args(["--header", &format!("x-svcgen-internal: {token}")])
        .arg(format!(
            "{}/shop.product.v1.ProductApiService/ListProducts",
            system.service_url("product")
        ))
        .output()
        .expect("buf runs");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let page: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(names.contains(&"Pen") && names.contains(&"Lamp"), "{page}");
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
