//! `svcgen diff`: every change between two versions of a spec that a client or a running
//! deployment would feel, each classified breaking or safe: the HTTP API ([`api`]), the
//! events ([`events`]), the gRPC contracts ([`proto`]) and the tables ([`tables`]).
//!
//! A breaking change is accepted when the new spec lists it under `acknowledged:` (by the
//! id this module prints), or, for an event, when the event's `version` went up.

mod api;
mod events;
mod proto;
mod tables;

use crate::model::System;
use serde::Serialize;

/// Where a change is felt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    /// A route of the gateway: whether it exists, who may call it.
    Route,
    /// A route's request: body fields and query parameters.
    Request,
    /// A route's response fields.
    Response,
    /// An event's payload.
    Event,
    /// A gRPC contract.
    Proto,
    /// A table of a service's database.
    Table,
}

impl Surface {
    /// The word `svcgen diff` prints.
    pub fn keyword(self) -> &'static str {
        match self {
            Surface::Route => "route",
            Surface::Request => "request",
            Surface::Response => "response",
            Surface::Event => "event",
            Surface::Proto => "proto",
            Surface::Table => "table",
        }
    }
}

/// One change between two specs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Where it is felt.
    pub surface: Surface,
    /// What changed: `POST /notes`, `note.created`, `shop.product.v1.ProductService`,
    /// `notes.note`.
    pub subject: String,
    /// How: `removed`, ``new required field `slug` ``.
    pub what: String,
    /// Whether a client or a running deployment may break.
    pub breaking: bool,
    /// Whether the new spec accepts it (`acknowledged:`, or an event's higher `version`).
    pub acknowledged: bool,
    /// More about it, e.g. ``version 1 → 2``.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The id `acknowledged:` names it by.
    pub id: String,
}

impl Change {
    fn new(
        surface: Surface,
        subject: impl Into<String>,
        what: impl Into<String>,
        breaking: bool,
    ) -> Change {
        let subject = subject.into();
        let what = what.into();
        Change {
            id: format!("{} {subject}: {what}", surface.keyword()),
            surface,
            subject,
            what,
            breaking,
            acknowledged: false,
            note: None,
        }
    }

    fn breaking(surface: Surface, subject: impl Into<String>, what: impl Into<String>) -> Change {
        Change::new(surface, subject, what, true)
    }

    fn safe(surface: Surface, subject: impl Into<String>, what: impl Into<String>) -> Change {
        Change::new(surface, subject, what, false)
    }
}

/// Every change from `old` to `new`, in a fixed order (by surface, then subject); breaking
/// ones that `new` acknowledges are marked so.
pub fn compare(old: &System, new: &System) -> Vec<Change> {
    let mut changes = Vec::new();
    changes.extend(api::changes(old, new));
    changes.extend(events::changes(old, new));
    changes.extend(proto::changes(old, new));
    changes.extend(tables::changes(old, new));
    for change in &mut changes {
        if change.breaking && new.acknowledged.iter().any(|a| a.value == change.id) {
            change.acknowledged = true;
        }
    }
    changes.sort_by(|a, b| (a.surface, &a.subject).cmp(&(b.surface, &b.subject)));
    changes
}

/// The breaking changes nobody acknowledged.
pub fn unacknowledged(changes: &[Change]) -> usize {
    changes
        .iter()
        .filter(|c| c.breaking && !c.acknowledged)
        .count()
}

/// The human report: one line per change, then a summary.
pub fn human(changes: &[Change]) -> String {
    let mut out = String::new();
    let width = changes.iter().map(|c| c.subject.len()).max().unwrap_or(0);
    for change in changes {
        let class = match (change.breaking, change.acknowledged) {
            (false, _) => "safe",
            (true, false) => "BREAKING",
            (true, true) => "breaking (acknowledged)",
        };
        out.push_str(&format!(
            "{class:<23} {:<8} {:<width$}  {}",
            change.surface.keyword(),
            change.subject,
            change.what
        ));
        if let Some(note) = &change.note {
            out.push_str(&format!(" ({note})"));
        }
        out.push('\n');
    }
    let breaking = changes.iter().filter(|c| c.breaking).count();
    let open = unacknowledged(changes);
    out.push_str(&format!(
        "{} change(s): {breaking} breaking, {open} of them not acknowledged\n",
        changes.len()
    ));
    if open > 0 {
        out.push_str(
            "to accept a breaking change, list its id under `acknowledged:` in the new spec:\n",
        );
        for change in changes.iter().filter(|c| c.breaking && !c.acknowledged) {
            out.push_str(&format!("  - \"{}\"\n", change.id.replace('"', "\\\"")));
        }
    }
    out
}

/// The JSON report, for CI.
pub fn json(changes: &[Change]) -> String {
    let report = serde_json::json!({
        "changes": changes,
        "breaking": changes.iter().filter(|c| c.breaking).count(),
        "unacknowledged": unacknowledged(changes),
    });
    serde_json::to_string_pretty(&report).expect("a report is plain data") + "\n"
}

#[cfg(test)]
mod tests;
