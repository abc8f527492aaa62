//! Jobs lowered: their actions as consumers' actions are (the renderer writes both the same
//! way), with no event to read from.

use super::consumers::{ActionIr, lower_actions};
use crate::model::{Job, Service, System};

/// A job with its actions resolved.
#[derive(Debug)]
pub struct JobIr<'m> {
    /// The job as the spec declares it.
    pub model: &'m Job,
    /// Its actions, in order.
    pub actions: Vec<ActionIr<'m>>,
}

pub(super) fn lower_job<'m>(system: &'m System, service: &'m Service, job: &'m Job) -> JobIr<'m> {
    JobIr {
        model: job,
        actions: lower_actions(system, service, None, &job.actions),
    }
}
