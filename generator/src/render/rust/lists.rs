//! List routes: what each lets its callers ask for (a `svcgen_runtime::list::ListDef`: the
//! entity's columns, the route's filters and sorts, whether it searches) and the handler that
//! reads the request against it and fetches the page the caller may see.

use super::*;

/// The runtime's kind of a field's values, for filters and sorts.
fn kind(ty: &Type) -> TokenStream {
    match ty.required() {
        Type::Int { .. } => quote!(list::Kind::Int),
        Type::Bool => quote!(list::Kind::Bool),
        Type::Uuid => quote!(list::Kind::Uuid),
        Type::Timestamp => quote!(list::Kind::Timestamp),
        Type::Enum(words) => {
            let words = words.iter().map(|w| lit(w));
            quote!(list::Kind::Enum(&[#(#words),*]))
        }
        Type::List(_) => quote!(list::Kind::TextList),
        _ => quote!(list::Kind::Text),
    }
}

/// `list::Field`s of the entity's columns named in `names`.
fn fields(entity: &Entity, names: &[Name]) -> Vec<TokenStream> {
    names
        .iter()
        .filter_map(|name| entity.column(&name.value))
        .map(|column| {
            let name = lit(&column.name);
            let kind = kind(&column.ty);
            quote!(list::Field { name: #name, kind: #kind })
        })
        .collect()
}

/// The name of the static that describes a list route: `LIST_NOTES`.
fn def_name(handler: &proc_macro2::Ident) -> proc_macro2::Ident {
    format_ident!(
        "{}",
        handler
            .to_string()
            .trim_start_matches("r#")
            .to_ascii_uppercase()
    )
}

/// The handler of a `list` route, and the static that describes what it takes.
pub(crate) fn list_handler(
    lowered: &RouteIr,
    name: &proc_macro2::Ident,
    caller: &TokenStream,
    viewer: &TokenStream,
    steps: &super::steps::StepsOf,
) -> TokenStream {
    let (entity, route) = (lowered.entity, lowered.model);
    let path = paths::reads(lowered);
    let (path_param, path_reads) = (&path.param, &path.reads);
    let parent_checks = paths::parent_checks(lowered);
    let names = EntityNames::of(entity);
    let (model, from_row) = (&names.model, &names.from_row);
    let def = def_name(name);
    let table = lit(&entity.name.value);
    let columns = entity.columns();
    let columns = columns.iter().map(|c| lit(&c.name));
    let filters = fields(entity, &route.filter);
    // Every list sorts on `created_at` already.
    let sort: Vec<Name> = route
        .sort
        .iter()
        .filter(|name| name.value != "created_at")
        .cloned()
        .collect();
    let sorts = fields(entity, &sort);
    let search = !entity.search.is_empty();
    // The rows the caller may read, under the parent the path names.
    let mut conditions = Vec::new();
    let mut binds = Vec::new();
    if let Some((condition, access_binds)) =
        access::condition(entity, access::Scope::Visible { mine: route.mine }, 1)
    {
        conditions.push(condition);
        binds.extend(access_binds);
    }
    for value in &path.values {
        // Qualified: a searched list joins the search index, whose columns are text fields.
        conditions.push(format!(
            "{}.{} = ${}",
            sql(&entity.name.value),
            sql(&value.column),
            binds.len() + 1
        ));
        let arg = value.arg();
        binds.push(quote!(.bind(#arg)));
    }
    let (scope, binds) = if conditions.is_empty() {
        (quote!(None), quote!(std::convert::identity))
    } else {
        let params = proc_macro2::Literal::usize_unsuffixed(binds.len());
        let condition = lit(&conditions.join(" AND "));
        (
            quote!(Some((#condition, #params))),
            quote!(|query: db::Query| query #(#binds)*),
        )
    };
    let (deadline_param, steps_run) = (&steps.deadline_param, &steps.run);
    let def_doc = doc(&format!(
        "What `{} {}` lets its callers ask for.",
        route.method.as_str(),
        route.path
    ));
    quote! {
        async fn #name(State(ctx): State<ServiceContext>, #caller #deadline_param #path_param RawQuery(query): RawQuery) -> ApiResult<Json<Paginated<#model>>> {
            let request = ListRequest::parse(query.as_deref(), &#def)?;
            #path_reads
            #parent_checks
            #viewer
            #steps_run
            let page = list::fetch(&ctx.db, &#def, &request, #scope, #binds, #from_row).await?;
            Ok(Json(page))
        }

        #def_doc
        static #def: list::ListDef = list::ListDef {
            table: #table,
            columns: &[#(#columns),*],
            filters: &[#(#filters),*],
            sorts: &[#(#sorts),*],
            search: #search,
        };
    }
}
