//! Routes as RPCs, for a service the gateway reaches over gRPC: the server of
//! `<Service>ApiService` (each RPC runs the route's own handler) and the gateway's transcoder
//! (JSON in, the RPC, JSON out).

use super::*;
use crate::render::rust::access::CallerParam;

impl Grpc<'_> {
    /// The server of the routes' RPCs, for a service the gateway reaches over gRPC: each RPC
    /// runs the route's own handler.
    pub fn api_server(&self) -> Option<Parts> {
        let routes = &self.lowered.route_rpcs;
        if routes.is_empty() {
            return None;
        }
        let api = crate::rpc::api_service_name(self.service);
        let methods = routes
            .iter()
            .map(|route| self.route_method(route, &api))
            .collect();
        Some(self.mount(
            &api,
            (
                format_ident!("Api"),
                "Serves the routes as RPCs, for the gateway (which reaches this service over gRPC).",
            ),
            (format_ident!("grpc_api"), "Answers the gateway's gRPC calls of the routes."),
            methods,
        ))
    }

    pub(super) fn route_method(&self, rpc: &crate::lower::RouteRpc, api: &str) -> TokenStream {
        let proto = proto_module(self.system, &self.service.name.value);
        let route = rpc.route;
        let entity = rpc.entity;
        let name = rust_ident(&ident::to_snake(&rpc.name));
        let request_ty = format_ident!("{api}{}Request", rpc.name);
        let response_ty = format_ident!("{api}{}Response", rpc.name);
        let handler = crate::ident::handler_name(&self.service.routes, route);
        let method_doc = doc(&format!(
            "`{} {}` as an RPC.",
            route.method.as_str(),
            route.path
        ));
        // The caller, as the route's handler takes it.
        let (caller, caller_arg) = match crate::render::rust::access::caller_of(entity, route) {
            CallerParam::None => (None, None),
            CallerParam::Maybe => (None, Some(quote!(MaybeCaller(incoming.caller.clone()),))),
            CallerParam::Caller | CallerParam::Unused => (
                Some(quote!(let caller = incoming.signed_in()?;)),
                Some(quote!(caller,)),
            ),
        };
        let field = rust_ident(&entity.name.value);
        // A change's `If-Match`, read as the HTTP route reads the header.
        let if_match = quote! {
            let if_match = svcgen_runtime::http::IfMatch::parse(request.if_match.as_deref())
                .map_err(|error| rpc::status_of(&error))?;
        };
        let (prepare, args, answer, response) = match route.operation {
            Operation::Create => {
                let input_ty = create_body_type(&self.service.routes, route, entity);
                let fields = rpc.request.iter().map(|f| {
                    let ident = rust_ident(&f.name.value);
                    let source = if proto_copy(&f.ty) {
                        quote!(request.#ident)
                    } else {
                        quote!(request.#ident.clone())
                    };
                    let value = proto_to_plain(&source, &f.ty, &f.ty, &f.name.value);
                    quote!(#ident: #value,)
                });
                let deadline = route.has_steps().then(|| quote!(incoming.deadline,));
                // A create whose steps and `set` give every field takes no body.
                let (input, body) = if route.has_steps() && rpc.input.is_empty() {
                    Default::default()
                } else {
                    (
                        quote!(let input = #input_ty { #(#fields)* };),
                        quote!(Json(input)),
                    )
                };
                (
                    input,
                    quote!(#caller_arg #deadline #body),
                    quote!(let (_, Json(row)) = answer;),
                    quote!(#proto::#response_ty { #field: Some(row.to_proto()) }),
                )
            }
            Operation::List => (
                quote!(let query = rpc::list_query(request.query.as_deref(), request.limit, request.cursor.as_deref());),
                quote!(#caller_arg axum::extract::RawQuery(query)),
                quote!(let Json(page) = answer;),
                quote!(#proto::#response_ty { items: ToProto::to_proto(&page.items), next_cursor: page.next_cursor, total: page.total }),
            ),
            Operation::Get => (
                quote!(let id: uuid::Uuid = FromProto::from_proto(request.id.clone())?;),
                quote!(#caller_arg IdPath(id)),
                quote!(let (_, Json(row)) = answer;),
                quote!(#proto::#response_ty { #field: Some(row.to_proto()) }),
            ),
            Operation::Update => {
                let patch_ty = format_ident!("{}Patch", rust_type(&entity.name.value));
                let fields = rpc.input.iter().map(|f| {
                    let ident = rust_ident(&f.name.value);
                    let name = lit(&f.name.value);
                    let carried = f.ty.required().clone();
                    let source = if proto_copy(&carried) {
                        quote!(request.#ident)
                    } else {
                        quote!(request.#ident.clone())
                    };
                    let value = proto_to_plain(&source, &carried, &carried, &f.name.value);
                    let patched = quote!(request.patched_fields.iter().any(|f| f == #name));
                    if matches!(f.ty, Type::Optional(_)) {
                        quote! {
                            #ident: if request.nulled_fields.iter().any(|f| f == #name) {
                                Some(None)
                            } else if #patched {
                                Some(Some(#value))
                            } else {
                                None
                            },
                        }
                    } else {
                        quote!(#ident: if #patched { Some(#value) } else { None },)
                    }
                });
                (
                    quote! {
                        let id: uuid::Uuid = FromProto::from_proto(request.id.clone())?;
                        #if_match
                        let patch = #patch_ty { #(#fields)* };
                    },
                    quote!(#caller_arg IdPath(id), if_match, Json(patch)),
                    quote!(let (_, Json(row)) = answer;),
                    quote!(#proto::#response_ty { #field: Some(row.to_proto()) }),
                )
            }
            Operation::Delete => (
                quote! {
                    let id: uuid::Uuid = FromProto::from_proto(request.id.clone())?;
                    #if_match
                },
                quote!(#caller_arg IdPath(id), if_match),
                quote!(let _ = answer;),
                quote!(#proto::#response_ty {}),
            ),
        };
        quote! {
            #method_doc
            async fn #name(&self, request: tonic::Request<#proto::#request_ty>) -> Result<tonic::Response<#proto::#response_ty>, tonic::Status> {
                let incoming = rpc::Incoming::of(&request);
                #caller
                let request = request.into_inner();
                #prepare
                let answer = incoming
                    .within(async {
                        #handler(State(self.ctx.clone()), #args)
                            .await
                            .map_err(|error| rpc::status_of(&error))
                    })
                    .await?;
                #answer
                Ok(tonic::Response::new(#response))
            }
        }
    }

    /// The gateway's transcoder for a service reached over gRPC: the route's JSON request as
    /// its RPC, and the answer back as the JSON the HTTP route gives; a route it does not carry
    /// handed back, for the gateway to forward over HTTP.
    pub fn gateway_adapter(&self) -> TokenStream {
        if self.service.transport != Transport::Grpc {
            return TokenStream::new();
        }
        let routes = &self.lowered.route_rpcs;
        if routes.is_empty() {
            return quote! {
                /// How the gateway reaches this service over gRPC: none of its routes is carried
                /// as an RPC, so each goes back to the gateway, which forwards it over HTTP.
                pub fn gateway(call: rpc::GatewayCall) -> rpc::Adapted {
                    Err(Box::new(call))
                }
            };
        }
        let carried = routes.iter().map(|rpc| {
            let (method, path) = (lit(rpc.route.method.as_str()), lit(&rpc.route.path));
            quote!((#method, #path),)
        });
        let proto = proto_module(self.system, &self.service.name.value);
        let api = crate::rpc::api_service_name(self.service);
        let client_module = format_ident!("{}_client", ident::to_snake(&api));
        let client = format_ident!("{}Client", api);
        let arms = routes.iter().map(|rpc| {
            let route = rpc.route;
            let entity = rpc.entity;
            let model = rust_type(&entity.name.value);
            let field = rust_ident(&entity.name.value);
            let field_name = lit(&entity.name.value);
            let method = lit(route.method.as_str());
            let path = lit(&route.path);
            let request_ty = format_ident!("{api}{}Request", rpc.name);
            let call = rust_ident(&ident::to_snake(&rpc.name));
            let idempotent = route.method == Method::Get;
            let send = quote!(|channel, request| async move { #proto::#client_module::#client::new(channel).#call(request).await });
            let row = quote! {
                match rpc::required(#field_name, response.#field).and_then(#model::from_proto) {
                    Ok(row) => row,
                    Err(status) => return rpc::failure_response(&status),
                }
            };
            // A change's `If-Match` header, passed on as sent.
            let if_match = quote! {
                let if_match = match call.if_match() { Ok(if_match) => if_match, Err(error) => return axum::response::IntoResponse::into_response(error) };
            };
            let (prepare, request, answer) = match route.operation {
                Operation::Create => {
                    let input_ty = create_body_type(&self.service.routes, route, entity);
                    let fields = rpc.request.iter().map(|f| {
                        let ident = rust_ident(&f.name.value);
                        let value = self.plain_to_proto(&quote!(&input.#ident), &f.ty, &f.ty);
                        quote!(#ident: #value,)
                    });
                    // A create whose path, steps and `set` give every field takes no body.
                    let read = if route.has_steps() && rpc.input.is_empty() {
                        TokenStream::new()
                    } else {
                        quote!(let input: #input_ty = match call.json().await { Ok(input) => input, Err(error) => return axum::response::IntoResponse::into_response(error) };)
                    };
                    (
                        read,
                        quote!(#proto::#request_ty { #(#fields)* }),
                        quote!(rpc::json_response(StatusCode::CREATED, &#row)),
                    )
                }
                Operation::List => (
                    TokenStream::new(),
                    quote!(#proto::#request_ty { limit: None, cursor: None, query: call.parts.uri.query().map(str::to_owned) }),
                    quote! {
                        match Vec::<#model>::from_proto(response.items) {
                            Ok(items) => rpc::json_response(StatusCode::OK, &svcgen_runtime::http::Paginated { items, next_cursor: response.next_cursor, total: response.total }),
                            Err(status) => rpc::failure_response(&status),
                        }
                    },
                ),
                Operation::Get => (
                    quote!(let id = match call.id() { Ok(id) => id, Err(error) => return axum::response::IntoResponse::into_response(error) };),
                    quote!(#proto::#request_ty { id: id.to_proto() }),
                    quote!({ let row = #row; rpc::tagged_json_response(StatusCode::OK, row.version, &row) }),
                ),
                Operation::Update => {
                    let patch_ty = format_ident!("{}Patch", rust_type(&entity.name.value));
                    let mut values = Vec::new();
                    let mut fields = Vec::new();
                    let inputs = &rpc.input;
                    let nullable = inputs.iter().any(|f| matches!(f.ty, Type::Optional(_)));
                    let nulled_binding = if nullable {
                        quote!(let mut nulled_fields: Vec<String> = Vec::new();)
                    } else {
                        quote!(let nulled_fields: Vec<String> = Vec::new();)
                    };
                    for f in inputs {
                        let ident = rust_ident(&f.name.value);
                        let name = lit(&f.name.value);
                        let carried = f.ty.required().clone();
                        let value = self.plain_to_proto(&quote!(value), &carried, &carried);
                        let nulled = matches!(f.ty, Type::Optional(_)).then(|| {
                            quote!(Some(None) => { nulled_fields.push(#name.to_owned()); Default::default() })
                        });
                        let sent = if matches!(f.ty, Type::Optional(_)) {
                            quote!(Some(Some(value)))
                        } else {
                            quote!(Some(value))
                        };
                        values.push(quote! {
                            let #ident = match &input.#ident {
                                #sent => { patched_fields.push(#name.to_owned()); #value }
                                #nulled
                                _ => Default::default(),
                            };
                        });
                        fields.push(quote!(#ident,));
                    }
                    (
                        quote! {
                            let id = match call.id() { Ok(id) => id, Err(error) => return axum::response::IntoResponse::into_response(error) };
                            #if_match
                            let input: #patch_ty = match call.json().await { Ok(input) => input, Err(error) => return axum::response::IntoResponse::into_response(error) };
                            let mut patched_fields = Vec::new();
                            #nulled_binding
                            #(#values)*
                        },
                        quote!(#proto::#request_ty { id: id.to_proto(), #(#fields)* patched_fields, nulled_fields, if_match }),
                        quote!({ let row = #row; rpc::tagged_json_response(StatusCode::OK, row.version, &row) }),
                    )
                }
                Operation::Delete => (
                    quote! {
                        let id = match call.id() { Ok(id) => id, Err(error) => return axum::response::IntoResponse::into_response(error) };
                        #if_match
                    },
                    quote!(#proto::#request_ty { id: id.to_proto(), if_match }),
                    quote!({ let _ = response; axum::response::IntoResponse::into_response(StatusCode::NO_CONTENT) }),
                ),
            };
            quote! {
                (#method, #path) => {
                    #prepare
                    match call.outgoing.call(SERVICE, #idempotent, #request, #send).await {
                        Ok(response) => #answer,
                        Err(status) => rpc::failure_response(&status),
                    }
                }
            }
        });
        quote! {
            /// How the gateway reaches this service over gRPC: each route's JSON request as the
            /// route's RPC, and the answer back as the JSON the HTTP route would give. The
            /// routes it does not carry go back to the gateway, which forwards them over HTTP.
            pub fn gateway(call: rpc::GatewayCall) -> rpc::Adapted {
                /// The routes carried over gRPC, by method and path.
                const CARRIED: &[(&str, &str)] = &[#(#carried)*];
                if !CARRIED.contains(&(call.method.as_str(), call.route)) {
                    return Err(Box::new(call));
                }
                Ok(Box::pin(async move {
                    match (call.method.as_str(), call.route) {
                        #(#arms)*
                        _ => rpc::failure_response(&tonic::Status::not_found("no such route")),
                    }
                }))
            }
        }
    }
}
