//! The crate of a service that owns entities: its CRUD handlers (each change and its event in
//! one transaction, run again when the database refuses it for a passing reason), its router,
//! its migrations and its RPC code.

use super::*;
use steps::StepsOf;

pub(crate) fn entity_service(system: &System, lowered: &ServiceIr) -> TokenStream {
    let service = lowered.model;
    let doc = service_doc(service);
    let constant = service_const(service);
    // Rows are read back only by routes that get, list, change or delete them (a change held
    // to an `If-Match` version reads the row's version first), and by RPCs.
    let reads = |entity: &Entity| {
        service.routes.iter().any(|r| {
            r.entity.value == entity.name.value && r.operation != Operation::Create
        }) || service.rpcs.iter().any(
            |rpc| matches!(&rpc.kind, RpcKind::Get { record } if record.value == entity.name.value),
        )
    };
    // ... and one row by id only by routes that get, change or delete it by `{id}` alone.
    // (Routes that name their row otherwise have finders of their own.)
    let finds = |entity: &Entity| {
        lowered.routes.iter().any(|r| {
            r.entity.name.value == entity.name.value
                && paths::by_id_alone(r)
                && matches!(
                    r.model.operation,
                    Operation::Get | Operation::Update | Operation::Delete
                )
        })
    };
    let entities = service.entities.iter().map(|entity| {
        let items = entity_items(entity, reads(entity), finds(entity));
        let constraints = constraint_items(service, entity);
        quote!(#constraints #items)
    });
    let mut row_imports = TokenStream::new();
    if service.entities.iter().any(reads) {
        row_imports.extend(quote!(DbError, Row,));
    }
    let grpc = crate::render::grpc::Grpc::new(system, lowered);
    let messages = grpc.messages();
    let handlers: Vec<TokenStream> = lowered
        .routes
        .iter()
        .map(|route| {
            if route.model.has_steps() {
                let input = grpc.input_struct(route);
                let handler = grpc.create_handler(route);
                quote!(#input #handler)
            } else {
                handler(system, &grpc, route)
            }
        })
        .collect();
    let rpc_route_handlers = grpc.rpc_routes();
    let mut server_items = TokenStream::new();
    let mut server_route = TokenStream::new();
    for parts in [grpc.server(), grpc.api_server()].into_iter().flatten() {
        server_items.extend(parts.items);
        server_route.extend(parts.routes);
    }
    server_items.extend(grpc.gateway_adapter());
    let conversions = grpc.conversions();
    let rpc_imports = rpc_imports(grpc.uses());
    let mut by_path: BTreeMap<&str, Vec<TokenStream>> = BTreeMap::new();
    for route in &service.routes {
        let method = format_ident!("{}", route.method.as_str().to_ascii_lowercase());
        let handler = handler_name(&service.routes, route);
        by_path
            .entry(route.path.as_str())
            .or_default()
            .push(quote!(#method(#handler)));
    }
    for route in &lowered.rpc_routes {
        let method = format_ident!("{}", route.model.method.as_str().to_ascii_lowercase());
        let handler = format_ident!("{}", route.handler);
        by_path
            .entry(route.model.path.as_str())
            .or_default()
            .push(quote!(#method(#handler)));
    }
    let (custom_items, custom_routes) = custom::items(lowered);
    for (path, call) in custom_routes {
        by_path.entry(path).or_default().push(call);
    }
    let has_custom = !service.custom_routes.is_empty() || service.custom_code().next().is_some();
    let custom_module = has_custom.then(|| {
        quote! {
            /// The code of the routes with `handler: custom`: yours, in `src/custom/`.
            pub mod custom;
        }
    });
    let route_calls = by_path.iter().map(|(path, methods)| {
        let path = lit(path);
        let mut chain = methods.iter();
        let first = chain.next().expect("a path has a route");
        let rest = chain.map(|m| quote!(.#m));
        quote!(.route(#path, routing::#first #(#rest)*))
    });
    // Scripts exist for SQLite and the store's distributed engine only (see `lower`); the
    // other engine's list stays empty, and the runtime refuses to start the service on it.
    let migration = |engine: Engine| {
        let list = lowered.migrations.files.get(&engine).into_iter().flatten();
        let items = list.map(|migration| {
            let path = lit(&format!(
                "../migrations/{}/{}",
                engine.keyword(),
                migration.file_name
            ));
            let version = proc_macro2::Literal::i64_unsuffixed(migration.version);
            let description = lit(&migration.description);
            quote!(Migration {
                version: #version,
                description: #description,
                sql: include_str!(#path)
            })
        });
        quote!(&[#(#items),*])
    };
    // A service without tables of its own lists no migration.
    let migration_import = (!lowered.migration_engines.is_empty()).then(|| quote!(Migration,));
    let sqlite = migration(Engine::Sqlite);
    let postgres = migration(Engine::Postgres);
    let mysql = migration(Engine::Mysql);
    let has = |ops: &[Operation]| service.routes.iter().any(|r| ops.contains(&r.operation));
    let mut http = vec![quote!(ApiResult)];
    if !service.routes.is_empty() || !service.rpc_routes.is_empty() {
        http.push(quote!(Json));
    }
    let parents = lowered
        .routes
        .iter()
        .any(|r| r.params.iter().any(|p| p.parent.is_some()));
    if has(&[Operation::Get, Operation::Update, Operation::Delete]) || parents {
        http.push(quote!(ApiError));
    }
    if lowered.routes.iter().any(paths::by_id_alone) {
        http.push(quote!(IdPath));
    }
    if lowered
        .routes
        .iter()
        .any(|r| !r.params.is_empty() && !paths::by_id_alone(r))
        || lowered.rpc_routes.iter().any(|r| !r.params.is_empty())
    {
        http.push(quote!(PathParams));
    }

    if has(&[Operation::Get, Operation::Update]) || service.routes.iter().any(Route::keeps_existing)
    {
        http.push(quote!(ETag));
    }
    if has(&[Operation::Update, Operation::Delete]) {
        http.push(quote!(IfMatch));
    }
    let mut list_imports = TokenStream::new();
    if has(&[Operation::List]) {
        http.push(quote!(Paginated));
        list_imports.extend(quote!(
            use axum::extract::RawQuery;
            use svcgen_runtime::list::{self, ListRequest};
        ));
    }
    let status = (has(&[Operation::Create, Operation::Delete])
        || service.transport == Transport::Grpc)
        .then(|| {
            quote!(
                use axum::http::StatusCode;
            )
        });
    // The runtime's caller types and `Viewer` the handlers take.
    let (mut signed_in, mut maybe, mut viewer) = (false, false, false);
    for route in &lowered.routes {
        match access::route_caller(route) {
            access::CallerParam::None => {}
            access::CallerParam::Maybe => maybe = true,
            access::CallerParam::Caller | access::CallerParam::Unused => signed_in = true,
        }
        viewer |=
            access::uses_viewer(route.entity, route.model) || paths::parents_need_caller(route);
    }
    signed_in |= service.rpc_routes.iter().any(|r| !r.public);
    let callers: Vec<TokenStream> = [(signed_in, quote!(Caller)), (maybe, quote!(MaybeCaller))]
        .into_iter()
        .filter_map(|(used, name)| used.then_some(name))
        .collect();
    let mut caller = TokenStream::new();
    if !callers.is_empty() {
        caller.extend(quote!(use svcgen_runtime::identity::{#(#callers),*};));
    }
    if viewer {
        caller.extend(quote!(
            use svcgen_runtime::access::Viewer;
        ));
    }
    let (consumer_imports, consumers) = consumers_fn(system, lowered).unwrap_or_default();
    let jobs = consumers::jobs_items(system, lowered);
    let job_routes = jobs
        .is_some()
        .then(|| quote!(.merge(svcgen_runtime::jobs::admin_routes(SERVICE, JOBS))));
    // The routes of the capability it also uses.
    let (capability_imports, capability) = match capability_routes(system, service) {
        Some((imports, routes)) => (imports, quote!(.merge(#routes))),
        None => Default::default(),
    };
    quote! {
        #doc

        use axum::extract::State;
        #status
        use axum::{routing, Router};
        use serde::{Deserialize, Serialize};
        use svcgen_runtime::db::{self, #row_imports #migration_import Migrations};
        use svcgen_runtime::http::{#(#http),*};
        #caller
        #list_imports
        #rpc_imports
        #consumer_imports
        #capability_imports
        use svcgen_runtime::service::ServiceContext;
        use svcgen_runtime::validate::Validator;

        #constant

        #custom_module

        /// This service's schema, one list per engine.
        pub static MIGRATIONS: Migrations = Migrations {
            sqlite: #sqlite,
            postgres: #postgres,
            mysql: #mysql,
        };

        /// This service's routes (the gateway mounts them under its prefix).
        pub fn routes() -> Router<ServiceContext> {
            Router::new() #(#route_calls)* #server_route #capability #job_routes
        }

        #messages

        #(#entities)*

        #(#handlers)*

        #rpc_route_handlers

        #custom_items

        #consumers

        #jobs

        #server_items

        #conversions
    }
}

/// The statement that publishes the route's event built from `row`, if the route emits.
pub(crate) fn emit(system: &System, route: &RouteIr) -> TokenStream {
    let Some(emit) = &route.emit else {
        return TokenStream::new();
    };
    let contracts = ident::crate_ident(&system.name.value, "contracts");
    let ty = rust_type(&emit.event.name.value);
    let fields = emit.sources.iter().map(|(field, column)| {
        let target = rust_ident(&field.name.value);
        let source = rust_ident(&column.name);
        if is_copy(&column.ty) {
            quote!(#target: row.#source,)
        } else {
            quote!(#target: row.#source.clone(),)
        }
    });
    quote! {
        ctx.emit(&mut tx, &#contracts::events::#ty { #(#fields)* }).await?;
    }
}

pub(crate) fn handler(
    system: &System,
    grpc: &crate::render::grpc::Grpc,
    lowered: &RouteIr,
) -> TokenStream {
    let service = grpc.service();
    let (entity, route) = (lowered.entity, lowered.model);
    let names = EntityNames::of(entity);
    let EntityNames {
        model,
        patch,
        table,
        ..
    } = &names;
    let name = handler_name(&service.routes, route);
    let entity_name = &entity.name.value;
    let owned = entity.owner.is_some();
    let mut summary = format!("`{} {}`: ", route.method.as_str(), route.path);
    summary += match route.operation {
        Operation::Create => "creates a",
        Operation::List => "lists (newest first unless sorted) each",
        Operation::Get => "reads one",
        Operation::Update => "changes one",
        Operation::Delete => "deletes one",
    };
    summary += &format!(" `{entity_name}`");
    if owned {
        summary += match (route.operation, &entity.read) {
            (Operation::Create, _) => " owned by the caller",
            (Operation::List, _) if route.mine => " of the caller's",
            (_, Read::Owner) => " of the caller's (another user's is 404)",
            (Operation::List | Operation::Get, Read::All) => "",
            (Operation::List | Operation::Get, Read::If(_)) => {
                " the caller may read (its own, and those others may read)"
            }
            (_, _) => " of the caller's (another user's is 403)",
        };
        if !entity.managers.is_empty() && route.operation != Operation::Create {
            let managers: Vec<String> = entity
                .managers
                .iter()
                .map(|m| format!("`{}`", m.value))
                .collect();
            summary += &format!("; {} manage every row", managers.join(", "));
        }
    }
    if route.operation == Operation::List {
        let named = |names: &[Name]| {
            names
                .iter()
                .map(|n| format!("`{}`", n.value))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !route.filter.is_empty() {
            summary += &format!("; filters on {}", named(&route.filter));
        }
        if !route.sort.is_empty() {
            summary += &format!("; sorts on {}", named(&route.sort));
        }
        if !entity.search.is_empty() {
            summary += &format!("; `q` searches {}", named(&entity.search));
        }
    }
    if route.operation == Operation::Update && !route.set.is_empty() {
        let set: Vec<String> = route
            .set
            .iter()
            .map(|(n, _)| format!("`{}`", n.value))
            .collect();
        summary += &format!("; sets {}", set.join(", "));
        if !route.when.is_empty() {
            let when: Vec<String> = route
                .when
                .iter()
                .map(|(n, _)| format!("`{}`", n.value))
                .collect();
            summary += &format!(
                " when {} hold what the spec says (409 otherwise)",
                when.join(", ")
            );
        }
    }
    if let Some(emit) = &route.emit {
        summary += &format!("; emits `{}`", emit.value);
    }
    summary.push('.');
    let handler_doc = doc(&summary);
    let caller = access::caller_param(lowered);
    let viewer = if route.operation == Operation::Create {
        TokenStream::new()
    } else {
        access::viewer(entity, route)
    };
    let find_fn = rust_joined(&["find", entity_name]);
    let emit = emit(system, lowered);
    let not_found = lit(&format!("{entity_name} not found"));
    let entity_lit = lit(entity_name);
    let path = paths::reads(lowered);
    let path_param = &path.param;
    let path_reads = &path.reads;
    let parent_checks = paths::parent_checks(lowered);
    // An attempt of a change runs on its own transaction and knows the caller as `viewer`.
    let (viewer_param, viewer_arg) = if owned {
        (quote!(, viewer: Viewer), quote!(, viewer))
    } else {
        Default::default()
    };
    // The path's values, as an attempt takes them.
    let key_params: Vec<TokenStream> = path
        .values
        .iter()
        .map(|v| {
            let (ident, ty) = (&v.ident, &v.ty);
            quote!(#ident: #ty,)
        })
        .collect();
    let key_args: Vec<TokenStream> = path
        .values
        .iter()
        .map(|v| {
            let arg = v.arg();
            quote!(#arg,)
        })
        .collect();
    // The row a get, update or delete names: by `{id}` alone through the entity's
    // `find_<entity>`, otherwise through a finder of the route's own.
    let by_id = paths::by_id_alone(lowered);
    let route_find = format_ident!("find_for_{}", name.to_string().trim_start_matches("r#"));
    let finder_needs_viewer = access::find_needs_viewer(entity) || (owned && !route.has_id());
    let finder_viewer = finder_needs_viewer.then(|| quote!(, viewer));
    let find_call = |on: TokenStream| {
        if by_id {
            let viewer = access::find_needs_viewer(entity).then(|| quote!(, viewer));
            quote!(#find_fn(#on, id #viewer))
        } else {
            let args = path.values.iter().map(paths::PathValue::arg);
            quote!(#route_find(#on, #(#args),* #finder_viewer))
        }
    };
    let finder = (!by_id
        && matches!(
            route.operation,
            Operation::Get | Operation::Update | Operation::Delete
        ))
    .then(|| {
        let key = paths::row_key(lowered, 1);
        let mut conditions = key.conditions;
        let mut binds: Vec<TokenStream> = key.values.iter().map(|v| quote!(.bind(#v))).collect();
        if let Some((condition, scope_binds)) = access::condition(
            entity,
            access::Scope::Visible { mine: false },
            binds.len() + 1,
        ) {
            conditions.push(condition);
            binds.extend(scope_binds);
        }
        let statement = lit(&format!("{} WHERE {}", names.select, conditions.join(" AND ")));
        let from_row = &names.from_row;
        let params = key_params.iter();
        let viewer_decl = finder_needs_viewer.then(|| quote!(viewer: Viewer));
        let finder_doc = doc(&format!(
            "Reads the `{entity_name}` that `{} {}` names, if the caller may read it; 404 otherwise.",
            route.method.as_str(),
            route.path
        ));
        quote! {
            #finder_doc
            async fn #route_find(on: impl Into<db::Conn<'_>>, #(#params)* #viewer_decl) -> ApiResult<#model> {
                let row = db::query(#statement)
                    #(#binds)*
                    .fetch_optional(on)
                    .await?
                    .ok_or_else(|| ApiError::not_found(#not_found))?;
                Ok(#from_row(&row)?)
            }
        }
    });
    // Where others may read the row, a change reads it first: a row the caller may not see is
    // a 404, one it sees but may not change a 403.
    let read_current = find_call(quote!(&mut tx));
    let (read_first, expected) =
        if let (true, Some(owner)) = (access::change_reads_first(entity), &entity.owner) {
            let owner = rust_ident(&owner.value);
            (
                quote! {
                    let current = #read_current.await?;
                    viewer.may_change(current.#owner, #entity_lit)?;
                },
                quote!(let expected = if_match.check(current.version, #entity_lit)?;),
            )
        } else {
            (
                TokenStream::new(),
                quote! {
                    let expected = if_match
                        .expected(#entity_lit, async { Ok(#read_current.await?.version) })
                        .await?;
                },
            )
        };
    let writes = write_constraints(entity);
    let deletes = delete_constraints(service, entity);
    // Steps of a route other than `create`: calls of other services for the signed-in caller,
    // before its read or change; a change ends the saga in its own transaction, and a failed
    // one undoes the steps.
    let steps = StepsOf::of(grpc, lowered);
    let (deadline_param, steps_run) = (&steps.deadline_param, &steps.run);
    let (saga_param, saga_arg, saga_succeed) = (&steps.saga_param, &steps.saga_arg, &steps.succeed);

    let body = match route.operation {
        Operation::Create => creates::create_handler(system, lowered, &name, &caller),
        Operation::Get => {
            let find = find_call(quote!(&ctx.db));
            quote! {
                async fn #name(State(ctx): State<ServiceContext>, #caller #deadline_param #path_param) -> ApiResult<(ETag, Json<#model>)> {
                    #path_reads
                    #parent_checks
                    #viewer
                    let row = #find.await?;
                    #steps_run
                    Ok((ETag(row.version), Json(row)))
                }
            }
        }
        Operation::Update => {
            let key = paths::row_key(lowered, 2 + 2 * entity.fields.len());
            let key_values = &key.values;
            let update = lit(&patch_sql(entity, &key.conditions));
            let binds = entity.fields.iter().map(patch_binds);
            let write_binds = access::condition(entity, access::Scope::Write, 0)
                .map(|(_, binds)| binds)
                .unwrap_or_default();
            let read_back = find_call(quote!(&mut tx));
            // An action route: the change is the spec's, the body none.
            // A body is checked before anything runs; a set change once the steps whose
            // answers it may take have run.
            let validate_body = route.set.is_empty().then(|| quote!(input.validate()?;));
            let (body_param, set_input) = if route.set.is_empty() {
                (quote!(Json(input): Json<#patch>), TokenStream::new())
            } else {
                (TokenStream::new(), set_change(grpc, lowered, patch, &steps))
            };
            let settled = steps.settle(quote!(db::retrying(|| attempt(&ctx, #(#key_args)* &if_match, &input #viewer_arg #saga_arg)).await));
            let checked_first = (!route.steps.is_empty())
                .then(|| checked_before_steps(entity, route, &find_call(quote!(&ctx.db))));
            // ... applied only to a row in the state `when` names, and to the version read.
            let (read_first, expected) = if route.when.is_empty() {
                (read_first.clone(), expected.clone())
            } else {
                state_check(entity, route, &read_current)
            };
            quote! {
                async fn #name(State(ctx): State<ServiceContext>, #caller #deadline_param #path_param if_match: IfMatch, #body_param) -> ApiResult<(ETag, Json<#model>)> {
                    /// One attempt: one statement writes only the fields sent, so a concurrent
                    /// change of another column (an RPC's `stock = stock - 1`, say) is never
                    /// undone, and only to the version `If-Match` names; the row is read back
                    /// in the same transaction.
                    async fn attempt(ctx: &ServiceContext, #(#key_params)* if_match: &IfMatch, input: &#patch #viewer_param #saga_param) -> ApiResult<#model> {
                        let mut tx = ctx.begin().await?;
                        #read_first
                        #expected
                        let changed = db::query(#update)
                            #writes
                            .bind(db::now())
                            #(#binds)*
                            #(.bind(#key_values))*
                            #(#write_binds)*
                            .bind(expected)
                            .execute(&mut tx)
                            .await?;
                        if changed == 0 {
                            return Err(IfMatch::nothing_changed(expected, #entity_lit, #not_found));
                        }
                        let row = #read_back.await?;
                        #emit
                        #saga_succeed
                        ctx.commit(tx).await?;
                        Ok(row)
                    }
                    #path_reads
                    #validate_body
                    #parent_checks
                    #viewer
                    #checked_first
                    #steps_run
                    #set_input
                    let row = #settled;
                    Ok((ETag(row.version), Json(row)))
                }
            }
        }
        Operation::Delete => {
            let key = paths::row_key(lowered, 1);
            let key_values = &key.values;
            let (write, write_binds) =
                match access::condition(entity, access::Scope::Write, key.columns.len() + 1) {
                    Some((condition, binds)) => (format!(" AND {condition}"), binds),
                    None => (String::new(), Vec::new()),
                };
            let version = key.columns.len() + 1 + write_binds.len();
            let delete = lit(&format!(
                "DELETE FROM {table} WHERE {}{write} AND (${version} IS NULL OR \"version\" = ${version})",
                key.conditions.join(" AND ")
            ));
            let (doc, read) = if route.emit.is_some() {
                (
                    "One attempt: the event is made from the row as it was, and emitted only by\nthe request whose statement removed it (of two concurrent deletes, one is a\n404), and only at the version `If-Match` names.",
                    // The event is made from the row as it was: it is read first in any case.
                    match (access::change_reads_first(entity), &entity.owner) {
                        (true, Some(owner)) => {
                            let owner = rust_ident(&owner.value);
                            quote! {
                                let row = #read_current.await?;
                                viewer.may_change(row.#owner, #entity_lit)?;
                                let expected = if_match.check(row.version, #entity_lit)?;
                            }
                        }
                        _ => quote! {
                            let row = #read_current.await?;
                            let expected = if_match.check(row.version, #entity_lit)?;
                        },
                    },
                )
            } else {
                (
                    "One attempt: the row goes only at the version `If-Match` names.",
                    quote!(#read_first #expected),
                )
            };
            let doc = super::doc(doc);
            let settled = steps.settle(quote!(db::retrying(|| attempt(&ctx, #(#key_args)* &if_match #viewer_arg #saga_arg)).await));
            let checked_first = (!route.steps.is_empty())
                .then(|| checked_before_steps(entity, route, &find_call(quote!(&ctx.db))));
            quote! {
                async fn #name(State(ctx): State<ServiceContext>, #caller #deadline_param #path_param if_match: IfMatch) -> ApiResult<StatusCode> {
                    #doc
                    async fn attempt(ctx: &ServiceContext, #(#key_params)* if_match: &IfMatch #viewer_param #saga_param) -> ApiResult<()> {
                        let mut tx = ctx.begin().await?;
                        #read
                        let deleted = db::query(#delete) #(.bind(#key_values))* #(#write_binds)* .bind(expected) #deletes .execute(&mut tx).await?;
                        if deleted == 0 {
                            return Err(IfMatch::nothing_changed(expected, #entity_lit, #not_found));
                        }
                        #emit
                        #saga_succeed
                        ctx.commit(tx).await?;
                        Ok(())
                    }
                    #path_reads
                    #parent_checks
                    #viewer
                    #checked_first
                    #steps_run
                    #settled;
                    Ok(StatusCode::NO_CONTENT)
                }
            }
        }
        Operation::List => lists::list_handler(lowered, &name, &caller, &viewer, &steps),
    };
    quote! {
        #handler_doc
        #body

        #finder
    }
}

/// `let input = <Patch> { .. };`, checked: the set change of an action route, as the patch it
/// makes (its values from the spec, the caller, the clock, or the answers of its steps).
fn set_change(
    grpc: &crate::render::grpc::Grpc,
    lowered: &RouteIr,
    patch: &proc_macro2::Ident,
    steps: &StepsOf,
) -> TokenStream {
    let (entity, route) = (lowered.entity, lowered.model);
    let fields = lowered.set.iter().filter_map(|(name, value)| {
        let field = entity.fields.iter().find(|f| f.name.value == name.value)?;
        let ident = rust_ident(&name.value);
        // An answer that may be missing fills an optional field as it is (null when missing).
        if matches!(value.expr, Expr::Path { .. }) && matches!(value.ty, Type::Optional(_)) {
            let value = grpc.plain_value(value, &field.ty);
            return Some(quote!(#ident: Some(#value),));
        }
        let value = match value.expr {
            Expr::Path { .. } => grpc.plain_value(value, field.ty.required()),
            Expr::Caller => quote!(caller.user_id),
            Expr::CallerRoles => quote!(caller.roles.clone()),
            Expr::Id => quote!(id),
            Expr::Now { plus_secs } => now_value(*plus_secs),
            literal => literal_value(literal)?,
        };
        Some(if matches!(field.ty, Type::Optional(_)) {
            quote!(#ident: Some(Some(#value)),)
        } else {
            quote!(#ident: Some(#value),)
        })
    });
    let rest = (route.set.len() < entity.fields.len()).then(|| quote!(..Default::default()));
    if lowered.model.steps.is_empty() {
        return quote! {
            let input = #patch { #(#fields)* #rest };
            input.validate()?;
        };
    }
    // Made from the steps' answers: a value the row refuses undoes the steps.
    let made = steps.settle(quote! {
        async {
            let input = #patch { #(#fields)* #rest };
            input.validate()?;
            Ok::<_, ApiError>(input)
        }
        .await
    });
    quote!(let input = #made;)
}

/// The read of the row an action route changes, refused (409) unless it holds what `when`
/// names, and the change then held to the version read.
fn state_check(entity: &Entity, route: &Route, read: &TokenStream) -> (TokenStream, TokenStream) {
    let entity_lit = lit(&entity.name.value);
    // Each way the row can differ from what `when` names.
    let differs = route.when.iter().map(|(name, expr)| {
        let ident = rust_ident(&name.value);
        match expr {
            Expr::Int(n) => {
                let n = Literal::i64_unsuffixed(*n);
                quote!(current.#ident != #n)
            }
            Expr::Bool(true) => quote!(!current.#ident),
            Expr::Bool(false) => quote!(current.#ident),
            Expr::Text(text) => {
                let text = lit(text);
                quote!(current.#ident != #text)
            }
            _ => quote!(true),
        }
    });
    let state: Vec<String> = route
        .when
        .iter()
        .map(|(name, expr)| {
            let value = match expr {
                Expr::Int(n) => n.to_string(),
                Expr::Bool(b) => b.to_string(),
                Expr::Text(text) => text.clone(),
                _ => String::new(),
            };
            format!("{} must be {value}", name.value)
        })
        .collect();
    let refused = lit(&format!(
        "this {} is not in a state for `{} {}`: {}",
        entity.name.value,
        route.method.as_str(),
        route.path,
        state.join(", ")
    ));
    let may_change = may_change_current(entity);
    (
        quote! {
            let current = #read.await?;
            #may_change
            if #(#differs)||* {
                return Err(ApiError::conflict(#refused));
            }
        },
        quote! {
            if_match.check(current.version, #entity_lit)?;
            let expected = Some(current.version);
        },
    )
}

/// `viewer.may_change(current.<owner>, ..)?` where others may read the row (403 for a row the
/// caller sees but may not change); nothing where only the owner reads it (the read was 404).
fn may_change_current(entity: &Entity) -> TokenStream {
    match (super::access::change_reads_first(entity), &entity.owner) {
        (true, Some(owner)) => {
            let owner = rust_ident(&owner.value);
            let entity_lit = lit(&entity.name.value);
            quote!(viewer.may_change(current.#owner, #entity_lit)?;)
        }
        _ => TokenStream::new(),
    }
}

/// Before the steps of a change run: the row as the change will find it, refused as the change
/// would refuse it (404 unseen, 403 not the caller's to change, 409 in another state, 412 at
/// another version), so that no step runs for a change that cannot apply. The change checks
/// again in its transaction, held to the version read there.
fn checked_before_steps(entity: &Entity, route: &Route, read: &TokenStream) -> TokenStream {
    let entity_lit = lit(&entity.name.value);
    let (current, _) = if route.when.is_empty() {
        let may_change = may_change_current(entity);
        (
            quote! {
                let current = #read.await?;
                #may_change
            },
            TokenStream::new(),
        )
    } else {
        state_check(entity, route, read)
    };
    quote! {
        {
            #current
            if_match.check(current.version, #entity_lit)?;
        }
    }
}

/// The `use` of the runtime's `rpc` items the code names (nothing when it names none).
pub(crate) fn rpc_imports(uses: crate::render::grpc::RpcUses) -> Option<TokenStream> {
    let names: Vec<TokenStream> = [
        (uses.module, quote!(self)),
        (uses.from_proto, quote!(FromProto)),
        (uses.to_proto, quote!(ToProto)),
    ]
    .into_iter()
    .filter_map(|(used, name)| used.then_some(name))
    .collect();
    (!names.is_empty()).then(|| quote!(use svcgen_runtime::rpc::{#(#names),*};))
}
