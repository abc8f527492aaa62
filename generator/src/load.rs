//! Stage 1, load: YAML text to a tree of nodes that all know where they are in the file.
//!
//! The tree is deliberately untyped: the resolve stage reads it key by key so that it can report
//! every unknown key, wrong type and bad reference in one run instead of stopping at the first.

use crate::diag::{Diagnostic, LineIndex, Span};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Options, Spanned};

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

    /// How many YAML values (mappings, lists, scalars) this tree holds, itself included.
    pub fn count(&self) -> usize {
        1 + match &self.kind {
            Kind::Map(entries) => entries.iter().map(|(k, v)| k.count() + v.count()).sum(),
            Kind::Seq(items) => items.iter().map(Node::count).sum(),
            Kind::Scalar(_) | Kind::Null => 0,
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

/// Most YAML values (mappings, lists and scalars) a spec may have. A spec of 2,000 services
/// has about 200,000; the bound stops a runaway document before it takes all memory.
const MAX_NODES: usize = 4_000_000;
/// Most values that aliases (`*name`) may add by repeating what an anchor (`&name`) marked: as
/// many as the parser allows a whole document by default. This is what stops an alias bomb, a
/// few lines that repeat each other into billions of values.
const MAX_ALIAS_EXPANSION: usize = 250_000;
/// Deepest nesting of mappings and lists; a spec nests about ten deep.
const MAX_DEPTH: usize = 32;

/// Parses `source` into a node tree, or returns the syntax error with its position.
pub fn load(source: &str) -> Result<Node, Diagnostic> {
    let lines = LineIndex::new(source);
    let raw: Spanned<RawNode> = serde_saphyr::from_str_with_options(source, yaml_options())
        .map_err(|e| syntax_error(&lines, &e))?;
    Ok(convert(&lines, raw))
}

/// Limits of what a spec may make the parser do: generous for honest specs of any size, tight
/// for the ones aliases blow up.
fn yaml_options() -> Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: MAX_NODES,
            // Every node is an event, collections have an end event and comments count too.
            max_events: 3 * MAX_NODES,
            max_depth: MAX_DEPTH,
            // The ratio heuristic refuses an anchor reused by many services, which is honest;
            // the expansion limits below bound what aliases can do however often they are used.
            enforce_alias_anchor_ratio: false,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_EXPANSION,
            // An alias inside what another alias repeats: no deeper than the document nests.
            max_replay_stack_depth: MAX_DEPTH,
        },
    }
}

fn syntax_error(lines: &LineIndex, error: &serde_saphyr::Error) -> Diagnostic {
    let (line, col) = error
        .location()
        .map(|l| (l.line() as usize, l.column() as usize))
        .unwrap_or((1, 1));
    let line = line.clamp(1, lines.line_count().max(1));
    let at = |len: usize| Span {
        line,
        col: col.max(1),
        len,
    };
    if let Some((message, hint)) = limit_exceeded(error) {
        return Diagnostic::error(at(1), message).with_hint(hint);
    }
    // The library's Display carries its own snippet; keep only the sentence.
    let text = error.to_string();
    let first = text.lines().next().unwrap_or("invalid YAML");
    let message = first
        .trim_start_matches("error: ")
        .split_once(": ")
        .filter(|(position, _)| position.starts_with("line "))
        .map_or(first, |(_, rest)| rest)
        .to_string();
    if let Some(key) = message.strip_prefix("duplicate mapping key: ") {
        let key = key.split(", set DuplicateKeyPolicy").next().unwrap_or(key);
        return Diagnostic::error(
            at(key.chars().count().max(1)),
            format!("duplicate key `{key}`"),
        )
        .with_hint("a key appears once in a mapping; merge the two entries or rename one");
    }
    Diagnostic::error(at(1), format!("invalid YAML: {message}"))
}

/// The hint for a spec refused for its size.
const TOO_LARGE: &str = "split the system, or look for generated text that repeats without end";

/// The message and hint for a document refused by one of the limits of [`yaml_options`].
fn limit_exceeded(error: &serde_saphyr::Error) -> Option<(String, &'static str)> {
    use serde_saphyr::Error;
    let mut error = error;
    while let Error::WithSnippet { error: inner, .. } | Error::AliasError { error: inner, .. } =
        error
    {
        error = inner;
    }
    let aliases = || {
        Some((
            format!(
                "the spec's aliases expand to more than {MAX_ALIAS_EXPANSION} YAML values: \
                 svcgen refuses such a document (an alias bomb)"
            ),
            "write the repeated parts out, or alias them fewer times",
        ))
    };
    match error {
        Error::AliasReplayLimitExceeded { .. }
        | Error::AliasExpansionLimitExceeded { .. }
        | Error::AliasReplayStackDepthExceeded { .. }
        | Error::AliasReplayCounterOverflow { .. } => aliases(),
        Error::Budget { breach, .. } => match breach {
            BudgetBreach::Aliases { .. }
            | BudgetBreach::Anchors { .. }
            | BudgetBreach::AliasAnchorRatio { .. }
            | BudgetBreach::RecordedAnchorEvents { .. }
            | BudgetBreach::RecordedAnchorBytes { .. } => aliases(),
            BudgetBreach::Depth { .. } => Some((
                format!("the spec nests mappings and lists more than {MAX_DEPTH} deep"),
                "a spec nests about ten deep; look for a runaway indentation or bracket",
            )),
            BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => Some((
                format!("the spec has more than {MAX_NODES} YAML values, more than svcgen reads"),
                TOO_LARGE,
            )),
            other => Some((
                format!("the spec is larger than svcgen reads ({other:?})"),
                TOO_LARGE,
            )),
        },
        _ => None,
    }
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

fn convert(lines: &LineIndex, raw: Spanned<RawNode>) -> Node {
    let line = raw.referenced.line() as usize;
    let col = raw.referenced.column() as usize;
    let (kind, len) = match raw.value {
        RawNode::Map(entries) => (
            Kind::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (convert(lines, k), convert(lines, v)))
                    .collect(),
            ),
            1,
        ),
        RawNode::Seq(items) => (
            Kind::Seq(items.into_iter().map(|i| convert(lines, i)).collect()),
            1,
        ),
        RawNode::Text(text) => {
            let quoted = lines
                .rest_of_line(line, col)
                .is_some_and(|s| s.starts_with(['"', '\'']));
            let width = text.chars().count() + if quoted { 2 } else { 0 };
            (Kind::Scalar(text), width)
        }
        RawNode::Typed(fallback) => {
            let written = lines
                .rest_of_line(line, col)
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

    /// A document of `lines` lines of five values each (the key, a list and its three items).
    fn honest_document(lines: usize) -> String {
        let mut source = String::with_capacity(lines * 32);
        source.push_str("items:\n");
        for i in 0..lines {
            source.push_str(&format!("  key_{i}: [text, {i}, true]\n"));
        }
        source
    }

    fn assert_loads_every_line(lines: usize, more_values_than: usize) {
        let root = load(&honest_document(lines)).unwrap_or_else(|d| panic!("{}", d.message));
        let values = root.count();
        assert!(values > more_values_than, "{values}");
        let Kind::Map(top) = &root.kind else {
            panic!("map expected")
        };
        let Kind::Map(items) = &top[0].1.kind else {
            panic!("map expected")
        };
        let (key, value) = items.last().unwrap();
        assert_eq!(key.span.line, lines + 1);
        let Kind::Seq(values) = &value.kind else {
            panic!("list expected")
        };
        assert_eq!(values[1].as_str(), Some((lines - 1).to_string().as_str()));
    }

    #[test]
    fn loads_more_values_than_the_parser_allows_by_default() {
        assert_loads_every_line(52_000, 260_000);
    }

    // The workspace builds the parser optimized even in tests (Cargo.toml), or this would take
    // about 40 s.
    #[test]
    fn loads_honest_documents_of_millions_of_values() {
        assert_loads_every_line(2_000_000 / 5 + 1_000, 2_000_000);
    }

    #[test]
    fn loads_an_anchor_reused_by_many_entries() {
        let mut source = String::from("first: &fields { title: string, body: text }\n");
        for i in 0..2_000 {
            source.push_str(&format!("copy_{i}: *fields\n"));
        }
        let root = load(&source).unwrap_or_else(|d| panic!("{}", d.message));
        assert_eq!(root.count(), 1 + 2 * 2_001 + 4 * 2_001);
    }

    #[test]
    fn refuses_an_alias_bomb() {
        // Nine levels of ten aliases each: a billion values from ten lines.
        let mut source =
            String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for level in 1..=9 {
            let previous = format!("*l{}", level - 1);
            let items = [previous.as_str(); 10].join(", ");
            source.push_str(&format!("l{level}: &l{level} [{items}]\n"));
        }
        let error = load(&source).unwrap_err();
        assert!(
            error
                .message
                .starts_with("the spec's aliases expand to more than"),
            "{}",
            error.message
        );
        assert!(error.message.contains("alias bomb"), "{}", error.message);
        assert!(error.hint.is_some());
        assert!((1..=10).contains(&error.span.line), "{:?}", error.span);
    }

    #[test]
    fn refuses_runaway_nesting() {
        let depth = MAX_DEPTH + 8;
        let source = format!("a: {}x{}\n", "[".repeat(depth), "]".repeat(depth));
        let error = load(&source).unwrap_err();
        assert!(error.message.contains("nests"), "{}", error.message);
        assert_eq!(error.span.line, 1);
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
