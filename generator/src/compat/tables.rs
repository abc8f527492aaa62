//! Changes of the tables: what the next migration would drop (rows, columns and their values),
//! what it cannot do without losing data (`svcgen generate` refuses it), and what it only adds.

use super::{Change, Surface};
use crate::diag::{Diagnostics, Severity};
use crate::evolve::schema::Schema;
use crate::evolve::{Step, diff};
use crate::model::System;

/// The table changes from `old` to `new`, as the migration from one to the other would make
/// them.
pub(super) fn changes(old: &System, new: &System) -> Vec<Change> {
    let mut changes = Vec::new();
    for was in &old.services {
        let service = &was.name.value;
        let schema = Schema::of(was);
        let Some(now) = new.services.iter().find(|s| &s.name.value == service) else {
            for table in &schema.tables {
                changes.push(Change::breaking(
                    Surface::Table,
                    format!("{service}.{}", table.name),
                    "its service is removed, with the database",
                ));
            }
            continue;
        };
        let mut problems = Diagnostics::for_source("");
        for step in diff::steps(now, &schema, &mut problems) {
            match step {
                Step::DropTable(table) => changes.push(Change::breaking(
                    Surface::Table,
                    format!("{service}.{}", table.name),
                    "dropped with its rows",
                )),
                Step::CreateTable(table) => changes.push(Change::safe(
                    Surface::Table,
                    format!("{service}.{}", table.name),
                    "created",
                )),
                Step::AlterTable(change) => {
                    let subject = format!("{service}.{}", change.new.name);
                    if change.renames_table() {
                        changes.push(Change::safe(
                            Surface::Table,
                            &subject,
                            format!("renamed from `{}`, rows kept", change.old.name),
                        ));
                    }
                    for column in &change.dropped {
                        changes.push(Change::breaking(
                            Surface::Table,
                            &subject,
                            format!("column `{column}` dropped with its values"),
                        ));
                    }
                    for (from, to) in &change.renamed {
                        changes.push(Change::safe(
                            Surface::Table,
                            &subject,
                            format!("column `{from}` renamed to `{to}`, values kept"),
                        ));
                    }
                    for column in &change.added {
                        changes.push(Change::safe(
                            Surface::Table,
                            &subject,
                            format!("column `{column}` added"),
                        ));
                    }
                    for column in &change.altered {
                        changes.push(Change::safe(
                            Surface::Table,
                            &subject,
                            format!("column `{column}` widened"),
                        ));
                    }
                    // A new unique key or reference may not hold for the rows there are:
                    // the migration then fails.
                    for key in change
                        .new
                        .unique
                        .iter()
                        .filter(|k| !change.old.unique.contains(k))
                    {
                        changes.push(Change::breaking(
                            Surface::Table,
                            &subject,
                            format!("new unique key ({})", key.join(", ")),
                        ));
                    }
                    for reference in change
                        .new
                        .references
                        .iter()
                        .filter(|r| !change.old.references.contains(r))
                    {
                        let existing = change.old_name(&reference.column).is_some();
                        changes.push(Change::new(
                            Surface::Table,
                            &subject,
                            format!(
                                "column `{}` references `{}` ({})",
                                reference.column, reference.table, reference.on_delete
                            ),
                            existing,
                        ));
                    }
                }
            }
        }
        for problem in problems.into_sorted() {
            if problem.severity == Severity::Error {
                changes.push(Change::breaking(
                    Surface::Table,
                    service.clone(),
                    format!("svcgen generate refuses this: {}", problem.message),
                ));
            }
        }
    }
    changes
}
