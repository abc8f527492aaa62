//! Routes whose work is the user's own code (`handler: custom`), in the generation-gap
//! pattern: svcgen writes the types and the handler (caller, path, request checked, the
//! transaction, retries) into the service's `lib.rs`, and the wiring into `src/custom/mod.rs`;
//! the function itself lives in `src/custom/<name>.rs`, which svcgen writes once, when the
//! route first appears, and never changes or deletes.

use super::*;
use crate::render::grpc::{answer_field, checked_input};

/// The caller a custom route's code receives.
fn caller_type(route: &CustomRoute) -> TokenStream {
    if route.public {
        quote!(Option<svcgen_runtime::identity::Caller>)
    } else {
        quote!(svcgen_runtime::identity::Caller)
    }
}

/// A path parameter's type: a uuid for `id` and `<name>_id`, text otherwise.
fn param_is_uuid(param: &str) -> bool {
    param == "id" || param.ends_with("_id")
}

fn pascal(route: &CustomRoute) -> String {
    ident::to_pascal(&route.name.value)
}

/// The route in words: `` `POST /notes/{id}/share` ``.
fn what(route: &CustomRoute) -> String {
    format!("`{} {}`", route.method.as_str(), route.path)
}

/// The items of `lib.rs` for each custom route (its types and handler), and each route's
/// `(path, method(handler))` for the router.
pub(crate) fn items<'m>(lowered: &ServiceIr<'m>) -> (TokenStream, Vec<(&'m str, TokenStream)>) {
    let mut items = TokenStream::new();
    let mut routes = Vec::new();
    for route in &lowered.model.custom_routes {
        items.extend(route_items(route));
        let method = format_ident!("{}", route.method.as_str().to_ascii_lowercase());
        let handler = format_ident!("{}", route.name.value);
        routes.push((route.path.as_str(), quote!(#method(#handler))));
    }
    (items, routes)
}

fn route_items(route: &CustomRoute) -> TokenStream {
    let name = format_ident!("{}", route.name.value);
    let pascal = pascal(route);
    let (input_ty, output_ty, request_ty) = (
        format_ident!("{pascal}Input"),
        format_ident!("{pascal}Output"),
        format_ident!("{pascal}Request"),
    );
    let what = what(route);
    let source = if route.reads_query() {
        "query string"
    } else {
        "body"
    };
    let input_doc = doc(&format!("The {source} of {what}, checked."));
    let input = checked_input(&input_ty, input_doc, &route.input);
    let output_doc = doc(&format!("The answer of {what}."));
    let outputs = route.output.iter().map(answer_field);
    let request_doc = doc(&format!(
        "Everything {what} received, as `custom::{}` gets it.",
        route.name.value
    ));
    let caller_ty = caller_type(route);
    let params = route.params();
    let param_fields = params.iter().map(|param| {
        let ident = rust_ident(param);
        let field_doc = doc(&format!("The path's `{{{param}}}`."));
        if param_is_uuid(param) {
            quote!(#field_doc pub #ident: uuid::Uuid,)
        } else {
            quote!(#field_doc pub #ident: String,)
        }
    });
    let param_reads = params.iter().map(|param| {
        let ident = rust_ident(param);
        let name = lit(param);
        if param_is_uuid(param) {
            quote!(#ident: params.uuid(#name)?,)
        } else {
            quote!(#ident: params.text(#name)?,)
        }
    });
    let params_arg =
        (!params.is_empty()).then(|| quote!(params: svcgen_runtime::http::PathParams,));
    let caller_arg = if route.public {
        quote!(svcgen_runtime::identity::MaybeCaller(caller): svcgen_runtime::identity::MaybeCaller,)
    } else {
        quote!(caller: svcgen_runtime::identity::Caller,)
    };
    let input_arg = if route.reads_query() {
        quote!(svcgen_runtime::http::Query(input): svcgen_runtime::http::Query<#input_ty>,)
    } else {
        quote!(svcgen_runtime::http::Json(input): svcgen_runtime::http::Json<#input_ty>,)
    };
    let handler_doc = doc(&format!(
        "{what}: {} Checks the request, then runs `custom::{}` in a transaction that commits when it answers.",
        route.description.as_deref().unwrap_or("a custom route."),
        route.name.value
    ));
    quote! {
        #input

        #output_doc
        #[derive(Debug, Serialize)]
        pub struct #output_ty { #(#outputs)* }

        #request_doc
        #[derive(Debug)]
        pub struct #request_ty {
            /// Who calls.
            pub caller: #caller_ty,
            #(#param_fields)*
            /// The request's fields, checked.
            pub input: #input_ty,
        }

        #handler_doc
        async fn #name(
            State(ctx): State<ServiceContext>,
            #caller_arg
            #params_arg
            #input_arg
        ) -> ApiResult<svcgen_runtime::http::Json<#output_ty>> {
            /// One attempt: the code's writes and events in one transaction.
            async fn attempt(ctx: &ServiceContext, request: &#request_ty) -> ApiResult<#output_ty> {
                let mut tx = ctx.begin().await?;
                let output = crate::custom::#name(
                    &mut svcgen_runtime::custom::Cx::new(ctx, &mut tx),
                    request,
                )
                .await?;
                ctx.commit(tx).await?;
                Ok(output)
            }
            input.validate()?;
            let request = #request_ty {
                caller,
                #(#param_reads)*
                input,
            };
            let output = db::retrying(|| attempt(&ctx, &request)).await?;
            Ok(svcgen_runtime::http::Json(output))
        }
    }
}

/// One line per custom route of what its function receives and answers:
/// `` `share_note`: `POST /notes/{id}/share`; caller (signed in), id: uuid; input { email: email }; output { shared: int } ``.
/// `src/custom/mod.rs` lists them, and `svcgen generate` compares the lines of two
/// generations to say what changed for the user's code.
pub fn signatures(system: &System, service: &Service) -> Vec<(String, String)> {
    service
        .custom_routes
        .iter()
        .map(|route| {
            let mut parts = vec![if route.public {
                "caller (anyone)".to_owned()
            } else {
                "caller (signed in)".to_owned()
            }];
            parts.extend(
                route
                    .params()
                    .iter()
                    .map(|p| format!("{p}: {}", if param_is_uuid(p) { "uuid" } else { "text" })),
            );
            let mut line = format!(
                "{} {}; {}; input {{ {} }}; output {{ {} }}",
                route.method.as_str(),
                route.path,
                parts.join(", "),
                fields(&route.input),
                fields(&route.output)
            );
            if !route.emit.is_empty() {
                let events: Vec<&str> = route.emit.iter().map(Name::as_str).collect();
                line += &format!("; emits {}", events.join(", "));
            }
            (route.name.value.clone(), line)
        })
        .chain(service.custom_code().map(|(owner, code)| {
            let line = format!("{}{}", owner_signature(system, owner), emits_text(code));
            (code.name.value.clone(), line)
        }))
        .collect()
}

/// `name: type, ...` of `fields`, as a signature line lists them.
fn fields(fields: &[Field]) -> String {
    fields
        .iter()
        .map(|f| format!("{}: {}", f.name.value, f.ty.spec_text()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What custom code of a consumer, job or RPC receives and answers, in words.
fn owner_signature(system: &System, owner: CodeOwner) -> String {
    match owner {
        CodeOwner::Consumer(consumer) => {
            let payload = system
                .events
                .iter()
                .find(|e| e.name.value == consumer.event.value)
                .map(|e| fields(&e.fields))
                .unwrap_or_default();
            format!(
                "on {}; event {} {{ {payload} }}",
                consumer.event.value,
                event_type(consumer)
            )
        }
        CodeOwner::Job(job) => format!("job {}", job.name.value),
        CodeOwner::Rpc(rpc) => format!(
            "rpc {}; caller (optional); request {{ {} }}; response {{ {} }}",
            rpc.name.value,
            fields(&rpc.request),
            fields(&rpc.response)
        ),
    }
}

/// The Rust type of the event a consumer receives: `events::NoteShared`.
fn event_type(consumer: &Consumer) -> String {
    format!("events::{}", ident::rust_type(&consumer.event.value))
}

/// `; emits a, b` for code that may emit events.
fn emits_text(code: &CustomCode) -> String {
    if code.emit.is_empty() {
        return String::new();
    }
    let events: Vec<&str> = code.emit.iter().map(Name::as_str).collect();
    format!("; emits {}", events.join(", "))
}

/// The prefix of a signature line in `src/custom/mod.rs`.
const SIGNATURE_LINE: &str = "//! - `";

/// The signatures `src/custom/mod.rs` lists, by function name.
pub fn listed_signatures(module: &str) -> Vec<(String, String)> {
    module
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix(SIGNATURE_LINE)?.split_once("`: ")?;
            Some((name.to_owned(), rest.to_owned()))
        })
        .collect()
}

/// `src/custom/mod.rs`: what the user's files may use, each file as a module, and the
/// signatures (in its doc, one line each).
pub fn module(system: &System, service: &Service) -> TokenStream {
    let lines: Vec<String> = signatures(system, service)
        .into_iter()
        .map(|(name, line)| format!(" - `{name}`: {line}"))
        .collect();
    let mut text = vec![
        " Your code for the routes, consumers and jobs of this service that have".to_owned(),
        " `handler: custom`: one file each, `src/custom/<name>.rs`, which svcgen writes once and"
            .to_owned(),
        " never changes or deletes.".to_owned(),
        " This module (regenerated) declares them and gathers what they use in `prelude`."
            .to_owned(),
        String::new(),
        " What each function receives and answers (`svcgen generate` says when it changes):"
            .to_owned(),
        String::new(),
    ];
    text.extend(lines);
    let names = signatures(system, service)
        .into_iter()
        .map(|(name, _)| format_ident!("{name}"));
    let names2 = names.clone();
    let types: Vec<proc_macro2::Ident> = service
        .custom_routes
        .iter()
        .flat_map(|route| {
            let pascal = pascal(route);
            ["Input", "Output", "Request"].map(|suffix| format_ident!("{pascal}{suffix}"))
        })
        .collect();
    let types = (!types.is_empty()).then(|| quote!(pub use crate::{#(#types),*};));
    let contracts = ident::crate_ident(&system.name.value, "contracts");
    let events = (service.custom_routes.iter().any(|r| !r.emit.is_empty())
        || service
            .custom_code()
            .any(|(owner, code)| !code.emit.is_empty() || matches!(owner, CodeOwner::Consumer(_))))
    .then(|| quote!(pub use #contracts::events;));
    let rpc = service
        .custom_code()
        .any(|(owner, _)| matches!(owner, CodeOwner::Rpc(_)))
        .then(|| {
            let module = rust_ident(&service.name.value);
            quote! {
                pub use #contracts::proto::#module as proto;
                pub use svcgen_runtime::identity::Caller;
            }
        });
    quote! {
        #(#![doc = #text])*

        /// What the custom handlers use: their types, the context, errors and queries.
        pub mod prelude {
            #types
            pub use svcgen_runtime::custom::Cx;
            pub use svcgen_runtime::db;
            pub use svcgen_runtime::http::{ApiError, ApiResult};
            #events
            #rpc
        }

        #(mod #names;)*
        #(pub use #names2::#names2;)*
    }
}

/// The user's file of `route`, as svcgen writes it once: a function that compiles and
/// answers 501 until its authors write it.
pub fn seed(route: &CustomRoute, service: &Service) -> TokenStream {
    let name = format_ident!("{}", route.name.value);
    let pascal = pascal(route);
    let (request_ty, output_ty) = (
        format_ident!("{pascal}Request"),
        format_ident!("{pascal}Output"),
    );
    let what = what(route);
    let mut text = vec![format!(
        " {what} of service `{}`: your code.",
        service.name.value
    )];
    if let Some(description) = &route.description {
        text.extend([String::new(), format!(" {description}")]);
    }
    text.extend([
        String::new(),
        " svcgen wrote this file once and never changes or deletes it. What the function"
            .to_owned(),
        format!(
            " receives and answers is generated (`{pascal}Request`, `{pascal}Output` in `lib.rs`):"
        ),
        " when the spec changes them, the build says what no longer fits here.".to_owned(),
    ]);
    let mut fn_doc = vec![
        format!(" Handles {what}. It runs in a transaction that commits when it answers `Ok`:"),
        " write with `db::query(...).execute(&mut *cx.tx)`; an `Err` is the answer".to_owned(),
        " (`ApiError::bad_request`, `not_found`, `conflict`, ...) and undoes every write."
            .to_owned(),
    ];
    fn_doc.extend(emit_doc(&route.emit));
    let todo = lit(&format!("{} {}", route.method.as_str(), route.path));
    quote! {
        #(#![doc = #text])*

        #[allow(unused_imports)]
        use super::prelude::*;

        #(#[doc = #fn_doc])*
        pub async fn #name(cx: &mut Cx<'_>, request: &#request_ty) -> ApiResult<#output_ty> {
            let _ = (cx, request);
            Err(ApiError::not_implemented(#todo))
        }
    }
}

/// The user's file of a consumer's, a job's or an RPC's code, as svcgen writes it once: a
/// function that compiles and fails (so that the event waits, retried; the job reports; the
/// call is answered UNIMPLEMENTED) until its authors write it.
pub fn code_seed(service: &Service, code: &CustomCode, owner: CodeOwner) -> TokenStream {
    let name = format_ident!("{}", code.name.value);
    let (what, handles, on_error) = match owner {
        CodeOwner::Consumer(consumer) => (
            format!("The consumer of `{}`", consumer.event.value),
            format!("Handles each `{}` event", consumer.event.value),
            " and the event is delivered again later (dead-lettered after its attempts).",
        ),
        CodeOwner::Job(job) => (
            format!("The job `{}`", job.name.value),
            format!("Does the work of the job `{}`", job.name.value),
            " and the run is recorded as failed.",
        ),
        CodeOwner::Rpc(rpc) => (
            format!("The RPC `{}`", rpc.name.value),
            format!(
                "Answers `{}` (the caller is the user on whose behalf a service calls, if any)",
                rpc.name.value
            ),
            " and is the answer, as a gRPC status.",
        ),
    };
    let text = [
        format!(" {what} of service `{}`: your code.", service.name.value),
        String::new(),
        " svcgen wrote this file once and never changes or deletes it; when the spec changes"
            .to_owned(),
        " what the function receives, the build says what no longer fits here.".to_owned(),
    ];
    let mut fn_doc = vec![
        format!(" {handles}. It runs in a transaction that commits when it answers `Ok`:"),
        " write with `db::query(...).execute(&mut *cx.tx)`. An `Err` undoes every write".to_owned(),
        on_error.to_owned(),
    ];
    fn_doc.extend(emit_doc(&code.emit));
    let todo = lit(&what.replace('`', ""));
    let (signature, unused) = match owner {
        CodeOwner::Consumer(consumer) => {
            let ty: syn::Type = syn::parse_str(&event_type(consumer)).expect("a type path");
            (
                quote!(pub async fn #name(cx: &mut Cx<'_>, event: &#ty) -> ApiResult<()>),
                quote!(let _ = (cx, event);),
            )
        }
        CodeOwner::Job(_) => (
            quote!(pub async fn #name(cx: &mut Cx<'_>) -> ApiResult<()>),
            quote!(let _ = cx;),
        ),
        CodeOwner::Rpc(rpc) => {
            let (request, response) = (
                format_ident!("{}Request", rpc.name.value),
                format_ident!("{}Response", rpc.name.value),
            );
            (
                quote!(pub async fn #name(cx: &mut Cx<'_>, caller: Option<&Caller>, request: &proto::#request) -> ApiResult<proto::#response>),
                quote!(let _ = (cx, caller, request);),
            )
        }
    };
    quote! {
        #(#![doc = #text])*

        #[allow(unused_imports)]
        use super::prelude::*;

        #(#[doc = #fn_doc])*
        #signature {
            #unused
            Err(ApiError::not_implemented(#todo))
        }
    }
}

/// The line of a seed's doc that names the events its code may emit.
fn emit_doc(emit: &[Name]) -> Option<String> {
    if emit.is_empty() {
        return None;
    }
    let events: Vec<String> = emit
        .iter()
        .map(|e| format!("`events::{}`", ident::rust_type(&e.value)))
        .collect();
    Some(format!(
        " It may emit {} with `cx.emit(&event).await?`.",
        events.join(", ")
    ))
}
