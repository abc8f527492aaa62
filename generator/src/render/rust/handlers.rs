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
        let handler = handler_name(route);
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
    if has(&[Operation::List]) {
        http.extend([quote!(Cursor), quote!(Page), quote!(Paginated)]);
    }
    let status = (has(&[Operation::Create, Operation::Delete])
        || service.transport == Transport::Grpc)
        .then(|| {
            quote!(
                use axum::http::StatusCode;
            )
        });
    let caller = service.routes.iter().any(|r| !r.public).then(|| {
        quote!(
            use svcgen_runtime::identity::Caller;
        )
    });
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
        from_row,
        table,
        select,
    } = &names;
    let name = handler_name(route);
    let entity_name = &entity.name.value;
    let owned = entity.owner.is_some();
    let owner_ident = entity.owner.as_ref().map(|o| rust_ident(&o.value));
    let owner_column = entity.owner.as_ref().map(|o| sql(&o.value));
    let mut summary = format!("`{} {}`: ", route.method.as_str(), route.path);
    summary += match route.operation {
        Operation::Create => "creates a",
        Operation::List => "lists, newest first, each",
        Operation::Get => "reads one",
        Operation::Update => "changes one",
        Operation::Delete => "deletes one",
    };
    summary += &format!(" `{entity_name}`");
    if owned {
        summary += if route.operation == Operation::Create {
            " owned by the caller"
        } else {
            " of the caller's (another user's is 404)"
        };
    }
    if let Some(emit) = &route.emit {
        summary += &format!("; emits `{}`", emit.value);
    }
    summary.push('.');
    let handler_doc = doc(&summary);
    let caller = if route.public {
        TokenStream::new()
    } else if owned {
        quote!(caller: Caller,)
    } else {
        quote!(_caller: Caller,)
    };
    let find_fn = rust_joined(&["find", entity_name]);
    let emit = emit(system, lowered);
    let not_found = lit(&format!("{entity_name} not found"));
    let entity_lit = lit(entity_name);
    // An attempt of a change runs on its own transaction and knows the owner as `owner`.
    let (owner_param, owner_arg, owner_bind, owner_find) = if owned {
        (
            quote!(, owner: uuid::Uuid),
            quote!(, caller.user_id),
            quote!(.bind(owner)),
            quote!(, owner),
        )
    } else {
        Default::default()
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
                let row = #find_fn(&ctx.db, id #owner_arg).await?;
                Ok((ETag(row.version), Json(row)))
            }
        },
        Operation::Update => {
            let update = lit(&patch_sql(entity));
            let binds = entity.fields.iter().map(patch_binds);
            quote! {
                async fn #name(State(ctx): State<ServiceContext>, #caller IdPath(id): IdPath, if_match: IfMatch, Json(input): Json<#patch>) -> ApiResult<(ETag, Json<#model>)> {
                    /// One attempt: one statement writes only the fields sent, so a concurrent
                    /// change of another column (an RPC's `stock = stock - 1`, say) is never
                    /// undone, and only to the version `If-Match` names; the row is read back
                    /// in the same transaction.
                    async fn attempt(ctx: &ServiceContext, id: uuid::Uuid #owner_param, if_match: &IfMatch, input: &#patch) -> ApiResult<#model> {
                        let mut tx = ctx.begin().await?;
                        let expected = if_match
                            .expected(#entity_lit, async { Ok(#find_fn(&mut tx, id #owner_find).await?.version) })
                            .await?;
                        let changed = db::query(#update)
                            #writes
                            .bind(id)
                            .bind(db::now())
                            #(#binds)*
                            #owner_bind
                            .bind(expected)
                            .execute(&mut tx)
                            .await?;
                        if changed == 0 {
                            return Err(IfMatch::nothing_changed(expected, #entity_lit, #not_found));
                        }
                        let row = #find_fn(&mut tx, id #owner_find).await?;
                        #emit
                        ctx.commit(tx).await?;
                        Ok(row)
                    }
                    input.validate()?;
                    let row = db::retrying(|| attempt(&ctx, id #owner_arg, &if_match, &input)).await?;
                    Ok((ETag(row.version), Json(row)))
                }
            }
        }
        Operation::Delete => {
            let delete = match &owner_column {
                Some(owner) => format!(
                    "DELETE FROM {table} WHERE \"id\" = $1 AND {owner} = $2 AND ($3 IS NULL OR \"version\" = $3)"
                ),
                None => format!(
                    "DELETE FROM {table} WHERE \"id\" = $1 AND ($2 IS NULL OR \"version\" = $2)"
                ),
            };
            let delete = lit(&delete);
            if route.emit.is_some() {
                quote! {
                    async fn #name(State(ctx): State<ServiceContext>, #caller IdPath(id): IdPath, if_match: IfMatch) -> ApiResult<StatusCode> {
                        /// One attempt: the event is made from the row as it was, and emitted
                        /// only by the request whose statement removed it (of two concurrent
                        /// deletes, one is a 404), and only at the version `If-Match` names.
                        async fn attempt(ctx: &ServiceContext, id: uuid::Uuid #owner_param, if_match: &IfMatch) -> ApiResult<()> {
                            let mut tx = ctx.begin().await?;
                            let row = #find_fn(&mut tx, id #owner_find).await?;
                            let expected = if_match.check(row.version, #entity_lit)?;
                            let deleted = db::query(#delete).bind(id) #owner_bind .bind(expected) #deletes .execute(&mut tx).await?;
                            if deleted == 0 {
                                return Err(IfMatch::nothing_changed(expected, #entity_lit, #not_found));
                            }
                            #emit
                            ctx.commit(tx).await?;
                            Ok(())
                        }
                        db::retrying(|| attempt(&ctx, id #owner_arg, &if_match)).await?;
                        Ok(StatusCode::NO_CONTENT)
                    }
                }
            } else {
                quote! {
                    async fn #name(State(ctx): State<ServiceContext>, #caller IdPath(id): IdPath, if_match: IfMatch) -> ApiResult<StatusCode> {
                        /// One attempt: the row goes only at the version `If-Match` names.
                        async fn attempt(ctx: &ServiceContext, id: uuid::Uuid #owner_param, if_match: &IfMatch) -> ApiResult<()> {
                            let mut tx = ctx.begin().await?;
                            let expected = if_match
                                .expected(#entity_lit, async { Ok(#find_fn(&mut tx, id #owner_find).await?.version) })
                                .await?;
                            let deleted = db::query(#delete).bind(id) #owner_bind .bind(expected) #deletes .execute(&mut tx).await?;
                            if deleted == 0 {
                                return Err(IfMatch::nothing_changed(expected, #entity_lit, #not_found));
                            }
                            ctx.commit(tx).await?;
                            Ok(())
                        }
                        db::retrying(|| attempt(&ctx, id #owner_arg, &if_match)).await?;
                        Ok(StatusCode::NO_CONTENT)
                    }
                }
            }
        }
        Operation::List => {
            let order = "ORDER BY \"created_at\" DESC, \"id\" DESC";
            let (first_page, next_page, owner_bind) = match (&owner_column, &owner_ident) {
                (Some(owner), Some(_)) => (
                    format!("{select} WHERE {owner} = $1 {order} LIMIT $2"),
                    format!(
                        "{select} WHERE {owner} = $1 AND (\"created_at\", \"id\") < ($2, $3) {order} LIMIT $4"
                    ),
                    quote!(.bind(caller.user_id)),
                ),
                _ => (
                    format!("{select} {order} LIMIT $1"),
                    format!("{select} WHERE (\"created_at\", \"id\") < ($1, $2) {order} LIMIT $3"),
                    TokenStream::new(),
                ),
            };
            let (first_page, next_page) = (lit(&first_page), lit(&next_page));
            quote! {
                async fn #name(State(ctx): State<ServiceContext>, #caller page: Page) -> ApiResult<Json<Paginated<#model>>> {
                    let query = match &page.after {
                        None => db::query(#first_page) #owner_bind .bind(page.limit),
                        Some(after) => db::query(#next_page) #owner_bind .bind(after.created_at).bind(after.id).bind(page.limit),
                    };
                    let rows = query
                        .fetch_all(&ctx.db)
                        .await?
                        .iter()
                        .map(#from_row)
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Json(Paginated::new(rows, page.limit, |row| Cursor { created_at: row.created_at, id: row.id })))
                }
            }
        }
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
