//! Transactions that are run again when the database, not the request, made them fail.
//!
//! Under concurrency every engine can refuse a transaction that would have succeeded a moment
//! later: PostgreSQL and MySQL break deadlocks by aborting one side (and refuse serialization
//! conflicts), SQLite answers "database is locked" when another connection holds the write lock
//! longer than the busy timeout. None of that is the client's fault, so it must never reach the
//! client as a 500: [`retrying`] runs the whole transaction again, with
//! a short jittered backoff, a bounded number of times.

use std::future::Future;
use std::time::Duration;

use rand::Rng as _;

use super::DbError;

/// How many times a transaction is tried in all before its transient failure is returned.
pub const MAX_ATTEMPTS: u32 = 12;

/// An error that may say "try the transaction again".
pub trait Transient {
    /// True when running the same transaction again may well succeed: a deadlock victim, a
    /// serialization failure, a busy SQLite database.
    fn is_transient(&self) -> bool;
}

impl Transient for DbError {
    fn is_transient(&self) -> bool {
        let DbError::Sqlx(sqlx::Error::Database(error)) = self else {
            return false;
        };
        if let Some(mysql) = error.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
            // ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT.
            return matches!(mysql.number(), 1213 | 1205);
        }
        match error.code().as_deref() {
            // serialization_failure, deadlock_detected (PostgreSQL; MySQL's deadlock too).
            Some("40001" | "40P01") => true,
            // SQLITE_BUSY and SQLITE_LOCKED with any extended code (busy snapshot, timeout, ...).
            Some(code)
                if error
                    .try_downcast_ref::<sqlx::sqlite::SqliteError>()
                    .is_some() =>
            {
                code.parse::<i32>()
                    .is_ok_and(|code| matches!(code & 0xff, 5 | 6))
            }
            _ => false,
        }
    }
}

/// Runs `attempt` (one whole transaction, from begin to commit) until it succeeds, fails for
/// a reason that is not [`Transient`], or has been tried [`MAX_ATTEMPTS`] times.
///
/// ```text
/// let row = db::retrying(|| attempt(&ctx, id, &input)).await?;
/// ```
pub async fn retrying<T, E, Fut>(mut attempt: impl FnMut() -> Fut) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
    E: Transient,
{
    let mut made = 0;
    loop {
        made += 1;
        match attempt().await {
            Err(error) if error.is_transient() && made < MAX_ATTEMPTS => {
                tokio::time::sleep(backoff(made)).await;
            }
            settled => return settled,
        }
    }
}

/// Full jitter over 2 ms doubling per attempt, at most 250 ms: contenders spread out instead of
/// colliding again in step.
fn backoff(attempt: u32) -> Duration {
    let ceiling = (2u64 << attempt.min(7)).min(250);
    Duration::from_millis(rand::rng().random_range(1..=ceiling))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_its_ceiling() {
        for attempt in 1..=MAX_ATTEMPTS {
            let wait = backoff(attempt);
            assert!(wait >= Duration::from_millis(1), "{attempt}: {wait:?}");
            assert!(wait <= Duration::from_millis(250), "{attempt}: {wait:?}");
        }
    }

    /// An error that says whether it is worth another attempt.
    #[derive(Debug, PartialEq)]
    struct Refused(bool);

    impl Transient for Refused {
        fn is_transient(&self) -> bool {
            self.0
        }
    }

    #[tokio::test]
    async fn a_transient_failure_is_tried_again_until_it_succeeds() {
        let mut made = 0;
        let result = retrying(|| {
            made += 1;
            let outcome = if made < 3 {
                Err(Refused(true))
            } else {
                Ok(made)
            };
            async move { outcome }
        })
        .await;
        assert_eq!(result, Ok(3));
    }

    #[tokio::test]
    async fn a_final_failure_ends_at_once() {
        let mut made = 0;
        let result: Result<(), _> = retrying(|| {
            made += 1;
            async { Err(Refused(false)) }
        })
        .await;
        assert_eq!((result, made), (Err(Refused(false)), 1));
    }

    #[tokio::test]
    async fn a_failure_that_never_passes_is_returned_after_the_last_attempt() {
        let mut made = 0;
        let result: Result<(), _> = retrying(|| {
            made += 1;
            async { Err(Refused(true)) }
        })
        .await;
        assert_eq!((result, made), (Err(Refused(true)), MAX_ATTEMPTS));
    }

    #[test]
    fn only_database_refusals_are_transient() {
        assert!(
            !DbError::Encode {
                sql: "SELECT 1".into(),
                message: "no".into()
            }
            .is_transient()
        );
        assert!(!DbError::Sqlx(sqlx::Error::RowNotFound).is_transient());
    }
}
