//! `create` routes: the row from the body and the path (a parent's id under
//! `/posts/{post_id}/comments`), its event in the same transaction, and for a `PUT` the row
//! its path names kept when it exists (a second like is the first one, answered 200).

use super::*;

/// The handler of a `create` route that is not backed by steps.
pub(crate) fn create_handler(
    system: &System,
    lowered: &RouteIr,
    name: &proc_macro2::Ident,
    caller: &TokenStream,
) -> TokenStream {
    let (entity, route) = (lowered.entity, lowered.model);
    let names = EntityNames::of(entity);
    let model = &names.model;
    let path = paths::reads(lowered);
    let (path_param, path_reads) = (&path.param, &path.reads);
    let parent_checks = paths::parent_checks(lowered);
    let from_path = |column: &str| path.values.iter().find(|v| v.column == column);
    // The body: the entity's fields but those the path gives.
    let fields: Vec<Field> = entity
        .create_fields()
        .into_iter()
        .filter(|f| from_path(&f.name.value).is_none())
        .collect();
    let (body_items, body_ty) = if path.values.is_empty() {
        (TokenStream::new(), Some(names.new.clone()))
    } else if fields.is_empty() {
        (TokenStream::new(), None)
    } else {
        let ty = format_ident!(
            "{}Body",
            ident::to_pascal(name.to_string().trim_start_matches("r#"))
        );
        let items = create_body(
            &ty,
            &format!(
                "The body of `{} {}`: a `{}` without what the path gives.",
                route.method.as_str(),
                route.path,
                entity.name.value
            ),
            &fields,
        );
        (items, Some(ty))
    };
    let (body_param, validate) = match &body_ty {
        Some(ty) => (quote!(Json(input): Json<#ty>,), quote!(input.validate()?;)),
        None => (TokenStream::new(), TokenStream::new()),
    };
    let columns = entity.columns();
    let inits = columns.iter().map(|c| {
        let ident = rust_ident(&c.name);
        match (c.source, from_path(&c.name)) {
            (ColumnSource::Id, _) => quote!(#ident: uuid::Uuid::now_v7(),),
            (ColumnSource::Owner, _) => quote!(#ident: caller.user_id,),
            // The path's value, in a variable of the field's name.
            (ColumnSource::Input, Some(_)) => quote!(#ident,),
            (ColumnSource::Input, None) => {
                let value = create_value(c, quote!(input.#ident));
                quote!(#ident: #value,)
            }
            (ColumnSource::CreatedAt | ColumnSource::UpdatedAt, _) => quote!(#ident: now,),
            (ColumnSource::Version, _) => quote!(#ident: 1,),
        }
    });
    let insert = insert_sql(entity);
    let binds = columns.iter().map(bind);
    let writes = write_constraints(entity);
    let emit = emit(system, lowered);
    let handler = if route.keeps_existing() {
        // The row the path names: its key's columns, valued from the new row.
        let key = paths::row_key(lowered, 1);
        let key_binds = key
            .columns
            .iter()
            .filter_map(|column| entity.column(column))
            .map(|column| bind(&column));
        let find = lit(&format!(
            "{} WHERE {}",
            names.select,
            key.conditions.join(" AND ")
        ));
        let from_row = &names.from_row;
        quote! {
            async fn #name(State(ctx): State<ServiceContext>, #caller #path_param #body_param) -> ApiResult<(StatusCode, ETag, Json<#model>)> {
                /// One attempt: the row the path names when it exists (nothing changes), else
                /// the new row and its event, in one transaction.
                async fn attempt(ctx: &ServiceContext, row: &#model) -> ApiResult<(StatusCode, #model)> {
                    let mut tx = ctx.begin().await?;
                    let existing = db::query(#find) #(#key_binds)* .fetch_optional(&mut tx).await?;
                    if let Some(existing) = existing {
                        return Ok((StatusCode::OK, #from_row(&existing)?));
                    }
                    db::query(#insert) #(#binds)* #writes .execute(&mut tx).await?;
                    #emit
                    ctx.commit(tx).await?;
                    Ok((StatusCode::CREATED, row.clone()))
                }
                #path_reads
                #validate
                #parent_checks
                let now = db::now();
                let row = #model { #(#inits)* };
                // A concurrent create of the same row that commits first makes this one a
                // conflict: run again, it finds that row.
                let (status, row) = match db::retrying(|| attempt(&ctx, &row)).await {
                    Err(error) if error.status() == StatusCode::CONFLICT => {
                        db::retrying(|| attempt(&ctx, &row)).await?
                    }
                    answer => answer?,
                };
                Ok((status, ETag(row.version), Json(row)))
            }
        }
    } else if route.emit.is_some() {
        // A change and the event it emits commit together: the event goes to the outbox in
        // the change's transaction.
        quote! {
            async fn #name(State(ctx): State<ServiceContext>, #caller #path_param #body_param) -> ApiResult<(StatusCode, Json<#model>)> {
                /// One attempt: the row and its event in one transaction.
                async fn attempt(ctx: &ServiceContext, row: &#model) -> ApiResult<()> {
                    let mut tx = ctx.begin().await?;
                    db::query(#insert) #(#binds)* #writes .execute(&mut tx).await?;
                    #emit
                    ctx.commit(tx).await?;
                    Ok(())
                }
                #path_reads
                #validate
                #parent_checks
                let now = db::now();
                let row = #model { #(#inits)* };
                db::retrying(|| attempt(&ctx, &row)).await?;
                Ok((StatusCode::CREATED, Json(row)))
            }
        }
    } else {
        quote! {
            async fn #name(State(ctx): State<ServiceContext>, #caller #path_param #body_param) -> ApiResult<(StatusCode, Json<#model>)> {
                #path_reads
                #validate
                #parent_checks
                let now = db::now();
                let row = #model { #(#inits)* };
                db::query(#insert) #(#binds)* #writes .execute(&ctx.db).await?;
                Ok((StatusCode::CREATED, Json(row)))
            }
        }
    };
    quote! {
        #handler

        #body_items
    }
}
