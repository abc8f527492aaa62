//! Scheduled jobs: a job calls other services' RPCs, then writes rows of its service, runs
//! `sql` statements and emits events, with values known when it runs (`:now`, `:new_id`, the
//! service's constants in SQL; literals, `$now` and its calls' answers elsewhere), in the
//! database of its service.

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
        super::consumers::check_call_order_and_names(&job.actions, d);
        for (index, action) in job.actions.iter().enumerate() {
            let scope = super::consumers::Scope::before(system, None, &job.actions[..index]);
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
                    super::consumers::check_emit(&scope, declared, with, event.span, d);
                }
                Action::Call { call, .. } => {
                    super::consumers::check_call(system, service, call, &scope, d);
                }
                Action::Write(write) => super::consumers::check_write(service, &scope, write, d),
                Action::Notify { .. } => {
                    d.error(
                        job.name.span,
                        format!(
                            "job `{}` cannot `notify`: a notification answers an event",
                            job.name.value
                        ),
                    )
                    .hint("emit an event, and notify from a consumer of it");
                }
            }
        }
    }
}
