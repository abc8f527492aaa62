//! Plain Rust structs for a service's messages and for the bodies of routes with their own
//! `input`, with their checks.

use super::*;

impl Grpc<'_> {
    /// Plain structs for the service's messages, with their checks.
    pub fn messages(&self) -> TokenStream {
        let items = self.service.messages.iter().map(|message| {
            let ty = rust_type(&message.name.value);
            let message_doc = doc(message
                .description
                .as_deref()
                .unwrap_or(&format!("A `{}`.", message.name.value)));
            let fields = message.fields.iter().map(field_decl);
            let checks = field_checks(&message.fields);
            let param = if checks.is_empty() {
                quote!(check)
            } else {
                quote!(mut check)
            };
            quote! {
                #message_doc
                #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
                #[serde(deny_unknown_fields)]
                pub struct #ty { #(#fields)* }

                impl #ty {
                    /// Checks the spec's constraints on its fields, adding every problem to `check`.
                    pub fn check(&self, #param: Validator) -> Validator {
                        #(#checks)*
                        check
                    }
                }
            }
        });
        quote!(#(#items)*)
    }

    /// The body of a `create` route with its own `input`.
    pub fn input_struct(&self, lowered: &RouteIr) -> TokenStream {
        let route = lowered.model;
        let ty = input_type(&self.service.routes, route);
        let text = format!("The body of `{} {}`.", route.method.as_str(), route.path);
        checked_input(&ty, doc(&text), &lowered.input)
    }
}
