//! The gRPC server of a service's own RPCs: entity `get`s, the auth account, and SQL statement
//! lists run in one transaction (each statement bound, checked, and turned into response
//! fields or events).

use super::*;

impl Grpc<'_> {
    /// The gRPC server of the service, when it serves RPCs.
    pub fn server(&self) -> Option<Parts> {
        if self.service.rpcs.is_empty() {
            return None;
        }
        let methods = self
            .lowered
            .rpcs
            .iter()
            .map(|rpc| self.method(rpc))
            .collect();
        Some(self.mount(
            &crate::contract::service_name(self.service),
            (format_ident!("Rpc"), "Serves this service's RPCs."),
            (
                format_ident!("grpc"),
                "Answers gRPC calls to this service, beside its HTTP routes on the same port and\nbehind the same internal credential.",
            ),
            methods,
        ))
    }

    pub(super) fn method(&self, lowered: &RpcIr) -> TokenStream {
        let rpc = lowered.model;
        let proto = proto_module(self.system, &self.service.name.value);
        let name = method_ident(rpc);
        let request = format_ident!("{}Request", rpc.name.value);
        let response = format_ident!("{}Response", rpc.name.value);
        let method_doc = doc(rpc
            .description
            .as_deref()
            .unwrap_or(&format!("The `{}` operation.", rpc.name.value)));
        let body = match &lowered.backing {
            RpcBacking::Account(record) => self.account_body(rpc, record),
            RpcBacking::Row(entity) => self.row_body(rpc, entity),
            RpcBacking::Statements(statements) => self.sql_body(rpc, statements),
            RpcBacking::Custom(code) => self.custom_body(rpc, code),
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

    /// The account of the `auth` capability with the request's id.
    pub(super) fn account_body(&self, rpc: &Rpc, record: &Name) -> TokenStream {
        let proto = proto_module(self.system, &self.service.name.value);
        let response = format_ident!("{}Response", rpc.name.value);
        let field = rust_ident(&record.value);
        let ty = rust_type(&record.value);
        let not_found = lit(&format!("{} not found", record.value));
        quote! {
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
        }
    }

    /// The row of `entity` with the request's id.
    pub(super) fn row_body(&self, rpc: &Rpc, entity: &Entity) -> TokenStream {
        let proto = proto_module(self.system, &self.service.name.value);
        let response = format_ident!("{}Response", rpc.name.value);
        let field = rust_ident(&entity.name.value);
        let not_found = lit(&format!("{} not found", entity.name.value));
        let from_row = ident::rust_joined(&[&entity.name.value, "from_row"]);
        let columns: Vec<String> = entity.columns().iter().map(|c| sql(&c.name)).collect();
        let select = lit(&format!(
            "SELECT {} FROM {} WHERE \"id\" = $1",
            columns.join(", "),
            sql(&entity.name.value)
        ));
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

    pub(super) fn sql_body(&self, rpc: &Rpc, statements: &[StatementIr]) -> TokenStream {
        let proto = proto_module(self.system, &self.service.name.value);
        let response = format_ident!("{}Response", rpc.name.value);
        let filled: Vec<&Field> = statements
            .iter()
            .filter_map(|statement| statement.into.as_ref().map(|(field, _)| *field))
            .collect();
        let runs: Vec<TokenStream> = statements.iter().map(|s| self.statement(s)).collect();
        let fields = filled.iter().map(|field| {
            let ident = rust_ident(&field.name.value);
            quote!(#ident,)
        });
        let rest = (filled.len() < rpc.response.len()).then(|| quote!(..Default::default()));
        let request = format_ident!("{}Request", rpc.name.value);
        // Statements that read nothing from the request, or not the time, leave them unnamed.
        let reads = |wanted: fn(&ParamSource) -> bool| {
            statements
                .iter()
                .any(|s| s.declared.iter().any(|p| wanted(&p.source)))
        };
        let reads_request = statements.iter().any(|s| s.model.for_each.is_some())
            || reads(|source| matches!(source, ParamSource::Request(_) | ParamSource::Element(_)));
        let request_param = if reads_request {
            quote!(request)
        } else {
            quote!(_request)
        };
        let now_param = if reads(|source| matches!(source, ParamSource::Now)) {
            quote!(now)
        } else {
            quote!(_now)
        };
        quote! {
            /// One attempt: every statement in one transaction.
            async fn attempt(ctx: &ServiceContext, #request_param: &#proto::#request, #now_param: chrono::DateTime<chrono::Utc>) -> Result<#proto::#response, tonic::Status> {
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

    /// The user's code, in one transaction run again whole on a passing refusal of the
    /// database, with the caller the call carries (none for a service's own call).
    pub(super) fn custom_body(&self, rpc: &Rpc, code: &CustomCode) -> TokenStream {
        let proto = proto_module(self.system, &self.service.name.value);
        let (request, response) = (
            format_ident!("{}Request", rpc.name.value),
            format_ident!("{}Response", rpc.name.value),
        );
        let function = format_ident!("{}", code.name.value);
        quote! {
            /// One attempt: the code's writes and events in one transaction.
            async fn attempt(ctx: &ServiceContext, caller: Option<&svcgen_runtime::identity::Caller>, request: &#proto::#request) -> Result<#proto::#response, tonic::Status> {
                let mut tx = ctx.begin().await?;
                let response = crate::custom::#function(
                    &mut svcgen_runtime::custom::Cx::new(ctx, &mut tx),
                    caller,
                    request,
                )
                .await?;
                ctx.commit(tx).await?;
                Ok(response)
            }
            let caller = incoming.caller.clone();
            let response = incoming
                .within(db::retrying(|| attempt(&self.ctx, caller.as_ref(), &request)))
                .await?;
            Ok(tonic::Response::new(response))
        }
    }

    /// One SQL statement: its parameters bound, run once or per element, checked, and its rows
    /// turned into a response field or events.
    pub(super) fn statement(&self, lowered: &StatementIr) -> TokenStream {
        let statement = lowered.model;
        let text = lit(&lowered.sql);
        let names = &lowered.params;
        let param_type = |name: &str| -> Type {
            lowered
                .declared
                .iter()
                .find(|p| p.name == name)
                .map_or(Type::INT, |p| p.ty.clone())
        };
        let params = lowered.declared.iter().map(|param| {
            let ident = format_ident!("param_{}", param.name);
            let read = |place: TokenStream, field: &Field| {
                let source = rust_ident(&param.name);
                let source = if proto_copy(&field.ty) {
                    quote!(#place.#source)
                } else {
                    quote!(#place.#source.clone())
                };
                proto_to_plain(&source, &field.ty, &field.ty, &param.name)
            };
            let value = match &param.source {
                ParamSource::Now => quote!(now),
                ParamSource::NewId => quote!(uuid::Uuid::now_v7()),
                ParamSource::Constant(value) => {
                    let value = Literal::i64_suffixed(*value);
                    quote!(#value)
                }
                ParamSource::Element(field) => read(quote!(element), field),
                ParamSource::Request(field) => read(quote!(request), field),
            };
            let plain = rust_field_type(&param.ty);
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
            let (format, arguments) = crate::render::rust::message_format(&expect.message);
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
        let run = if let Some((field, row)) = &lowered.into {
            let ident = rust_ident(&field.name.value);
            let value = self.rows_into(field, row.as_deref(), failure.as_ref());
            quote!(let #ident = { let rows = #query.fetch_all(&mut tx).await?; #value };)
        } else if let Some(event) = lowered.emit {
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
    /// `row` holds the fields of the record each row becomes, for a field of messages.
    pub(super) fn rows_into(
        &self,
        field: &Field,
        row: Option<&[Field]>,
        failure: Option<&TokenStream>,
    ) -> TokenStream {
        let proto = proto_module(self.system, &self.service.name.value);
        let empty = failure.map(|f| quote!(if rows.is_empty() { return Err(#f); }));
        let message_from_row = |record: &str| {
            let ty = rust_type(record);
            let fields = row.unwrap_or_default().iter().map(|f| {
                let ident = rust_ident(&f.name.value);
                let name = lit(&f.name.value);
                let plain = rust_field_type(&f.ty);
                let read = if is_json(&f.ty) {
                    quote!(row.get_json(#name)?)
                } else {
                    quote!(row.get(#name)?)
                };
                let converted = self.plain_to_proto(&quote!(&value), &f.ty, &f.ty);
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
                let converted = self.plain_to_proto(&quote!(&value), ty, ty);
                quote! {
                    #empty
                    let row = rows.first().ok_or_else(|| tonic::Status::internal(#missing))?;
                    let value: #plain = row.get(#name)?;
                    #converted
                }
            }
        }
    }
}
