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
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            span,
            message: message.into(),
            hint: None,
        }
    }

    /// A warning at `span`.
    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            span,
            message: message.into(),
            hint: None,
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
}

impl Diagnostics {
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
}

/// Renders diagnostics for a terminal or a file: one block per problem and a summary line.
pub fn render(path: &str, source: &str, diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<&str> = source.lines().collect();
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
        if let Some(text) = d.span.line.checked_sub(1).and_then(|i| lines.get(i)) {
            let number = d.span.line.to_string();
            let pad = " ".repeat(number.len());
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{number} | {}", text.trim_end());
            let indent: String = text
                .chars()
                .take(d.span.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = writeln!(out, "{pad} | {indent}{}", "^".repeat(d.span.len.max(1)));
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
        .map(|(_, c)| format!("did you mean `{c}`?"))
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
