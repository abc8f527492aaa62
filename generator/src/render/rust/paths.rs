//! What a route's path gives its handler: the values of its parameters, read as the types of
//! the fields they name; the row they name (by `{id}`, or by the fields of a unique key with
//! the owner's taken from the caller); and the parent rows the caller must see (`{post_id}` of
//! a comment, when comments reference posts of the same service).

use super::*;
use crate::lower::ParamIr;

/// One parameter of a route's path as the handler holds it.
pub(crate) struct PathValue {
    /// The column it names (`id` for the row's id).
    pub(crate) column: String,
    /// The local variable that holds it.
    pub(crate) ident: proc_macro2::Ident,
    /// Its Rust type.
    pub(crate) ty: TokenStream,
    /// Whether that type is `Copy` (used as it is, else cloned).
    pub(crate) copy: bool,
}

impl PathValue {
    /// The value as an argument: itself, or a clone.
    pub(crate) fn arg(&self) -> TokenStream {
        let ident = &self.ident;
        if self.copy {
            quote!(#ident)
        } else {
            quote!(#ident.clone())
        }
    }
}

/// How a handler reads its path.
pub(crate) struct PathReads {
    /// Its parameter: `IdPath(id): IdPath,` for a lone `{id}`, `params: PathParams,` for
    /// others, nothing without parameters.
    pub(crate) param: TokenStream,
    /// `let post_id = params.uuid("post_id")?;` for each parameter read through `PathParams`.
    pub(crate) reads: TokenStream,
    /// The values, in path order.
    pub(crate) values: Vec<PathValue>,
}

/// How `lowered`'s handler reads its path.
pub(crate) fn reads(lowered: &RouteIr) -> PathReads {
    let params = &lowered.params;
    let values: Vec<PathValue> = params
        .iter()
        .map(|param| PathValue {
            column: param.name.to_owned(),
            ident: rust_ident(param.name),
            ty: param
                .column
                .as_ref()
                .map_or(quote!(uuid::Uuid), |c| rust_field_type(&c.ty)),
            copy: param.column.as_ref().is_none_or(|c| is_copy(&c.ty)),
        })
        .collect();
    if params.is_empty() {
        return PathReads {
            param: TokenStream::new(),
            reads: TokenStream::new(),
            values,
        };
    }
    if params.len() == 1 && params[0].column.is_none() {
        return PathReads {
            param: quote!(IdPath(id): IdPath,),
            reads: TokenStream::new(),
            values,
        };
    }
    let reads = params.iter().map(|param| {
        let ident = rust_ident(param.name);
        let name = lit(param.name);
        let read = match param.column.as_ref().map(|c| &c.ty) {
            None | Some(Type::Uuid) => quote!(params.uuid(#name)?),
            Some(Type::Int { .. }) => quote!(params.int(#name)?),
            Some(Type::Enum(words)) => {
                let words = words.iter().map(|w| lit(w));
                quote!(params.word(#name, &[#(#words),*])?)
            }
            Some(_) => quote!(params.text(#name)?),
        };
        quote!(let #ident = #read;)
    });
    PathReads {
        param: quote!(params: PathParams,),
        reads: quote!(#(#reads)*),
        values,
    }
}

/// Whether the route names its row by `{id}` alone (its rows are found by the entity's shared
/// `find_<entity>`).
pub(crate) fn by_id_alone(lowered: &RouteIr) -> bool {
    lowered.params.len() == 1 && lowered.params[0].column.is_none()
}

/// The columns that name a route's row, its conditions and their values.
pub(crate) struct RowKey {
    /// The columns: the path's, then the owner's when the path names the row by a unique key.
    pub(crate) columns: Vec<String>,
    /// `"column" = $n` of each, numbered from the `first` given.
    pub(crate) conditions: Vec<String>,
    /// The value of each (the owner's is the caller's).
    pub(crate) values: Vec<TokenStream>,
}

/// The key that names the route's row, its conditions numbered from `first`.
pub(crate) fn row_key(lowered: &RouteIr, first: usize) -> RowKey {
    let path = reads(lowered);
    let mut columns: Vec<String> = path.values.iter().map(|v| v.column.clone()).collect();
    let mut values: Vec<TokenStream> = path.values.iter().map(PathValue::arg).collect();
    if let (false, Some(owner)) = (lowered.model.has_id(), &lowered.entity.owner) {
        columns.push(owner.value.clone());
        values.push(quote!(viewer.user));
    }
    let conditions = columns
        .iter()
        .enumerate()
        .map(|(i, column)| format!("{} = ${}", sql(column), first + i))
        .collect();
    RowKey {
        columns,
        conditions,
        values,
    }
}

/// The parameters whose rows the caller must see, with the entity each names.
fn parents<'a>(lowered: &'a RouteIr) -> impl Iterator<Item = (&'a ParamIr<'a>, &'a Entity)> {
    lowered
        .params
        .iter()
        .filter_map(|param| param.parent.map(|parent| (param, parent)))
}

/// Whether checking the parents needs the caller (one of them is owned, and not read by all).
pub(crate) fn parents_need_caller(lowered: &RouteIr) -> bool {
    parents(lowered).any(|(_, parent)| access::find_needs_viewer(parent))
}

/// The checks that the caller sees each parent row the path names: 404 otherwise, as if it
/// did not exist.
pub(crate) fn parent_checks(lowered: &RouteIr) -> TokenStream {
    let public = lowered.model.public;
    let checks = parents(lowered).map(|(param, parent)| {
        let ident = rust_ident(param.name);
        let mut sql_text = format!("SELECT 1 AS found FROM {} WHERE \"id\" = $1", sql(&parent.name.value));
        let scope = access::condition(parent, access::Scope::Visible { mine: false }, 2);
        let (binds, viewer) = match scope {
            Some((condition, binds)) => {
                sql_text += &format!(" AND {condition}");
                let managers = parent.managers.iter().map(|m| lit(&m.value));
                let viewer = if public {
                    quote!(let viewer = Viewer::maybe(caller.0.as_ref(), &[#(#managers),*]);)
                } else {
                    quote!(let viewer = Viewer::of(&caller, &[#(#managers),*]);)
                };
                (binds, viewer)
            }
            None => (Vec::new(), TokenStream::new()),
        };
        let sql_text = lit(&sql_text);
        let not_found = lit(&format!("{} not found", parent.name.value));
        quote! {
            {
                #viewer
                let parent = db::query(#sql_text).bind(#ident) #(#binds)* .fetch_optional(&ctx.db).await?;
                if parent.is_none() {
                    return Err(ApiError::not_found(#not_found));
                }
            }
        }
    });
    quote!(#(#checks)*)
}
