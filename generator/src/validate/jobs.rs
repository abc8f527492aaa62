//! Scheduled jobs: a job runs `sql` statements and emits events, with values known when it
//! runs (`:now`, `:new_id`, the service's constants; literals and `$now` for an event's
//! fields), in the database of its service.

use crate::diag::{Diagnostics, did_you_mean};
use crate::model::*;

/// Checks the jobs of `service`.
pub(super) fn check(system: &System, service: &Service, d: &mut Diagnostics) {
    for job in &service.jobs {
        if service.uses.is_some() && service.entities.is_empty() {
            d.error(
                job.name.span,
                format!(
                    "job `{}` is in a service that only uses a capability: jobs run in services with entities of their own",
                    job.name.value
                ),
            );
        }
        if service.store.is_none() {
            d.error(
                job.name.span,
                format!(
                    "job `{}` runs in the database of service `{}`, which has no `store`",
                    job.name.value, service.name.value
                ),
            )
            .hint("give the service a store");
        }
        for action in &job.actions {
            match action {
                Action::Sql { sql, span } => {
                    for param in crate::rpc::sql_params(sql) {
                        let known = ["now", "new_id"].contains(&param.as_str())
                            || service.constants.iter().any(|(n, _)| n.value == param);
                        if !known {
                            let at = d.span_within(*span, sql, &format!(":{param}"));
                            d.error(at, format!("a job's SQL knows `:now`, `:new_id` and the service's constants, not `:{param}`"));
                        }
                    }
                }
                Action::Emit { event, with } => {
                    let Some(declared) = system.events.iter().find(|e| e.name.value == event.value)
                    else {
                        d.error(
                            event.span,
                            format!("event `{}` is not declared", event.value),
                        )
                        .with_hint_opt_mut(did_you_mean(
                            &event.value,
                            system.events.iter().map(|e| e.name.as_str()),
                        ));
                        continue;
                    };
                    for (name, expr) in with {
                        let Some(field) = declared.field(&name.value) else {
                            d.error(
                                name.span,
                                format!("event `{}` has no field `{}`", event.value, name.value),
                            );
                            continue;
                        };
                        let fits = match expr {
                            Expr::Now { .. } => matches!(field.ty.required(), Type::Timestamp),
                            literal => {
                                super::actions::literal_fits(literal, &field.ty) == Some(true)
                            }
                        };
                        if !fits {
                            d.error(
                                name.span,
                                format!(
                                    "`{}` of event `{}` is {}: a job gives it a literal of that type or `$now`",
                                    name.value,
                                    event.value,
                                    field.ty.spec_text()
                                ),
                            );
                        }
                    }
                    for field in &declared.fields {
                        let given = with.iter().any(|(n, _)| n.value == field.name.value);
                        if !given && !matches!(field.ty, Type::Optional(_)) {
                            d.error(
                                event.span,
                                format!(
                                    "the job does not say what `{}` of event `{}` is",
                                    field.name.value, event.value
                                ),
                            )
                            .hint(format!(
                                "add it to `with:`, e.g. `with: {{ {}: ... }}`",
                                field.name.value
                            ));
                        }
                    }
                }
                _ => {
                    d.error(
                        job.name.span,
                        format!(
                            "job `{}` runs `sql` and `emit` actions only",
                            job.name.value
                        ),
                    )
                    .hint("change rows with `sql` statements");
                }
            }
        }
    }
}
