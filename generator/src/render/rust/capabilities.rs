//! Service crates of the built-in capabilities: `auth` (accounts and tokens, its RPCs) and
//! `notify` (in-app notifications from events).

use super::*;

/// The routes of the capability a service uses, as a `Router` expression, with the imports it
/// needs; `None` without a capability.
pub(crate) fn capability_routes(
    system: &System,
    service: &Service,
) -> Option<(TokenStream, TokenStream)> {
    match service.uses? {
        Capability::Auth => {
            let contracts = ident::crate_ident(&system.name.value, "contracts");
            let event = |name: &Option<Name>| match name {
                Some(name) => {
                    let ty = rust_type(&name.value);
                    quote!(Some(#contracts::events::#ty::NAME))
                }
                None => quote!(None),
            };
            let registered = event(&service.auth_emit.registered);
            let logged_in = event(&service.auth_emit.logged_in);
            let password_reset = event(&service.auth_emit.password_reset);
            let mut imports = quote!(
                use svcgen_runtime::capability::auth::{self, AuthEvents};
            );
            if service.auth_emit.events().next().is_some() {
                imports.extend(quote!(
                    use svcgen_runtime::bus::Event as _;
                ));
            }
            let routes = quote! {
                auth::routes(AuthEvents {
                    registered: #registered,
                    logged_in: #logged_in,
                    password_reset: #password_reset,
                })
            };
            Some((imports, routes))
        }
        // Named in full: the `notify` module may be imported by the consumers.
        Capability::Notify => Some((
            TokenStream::new(),
            quote!(svcgen_runtime::capability::notify::routes()),
        )),
    }
}

pub(crate) fn auth_service(system: &System, lowered: &ServiceIr) -> TokenStream {
    let service = lowered.model;
    let doc = service_doc(service);
    let constant = service_const(service);
    let (capability_imports, capability) = capability_routes(system, service).unwrap_or_default();
    let grpc = crate::render::grpc::Grpc::new(system, lowered);
    let server = grpc.server();
    let (server_items, server_route) = match &server {
        Some(parts) => (parts.items.clone(), parts.routes.clone()),
        None => (TokenStream::new(), TokenStream::new()),
    };
    let rpc_imports = server.is_some().then(|| {
        quote!(
            use axum::extract::State;
            use axum::routing;
            use svcgen_runtime::rpc::{self, FromProto, ToProto};
        )
    });
    quote! {
        #doc

        use axum::Router;
        #rpc_imports
        #capability_imports
        use svcgen_runtime::service::ServiceContext;

        #constant

        /// The `auth` capability's routes (and this service's RPCs). Its tables are the
        /// runtime's (`svcgen_runtime::capability::auth::TABLES`).
        pub fn routes() -> Router<ServiceContext> {
            #capability
            #server_route
        }

        #server_items
    }
}

pub(crate) fn notify_service(system: &System, lowered: &ServiceIr) -> TokenStream {
    let service = lowered.model;
    let doc = service_doc(service);
    let constant = service_const(service);
    let (imports, consumers) = consumers_fn(system, lowered).unwrap_or_default();
    quote! {
        #doc

        use axum::Router;
        #imports
        use svcgen_runtime::service::ServiceContext;

        #constant

        /// `GET /notifications`: the caller's notifications, newest first. The capability's
        /// tables are the runtime's (`svcgen_runtime::capability::notify::TABLES`).
        pub fn routes() -> Router<ServiceContext> {
            svcgen_runtime::capability::notify::routes()
        }

        #consumers
    }
}

/// A `format!` string and its arguments for a message with `{field}` placeholders.
pub(crate) fn message_format(message: &str) -> (String, Vec<String>) {
    let mut format = String::new();
    let mut arguments = Vec::new();
    let mut rest = message;
    while let Some(open) = rest.find('{') {
        format.push_str(&rest[..open].replace('}', "}}"));
        match rest[open + 1..].find('}') {
            Some(close) => {
                arguments.push(rest[open + 1..open + 1 + close].trim().to_string());
                format.push_str("{}");
                rest = &rest[open + 2 + close..];
            }
            None => {
                format.push_str("{{");
                rest = &rest[open + 1..];
            }
        }
    }
    format.push_str(&rest.replace('}', "}}"));
    (format, arguments)
}
