//! Per entity: the model, the bodies of requests that create and change it with their checks,
//! reading it from a row, and the SQL that writes it.

use super::*;
use crate::ident::constraint_name;

/// Names used for one entity's generated items.
pub(crate) struct EntityNames {
    /// The model: `Note`.
    pub(crate) model: proc_macro2::Ident,
    /// The body that creates one: `NewNote`.
    pub(crate) new: proc_macro2::Ident,
    /// The body that changes one: `NotePatch`.
    pub(crate) patch: proc_macro2::Ident,
    /// The function that reads one from a row: `note_from_row`.
    pub(crate) from_row: proc_macro2::Ident,
    /// The quoted table name.
    pub(crate) table: String,
    /// `SELECT <every column> FROM <table>`.
    pub(crate) select: String,
}

impl EntityNames {
    /// The names of `entity`'s items.
    pub(crate) fn of(entity: &Entity) -> Self {
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

/// The body of a request that creates a row, with its checks: `fields`, each optional one (and
/// each with a default) may be left out.
pub(crate) fn create_body(name: &proc_macro2::Ident, text: &str, fields: &[Field]) -> TokenStream {
    let body_doc = doc(text);
    let decls = fields.iter().map(|f| {
        let ident = rust_ident(&f.name.value);
        let ty = rust_field_type(&f.ty);
        let field_doc = doc(&field_doc_text(f));
        let default = matches!(f.ty, Type::Optional(_)).then(|| quote!(#[serde(default)]));
        quote!(#field_doc #default pub #ident: #ty,)
    });
    let checks = field_checks(fields);
    let checker = if checks.is_empty() {
        quote!(let check = Validator::new();)
    } else {
        quote!(let mut check = Validator::new();)
    };
    quote! {
        #body_doc
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct #name { #(#decls)* }

        impl #name {
            /// Checks the spec's constraints; a violation is a 400 naming every problem.
            pub fn validate(&self) -> ApiResult<()> {
                #checker
                #(#checks)*
                check.finish()
            }
        }
    }
}

/// Model, request bodies, validation and SQL helpers of one entity.
pub(crate) fn entity_items(entity: &Entity, read_back: bool, finds_one: bool) -> TokenStream {
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
            ColumnSource::Input => column_doc_text(&c.name, &c.ty, &c.rules),
            ColumnSource::CreatedAt => "When the row was created.".to_string(),
            ColumnSource::UpdatedAt => "When the row was last changed.".to_string(),
            ColumnSource::Version => {
                "How many times the row was written: 1 when created, one more at every change (its `ETag`).".to_string()
            }
        };
        let field_doc = doc(&text);
        quote!(#field_doc pub #ident: #ty,)
    });
    let inputs: Vec<&Field> = entity.fields.iter().collect();
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
    let patch_checker = checker(&patch_checks);
    let row_fields = columns.iter().map(|c| {
        let ident = rust_ident(&c.name);
        let column = lit(&c.name);
        if is_json(&c.ty) {
            quote!(#ident: row.get_json(#column)?,)
        } else {
            quote!(#ident: row.get(#column)?,)
        }
    });
    let new_struct = create_body(
        new,
        &format!("The body of a request that creates a `{entity_name}`."),
        &entity.create_fields(),
    );
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
        let (viewer_param, by_viewer, viewer_binds, whose) =
            match super::access::condition(entity, super::access::Scope::Visible { mine: false }, 2) {
                Some((condition, binds)) => (
                    quote!(, viewer: Viewer),
                    format!(" AND {condition}"),
                    binds,
                    " that `viewer` may read (a row it may not read is a 404 too, so ids leak nothing)",
                ),
                None => (TokenStream::new(), String::new(), Vec::new(), ""),
            };
        let sql_text = lit(&format!("{} WHERE \"id\" = $1{by_viewer}", names.select));
        let find_doc = doc(&format!(
            "Reads the `{entity_name}` with this id{whose}; 404 when there is none."
        ));
        quote! {
            #find_doc
            async fn #find_fn(on: impl Into<db::Conn<'_>>, id: uuid::Uuid #viewer_param) -> ApiResult<#model> {
                let row = db::query(#sql_text)
                    .bind(id)
                    #(#viewer_binds)*
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

        #new_struct

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

/// `NOTE_CONSTRAINTS`: the unique keys and references a write of `entity` can break.
fn constraints_const(entity: &Entity) -> proc_macro2::Ident {
    format_ident!("{}_CONSTRAINTS", entity.name.value.to_uppercase())
}

/// `NOTE_RESTRICTED_BY`: the references that refuse a delete of an `entity` row still named.
fn restricted_const(entity: &Entity) -> proc_macro2::Ident {
    format_ident!("{}_RESTRICTED_BY", entity.name.value.to_uppercase())
}

/// The references of other entities of `service` to `entity` that refuse its delete.
fn restrictions<'s>(service: &'s Service, entity: &Entity) -> Vec<(&'s Entity, &'s Field)> {
    service
        .entities
        .iter()
        .flat_map(|other| other.references().map(move |(field, r)| (other, field, r)))
        .filter(|(_, _, r)| {
            r.entity.value == entity.name.value && r.on_delete == OnDelete::Restrict
        })
        .map(|(other, field, _)| (other, field))
        .collect()
}

/// The constants that describe `entity`'s unique keys and references to the runtime, so that a
/// write that breaks one is answered naming its fields (none when it has neither).
pub(crate) fn constraint_items(service: &Service, entity: &Entity) -> TokenStream {
    let table = &entity.name.value;
    let unique = entity.unique_keys().into_iter().map(|key| {
        let name = constraint_name(table, &key, "key");
        quote!(db::Constraint::unique(#name, #table, &[#(#key),*]),)
    });
    let references = entity.references().map(|(field, reference)| {
        let column = field.name.as_str();
        let name = constraint_name(table, &[column], "fkey");
        let target = reference.entity.as_str();
        quote!(db::Constraint::references(#name, #table, &[#column], #target),)
    });
    let writes: Vec<TokenStream> = unique.chain(references).collect();
    let mut items = TokenStream::new();
    if !writes.is_empty() {
        let name = constraints_const(entity);
        let text = doc(&format!(
            "The unique keys and references of `{table}` a write can break, as its migration names them."
        ));
        items.extend(quote!(#text pub const #name: &[db::Constraint] = &[#(#writes)*];));
    }
    let restricting = restrictions(service, entity);
    if !restricting.is_empty() {
        let name = restricted_const(entity);
        let text = doc(&format!(
            "The references to `{table}` that refuse to delete a row still named (`on_delete: restrict`)."
        ));
        let each = restricting.iter().map(|(other, field)| {
            let (child, column) = (other.name.as_str(), field.name.as_str());
            let constraint = constraint_name(child, &[column], "fkey");
            quote!(db::Constraint::restricts(#constraint, #child, &[#column], #table),)
        });
        items.extend(quote!(#text pub const #name: &[db::Constraint] = &[#(#each)*];));
    }
    items
}

/// `.constraints(NOTE_CONSTRAINTS)` for a statement that writes an `entity` row, when it has
/// unique keys or references.
pub(crate) fn write_constraints(entity: &Entity) -> TokenStream {
    if entity.unique_keys().is_empty() && entity.references().next().is_none() {
        return TokenStream::new();
    }
    let name = constraints_const(entity);
    quote!(.constraints(#name))
}

/// `.constraints(NOTE_RESTRICTED_BY)` for a statement that deletes an `entity` row, when a
/// reference can refuse it.
pub(crate) fn delete_constraints(service: &Service, entity: &Entity) -> TokenStream {
    if restrictions(service, entity).is_empty() {
        return TokenStream::new();
    }
    let name = restricted_const(entity);
    quote!(.constraints(#name))
}

/// The documentation of a field: its description, its type and its rules.
fn field_doc_text(field: &Field) -> String {
    column_doc_text(&field.name.value, &field.ty, &field.rules)
}

fn column_doc_text(name: &str, ty: &Type, rules: &Rules) -> String {
    let mut text = String::new();
    if let Some(description) = &rules.description {
        text += description.trim();
        text += "\n\n";
    }
    text += &format!("`{name}`: {}", ty.spec_text());
    if rules.unique {
        text += ", unique";
    }
    if let Some(reference) = &rules.references {
        text += &format!(
            ", the id of a `{}` (on delete: {})",
            reference.entity.value,
            reference.on_delete.keyword()
        );
    }
    if let Some(default) = &rules.default {
        text += &format!("; {} when left out", default_text(&default.value));
    }
    text.push('.');
    text
}

fn default_text(value: &DefaultValue) -> String {
    match value {
        DefaultValue::Text(text) => format!("`{text:?}`"),
        DefaultValue::Int(n) => format!("`{n}`"),
        DefaultValue::Bool(b) => format!("`{b}`"),
        DefaultValue::Now { plus_secs: 0 } => "the time of the create".into(),
        DefaultValue::Now { plus_secs } => {
            format!("the time of the create plus {plus_secs} s")
        }
    }
}

/// A column's value on create, given `value`, the body's (optional when the field has a
/// default): the default fills in a field left out.
pub(crate) fn create_value(column: &Column, value: TokenStream) -> TokenStream {
    match &column.rules.default {
        Some(default) if !matches!(column.ty, Type::Optional(_)) => {
            let fallback = default_value(&default.value);
            match default.value {
                // A constant costs nothing to make when it is not needed.
                DefaultValue::Int(_) | DefaultValue::Bool(_) => quote!(#value.unwrap_or(#fallback)),
                DefaultValue::Text(_) | DefaultValue::Now { .. } => {
                    quote!(#value.unwrap_or_else(|| #fallback))
                }
            }
        }
        _ => value,
    }
}

/// A default as a Rust expression (a computed one reads `now`, the time of the create).
pub(crate) fn default_value(value: &DefaultValue) -> TokenStream {
    match value {
        DefaultValue::Text(text) => quote!(#text.to_owned()),
        DefaultValue::Int(n) => {
            let n = Literal::i64_unsuffixed(*n);
            quote!(#n)
        }
        DefaultValue::Bool(b) => quote!(#b),
        DefaultValue::Now { plus_secs } => now_plus(*plus_secs),
    }
}

/// `now`, or `now + <plus_secs> s`, reading the `now` of the code around it.
pub(crate) fn now_plus(plus_secs: i64) -> TokenStream {
    if plus_secs == 0 {
        return quote!(now);
    }
    let secs = Literal::i64_unsuffixed(plus_secs);
    quote!(now + chrono::TimeDelta::seconds(#secs))
}

/// The current time plus `plus_secs` seconds, as the runtime reads the clock.
pub(crate) fn now_value(plus_secs: i64) -> TokenStream {
    let now = now_plus(plus_secs);
    quote!({ let now = svcgen_runtime::db::now(); #now })
}

/// The validation statements of `fields` of a struct (`&self.<field>` each), leaving out the
/// fields that have nothing to check.
pub(crate) fn field_checks<'f>(fields: impl IntoIterator<Item = &'f Field>) -> Vec<TokenStream> {
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
pub(crate) fn validation(name: &str, ty: &Type, value: TokenStream) -> TokenStream {
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
        Type::Int { min, max } if min.is_some() || max.is_some() => {
            let int = |b: &Option<i64>| match b {
                Some(n) => {
                    let n = Literal::i64_unsuffixed(*n);
                    quote!(Some(#n))
                }
                None => quote!(None),
            };
            let (min, max) = (int(min), int(max));
            // `&place` is read as `place` (a copy), anything else dereferenced.
            let mut tokens = value.clone().into_iter();
            let number = match tokens.next() {
                Some(proc_macro2::TokenTree::Punct(p)) if p.as_char() == '&' => tokens.collect(),
                _ => quote!(*#value),
            };
            quote!(check.range(#field, #number, #min, #max);)
        }
        Type::Enum(words) => quote!(check.one_of(#field, #value, &[#(#words),*]);),
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
pub(crate) fn bind(column: &Column) -> TokenStream {
    let ident = rust_ident(&column.name);
    if is_json(&column.ty) {
        quote!(.bind_json(&row.#ident))
    } else if is_copy(&column.ty) {
        quote!(.bind(row.#ident))
    } else {
        quote!(.bind(row.#ident.clone()))
    }
}

/// The statement of a PATCH: `$1` the change time, then per declared field a flag (was it
/// sent?) and its value, then the `key` conditions that name the row (numbered by the caller),
/// the write scope of owned rows, and the version `If-Match` holds to. A field not sent keeps
/// the value the row has when the statement runs, never one read earlier.
pub(crate) fn patch_sql(entity: &Entity, key: &[String]) -> String {
    // $1: the change time; then a flag and a value per field; then the key, numbered by the
    // caller from 2 + 2 * fields; then the write scope and the version `If-Match` holds to.
    let mut sets: Vec<String> = entity
        .fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let column = sql(&field.name.value);
            let (flag, value) = (2 + 2 * i, 3 + 2 * i);
            format!("{column} = CASE WHEN ${flag} THEN ${value} ELSE {column} END")
        })
        .collect();
    sets.push("\"updated_at\" = $1".into());
    let mut statement = format!(
        "UPDATE {} SET {} WHERE {}",
        sql(&entity.name.value),
        sets.join(", "),
        key.join(" AND ")
    );
    let mut position = 2 + 2 * entity.fields.len() + key.len();
    if let Some((condition, binds)) =
        super::access::condition(entity, super::access::Scope::Write, position)
    {
        statement += &format!(" AND {condition}");
        position += binds.len();
    }
    // The version `If-Match` holds the change to, if any.
    statement += &format!(" AND (${position} IS NULL OR \"version\" = ${position})");
    statement
}

/// The two arguments of one field in [`patch_sql`]: whether `input` has it, and its value
/// (`NULL` when not sent, or sent as `null`).
pub(crate) fn patch_binds(field: &Field) -> TokenStream {
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
pub(crate) fn insert_sql(entity: &Entity) -> Literal {
    lit(&insert_statement(entity))
}

/// The text of [`insert_sql`].
pub(crate) fn insert_statement(entity: &Entity) -> String {
    let columns = entity.columns();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        sql(&entity.name.value),
        columns
            .iter()
            .map(|c| sql(&c.name))
            .collect::<Vec<_>>()
            .join(", "),
        placeholders_from(1, columns.len())
    )
}

/// `$1, $2, ...` from `first`.
pub(crate) fn placeholders_from(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(value: &str) -> Name {
        Name {
            value: value.into(),
            span: crate::diag::Span {
                line: 1,
                col: 1,
                len: 1,
            },
        }
    }

    fn entity(fields: &[(&str, Type)], owned: bool) -> Entity {
        Entity {
            name: name("item"),
            description: None,
            owner: owned.then(|| name("user_id")),
            read: if owned { Read::Owner } else { Read::All },
            managers: Vec::new(),
            fields: fields
                .iter()
                .map(|(field, ty)| Field::plain(name(field), ty.clone()))
                .collect(),
            indexes: Vec::new(),
            unique: Vec::new(),
            search: Vec::new(),
            removed: Vec::new(),
            renamed_from: None,
        }
    }

    fn string() -> Type {
        Type::String {
            min: None,
            max: None,
        }
    }

    fn optional(ty: Type) -> Type {
        Type::Optional(Box::new(ty))
    }

    #[test]
    fn a_patch_sets_each_field_only_when_sent_and_keeps_the_row_otherwise() {
        let key = ["\"id\" = $6".to_owned()];
        let sql = patch_sql(
            &entity(&[("name", string()), ("units", Type::INT)], false),
            &key,
        );
        assert_eq!(
            sql,
            "UPDATE \"item\" SET \"name\" = CASE WHEN $2 THEN $3 ELSE \"name\" END, \
             \"units\" = CASE WHEN $4 THEN $5 ELSE \"units\" END, \"updated_at\" = $1 \
             WHERE \"id\" = $6 AND ($7 IS NULL OR \"version\" = $7)"
        );
    }

    #[test]
    fn a_patch_of_an_owned_row_binds_the_key_the_viewer_then_the_expected_version() {
        let key = ["\"id\" = $4".to_owned()];
        let sql = patch_sql(&entity(&[("name", string())], true), &key);
        assert!(
            sql.ends_with(
                "WHERE \"id\" = $4 AND (\"user_id\" = $5) AND ($6 IS NULL OR \"version\" = $6)"
            ),
            "{sql}"
        );
    }

    #[test]
    fn a_patch_binds_a_flag_then_the_value_of_each_field() {
        let item = entity(
            &[
                ("name", string()),
                ("tags", optional(Type::List(Box::new(string())))),
                ("seen", optional(Type::Timestamp)),
            ],
            false,
        );
        let binds: Vec<String> = item
            .fields
            .iter()
            .map(|f| patch_binds(f).to_string())
            .collect();
        assert_eq!(
            binds,
            [
                ". bind (input . name . is_some ()) . bind (input . name . clone ())",
                ". bind (input . tags . is_some ()) . bind_json (& input . tags . as_ref () . and_then (Option :: as_ref))",
                ". bind (input . seen . is_some ()) . bind (input . seen . flatten ())",
            ]
        );
    }

    #[test]
    fn an_insert_binds_every_column_in_table_order() {
        let sql = insert_sql(&entity(&[("name", string())], true)).to_string();
        assert_eq!(
            sql,
            "\"INSERT INTO \\\"item\\\" (\\\"id\\\", \\\"user_id\\\", \\\"name\\\", \\\"created_at\\\", \\\"updated_at\\\", \\\"version\\\") VALUES ($1, $2, $3, $4, $5, $6)\""
        );
    }
}
