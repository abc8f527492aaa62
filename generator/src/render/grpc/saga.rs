//! `create` routes backed by steps: calls to other services and payments in order, each
//! undone in reverse when a later one fails, then the row, its event and the end of the saga's
//! recorded undos in one transaction.

use super::*;

impl Grpc<'_> {
    /// A `create` handler backed by steps: the calls and payments in order (each undone, newest
    /// first, when a later one fails), then the row and its event in one transaction.
    pub fn create_handler(&self, lowered: &RouteIr) -> TokenStream {
        let (entity, route) = (lowered.entity, lowered.model);
        let name = crate::ident::handler_name(route);
        let model = rust_type(&entity.name.value);
        let input = input_type(route);
        let mut steps = Vec::new();
        for (index, step) in lowered.steps.iter().enumerate() {
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
        let insert = crate::render::rust::insert_sql(entity);
        let binds = columns.iter().map(bind);
        let emit = emit(self.system, lowered);
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

    pub(super) fn step(
        &self,
        route: &Route,
        before: &[Step],
        lowered: &StepIr,
        index: usize,
    ) -> TokenStream {
        let step = lowered.model;
        let failed = quote!(return Err(saga.fail(rpc::api_error(&status)).await));
        match &lowered.action {
            StepActionIr::Call(call) => {
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
                let undo = lowered.undo.as_ref().map(|undo| {
                    let what = lit(&undo.model.target.text());
                    let request = self.request(route, before, undo);
                    let (service, idempotent) = self.target(undo);
                    let path = lit(&format!(
                        "/{}.{}/{}",
                        crate::contract::package(self.system, undo.service),
                        crate::contract::service_name(undo.service),
                        undo.rpc.name.value
                    ));
                    quote! {
                        if let Err(error) = saga.undo_with(#what, #service, #path, #idempotent, &#request).await {
                            return Err(saga.fail(error).await);
                        }
                    }
                });
                quote! { #undo #bind }
            }
            StepActionIr::Pay { amount_cents, card } => {
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

    pub(super) fn target(&self, call: &CallIr) -> (Literal, TokenStream) {
        let rpc = call.rpc;
        let idempotent = if rpc.idempotent || matches!(rpc.kind, RpcKind::Get { .. }) {
            quote!(true)
        } else {
            quote!(false)
        };
        (lit(&call.service.name.value), idempotent)
    }

    pub(super) fn send(&self, call: &CallIr) -> TokenStream {
        let (target, rpc) = (call.service, call.rpc);
        let proto = proto_module(self.system, &target.name.value);
        let pascal = ident::to_pascal(&target.name.value);
        let module = format_ident!("{}_service_client", ident::to_snake(&pascal));
        let client = format_ident!("{}ServiceClient", pascal);
        let method = method_ident(rpc);
        quote!(|channel, request| async move { #proto::#module::#client::new(channel).#method(request).await })
    }

    pub(super) fn invocation(
        &self,
        route: &Route,
        before: &[Step],
        call: &CallIr,
        calls: TokenStream,
    ) -> TokenStream {
        let request = self.request(route, before, call);
        let send = self.send(call);
        let (service, idempotent) = self.target(call);
        quote!(#calls.call(#service, #idempotent, #request, #send).await)
    }

    /// The request message of a call, from its `with` values.
    pub(super) fn request(&self, route: &Route, before: &[Step], call: &CallIr) -> TokenStream {
        let (target, rpc) = (call.service, call.rpc);
        let proto = proto_module(self.system, &target.name.value);
        let ty = format_ident!("{}Request", rpc.name.value);
        let mut complete = true;
        let fields: Vec<TokenStream> = rpc
            .request
            .iter()
            .filter_map(|field| {
                let Some((_, expr)) = call
                    .model
                    .with
                    .iter()
                    .find(|(n, _)| n.value == field.name.value)
                else {
                    complete = false;
                    return None;
                };
                let ident = rust_ident(&field.name.value);
                let typed =
                    expr_type(self.system, self.service, route, before, expr).expect("validated");
                let value = if !expr.reads_step_result() {
                    // A place is borrowed as it is; anything else is made, then borrowed.
                    let plain = match self.plain_place(route, expr) {
                        Some(place) => quote!(&#place),
                        None => {
                            let value = self.plain_value(route, expr, &typed.ty);
                            quote!(&(#value))
                        }
                    };
                    self.plain_to_proto(&plain, &typed.ty, &field.ty)
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
    pub(super) fn proto_path(&self, expr: &Expr, typed: &Typed) -> TokenStream {
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
    pub(super) fn plain_place(&self, route: &Route, expr: &Expr) -> Option<TokenStream> {
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
    pub(super) fn plain_value(&self, route: &Route, expr: &Expr, ty: &Type) -> TokenStream {
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
                let (_, rpc) = find_rpc(self.system, &call.target).expect("validated");
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
                proto_to_plain(&source, &field.ty, ty, &fields[0].value)
            }
        }
    }
}

/// The local holding a named step's result (suffixed, so that no step name shadows a local of
/// the handler).
pub(super) fn result_ident(name: &str) -> proc_macro2::Ident {
    format_ident!("{}_result", name)
}

/// Whether the route reads `$caller`.
pub(super) fn uses_caller(route: &Route) -> bool {
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
