//! Cron expressions of svcgen jobs, in UTC: five fields, `minute hour day-of-month month
//! day-of-week`, each `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a list of those
//! separated by commas (day of week 0 to 7, both Sunday). As in every cron, a job whose day of
//! month and day of week are both restricted runs on the days that match either.
//!
//! The generator reads a spec's expressions with [`Cron::parse`] to refuse a bad one where it is
//! written; the runtime reads them again to schedule, so both agree on what is valid.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Day of month was `*` (then only the weekday restricts days), and so on.
    any_day: bool,
    any_weekday: bool,
}

/// The fields: name, lowest and highest value.
const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

impl Cron {
    /// Reads an expression; the error says which field is wrong and why.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "a cron expression has five fields (minute hour day-of-month month day-of-week), this one has {}",
                fields.len()
            ));
        }
        let mut sets = [0_u64; 5];
        for (i, field) in fields.iter().enumerate() {
            let (name, low, high) = FIELDS[i];
            sets[i] = set(field, low, high).map_err(|why| format!("{name} `{field}`: {why}"))?;
        }
        // Sunday is 0 and 7.
        if sets[4] & (1 << 7) != 0 {
            sets[4] |= 1;
        }
        Ok(Cron {
            minutes: sets[0],
            hours: sets[1],
            days: sets[2],
            months: sets[3],
            weekdays: sets[4],
            any_day: fields[2] == "*",
            any_weekday: fields[4] == "*",
        })
    }

    fn day_matches(&self, time: &DateTime<Utc>) -> bool {
        let day = self.days & (1 << time.day()) != 0;
        let weekday = self.weekdays & (1 << time.weekday().num_days_from_sunday()) != 0;
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (false, true) => day,
            (true, false) => weekday,
            (false, false) => day || weekday,
        }
    }

    /// The first time strictly after `after` (to the minute) the expression names; `None` when
    /// none comes within five years (`0 0 31 2 *`, the 31st of February).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = Utc
            .with_ymd_and_hms(
                after.year(),
                after.month(),
                after.day(),
                after.hour(),
                after.minute(),
                0,
            )
            .single()?
            + Duration::minutes(1);
        let limit = start + Duration::days(5 * 366);
        let mut time = start;
        while time < limit {
            if self.months & (1 << time.month()) == 0 {
                // The first minute of the next month.
                let (year, month) = if time.month() == 12 {
                    (time.year() + 1, 1)
                } else {
                    (time.year(), time.month() + 1)
                };
                time = Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single()?;
            } else if !self.day_matches(&time) {
                time = Utc
                    .with_ymd_and_hms(time.year(), time.month(), time.day(), 0, 0, 0)
                    .single()?
                    + Duration::days(1);
            } else if self.hours & (1 << time.hour()) == 0 {
                time = Utc
                    .with_ymd_and_hms(time.year(), time.month(), time.day(), time.hour(), 0, 0)
                    .single()?
                    + Duration::hours(1);
            } else if self.minutes & (1 << time.minute()) == 0 {
                time += Duration::minutes(1);
            } else {
                return Some(time);
            }
        }
        None
    }
}

/// The values one field names, as bits.
fn set(field: &str, low: u32, high: u32) -> Result<u64, String> {
    let mut bits = 0_u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 =
                    step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!("the step `{step}` is not a whole number above 0")
                    })?;
                (range, step)
            }
            None => (part, 1),
        };
        let number = |text: &str| -> Result<u32, String> {
            let n: u32 = text
                .parse()
                .map_err(|_| format!("`{text}` is not a number"))?;
            if (low..=high).contains(&n) {
                Ok(n)
            } else {
                Err(format!("{n} is outside {low} to {high}"))
            }
        };
        let (from, to) = match range {
            "*" => (low, high),
            _ => match range.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (number(a)?, number(b)?);
                    if a > b {
                        return Err(format!("the range {a}-{b} runs backwards"));
                    }
                    (a, b)
                }
                // `5/15`: from 5 to the end, every 15.
                None if step > 1 => (number(range)?, high),
                None => {
                    let n = number(range)?;
                    (n, n)
                }
            },
        };
        let mut value = from;
        while value <= to {
            bits |= 1 << value;
            value += step;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn next(expression: &str, after: &str) -> String {
        Cron::parse(expression)
            .unwrap()
            .next_after(at(after))
            .map_or("never".into(), |t| t.to_rfc3339())
    }

    #[test]
    fn finds_the_next_time_of_each_kind_of_field() {
        assert_eq!(
            next("* * * * *", "2026-01-01T10:00:30Z"),
            "2026-01-01T10:01:00+00:00"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-01-01T10:00:00Z"),
            "2026-01-01T10:15:00+00:00"
        );
        assert_eq!(
            next("0 3 * * *", "2026-01-01T03:00:00Z"),
            "2026-01-02T03:00:00+00:00"
        );
        assert_eq!(
            next("30 9 * * 1-5", "2026-12-04T10:00:00Z"),
            "2026-12-07T09:30:00+00:00"
        );
        assert_eq!(
            next("0 0 1 */3 *", "2026-02-10T00:00:00Z"),
            "2026-04-01T00:00:00+00:00"
        );
        assert_eq!(
            next("0 12 29 2 *", "2026-03-01T00:00:00Z"),
            "2028-02-29T12:00:00+00:00"
        );
        assert_eq!(
            next("5,10 0 * * 7", "2026-12-04T00:00:00Z"),
            "2026-12-06T00:05:00+00:00"
        );
        // Day of month and day of week both restricted: either one.
        assert_eq!(
            next("0 0 13 * 5", "2026-12-01T00:00:00Z"),
            "2026-12-04T00:00:00+00:00"
        );
        assert_eq!(next("0 0 31 2 *", "2026-01-01T00:00:00Z"), "never");
    }

    #[test]
    fn says_which_field_is_wrong() {
        for (expression, says) in [
            ("* * * *", "five fields"),
            ("60 * * * *", "minute `60`: 60 is outside 0 to 59"),
            ("* 24 * * *", "hour `24`"),
            ("* * 0 * *", "day of month `0`"),
            ("* * * 13 *", "month `13`"),
            ("* * * * 8", "day of week `8`"),
            ("*/0 * * * *", "the step `0`"),
            ("5-1 * * * *", "runs backwards"),
            ("a * * * *", "`a` is not a number"),
        ] {
            let error = Cron::parse(expression).unwrap_err();
            assert!(error.contains(says), "{expression}: {error}");
        }
    }
}
