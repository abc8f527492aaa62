//! Built-in capabilities: complete, reusable service behaviours a spec switches on with
//! `uses:` instead of describing them route by route.

pub mod auth;
pub mod notify;
