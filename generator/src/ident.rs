//! Every identifier svcgen writes goes through here: spec names are checked once, then turned into
//! Rust, SQL, crate and environment names the same way everywhere.

use crate::model::{Operation, Route};
use proc_macro2::{Ident, Span};

/// Words Rust reserves (strict and reserved, 2024 edition).
const RUST_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "Self", "static", "struct", "super", "trait", "true", "try", "type",
    "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Words that cannot be raw identifiers in Rust (`r#self` is invalid).
const NOT_RAW: &[&str] = &["crate", "self", "Self", "super"];

/// Whether `name` is a lower snake_case identifier: `[a-z][a-z0-9_]*`, no double or trailing `_`.
pub fn is_snake(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.contains("__")
        && !name.ends_with('_')
}

/// Whether `name` is reserved by Rust.
pub fn is_rust_keyword(name: &str) -> bool {
    RUST_KEYWORDS.contains(&name)
}

/// Why `name` cannot be used as a name in a spec, if it cannot.
pub fn snake_problem(name: &str) -> Option<String> {
    if !is_snake(name) {
        return Some(format!(
            "`{name}` is not a valid name: use lower snake_case (a-z, 0-9, `_`, starting with a letter), e.g. `{}`",
            to_snake(name)
        ));
    }
    if NOT_RAW.contains(&name) {
        return Some(format!("`{name}` is reserved by Rust and cannot be a name"));
    }
    None
}

/// Best-effort snake_case of any text (for hints).
pub fn to_snake(text: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in text.chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            previous_lower = false;
        }
    }
    let trimmed = out.trim_matches('_').to_string();
    match trimmed.chars().next() {
        Some(c) if c.is_ascii_digit() => format!("n{trimmed}"),
        None => "name".into(),
        _ => trimmed,
    }
}

/// PascalCase of a snake or dotted name: `user.logged_in` -> `UserLoggedIn`.
pub fn to_pascal(name: &str) -> String {
    name.split(['_', '.', '-'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A Rust identifier for a snake name: keywords become raw identifiers (`type` -> `r#type`).
pub fn rust_ident(name: &str) -> Ident {
    if RUST_KEYWORDS.contains(&name) && !NOT_RAW.contains(&name) {
        Ident::new_raw(name, Span::call_site())
    } else {
        Ident::new(name, Span::call_site())
    }
}

/// A Rust type identifier from a snake or dotted name.
pub fn rust_type(name: &str) -> Ident {
    let pascal = to_pascal(name);
    if pascal == "Self" {
        Ident::new("SelfType", Span::call_site())
    } else {
        Ident::new(&pascal, Span::call_site())
    }
}

/// A Rust identifier made of several parts, e.g. (`create`, `order`) -> `create_order`.
pub fn rust_joined(parts: &[&str]) -> Ident {
    rust_ident(&parts.join("_"))
}

/// A SQL identifier, always quoted so that names like `order` or `user` work in every engine.
pub fn sql(name: &str) -> String {
    format!("\"{name}\"")
}

/// The longest constraint name every engine keeps whole (PostgreSQL cuts names at 63 bytes).
const MAX_CONSTRAINT_NAME: usize = 63;

/// The name of a table's unique key (`suffix` `key`) or reference (`fkey`) on `fields`, as the
/// migration declares it and the generated code looks it up: `profile_handle_key`. A longer
/// name keeps its first 54 characters and gets a hash of the whole name, so that two long names
/// sharing a beginning stay distinct.
pub fn constraint_name(table: &str, fields: &[&str], suffix: &str) -> String {
    let name = format!("{table}_{}_{suffix}", fields.join("_"));
    if name.len() <= MAX_CONSTRAINT_NAME {
        return name;
    }
    // FNV-1a: stable across Rust versions and platforms, unlike `DefaultHasher`.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    let head: String = name.chars().take(MAX_CONSTRAINT_NAME - 9).collect();
    format!("{head}_{hash:08x}")
}

/// The package name of a crate of the generated workspace: `notes-notification`.
pub fn crate_name(system: &str, part: &str) -> String {
    format!("{system}-{part}").replace('_', "-")
}

/// The Rust path of such a crate: `notes_notification`.
pub fn crate_ident(system: &str, part: &str) -> Ident {
    Ident::new(
        &crate_name(system, part).replace('-', "_"),
        Span::call_site(),
    )
}

/// The environment variable holding a service's database URL: `NOTES_DATABASE_URL`.
pub fn database_url_env(service: &str) -> String {
    format!("{}_DATABASE_URL", service.to_ascii_uppercase())
}

/// The environment variable telling the gateway where a service listens: `SVCGEN_NOTES_URL`.
pub fn service_url_env(service: &str) -> String {
    format!("SVCGEN_{}_URL", service.to_ascii_uppercase())
}

/// The Rust function of a route's handler: `create_note`, `list_notes`, `get_note`, ...
pub fn handler_name(routes: &[Route], route: &Route) -> Ident {
    let base = operation_name(route);
    let first = routes.iter().find(|r| operation_name(r) == base);
    if first.is_none_or(|first| std::ptr::eq(first, route)) {
        return rust_ident(&base);
    }
    // Several routes of the service do the same to the same entity: the first declared keeps
    // the plain name (adding a route renames no other), the paths of the others tell them
    // apart (`list_posts_at_me_posts` for `GET /me/posts`).
    let path: Vec<String> = route
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_matches(['{', '}']).replace('-', "_"))
        .collect();
    let mut name = format!("{base}_at_{}", path.join("_"));
    // ... and their methods, on one path (`PUT` and `PATCH` both updating).
    if routes
        .iter()
        .any(|r| operation_name(r) == base && r.path == route.path && r.method != route.method)
    {
        name = format!("{name}_{}", route.method.as_str().to_ascii_lowercase());
    }
    rust_ident(&name)
}

/// What a route does to which entity: `create_note`, `list_notes`.
fn operation_name(route: &Route) -> String {
    let entity = &route.entity.value;
    match route.operation {
        Operation::Create => format!("create_{entity}"),
        Operation::List => format!("list_{}", plural(entity)),
        Operation::Get => format!("get_{entity}"),
        Operation::Update => format!("update_{entity}"),
        Operation::Delete => format!("delete_{entity}"),
    }
}

/// The plural of an English entity name, good enough for handler names (`note` -> `notes`).
fn plural(name: &str) -> String {
    if name.ends_with('s') || name.ends_with('x') || name.ends_with("ch") || name.ends_with("sh") {
        format!("{name}es")
    } else if name.ends_with('y')
        && !name.ends_with("ay")
        && !name.ends_with("ey")
        && !name.ends_with("oy")
    {
        format!("{}ies", &name[..name.len() - 1])
    } else {
        format!("{name}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Method;

    #[test]
    fn names_are_checked_and_converted() {
        assert!(is_snake("notes") && is_snake("user_id2"));
        for bad in ["Notes", "2fa", "a-b", "a__b", "a_", "", "_a"] {
            assert!(!is_snake(bad), "{bad}");
        }
        assert_eq!(to_snake("Notes-Service"), "notes_service");
        assert_eq!(to_snake("UserRegistered"), "user_registered");
        assert_eq!(to_snake("2fa"), "n2fa");
        assert_eq!(to_pascal("user.logged_in"), "UserLoggedIn");
        assert_eq!(rust_ident("type").to_string(), "r#type");
        assert_eq!(rust_ident("order").to_string(), "order");
        assert_eq!(rust_type("self").to_string(), "SelfType");
        assert!(snake_problem("self").is_some());
        assert_eq!(sql("order"), "\"order\"");
        assert_eq!(
            crate_name("my_shop", "order_history"),
            "my-shop-order-history"
        );
    }

    fn route(method: Method, path: &str, operation: Operation, entity: &str) -> Route {
        let span = crate::diag::Span {
            line: 1,
            col: 1,
            len: 1,
        };
        Route {
            method,
            path: path.into(),
            span,
            operation,
            entity: crate::model::Name {
                value: entity.into(),
                span,
            },
            emit: None,
            public: false,
            roles: Vec::new(),
            mine: false,
            filter: Vec::new(),
            sort: Vec::new(),
            per_ip: crate::model::Limit::Default,
            per_user: crate::model::Limit::Default,
            body_limit: None,
            timeout_ms: None,
            input: None,
            steps: Vec::new(),
            set: Vec::new(),
            when: Vec::new(),
        }
    }

    #[test]
    fn handlers_are_named_after_the_operation_and_the_entity() {
        let name = |operation, entity| {
            let route = route(Method::Get, "/x", operation, entity);
            handler_name(std::slice::from_ref(&route), &route).to_string()
        };
        assert_eq!(name(Operation::Create, "note"), "create_note");
        assert_eq!(name(Operation::List, "note"), "list_notes");
        assert_eq!(name(Operation::List, "box"), "list_boxes");
        assert_eq!(name(Operation::List, "category"), "list_categories");
        assert_eq!(name(Operation::List, "day"), "list_days");
        assert_eq!(name(Operation::List, "match"), "list_matches");
        assert_eq!(name(Operation::Get, "type"), "get_type");
        assert_eq!(name(Operation::Update, "order"), "update_order");
        assert_eq!(name(Operation::Delete, "self"), "delete_self");
        // Routes that do the same to one entity are told apart by their paths.
        let routes = [
            route(Method::Get, "/posts", Operation::List, "post"),
            route(Method::Get, "/me/posts", Operation::List, "post"),
            route(
                Method::Get,
                "/users/{user_id}/posts",
                Operation::List,
                "post",
            ),
            route(Method::Patch, "/posts/{id}", Operation::Update, "post"),
            route(Method::Put, "/posts/{id}", Operation::Update, "post"),
        ];
        let names: Vec<String> = routes
            .iter()
            .map(|r| handler_name(&routes, r).to_string())
            .collect();
        assert_eq!(
            names,
            [
                "list_posts",
                "list_posts_at_me_posts",
                "list_posts_at_users_user_id_posts",
                "update_post",
                "update_post_at_posts_id_put",
            ]
        );
    }
}
