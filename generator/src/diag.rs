//! Diagnostics: every problem found in a spec, with a position in the YAML, rendered the way
//! compilers do (`file:line:col: error: message`, the source line, a caret, a hint).

use std::fmt::Write as _;

/// A position in the spec file: 1-based line and column (in characters), and how many characters
/// the problem covers (at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    /// Width of the underline, in characters.
    pub len: usize,
}

/// How bad a problem is: errors stop generation, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The spec cannot be generated.
    Error,
    /// The spec works, but probably not as meant.
    Warning,
}

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where in the spec.
    pub span: Span,
    /// What is wrong, in one sentence.
    pub message: String,
    /// What to do about it, when we can tell.
    pub hint: Option<String>,
    /// Another place the problem involves, shown with its own snippet: where a name was
    /// first declared, for one declared twice. Boxed: most diagnostics have none.
    pub related: Option<Box<(Span, String)>>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            span,
            message: message.into(),
            hint: None,
            related: None,
        }
    }

    /// A warning at `span`.
    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            span,
            message: message.into(),
            hint: None,
            related: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Collects diagnostics during one pipeline run.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    /// The spec's text, to point inside a long value (a SQL statement) rather than at its start.
    source: String,
}

impl Diagnostics {
    /// Collects diagnostics about `source`.
    pub fn for_source(source: &str) -> Self {
        Diagnostics {
            items: Vec::new(),
            source: source.to_owned(),
        }
    }

    /// Where `word` is first written inside the value that starts at `value`: its own line
    /// and column even in a multi-line block scalar. A word is matched whole (`:amount` is not
    /// found in `:amounts`); the value's own span when the word cannot be found, e.g. because
    /// a quoted value spells it with escapes.
    pub fn span_within(&self, value: Span, text: &str, word: &str) -> Span {
        let is_word_char = |c: char| c.is_alphanumeric() || c == '_';
        // The value's lines, plus the block-scalar indicator line (`run: |`).
        let extent = text.lines().count() + 1;
        for (line, content) in self
            .source
            .lines()
            .enumerate()
            .skip(value.line.saturating_sub(1))
            .take(extent)
        {
            let start = if line + 1 == value.line {
                content
                    .char_indices()
                    .nth(value.col.saturating_sub(1))
                    .map_or(content.len(), |(i, _)| i)
            } else {
                0
            };
            let mut from = start;
            while let Some(found) = content[from..].find(word) {
                let at = from + found;
                let end = at + word.len();
                let before = content[..at].chars().next_back();
                let after = content[end..].chars().next();
                let whole = after.is_none_or(|c| !is_word_char(c))
                    && before.is_none_or(|c| !is_word_char(c) && c != ':');
                if whole {
                    return Span {
                        line: line + 1,
                        col: content[..at].chars().count() + 1,
                        len: word.chars().count(),
                    };
                }
                from = end;
            }
        }
        value
    }

    /// Records a problem.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    /// Records an error.
    pub fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.items.push(Diagnostic::error(span, message));
        self.items.last_mut().expect("just pushed")
    }

    /// Records a warning.
    pub fn warning(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.items.push(Diagnostic::warning(span, message));
        self.items.last_mut().expect("just pushed")
    }

    /// Whether any error (not warning) was recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// All problems in file order (line, column), errors before warnings at the same place.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by(|a, b| {
            (a.span, a.severity, &a.message).cmp(&(b.span, b.severity, &b.message))
        });
        self.items.dedup();
        self.items
    }
}

impl Diagnostic {
    /// Sets the hint on a recorded diagnostic when there is one.
    pub fn with_hint_opt_mut(&mut self, hint: Option<String>) -> &mut Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }

    /// Sets the hint on a recorded diagnostic.
    pub fn hint(&mut self, hint: impl Into<String>) -> &mut Self {
        self.hint = Some(hint.into());
        self
    }

    /// Points at a second place in the spec, with a note saying what is there.
    pub fn related(&mut self, span: Span, note: impl Into<String>) -> &mut Self {
        self.related = Some(Box::new((span, note.into())));
        self
    }
}

/// The lines of a text, found in one pass so that a position is looked up without rescanning
/// the text: loading a spec asks for one per YAML value.
///
/// Lines are those of [`str::lines`]: split at `\n`, a `\r` before it dropped, no empty line
/// after a final `\n`.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex<'a> {
    source: &'a str,
    /// Byte offset where each line starts.
    starts: Vec<usize>,
    /// Whether each line is ASCII only, where a column (in characters) is also a byte offset.
    ascii: Vec<bool>,
}

impl<'a> LineIndex<'a> {
    /// Indexes the lines of `source`.
    pub(crate) fn new(source: &'a str) -> Self {
        let after_newlines = source
            .bytes()
            .enumerate()
            .filter(|&(i, b)| b == b'\n' && i + 1 < source.len())
            .map(|(i, _)| i + 1);
        let starts: Vec<usize> = if source.is_empty() {
            Vec::new()
        } else {
            std::iter::once(0).chain(after_newlines).collect()
        };
        let ends = starts.iter().skip(1).copied().chain([source.len()]);
        let ascii = starts
            .iter()
            .zip(ends)
            .map(|(&start, end)| source[start..end].is_ascii())
            .collect();
        Self {
            source,
            starts,
            ascii,
        }
    }

    /// How many lines there are (as `source.lines().count()`).
    pub(crate) fn line_count(&self) -> usize {
        self.starts.len()
    }

    /// Line `line` (1-based) without its line ending (as `source.lines().nth(line - 1)`).
    pub(crate) fn line(&self, line: usize) -> Option<&'a str> {
        let i = line.checked_sub(1)?;
        let start = *self.starts.get(i)?;
        let end = self.starts.get(i + 1).copied().unwrap_or(self.source.len());
        let text = &self.source[start..end];
        Some(match text.strip_suffix('\n') {
            Some(text) => text.strip_suffix('\r').unwrap_or(text),
            None => text,
        })
    }

    /// The rest of line `line` from column `col` (both 1-based, the column in characters), or
    /// `None` when the line has no such column.
    pub(crate) fn rest_of_line(&self, line: usize, col: usize) -> Option<&'a str> {
        let text = self.line(line)?;
        let skip = col.checked_sub(1)?;
        let start = if self.ascii[line - 1] {
            (skip < text.len()).then_some(skip)?
        } else {
            text.char_indices().nth(skip).map(|(i, _)| i)?
        };
        Some(&text[start..])
    }
}

/// Renders diagnostics for a terminal or a file: one block per problem and a summary line.
pub fn render(path: &str, source: &str, diagnostics: &[Diagnostic]) -> String {
    let lines = LineIndex::new(source);
    let mut out = String::new();
    for d in diagnostics {
        let label = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(
            out,
            "{path}:{}:{}: {label}: {}",
            d.span.line, d.span.col, d.message
        );
        snippet(&mut out, &lines, d.span);
        if let Some(related) = &d.related {
            let (span, note) = related.as_ref();
            let _ = writeln!(out, "{path}:{}:{}: note: {note}", span.line, span.col);
            snippet(&mut out, &lines, *span);
        }
        if let Some(hint) = &d.hint {
            let _ = writeln!(out, "  = hint: {hint}");
        }
        out.push('\n');
    }
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diagnostics.len() - errors;
    let _ = writeln!(
        out,
        "{path}: {} and {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    );
    out
}

/// The spec line `span` is on, with carets under the span.
fn snippet(out: &mut String, lines: &LineIndex, span: Span) {
    let Some(text) = lines.line(span.line) else {
        return;
    };
    let number = span.line.to_string();
    let pad = " ".repeat(number.len());
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{number} | {}", text.trim_end());
    let indent: String = text
        .chars()
        .take(span.col.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let _ = writeln!(out, "{pad} | {indent}{}", "^".repeat(span.len.max(1)));
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The candidate closest to `word` when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate `word` is most likely a typo of, when one is close enough.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let candidate = c.to_lowercase();
            // `integer` for `int`, `desc` for `description`: one word spelled out or cut short.
            let prefix = word_lower.len() >= 3
                && candidate.len() >= 3
                && (word_lower.starts_with(&candidate) || candidate.starts_with(&word_lower));
            (
                if prefix {
                    1
                } else {
                    edit_distance(&word_lower, &candidate)
                },
                c,
            )
        })
        .filter(|(d, c)| *d <= (c.chars().count().max(word.chars().count()) / 3).max(1))
        .min_by_key(|(d, c)| (*d, c.to_string()))
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("stor", ["store", "routes"]),
            Some("did you mean `store`?".into())
        );
        assert_eq!(
            did_you_mean("servics", ["services", "system"]),
            Some("did you mean `services`?".into())
        );
        assert_eq!(did_you_mean("banana", ["store", "routes"]), None);
    }

    #[test]
    fn line_index_agrees_with_str_lines() {
        for source in [
            "",
            "\n",
            "a",
            "a\n",
            "a\nb",
            "a\n\nb\n",
            "a\r\nb\r\n",
            "a\r",
            "\n\n\n",
            "é: ü\nx: 1",
        ] {
            let index = LineIndex::new(source);
            let lines: Vec<&str> = source.lines().collect();
            assert_eq!(index.line_count(), lines.len(), "{source:?}");
            for n in 0..=lines.len() + 1 {
                let expected = n.checked_sub(1).and_then(|i| lines.get(i).copied());
                assert_eq!(index.line(n), expected, "{source:?} line {n}");
            }
        }
    }

    #[test]
    fn line_index_finds_columns_in_characters() {
        let index = LineIndex::new("key: value\nnämé: \"x\"\r\n");
        assert_eq!(index.rest_of_line(1, 1), Some("key: value"));
        assert_eq!(index.rest_of_line(1, 6), Some("value"));
        assert_eq!(index.rest_of_line(1, 10), Some("e"));
        assert_eq!(index.rest_of_line(1, 11), None);
        assert_eq!(index.rest_of_line(1, 0), None);
        assert_eq!(index.rest_of_line(2, 7), Some("\"x\""));
        assert_eq!(index.rest_of_line(2, 10), None);
        assert_eq!(index.rest_of_line(3, 1), None);
    }

    #[test]
    fn renders_position_snippet_and_hint() {
        let source = "system: notes\nservices:\n  notes:\n    stor: x\n";
        let d = Diagnostic::error(
            Span {
                line: 4,
                col: 5,
                len: 4,
            },
            "unknown key `stor`",
        )
        .with_hint("did you mean `store`?");
        let text = render("spec.yaml", source, &[d]);
        assert_eq!(
            text,
            "spec.yaml:4:5: error: unknown key `stor`\n  |\n4 |     stor: x\n  |     ^^^^\n  = hint: did you mean `store`?\n\nspec.yaml: 1 error and 0 warnings\n"
        );
    }
}
