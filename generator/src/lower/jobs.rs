//! Jobs lowered: their `sql` with positional parameters and the events they emit with every
//! field's value, as consumers' actions are (the renderer writes both the same way).

use super::consumers::{ActionIr, ConsumerValue, sql_action};
use super::{event, resolved};
use crate::model::{Action, Expr, Job, Service, System, Type};

/// A job with its actions resolved.
#[derive(Debug)]
pub struct JobIr<'m> {
    /// The job as the spec declares it.
    pub model: &'m Job,
    /// Its actions, in order.
    pub actions: Vec<ActionIr<'m>>,
}

/// The type of a value a job writes (validation let only these through).
fn value(expr: &Expr) -> ConsumerValue {
    let ty = match expr {
        Expr::Now { .. } => Type::Timestamp,
        Expr::Int(_) => Type::INT,
        Expr::Bool(_) => Type::Bool,
        _ => Type::String {
            min: None,
            max: None,
        },
    };
    ConsumerValue {
        expr: expr.clone(),
        ty,
    }
}

pub(super) fn lower_job<'m>(system: &'m System, service: &'m Service, job: &'m Job) -> JobIr<'m> {
    let actions = job
        .actions
        .iter()
        .filter_map(|action| match action {
            // A job has no event: validation let only `:now`, `:new_id` and constants through.
            Action::Sql { sql, .. } => Some(sql_action(service, sql, |_| None)),
            Action::Emit { event: name, with } => {
                let emitted = resolved(event(system, name), name);
                let fields = emitted
                    .fields
                    .iter()
                    .map(|field| {
                        let given = with.iter().find(|(n, _)| n.value == field.name.value);
                        (field, given.map(|(_, expr)| value(expr)))
                    })
                    .collect();
                Some(ActionIr::Emit {
                    event: emitted,
                    fields,
                })
            }
            // Validation lets no other action into a job.
            _ => None,
        })
        .collect();
    JobIr {
        model: job,
        actions,
    }
}
