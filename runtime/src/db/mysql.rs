//! The MySQL dialect of the statements callers write once for every engine.
//!
//! Callers write `$1, $2, ...` placeholders (PostgreSQL's, which SQLite also reads) and quote
//! identifiers with double quotes (standard SQL). MySQL takes positional `?` placeholders,
//! bound in the order they appear, and reads a double-quoted token as a string literal
//! unless the session runs with `ANSI_QUOTES`. So before a statement runs on MySQL, each
//! `$N` becomes `?` (remembering which argument each `?` takes, as a `$N` may appear more than
//! once or out of order) and each `"identifier"` becomes `` `identifier` ``. String literals,
//! backquoted identifiers and comments are copied unchanged.

/// A statement in MySQL's dialect.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Translated {
    /// The SQL with `?` placeholders and backquoted identifiers.
    pub(super) sql: String,
    /// For each `?`, in order, the index (from 0) of the argument it takes.
    pub(super) order: Vec<usize>,
}

/// Rewrites `sql` (see the module docs), checking that the placeholders and the `arguments`
/// bound match: every `$N` has an argument and every argument is used, as PostgreSQL checks
/// too, so that a statement that fails on one engine fails on all of them.
pub(super) fn translate(sql: &str, arguments: usize) -> Result<Translated, String> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut order = Vec::new();
    // Start of the input not copied to `out` yet; every delimiter is ASCII, so slicing at
    // these positions never splits a UTF-8 character.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => i = skip_quoted(bytes, i, b'\'', true),
            b'`' => i = skip_quoted(bytes, i, b'`', false),
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = skip_line(bytes, i),
            b'#' => i = skip_line(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |end| i + 2 + end + 2);
            }
            b'"' => {
                let end = skip_quoted(bytes, i, b'"', false);
                if end > bytes.len() || bytes[end - 1] != b'"' || end - i < 2 {
                    return Err("unterminated quoted identifier".into());
                }
                let name = sql[i + 1..end - 1].replace("\"\"", "\"");
                out.push_str(&sql[copied..i]);
                out.push('`');
                out.push_str(&name.replace('`', "``"));
                out.push('`');
                copied = end;
                i = end;
            }
            b'$' if !follows_identifier(bytes, i) => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits == 0 {
                    i += 1;
                    continue;
                }
                let end = i + 1 + digits;
                let number: usize = sql[i + 1..end]
                    .parse()
                    .map_err(|_| format!("placeholder `{}` is out of range", &sql[i..end]))?;
                if number == 0 || number > arguments {
                    return Err(format!(
                        "placeholder ${number} has no value ({arguments} bound)"
                    ));
                }
                out.push_str(&sql[copied..i]);
                out.push('?');
                order.push(number - 1);
                copied = end;
                i = end;
            }
            b'?' => {
                // A bare `?` would be a placeholder of its own on MySQL and shift every
                // argument after it.
                return Err("`?` is not a placeholder here; write `$1, $2, ...`".into());
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    if let Some(unused) = (0..arguments).find(|n| !order.contains(n)) {
        return Err(format!(
            "{arguments} values are bound but ${} does not appear in the statement",
            unused + 1
        ));
    }
    Ok(Translated { sql: out, order })
}

/// The position after the literal or quoted identifier that starts at `start` with `quote`;
/// a doubled quote stands for itself, and in string literals a backslash escapes the next
/// character (MySQL's default). Past the end when it is not terminated.
fn skip_quoted(bytes: &[u8], start: usize, quote: u8, backslash_escapes: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash_escapes => i += 2,
            b if b == quote => {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return i + 1;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len() + 1
}

/// The position of the end of the line (a comment) that starts at `start`.
fn skip_line(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |n| start + n)
}

/// True when the `$` at `i` is part of a name (`a$1` is an identifier on MySQL).
fn follows_identifier(bytes: &[u8], i: usize) -> bool {
    i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || matches!(bytes[i - 1], b'_' | b'$'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str, arguments: usize) -> (String, Vec<usize>) {
        let translated = translate(sql, arguments).expect(sql);
        (translated.sql, translated.order)
    }

    #[test]
    fn placeholders_become_question_marks_bound_per_occurrence() {
        assert_eq!(
            ok("SELECT a FROM t WHERE a = $1 AND b = $2", 2),
            ("SELECT a FROM t WHERE a = ? AND b = ?".into(), vec![0, 1])
        );
        assert_eq!(
            ok("UPDATE t SET a = $2 WHERE id = $1", 2),
            ("UPDATE t SET a = ? WHERE id = ?".into(), vec![1, 0])
        );
        assert_eq!(
            ok("SELECT 1 WHERE (x < $1 OR (x = $1 AND y < $2)) LIMIT $3", 3),
            (
                "SELECT 1 WHERE (x < ? OR (x = ? AND y < ?)) LIMIT ?".into(),
                vec![0, 0, 1, 2]
            )
        );
        assert_eq!(
            ok("SELECT $10, $9, $8, $7, $6, $5, $4, $3, $2, $1", 10).1,
            vec![9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
        );
    }

    #[test]
    fn double_quoted_identifiers_become_backquoted() {
        assert_eq!(
            ok(
                r#"SELECT "order", "a""b", "x`y" FROM "user" WHERE "id" = $1"#,
                1
            )
            .0,
            "SELECT `order`, `a\"b`, `x``y` FROM `user` WHERE `id` = ?"
        );
    }

    #[test]
    fn literals_comments_and_names_are_left_alone() {
        let sql = "SELECT '$1 \"x\" ?', 'it''s $2', 'a\\'$3', `$4`, a$1 -- $5 \"y\" ?\n\
                   /* $6 ? */ # $7 ?\nFROM t WHERE b = $1";
        let (out, order) = ok(sql, 1);
        assert_eq!(
            out,
            "SELECT '$1 \"x\" ?', 'it''s $2', 'a\\'$3', `$4`, a$1 -- $5 \"y\" ?\n\
             /* $6 ? */ # $7 ?\nFROM t WHERE b = ?"
        );
        assert_eq!(order, vec![0]);
        // Non-ASCII text passes through.
        assert_eq!(ok("SELECT 'é' AS \"ü\", $1", 1).0, "SELECT 'é' AS `ü`, ?");
    }

    #[test]
    fn mismatched_arguments_are_refused() {
        for (sql, arguments) in [
            ("SELECT $2", 1),
            ("SELECT $0", 1),
            ("SELECT $1", 2),
            ("SELECT ?", 0),
            ("SELECT \"open", 0),
            ("SELECT $99999999999999999999999", 1),
        ] {
            assert!(translate(sql, arguments).is_err(), "{sql}");
        }
    }
}
