//! Routes backed by an RPC: the request made of the path's parameters, the `with` values and
//! the body (or query string), the RPC called (in process when it is the service's own, over
//! gRPC with the caller's identity otherwise), and its response answered as JSON.

use super::*;
use crate::lower::RpcRouteIr;
use crate::render::rust::{literal_value, now_value, validation};

impl Grpc<'_> {
    /// Each route backed by an RPC: its body's and its answer's types, and its handler.
    pub fn rpc_routes(&self) -> TokenStream {
        self.lowered
            .rpc_routes
            .iter()
            .map(|route| self.rpc_route(route))
            .collect()
    }

    fn rpc_route(&self, lowered: &RpcRouteIr) -> TokenStream {
        let route = lowered.model;
        let (target, rpc) = (lowered.service, lowered.rpc);
        let proto = proto_module(self.system, &target.name.value);
        let name = format_ident!("{}", lowered.handler);
        let pascal = ident::to_pascal(&lowered.handler);
        let what = format!("`{} {}`", route.method.as_str(), route.path);

        // The body (or query string), checked.
        let input_ty = format_ident!("{pascal}Input");
        // A query string is always read, so that a parameter the request does not have is a
        // 400; a body only when the request takes fields from it.
        let (input_items, input_param) = if lowered.body.is_empty() && !route.reads_query() {
            (TokenStream::new(), TokenStream::new())
        } else {
            let (source, extractor) = if route.reads_query() {
                (
                    "query string",
                    // Named in full: an entity may be called `query`.
                    quote!(svcgen_runtime::http::Query(input): svcgen_runtime::http::Query<#input_ty>,),
                )
            } else {
                ("body", quote!(Json(input): Json<#input_ty>,))
            };
            let input_doc = doc(&format!("The {source} of {what}."));
            (
                checked_input(&input_ty, input_doc, &lowered.body),
                extractor,
            )
        };
        let validate = (!input_items.is_empty()).then(|| quote!(input.validate()?;));

        // The path's parameters, each read as its field's type and checked.
        let params_param = (!lowered.params.is_empty()).then(|| quote!(params: PathParams,));
        let mut param_checks = Vec::new();
        let param_reads = lowered.params.iter().map(|field| {
            let local = format_ident!("param_{}", field.name.value);
            let name = lit(&field.name.value);
            let read = match &field.ty {
                Type::Uuid => quote!(params.uuid(#name)?),
                Type::Int { .. } => quote!(params.int(#name)?),
                Type::Enum(words) => quote!(params.word(#name, &[#(#words),*])?),
                _ => quote!(params.text(#name)?),
            };
            if !matches!(field.ty, Type::Enum(_)) {
                let check = validation(&field.name.value, &field.ty, quote!(&#local));
                if !check.is_empty() {
                    param_checks.push(check);
                }
            }
            quote!(let #local = #read;)
        });
        let param_reads: Vec<TokenStream> = param_reads.collect();
        let param_check = (!param_checks.is_empty()).then(|| {
            quote! {
                let mut check = Validator::new();
                #(#param_checks)*
                check.finish()?;
            }
        });

        // The request: every field from the path, `with` or the input.
        let fields = rpc.request.iter().map(|field| {
            let ident = rust_ident(&field.name.value);
            let (plain, from) = if lowered
                .params
                .iter()
                .any(|p| p.name.value == field.name.value)
            {
                let local = format_ident!("param_{}", field.name.value);
                (quote!(&#local), field.ty.clone())
            } else if let Some((_, expr)) = lowered
                .with
                .iter()
                .find(|(w, _)| w.name.value == field.name.value)
            {
                let (value, from) = match expr {
                    Expr::Caller => (quote!(caller.user_id), Type::Uuid),
                    Expr::CallerRoles => (quote!(caller.roles), crate::rpc::caller_roles_type()),
                    Expr::Now { plus_secs } => (now_value(*plus_secs), Type::Timestamp),
                    literal => (
                        literal_value(literal).unwrap_or_default(),
                        field.ty.required().clone(),
                    ),
                };
                (quote!(&(#value)), from)
            } else {
                (quote!(&input.#ident), field.ty.clone())
            };
            let value = self.plain_to_proto(&plain, &from, &field.ty);
            quote!(#ident: #value,)
        });
        let request_ty = format_ident!("{}Request", rpc.name.value);
        let request = quote!(let request = #proto::#request_ty { #(#fields)* };);

        // The call: in process for the service's own RPC, over gRPC for another's.
        let method = method_ident(rpc);
        // A failed call is answered with its status mapped to HTTP (`From<Status>`).
        let failed = quote!(?);
        let call = if lowered.own {
            let server_module = format_ident!(
                "{}_server",
                ident::to_snake(&crate::contract::service_name(target))
            );
            let trait_name = format_ident!("{}", crate::contract::service_name(target));
            // The caller goes with the call, as a verified identity.
            let caller = if route.public {
                quote!(None)
            } else {
                quote!(Some(&caller))
            };
            quote! {
                let call = svcgen_runtime::rpc::in_process(request, #caller, &deadline);
                let answer = #proto::#server_module::#trait_name::#method(&Rpc { ctx: ctx.clone() }, call)
                    .await
                    #failed
                    .into_inner();
            }
        } else {
            let caller = if route.public {
                quote!(None)
            } else {
                quote!(Some(&caller))
            };
            let service = lit(&target.name.value);
            let idempotent = rpc.idempotent || matches!(rpc.kind, RpcKind::Get { .. });
            let send = self.send_to(target, rpc);
            quote! {
                let answer = rpc::Outgoing::new(&ctx.settings, #caller, deadline)
                    .call(#service, #idempotent, request, #send)
                    .await
                    #failed;
            }
        };
        let caller_param = if route.public {
            TokenStream::new()
        } else {
            quote!(caller: Caller,)
        };

        // The answer: the response's fields as plain values.
        let answer_ty = format_ident!("{pascal}Answer");
        let response_ty = format_ident!("{}Response", rpc.name.value);
        let answer_fields = rpc.response.iter().map(field_decl);
        let conversions = rpc.response.iter().map(|field| {
            let ident = rust_ident(&field.name.value);
            let value = proto_to_plain(
                &quote!(proto.#ident),
                &field.ty,
                &field.ty,
                &field.name.value,
            );
            quote!(#ident: #value,)
        });
        let proto_param = if rpc.response.is_empty() {
            quote!(_proto)
        } else {
            quote!(proto)
        };
        let answer_doc = doc(&format!(
            "The answer of {what}: the response of `{}`.",
            route.target.text()
        ));
        let summary = format!(
            "{what}: answers with `{}`{}.",
            route.target.text(),
            rpc.description
                .as_deref()
                .map(|d| format!(" ({})", d.trim_end_matches('.')))
                .unwrap_or_default()
        );
        let handler_doc = match &route.description {
            Some(description) => doc(&format!("{description}\n\n{summary}")),
            None => doc(&summary),
        };
        quote! {
            #input_items

            #answer_doc
            #[derive(Debug, Serialize)]
            pub struct #answer_ty { #(#answer_fields)* }

            impl FromProto<#proto::#response_ty> for #answer_ty {
                fn from_proto(#proto_param: #proto::#response_ty) -> Result<Self, tonic::Status> {
                    Ok(Self { #(#conversions)* })
                }
            }

            #handler_doc
            async fn #name(State(ctx): State<ServiceContext>, #caller_param deadline: rpc::Deadline, #params_param #input_param) -> ApiResult<Json<#answer_ty>> {
                #validate
                #(#param_reads)*
                #param_check
                #request
                #call
                Ok(Json(FromProto::from_proto(answer)#failed))
            }
        }
    }
}
