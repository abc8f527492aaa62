//! Rust sources of the generated workspace, written with `quote!`. Generated code is thin: typed
//! models, validated handlers and SQL; the machinery lives in `svcgen-runtime`.

use crate::ident::{self, handler_name, rust_ident, rust_joined, rust_type, sql};
use crate::lower::{RouteIr, ServiceIr};
use crate::model::*;
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use std::collections::BTreeMap;

/// The Rust type of a field.
pub(super) fn rust_field_type(ty: &Type) -> TokenStream {
    match ty {
        Type::String { .. } | Type::Text | Type::Email => quote!(String),
        Type::Int => quote!(i64),
        Type::Bool => quote!(bool),
        Type::Uuid => quote!(uuid::Uuid),
        Type::Timestamp => quote!(chrono::DateTime<chrono::Utc>),
        Type::List(inner) => {
            let inner = rust_field_type(inner);
            quote!(Vec<#inner>)
        }
        Type::Optional(inner) => {
            let inner = rust_field_type(inner);
            quote!(Option<#inner>)
        }
        Type::Message(name) => {
            let ty = rust_type(name);
            quote!(#ty)
        }
    }
}

/// Whether a value of this type is `Copy` (bound without `.clone()`).
pub(super) fn is_copy(ty: &Type) -> bool {
    match ty {
        Type::Int | Type::Bool | Type::Uuid | Type::Timestamp => true,
        Type::Optional(inner) => is_copy(inner),
        _ => false,
    }
}

/// Whether a column is stored as JSON (lists).
pub(super) fn is_json(ty: &Type) -> bool {
    matches!(ty.required(), Type::List(_) | Type::Message(_))
}

pub(super) fn doc(text: &str) -> TokenStream {
    let lines: Vec<String> = text.lines().map(|l| format!(" {}", l.trim_end())).collect();
    quote!(#(#[doc = #lines])*)
}

/// Inner doc comments (`//!`) for a crate.
fn inner_doc(text: &str) -> TokenStream {
    let lines: Vec<String> = text
        .trim()
        .lines()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                format!(" {}", l.trim_end())
            }
        })
        .collect();
    quote!(#(#![doc = #lines])*)
}

fn doc_opt(text: Option<&String>, fallback: &str) -> TokenStream {
    doc(text.map_or(fallback, String::as_str))
}

pub(super) fn lit(text: &str) -> Literal {
    Literal::string(text)
}

/// The contracts crate: one struct per event.
pub fn contracts(system: &System) -> TokenStream {
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

/// A service crate's `lib.rs`.
pub fn service(system: &System, lowered: &ServiceIr) -> TokenStream {
    let service = lowered.model;
    match service.uses {
        Some(Capability::Auth) => auth_service(system, lowered),
        Some(Capability::Notify) => notify_service(system, lowered),
        None => entity_service(system, lowered),
    }
}

fn service_doc(service: &Service) -> TokenStream {
    inner_doc(&format!(
        "The `{}` service. {}",
        service.name.value,
        service.description.as_deref().unwrap_or("")
    ))
}

fn service_const(service: &Service) -> TokenStream {
    let name = lit(&service.name.value);
    quote! {
        /// This service's name: its queue names, log field and internal-token audience.
        pub const SERVICE: &str = #name;
    }
}

fn auth_service(system: &System, lowered: &ServiceIr) -> TokenStream {
    let service = lowered.model;
    let doc = service_doc(service);
    let constant = service_const(service);
    let contracts = ident::crate_ident(&system.name.value, "contracts");
    let event = |name: &Option<Name>| match name {
        Some(name) => {
            let ty = rust_type(&name.value);
            quote!(Some(#contracts::events::#ty::NAME))
        }
        None => quote!(None),
    };
    let registered = event(&service.auth_emit.registered);
    let logged_in = event(&service.auth_emit.logged_in);
    let password_reset = event(&service.auth_emit.password_reset);
    let event_trait = service.auth_emit.events().next().is_some().then(|| {
        quote!(
            use svcgen_runtime::bus::Event as _;
        )
    });
    let grpc = super::grpc::Grpc::new(system, lowered);
    let server = grpc.server();
    let (server_items, server_route) = match &server {
        Some(parts) => (parts.items.clone(), parts.routes.clone()),
        None => (TokenStream::new(), TokenStream::new()),
    };
    let rpc_imports = server.is_some().then(|| {
        quote!(
            use axum::extract::State;
            use axum::routing;
            use svcgen_runtime::rpc::{self, FromProto, ToProto};
        )
    });
    quote! {
        #doc

        use axum::Router;
        #rpc_imports
        #event_trait
        use svcgen_runtime::capability::auth::{self, AuthEvents};
        use svcgen_runtime::service::ServiceContext;

        #constant

        /// Tables of the `auth` capability.
        pub use svcgen_runtime::capability::auth::MIGRATIONS;

        /// The `auth` capability's routes (and this service's RPCs).
        pub fn routes() -> Router<ServiceContext> {
            auth::routes(AuthEvents {
                registered: #registered,
                logged_in: #logged_in,
                password_reset: #password_reset,
            })
            #server_route
        }

        #server_items
    }
}

fn notify_service(system: &System, lowered: &ServiceIr) -> TokenStream {
    let service = lowered.model;
    let doc = service_doc(service);
    let constant = service_const(service);
    let contracts = ident::crate_ident(&system.name.value, "contracts");
    let subscriptions = lowered.consumers.iter().map(|lowered| {
        let (consumer, event) = (lowered.model, lowered.event);
        let ty = rust_type(&event.name.value);
        let Action::Notify { to, kind, message } = &consumer.action;
        let kind = lit(&kind.value);
        let attempts = Literal::u32_unsuffixed(consumer.attempts);
        let critical = consumer.critical;
        let (format, arguments) = message_format(&message.value);
        let arguments = arguments.iter().map(|a| rust_ident(a));
        let arguments: Vec<_> = arguments.collect();
        let message_expr = match arguments.as_slice() {
            [] => {
                let text = lit(&format.replace("{{", "{").replace("}}", "}"));
                quote!(#text)
            }
            // The message is one field as it is.
            [only] if format == "{}" => quote!(&event.#only.to_string()),
            _ => {
                let format = lit(&format);
                quote!(&format!(#format, #(event.#arguments),*))
            }
        };
        let store = match to {
            Recipient::User(user) => {
                let user = rust_ident(&user.value);
                quote!(notify::notify(&mut tx, envelope.id, event.#user, #kind, #message_expr).await?;)
            }
            Recipient::Role(role) => {
                let role = lit(&role.value);
                quote!(notify::notify_role(&mut tx, envelope.id, #role, #kind, #message_expr).await?;)
            }
        };
        quote! {
            ctx.subscribe::<#contracts::events::#ty, _, _>(
                RetryPolicy { attempts: #attempts, ..RetryPolicy::default() },
                #critical,
                |envelope, event, mut tx| async move {
                    #store
                    Ok(tx)
                },
            )
            .await?;
        }
    });
    quote! {
        #doc

        use axum::Router;
        use svcgen_runtime::bus::RetryPolicy;
        use svcgen_runtime::capability::notify;
        use svcgen_runtime::events::EventError;
        use svcgen_runtime::service::ServiceContext;
        use svcgen_runtime::BoxFuture;

        #constant

        /// Tables of the `notify` capability.
        pub use svcgen_runtime::capability::notify::MIGRATIONS;

        /// `GET /notifications`: the caller's notifications, newest first.
        pub fn routes() -> Router<ServiceContext> {
            notify::routes()
        }

        /// Subscribes this service's consumers to their events.
        pub fn consumers(ctx: &ServiceContext) -> BoxFuture<'_, Result<(), EventError>> {
            Box::pin(async move {
                #(#subscriptions)*
                Ok(())
            })
        }
    }
}

/// A `format!` string and its arguments for a message with `{field}` placeholders.
pub(super) fn message_format(message: &str) -> (String, Vec<String>) {
    let mut format = String::new();
    let mut arguments = Vec::new();
    let mut rest = message;
    while let Some(open) = rest.find('{') {
        format.push_str(&rest[..open].replace('}', "}}"));
        match rest[open + 1..].find('}') {
            Some(close) => {
                arguments.push(rest[open + 1..open + 1 + close].trim().to_string());
                format.push_str("{}");
                rest = &rest[open + 2 + close..];
            }
            None => {
                format.push_str("{{");
                rest = &rest[open + 1..];
            }
        }
    }
    format.push_str(&rest.replace('}', "}}"));
    (format, arguments)
}

/// Names used for one entity's generated items.
struct EntityNames {
    model: proc_macro2::Ident,
    new: proc_macro2::Ident,
    patch: proc_macro2::Ident,
    from_row: proc_macro2::Ident,
    table: String,
    select: String,
}

impl EntityNames {
    fn of(entity: &Entity) -> Self {
        let name = &entity.name.value;
        let columns: Vec<String> = entity.columns().iter().map(|c| sql(&c.name)).collect();
        Self {
            model: rust_type(name),
            new: format_ident!("New{}", rust_type(name)),
            patch: format_ident!("{}Patch", rust_type(name)),
            from_row: rust_joined(&[name, "from_row"]),
            table: sql(name),
            select: format!("SELECT {} FROM {}", columns.join(", "), sql(name)),
        }
    }
}

fn entity_service(system: &System, lowered: &ServiceIr) -> TokenStream {
    let service = lowered.model;
    let doc = service_doc(service);
    let constant = service_const(service);
    // Rows are read back only by routes that get, list, change or delete them, and by RPCs.
    let reads = |entity: &Entity| {
        service
            .routes
            .iter()
            .any(|r| r.entity.value == entity.name.value && r.operation != Operation::Create)
            || service.rpcs.iter().any(|rpc| {
                matches!(&rpc.kind, RpcKind::Get { record } if record.value == entity.name.value)
            })
    };
    // ... and one row by id only by routes that get or change it, or delete it and emit an
    // event made from it.
    let finds = |entity: &Entity| {
        service.routes.iter().any(|r| {
            r.entity.value == entity.name.value
                && match r.operation {
                    Operation::Get | Operation::Update => true,
                    Operation::Delete => r.emit.is_some(),
                    Operation::Create | Operation::List => false,
                }
        })
    };
    let entities = service
        .entities
        .iter()
        .map(|entity| entity_items(entity, reads(entity), finds(entity)));
    let mut row_imports = TokenStream::new();
    if service.entities.iter().any(reads) {
        row_imports.extend(quote!(DbError, Row,));
    }
    let grpc = super::grpc::Grpc::new(system, lowered);
    let messages = grpc.messages();
    let handlers: Vec<TokenStream> = lowered
        .routes
        .iter()
        .map(|route| {
            if has_steps(route.model) {
                let input = grpc.input_struct(route.model);
                let handler = grpc.create_handler(route);
                quote!(#input #handler)
            } else {
                handler(system, route)
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
    let generated = quote!(#(#handlers)* #server_items #conversions).to_string();
    let rpc_imports = {
        let mut names = vec![quote!(self)];
        if generated.contains("FromProto") {
            names.push(quote!(FromProto));
        }
        if generated.contains("ToProto") {
            names.push(quote!(ToProto));
        }
        generated
            .contains("rpc ::")
            .then(|| quote!(use svcgen_runtime::rpc::{#(#names),*};))
    };
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
            Router::new() #(#route_calls)* #server_route
        }

        #messages

        #(#entities)*

        #(#handlers)*

        #server_items

        #conversions
    }
}

/// Whether a `create` route is backed by steps, its own input or set values.
pub(crate) fn has_steps(route: &Route) -> bool {
    route.operation == Operation::Create
        && (!route.steps.is_empty() || route.input.is_some() || !route.set.is_empty())
}

/// Model, request bodies, validation and SQL helpers of one entity.
fn entity_items(entity: &Entity, read_back: bool, finds_one: bool) -> TokenStream {
    let names = EntityNames::of(entity);
    let EntityNames {
        model,
        new,
        patch,
        from_row: from_row_fn,
        ..
    } = &names;
    let columns = entity.columns();
    let entity_name = &entity.name.value;
    let model_doc = doc_opt(entity.description.as_ref(), &format!("A `{entity_name}`."));
    let model_fields = columns.iter().map(|c| {
        let ident = rust_ident(&c.name);
        let ty = rust_field_type(&c.ty);
        let text = match c.source {
            ColumnSource::Id => "Identifier (UUIDv7, made by the service).".to_string(),
            ColumnSource::Owner => "The user this row belongs to.".to_string(),
            ColumnSource::Input => format!("`{}`: {}.", c.name, c.ty.spec_text()),
            ColumnSource::CreatedAt => "When the row was created.".to_string(),
            ColumnSource::UpdatedAt => "When the row was last changed.".to_string(),
        };
        let field_doc = doc(&text);
        quote!(#field_doc pub #ident: #ty,)
    });
    let inputs: Vec<&Field> = entity.fields.iter().collect();
    let new_fields = inputs.iter().map(|f| {
        let ident = rust_ident(&f.name.value);
        let ty = rust_field_type(&f.ty);
        let field_doc = doc(&format!("`{}`: {}.", f.name.value, f.ty.spec_text()));
        let default = matches!(f.ty, Type::Optional(_)).then(|| quote!(#[serde(default)]));
        quote!(#field_doc #default pub #ident: #ty,)
    });
    let patch_fields = inputs.iter().map(|f| {
        let ident = rust_ident(&f.name.value);
        let ty = rust_field_type(&f.ty);
        let field_doc = doc(&format!("New `{}`, when sent.", f.name.value));
        if matches!(f.ty, Type::Optional(_)) {
            quote!(#field_doc #[serde(default, deserialize_with = "svcgen_runtime::validate::nullable")] pub #ident: Option<#ty>,)
        } else {
            quote!(#field_doc pub #ident: Option<#ty>,)
        }
    });
    let new_checks = field_checks(inputs.iter().copied());
    let patch_checks: Vec<TokenStream> = inputs
        .iter()
        .filter_map(|f| {
            let ident = rust_ident(&f.name.value);
            // A nullable field of a patch is `Option<Option<T>>`: only a sent value is checked.
            let (pattern, ty) = match &f.ty {
                Type::Optional(inner) => (quote!(Some(Some(value))), inner.as_ref()),
                other => (quote!(Some(value)), other),
            };
            let inner = validation(&f.name.value, ty, quote!(value));
            (!inner.is_empty()).then(|| quote!(if let #pattern = &self.#ident { #inner }))
        })
        .collect();
    let checker = |checks: &[TokenStream]| {
        if checks.is_empty() {
            quote!(let check = Validator::new();)
        } else {
            quote!(let mut check = Validator::new();)
        }
    };
    let (new_checker, patch_checker) = (checker(&new_checks), checker(&patch_checks));
    let row_fields = columns.iter().map(|c| {
        let ident = rust_ident(&c.name);
        let column = lit(&c.name);
        if is_json(&c.ty) {
            quote!(#ident: row.get_json(#column)?,)
        } else {
            quote!(#ident: row.get(#column)?,)
        }
    });
    let new_doc = doc(&format!(
        "The body of a request that creates a `{entity_name}`."
    ));
    let patch_doc = doc(&format!(
        "The body of a request that changes a `{entity_name}`: absent fields stay as they are."
    ));
    let from_row_doc = doc(&format!(
        "Reads a `{entity_name}` from a row of `{}`.",
        names.select
    ));
    let from_row = read_back.then(|| {
        quote! {
            #from_row_doc
            fn #from_row_fn(row: &Row) -> Result<#model, DbError> {
                Ok(#model { #(#row_fields)* })
            }
        }
    });
    let find = finds_one.then(|| {
        let find_fn = rust_joined(&["find", entity_name]);
        let not_found = lit(&format!("{entity_name} not found"));
        let (owner_param, by_owner, owner_bind, whose) = match &entity.owner {
            Some(owner) => (
                quote!(, owner: uuid::Uuid),
                format!(" AND {} = $2", sql(&owner.value)),
                quote!(.bind(owner)),
                " that belongs to `owner` (another user's is a 404 too, so ids leak nothing)",
            ),
            None => (TokenStream::new(), String::new(), TokenStream::new(), ""),
        };
        let sql_text = lit(&format!("{} WHERE \"id\" = $1{by_owner}", names.select));
        let find_doc = doc(&format!(
            "Reads the `{entity_name}` with this id{whose}; 404 when there is none."
        ));
        quote! {
            #find_doc
            async fn #find_fn(on: impl Into<db::Conn<'_>>, id: uuid::Uuid #owner_param) -> ApiResult<#model> {
                let row = db::query(#sql_text)
                    .bind(id)
                    #owner_bind
                    .fetch_optional(on)
                    .await?
                    .ok_or_else(|| ApiError::not_found(#not_found))?;
                Ok(#from_row_fn(&row)?)
            }
        }
    });
    quote! {
        #model_doc
        #[derive(Debug, Clone, Serialize)]
        pub struct #model { #(#model_fields)* }

        #new_doc
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct #new { #(#new_fields)* }

        impl #new {
            /// Checks the spec's constraints; a violation is a 400 naming every problem.
            pub fn validate(&self) -> ApiResult<()> {
                #new_checker
                #(#new_checks)*
                check.finish()
            }
        }

        #patch_doc
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct #patch { #(#patch_fields)* }

        impl #patch {
            /// Checks the spec's constraints on the fields sent.
            pub fn validate(&self) -> ApiResult<()> {
                #patch_checker
                #(#patch_checks)*
                check.finish()
            }

        }

        #from_row

        #find
    }
}

/// The validation statements of `fields` of a struct (`&self.<field>` each), leaving out the
/// fields that have nothing to check.
pub(super) fn field_checks<'f>(fields: impl IntoIterator<Item = &'f Field>) -> Vec<TokenStream> {
    fields
        .into_iter()
        .map(|f| {
            let ident = rust_ident(&f.name.value);
            validation(&f.name.value, &f.ty, quote!(&self.#ident))
        })
        .filter(|checks| !checks.is_empty())
        .collect()
}

/// Validation statements for one field, given an expression of type `&T`.
pub(super) fn validation(name: &str, ty: &Type, value: TokenStream) -> TokenStream {
    let field = lit(name);
    let bound = |b: Option<u32>| match b {
        Some(n) => {
            let n = Literal::usize_unsuffixed(n as usize);
            quote!(Some(#n))
        }
        None => quote!(None),
    };
    match ty {
        Type::String { min, max } if min.is_some() || max.is_some() => {
            let (min, max) = (bound(*min), bound(*max));
            quote!(check.length(#field, #value, #min, #max);)
        }
        Type::Email => quote!(check.email(#field, #value);),
        Type::Optional(inner) => {
            let inner = validation(name, inner, quote!(value));
            if inner.is_empty() {
                inner
            } else {
                quote!(if let Some(value) = #value { #inner })
            }
        }
        Type::List(inner) => {
            let inner = validation(name, inner, quote!(value));
            if inner.is_empty() {
                inner
            } else {
                quote!(for value in #value { #inner })
            }
        }
        Type::Message(_) => quote!(check = (#value).check(check);),
        _ => TokenStream::new(),
    }
}

/// A `.bind(..)` call for a column of a row held in `row`.
pub(super) fn bind(column: &Column) -> TokenStream {
    let ident = rust_ident(&column.name);
    if is_json(&column.ty) {
        quote!(.bind_json(&row.#ident))
    } else if is_copy(&column.ty) {
        quote!(.bind(row.#ident))
    } else {
        quote!(.bind(row.#ident.clone()))
    }
}

/// The statement of a PATCH: `$1` the id, `$2` the change time, then per declared field a flag
/// (was it sent?) and its value, then the owner when rows are owned. A field not sent keeps the
/// value the row has when the statement runs, never one read earlier.
pub(super) fn patch_sql(entity: &Entity) -> String {
    let mut sets: Vec<String> = entity
        .fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let column = sql(&field.name.value);
            let (flag, value) = (3 + 2 * i, 4 + 2 * i);
            format!("{column} = CASE WHEN ${flag} THEN ${value} ELSE {column} END")
        })
        .collect();
    sets.push("\"updated_at\" = $2".into());
    let mut statement = format!(
        "UPDATE {} SET {} WHERE \"id\" = $1",
        sql(&entity.name.value),
        sets.join(", ")
    );
    if let Some(owner) = &entity.owner {
        let position = 3 + 2 * entity.fields.len();
        statement += &format!(" AND {} = ${position}", sql(&owner.value));
    }
    statement
}

/// The two arguments of one field in [`patch_sql`]: whether `input` has it, and its value
/// (`NULL` when not sent, or sent as `null`).
fn patch_binds(field: &Field) -> TokenStream {
    let ident = rust_ident(&field.name.value);
    let sent = quote!(.bind(input.#ident.is_some()));
    let value = match &field.ty {
        // A nullable field of a patch is `Option<Option<T>>`.
        Type::Optional(inner) if is_json(inner) => {
            quote!(.bind_json(&input.#ident.as_ref().and_then(Option::as_ref)))
        }
        Type::Optional(inner) if is_copy(inner) => quote!(.bind(input.#ident.flatten())),
        Type::Optional(_) => quote!(.bind(input.#ident.clone().flatten())),
        ty if is_json(ty) => quote!(.bind_json(&input.#ident)),
        ty if is_copy(ty) => quote!(.bind(input.#ident)),
        _ => quote!(.bind(input.#ident.clone())),
    };
    quote!(#sent #value)
}

/// The statement that inserts a row of `entity`, every column bound in table order.
pub(super) fn insert_sql(entity: &Entity) -> Literal {
    let columns = entity.columns();
    lit(&format!(
        "INSERT INTO {} ({}) VALUES ({})",
        sql(&entity.name.value),
        columns
            .iter()
            .map(|c| sql(&c.name))
            .collect::<Vec<_>>()
            .join(", "),
        placeholders_from(1, columns.len())
    ))
}

/// `$1, $2, ...` from `first`.
pub(super) fn placeholders_from(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statement that publishes the route's event built from `row`, if the route emits.
pub(super) fn emit(system: &System, route: &RouteIr) -> TokenStream {
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

fn handler(system: &System, lowered: &RouteIr) -> TokenStream {
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
    let body = match route.operation {
        Operation::Create => {
            let inits = columns.iter().map(|c| {
                let ident = rust_ident(&c.name);
                match c.source {
                    ColumnSource::Id => quote!(#ident: uuid::Uuid::now_v7(),),
                    ColumnSource::Owner => quote!(#ident: caller.user_id,),
                    ColumnSource::Input => quote!(#ident: input.#ident,),
                    ColumnSource::CreatedAt | ColumnSource::UpdatedAt => quote!(#ident: now,),
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
                            db::query(#insert) #(#binds)* .execute(&mut tx).await?;
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
                        db::query(#insert) #(#binds)* .execute(&ctx.db).await?;
                        Ok((StatusCode::CREATED, Json(row)))
                    }
                }
            }
        }
        Operation::Get => quote! {
            async fn #name(State(ctx): State<ServiceContext>, #caller IdPath(id): IdPath) -> ApiResult<Json<#model>> {
                let row = #find_fn(&ctx.db, id #owner_arg).await?;
                Ok(Json(row))
            }
        },
        Operation::Update => {
            let update = lit(&patch_sql(entity));
            let binds = entity.fields.iter().map(patch_binds);
            quote! {
                async fn #name(State(ctx): State<ServiceContext>, #caller IdPath(id): IdPath, Json(input): Json<#patch>) -> ApiResult<Json<#model>> {
                    /// One attempt: one statement writes only the fields sent, so a concurrent
                    /// change of another column (an RPC's `stock = stock - 1`, say) is never
                    /// undone; the row is read back in the same transaction.
                    async fn attempt(ctx: &ServiceContext, id: uuid::Uuid #owner_param, input: &#patch) -> ApiResult<#model> {
                        let mut tx = ctx.begin().await?;
                        let changed = db::query(#update)
                            .bind(id)
                            .bind(db::now())
                            #(#binds)*
                            #owner_bind
                            .execute(&mut tx)
                            .await?;
                        if changed == 0 {
                            return Err(ApiError::not_found(#not_found));
                        }
                        let row = #find_fn(&mut tx, id #owner_find).await?;
                        #emit
                        ctx.commit(tx).await?;
                        Ok(row)
                    }
                    input.validate()?;
                    let row = db::retrying(|| attempt(&ctx, id #owner_arg, &input)).await?;
                    Ok(Json(row))
                }
            }
        }
        Operation::Delete => {
            let delete = match &owner_column {
                Some(owner) => format!("DELETE FROM {table} WHERE \"id\" = $1 AND {owner} = $2"),
                None => format!("DELETE FROM {table} WHERE \"id\" = $1"),
            };
            let delete = lit(&delete);
            if route.emit.is_some() {
                quote! {
                    async fn #name(State(ctx): State<ServiceContext>, #caller IdPath(id): IdPath) -> ApiResult<StatusCode> {
                        /// One attempt: the event is made from the row as it was, and emitted
                        /// only by the request whose statement removed it (of two concurrent
                        /// deletes, one is a 404).
                        async fn attempt(ctx: &ServiceContext, id: uuid::Uuid #owner_param) -> ApiResult<()> {
                            let mut tx = ctx.begin().await?;
                            let row = #find_fn(&mut tx, id #owner_find).await?;
                            let deleted = db::query(#delete).bind(id) #owner_bind .execute(&mut tx).await?;
                            if deleted == 0 {
                                return Err(ApiError::not_found(#not_found));
                            }
                            #emit
                            ctx.commit(tx).await?;
                            Ok(())
                        }
                        db::retrying(|| attempt(&ctx, id #owner_arg)).await?;
                        Ok(StatusCode::NO_CONTENT)
                    }
                }
            } else {
                let owner_bind = owned.then(|| quote!(.bind(caller.user_id)));
                quote! {
                    async fn #name(State(ctx): State<ServiceContext>, #caller IdPath(id): IdPath) -> ApiResult<StatusCode> {
                        let deleted = db::query(#delete).bind(id) #owner_bind .execute(&ctx.db).await?;
                        if deleted == 0 {
                            return Err(ApiError::not_found(#not_found));
                        }
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

/// The system crate's `main.rs`: the system's definition and the one binary.
/// A rate limit as a constant expression.
fn rate(requests: u32, per_secs: u64) -> TokenStream {
    let requests = Literal::u32_unsuffixed(requests);
    match per_secs {
        1 => quote!(RateLimit::per_second(#requests)),
        60 => quote!(RateLimit::per_minute(#requests)),
        3600 => quote!(RateLimit::per_hour(#requests)),
        _ => {
            let per_secs = Literal::u64_unsuffixed(per_secs);
            quote!(RateLimit { requests: #requests, per_secs: #per_secs })
        }
    }
}

/// `Option<RateLimit>` of the gateway: `Default` keeps the runtime's default.
fn gateway_limit(limit: Limit, default: TokenStream) -> TokenStream {
    match limit {
        Limit::Default => default,
        Limit::Off => quote!(None),
        Limit::Rate { requests, per_secs } => {
            let rate = rate(requests, per_secs);
            quote!(Some(#rate))
        }
    }
}

fn optional_u64(value: Option<u64>) -> TokenStream {
    match value {
        Some(n) => {
            let n = Literal::u64_unsuffixed(n);
            quote!(Some(#n))
        }
        None => quote!(None),
    }
}

/// A route's policy; `RoutePolicy::DEFAULT` when it changes nothing.
fn route_policy(limits: &crate::validate::RouteLimits) -> TokenStream {
    if *limits == crate::validate::RouteLimits::default() {
        return quote!(RoutePolicy::DEFAULT);
    }
    let limit = |limit: Limit| match limit {
        Limit::Default => quote!(RouteRateLimit::Inherit),
        Limit::Off => quote!(RouteRateLimit::Off),
        Limit::Rate { requests, per_secs } => {
            let rate = rate(requests, per_secs);
            quote!(RouteRateLimit::Limit(#rate))
        }
    };
    let (per_ip, per_user) = (limit(limits.per_ip), limit(limits.per_user));
    let (body, timeout) = (
        optional_u64(limits.body_limit),
        optional_u64(limits.timeout_ms),
    );
    quote!(RoutePolicy { per_ip: #per_ip, per_user: #per_user, body_limit_bytes: #body, timeout_ms: #timeout })
}

/// The gateway's policy; `GatewayPolicy::DEFAULT` when the spec changes nothing.
fn gateway_policy(gateway: &Gateway) -> TokenStream {
    let defaults = gateway.cors.is_none()
        && gateway.body_limit.is_none()
        && gateway.timeout_ms.is_none()
        && [gateway.per_ip, gateway.per_user, gateway.credentials]
            .iter()
            .all(|l| *l == Limit::Default);
    if defaults {
        return quote!(GatewayPolicy::DEFAULT);
    }
    let cors = match &gateway.cors {
        None => quote!(Cors::DISABLED),
        Some(cors) => {
            let list = |items: &[String]| {
                let items = items.iter().map(|i| lit(i));
                quote!(&[#(#items),*])
            };
            let (origins, methods, headers) = (
                list(&cors.origins),
                list(&cors.methods),
                list(&cors.headers),
            );
            let credentials = cors.credentials;
            let max_age = Literal::u64_unsuffixed(cors.max_age_secs);
            quote!(Cors { allowed_origins: #origins, allowed_methods: #methods, allowed_headers: #headers, allow_credentials: #credentials, max_age_secs: #max_age })
        }
    };
    let body = gateway
        .body_limit
        .map_or(quote!(GatewayPolicy::DEFAULT.body_limit_bytes), |n| {
            let n = Literal::u64_unsuffixed(n);
            quote!(#n)
        });
    let timeout = gateway
        .timeout_ms
        .map_or(quote!(GatewayPolicy::DEFAULT.timeout_ms), |n| {
            let n = Literal::u64_unsuffixed(n);
            quote!(#n)
        });
    let per_ip = gateway_limit(gateway.per_ip, quote!(GatewayPolicy::DEFAULT.per_ip));
    let per_user = gateway_limit(gateway.per_user, quote!(GatewayPolicy::DEFAULT.per_user));
    let credentials = gateway_limit(
        gateway.credentials,
        quote!(GatewayPolicy::DEFAULT.credential_per_ip),
    );
    quote!(GatewayPolicy { cors: #cors, body_limit_bytes: #body, timeout_ms: #timeout, per_ip: #per_ip, per_user: #per_user, credential_per_ip: #credentials })
}

pub fn system_main(system: &System) -> TokenStream {
    let gateway = gateway_policy(&system.gateway);
    let name = lit(&system.name.value);
    let port = Literal::u16_unsuffixed(system.gateway.port);
    let prefix = lit(&system.gateway.prefix);
    let (access, refresh) = system.auth.as_ref().map_or((900, 2_592_000), |a| {
        (a.access_token_ttl, a.refresh_token_ttl)
    });
    let (access, refresh) = (
        Literal::i64_unsuffixed(access),
        Literal::i64_unsuffixed(refresh),
    );
    let routes = crate::validate::gateway_routes(system).into_iter().map(|route| {
        let auth = if route.public { quote!(RouteAuth::Public) } else { quote!(RouteAuth::User) };
        let (method, path, service) = (lit(route.method.as_str()), lit(&route.path), lit(&route.service));
        let roles = route.roles.iter().map(|r| lit(r));
        let policy = route_policy(&route.limits);
        quote!(GatewayRoute { method: #method, path: #path, service: #service, auth: #auth, roles: &[#(#roles),*], policy: #policy })
    }).collect::<Vec<_>>();
    let services = system.services.iter().map(|service| {
        let krate = ident::crate_ident(&system.name.value, &service.name.value);
        // The auth service makes sure the first admin account exists when it starts.
        let grpc_gateway = if service.transport == Transport::Grpc {
            quote!(Some(#krate::gateway))
        } else {
            quote!(None)
        };
        let on_start = if service.uses == Some(Capability::Auth) {
            quote!(Some(svcgen_runtime::capability::auth::on_start))
        } else {
            quote!(None)
        };
        let consumers = if service.consumers.is_empty() {
            quote!(no_consumers)
        } else {
            quote!(#krate::consumers)
        };
        quote! {
            ServiceDef {
                name: #krate::SERVICE,
                migrations: &#krate::MIGRATIONS,
                routes: #krate::routes,
                consumers: #consumers,
                on_start: #on_start,
                grpc_gateway: #grpc_gateway,
            }
        }
    });
    let description = system
        .description
        .clone()
        .unwrap_or_else(|| format!("The {} system.", system.name.value));
    let crate_doc = inner_doc(&format!(
        "{description}\n\nOne binary runs the system in any mode: `{} run` (embedded: everything in one\nprocess, SQLite, in-process events), `gateway` and `serve <service>` (distributed). See\nthe workspace README for the environment each mode reads.",
        system.name.value
    ));
    // Import what the tables below name, and nothing else.
    let tables = quote!(#gateway #(#routes)*).to_string();
    let mut names: Vec<proc_macro2::Ident> = [
        "Cors",
        "GatewayPolicy",
        "GatewayRoute",
        "RateLimit",
        "RouteAuth",
        "RoutePolicy",
        "RouteRateLimit",
    ]
    .into_iter()
    .filter(|name| {
        name == &"GatewayRoute"
            || name == &"RouteAuth"
            || tables
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|word| word == *name)
    })
    .map(|name| format_ident!("{name}"))
    .collect();
    names.dedup();
    let gateway_imports = quote!(use svcgen_runtime::gateway::{#(#names),*};);
    quote! {
        #crate_doc

        use svcgen_runtime::cli::{no_consumers, ServiceDef, SystemDef};
        #gateway_imports

        /// Everything the runtime needs to know about this system.
        static SYSTEM: SystemDef = SystemDef {
            name: #name,
            default_port: #port,
            prefix: #prefix,
            access_token_ttl_secs: #access,
            refresh_token_ttl_secs: #refresh,
            routes: &[#(#routes),*],
            gateway: #gateway,
            services: &[#(#services),*],
        };

        fn main() -> std::process::ExitCode {
            svcgen_runtime::cli::main(&SYSTEM)
        }
    }
}
