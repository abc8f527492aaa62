//! The scheduler on every engine: replicas that race run each tick once, a tick missed while
//! nothing ran runs once at the next start, and every run is recorded.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::bus::Bus;
use crate::events::Events;
use crate::test_support::{
    MYSQL_PORT, MySqlDatabase, PgDatabase, infra_available, settings, sqlite_db,
};

/// How many times each test's job ran, by engine (the tests run in parallel).
static RUNS: [AtomicUsize; 3] = [
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
];

fn count(slot: usize) -> BoxFuture<'static, ApiResult<()>> {
    RUNS[slot].fetch_add(1, Ordering::SeqCst);
    Box::pin(async { Ok(()) })
}

static SQLITE_JOBS: [JobDef; 1] = [JobDef {
    name: "tidy",
    schedule: Schedule::Every(3600),
    run: |_| count(0),
}];
static POSTGRES_JOBS: [JobDef; 1] = [JobDef {
    name: "tidy",
    schedule: Schedule::Cron("0 3 * * *"),
    run: |_| count(1),
}];
static MYSQL_JOBS: [JobDef; 1] = [JobDef {
    name: "tidy",
    schedule: Schedule::Every(60),
    run: |_| count(2),
}];

fn context(db: &Db) -> ServiceContext {
    ServiceContext {
        service: "janitor",
        db: db.clone(),
        bus: Bus::in_process(),
        settings: settings(),
        events: Events::default(),
    }
}

async fn runs_recorded(db: &Db) -> Vec<JobRun> {
    runs_of(db, "tidy", 50).await.expect("runs readable")
}

/// Two replicas over one database: a missed tick runs once, then nothing until the next tick;
/// an admin run runs at once and is recorded as such.
async fn one_run_per_tick(db: &Db, jobs: &'static [JobDef], slot: usize) {
    prepare(db, jobs).await.expect("tables");
    prepare(db, jobs).await.expect("prepare again: a no-op");
    // The system was down past a tick.
    let missed = db::now() - chrono::Duration::hours(2);
    query("UPDATE svcgen_jobs SET next_run_at = $1 WHERE name = 'tidy'")
        .bind(missed)
        .execute(db)
        .await
        .unwrap();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let replicas: Vec<_> = (0..2)
        .map(|_| tokio::spawn(schedule(context(db), jobs, stopping.clone())))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while runs_recorded(db)
        .await
        .iter()
        .all(|r| r.outcome == "running")
    {
        assert!(std::time::Instant::now() < deadline, "the missed tick runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Long enough for a second run, were the tick taken twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(true);
    for replica in replicas {
        replica.await.unwrap();
    }
    assert_eq!(
        RUNS[slot].load(Ordering::SeqCst),
        1,
        "one run for the missed ticks"
    );
    let runs = runs_recorded(db).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (runs[0].cause.as_str(), runs[0].outcome.as_str()),
        ("schedule", "succeeded")
    );
    let next: DateTime<Utc> = query("SELECT next_run_at FROM svcgen_jobs WHERE name = 'tidy'")
        .fetch_optional(db)
        .await
        .unwrap()
        .unwrap()
        .get("next_run_at")
        .unwrap();
    assert!(next > db::now(), "the next tick is to come: {next}");

    let by_admin = run(&context(db), &jobs[0], Cause::Admin).await.unwrap();
    assert_eq!(
        (by_admin.cause.as_str(), by_admin.outcome.as_str()),
        ("admin", "succeeded")
    );
    assert_eq!(RUNS[slot].load(Ordering::SeqCst), 2);
    assert_eq!(runs_recorded(db).await.len(), 2);
}

#[tokio::test]
async fn sqlite_runs_each_tick_once() {
    let (db, _dir) = sqlite_db().await;
    one_run_per_tick(&db, &SQLITE_JOBS, 0).await;
}

#[tokio::test]
async fn postgres_runs_each_tick_once() {
    if !infra_available(5432, "PostgreSQL", "postgres_runs_each_tick_once") {
        return;
    }
    let database = PgDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    one_run_per_tick(&db, &POSTGRES_JOBS, 1).await;
    db.close().await;
}

#[tokio::test]
async fn mysql_runs_each_tick_once() {
    if !infra_available(MYSQL_PORT, "MySQL", "mysql_runs_each_tick_once") {
        return;
    }
    let database = MySqlDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    one_run_per_tick(&db, &MYSQL_JOBS, 2).await;
    db.close().await;
}

#[test]
fn schedules_name_their_next_tick() {
    let after: DateTime<Utc> = "2026-12-04T10:20:30Z".parse().unwrap();
    assert_eq!(
        Schedule::Every(90).next_after(after),
        Some("2026-12-04T10:22:00Z".parse().unwrap())
    );
    assert_eq!(
        Schedule::Cron("0 3 * * *").next_after(after),
        Some("2026-12-05T03:00:00Z".parse().unwrap())
    );
    assert_eq!(Schedule::Cron("0 0 31 2 *").next_after(after), None);
}
