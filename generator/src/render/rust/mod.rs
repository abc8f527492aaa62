//! Rust sources of the generated workspace, written with `quote!`, one file per artifact family:
//! the contracts crate ([`contracts`]), entity models and their SQL ([`entities`]), the crates of
//! services that own entities ([`handlers`]) or provide a capability ([`capabilities`]), their
//! event consumers ([`consumers`]), and
//! the system's binary ([`system`]). Generated code is thin: typed models, validated handlers
//! and SQL; the machinery lives in `svcgen-runtime`. This file holds what they share.

pub(crate) mod access;
mod capabilities;
mod consumers;
mod contracts;
mod creates;
pub(crate) mod custom;
mod entities;
mod handlers;
mod lists;
pub(crate) mod paths;
mod steps;
mod system;

pub(crate) use capabilities::message_format;
use capabilities::{auth_service, capability_routes, notify_service};
use consumers::consumers_fn;
pub(crate) use contracts::contracts;
pub(crate) use entities::{
    EntityNames, bind, constraint_items, create_body, create_value, default_value,
    delete_constraints, entity_items, field_checks, insert_sql, insert_statement, now_plus,
    now_value, patch_binds, patch_sql, validation, write_constraints,
};
pub(crate) use handlers::{emit, entity_service};
pub(crate) use system::system_main;

use crate::ident::{self, handler_name, rust_ident, rust_joined, rust_type, sql};
use crate::lower::{RouteIr, ServiceIr};
use crate::model::*;
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use std::collections::BTreeMap;

/// The Rust type of a field.
pub(super) fn rust_field_type(ty: &Type) -> TokenStream {
    match ty {
        Type::String { .. } | Type::Text | Type::Email | Type::Enum(_) => quote!(String),
        Type::Int { .. } => quote!(i64),
        Type::Bool => quote!(bool),
        Type::Uuid => quote!(uuid::Uuid),
        Type::Timestamp => quote!(chrono::DateTime<chrono::Utc>),
        Type::List(inner) => {
            let inner = rust_field_type(inner);
            quote!(Vec<#inner>)
        }
        Type::Optional(inner) => {
            let inner = rust_field_type(inner);
            quote!(Option<#inner>)
        }
        Type::Message(name) => {
            let ty = rust_type(name);
            quote!(#ty)
        }
    }
}

/// A literal value of the spec (a whole number, `true`/`false`, text) as Rust; `None` for a
/// value computed when the code runs.
pub(crate) fn literal_value(expr: &Expr) -> Option<TokenStream> {
    match expr {
        Expr::Int(n) => {
            let n = Literal::i64_unsuffixed(*n);
            Some(quote!(#n))
        }
        Expr::Bool(b) => Some(quote!(#b)),
        Expr::Text(text) => {
            let text = lit(text);
            Some(quote!(#text.to_owned()))
        }
        _ => None,
    }
}

/// Whether a value of this type is `Copy` (bound without `.clone()`).
pub(super) fn is_copy(ty: &Type) -> bool {
    match ty {
        Type::Int { .. } | Type::Bool | Type::Uuid | Type::Timestamp => true,
        Type::Optional(inner) => is_copy(inner),
        _ => false,
    }
}

/// Whether a column is stored as JSON (lists).
pub(super) fn is_json(ty: &Type) -> bool {
    matches!(ty.required(), Type::List(_) | Type::Message(_))
}

pub(super) fn doc(text: &str) -> TokenStream {
    let lines: Vec<String> = text.lines().map(|l| format!(" {}", l.trim_end())).collect();
    quote!(#(#[doc = #lines])*)
}

/// Inner doc comments (`//!`) for a crate.
fn inner_doc(text: &str) -> TokenStream {
    let lines: Vec<String> = text
        .trim()
        .lines()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                format!(" {}", l.trim_end())
            }
        })
        .collect();
    quote!(#(#![doc = #lines])*)
}

fn doc_opt(text: Option<&String>, fallback: &str) -> TokenStream {
    doc(text.map_or(fallback, String::as_str))
}

pub(super) fn lit(text: &str) -> Literal {
    Literal::string(text)
}

/// A service crate's `lib.rs`.
pub fn service(system: &System, lowered: &ServiceIr) -> TokenStream {
    let service = lowered.model;
    // A capability service with entities of its own is an entity service that also serves
    // the capability's routes.
    // ... and so is one with jobs.
    match (
        service.uses,
        service.entities.is_empty()
            && service.jobs.is_empty()
            && service.rpc_routes.is_empty()
            && service.custom_routes.is_empty(),
    ) {
        (Some(Capability::Auth), true) => auth_service(system, lowered),
        (Some(Capability::Notify), true) => notify_service(system, lowered),
        _ => entity_service(system, lowered),
    }
}

fn service_doc(service: &Service) -> TokenStream {
    inner_doc(&format!(
        "The `{}` service. {}",
        service.name.value,
        service.description.as_deref().unwrap_or("")
    ))
}

fn service_const(service: &Service) -> TokenStream {
    let name = lit(&service.name.value);
    quote! {
        /// This service's name: its queue names, log field and internal-token audience.
        pub const SERVICE: &str = #name;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_types_map_to_rust_types() {
        let string = Type::String {
            min: Some(1),
            max: Some(9),
        };
        for (ty, rust) in [
            (string.clone(), "String"),
            (Type::Text, "String"),
            (Type::Email, "String"),
            (Type::INT, "i64"),
            (Type::Bool, "bool"),
            (Type::Uuid, "uuid :: Uuid"),
            (Type::Timestamp, "chrono :: DateTime < chrono :: Utc >"),
            (Type::List(Box::new(string.clone())), "Vec < String >"),
            (Type::Optional(Box::new(Type::INT)), "Option < i64 >"),
            (Type::Message("order_line".into()), "OrderLine"),
        ] {
            assert_eq!(rust_field_type(&ty).to_string(), rust, "{ty:?}");
        }
        assert!(is_copy(&Type::Optional(Box::new(Type::Uuid))));
        assert!(!is_copy(&string));
        assert!(is_json(&Type::Optional(Box::new(Type::List(Box::new(
            Type::INT
        ))))));
        assert!(!is_json(&Type::Text));
    }
}
