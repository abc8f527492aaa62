//! The `contracts` crate's `lib.rs`: the event payload types every service shares, and the
//! modules of the gRPC contracts.

use super::*;

/// The contracts crate: one struct per event.
pub(crate) fn contracts(system: &System) -> TokenStream {
    let events = system.events.iter().map(|event| {
        let ty = rust_type(&event.name.value);
        let name = lit(&event.name.value);
        let event_doc = doc(&format!(
            "{}\n\nEvent `{}`.",
            event
                .description
                .as_deref()
                .unwrap_or("An event of the system."),
            event.name.value
        ));
        let version = (event.version != 1).then(|| {
            let version = Literal::u32_unsuffixed(event.version);
            quote!(const VERSION: u32 = #version;)
        });
        let critical = event.critical.then(|| {
            quote!(
                const CRITICAL: bool = true;
            )
        });
        let fields = event.fields.iter().map(|f| {
            let ident = rust_ident(&f.name.value);
            let ty = rust_field_type(&f.ty);
            let field_doc = doc(&format!("`{}`: {}.", f.name.value, f.ty.spec_text()));
            quote!(#field_doc pub #ident: #ty,)
        });
        quote! {
            #event_doc
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
            pub struct #ty { #(#fields)* }

            impl Event for #ty {
                const NAME: &'static str = #name;
                #version
                #critical
            }
        }
    });
    let imports = (!system.events.is_empty()).then(|| {
        quote! {
            use serde::{Deserialize, Serialize};
            use svcgen_runtime::bus::Event;
        }
    });
    let crate_doc = inner_doc(&format!(
        "Contracts of the {} system: the events its services exchange.",
        system.name.value
    ));
    let contracts: Vec<&Service> = system
        .services
        .iter()
        .filter(|s| crate::rpc::has_contract(s))
        .collect();
    let proto = (!contracts.is_empty()).then(|| {
        let modules = contracts.iter().map(|service| {
            let module = rust_ident(&service.name.value);
            let text = format!(
                "Package `{}`: messages, client and server of the `{}` service's RPCs.",
                crate::contract::package(system, service),
                service.name.value
            );
            let module_doc = doc(&text);
            quote!(#module_doc pub mod #module;)
        });
        quote! {
            /// The gRPC contracts, one module per service that serves RPCs, generated from the
            /// same descriptors as the `.proto` files under `proto/`.
            pub mod proto {
                #(#modules)*
            }
        }
    });
    quote! {
        #crate_doc

        /// Event payloads, one type per event of the spec.
        pub mod events {
            #imports

            #(#events)*
        }

        #proto
    }
}
