//! The crate of a service that owns entities: its CRUD handlers (each change and its event in
//! one transaction, run again when the database refuses it for a passing reason), its router,
//! its migrations and its RPC code.

use super::*;

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
    // ... and one row by id only by routes that get, change or delete it.
    let finds = |entity: &Entity| {
        service.routes.iter().any(|r| {
            r.entity.value == entity.name.value
                && matches!(
                    r.operation,
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
            if has_steps(route.model) {
                let input = grpc.input_struct(route);
                let handler = grpc.create_handler(route);
                quote!(#input #handler)
            } else {
                handler(system, service, route)
            }
        })
        .collect();
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
        if !lowered.migration_engines.contains(&engine) {
            return quote!(&[]);
        }
        let path = lit(&format!("../migrations/{}/0001_init.sql", engine.keyword()));
        quote!(&[Migration {
            version: 1,
            description: "init",
            sql: include_str!(#path)
        }])
    };
    let sqlite = migration(Engine::Sqlite);
    let postgres = migration(Engine::Postgres);
    let mysql = migration(Engine::Mysql);
    let has = |ops: &[Operation]| service.routes.iter().any(|r| ops.contains(&r.operation));
    let mut http = vec![quote!(ApiResult)];
    if !service.routes.is_empty() {
        http.push(quote!(Json));
    }
    if has(&[Operation::Get, Operation::Update, Operation::Delete]) {
        http.extend([quote!(ApiError), quote!(IdPath)]);
    }
    if has(&[Operation::Get, Operation::Update]) {
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
        let (entity, route) = (route.entity, route.model);
        match access::caller_of(entity, route) {
            access::CallerParam::None => {}
            access::CallerParam::Maybe => maybe = true,
            access::CallerParam::Caller | access::CallerParam::Unused => signed_in = true,
        }
        viewer |= access::uses_viewer(entity, route);
    }
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
        use svcgen_runtime::db::{self, #row_imports Migration, Migrations};
        use svcgen_runtime::http::{#(#http),*};
        #caller
        #list_imports
        #rpc_imports
        #consumer_imports
        #capability_imports
        use svcgen_runtime::service::ServiceContext;
        use svcgen_runtime::validate::Validator;

        #constant

        /// This service's schema, one list per engine.
        pub static MIGRATIONS: Migrations = Migrations {
            sqlite: #sqlite,
            postgres: #postgres,
            mysql: #mysql,
        };

        /// This service's routes (the gateway mounts them under its prefix).
        pub fn routes() -> Router<ServiceContext> {
            Router::new() #(#route_calls)* #server_route #capability
        }

        #messages

        #(#entities)*

        #(#handlers)*

        #consumers

        #server_items

        #conversions
    }
}

/// Whether a `create` route is backed by steps, its own input or set values.
pub(crate) fn has_steps(route: &Route) -> bool {
    route.operation == Operation::Create
        && (!route.steps.is_empty() || route.input.is_some() || !route.set.is_empty())
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

pub(crate) fn handler(system: &System, service: &Service, lowered: &RouteIr) -> TokenStream {
    let (entity, route) = (lowered.entity, lowered.model);
    let names = EntityNames::of(entity);
    let EntityNames {
        model,
        new,
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
    if let Some(emit) = &route.emit {
        summary += &format!("; emits `{}`", emit.value);
    }
    summary.push('.');
    let handler_doc = doc(&summary);
    let caller = access::caller_param(entity, route);
    let viewer = if route.operation == Operation::Create {
        TokenStream::new()
    } else {
        access::viewer(entity, route)
    };
    let find_fn = rust_joined(&["find", entity_name]);
    let emit = emit(system, lowered);
    let not_found = lit(&format!("{entity_name} not found"));
    let entity_lit = lit(entity_name);
    // An attempt of a change runs on its own transaction and knows the caller as `viewer`.
    let (viewer_param, viewer_arg) = if owned {
        (quote!(, viewer: Viewer), quote!(, viewer))
    } else {
        Default::default()
    };
    let find_viewer = access::find_needs_viewer(entity).then(|| quote!(, viewer));
    // Where others may read the row, a change reads it first: a row the caller may not see is
    // a 404, one it sees but may not change a 403.
    let (read_first, expected) = if let (true, Some(owner)) =
        (access::change_reads_first(entity), &entity.owner)
    {
        let owner = rust_ident(&owner.value);
        (
            quote! {
                let current = #find_fn(&mut tx, id #find_viewer).await?;
                viewer.may_change(current.#owner, #entity_lit)?;
            },
            quote!(let expected = if_match.check(current.version, #entity_lit)?;),
        )
    } else {
        (
            TokenStream::new(),
            quote! {
                let expected = if_match
                    .expected(#entity_lit, async { Ok(#find_fn(&mut tx, id #find_viewer).await?.version) })
                    .await?;
            },
        )
    };
    let columns = entity.columns();
    let writes = write_constraints(entity);
    let deletes = delete_constraints(service, entity);
    let body = match route.operation {
        Operation::Create => {
            let inits = columns.iter().map(|c| {
                let ident = rust_ident(&c.name);
                match c.source {
                    ColumnSource::Id => quote!(#ident: uuid::Uuid::now_v7(),),
                    ColumnSource::Owner => quote!(#ident: caller.user_id,),
                    ColumnSource::Input => {
                        let value = create_value(c, quote!(input.#ident));
                        quote!(#ident: #value,)
                    }
                    ColumnSource::CreatedAt | ColumnSource::UpdatedAt => quote!(#ident: now,),
                    ColumnSource::Version => quote!(#ident: 1,),
                }
            });
            let insert = insert_sql(entity);
            let binds = columns.iter().map(bind);
            if route.emit.is_some() {
                // A change and the event it emits commit together: the event goes to the
                // outbox in the change's transaction.
                quote! {
                    async fn #name(State(ctx): State<ServiceContext>, #caller Json(input): Json<#new>) -> ApiResult<(StatusCode, Json<#model>)> {
                        /// One attempt: the row and its event in one transaction.
                        async fn attempt(ctx: &ServiceContext, row: &#model) -> ApiResult<()> {
                            let mut tx = ctx.begin().await?;
                            db::query(#insert) #(#binds)* #writes .execute(&mut tx).await?;
                            #emit
                            ctx.commit(tx).await?;
                            Ok(())
                        }
                        input.validate()?;
                        let now = db::now();
                        let row = #model { #(#inits)* };
                        db::retrying(|| attempt(&ctx, &row)).await?;
                        Ok((StatusCode::CREATED, Json(row)))
                    }
                }
            } else {
                quote! {
                    async fn #name(State(ctx): State<ServiceContext>, #caller Json(input): Json<#new>) -> ApiResult<(StatusCode, Json<#model>)> {
                        input.validate()?;
                        let now = db::now();
                        let row = #model { #(#inits)* };
                        db::query(#insert) #(#binds)* #writes .execute(&ctx.db).await?;
                        Ok((StatusCode::CREATED, Json(row)))
                    }
                }
            }
        }
        Operation::Get => quote! {
            async fn #name(State(ctx): State<ServiceContext>, #caller IdPath(id): IdPath) -> ApiResult<(ETag, Json<#model>)> {
                #viewer
                let row = #find_fn(&ctx.db, id #find_viewer).await?;
                Ok((ETag(row.version), Json(row)))
            }
        },
        Operation::Update => {
            let update = lit(&patch_sql(entity));
            let binds = entity.fields.iter().map(patch_binds);
            let write_binds = access::condition(entity, access::Scope::Write, 0)
                .map(|(_, binds)| binds)
                .unwrap_or_default();
            quote! {
                async fn #name(State(ctx): State<ServiceContext>, #caller IdPath(id): IdPath, if_match: IfMatch, Json(input): Json<#patch>) -> ApiResult<(ETag, Json<#model>)> {
                    /// One attempt: one statement writes only the fields sent, so a concurrent
                    /// change of another column (an RPC's `stock = stock - 1`, say) is never
                    /// undone, and only to the version `If-Match` names; the row is read back
                    /// in the same transaction.
                    async fn attempt(ctx: &ServiceContext, id: uuid::Uuid #viewer_param, if_match: &IfMatch, input: &#patch) -> ApiResult<#model> {
                        let mut tx = ctx.begin().await?;
                        #read_first
                        #expected
                        let changed = db::query(#update)
                            #writes
                            .bind(id)
                            .bind(db::now())
                            #(#binds)*
                            #(#write_binds)*
                            .bind(expected)
                            .execute(&mut tx)
                            .await?;
                        if changed == 0 {
                            return Err(IfMatch::nothing_changed(expected, #entity_lit, #not_found));
                        }
                        let row = #find_fn(&mut tx, id #find_viewer).await?;
                        #emit
                        ctx.commit(tx).await?;
                        Ok(row)
                    }
                    input.validate()?;
                    #viewer
                    let row = db::retrying(|| attempt(&ctx, id #viewer_arg, &if_match, &input)).await?;
                    Ok((ETag(row.version), Json(row)))
                }
            }
        }
        Operation::Delete => {
            let (write, write_binds) = match access::condition(entity, access::Scope::Write, 2) {
                Some((condition, binds)) => (format!(" AND {condition}"), binds),
                None => (String::new(), Vec::new()),
            };
            let version = 2 + write_binds.len();
            let delete = lit(&format!(
                "DELETE FROM {table} WHERE \"id\" = $1{write} AND (${version} IS NULL OR \"version\" = ${version})"
            ));
            let (doc, read) = if route.emit.is_some() {
                (
                    "One attempt: the event is made from the row as it was, and emitted only by\nthe request whose statement removed it (of two concurrent deletes, one is a\n404), and only at the version `If-Match` names.",
                    // The event is made from the row as it was: it is read first in any case.
                    match (access::change_reads_first(entity), &entity.owner) {
                        (true, Some(owner)) => {
                            let owner = rust_ident(&owner.value);
                            quote! {
                                let row = #find_fn(&mut tx, id #find_viewer).await?;
                                viewer.may_change(row.#owner, #entity_lit)?;
                                let expected = if_match.check(row.version, #entity_lit)?;
                            }
                        }
                        _ => quote! {
                            let row = #find_fn(&mut tx, id #find_viewer).await?;
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
            quote! {
                async fn #name(State(ctx): State<ServiceContext>, #caller IdPath(id): IdPath, if_match: IfMatch) -> ApiResult<StatusCode> {
                    #doc
                    async fn attempt(ctx: &ServiceContext, id: uuid::Uuid #viewer_param, if_match: &IfMatch) -> ApiResult<()> {
                        let mut tx = ctx.begin().await?;
                        #read
                        let deleted = db::query(#delete).bind(id) #(#write_binds)* .bind(expected) #deletes .execute(&mut tx).await?;
                        if deleted == 0 {
                            return Err(IfMatch::nothing_changed(expected, #entity_lit, #not_found));
                        }
                        #emit
                        ctx.commit(tx).await?;
                        Ok(())
                    }
                    #viewer
                    db::retrying(|| attempt(&ctx, id #viewer_arg, &if_match)).await?;
                    Ok(StatusCode::NO_CONTENT)
                }
            }
        }
        Operation::List => lists::list_handler(entity, route, &name, &caller, &viewer),
    };
    quote! {
        #handler_doc
        #body
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
