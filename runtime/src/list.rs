//! Lists people expect: filters on declared fields (equality, and ranges on numbers and
//! times), full-text search, sort on declared fields in both directions, keyset pagination
//! that stays correct under every sort, a bounded `limit`, and a total on request.
//!
//! A list route's generated code declares what its callers may ask for ([`ListDef`]) and the
//! rows the caller may see (a condition of the entity's access rules); the request's query
//! string is read once against that declaration ([`ListRequest::parse`]: anything unknown or
//! malformed is a 400 naming the parameter), and [`fetch`] builds the one statement that
//! answers it. Values are always bound as arguments: only the statement's shape (which
//! declared columns it filters and orders on) comes from the request.

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{Db, DbError, Engine, Query, Row, query_owned};
use crate::http::{ApiError, ApiResult, Paginated};

mod statement;

pub use statement::fetch;

/// What a list route lets its callers ask for.
#[derive(Debug)]
pub struct ListDef {
    /// The entity's table (unquoted).
    pub table: &'static str,
    /// The table's columns, in the order the entity's model reads them.
    pub columns: &'static [&'static str],
    /// Fields callers may filter on (`?author_id=...`, `?created_at.gte=...`).
    pub filters: &'static [Field],
    /// Fields callers may sort on (`?sort=title`, `?sort=-title`), beside `created_at`.
    pub sorts: &'static [Field],
    /// Whether `?q=` searches the entity's text (the search index its migration made).
    pub search: bool,
}

/// A field of a list's filters or sorts.
#[derive(Debug)]
pub struct Field {
    /// Its name, which is its column's.
    pub name: &'static str,
    /// How its values are written and compared.
    pub kind: Kind,
}

/// The kinds of value a list filters and sorts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text, compared whole.
    Text,
    /// A whole number; ranges allowed.
    Int,
    /// `true` or `false`.
    Bool,
    /// A uuid.
    Uuid,
    /// An RFC 3339 time; ranges allowed.
    Timestamp,
    /// One of these words.
    Enum(&'static [&'static str]),
    /// A list of texts (JSON); its filter asks for the lists that hold the value given.
    TextList,
}

/// Page size when the client does not ask for one.
pub const DEFAULT_LIMIT: i64 = 20;
/// Largest page a client may ask for.
pub const MAX_LIMIT: i64 = 100;
/// Longest search text read.
const MAX_QUERY_CHARS: usize = 200;

/// How a filter compares a column with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    Equal,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl Comparison {
    fn sql(self) -> &'static str {
        match self {
            Comparison::Equal => "=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
        }
    }
}

/// A value of a filter or a sort key, typed by its field's kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

/// The order of a list: a field (or the search rank) and a direction; ties are broken by `id`
/// in the same direction.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Order {
    /// The field, or `None` for the search rank.
    pub(crate) field: Option<(&'static str, Kind)>,
    /// Largest first.
    pub(crate) descending: bool,
}

impl Order {
    /// The name a cursor records: the field's, or `rank`.
    fn name(&self) -> &'static str {
        self.field.map_or("rank", |(name, _)| name)
    }
}

/// Where the previous page ended: its last row's sort key and id, and the order it was in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ListCursor {
    /// The order's name (`created_at`, a field, or `rank`).
    s: String,
    /// Descending.
    d: bool,
    /// The last row's sort key.
    v: Value,
    /// The last row's id.
    i: Uuid,
}

impl ListCursor {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(text: &str) -> ApiResult<ListCursor> {
        let invalid =
            || ApiError::bad_request("invalid cursor (pass back `next_cursor` unchanged)");
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| invalid())?;
        serde_json::from_slice(&bytes).map_err(|_| invalid())
    }
}

/// A filter: a column compared with a value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Filter {
    pub(crate) column: &'static str,
    pub(crate) kind: Kind,
    pub(crate) comparison: Comparison,
    pub(crate) value: Value,
}

/// One request of a list, read from its query string.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRequest {
    /// How many rows to return.
    pub limit: i64,
    /// Whether to count every row the filters admit (`?total=true`).
    pub total: bool,
    pub(crate) filters: Vec<Filter>,
    /// The search words, lower-cased.
    pub(crate) words: Vec<String>,
    pub(crate) order: Order,
    pub(crate) after: Option<ListCursor>,
}

impl ListRequest {
    /// Reads a query string (without the `?`) against what `def` allows: `limit`, `cursor`,
    /// `sort`, `total`, `q` when the list searches, each filter field with `=`, and the
    /// number and time filters with `.gt`, `.gte`, `.lt` or `.lte` too. An unknown or repeated
    /// parameter, or a malformed value, is a 400 naming it.
    pub fn parse(query: Option<&str>, def: &ListDef) -> ApiResult<ListRequest> {
        let mut seen: Vec<String> = Vec::new();
        let mut request = ListRequest {
            limit: DEFAULT_LIMIT,
            total: false,
            filters: Vec::new(),
            words: Vec::new(),
            order: Order {
                field: Some(("created_at", Kind::Timestamp)),
                descending: true,
            },
            after: None,
        };
        let mut sort: Option<String> = None;
        let mut cursor: Option<String> = None;
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let (name, value) = (name.into_owned(), value.into_owned());
            if seen.contains(&name) {
                return Err(ApiError::bad_request(format!(
                    "`{}` is given twice",
                    shown(&name)
                )));
            }
            seen.push(name.clone());
            match name.as_str() {
                "limit" => {
                    request.limit = value
                        .parse::<i64>()
                        .ok()
                        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "limit must be an integer from 1 to {MAX_LIMIT}"
                            ))
                        })?;
                }
                "cursor" => cursor = Some(value),
                "sort" => sort = Some(value),
                "total" => {
                    request.total = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(ApiError::bad_request("total must be true or false")),
                    };
                }
                "q" if def.search => request.words = words(&value)?,
                _ => request.filters.push(filter(def, &name, &value)?),
            }
        }
        request.order = order(def, sort.as_deref(), !request.words.is_empty())?;
        if let Some(text) = cursor.filter(|text| !text.is_empty()) {
            let after = ListCursor::decode(&text)?;
            if after.s != request.order.name() || after.d != request.order.descending {
                return Err(ApiError::bad_request(
                    "the cursor belongs to a list in another order: keep `sort` (and `q`) as they were",
                ));
            }
            request.after = Some(after);
        }
        Ok(request)
    }
}

/// The search words of `q`: letters and digits, lower-cased.
fn words(q: &str) -> ApiResult<Vec<String>> {
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(format!(
            "q is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    let words: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect();
    if words.is_empty() {
        return Err(ApiError::bad_request("q has no word to search for"));
    }
    Ok(words)
}

/// `field=value` or `field.<op>=value`.
fn filter(def: &ListDef, name: &str, value: &str) -> ApiResult<Filter> {
    let (field_name, comparison) = match name.rsplit_once('.') {
        Some((field, "gt")) => (field, Comparison::Greater),
        Some((field, "gte")) => (field, Comparison::GreaterOrEqual),
        Some((field, "lt")) => (field, Comparison::Less),
        Some((field, "lte")) => (field, Comparison::LessOrEqual),
        _ => (name, Comparison::Equal),
    };
    let Some(field) = def.filters.iter().find(|f| f.name == field_name) else {
        return Err(unknown_parameter(def, name));
    };
    let ranged = matches!(field.kind, Kind::Int | Kind::Timestamp);
    if comparison != Comparison::Equal && !ranged {
        return Err(unknown_parameter(def, name));
    }
    Ok(Filter {
        column: field.name,
        kind: field.kind,
        comparison,
        value: read_value(field.kind, field.name, value)?,
    })
}

/// A value of `kind` from its text; a 400 naming `name` otherwise.
fn read_value(kind: Kind, name: &str, text: &str) -> ApiResult<Value> {
    let bad = |what: &str| ApiError::bad_request(format!("{name} must be {what}"));
    match kind {
        Kind::Text | Kind::TextList => Ok(Value::Text(text.to_owned())),
        Kind::Int => text
            .parse()
            .map(Value::Int)
            .map_err(|_| bad("a whole number")),
        Kind::Bool => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(bad("true or false")),
        },
        Kind::Uuid => Uuid::parse_str(text)
            .map(|id| Value::Text(id.to_string()))
            .map_err(|_| bad("a uuid")),
        Kind::Timestamp => DateTime::parse_from_rfc3339(text)
            .map(|t| Value::Text(t.to_utc().to_rfc3339()))
            .map_err(|_| bad("an RFC 3339 time, e.g. 2026-01-31T12:00:00Z")),
        Kind::Enum(words) if words.contains(&text) => Ok(Value::Text(text.to_owned())),
        Kind::Enum(words) => Err(bad(&format!("one of {}", words.join(", ")))),
    }
}

/// The order `sort` asks for: `created_at` newest first by default, the search rank when
/// searching without `sort`.
fn order(def: &ListDef, sort: Option<&str>, searching: bool) -> ApiResult<Order> {
    let Some(sort) = sort else {
        return Ok(if searching {
            Order {
                field: None,
                descending: true,
            }
        } else {
            Order {
                field: Some(("created_at", Kind::Timestamp)),
                descending: true,
            }
        });
    };
    let (descending, name) = match sort.strip_prefix('-') {
        Some(name) => (true, name),
        None => (false, sort),
    };
    if name == "created_at" {
        return Ok(Order {
            field: Some(("created_at", Kind::Timestamp)),
            descending,
        });
    }
    match def.sorts.iter().find(|f| f.name == name) {
        Some(field) => Ok(Order {
            field: Some((field.name, field.kind)),
            descending,
        }),
        None => {
            let mut known = vec!["created_at"];
            known.extend(def.sorts.iter().map(|f| f.name));
            Err(ApiError::bad_request(format!(
                "cannot sort on `{}`: sort on {} (`-` first for largest first)",
                shown(name),
                known.join(", ")
            )))
        }
    }
}

/// The 400 of a parameter the list does not take, listing those it does.
fn unknown_parameter(def: &ListDef, name: &str) -> ApiError {
    let mut known = vec!["limit", "cursor", "sort", "total"];
    if def.search {
        known.push("q");
    }
    let mut filters = Vec::new();
    for field in def.filters {
        filters.push(field.name.to_owned());
        if matches!(field.kind, Kind::Int | Kind::Timestamp) {
            filters.push(format!("{}.gt/.gte/.lt/.lte", field.name));
        }
    }
    let mut message = format!(
        "unknown query parameter `{}`: this list takes {}",
        shown(name),
        known.join(", ")
    );
    if !filters.is_empty() {
        message += &format!(", and filters on {}", filters.join(", "));
    }
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// Client text echoed in a message, cut to a sane length.
fn shown(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests;
