//! Rust for RPCs: message types, the gRPC server of a service (entity `get`s, SQL statements,
//! the auth account), the conversions between plain and protobuf values, and `create` routes
//! backed by steps (a saga of calls and payments, then the row and its event in one
//! transaction).

use super::rust::{bind, doc, emit, is_copy, is_json, lit, rust_field_type, validation};
use crate::ident::{self, rust_ident, rust_type, sql};
use crate::model::*;
use crate::rpc::{Typed, expr_type, find_rpc, positional_sql, route_input};
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use std::cell::RefCell;
use std::collections::BTreeSet;

/// Which way a conversion goes between a plain type of this crate and a protobuf message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Direction {
    ToProto,
    FromProto,
}

/// A conversion the generated code needs: a record of this service and a message of some
/// service's contract, with fields matched by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Pair {
    direction: Direction,
    record: String,
    proto_service: String,
    proto_record: String,
}

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
    pairs: RefCell<BTreeSet<Pair>>,
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
        Type::Int | Type::Bool | Type::Timestamp => true,
        Type::Optional(inner) => matches!(inner.as_ref(), Type::Int | Type::Bool | Type::Timestamp),
        _ => false,
    }
}

fn method_ident(rpc: &Rpc) -> proc_macro2::Ident {
    rust_ident(&ident::to_snake(&rpc.name.value))
}

impl<'s> Grpc<'s> {
    /// The generator for `service`.
    pub fn new(system: &'s System, service: &'s Service) -> Self {
        Grpc {
            system,
            service,
            pairs: RefCell::new(BTreeSet::new()),
        }
    }

    /// Plain structs for the service's messages, with their checks.
    pub fn messages(&self) -> TokenStream {
        let items = self.service.messages.iter().map(|message| {
            let ty = rust_type(&message.name.value);
            let message_doc = doc(message
                .description
                .as_deref()
                .unwrap_or(&format!("A `{}`.", message.name.value)));
            let fields = message.fields.iter().map(field_decl);
            let checks: Vec<TokenStream> = message
                .fields
                .iter()
                .map(|f| {
                    let ident = rust_ident(&f.name.value);
                    validation(&f.name.value, &f.ty, quote!(&self.#ident))
                })
                .filter(|c| !c.is_empty())
                .collect();
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
    pub fn input_struct(&self, route: &Route) -> TokenStream {
        let ty = input_type(route);
        let fields = route_input(self.service, route);
        let decls = fields.iter().map(field_decl);
        let checks: Vec<TokenStream> = fields
            .iter()
            .map(|f| {
                let ident = rust_ident(&f.name.value);
                validation(&f.name.value, &f.ty, quote!(&self.#ident))
            })
            .filter(|c| !c.is_empty())
            .collect();
        let checker = if checks.is_empty() {
            quote!(let check = Validator::new();)
        } else {
            quote!(let mut check = Validator::new();)
        };
        let text = format!("The body of `{} {}`.", route.method.as_str(), route.path);
        let struct_doc = doc(&text);
        quote! {
            #struct_doc
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

    /// The gRPC server of the service, when it serves RPCs.
    pub fn server(&self) -> Option<Parts> {
        if self.service.rpcs.is_empty() {
            return None;
        }
        let methods = self
            .service
            .rpcs
            .iter()
            .map(|rpc| self.method(rpc))
            .collect();
        Some(self.mount(
            &crate::render::proto::service_name(self.service),
            (format_ident!("Rpc"), "Serves this service's RPCs."),
            (
                format_ident!("grpc"),
                "Answers gRPC calls to this service, beside its HTTP routes on the same port and\nbehind the same internal credential.",
            ),
            methods,
        ))
    }

    /// The server of the routes' RPCs, for a service the gateway reaches over gRPC: each RPC
    /// runs the route's own handler.
    pub fn api_server(&self) -> Option<Parts> {
        let routes = crate::rpc::route_rpcs(self.service);
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

    /// A gRPC server of the service's package: the struct implementing the generated trait of
    /// gRPC service `name` with `methods`, and the handler that mounts it on the service's app.
    fn mount(
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
            crate::render::proto::package(self.system, self.service)
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

    fn route_method(&self, rpc: &crate::rpc::RouteRpc, api: &str) -> TokenStream {
        let proto = proto_module(self.system, &self.service.name.value);
        let route = rpc.route;
        let entity = self.service.entity(&route.entity.value).expect("validated");
        let name = rust_ident(&ident::to_snake(&rpc.name));
        let request_ty = format_ident!("{api}{}Request", rpc.name);
        let response_ty = format_ident!("{api}{}Response", rpc.name);
        let handler = super::rust::handler_name(route);
        let method_doc = doc(&format!(
            "`{} {}` as an RPC.",
            route.method.as_str(),
            route.path
        ));
        let caller = (!route.public).then(|| {
            quote! {
                let caller = incoming
                    .caller
                    .clone()
                    .ok_or_else(|| tonic::Status::unauthenticated("the route needs a signed-in caller"))?;
            }
        });
        let caller_arg = (!route.public).then(|| quote!(caller,));
        let field = rust_ident(&entity.name.value);
        self.need(
            Direction::ToProto,
            &entity.name.value,
            &self.service.name.value,
            &entity.name.value,
        );
        let (prepare, args, answer, response) = match route.operation {
            Operation::Create => {
                let input_ty = if super::rust::has_steps(route) {
                    input_type(route)
                } else {
                    format_ident!("New{}", rust_type(&entity.name.value))
                };
                let fields = rpc.request.iter().map(|f| {
                    let ident = rust_ident(&f.name.value);
                    let source = if proto_copy(&f.ty) {
                        quote!(request.#ident)
                    } else {
                        quote!(request.#ident.clone())
                    };
                    let value = proto_to_plain(&source, &f.ty, &f.ty, &f.name.value, || {
                        if let Some(record) = record_of(&f.ty) {
                            self.need(
                                Direction::FromProto,
                                record,
                                &self.service.name.value,
                                record,
                            );
                        }
                    });
                    quote!(#ident: #value,)
                });
                let deadline = super::rust::has_steps(route).then(|| quote!(incoming.deadline,));
                (
                    quote!(let input = #input_ty { #(#fields)* };),
                    quote!(#caller_arg #deadline Json(input)),
                    quote!(let (_, Json(row)) = answer;),
                    quote!(#proto::#response_ty { #field: Some(row.to_proto()) }),
                )
            }
            Operation::List => (
                quote!(let page = svcgen_runtime::http::Page::with(request.limit, request.cursor.as_deref()).map_err(|error| rpc::status_of(&error))?;),
                quote!(#caller_arg page),
                quote!(let Json(page) = answer;),
                quote!(#proto::#response_ty { items: ToProto::to_proto(&page.items), next_cursor: page.next_cursor }),
            ),
            Operation::Get => (
                quote!(let id: uuid::Uuid = FromProto::from_proto(request.id.clone())?;),
                quote!(#caller_arg IdPath(id)),
                quote!(let Json(row) = answer;),
                quote!(#proto::#response_ty { #field: Some(row.to_proto()) }),
            ),
            Operation::Update => {
                let patch_ty = format_ident!("{}Patch", rust_type(&entity.name.value));
                let fields = route_input(self.service, route).into_iter().map(|f| {
                    let ident = rust_ident(&f.name.value);
                    let name = lit(&f.name.value);
                    let carried = f.ty.required().clone();
                    let source = if proto_copy(&carried) {
                        quote!(request.#ident)
                    } else {
                        quote!(request.#ident.clone())
                    };
                    let value = proto_to_plain(&source, &carried, &carried, &f.name.value, || {
                        if let Some(record) = record_of(&carried) {
                            self.need(
                                Direction::FromProto,
                                record,
                                &self.service.name.value,
                                record,
                            );
                        }
                    });
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
                        let patch = #patch_ty { #(#fields)* };
                    },
                    quote!(#caller_arg IdPath(id), Json(patch)),
                    quote!(let Json(row) = answer;),
                    quote!(#proto::#response_ty { #field: Some(row.to_proto()) }),
                )
            }
            Operation::Delete => (
                quote!(let id: uuid::Uuid = FromProto::from_proto(request.id.clone())?;),
                quote!(#caller_arg IdPath(id)),
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
    /// its RPC, and the answer back as the JSON the HTTP route gives.
    pub fn gateway_adapter(&self) -> TokenStream {
        let routes = crate::rpc::route_rpcs(self.service);
        if routes.is_empty() {
            return TokenStream::new();
        }
        let proto = proto_module(self.system, &self.service.name.value);
        let api = crate::rpc::api_service_name(self.service);
        let client_module = format_ident!("{}_client", ident::to_snake(&api));
        let client = format_ident!("{}Client", api);
        let arms = routes.iter().map(|rpc| {
            let route = rpc.route;
            let entity = self.service.entity(&route.entity.value).expect("validated");
            let model = rust_type(&entity.name.value);
            let field = rust_ident(&entity.name.value);
            let field_name = lit(&entity.name.value);
            self.need(Direction::FromProto, &entity.name.value, &self.service.name.value, &entity.name.value);
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
            let (prepare, request, answer) = match route.operation {
                Operation::Create => {
                    let input_ty = if super::rust::has_steps(route) {
                        input_type(route)
                    } else {
                        format_ident!("New{}", rust_type(&entity.name.value))
                    };
                    let fields = rpc.request.iter().map(|f| {
                        let ident = rust_ident(&f.name.value);
                        let value = self.plain_to_proto(&quote!(&input.#ident), &f.ty, &f.ty, &self.service.name.value);
                        quote!(#ident: #value,)
                    });
                    (
                        quote!(let input: #input_ty = match call.json().await { Ok(input) => input, Err(error) => return axum::response::IntoResponse::into_response(error) };),
                        quote!(#proto::#request_ty { #(#fields)* }),
                        quote!(rpc::json_response(StatusCode::CREATED, &#row)),
                    )
                }
                Operation::List => (
                    quote!(let page = match call.page().await { Ok(page) => page, Err(error) => return axum::response::IntoResponse::into_response(error) };),
                    quote!(#proto::#request_ty { limit: Some(page.limit), cursor: page.after.as_ref().map(|after| after.encode()) }),
                    quote! {
                        match Vec::<#model>::from_proto(response.items) {
                            Ok(items) => rpc::json_response(StatusCode::OK, &svcgen_runtime::http::Paginated { items, next_cursor: response.next_cursor }),
                            Err(status) => rpc::failure_response(&status),
                        }
                    },
                ),
                Operation::Get => (
                    quote!(let id = match call.id() { Ok(id) => id, Err(error) => return axum::response::IntoResponse::into_response(error) };),
                    quote!(#proto::#request_ty { id: id.to_proto() }),
                    quote!(rpc::json_response(StatusCode::OK, &#row)),
                ),
                Operation::Update => {
                    let patch_ty = format_ident!("{}Patch", rust_type(&entity.name.value));
                    let mut values = Vec::new();
                    let mut fields = Vec::new();
                    let inputs = route_input(self.service, route);
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
                        let value = self.plain_to_proto(&quote!(value), &carried, &carried, &self.service.name.value);
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
                            let input: #patch_ty = match call.json().await { Ok(input) => input, Err(error) => return axum::response::IntoResponse::into_response(error) };
                            let mut patched_fields = Vec::new();
                            #nulled_binding
                            #(#values)*
                        },
                        quote!(#proto::#request_ty { id: id.to_proto(), #(#fields)* patched_fields, nulled_fields }),
                        quote!(rpc::json_response(StatusCode::OK, &#row)),
                    )
                }
                Operation::Delete => (
                    quote!(let id = match call.id() { Ok(id) => id, Err(error) => return axum::response::IntoResponse::into_response(error) };),
                    quote!(#proto::#request_ty { id: id.to_proto() }),
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
            /// route's RPC, and the answer back as the JSON the HTTP route would give.
            pub fn gateway(call: rpc::GatewayCall) -> svcgen_runtime::cli::BoxFuture<'static, axum::response::Response> {
                Box::pin(async move {
                    match (call.method.as_str(), call.route) {
                        #(#arms)*
                        _ => rpc::failure_response(&tonic::Status::not_found("no such route")),
                    }
                })
            }
        }
    }

    fn method(&self, rpc: &Rpc) -> TokenStream {
        let proto = proto_module(self.system, &self.service.name.value);
        let name = method_ident(rpc);
        let request = format_ident!("{}Request", rpc.name.value);
        let response = format_ident!("{}Response", rpc.name.value);
        let method_doc = doc(rpc
            .description
            .as_deref()
            .unwrap_or(&format!("The `{}` operation.", rpc.name.value)));
        let body = match &rpc.kind {
            RpcKind::Get { record } => self.get_body(rpc, record),
            RpcKind::Sql(statements) => self.sql_body(rpc, statements),
        };
        quote! {
            #method_doc
            async fn #name(&self, request: tonic::Request<#proto::#request>) -> Result<tonic::Response<#proto::#response>, tonic::Status> {
                let incoming = rpc::Incoming::of(&request);
                let request = request.into_inner();
                #body
            }
        }
    }

    fn get_body(&self, rpc: &Rpc, record: &Name) -> TokenStream {
        let proto = proto_module(self.system, &self.service.name.value);
        let response = format_ident!("{}Response", rpc.name.value);
        let field = rust_ident(&record.value);
        let not_found = lit(&format!("{} not found", record.value));
        if self.service.uses == Some(Capability::Auth) {
            let ty = rust_type(&record.value);
            return quote! {
                let id: uuid::Uuid = FromProto::from_proto(request.id)?;
                let account = incoming
                    .within(async {
                        svcgen_runtime::capability::auth::find_account(&self.ctx.db, id)
                            .await?
                            .ok_or_else(|| tonic::Status::not_found(#not_found))
                    })
                    .await?;
                Ok(tonic::Response::new(#proto::#response {
                    #field: Some(#proto::#ty {
                        id: account.user_id.to_proto(),
                        email: account.email,
                        username: account.username,
                        roles: account.roles,
                        created_at: Some(account.created_at.to_proto()),
                    }),
                }))
            };
        }
        let entity = self.service.entity(&record.value).expect("validated");
        let from_row = ident::rust_joined(&[&entity.name.value, "from_row"]);
        let columns: Vec<String> = entity.columns().iter().map(|c| sql(&c.name)).collect();
        let select = lit(&format!(
            "SELECT {} FROM {} WHERE \"id\" = $1",
            columns.join(", "),
            sql(&entity.name.value)
        ));
        self.need(
            Direction::ToProto,
            &record.value,
            &self.service.name.value,
            &record.value,
        );
        quote! {
            let id: uuid::Uuid = FromProto::from_proto(request.id)?;
            let row = incoming
                .within(async {
                    let row = db::query(#select)
                        .bind(id)
                        .fetch_optional(&self.ctx.db)
                        .await?
                        .ok_or_else(|| tonic::Status::not_found(#not_found))?;
                    Ok(#from_row(&row)?)
                })
                .await?;
            Ok(tonic::Response::new(#proto::#response {
                #field: Some(row.to_proto()),
            }))
        }
    }

    fn sql_body(&self, rpc: &Rpc, statements: &[Statement]) -> TokenStream {
        let proto = proto_module(self.system, &self.service.name.value);
        let response = format_ident!("{}Response", rpc.name.value);
        let mut filled: Vec<&Field> = Vec::new();
        let runs = statements.iter().map(|statement| {
            if let Some(into) = &statement.into
                && let Some(field) = rpc.response.iter().find(|f| f.name.value == into.value)
            {
                filled.push(field);
            }
            self.statement(rpc, statement)
        });
        let runs: Vec<TokenStream> = runs.collect();
        let fields = filled.iter().map(|field| {
            let ident = rust_ident(&field.name.value);
            quote!(#ident,)
        });
        let rest = (filled.len() < rpc.response.len()).then(|| quote!(..Default::default()));
        let request = format_ident!("{}Request", rpc.name.value);
        quote! {
            /// One attempt: every statement in one transaction.
            async fn attempt(ctx: &ServiceContext, request: &#proto::#request, now: chrono::DateTime<chrono::Utc>) -> Result<#proto::#response, tonic::Status> {
                let mut tx = ctx.begin().await?;
                #(#runs)*
                ctx.commit(tx).await?;
                Ok(#proto::#response { #(#fields)* #rest })
            }
            let now = db::now();
            let response = incoming
                .within(db::retrying(|| attempt(&self.ctx, &request, now)))
                .await?;
            Ok(tonic::Response::new(response))
        }
    }

    /// One SQL statement: its parameters bound, run once or per element, checked, and its rows
    /// turned into a response field or events.
    fn statement(&self, rpc: &Rpc, statement: &Statement) -> TokenStream {
        let (text, names) = positional_sql(&statement.sql);
        let text = lit(&text);
        let element_fields = statement
            .for_each
            .as_ref()
            .and_then(|each| crate::rpc::for_each_fields(self.service, rpc, &each.value))
            .unwrap_or_default();
        let mut declared = names.clone();
        if let Some(expect) = &statement.expect {
            for placeholder in crate::validate::placeholders(&expect.message) {
                if !declared.iter().any(|d| d == placeholder) {
                    declared.push(placeholder.to_owned());
                }
            }
        }
        let scope = crate::rpc::statement_scope(self.service, rpc, statement);
        let param_type = |name: &str| -> Type { scope.get(name).cloned().unwrap_or(Type::Int) };
        let params = declared.iter().map(|name| {
            let ident = format_ident!("param_{}", name);
            let value = if name == "now" {
                quote!(now)
            } else if name == "new_id" {
                quote!(uuid::Uuid::now_v7())
            } else if let Some((_, value)) = self
                .service
                .constants
                .iter()
                .find(|(n, _)| n.value == *name)
            {
                let value = Literal::i64_suffixed(*value);
                quote!(#value)
            } else if let Some(field) = element_fields.iter().find(|f| f.name.value == *name) {
                let source = rust_ident(name);
                let source = if proto_copy(&field.ty) {
                    quote!(element.#source)
                } else {
                    quote!(element.#source.clone())
                };
                proto_to_plain(&source, &field.ty, &field.ty, name, || {})
            } else {
                let field = rpc
                    .request
                    .iter()
                    .find(|f| f.name.value == *name)
                    .expect("validated");
                let source = rust_ident(name);
                let source = if proto_copy(&field.ty) {
                    quote!(request.#source)
                } else {
                    quote!(request.#source.clone())
                };
                proto_to_plain(&source, &field.ty, &field.ty, name, || {})
            };
            let plain = rust_field_type(&param_type(name));
            quote!(let #ident: #plain = #value;)
        });
        let binds = names.iter().map(|name| {
            let ident = format_ident!("param_{}", name);
            if is_copy(&param_type(name)) {
                quote!(.bind(#ident))
            } else {
                quote!(.bind(#ident.clone()))
            }
        });
        let query = quote!(db::query(#text) #(#binds)*);
        let failure = statement.expect.as_ref().map(|expect| {
            let code = format_ident!("{}", expect.status.value);
            let (format, arguments) = super::rust::message_format(&expect.message);
            let arguments: Vec<TokenStream> = arguments
                .iter()
                .map(|a| {
                    let ident = format_ident!("param_{}", a);
                    quote!(#ident)
                })
                .collect();
            if arguments.is_empty() {
                let text = lit(&format.replace("{{", "{").replace("}}", "}"));
                return quote!(tonic::Status::#code(#text));
            }
            let format = lit(&format);
            quote!(tonic::Status::#code(format!(#format #(, #arguments)*)))
        });
        let run = if let Some(into) = &statement.into {
            let field = rpc
                .response
                .iter()
                .find(|f| f.name.value == into.value)
                .expect("validated");
            let ident = rust_ident(&into.value);
            let value = self.rows_into(field, failure.as_ref());
            quote!(let #ident = { let rows = #query.fetch_all(&mut tx).await?; #value };)
        } else if let Some(event) = &statement.emit {
            let event = self
                .system
                .events
                .iter()
                .find(|e| e.name.value == event.value)
                .expect("validated");
            let ty = rust_type(&event.name.value);
            let contracts = contracts(self.system);
            let fields = event.fields.iter().map(|f| {
                let ident = rust_ident(&f.name.value);
                let name = lit(&f.name.value);
                if is_json(&f.ty) {
                    quote!(#ident: row.get_json(#name)?,)
                } else {
                    quote!(#ident: row.get(#name)?,)
                }
            });
            let empty = failure
                .as_ref()
                .map(|f| quote!(if rows.is_empty() { return Err(#f); }));
            quote! {
                let rows = #query.fetch_all(&mut tx).await?;
                #empty
                for row in &rows {
                    ctx.emit(&mut tx, &#contracts::events::#ty { #(#fields)* }).await?;
                }
            }
        } else {
            let is_select = statement
                .sql
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("select");
            match &failure {
                // A query with `expect` must find a row.
                Some(f) if is_select => quote! {
                    if #query.fetch_optional(&mut tx).await?.is_none() {
                        return Err(#f);
                    }
                },
                // A change with `expect` must touch a row.
                Some(f) => quote! {
                    if #query.execute(&mut tx).await? == 0 {
                        return Err(#f);
                    }
                },
                None => quote!(#query.execute(&mut tx).await?;),
            }
        };
        match &statement.for_each {
            Some(each) => {
                let list = rust_ident(&each.value);
                quote! {
                    for element in &request.#list {
                        #(#params)*
                        #run
                    }
                }
            }
            None => quote! {
                #(#params)*
                #run
            },
        }
    }

    /// The value of response field `field` from `rows`.
    fn rows_into(&self, field: &Field, failure: Option<&TokenStream>) -> TokenStream {
        let proto = proto_module(self.system, &self.service.name.value);
        let empty = failure.map(|f| quote!(if rows.is_empty() { return Err(#f); }));
        let message_from_row = |record: &str| {
            let ty = rust_type(record);
            let fields = self
                .service
                .record(record)
                .expect("validated")
                .into_iter()
                .map(|f| {
                    let ident = rust_ident(&f.name.value);
                    let name = lit(&f.name.value);
                    let plain = rust_field_type(&f.ty);
                    let read = if is_json(&f.ty) {
                        quote!(row.get_json(#name)?)
                    } else {
                        quote!(row.get(#name)?)
                    };
                    let converted = self.plain_to_proto(
                        &quote!(&value),
                        &f.ty,
                        &f.ty,
                        &self.service.name.value,
                    );
                    quote!(#ident: { let value: #plain = #read; #converted },)
                });
            quote!(#proto::#ty { #(#fields)* })
        };
        let list_of = match field.ty.required() {
            Type::List(inner) => record_of(inner),
            _ => None,
        };
        let single = match field.ty.required() {
            Type::Message(name) => Some(name.as_str()),
            _ => None,
        };
        match (list_of, single) {
            (Some(record), _) => {
                let build = message_from_row(record);
                quote! {
                    #empty
                    rows.iter()
                        .map(|row| Ok::<_, tonic::Status>(#build))
                        .collect::<Result<Vec<_>, _>>()?
                }
            }
            (None, Some(record)) => {
                let build = message_from_row(record);
                let missing = lit(&format!("`{}` found no row", field.name.value));
                quote! {
                    #empty
                    let row = rows.first().ok_or_else(|| tonic::Status::internal(#missing))?;
                    Some(#build)
                }
            }
            (None, None) => {
                let ty = &field.ty;
                let name = lit(&field.name.value);
                let plain = rust_field_type(ty);
                let missing = lit(&format!("`{}` found no row", field.name.value));
                let converted =
                    self.plain_to_proto(&quote!(&value), ty, ty, &self.service.name.value);
                quote! {
                    #empty
                    let row = rows.first().ok_or_else(|| tonic::Status::internal(#missing))?;
                    let value: #plain = row.get(#name)?;
                    #converted
                }
            }
        }
    }

    fn need(&self, direction: Direction, record: &str, proto_service: &str, proto_record: &str) {
        self.pairs.borrow_mut().insert(Pair {
            direction,
            record: record.to_owned(),
            proto_service: proto_service.to_owned(),
            proto_record: proto_record.to_owned(),
        });
    }

    /// The protobuf form of `value` (a reference to a plain value of type `from`) for a field
    /// of type `to` in `proto_service`'s contract.
    fn plain_to_proto(
        &self,
        value: &TokenStream,
        from: &Type,
        to: &Type,
        proto_service: &str,
    ) -> TokenStream {
        if let (Some(a), Some(b)) = (record_of(from), record_of(to)) {
            self.need(Direction::ToProto, a, proto_service, b);
        }
        match (from, to) {
            (Type::Optional(_), Type::Optional(b)) if matches!(b.as_ref(), Type::List(_)) => {
                quote!(ToProto::to_proto(#value).unwrap_or_default())
            }
            (Type::Optional(_), _) => quote!(ToProto::to_proto(#value)),
            (_, Type::Optional(b)) if matches!(b.as_ref(), Type::List(_)) => {
                quote!(ToProto::to_proto(#value))
            }
            (_, Type::Optional(_)) => quote!(Some(ToProto::to_proto(#value))),
            (_, to) if boxed_in_option(to) => quote!(Some(ToProto::to_proto(#value))),
            _ => quote!(ToProto::to_proto(#value)),
        }
    }

    /// `From`/`To` protobuf conversions for every pair the code above asked for (and the
    /// pairs their fields need).
    pub fn conversions(&self) -> TokenStream {
        let mut done: BTreeSet<Pair> = BTreeSet::new();
        let mut out = TokenStream::new();
        loop {
            let next = self
                .pairs
                .borrow()
                .iter()
                .find(|p| !done.contains(*p))
                .cloned();
            let Some(pair) = next else { break };
            out.extend(self.conversion(&pair));
            done.insert(pair);
        }
        out
    }

    fn conversion(&self, pair: &Pair) -> TokenStream {
        let target = self
            .system
            .services
            .iter()
            .find(|s| s.name.value == pair.proto_service)
            .expect("validated");
        let plain_fields = self.service.record(&pair.record).expect("validated");
        let proto_fields = target.record(&pair.proto_record).expect("validated");
        let plain = rust_type(&pair.record);
        let proto_ty = rust_type(&pair.proto_record);
        let proto = proto_module(self.system, &pair.proto_service);
        match pair.direction {
            Direction::ToProto => {
                let mut complete = true;
                let fields: Vec<TokenStream> = proto_fields
                    .iter()
                    .filter_map(|pf| {
                        let Some(df) = plain_fields.iter().find(|f| f.name.value == pf.name.value)
                        else {
                            complete = false;
                            return None;
                        };
                        let ident = rust_ident(&pf.name.value);
                        let source = rust_ident(&df.name.value);
                        let value = self.plain_to_proto(
                            &quote!(&self.#source),
                            &df.ty,
                            &pf.ty,
                            &pair.proto_service,
                        );
                        Some(quote!(#ident: #value,))
                    })
                    .collect();
                let rest = (!complete).then(|| quote!(..Default::default()));
                quote! {
                    impl ToProto<#proto::#proto_ty> for #plain {
                        fn to_proto(&self) -> #proto::#proto_ty {
                            #proto::#proto_ty { #(#fields)* #rest }
                        }
                    }
                }
            }
            Direction::FromProto => {
                let fields = plain_fields.iter().map(|df| {
                    let ident = rust_ident(&df.name.value);
                    match proto_fields.iter().find(|f| f.name.value == df.name.value) {
                        Some(pf) => {
                            let source = rust_ident(&pf.name.value);
                            let value = proto_to_plain(
                                &quote!(proto.#source),
                                &pf.ty,
                                &df.ty,
                                &pf.name.value,
                                || {
                                    if let (Some(a), Some(b)) =
                                        (record_of(&df.ty), record_of(&pf.ty))
                                    {
                                        self.need(Direction::FromProto, a, &pair.proto_service, b);
                                    }
                                },
                            );
                            quote!(#ident: #value,)
                        }
                        None => quote!(#ident: None,),
                    }
                });
                quote! {
                    impl FromProto<#proto::#proto_ty> for #plain {
                        fn from_proto(proto: #proto::#proto_ty) -> Result<Self, tonic::Status> {
                            Ok(#plain { #(#fields)* })
                        }
                    }
                }
            }
        }
    }

    /// A `create` handler backed by steps: the calls and payments in order (each undone, newest
    /// first, when a later one fails), then the row and its event in one transaction.
    pub fn create_handler(&self, entity: &Entity, route: &Route) -> TokenStream {
        let name = super::rust::handler_name(route);
        let model = rust_type(&entity.name.value);
        let input = input_type(route);
        let mut steps = Vec::new();
        for (index, step) in route.steps.iter().enumerate() {
            steps.push(self.step(route, &route.steps[..index], step, index));
        }
        let input_fields = route_input(self.service, route);
        let columns = entity.columns();
        let inits = columns.iter().map(|c| {
            let ident = rust_ident(&c.name);
            let value = match c.source {
                ColumnSource::Id => return quote!(#ident,),
                ColumnSource::Owner => quote!(caller.user_id),
                ColumnSource::CreatedAt | ColumnSource::UpdatedAt => quote!(now),
                ColumnSource::Input => match route.set.iter().find(|(n, _)| n.value == c.name) {
                    Some((_, expr)) => self.plain_value(route, expr, &c.ty),
                    None => {
                        if input_fields.iter().any(|f| f.name.value == c.name) {
                            if is_copy(&c.ty) {
                                quote!(input.#ident)
                            } else {
                                quote!(input.#ident.clone())
                            }
                        } else {
                            quote!(None)
                        }
                    }
                },
            };
            quote!(#ident: #value,)
        });
        let insert = super::rust::insert_sql(entity);
        let binds = columns.iter().map(bind);
        let emit = emit(self.system, entity, route);
        let summary = format!(
            "`{} {}`: runs {} step(s), undone in reverse when a later one fails, then creates a `{}`{}.",
            route.method.as_str(),
            route.path,
            route.steps.len(),
            entity.name.value,
            route
                .emit
                .as_ref()
                .map(|e| format!(" and emits `{}`", e.value))
                .unwrap_or_default()
        );
        let handler_doc = doc(&summary);
        let calls = route
            .steps
            .iter()
            .any(|s| matches!(s.action, StepAction::Call(_)))
            .then(
                || quote!(let calls = rpc::Outgoing::new(&ctx.settings, Some(&caller), deadline);),
            );
        let caller = if entity.owner.is_some() || uses_caller(route) || calls.is_some() {
            quote!(caller: Caller,)
        } else {
            quote!(_caller: Caller,)
        };
        let deadline = if calls.is_some() {
            quote!(deadline: rpc::Deadline,)
        } else {
            quote!(_deadline: rpc::Deadline,)
        };
        let binding = if route
            .steps
            .iter()
            .any(|s| s.undo.is_some() || matches!(s.action, StepAction::Pay { .. }))
        {
            quote!(let mut saga)
        } else {
            quote!(let saga)
        };
        // Undos that are RPCs are recorded in the service's database, so that they run even
        // when this process stops in the middle.
        let saga_mut = if calls.is_some() {
            quote!(#binding = rpc::Saga::recorded(&ctx.db, &calls);)
        } else {
            quote!(#binding = rpc::Saga::new();)
        };
        quote! {
            #handler_doc
            async fn #name(State(ctx): State<ServiceContext>, #caller #deadline Json(input): Json<#input>) -> ApiResult<(StatusCode, Json<#model>)> {
                /// One attempt at the end: the row, its event and the end of the saga's
                /// recorded undos in one transaction.
                async fn attempt(ctx: &ServiceContext, row: &#model, saga: &rpc::Saga) -> Result<(), tonic::Status> {
                    let mut tx = ctx.begin().await?;
                    db::query(#insert) #(#binds)* .execute(&mut tx).await?;
                    #emit
                    saga.succeed(&mut tx).await?;
                    ctx.commit(tx).await?;
                    Ok(())
                }
                input.validate()?;
                let id = uuid::Uuid::now_v7();
                #calls
                #saga_mut
                #(#steps)*
                let written = async {
                    let now = db::now();
                    let row = #model { #(#inits)* };
                    db::retrying(|| attempt(&ctx, &row, &saga)).await?;
                    Ok::<_, tonic::Status>(row)
                }
                .await;
                match written {
                    Ok(row) => Ok((StatusCode::CREATED, Json(row))),
                    Err(status) => Err(saga.fail(rpc::api_error(&status)).await),
                }
            }
        }
    }

    fn step(&self, route: &Route, before: &[Step], step: &Step, index: usize) -> TokenStream {
        let failed = quote!(return Err(saga.fail(rpc::api_error(&status)).await));
        match &step.action {
            StepAction::Call(call) => {
                let invocation = self.invocation(route, before, call, quote!(calls));
                let result = match &step.name {
                    Some(name) => result_ident(&name.value),
                    None => format_ident!("step_{}", index + 1),
                };
                let bind = match &step.name {
                    Some(_) => {
                        quote!(let #result = match #invocation { Ok(response) => response, Err(status) => #failed };)
                    }
                    None => quote!(if let Err(status) = #invocation { #failed }),
                };
                // Recorded before the step runs: the step may take effect on the other side
                // even when its answer is lost.
                let undo = step.undo.as_ref().map(|undo| {
                    let what = lit(&undo.target.text());
                    let request = self.request(route, before, undo);
                    let (service, idempotent) = self.target(undo);
                    let (target, rpc) = find_rpc(self.system, &undo.target).expect("validated");
                    let path = lit(&format!(
                        "/{}.{}/{}",
                        crate::render::proto::package(self.system, target),
                        crate::render::proto::service_name(target),
                        rpc.name.value
                    ));
                    quote! {
                        if let Err(error) = saga.undo_with(#what, #service, #path, #idempotent, &#request).await {
                            return Err(saga.fail(error).await);
                        }
                    }
                });
                quote! { #undo #bind }
            }
            StepAction::Pay { amount_cents, card } => {
                let amount = self.plain_value(route, amount_cents, &Type::Int);
                let card = match card {
                    Expr::Text(text) if text.is_empty() => quote!(None),
                    expr => {
                        let typed = expr_type(self.system, self.service, route, before, expr)
                            .expect("validated");
                        let value = self.plain_value(route, expr, &typed.ty);
                        if matches!(typed.ty, Type::Optional(_)) {
                            quote!((#value).as_deref())
                        } else {
                            quote!(Some((#value).as_str()))
                        }
                    }
                };
                quote! {
                    let charge = match svcgen_runtime::demo::payment::charge(#amount, #card).await {
                        Ok(charge) => charge,
                        Err(error) => return Err(saga.fail(error).await),
                    };
                    saga.on_failure("refund", move || svcgen_runtime::demo::payment::refund(charge));
                }
            }
        }
    }

    fn target(&self, call: &Call) -> (Literal, TokenStream) {
        let (_, rpc) = find_rpc(self.system, &call.target).expect("validated");
        let idempotent = if rpc.idempotent || matches!(rpc.kind, RpcKind::Get { .. }) {
            quote!(true)
        } else {
            quote!(false)
        };
        (lit(&call.target.service.value), idempotent)
    }

    fn send(&self, call: &Call) -> TokenStream {
        let (target, rpc) = find_rpc(self.system, &call.target).expect("validated");
        let proto = proto_module(self.system, &target.name.value);
        let pascal = ident::to_pascal(&target.name.value);
        let module = format_ident!("{}_service_client", ident::to_snake(&pascal));
        let client = format_ident!("{}ServiceClient", pascal);
        let method = method_ident(rpc);
        quote!(|channel, request| async move { #proto::#module::#client::new(channel).#method(request).await })
    }

    fn invocation(
        &self,
        route: &Route,
        before: &[Step],
        call: &Call,
        calls: TokenStream,
    ) -> TokenStream {
        let request = self.request(route, before, call);
        let send = self.send(call);
        let (service, idempotent) = self.target(call);
        quote!(#calls.call(#service, #idempotent, #request, #send).await)
    }

    /// The request message of a call, from its `with` values.
    fn request(&self, route: &Route, before: &[Step], call: &Call) -> TokenStream {
        let (target, rpc) = find_rpc(self.system, &call.target).expect("validated");
        let proto = proto_module(self.system, &target.name.value);
        let ty = format_ident!("{}Request", rpc.name.value);
        let mut complete = true;
        let fields: Vec<TokenStream> = rpc
            .request
            .iter()
            .filter_map(|field| {
                let Some((_, expr)) = call.with.iter().find(|(n, _)| n.value == field.name.value)
                else {
                    complete = false;
                    return None;
                };
                let ident = rust_ident(&field.name.value);
                let typed =
                    expr_type(self.system, self.service, route, before, expr).expect("validated");
                let value = if is_scalar_source(expr) {
                    // A place is borrowed as it is; anything else is made, then borrowed.
                    let plain = match self.plain_place(route, expr) {
                        Some(place) => quote!(&#place),
                        None => {
                            let value = self.plain_value(route, expr, &typed.ty);
                            quote!(&(#value))
                        }
                    };
                    self.plain_to_proto(&plain, &typed.ty, &field.ty, &target.name.value)
                } else {
                    // A value read from another call's result is already in protobuf form.
                    self.proto_path(expr, &typed)
                };
                Some(quote!(#ident: #value,))
            })
            .collect();
        let rest = (!complete).then(|| quote!(..Default::default()));
        quote!(#proto::#ty { #(#fields)* #rest })
    }

    /// A step result's field as it arrived (protobuf form).
    fn proto_path(&self, expr: &Expr, typed: &Typed) -> TokenStream {
        let Expr::Path { root, fields } = expr else {
            unreachable!("only paths read results")
        };
        let root = result_ident(&root.value);
        let field = rust_ident(&fields[0].value);
        if proto_copy(&typed.ty) {
            quote!(#root.#field)
        } else {
            quote!(#root.#field.clone())
        }
    }

    /// The place that holds `expr`'s value, when there is one to borrow: `$caller`, `$id` and
    /// input paths that cross no optional value.
    fn plain_place(&self, route: &Route, expr: &Expr) -> Option<TokenStream> {
        match expr {
            Expr::Caller => Some(quote!(caller.user_id)),
            Expr::Id => Some(quote!(id)),
            Expr::Path { root, fields } if root.value == "input" => {
                let mut ty = route_input(self.service, route)
                    .into_iter()
                    .find(|f| f.name.value == fields[0].value)?
                    .ty;
                let first = rust_ident(&fields[0].value);
                let mut place = quote!(input.#first);
                for field in &fields[1..] {
                    let Type::Message(record) = &ty else {
                        return None;
                    };
                    ty = self
                        .service
                        .record(record)?
                        .into_iter()
                        .find(|f| f.name.value == field.value)?
                        .ty;
                    let ident = rust_ident(&field.value);
                    place = quote!(#place.#ident);
                }
                Some(place)
            }
            _ => None,
        }
    }

    /// A plain (owned) value of type `ty` for `expr`: literals, `$caller`, `$id`, paths into the
    /// input, and step results converted from their protobuf form.
    fn plain_value(&self, route: &Route, expr: &Expr, ty: &Type) -> TokenStream {
        match expr {
            Expr::Caller => quote!(caller.user_id),
            Expr::Id => quote!(id),
            Expr::Int(n) => {
                let n = Literal::i64_unsuffixed(*n);
                quote!(#n)
            }
            Expr::Bool(b) => quote!(#b),
            Expr::Text(text) => {
                let text = lit(text);
                if matches!(ty, Type::Optional(_)) {
                    quote!(Some(#text.to_owned()))
                } else {
                    quote!(#text.to_owned())
                }
            }
            Expr::Path { root, fields } if root.value == "input" => {
                let input = route_input(self.service, route);
                let mut current = input
                    .iter()
                    .find(|f| f.name.value == fields[0].value)
                    .expect("validated")
                    .ty
                    .clone();
                let first = rust_ident(&fields[0].value);
                let mut value = quote!(input.#first);
                let mut optional = matches!(current, Type::Optional(_));
                let mut owned = false;
                for field in &fields[1..] {
                    let typed = Typed {
                        ty: current.clone(),
                        owner: self.service,
                    }
                    .field(&field.value)
                    .expect("validated");
                    let ident = rust_ident(&field.value);
                    let inner_optional = matches!(typed.ty, Type::Optional(_));
                    let inner_type = self
                        .service
                        .record(record_of(&current).expect("a message"))
                        .expect("validated")
                        .into_iter()
                        .find(|f| f.name.value == field.value)
                        .expect("validated")
                        .ty;
                    let take = if is_copy(&inner_type) {
                        quote!(v.#ident)
                    } else {
                        quote!(v.#ident.clone())
                    };
                    value = if optional {
                        owned = true;
                        if matches!(inner_type, Type::Optional(_)) {
                            quote!(#value.as_ref().and_then(|v| #take))
                        } else {
                            quote!(#value.as_ref().map(|v| #take))
                        }
                    } else {
                        quote!(#value.#ident)
                    };
                    optional = optional || inner_optional;
                    current = typed.ty;
                }
                if owned || is_copy(&current) {
                    value
                } else {
                    quote!(#value.clone())
                }
            }
            Expr::Path { root, fields } => {
                // A step's result, in protobuf form: converted to the plain type wanted.
                let step = route
                    .steps
                    .iter()
                    .find(|s| s.name.as_ref().is_some_and(|n| n.value == root.value))
                    .expect("validated");
                let StepAction::Call(call) = &step.action else {
                    unreachable!("validated")
                };
                let (target, rpc) = find_rpc(self.system, &call.target).expect("validated");
                let field = rpc
                    .response
                    .iter()
                    .find(|f| f.name.value == fields[0].value)
                    .expect("validated");
                let root = result_ident(&root.value);
                let ident = rust_ident(&fields[0].value);
                let source = if proto_copy(&field.ty) {
                    quote!(#root.#ident)
                } else {
                    quote!(#root.#ident.clone())
                };
                proto_to_plain(&source, &field.ty, ty, &fields[0].value, || {
                    if let (Some(a), Some(b)) = (record_of(ty), record_of(&field.ty)) {
                        self.need(Direction::FromProto, a, &target.name.value, b);
                    }
                })
            }
        }
    }
}

/// The local holding a named step's result (suffixed, so that no step name shadows a local of
/// the handler).
fn result_ident(name: &str) -> proc_macro2::Ident {
    format_ident!("{}_result", name)
}

/// Whether a value is the same in both forms' sources (not a step result).
fn is_scalar_source(expr: &Expr) -> bool {
    !matches!(expr, Expr::Path { root, .. } if root.value != "input")
}

/// Whether the route reads `$caller`.
fn uses_caller(route: &Route) -> bool {
    let reads = |expr: &Expr| matches!(expr, Expr::Caller);
    route.set.iter().any(|(_, e)| reads(e))
        || route.steps.iter().any(|step| {
            let calls = match &step.action {
                StepAction::Call(call) => call.with.iter().any(|(_, e)| reads(e)),
                StepAction::Pay { amount_cents, card } => reads(amount_cents) || reads(card),
            };
            calls
                || step
                    .undo
                    .as_ref()
                    .is_some_and(|u| u.with.iter().any(|(_, e)| reads(e)))
        })
}

/// The message a type names, through lists and options.
fn record_of(ty: &Type) -> Option<&str> {
    match ty {
        Type::Message(name) => Some(name),
        Type::List(inner) | Type::Optional(inner) => record_of(inner),
        _ => None,
    }
}

/// The plain value of type `to` from `value` (an owned protobuf value of spec type `from`);
/// `on_message` records the conversion a message needs.
fn proto_to_plain(
    value: &TokenStream,
    from: &Type,
    to: &Type,
    name: &str,
    on_message: impl FnOnce(),
) -> TokenStream {
    if record_of(from).is_some() {
        on_message();
    }
    // An optional list is a plain repeated field in protobuf: its value is the list.
    let from = match from {
        Type::Optional(inner) if matches!(inner.as_ref(), Type::List(_)) => inner.as_ref(),
        other => other,
    };
    if same_in_both_forms(from) && same_in_both_forms(to) && from.required() == to.required() {
        return match (from, to) {
            (Type::Optional(_), _) | (_, Type::Optional(_)) if from != to => quote!(Some(#value)),
            _ => value.clone(),
        };
    }
    let name = lit(name);
    match (from, to) {
        (f, Type::Optional(_)) if boxed_in_option(f) => quote!(FromProto::from_proto(#value)?),
        (f, _) if boxed_in_option(f) => {
            quote!(FromProto::from_proto(rpc::required(#name, #value)?)?)
        }
        (Type::List(_), Type::Optional(_)) => quote!(Some(FromProto::from_proto(#value)?)),
        (Type::Optional(_), _) => quote!(FromProto::from_proto(#value)?),
        (_, Type::Optional(_)) => quote!(Some(FromProto::from_proto(#value)?)),
        _ => quote!(FromProto::from_proto(#value)?),
    }
}

/// Whether plain and protobuf values of a type are the same Rust type (numbers, flags, text).
fn same_in_both_forms(ty: &Type) -> bool {
    match ty {
        Type::Int | Type::Bool | Type::Text | Type::Email | Type::String { .. } => true,
        Type::List(inner) | Type::Optional(inner) => same_in_both_forms(inner),
        _ => false,
    }
}

/// `CreateOrderInput` for `POST /orders` creating an `order`.
fn input_type(route: &Route) -> proc_macro2::Ident {
    format_ident!(
        "{}Input",
        ident::to_pascal(&super::rust::handler_name(route).to_string())
    )
}

/// A field of a plain struct (with serde's default for optional ones).
fn field_decl(field: &Field) -> TokenStream {
    let ident = rust_ident(&field.name.value);
    let ty = rust_field_type(&field.ty);
    let field_doc = doc(&format!(
        "`{}`: {}.",
        field.name.value,
        field.ty.spec_text()
    ));
    let default = matches!(field.ty, Type::Optional(_)).then(|| quote!(#[serde(default)]));
    quote!(#field_doc #default pub #ident: #ty,)
}
