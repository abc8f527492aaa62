//! `create` routes backed by steps: calls to other services and payments in order, each
//! undone in reverse when a later one fails, then the row, its event and the end of the saga's
//! recorded undos in one transaction.

use super::*;
use crate::lower::{ValueIr, ValueSource};
use crate::render::rust::{create_value, default_value};

impl Grpc<'_> {
    /// A `create` handler backed by steps: the calls and payments in order (each undone, newest
    /// first, when a later one fails), then the row and its event in one transaction.
    pub fn create_handler(&self, lowered: &RouteIr) -> TokenStream {
        let (entity, route) = (lowered.entity, lowered.model);
        let name = crate::ident::handler_name(&self.service.routes, route);
        let model = rust_type(&entity.name.value);
        let input = input_type(&self.service.routes, route);
        let steps = self.steps(lowered);
        let input_fields = &lowered.input;
        let columns = entity.columns();
        // The path's values and the parents it names, read as a plain create reads them.
        let path = crate::render::rust::paths::reads(lowered);
        let (path_param, path_reads) = (&path.param, &path.reads);
        let parent_checks = crate::render::rust::paths::parent_checks(lowered);
        let inits = columns.iter().map(|c| {
            let ident = rust_ident(&c.name);
            if let Some(value) = path.values.iter().find(|v| v.column == c.name) {
                return if value.copy {
                    quote!(#ident,)
                } else {
                    quote!(#ident: #ident.clone(),)
                };
            }
            let value = match c.source {
                ColumnSource::Id => return quote!(#ident,),
                ColumnSource::Owner => quote!(caller.user_id),
                ColumnSource::CreatedAt | ColumnSource::UpdatedAt => quote!(now),
                ColumnSource::Version => quote!(1),
                ColumnSource::Input => match lowered.set.iter().find(|(n, _)| n.value == c.name) {
                    Some((_, value)) => self.plain_value(value, &c.ty),
                    None => match input_fields.iter().find(|f| f.name.value == c.name) {
                        Some(field) => {
                            let value = if is_copy(&c.ty) {
                                quote!(input.#ident)
                            } else {
                                quote!(input.#ident.clone())
                            };
                            // Optional in the body, required in the row: the default fills in.
                            if matches!(field.ty, Type::Optional(_)) {
                                create_value(c, value)
                            } else {
                                value
                            }
                        }
                        None => match &c.rules.default {
                            Some(default) => default_value(&default.value),
                            None => quote!(None),
                        },
                    },
                },
            };
            quote!(#ident: #value,)
        });
        let insert = crate::render::rust::insert_sql(entity);
        let writes = crate::render::rust::write_constraints(entity);
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
        // A route whose path, `set` and steps give every field takes no body.
        let (body_param, validate) = if input_fields.is_empty() {
            Default::default()
        } else {
            (
                quote!(Json(input): Json<#input>,),
                quote!(input.validate()?;),
            )
        };
        let calls = calls_any(route);
        let caller = if entity.owner.is_some()
            || uses_caller(route)
            || calls
            || crate::render::rust::paths::parents_need_caller(lowered)
        {
            quote!(caller: Caller,)
        } else {
            quote!(_caller: Caller,)
        };
        let deadline = if calls {
            quote!(deadline: rpc::Deadline,)
        } else {
            quote!(_deadline: rpc::Deadline,)
        };
        quote! {
            #handler_doc
            async fn #name(State(ctx): State<ServiceContext>, #caller #deadline #path_param #body_param) -> ApiResult<(StatusCode, Json<#model>)> {
                /// One attempt at the end: the row, its event and the end of the saga's
                /// recorded undos in one transaction.
                async fn attempt(ctx: &ServiceContext, row: &#model, saga: &rpc::Saga) -> Result<(), tonic::Status> {
                    let mut tx = ctx.begin().await?;
                    db::query(#insert) #(#binds)* #writes .execute(&mut tx).await?;
                    #emit
                    saga.succeed(&mut tx).await?;
                    ctx.commit(tx).await?;
                    Ok(())
                }
                #path_reads
                #validate
                #parent_checks
                let id = uuid::Uuid::now_v7();
                #steps
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

    /// The steps of a route, in order: the outgoing calls for the signed-in `caller` until
    /// `deadline`, and the saga that undoes them, newest first, when a later one (or
    /// `saga.fail`) fails. Undos that are RPCs are recorded in the service's database, so that
    /// they run even when this process stops in the middle.
    pub fn steps(&self, lowered: &RouteIr) -> TokenStream {
        let route = lowered.model;
        let steps = lowered
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| self.step(step, index, reads_result(route, step.model)));
        let calls = calls_any(route).then(
            || quote!(let calls = rpc::Outgoing::new(&ctx.settings, Some(&caller), deadline);),
        );
        let binding = if route
            .steps
            .iter()
            .any(|s| s.undo.is_some() || matches!(s.action, StepAction::Pay { .. }))
        {
            quote!(let mut saga)
        } else {
            quote!(let saga)
        };
        let saga = if calls.is_some() {
            quote!(#binding = rpc::Saga::recorded(&ctx.db, &calls);)
        } else {
            quote!(#binding = rpc::Saga::new();)
        };
        quote!(#calls #saga #(#steps)*)
    }

    /// One step: its undo recorded first, then its call (or payment).
    /// One step (`read`: whether a later value reads its answer): its undo recorded first,
    /// then its call (or payment).
    pub(super) fn step(&self, lowered: &StepIr, index: usize, read: bool) -> TokenStream {
        let step = lowered.model;
        let failed = quote!(return Err(saga.fail(rpc::api_error(&status)).await));
        match &lowered.action {
            StepActionIr::Call(call) => {
                let invocation = self.invocation(call, quote!(calls));
                let result = match &step.name {
                    Some(name) => result_ident(&name.value),
                    None => format_ident!("step_{}", index + 1),
                };
                let bind = match &step.name {
                    Some(_) if read => {
                        quote!(let #result = match #invocation { Ok(response) => response, Err(status) => #failed };)
                    }
                    _ => quote!(if let Err(status) = #invocation { #failed }),
                };
                // Recorded before the step runs: the step may take effect on the other side
                // even when its answer is lost.
                let undo = lowered.undo.as_ref().map(|undo| {
                    let what = lit(&undo.model.target.text());
                    let request = self.request(undo);
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
                let amount = self.plain_value(amount_cents, &Type::INT);
                let card = match card {
                    None => quote!(None),
                    Some(card) => {
                        let value = self.plain_value(card, &card.ty);
                        if matches!(card.ty, Type::Optional(_)) {
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
        self.send_to(call.service, call.rpc)
    }

    /// The closure that sends a request of `rpc` to `target` through its generated client.
    pub(super) fn send_to(&self, target: &Service, rpc: &Rpc) -> TokenStream {
        let proto = proto_module(self.system, &target.name.value);
        let pascal = ident::to_pascal(&target.name.value);
        let module = format_ident!("{}_service_client", ident::to_snake(&pascal));
        let client = format_ident!("{}ServiceClient", pascal);
        let method = method_ident(rpc);
        quote!(|channel, request| async move { #proto::#module::#client::new(channel).#method(request).await })
    }

    /// The call of `call` through the outgoing calls `calls`.
    pub(super) fn invocation(&self, call: &CallIr, calls: TokenStream) -> TokenStream {
        let request = self.request(call);
        let send = self.send(call);
        let (service, idempotent) = self.target(call);
        quote!(#calls.call(#service, #idempotent, #request, #send).await)
    }

    /// The request message of a call, from its `with` values.
    pub(super) fn request(&self, call: &CallIr) -> TokenStream {
        let (target, rpc) = (call.service, call.rpc);
        let proto = proto_module(self.system, &target.name.value);
        let ty = format_ident!("{}Request", rpc.name.value);
        let fields = call.with.iter().map(|(field, value)| {
            let ident = rust_ident(&field.name.value);
            let value = match &value.source {
                // A value read from another call's result is already in protobuf form.
                ValueSource::StepResult { .. } => self.proto_path(value),
                // A place is borrowed as it is; anything else is made, then borrowed.
                ValueSource::Direct | ValueSource::Input(_) | ValueSource::PathParam(_) => {
                    let plain = match self.plain_place(value) {
                        Some(place) => quote!(&#place),
                        None => {
                            let made = self.plain_value(value, &value.ty);
                            quote!(&(#made))
                        }
                    };
                    self.plain_to_proto(&plain, &value.ty, &field.ty)
                }
            };
            quote!(#ident: #value,)
        });
        let rest = (!call.is_complete()).then(|| quote!(..Default::default()));
        quote!(#proto::#ty { #(#fields)* #rest })
    }

    /// A step result's field as it arrived (protobuf form).
    pub(super) fn proto_path(&self, value: &ValueIr) -> TokenStream {
        let ValueSource::StepResult { step, field, .. } = &value.source else {
            unreachable!("only step results are read in protobuf form")
        };
        let root = result_ident(step);
        let field = rust_ident(&field.name.value);
        if proto_copy(&value.ty) {
            quote!(#root.#field)
        } else {
            quote!(#root.#field.clone())
        }
    }

    /// The place that holds a value, when there is one to borrow: `$caller`, `$id` and input
    /// paths that cross no optional value.
    pub(super) fn plain_place(&self, value: &ValueIr) -> Option<TokenStream> {
        match (&value.source, value.expr) {
            (ValueSource::Direct, Expr::Caller) => Some(quote!(caller.user_id)),
            (ValueSource::Direct, Expr::CallerRoles) => Some(quote!(caller.roles)),
            (ValueSource::Direct, Expr::Id) => Some(quote!(id)),
            (ValueSource::PathParam(name), _) => {
                let ident = rust_ident(name);
                Some(quote!(#ident))
            }
            (ValueSource::Input(segments), _) => {
                let crosses_optional = segments[..segments.len() - 1]
                    .iter()
                    .any(|segment| !matches!(segment.ty, Type::Message(_)));
                if crosses_optional {
                    return None;
                }
                let path = segments
                    .iter()
                    .map(|segment| rust_ident(&segment.name.value));
                Some(quote!(input #(.#path)*))
            }
            _ => None,
        }
    }

    /// A plain (owned) value of type `ty`: literals, `$caller`, `$id`, paths into the input,
    /// and step results converted from their protobuf form.
    pub(crate) fn plain_value(&self, value: &ValueIr, ty: &Type) -> TokenStream {
        match (&value.source, value.expr) {
            (ValueSource::Direct, Expr::Caller) => quote!(caller.user_id),
            (ValueSource::Direct, Expr::CallerRoles) => quote!(caller.roles.clone()),
            (ValueSource::Direct, Expr::Id) => quote!(id),
            (ValueSource::Direct, Expr::Int(n)) => {
                let n = Literal::i64_unsuffixed(*n);
                quote!(#n)
            }
            (ValueSource::Direct, Expr::Bool(b)) => quote!(#b),
            (ValueSource::Direct, Expr::Now { plus_secs }) => {
                crate::render::rust::now_value(*plus_secs)
            }
            (ValueSource::Direct, Expr::Text(text)) => {
                let text = lit(text);
                if matches!(ty, Type::Optional(_)) {
                    quote!(Some(#text.to_owned()))
                } else {
                    quote!(#text.to_owned())
                }
            }
            (ValueSource::Direct, Expr::Path { .. }) => unreachable!("paths have a source"),
            (ValueSource::Input(segments), _) => input_value(segments),
            (ValueSource::PathParam(name), _) => {
                let ident = rust_ident(name);
                if is_copy(&value.ty) {
                    quote!(#ident)
                } else {
                    quote!(#ident.clone())
                }
            }
            (ValueSource::StepResult { step, field, .. }, _) => {
                // A step's result, in protobuf form: converted to the plain type wanted.
                let root = result_ident(step);
                let ident = rust_ident(&field.name.value);
                let source = if proto_copy(&field.ty) {
                    quote!(#root.#ident)
                } else {
                    quote!(#root.#ident.clone())
                };
                proto_to_plain(&source, &field.ty, ty, &field.name.value)
            }
        }
    }
}

/// The owned plain value at a path into the request body, given each field on the way with its
/// declared type: past an optional value the rest is read through `Option` (and owned).
fn input_value(segments: &[Field]) -> TokenStream {
    let (first, rest) = segments.split_first().expect("a path names a field");
    let first_ident = rust_ident(&first.name.value);
    let mut value = quote!(input.#first_ident);
    let mut current = first.ty.clone();
    let mut optional = matches!(current, Type::Optional(_));
    let mut owned = false;
    for segment in rest {
        let ident = rust_ident(&segment.name.value);
        let declared = &segment.ty;
        let take = if is_copy(declared) {
            quote!(v.#ident)
        } else {
            quote!(v.#ident.clone())
        };
        value = if optional {
            owned = true;
            if matches!(declared, Type::Optional(_)) {
                quote!(#value.as_ref().and_then(|v| #take))
            } else {
                quote!(#value.as_ref().map(|v| #take))
            }
        } else {
            quote!(#value.#ident)
        };
        current = if matches!(current, Type::Optional(_)) && !matches!(declared, Type::Optional(_))
        {
            Type::Optional(Box::new(declared.clone()))
        } else {
            declared.clone()
        };
        optional = optional || matches!(declared, Type::Optional(_));
    }
    if owned || is_copy(&current) {
        value
    } else {
        quote!(#value.clone())
    }
}

/// The local holding a named step's result (suffixed, so that no step name shadows a local of
/// the handler).
pub(super) fn result_ident(name: &str) -> proc_macro2::Ident {
    format_ident!("{}_result", name)
}

/// Whether a value of `route` after `step` reads its answer (`$<step>.<field>`).
fn reads_result(route: &Route, step: &Step) -> bool {
    let Some(name) = &step.name else {
        return false;
    };
    let reads = |expr: &Expr| matches!(expr, Expr::Path { root, .. } if root.value == name.value);
    let calls = route.steps.iter().flat_map(|s| {
        let call = match &s.action {
            StepAction::Call(call) => call.with.iter().map(|(_, e)| e).collect::<Vec<_>>(),
            StepAction::Pay { amount_cents, card } => vec![amount_cents, card],
        };
        call.into_iter()
            .chain(s.undo.iter().flat_map(|u| u.with.iter().map(|(_, e)| e)))
    });
    route.set.iter().map(|(_, e)| e).chain(calls).any(reads)
}

/// Whether any step of `route` calls another service.
pub(crate) fn calls_any(route: &Route) -> bool {
    route
        .steps
        .iter()
        .any(|s| matches!(s.action, StepAction::Call(_)))
}

/// Whether the route reads `$caller`.
pub(super) fn uses_caller(route: &Route) -> bool {
    let reads = |expr: &Expr| matches!(expr, Expr::Caller | Expr::CallerRoles);
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
