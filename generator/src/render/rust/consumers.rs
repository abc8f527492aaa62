//! A service's event consumers: the `consumers` function that subscribes each one, with its
//! actions applied in the transaction that records the event in the inbox, so that an event's
//! effect happens once or not at all.

use super::*;
use crate::lower::{ActionIr, ConsumerIr, ConsumerValue, SqlParam};

/// The `consumers` function of a service with consumers, and the imports it needs.
pub(crate) fn consumers_fn(
    system: &System,
    lowered: &ServiceIr,
) -> Option<(TokenStream, TokenStream)> {
    if lowered.consumers.is_empty() {
        return None;
    }
    let grpc = crate::render::grpc::Grpc::new(system, lowered);
    let subscriptions = lowered
        .consumers
        .iter()
        .map(|consumer| subscription(system, &grpc, lowered.model, consumer));
    let notifies = lowered
        .consumers
        .iter()
        .flat_map(|c| &c.actions)
        .any(|a| matches!(a, ActionIr::Notify { .. }));
    let mut imports = quote! {
        use svcgen_runtime::bus::RetryPolicy;
        use svcgen_runtime::events::EventError;
        use svcgen_runtime::BoxFuture;
    };
    if notifies {
        imports.extend(quote!(
            use svcgen_runtime::capability::notify;
        ));
    }
    let item = quote! {
        /// Subscribes this service's consumers to their events.
        pub fn consumers(ctx: &ServiceContext) -> BoxFuture<'_, Result<(), EventError>> {
            Box::pin(async move {
                #(#subscriptions)*
                Ok(())
            })
        }
    };
    Some((imports, item))
}

fn subscription(
    system: &System,
    grpc: &crate::render::grpc::Grpc,
    service: &Service,
    lowered: &ConsumerIr,
) -> TokenStream {
    let (consumer, event) = (lowered.model, lowered.event);
    let contracts = ident::crate_ident(&system.name.value, "contracts");
    let ty = rust_type(&event.name.value);
    let attempts = Literal::u32_unsuffixed(consumer.attempts);
    let critical = consumer.critical;
    let actions = lowered.actions.iter().map(|action| match action {
        ActionIr::Notify { to, kind, message } => notify(to, kind, message),
        ActionIr::Write {
            model,
            entity,
            set,
            filter,
        } => write(service, false, model, entity, set, filter),
        ActionIr::Sql { sql, params } => statement(sql, params),
        ActionIr::Emit { event, fields } => emit(&contracts, event, fields),
        ActionIr::Call(_) => TokenStream::new(),
    });
    let answers = grpc.answers(&lowered.actions, value);
    let changes = lowered
        .actions
        .iter()
        .any(|a| !matches!(a, ActionIr::Call(_)));
    let uses_envelope = lowered
        .actions
        .iter()
        .any(|a| matches!(a, ActionIr::Notify { .. }));
    let envelope = if uses_envelope {
        quote!(envelope)
    } else {
        quote!(_envelope)
    };
    let now = needs_now(&lowered.actions).then(|| quote!(let now = db::now();));
    let emits = lowered
        .actions
        .iter()
        .any(|a| matches!(a, ActionIr::Emit { .. }));
    // What the handler takes beside the event: the answers of the calls made before.
    let answers_param = answers.as_ref().map(|answers| {
        let locals = &answers.locals;
        quote!((#(#locals,)*),)
    });
    let handler = if let Some(custom) = &consumer.custom {
        // The user's code, in the transaction that records the event in the inbox.
        let function = format_ident!("{}", custom.name.value);
        quote! {
            {
                let service = ctx.clone();
                move |_envelope, event, mut tx| {
                    let ctx = service.clone();
                    async move {
                        crate::custom::#function(
                            &mut svcgen_runtime::custom::Cx::new(&ctx, &mut tx),
                            &event,
                        )
                        .await?;
                        Ok(tx)
                    }
                }
            }
        }
    } else if !changes {
        // Only calls: the transaction records the event in the inbox, and that is all.
        quote!(|_envelope, _event, _answers, tx| async move { Ok(tx) })
    } else if emits {
        // Emitting needs the service's context; each event gets its own handle on it.
        quote! {
            {
                let emitter = ctx.clone();
                move |#envelope, event, #answers_param mut tx| {
                    let ctx = emitter.clone();
                    async move {
                        #now
                        #(#actions)*
                        Ok(tx)
                    }
                }
            }
        }
    } else {
        quote! {
            |#envelope, event, #answers_param mut tx| async move {
                #now
                #(#actions)*
                Ok(tx)
            }
        }
    };
    let policy = quote!(RetryPolicy { attempts: #attempts, ..RetryPolicy::default() });
    let Some(answers) = answers else {
        return quote! {
            ctx.subscribe::<#contracts::events::#ty, _, _>(#policy, #critical, #handler)
                .await?;
        };
    };
    // The calls read the event as it arrived, before the transaction.
    let calls_read_event = crate::render::grpc::calls_of(&lowered.actions)
        .iter()
        .flat_map(|call| &call.with)
        .any(|(_, given)| matches!(&given.expr, Expr::Path { root, .. } if root.value == "event"));
    let (event_param, event_clone) = if calls_read_event {
        (quote!(event), Some(quote!(let event = event.clone();)))
    } else {
        (quote!(_), None)
    };
    let body = answers.body;
    quote! {
        ctx.subscribe_calling::<#contracts::events::#ty, _, _, _, _, _, _>(
            #policy,
            #critical,
            {
                let caller = ctx.clone();
                move |#event_param: &#contracts::events::#ty| {
                    let ctx = caller.clone();
                    #event_clone
                    async move { #body }
                }
            },
            #handler,
        )
        .await?;
    }
}

/// A service's scheduled jobs: a function per job that runs its actions in one transaction
/// (retried like a request's), and `JOBS`, the schedule of each (`None` without jobs).
pub(crate) fn jobs_items(system: &System, lowered: &ServiceIr) -> Option<TokenStream> {
    if lowered.jobs.is_empty() {
        return None;
    }
    let contracts = ident::crate_ident(&system.name.value, "contracts");
    let grpc = crate::render::grpc::Grpc::new(system, lowered);
    let mut runs = Vec::new();
    let mut defs = Vec::new();
    for job in &lowered.jobs {
        let model = job.model;
        let run = format_ident!("run_{}", model.name.value);
        let actions = job.actions.iter().map(|action| match action {
            ActionIr::Sql { sql, params } => statement(sql, params),
            ActionIr::Emit { event, fields } => emit(&contracts, event, fields),
            ActionIr::Write {
                model,
                entity,
                set,
                filter,
            } => write(lowered.model, true, model, entity, set, filter),
            ActionIr::Notify { .. } | ActionIr::Call(_) => TokenStream::new(),
        });
        if let Some(custom) = &model.custom {
            runs.push(custom_job(model, custom));
            defs.push(job_def(model));
            continue;
        }
        let changes = job.actions.iter().any(|a| !matches!(a, ActionIr::Call(_)));
        let now = needs_now(&job.actions).then(|| quote!(let now = db::now();));
        let schedule_text = match &model.schedule {
            JobSchedule::Every(secs) => format!("every {secs} s"),
            JobSchedule::Cron(text) => format!("at `{text}` (cron, UTC)"),
        };
        let run_doc = doc_opt(
            model.description.as_ref(),
            &format!("The job `{}`.", model.name.value),
        );
        let when_doc = doc(&format!("Runs {schedule_text}."));
        // The calls first, then every other action in one transaction, run again on a passing
        // refusal of the database; each attempt takes its own copy of the calls' answers.
        let answers = grpc.answers(&job.actions, value);
        let held = answers.as_ref().filter(|a| !a.locals.is_empty());
        let (answers_param, unpack, answers_arg) = match held {
            Some(answers) => {
                let (locals, types) = (&answers.locals, &answers.types);
                let copy = if answers.copy {
                    quote!(answers)
                } else {
                    quote!(answers.clone())
                };
                (
                    quote!(answers: (#(#types,)*)),
                    quote!(let (#(#locals,)*) = answers;),
                    quote!(, #copy),
                )
            }
            None => Default::default(),
        };
        let attempt = changes.then(|| {
            quote! {
                /// One attempt: the actions that change data, in one transaction.
                async fn attempt(ctx: &ServiceContext, #answers_param) -> ApiResult<()> {
                    #unpack
                    let mut tx = ctx.begin().await?;
                    #now
                    #(#actions)*
                    ctx.commit(tx).await?;
                    Ok(())
                }
            }
        });
        let holds = changes && held.is_some();
        let made = answers.as_ref().map(|answers| {
            let body = &answers.body;
            let answers = if holds {
                quote!(let answers =)
            } else {
                TokenStream::new()
            };
            quote!(#answers async { #body }.await?;)
        });
        let applied = if changes {
            quote!(db::retrying(|| attempt(&ctx #answers_arg)).await)
        } else {
            quote!(Ok(()))
        };
        let body = quote! {
            #attempt
            Box::pin(async move {
                #made
                #applied
            })
        };
        runs.push(quote! {
            #run_doc
            ///
            #when_doc
            fn #run(ctx: ServiceContext) -> svcgen_runtime::BoxFuture<'static, ApiResult<()>> {
                #body
            }
        });
        defs.push(job_def(model));
    }
    Some(quote! {
        /// This service's scheduled jobs.
        pub static JOBS: &[svcgen_runtime::jobs::JobDef] = &[#(#defs)*];

        #(#runs)*
    })
}

/// A job's entry of `JOBS`: its name, schedule and `run_<name>` function.
fn job_def(job: &Job) -> TokenStream {
    let name = lit(&job.name.value);
    let run = format_ident!("run_{}", job.name.value);
    let schedule = match &job.schedule {
        JobSchedule::Every(secs) => {
            let secs = Literal::u64_unsuffixed(*secs);
            quote!(svcgen_runtime::jobs::Schedule::Every(#secs))
        }
        JobSchedule::Cron(text) => {
            let text = lit(text);
            quote!(svcgen_runtime::jobs::Schedule::Cron(#text))
        }
    };
    quote!(svcgen_runtime::jobs::JobDef { name: #name, schedule: #schedule, run: #run },)
}

/// The `run_<name>` function of a job whose work is the user's code: the code in one
/// transaction, run again whole when the database refuses it for a passing reason.
fn custom_job(job: &Job, custom: &CustomCode) -> TokenStream {
    let run = format_ident!("run_{}", job.name.value);
    let function = format_ident!("{}", custom.name.value);
    let run_doc = doc_opt(
        job.description.as_ref(),
        &format!("The job `{}`.", job.name.value),
    );
    let work_doc = doc(&format!(
        "Its work is `custom::{}`, in one transaction.",
        custom.name.value
    ));
    quote! {
        #run_doc
        ///
        #work_doc
        fn #run(ctx: ServiceContext) -> svcgen_runtime::BoxFuture<'static, ApiResult<()>> {
            /// One attempt: the code's writes and events in one transaction.
            async fn attempt(ctx: &ServiceContext) -> ApiResult<()> {
                let mut tx = ctx.begin().await?;
                crate::custom::#function(&mut svcgen_runtime::custom::Cx::new(ctx, &mut tx)).await?;
                ctx.commit(tx).await?;
                Ok(())
            }
            Box::pin(async move { db::retrying(|| attempt(&ctx)).await })
        }
    }
}

/// Whether a consumer's or a job's actions read the time they are applied.
fn needs_now(actions: &[ActionIr]) -> bool {
    let reads_now = |value: &ConsumerValue| matches!(value.expr, Expr::Now { .. });
    actions.iter().any(|action| match action {
        ActionIr::Notify { .. } => false,
        ActionIr::Write { model, .. } => model.kind != WriteKind::Delete,
        ActionIr::Sql { params, .. } => params.iter().any(|(_, _, p)| *p == SqlParam::Now),
        ActionIr::Emit { fields, .. } => fields.iter().flat_map(|(_, v)| v).any(reads_now),
        // Calls read the clock of their own, before the transaction.
        ActionIr::Call(_) => false,
    })
}

fn notify(to: &Recipient, kind: &Name, message: &Name) -> TokenStream {
    let kind = lit(&kind.value);
    let (format, arguments) = message_format(&message.value);
    let arguments: Vec<_> = arguments.iter().map(|a| rust_ident(a)).collect();
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
    match to {
        Recipient::User(user) => {
            let user = rust_ident(&user.value);
            quote!(notify::notify(&mut tx, envelope.id, event.#user, #kind, #message_expr).await?;)
        }
        Recipient::Role(role) => {
            let role = lit(&role.value);
            quote!(notify::notify_role(&mut tx, envelope.id, #role, #kind, #message_expr).await?;)
        }
    }
}

/// A value as a Rust expression of type `to` (from the event, a call's answer, the clock or a
/// literal).
fn value(value: &ConsumerValue, to: &Type) -> TokenStream {
    let plain = match &value.expr {
        Expr::Path { root, fields } if root.value != "event" => {
            let local = crate::render::grpc::answer_ident(&root.value, &fields[0].value);
            if is_copy(&value.ty) {
                quote!(#local)
            } else {
                quote!(#local.clone())
            }
        }
        Expr::Path { fields, .. } => {
            let field = rust_ident(&fields[0].value);
            if is_copy(&value.ty) {
                quote!(event.#field)
            } else {
                quote!(event.#field.clone())
            }
        }
        Expr::Now { plus_secs } => now_plus(*plus_secs),
        Expr::Caller | Expr::CallerRoles | Expr::Id => {
            unreachable!("validation keeps the caller out of consumers")
        }
        literal => literal_value(literal).unwrap_or_default(),
    };
    if matches!(to, Type::Optional(_)) && !matches!(value.ty, Type::Optional(_)) {
        quote!(Some(#plain))
    } else {
        plain
    }
}

/// `.bind(..)` of a value of type `ty`.
fn bind_value(value: TokenStream, ty: &Type) -> TokenStream {
    if is_json(ty) {
        quote!(.bind_json(&#value))
    } else {
        quote!(.bind(#value))
    }
}

/// Checks of the values from the event that the column's type may refuse, each read from
/// `place(column)`; literals were checked when the spec was.
fn value_checks(
    set: &[(Column, ConsumerValue)],
    place: impl Fn(&Column) -> TokenStream,
    finish: &TokenStream,
) -> TokenStream {
    let checks: Vec<TokenStream> = set
        .iter()
        .filter(|(_, value)| matches!(value.expr, Expr::Path { .. }))
        .map(|(column, _)| validation(&column.name, &column.ty, place(column)))
        .filter(|checks| !checks.is_empty())
        .collect();
    if checks.is_empty() {
        return TokenStream::new();
    }
    quote! {
        let mut check = Validator::new();
        #(#checks)*
        #finish
    }
}

/// How a broken rule of a written value ends a consumer (the event is dead-lettered at once)
/// or a job (its run fails, naming the rule).
fn finish_checks(in_job: bool) -> TokenStream {
    if in_job {
        quote!(check.finish()?;)
    } else {
        quote!(svcgen_runtime::events::checked(check)?;)
    }
}

fn write(
    service: &Service,
    in_job: bool,
    model: &Write,
    entity: &Entity,
    set: &[(Column, ConsumerValue)],
    filter: &[(Column, ConsumerValue)],
) -> TokenStream {
    let table = sql(&entity.name.value);
    match &model.kind {
        WriteKind::Create | WriteKind::Upsert { .. } => {
            let names = EntityNames::of(entity);
            let model_ty = &names.model;
            let columns = entity.columns();
            let inits = columns.iter().map(|column| {
                let ident = rust_ident(&column.name);
                let given = set.iter().find(|(c, _)| c.name == column.name);
                let init = match (given, column.source) {
                    (Some((_, given)), _) => value(given, &column.ty),
                    (None, ColumnSource::Id) => quote!(uuid::Uuid::now_v7()),
                    (None, ColumnSource::CreatedAt | ColumnSource::UpdatedAt) => quote!(now),
                    (None, ColumnSource::Version) => quote!(1),
                    (None, _) => match &column.rules.default {
                        Some(default) => default_value(&default.value),
                        None => quote!(None),
                    },
                };
                quote!(#ident: #init,)
            });
            let binds = columns.iter().map(bind);
            let writes = write_constraints(entity);
            let checks = value_checks(
                set,
                |column| {
                    let ident = rust_ident(&column.name);
                    quote!(&row.#ident)
                },
                &finish_checks(in_job),
            );
            let statement = match &model.kind {
                WriteKind::Upsert { key } => {
                    let (standard, mysql) = upsert_sql(&insert_statement(entity), key, set);
                    let (standard, mysql) = (lit(&standard), lit(&mysql));
                    quote!(match tx.engine() {
                        db::Engine::Mysql => #mysql,
                        db::Engine::Sqlite | db::Engine::Postgres => #standard,
                    })
                }
                _ => {
                    let insert = insert_sql(entity);
                    quote!(#insert)
                }
            };
            quote! {
                {
                    let row = #model_ty { #(#inits)* };
                    #checks
                    db::query(#statement) #(#binds)* #writes .execute(&mut tx).await?;
                }
            }
        }
        WriteKind::Update => {
            let mut assignments: Vec<String> = set
                .iter()
                .enumerate()
                .map(|(i, (column, _))| format!("{} = ${}", sql(&column.name), i + 1))
                .collect();
            assignments.push(format!("\"updated_at\" = ${}", set.len() + 1));
            let statement = lit(&format!(
                "UPDATE {table} SET {} WHERE {}",
                assignments.join(", "),
                conditions(filter, set.len() + 2)
            ));
            // The new values are made once: checked, then bound.
            let local = |column: &Column| format_ident!("new_{}", column.name);
            let values = set.iter().map(|(column, given)| {
                let (name, ty, init) = (
                    local(column),
                    rust_field_type(&column.ty),
                    value(given, &column.ty),
                );
                quote!(let #name: #ty = #init;)
            });
            let checks = value_checks(
                set,
                |column| {
                    let name = local(column);
                    quote!(&#name)
                },
                &finish_checks(in_job),
            );
            let binds = set.iter().map(|(column, _)| {
                let name = local(column);
                bind_value(quote!(#name), &column.ty)
            });
            let filters = filter
                .iter()
                .map(|(column, given)| bind_value(value(given, &column.ty), &column.ty));
            let writes = write_constraints(entity);
            quote! {
                {
                    #(#values)*
                    #checks
                    db::query(#statement) #(#binds)* .bind(now) #(#filters)* #writes .execute(&mut tx).await?;
                }
            }
        }
        WriteKind::Delete => {
            let statement = lit(&format!(
                "DELETE FROM {table} WHERE {}",
                conditions(filter, 1)
            ));
            let filters = filter
                .iter()
                .map(|(column, given)| bind_value(value(given, &column.ty), &column.ty));
            let deletes = delete_constraints(service, entity);
            quote! {
                db::query(#statement) #(#filters)* #deletes .execute(&mut tx).await?;
            }
        }
    }
}

/// `"a" = $first AND "b" = $first+1 ...`.
fn conditions(filter: &[(Column, ConsumerValue)], first: usize) -> String {
    filter
        .iter()
        .enumerate()
        .map(|(i, (column, _))| format!("{} = ${}", sql(&column.name), first + i))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// An upsert: the insert, and on a row with the same key, the `set` columns (the key's aside)
/// and the change time taken from the row that was to be inserted. PostgreSQL and SQLite name
/// the key; MySQL updates on any unique key the row shares.
fn upsert_sql(insert: &str, key: &[Name], set: &[(Column, ConsumerValue)]) -> (String, String) {
    let changed: Vec<String> = set
        .iter()
        .map(|(column, _)| column.name.as_str())
        .filter(|name| *name != "id" && !key.iter().any(|k| k.value == *name))
        .chain(["updated_at"])
        .map(sql)
        .collect();
    let key = key
        .iter()
        .map(|k| sql(&k.value))
        .collect::<Vec<_>>()
        .join(", ");
    let standard = format!(
        "{insert} ON CONFLICT ({key}) DO UPDATE SET {}",
        changed
            .iter()
            .map(|c| format!("{c} = excluded.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mysql = format!(
        "{insert} ON DUPLICATE KEY UPDATE {}",
        changed
            .iter()
            .map(|c| format!("{c} = VALUES({c})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    (standard, mysql)
}

fn statement(sql: &str, params: &[(String, Type, SqlParam)]) -> TokenStream {
    let statement = lit(sql);
    let binds = params.iter().map(|(name, ty, source)| match source {
        SqlParam::Now => quote!(.bind(now)),
        SqlParam::NewId => quote!(.bind(uuid::Uuid::now_v7())),
        SqlParam::Constant(n) => {
            let n = Literal::i64_unsuffixed(*n);
            quote!(.bind(#n))
        }
        SqlParam::Event => {
            let field = rust_ident(name);
            if is_copy(ty) {
                bind_value(quote!(event.#field), ty)
            } else {
                bind_value(quote!(event.#field.clone()), ty)
            }
        }
    });
    quote! {
        db::query(#statement) #(#binds)* .execute(&mut tx).await?;
    }
}

fn emit(
    contracts: &proc_macro2::Ident,
    event: &Event,
    fields: &[(&Field, Option<ConsumerValue>)],
) -> TokenStream {
    let ty = rust_type(&event.name.value);
    let inits = fields.iter().map(|(field, given)| {
        let ident = rust_ident(&field.name.value);
        let init = match given {
            Some(given) => value(given, &field.ty),
            None => quote!(None),
        };
        quote!(#ident: #init,)
    });
    quote! {
        ctx.emit(&mut tx, &#contracts::events::#ty { #(#inits)* }).await?;
    }
}
