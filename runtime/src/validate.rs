//! Input validation that reports every problem at once, in words a client can act on.

use serde::{Deserialize, Deserializer};

use crate::http::ApiError;

/// Collects validation problems; [`Validator::finish`] turns them into one 400.
///
/// ```
/// # use svcgen_runtime::validate::Validator;
/// let mut v = Validator::new();
/// v.length("title", "", Some(1), Some(200));
/// v.email("email", "not-an-address");
/// let error = v.finish().unwrap_err();
/// assert_eq!(error.message(), "title must be 1 to 200 characters; email must be an e-mail address");
/// ```
#[derive(Debug, Default, Clone)]
pub struct Validator {
    problems: Vec<String>,
}

impl Validator {
    /// An empty validator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Length in characters (not bytes) within `min..=max`; either bound may be absent.
    pub fn length(&mut self, field: &str, value: &str, min: Option<usize>, max: Option<usize>) {
        let length = value.chars().count();
        let too_short = min.is_some_and(|min| length < min);
        let too_long = max.is_some_and(|max| length > max);
        if !(too_short || too_long) {
            return;
        }
        let rule = match (min, max) {
            (Some(min), Some(max)) if min == max => format!("exactly {}", characters(min)),
            (Some(min), Some(max)) => format!("{min} to {}", characters(max)),
            (Some(min), None) => format!("at least {}", characters(min)),
            (None, Some(max)) => format!("at most {}", characters(max)),
            (None, None) => return,
        };
        self.problems.push(format!("{field} must be {rule}"));
    }

    /// A plausible e-mail address: `local@domain.tld`, no spaces, at most 254 characters.
    /// (Only sending a message proves an address; this catches typos and garbage.)
    pub fn email(&mut self, field: &str, value: &str) {
        if !is_plausible_email(value) {
            self.problems
                .push(format!("{field} must be an e-mail address"));
        }
    }

    /// An integer within `min..=max`; either bound may be absent.
    pub fn range(&mut self, field: &str, value: i64, min: Option<i64>, max: Option<i64>) {
        let ok = min.is_none_or(|min| value >= min) && max.is_none_or(|max| value <= max);
        if ok {
            return;
        }
        let rule = match (min, max) {
            (Some(min), Some(max)) => format!("between {min} and {max}"),
            (Some(min), None) => format!("at least {min}"),
            (None, Some(max)) => format!("at most {max}"),
            (None, None) => return,
        };
        self.problems.push(format!("{field} must be {rule}"));
    }

    /// One of the allowed words (an `enum` field).
    pub fn one_of(&mut self, field: &str, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            self.problems
                .push(format!("{field} must be one of {}", allowed.join(", ")));
        }
    }

    /// A custom rule: records `message` when `ok` is false.
    pub fn check(&mut self, ok: bool, message: impl Into<String>) {
        if !ok {
            self.problems.push(message.into());
        }
    }

    /// `Ok` when nothing was wrong, else a 400 listing every problem, joined by "; ".
    pub fn finish(self) -> Result<(), ApiError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::bad_request(self.problems.join("; ")))
        }
    }
}

fn characters(n: usize) -> String {
    if n == 1 {
        "1 character".to_owned()
    } else {
        format!("{n} characters")
    }
}

fn is_plausible_email(value: &str) -> bool {
    if value.chars().count() > 254 || value.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
}

/// serde helper for PATCH bodies, telling "absent" from "null":
/// absent -> `None` (leave unchanged), `null` -> `Some(None)` (clear), value -> `Some(Some(v))`.
///
/// Use with `#[serde(default, deserialize_with = "svcgen_runtime::validate::nullable")]`
/// on a field of type `Option<Option<T>>` (the `default` makes an absent field `None`).
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_messages_name_the_field_and_the_rule() {
        let mut v = Validator::new();
        v.length("title", "", Some(1), Some(200));
        v.length("password", "short", Some(8), None);
        v.length("bio", &"é".repeat(11), None, Some(10));
        v.length("code", "ab", Some(1), Some(1));
        v.length("ok", "fine", Some(1), Some(10));
        assert_eq!(
            v.finish().unwrap_err().message(),
            "title must be 1 to 200 characters; password must be at least 8 characters; \
             bio must be at most 10 characters; code must be exactly 1 character"
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let mut v = Validator::new();
        v.length("name", "ééé", None, Some(3));
        assert!(v.finish().is_ok());
    }

    #[test]
    fn email_accepts_plausible_addresses_only() {
        for good in ["a@b.co", "first.last+tag@sub.example.org"] {
            let mut v = Validator::new();
            v.email("email", good);
            assert!(v.finish().is_ok(), "{good}");
        }
        for bad in [
            "", "plain", "@b.co", "a@b", "a@.co", "a@b.", "a b@c.de", "a@b@c.de",
        ] {
            let mut v = Validator::new();
            v.email("email", bad);
            let error = v.finish().unwrap_err();
            assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST);
            assert_eq!(error.message(), "email must be an e-mail address", "{bad}");
        }
    }

    #[test]
    fn range_and_check() {
        let mut v = Validator::new();
        v.range("quantity", 0, Some(1), Some(10));
        v.range("age", 5, Some(0), None);
        v.check(false, "start must be before end");
        assert_eq!(
            v.finish().unwrap_err().message(),
            "quantity must be between 1 and 10; start must be before end"
        );
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Patch {
        #[serde(default, deserialize_with = "nullable")]
        body: Option<Option<String>>,
    }

    #[test]
    fn nullable_tells_absent_from_null() {
        let absent: Patch = serde_json::from_str("{}").unwrap();
        let null: Patch = serde_json::from_str(r#"{"body": null}"#).unwrap();
        let value: Patch = serde_json::from_str(r#"{"body": "x"}"#).unwrap();
        assert_eq!(absent.body, None);
        assert_eq!(null.body, Some(None));
        assert_eq!(value.body, Some(Some("x".to_owned())));
    }
}
