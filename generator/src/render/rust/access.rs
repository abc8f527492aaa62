//! The access rules of an entity as SQL conditions and Rust: which rows a caller sees (`read:`)
//! and which it may change (its own, or every row for a manager), stated on the arguments of a
//! `svcgen_runtime::access::Viewer` so that one statement serves every caller.

use super::*;

/// Which rows a condition admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The rows the caller may read (a `mine` list: only the caller's own).
    Visible {
        /// The route lists only the caller's own rows.
        mine: bool,
    },
    /// The rows the caller may change.
    Write,
}

/// The condition `scope` puts on `entity`'s rows, its arguments numbered from `first`, with
/// the binds of those arguments (from a `viewer` in scope); `None` when every row passes.
pub(crate) fn condition(
    entity: &Entity,
    scope: Scope,
    first: usize,
) -> Option<(String, Vec<TokenStream>)> {
    let owner = sql(&entity.owner.as_ref()?.value);
    // The owner's own rows, or every row for a manager. Without manager roles the condition is
    // the owner's alone, which an index on the owner serves.
    let (own, binds) = if entity.managers.is_empty() {
        (
            format!("{owner} = ${first}"),
            vec![quote!(.bind(viewer.user))],
        )
    } else {
        (
            format!("${first} OR {owner} = ${}", first + 1),
            vec![quote!(.bind(viewer.manages)), quote!(.bind(viewer.user))],
        )
    };
    match scope {
        Scope::Visible { mine: true } => Some((
            format!("{owner} = ${first}"),
            vec![quote!(.bind(viewer.user))],
        )),
        Scope::Visible { mine: false } => match &entity.read {
            Read::All => None,
            Read::Owner => Some((format!("({own})"), binds)),
            Read::If(field) => Some((format!("({} = TRUE OR {own})", sql(&field.value)), binds)),
        },
        Scope::Write => Some((format!("({own})"), binds)),
    }
}

/// Whether finding one row by id needs the viewer (its owner may be the only one to see it).
pub(crate) fn find_needs_viewer(entity: &Entity) -> bool {
    entity.owner.is_some() && entity.read != Read::All
}

/// Whether a change must read the row first to tell a row the caller may not see (404) from
/// one it sees but may not change (403).
pub(crate) fn change_reads_first(entity: &Entity) -> bool {
    entity.owner.is_some() && entity.read != Read::Owner
}

/// Whether a route's handler decides with a [`viewer`] which rows the caller sees or changes.
pub(crate) fn uses_viewer(entity: &Entity, route: &Route) -> bool {
    match route.operation {
        Operation::Create => false,
        Operation::List => condition(entity, Scope::Visible { mine: route.mine }, 1).is_some(),
        Operation::Get => find_needs_viewer(entity),
        Operation::Update | Operation::Delete => entity.owner.is_some(),
    }
}

/// How a route's handler takes its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallerParam {
    /// Not at all: a public route that needs nobody.
    None,
    /// The caller when there is one: a public route of an owned entity, whose anonymous callers
    /// see what everyone may see.
    Maybe,
    /// The signed-in caller, used.
    Caller,
    /// The signed-in caller, required but not used.
    Unused,
}

/// How `route`'s handler takes its caller.
pub(crate) fn caller_of(entity: &Entity, route: &Route) -> CallerParam {
    let used = uses_viewer(entity, route)
        || (route.operation == Operation::Create && entity.owner.is_some())
        // Steps call other services for the signed-in caller.
        || (route.operation != Operation::Create && !route.steps.is_empty())
        || (route.operation == Operation::Update
            && route
                .set
                .iter()
                .any(|(_, value)| matches!(value, Expr::Caller | Expr::CallerRoles)));
    match (route.public, used) {
        (true, false) => CallerParam::None,
        (true, true) => CallerParam::Maybe,
        (false, true) => CallerParam::Caller,
        (false, false) => CallerParam::Unused,
    }
}

/// How a route's handler takes its caller, the parents its path names included (seeing an
/// owned parent needs the caller).
pub(crate) fn route_caller(lowered: &crate::lower::RouteIr) -> CallerParam {
    let own = caller_of(lowered.entity, lowered.model);
    if !super::paths::parents_need_caller(lowered) {
        return own;
    }
    match own {
        CallerParam::None => CallerParam::Maybe,
        CallerParam::Unused => CallerParam::Caller,
        used => used,
    }
}

/// The caller parameter of `route`'s handler.
pub(crate) fn caller_param(lowered: &crate::lower::RouteIr) -> TokenStream {
    match route_caller(lowered) {
        CallerParam::None => TokenStream::new(),
        CallerParam::Maybe => quote!(caller: MaybeCaller,),
        CallerParam::Caller => quote!(caller: Caller,),
        CallerParam::Unused => quote!(_caller: Caller,),
    }
}

/// `let viewer = ...;` for a route that [`uses_viewer`] (nothing for other routes).
pub(crate) fn viewer(entity: &Entity, route: &Route) -> TokenStream {
    if !uses_viewer(entity, route) {
        return TokenStream::new();
    }
    let managers = entity.managers.iter().map(|m| lit(&m.value));
    if route.public {
        quote!(let viewer = Viewer::maybe(caller.0.as_ref(), &[#(#managers),*]);)
    } else {
        quote!(let viewer = Viewer::of(&caller, &[#(#managers),*]);)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Span;

    fn name(text: &str) -> Name {
        Name {
            value: text.into(),
            span: Span::default(),
        }
    }

    fn post(read: Read) -> Entity {
        Entity {
            name: name("post"),
            description: None,
            owner: Some(name("author_id")),
            read,
            managers: vec![name("admin")],
            fields: vec![Field::plain(name("published"), Type::Bool)],
            indexes: Vec::new(),
            unique: Vec::new(),
            search: Vec::new(),
            removed: Vec::new(),
            renamed_from: None,
        }
    }

    fn sql_of(entity: &Entity, scope: Scope) -> Option<String> {
        condition(entity, scope, 2).map(|(sql, _)| sql)
    }

    #[test]
    fn each_read_rule_is_one_condition_on_the_viewer() {
        let visible = Scope::Visible { mine: false };
        assert_eq!(
            sql_of(&post(Read::Owner), visible).as_deref(),
            Some("($2 OR \"author_id\" = $3)")
        );
        assert_eq!(sql_of(&post(Read::All), visible), None);
        assert_eq!(
            sql_of(&post(Read::If(name("published"))), visible).as_deref(),
            Some("(\"published\" = TRUE OR $2 OR \"author_id\" = $3)")
        );
        // Without managers, only the owner's condition: an index on the owner serves it.
        let unmanaged = Entity {
            managers: Vec::new(),
            ..post(Read::Owner)
        };
        assert_eq!(
            sql_of(&unmanaged, visible).as_deref(),
            Some("(\"author_id\" = $2)")
        );
        assert_eq!(
            sql_of(&post(Read::All), Scope::Visible { mine: true }).as_deref(),
            Some("\"author_id\" = $2")
        );
        // Whoever reads it, only the owner or a manager writes it.
        for read in [Read::Owner, Read::All, Read::If(name("published"))] {
            assert_eq!(
                sql_of(&post(read), Scope::Write).as_deref(),
                Some("($2 OR \"author_id\" = $3)")
            );
        }
        let shared = Entity {
            owner: None,
            ..post(Read::All)
        };
        assert_eq!(sql_of(&shared, Scope::Write), None);
    }

    #[test]
    fn a_change_reads_first_where_others_see_the_row() {
        assert!(!change_reads_first(&post(Read::Owner)));
        assert!(change_reads_first(&post(Read::All)));
        assert!(find_needs_viewer(&post(Read::Owner)));
        assert!(!find_needs_viewer(&post(Read::All)));
    }
}
