use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::Router;

use super::*;
use crate::rpc::{Deadline, RawCodec};
use crate::test_support::{settings, sqlite_db};

const RELEASE: &str = "/test.v1.Stock/Release";

/// A peer whose `Release` records each request it gets, failing while `down` is set.
#[derive(Clone, Default)]
struct Stock {
    down: Arc<Mutex<bool>>,
    released: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl tonic::server::UnaryService<Vec<u8>> for Stock {
    type Response = Vec<u8>;
    type Future = BoxFuture<'static, Result<tonic::Response<Vec<u8>>, Status>>;

    fn call(&mut self, request: tonic::Request<Vec<u8>>) -> Self::Future {
        let result = if *self.down.lock().unwrap() {
            Err(Status::unavailable("restarting"))
        } else {
            self.released.lock().unwrap().push(request.into_inner());
            Ok(tonic::Response::new(Vec::new()))
        };
        Box::pin(async move { result })
    }
}

async fn world() -> (Db, Arc<Settings>, Stock, tempfile::TempDir) {
    let (db, dir) = sqlite_db().await;
    crate::events::prepare(&db).await.unwrap();
    let stock = Stock::default();
    let peer = stock.clone();
    let app = Router::new().route(
        RELEASE,
        axum::routing::post(move |request: axum::extract::Request| {
            let peer = peer.clone();
            async move {
                tonic::server::Grpc::new(RawCodec)
                    .unary(peer, request)
                    .await
                    .map(axum::body::Body::new)
            }
        }),
    );
    let settings = settings();
    settings.peers.set_local(BTreeMap::from([("stock", app)]));
    (db, settings, stock, dir)
}

async fn leftover(db: &Db) -> i64 {
    query("SELECT COUNT(*) AS n FROM svcgen_compensations")
        .fetch_optional(db)
        .await
        .unwrap()
        .unwrap()
        .get("n")
        .unwrap()
}

/// Makes every leftover undo due now (as if the saga's deadline had long passed).
async fn make_due(db: &Db) {
    query("UPDATE svcgen_compensations SET due_at = $1")
        .bind(timestamp(crate::db::now() - chrono::Duration::seconds(1)))
        .execute(db)
        .await
        .unwrap();
}

fn request(order: &str) -> String {
    order.to_owned()
}

#[tokio::test]
async fn a_failed_saga_runs_its_recorded_undos_and_forgets_them() {
    let (db, settings, stock, _dir) = world().await;
    let calls = Outgoing::new(&settings, None, Deadline::after(Duration::from_secs(10)));
    let mut saga = Saga::recorded(&db, &calls);
    saga.undo_with("stock.Release", "stock", RELEASE, true, &request("order-1"))
        .await
        .unwrap();
    assert_eq!(leftover(&db).await, 1, "recorded before the step runs");
    let error = saga.fail(ApiError::conflict("out of stock")).await;
    assert_eq!(error.status(), axum::http::StatusCode::CONFLICT);
    assert_eq!(
        *stock.released.lock().unwrap(),
        [prost::Message::encode_to_vec(&request("order-1"))]
    );
    assert_eq!(leftover(&db).await, 0);
}

#[tokio::test]
async fn undos_of_a_saga_that_never_finished_run_once_due_exactly_once() {
    let (db, settings, stock, _dir) = world().await;
    let calls = Outgoing::new(&settings, None, Deadline::after(Duration::from_secs(10)));
    let mut saga = Saga::recorded(&db, &calls);
    saga.undo_with("stock.Release", "stock", RELEASE, true, &request("order-2"))
        .await
        .unwrap();
    // The process stops here: the saga neither succeeds nor fails.
    drop(saga);
    assert_eq!(
        recover(&db, &settings).await.unwrap(),
        0,
        "not due while it may still run"
    );
    assert!(stock.released.lock().unwrap().is_empty());
    make_due(&db).await;
    assert_eq!(recover(&db, &settings).await.unwrap(), 1);
    assert_eq!(recover(&db, &settings).await.unwrap(), 0);
    assert_eq!(stock.released.lock().unwrap().len(), 1);
    assert_eq!(leftover(&db).await, 0);
}

#[tokio::test]
async fn a_succeeded_saga_forgets_its_undos_with_the_transaction_that_made_it_final() {
    let (db, settings, stock, _dir) = world().await;
    let calls = Outgoing::new(&settings, None, Deadline::after(Duration::from_secs(10)));
    let mut saga = Saga::recorded(&db, &calls);
    saga.undo_with("stock.Release", "stock", RELEASE, true, &request("order-3"))
        .await
        .unwrap();
    // A transaction that rolls back forgets nothing...
    let mut tx = db.begin().await.unwrap();
    saga.succeed(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(leftover(&db).await, 1);
    // ... one that commits forgets them all.
    let mut tx = db.begin().await.unwrap();
    saga.succeed(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(leftover(&db).await, 0);
    make_due(&db).await;
    assert_eq!(recover(&db, &settings).await.unwrap(), 0);
    assert!(stock.released.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_undo_that_fails_is_kept_and_retried_later() {
    let (db, settings, stock, _dir) = world().await;
    *stock.down.lock().unwrap() = true;
    let calls = Outgoing::new(&settings, None, Deadline::after(Duration::from_secs(10)));
    let mut saga = Saga::recorded(&db, &calls);
    saga.undo_with(
        "stock.Release",
        "stock",
        RELEASE,
        false,
        &request("order-4"),
    )
    .await
    .unwrap();
    saga.fail(ApiError::conflict("out of stock")).await;
    assert_eq!(leftover(&db).await, 1, "kept for later");
    make_due(&db).await;
    assert_eq!(recover(&db, &settings).await.unwrap(), 0);
    let attempts: i64 = query("SELECT attempts FROM svcgen_compensations")
        .fetch_optional(&db)
        .await
        .unwrap()
        .unwrap()
        .get("attempts")
        .unwrap();
    assert_eq!(attempts, 1);
    assert_eq!(
        recover(&db, &settings).await.unwrap(),
        0,
        "put off after a failure"
    );
    *stock.down.lock().unwrap() = false;
    make_due(&db).await;
    assert_eq!(recover(&db, &settings).await.unwrap(), 1);
    assert_eq!(leftover(&db).await, 0);
    assert_eq!(stock.released.lock().unwrap().len(), 1);
}
