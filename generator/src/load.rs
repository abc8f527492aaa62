//! Stage 1, load: YAML text to a tree of nodes that all know where they are in the file.
//!
//! The tree is deliberately untyped: the resolve stage reads it key by key so that it can report
//! every unknown key, wrong type and bad reference in one run instead of stopping at the first.

use crate::diag::{Diagnostic, Span};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A YAML value with its position.
#[derive(Debug, Clone)]
pub struct Node {
    /// Where the value starts.
    pub span: Span,
    /// The value.
    pub kind: Kind,
}

/// The shape of a YAML value.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A mapping, in file order.
    Map(Vec<(Node, Node)>),
    /// A sequence.
    Seq(Vec<Node>),
    /// Any scalar, as written (a plain `on` or `yes` stays text: the spec has no YAML 1.1 booleans).
    Scalar(String),
    /// `~`, `null` or an empty value.
    Null,
}

impl Node {
    /// The scalar text, when this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// A word for the node's shape, for messages.
    pub fn shape(&self) -> &'static str {
        match self.kind {
            Kind::Map(_) => "a mapping",
            Kind::Seq(_) => "a list",
            Kind::Scalar(_) => "a value",
            Kind::Null => "nothing",
        }
    }
}

/// Parses `source` into a node tree, or returns the syntax error with its position.
pub fn load(source: &str) -> Result<Node, Diagnostic> {
    let raw: Spanned<RawNode> =
        serde_saphyr::from_str(source).map_err(|e| syntax_error(source, &e))?;
    Ok(convert(source, raw))
}

fn syntax_error(source: &str, error: &serde_saphyr::Error) -> Diagnostic {
    let (line, col) = error
        .location()
        .map(|l| (l.line() as usize, l.column() as usize))
        .unwrap_or((1, 1));
    // The library's Display carries its own snippet; keep only the sentence.
    let text = error.to_string();
    let first = text.lines().next().unwrap_or("invalid YAML");
    let message = first
        .trim_start_matches("error: ")
        .split_once(": ")
        .filter(|(position, _)| position.starts_with("line "))
        .map_or(first, |(_, rest)| rest)
        .to_string();
    let line = line.clamp(1, source.lines().count().max(1));
    if let Some(key) = message.strip_prefix("duplicate mapping key: ") {
        let key = key.split(", set DuplicateKeyPolicy").next().unwrap_or(key);
        return Diagnostic::error(
            Span {
                line,
                col: col.max(1),
                len: key.chars().count().max(1),
            },
            format!("duplicate key `{key}`"),
        )
        .with_hint("a key appears once in a mapping; merge the two entries or rename one");
    }
    Diagnostic::error(
        Span {
            line,
            col: col.max(1),
            len: 1,
        },
        format!("invalid YAML: {message}"),
    )
}

/// What serde-saphyr gives us: values with spans, scalars typed by YAML's rules.
enum RawNode {
    Map(Vec<(Spanned<RawNode>, Spanned<RawNode>)>),
    Seq(Vec<Spanned<RawNode>>),
    Text(String),
    /// A scalar YAML typed as bool or number: the source text is re-read, so that `on` stays `on`.
    Typed(String),
    Null,
}

fn convert(source: &str, raw: Spanned<RawNode>) -> Node {
    let line = raw.referenced.line() as usize;
    let col = raw.referenced.column() as usize;
    let (kind, len) = match raw.value {
        RawNode::Map(entries) => (
            Kind::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (convert(source, k), convert(source, v)))
                    .collect(),
            ),
            1,
        ),
        RawNode::Seq(items) => (
            Kind::Seq(items.into_iter().map(|i| convert(source, i)).collect()),
            1,
        ),
        RawNode::Text(text) => {
            let quoted = source_at(source, line, col).is_some_and(|s| s.starts_with(['"', '\'']));
            let width = text.chars().count() + if quoted { 2 } else { 0 };
            (Kind::Scalar(text), width)
        }
        RawNode::Typed(fallback) => {
            let written = source_at(source, line, col)
                .map(plain_token)
                .filter(|t| !t.is_empty());
            let text = written.map_or(fallback, str::to_string);
            let width = text.chars().count();
            (Kind::Scalar(text), width)
        }
        RawNode::Null => (Kind::Null, 1),
    };
    Node {
        span: Span {
            line,
            col,
            len: len.max(1),
        },
        kind,
    }
}

/// The rest of line `line` from column `col` (1-based, in characters).
fn source_at(source: &str, line: usize, col: usize) -> Option<&str> {
    let text = source.lines().nth(line.checked_sub(1)?)?;
    let start = text
        .char_indices()
        .nth(col.checked_sub(1)?)
        .map(|(i, _)| i)?;
    Some(&text[start..])
}

/// A plain (unquoted) scalar as written: up to a flow indicator, a `: ` or a comment.
fn plain_token(rest: &str) -> &str {
    let mut end = rest.len();
    for (i, c) in rest.char_indices() {
        let next = rest[i + c.len_utf8()..].chars().next();
        let ends = matches!(c, ',' | '}' | ']')
            || (c == ':' && next.is_none_or(char::is_whitespace))
            || (c == '#' && i > 0 && rest[..i].ends_with(char::is_whitespace));
        if ends {
            end = i;
            break;
        }
    }
    rest[..end].trim_end()
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawNode;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawNode, E> {
        Ok(RawNode::Text(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawNode, E> {
        Ok(RawNode::Text(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawNode, E> {
        Ok(RawNode::Typed(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawNode, E> {
        Ok(RawNode::Typed(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawNode, E> {
        Ok(RawNode::Typed(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawNode, E> {
        Ok(RawNode::Typed(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
        RawNode::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(RawNode::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        Ok(RawNode::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_yaml_11_words_as_text_and_positions() {
        let node = load("on:\n  user.registered: { notify: yes }\nport: 3000\n").unwrap();
        let Kind::Map(entries) = &node.kind else {
            panic!("map expected")
        };
        assert_eq!(entries[0].0.as_str(), Some("on"));
        assert_eq!(
            entries[0].0.span,
            Span {
                line: 1,
                col: 1,
                len: 2
            }
        );
        let Kind::Map(inner) = &entries[0].1.kind else {
            panic!("map expected")
        };
        let Kind::Map(flow) = &inner[0].1.kind else {
            panic!("map expected")
        };
        assert_eq!(flow[0].1.as_str(), Some("yes"));
        assert_eq!(entries[1].1.as_str(), Some("3000"));
        assert_eq!(
            entries[1].1.span,
            Span {
                line: 3,
                col: 7,
                len: 4
            }
        );
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let error = load("a: {b: 1\nc: 2\n").unwrap_err();
        assert_eq!(error.span.line, 2);
        assert!(
            error.message.starts_with("invalid YAML: "),
            "{}",
            error.message
        );
    }
}
