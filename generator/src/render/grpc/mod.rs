//! Rust for RPCs, one file per artifact family: message types ([`messages`]), the gRPC server
//! of a service's RPCs ([`server`]), routes as RPCs and the gateway's transcoder
//! ([`transcoder`]), the conversions between plain and protobuf values ([`conversions`]), and
//! `create` routes backed by steps ([`saga`]). This file holds what they share: the renderer of
//! one service crate and the mounting of a gRPC server.

mod calls;
mod conversions;
mod messages;
mod rpc_routes;
mod saga;
mod server;
mod transcoder;
mod uses;

pub use calls::{answer_ident, calls_of};
pub use uses::RpcUses;

use crate::lower::{
    CallIr, ParamSource, RouteIr, RpcBacking, RpcIr, ServiceIr, StatementIr, StepActionIr, StepIr,
};
use crate::lower::{Conversion, Direction, Pair};
use conversions::{FromProtoShape, proto_to_plain};
use std::collections::BTreeMap;

use super::rust::{bind, doc, emit, field_checks, is_copy, is_json, lit, rust_field_type};
use crate::ident::{self, rust_ident, rust_type, sql};
use crate::model::*;
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

/// Everything the RPC code of one service crate produces.
pub struct Parts {
    /// Items of the crate.
    pub items: TokenStream,
    /// `.route(...)` calls for `routes()`.
    pub routes: TokenStream,
}

/// The generator of one service crate's RPC code.
pub struct Grpc<'s> {
    system: &'s System,
    service: &'s Service,
    /// The service, lowered (its routes as RPCs, its contract).
    lowered: &'s ServiceIr<'s>,
    /// The `ToProto`/`FromProto` conversions the crate needs, known before rendering.
    pairs: &'s BTreeMap<Pair, Conversion>,
}

fn contracts(system: &System) -> proc_macro2::Ident {
    ident::crate_ident(&system.name.value, "contracts")
}

/// `shop_contracts::proto::product`.
fn proto_module(system: &System, service: &str) -> TokenStream {
    let contracts = contracts(system);
    let module = rust_ident(service);
    quote!(#contracts::proto::#module)
}

/// Whether prost represents a singular field of this type as `Option<_>` though the spec's
/// type is required (messages and timestamps).
fn boxed_in_option(ty: &Type) -> bool {
    matches!(ty, Type::Message(_) | Type::Timestamp)
}

/// Whether the prost form of a value of this type is `Copy`.
fn proto_copy(ty: &Type) -> bool {
    // `prost_types::Timestamp` is `Copy` too.
    match ty {
        Type::Int { .. } | Type::Bool | Type::Timestamp => true,
        Type::Optional(inner) => matches!(
            inner.as_ref(),
            Type::Int { .. } | Type::Bool | Type::Timestamp
        ),
        _ => false,
    }
}

fn method_ident(rpc: &Rpc) -> proc_macro2::Ident {
    rust_ident(&ident::to_snake(&rpc.name.value))
}

impl<'s> Grpc<'s> {
    /// The generator for `service`.
    pub fn new(system: &'s System, lowered: &'s ServiceIr<'s>) -> Self {
        Grpc {
            system,
            service: lowered.model,
            lowered,
            pairs: &lowered.conversions,
        }
    }

    /// The service it renders for.
    pub fn service(&self) -> &'s Service {
        self.service
    }

    /// A gRPC server of the service's package: the struct implementing the generated trait of
    /// gRPC service `name` with `methods`, and the handler that mounts it on the service's app.
    pub(super) fn mount(
        &self,
        name: &str,
        (ty, ty_doc): (proc_macro2::Ident, &str),
        (handler, handler_doc): (proc_macro2::Ident, &str),
        methods: Vec<TokenStream>,
    ) -> Parts {
        let proto = proto_module(self.system, &self.service.name.value);
        let server_module = format_ident!("{}_server", ident::to_snake(name));
        let trait_name = format_ident!("{}", name);
        let server = format_ident!("{}Server", name);
        let path = lit(&format!(
            "/{}.{name}/{{*method}}",
            crate::contract::package(self.system, self.service)
        ));
        let (ty_doc, handler_doc) = (doc(ty_doc), doc(handler_doc));
        let items = quote! {
            #ty_doc
            #[derive(Debug, Clone)]
            pub struct #ty {
                ctx: ServiceContext,
            }

            #[tonic::async_trait]
            impl #proto::#server_module::#trait_name for #ty {
                #(#methods)*
            }

            #handler_doc
            async fn #handler(State(ctx): State<ServiceContext>, request: axum::extract::Request) -> axum::response::Response {
                rpc::serve(#proto::#server_module::#server::new(#ty { ctx }), request).await
            }
        };
        Parts {
            items,
            routes: quote!(.route(#path, routing::post(#handler))),
        }
    }
}

/// The message a type names, through lists and options.
pub(super) fn record_of(ty: &Type) -> Option<&str> {
    match ty {
        Type::Message(name) => Some(name),
        Type::List(inner) | Type::Optional(inner) => record_of(inner),
        _ => None,
    }
}

/// `CreateOrderInput` for `POST /orders` creating an `order`.
pub(super) fn input_type(routes: &[Route], route: &Route) -> proc_macro2::Ident {
    format_ident!(
        "{}Input",
        ident::to_pascal(&crate::ident::handler_name(routes, route).to_string())
    )
}

/// The body type of a `create` route: its own input, or `New<Entity>`.
pub(super) fn create_body_type(
    routes: &[Route],
    route: &Route,
    entity: &Entity,
) -> proc_macro2::Ident {
    if route.has_steps() {
        input_type(routes, route)
    } else {
        format_ident!("New{}", rust_type(&entity.name.value))
    }
}

/// A field of a plain struct (with serde's default for optional ones).
pub(crate) fn field_decl(field: &Field) -> TokenStream {
    let default = matches!(field.ty, Type::Optional(_)).then(|| quote!(#[serde(default)]));
    documented_field(field, default)
}

/// A field of a struct that is only written (an answer): its doc, name and type.
pub(crate) fn answer_field(field: &Field) -> TokenStream {
    documented_field(field, None)
}

/// A field with its doc, then `attribute`, its name and type.
fn documented_field(field: &Field, attribute: Option<TokenStream>) -> TokenStream {
    let ident = rust_ident(&field.name.value);
    let ty = rust_field_type(&field.ty);
    let field_doc = doc(&format!(
        "`{}`: {}.",
        field.name.value,
        field.ty.spec_text()
    ));
    quote!(#field_doc #attribute pub #ident: #ty,)
}

/// A request's struct of `fields` (unknown fields refused) and its `validate`, which checks
/// the spec's rules of every field and answers 400 naming every problem.
pub(crate) fn checked_input(
    ty: &proc_macro2::Ident,
    doc: TokenStream,
    fields: &[Field],
) -> TokenStream {
    let decls = fields.iter().map(field_decl);
    let checks = crate::render::rust::field_checks(fields);
    let checker = if checks.is_empty() {
        quote!(let check = Validator::new();)
    } else {
        quote!(let mut check = Validator::new();)
    };
    quote! {
        #doc
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct #ty { #(#decls)* }

        impl #ty {
            /// Checks the spec's constraints; a violation is a 400 naming every problem.
            pub fn validate(&self) -> ApiResult<()> {
                #checker
                #(#checks)*
                check.finish()
            }
        }
    }
}
