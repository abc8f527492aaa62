//! The statement that answers a list request on each engine, and its run.

use super::*;

/// The search index of a table on each engine, as the generated migration makes it: an FTS5
/// table `<table>_search` beside it on SQLite, a `svcgen_search` column on PostgreSQL (a
/// `tsvector`) and MySQL (lower-cased text under a FULLTEXT index).
pub(crate) const SEARCH_COLUMN: &str = "svcgen_search";

/// A statement being written: its text, and the values of its placeholders after the scope's.
struct Statement {
    text: String,
    values: Vec<(Kind, Value)>,
    next: usize,
}

impl Statement {
    /// A placeholder for `value`.
    fn arg(&mut self, kind: Kind, value: Value) -> String {
        let placeholder = format!("${}", self.next);
        self.next += 1;
        self.values.push((kind, value));
        placeholder
    }

    /// The query, with the scope's arguments bound first, then this statement's.
    fn query(self, bind_scope: &impl Fn(Query) -> Query) -> ApiResult<Query> {
        let mut query = bind_scope(query_owned(self.text));
        for (kind, value) in self.values {
            query = bind(query, kind, value)?;
        }
        Ok(query)
    }
}

/// Binds one value as its kind's column type.
fn bind(query: Query, kind: Kind, value: Value) -> ApiResult<Query> {
    let unreadable = || ApiError::internal(format!("a list value of the wrong kind: {value:?}"));
    Ok(match (kind, &value) {
        (Kind::Int, Value::Int(n)) => query.bind(*n),
        (Kind::Bool, Value::Bool(b)) => query.bind(*b),
        (Kind::Uuid, Value::Text(text)) => {
            query.bind(Uuid::parse_str(text).map_err(|_| unreadable())?)
        }
        (Kind::Timestamp, Value::Text(text)) => query.bind(
            DateTime::parse_from_rfc3339(text)
                .map_err(|_| unreadable())?
                .to_utc(),
        ),
        (Kind::Text | Kind::Enum(_) | Kind::TextList, Value::Text(text)) => {
            query.bind(text.clone())
        }
        // The search rank.
        (_, Value::Float(x)) => query.bind(*x),
        _ => return Err(unreadable()),
    })
}

/// `"table"."column"`.
fn column(table: &str, name: &str) -> String {
    format!("\"{table}\".\"{name}\"")
}

/// The search's match condition and rank expression on `engine`, with the words bound.
fn search(engine: Engine, table: &str, words: &[String], sql: &mut Statement) -> (String, String) {
    match engine {
        Engine::Sqlite => {
            // FTS5's query syntax: each word a quoted string, all of them required.
            let text: Vec<String> = words
                .iter()
                .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
                .collect();
            let q = sql.arg(Kind::Text, Value::Text(text.join(" ")));
            (
                format!("\"{table}_search\" MATCH {q}"),
                // bm25 is smaller for better matches.
                format!("(0.0 - bm25(\"{table}_search\"))"),
            )
        }
        Engine::Postgres => {
            let q = sql.arg(Kind::Text, Value::Text(words.join(" ")));
            let index = column(table, SEARCH_COLUMN);
            (
                format!("{index} @@ plainto_tsquery('simple', {q})"),
                format!(
                    "CAST(ts_rank({index}, plainto_tsquery('simple', {q})) AS DOUBLE PRECISION)"
                ),
            )
        }
        Engine::Mysql => {
            // Boolean mode, every word required; the column holds lower-cased text.
            let text: Vec<String> = words.iter().map(|w| format!("+{w}")).collect();
            let q = sql.arg(Kind::Text, Value::Text(text.join(" ")));
            let matched = format!("MATCH(\"{SEARCH_COLUMN}\") AGAINST ({q} IN BOOLEAN MODE)");
            (matched.clone(), matched)
        }
    }
}

/// The rows of `def` that `request` asks for and the scope admits, as a page.
///
/// `scope` is the entity's access condition for this caller, written with placeholders `$1`,
/// `$2`, ... that `bind_scope` binds (`None`: every row); the statement's own arguments
/// follow. `from_row` reads one row.
pub async fn fetch<T>(
    db: &Db,
    def: &ListDef,
    request: &ListRequest,
    scope: Option<(&str, usize)>,
    bind_scope: impl Fn(Query) -> Query,
    from_row: impl Fn(&Row) -> Result<T, DbError>,
) -> ApiResult<Paginated<T>> {
    let engine = db.engine();
    let table = def.table;
    let first = scope.map_or(1, |(_, params)| params + 1);
    // What every page and the total share: the scope, the filters, the search.
    let conditions = |sql: &mut Statement| {
        let mut conditions: Vec<String> = scope.iter().map(|(sql, _)| format!("({sql})")).collect();
        for filter in &request.filters {
            let value = sql.arg(filter.kind, filter.value.clone());
            let column = column(table, filter.column);
            conditions.push(if filter.kind == Kind::TextList {
                holds(engine, &column, &value)
            } else {
                format!("{column} {} {value}", filter.comparison.sql())
            });
        }
        let mut rank = None;
        if !request.words.is_empty() {
            let (matched, ranked) = search(engine, table, &request.words, sql);
            conditions.push(matched);
            rank = Some(ranked);
        }
        (conditions, rank)
    };
    let from = if !request.words.is_empty() && engine == Engine::Sqlite {
        format!(
            "\"{table}\" JOIN \"{table}_search\" ON \"{table}_search\".rowid = \"{table}\".rowid"
        )
    } else {
        format!("\"{table}\"")
    };
    let columns: Vec<String> = def.columns.iter().map(|c| column(table, c)).collect();

    let mut sql = Statement {
        text: String::new(),
        values: Vec::new(),
        next: first,
    };
    let (mut conditions_now, rank) = conditions(&mut sql);
    let order = &request.order;
    let key = match (order.field, &rank) {
        (Some((name, _)), _) => column(table, name),
        (None, Some(rank)) => rank.clone(),
        // Ordered by rank without searching: the request said so only with words.
        (None, None) => column(table, "created_at"),
    };
    let direction = if order.descending { "DESC" } else { "ASC" };
    if let Some(after) = &request.after {
        let kind = order.field.map_or(Kind::Text, |(_, kind)| kind);
        let beyond = if order.descending { "<" } else { ">" };
        let value = sql.arg(kind, after.v.clone());
        let id = sql.arg(Kind::Uuid, Value::Text(after.i.to_string()));
        let id_column = column(table, "id");
        conditions_now.push(format!(
            "({key} {beyond} {value} OR ({key} = {value} AND {id_column} {beyond} {id}))"
        ));
    }
    let limit = sql.arg(Kind::Int, Value::Int(request.limit));
    let ranked = rank
        .as_ref()
        .map(|rank| format!(", {rank} AS svcgen_rank"))
        .unwrap_or_default();
    sql.text = format!(
        "SELECT {}{ranked} FROM {from}{} ORDER BY {key} {direction}, {} {direction} LIMIT {limit}",
        columns.join(", "),
        where_clause(&conditions_now),
        column(table, "id"),
    );
    let rows = sql.query(&bind_scope)?.fetch_all(db).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push(from_row(row)?);
    }
    let full = i64::try_from(rows.len()).is_ok_and(|len| len >= request.limit);
    let next_cursor = match rows.last() {
        Some(last) if full => Some(cursor_of(last, order)?.encode()),
        _ => None,
    };
    let total = if request.total {
        let mut count = Statement {
            text: String::new(),
            values: Vec::new(),
            next: first,
        };
        let (conditions, _) = conditions(&mut count);
        count.text = format!(
            "SELECT COUNT(*) AS n FROM {from}{}",
            where_clause(&conditions)
        );
        let row = count.query(&bind_scope)?.fetch_optional(db).await?;
        Some(match row {
            Some(row) => row.get::<i64>("n")?,
            None => 0,
        })
    } else {
        None
    };
    Ok(Paginated {
        items,
        next_cursor,
        total,
    })
}

/// The condition that the JSON list in `column` holds the text `value`.
fn holds(engine: Engine, column: &str, value: &str) -> String {
    match engine {
        Engine::Sqlite => {
            format!("EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = {value})")
        }
        Engine::Postgres => format!("{column} @> jsonb_build_array(CAST({value} AS TEXT))"),
        Engine::Mysql => format!("JSON_CONTAINS({column}, JSON_QUOTE({value}))"),
    }
}

/// ` WHERE a AND b`, or nothing.
fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// The cursor after `row` in `order`.
fn cursor_of(row: &Row, order: &Order) -> ApiResult<ListCursor> {
    let value = match order.field {
        None => Value::Float(row.get::<f64>("svcgen_rank")?),
        Some((name, kind)) => match kind {
            Kind::Int => Value::Int(row.get::<i64>(name)?),
            Kind::Bool => Value::Bool(row.get::<bool>(name)?),
            Kind::Uuid => Value::Text(row.get::<Uuid>(name)?.to_string()),
            Kind::Timestamp => Value::Text(row.get::<DateTime<Utc>>(name)?.to_rfc3339()),
            Kind::Text | Kind::Enum(_) | Kind::TextList => Value::Text(row.get::<String>(name)?),
        },
    };
    Ok(ListCursor {
        s: order.name().to_owned(),
        d: order.descending,
        v: value,
        i: row.get::<Uuid>("id")?,
    })
}
