//! Scheduled jobs: each service runs its jobs (`every: 1h`, or a cron expression in UTC) from
//! its own database, so that any number of replicas run each tick once.
//!
//! * `svcgen_jobs` holds each job's next run. A replica that finds it due moves it to the next
//!   tick with one conditional `UPDATE` (the old time in its `WHERE`): of the replicas that
//!   race, one changes the row and runs the job, the others change nothing and go on waiting.
//! * A tick missed while no replica ran (the system was down) is due at the next start and
//!   runs once, however many ticks were missed; the next one is the first tick after now.
//! * Every run is recorded in `svcgen_job_runs` (why it ran, when, its outcome and error) and
//!   logged; admins list the jobs and their runs and run a job now through
//!   `/admin/<service>/jobs` ([`admin_routes`]).
//!
//! A run is a function of the service's context that the generated code writes from the spec
//! (its statements in one transaction, retried like a request's). A replica that dies during a
//! run loses that run (the tick was taken): jobs are written to be safe to run again at the
//! next tick.

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;
use uuid::Uuid;

use crate::db::{self, Db, DbError, Engine, query};
use crate::http::{ApiError, ApiResult, Json};
use crate::identity::Caller;
use crate::service::ServiceContext;

/// When a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every so many seconds (`every: 1h`).
    Every(u64),
    /// At the times a cron expression names, in UTC.
    Cron(&'static str),
}

impl Schedule {
    /// The first tick strictly after `after`; `None` for a cron expression that names no time
    /// to come.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(secs) => {
                Some(after + chrono::Duration::seconds(i64::try_from(*secs).ok()?.max(1)))
            }
            Schedule::Cron(text) => svcgen_cron::Cron::parse(text).ok()?.next_after(after),
        }
    }

    fn describe(&self) -> String {
        match self {
            Schedule::Every(secs) => format!("every {secs} s"),
            Schedule::Cron(text) => format!("cron `{text}` (UTC)"),
        }
    }
}

/// One job of a service, as the generated code declares it.
#[derive(Debug, Clone, Copy)]
pub struct JobDef {
    /// Its name, unique in the service.
    pub name: &'static str,
    /// When it runs.
    pub schedule: Schedule,
    /// What it does: its statements, in one transaction.
    pub run: fn(ServiceContext) -> BoxFuture<'static, ApiResult<()>>,
}

/// The jobs' tables, per engine.
fn tables(engine: Engine) -> [&'static str; 2] {
    match engine {
        Engine::Sqlite => [
            "CREATE TABLE IF NOT EXISTS svcgen_jobs (name TEXT PRIMARY KEY NOT NULL, next_run_at TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS svcgen_job_runs (id TEXT PRIMARY KEY NOT NULL, job TEXT NOT NULL, cause TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT, outcome TEXT NOT NULL, error TEXT)",
        ],
        Engine::Postgres => [
            "CREATE TABLE IF NOT EXISTS svcgen_jobs (name TEXT PRIMARY KEY NOT NULL, next_run_at TIMESTAMPTZ NOT NULL)",
            "CREATE TABLE IF NOT EXISTS svcgen_job_runs (id UUID PRIMARY KEY NOT NULL, job TEXT NOT NULL, cause TEXT NOT NULL, started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ, outcome TEXT NOT NULL, error TEXT)",
        ],
        Engine::Mysql => [
            "CREATE TABLE IF NOT EXISTS svcgen_jobs (name VARCHAR(100) PRIMARY KEY NOT NULL, next_run_at DATETIME(6) NOT NULL)",
            "CREATE TABLE IF NOT EXISTS svcgen_job_runs (id CHAR(36) PRIMARY KEY NOT NULL, job VARCHAR(100) NOT NULL, cause VARCHAR(20) NOT NULL, started_at DATETIME(6) NOT NULL, finished_at DATETIME(6), outcome VARCHAR(20) NOT NULL, error TEXT)",
        ],
    }
}

/// Makes the jobs' tables and a row for each job not seen before (its first tick after now).
pub async fn prepare(db: &Db, jobs: &[JobDef]) -> Result<(), DbError> {
    if jobs.is_empty() {
        return Ok(());
    }
    for statement in tables(db.engine()) {
        query(statement).execute(db).await?;
    }
    let now = db::now();
    for job in jobs {
        let known = query("SELECT next_run_at FROM svcgen_jobs WHERE name = $1")
            .bind(job.name)
            .fetch_optional(db)
            .await?;
        if known.is_some() {
            continue;
        }
        let first = job.schedule.next_after(now).unwrap_or(now);
        let inserted = query("INSERT INTO svcgen_jobs (name, next_run_at) VALUES ($1, $2)")
            .bind(job.name)
            .bind(first)
            .execute(db)
            .await;
        // Another replica that starts at the same time may have made the row first.
        if let Err(error) = inserted
            && query("SELECT next_run_at FROM svcgen_jobs WHERE name = $1")
                .bind(job.name)
                .fetch_optional(db)
                .await?
                .is_none()
        {
            return Err(error);
        }
    }
    Ok(())
}

/// Why a job ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Its tick came (or was missed while the system was down).
    Schedule,
    /// An admin asked.
    Admin,
}

impl Cause {
    fn as_str(self) -> &'static str {
        match self {
            Cause::Schedule => "schedule",
            Cause::Admin => "admin",
        }
    }
}

/// One run of a job, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRun {
    /// The run's id.
    pub id: Uuid,
    /// The job.
    pub job: String,
    /// `schedule` or `admin`.
    pub cause: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended; `null` while it runs.
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `succeeded` or `failed`.
    pub outcome: String,
    /// Why it failed.
    pub error: Option<String>,
}

/// Runs `job` now, recording the run and its outcome; the run as recorded.
pub async fn run(ctx: &ServiceContext, job: &JobDef, cause: Cause) -> Result<JobRun, DbError> {
    let started_at = db::now();
    let id = Uuid::now_v7();
    query("INSERT INTO svcgen_job_runs (id, job, cause, started_at, outcome) VALUES ($1, $2, $3, $4, 'running')")
        .bind(id)
        .bind(job.name)
        .bind(cause.as_str())
        .bind(started_at)
        .execute(&ctx.db)
        .await?;
    let result = (job.run)(ctx.clone()).await;
    let finished_at = db::now();
    let (outcome, error) = match &result {
        Ok(()) => {
            tracing::info!(
                service = ctx.service,
                job = job.name,
                cause = cause.as_str(),
                "job ran"
            );
            ("succeeded", None)
        }
        Err(error) => {
            tracing::error!(service = ctx.service, job = job.name, cause = cause.as_str(), %error, "job failed");
            ("failed", Some(error.message().to_owned()))
        }
    };
    query("UPDATE svcgen_job_runs SET finished_at = $2, outcome = $3, error = $4 WHERE id = $1")
        .bind(id)
        .bind(finished_at)
        .bind(outcome)
        .bind(error.clone())
        .execute(&ctx.db)
        .await?;
    Ok(JobRun {
        id,
        job: job.name.to_owned(),
        cause: cause.as_str().to_owned(),
        started_at,
        finished_at: Some(finished_at),
        outcome: outcome.to_owned(),
        error,
    })
}

/// How long a scheduler sleeps at most between two looks at its jobs.
const LONGEST_SLEEP: Duration = Duration::from_secs(5);

/// A time after every tick: the last second of year 9999 (every engine stores it).
fn never() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
        .map_or(DateTime::<Utc>::MAX_UTC, |t| t.to_utc())
}

/// Takes the due tick of `job` if no other replica took it first: the job's next run moves
/// from `due` to the tick after now in one conditional statement.
async fn take_tick(db: &Db, job: &JobDef, due: DateTime<Utc>) -> Result<bool, DbError> {
    let now = db::now();
    // A cron expression that names no time to come (the generator refuses those) waits for
    // ever.
    let next = job.schedule.next_after(now).unwrap_or_else(never);
    let taken =
        query("UPDATE svcgen_jobs SET next_run_at = $1 WHERE name = $2 AND next_run_at = $3")
            .bind(next)
            .bind(job.name)
            .bind(due)
            .execute(db)
            .await?;
    Ok(taken == 1)
}

/// One service's scheduler: runs each job at its ticks until `stopping` says stop.
pub async fn schedule(
    ctx: ServiceContext,
    jobs: &'static [JobDef],
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    if jobs.is_empty() {
        return;
    }
    loop {
        let mut sleep = LONGEST_SLEEP;
        for job in jobs {
            let due = query("SELECT next_run_at FROM svcgen_jobs WHERE name = $1")
                .bind(job.name)
                .fetch_optional(&ctx.db)
                .await
                .and_then(|row| {
                    row.map(|row| row.get::<DateTime<Utc>>("next_run_at"))
                        .transpose()
                });
            let due = match due {
                Ok(Some(due)) => due,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(service = ctx.service, job = job.name, %error, "cannot read the job's next run");
                    continue;
                }
            };
            let now = db::now();
            if due <= now {
                match take_tick(&ctx.db, job, due).await {
                    Ok(true) => {
                        if let Err(error) = run(&ctx, job, Cause::Schedule).await {
                            tracing::error!(service = ctx.service, job = job.name, %error, "cannot record the job's run");
                        }
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(service = ctx.service, job = job.name, %error, "cannot take the job's tick");
                    }
                }
            } else if let Ok(until) = (due - now).to_std() {
                sleep = sleep.min(until);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = stopping.changed() => return,
        }
        if *stopping.borrow() {
            return;
        }
    }
}

/// A job as the admin routes show it.
#[derive(Debug, Serialize)]
struct JobView {
    name: &'static str,
    schedule: String,
    next_run_at: Option<DateTime<Utc>>,
    last_run: Option<JobRun>,
}

fn require_admin(caller: &Caller) -> ApiResult<()> {
    if caller.has_role("admin") {
        Ok(())
    } else {
        Err(ApiError::forbidden("this route is for administrators"))
    }
}

fn find(jobs: &'static [JobDef], name: &str) -> ApiResult<&'static JobDef> {
    jobs.iter().find(|job| job.name == name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no job `{}`",
            name.chars().take(64).collect::<String>()
        ))
    })
}

async fn runs_of(db: &Db, job: &str, limit: i64) -> Result<Vec<JobRun>, DbError> {
    let rows = query(
        "SELECT id, job, cause, started_at, finished_at, outcome, error FROM svcgen_job_runs WHERE job = $1 ORDER BY started_at DESC, id DESC LIMIT $2",
    )
    .bind(job.to_owned())
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(JobRun {
                id: row.get("id")?,
                job: row.get("job")?,
                cause: row.get("cause")?,
                started_at: row.get("started_at")?,
                finished_at: row.get("finished_at")?,
                outcome: row.get("outcome")?,
                error: row.get("error")?,
            })
        })
        .collect()
}

/// `GET /admin/<service>/jobs` (each job, its schedule, next run and last run),
/// `GET /admin/<service>/jobs/{job}/runs` (its last 50 runs, newest first) and
/// `POST /admin/<service>/jobs/{job}/run` (runs it now; answers the run, its outcome
/// included), for callers with the `admin` role.
pub fn admin_routes(service: &str, jobs: &'static [JobDef]) -> Router<ServiceContext> {
    let list = move |State(ctx): State<ServiceContext>, caller: Caller| async move {
        require_admin(&caller)?;
        let mut views = Vec::with_capacity(jobs.len());
        for job in jobs {
            let next = query("SELECT next_run_at FROM svcgen_jobs WHERE name = $1")
                .bind(job.name)
                .fetch_optional(&ctx.db)
                .await?;
            let next_run_at = match next {
                Some(row) => Some(row.get::<DateTime<Utc>>("next_run_at")?),
                None => None,
            };
            views.push(JobView {
                name: job.name,
                schedule: job.schedule.describe(),
                next_run_at,
                last_run: runs_of(&ctx.db, job.name, 1).await?.into_iter().next(),
            });
        }
        Ok::<_, ApiError>(Json(views))
    };
    let runs = move |State(ctx): State<ServiceContext>,
                     caller: Caller,
                     Path(name): Path<String>| async move {
        require_admin(&caller)?;
        let job = find(jobs, &name)?;
        Ok::<_, ApiError>(Json(runs_of(&ctx.db, job.name, 50).await?))
    };
    let run_now = move |State(ctx): State<ServiceContext>,
                        caller: Caller,
                        Path(name): Path<String>| async move {
        require_admin(&caller)?;
        let job = find(jobs, &name)?;
        Ok::<_, ApiError>(Json(run(&ctx, job, Cause::Admin).await?))
    };
    Router::new()
        .route(&format!("/admin/{service}/jobs"), get(list))
        .route(&format!("/admin/{service}/jobs/{{job}}/runs"), get(runs))
        .route(&format!("/admin/{service}/jobs/{{job}}/run"), post(run_now))
}

#[cfg(test)]
mod tests;
