//! Routes: an operation on an entity, or an RPC behind a path.

use super::*;

/// A route as the spec writes it.
pub(super) enum ServiceRoute {
    /// An operation on an entity.
    Entity(Route),
    /// A route backed by an RPC.
    Rpc(RpcRoute),
    /// A route whose work is the user's code.
    Custom(CustomRoute),
}

/// The keys of a route that only an operation on an entity takes.
const ENTITY_ROUTE_KEYS: &[&str] = &[
    "create", "list", "get", "update", "delete", "emit", "mine", "filter", "sort", "input",
    "steps", "set", "when",
];

impl Resolver<'_> {
    pub(super) fn route(&mut self, key: &Node, value: &Node) -> Option<ServiceRoute> {
        let text = self.text(key, "route")?;
        let (method, path) = self.route_key(key, &text)?;
        let entries = self.entries(value, &format!("route `{text}`"), ROUTE_KEYS);
        let (per_ip, per_user) = self.route_limits(&entries, &text);
        let body_limit = entries.get("body_limit").and_then(|n| self.size(n));
        let timeout_ms = entries.get("timeout").and_then(|n| self.duration_ms(n));
        let public = entries
            .get("public")
            .and_then(|n| self.flag(n, "`public`"))
            .unwrap_or(false);
        let roles = entries
            .get("roles")
            .map(|n| self.names(n, "role"))
            .unwrap_or_default();
        if let Some(handler) = entries.get("handler") {
            if handler.as_str() != Some("custom") {
                self.d
                    .error(
                        handler.span,
                        "`handler` is `custom`: the route's work is your own Rust code",
                    )
                    .hint("leave `handler` out for a route svcgen writes whole");
                return None;
            }
            for (other, node, _) in entries.entries.iter().copied() {
                if ENTITY_ROUTE_KEYS.contains(&other) && !["input", "emit"].contains(&other)
                    || ["rpc", "with"].contains(&other)
                {
                    self.d
                        .error(node.span, format!("`{other}` does not go with `handler: custom`: your code does the work"))
                        .hint("a custom route takes `input`, `output`, `emit` (a list of events), `name`, `description`, `public`, `roles` and limits");
                }
            }
            let name = match entries.get("name") {
                Some(node) => self.name(node, "function name")?,
                None => Name {
                    value: CustomRoute::default_name(method, &path),
                    span: key.span,
                },
            };
            let input = self.each(entries.get("input"), "input", |r, k, v| r.field(k, v));
            let output = self.each(entries.get("output"), "output", |r, k, v| r.field(k, v));
            let emit = self.event_names(entries.get("emit"));
            return Some(ServiceRoute::Custom(CustomRoute {
                method,
                path,
                span: key.span,
                name,
                description: entries
                    .get("description")
                    .and_then(|n| self.text(n, "description")),
                input,
                output,
                emit,
                public,
                roles,
                per_ip,
                per_user,
                body_limit,
                timeout_ms,
            }));
        }
        for key in ["name", "output"] {
            if let Some(node) = entries.get(key) {
                self.d.error(
                    node.span,
                    format!("`{key}` is for routes with `handler: custom`"),
                );
            }
        }
        if let Some(rpc) = entries.get("rpc") {
            for (other, node, _) in entries.entries.iter().copied() {
                if ENTITY_ROUTE_KEYS.contains(&other) {
                    self.d
                        .error(node.span, format!("`{other}` does not go with `rpc`: the RPC is what the route does"))
                        .hint("a route either works on an entity (`create`, `list`, ...) or answers with an RPC (`rpc`)");
                }
            }
            let target = self.route_rpc(rpc)?;
            let description = entries
                .get("description")
                .and_then(|n| self.text(n, "description"));
            return Some(ServiceRoute::Rpc(RpcRoute {
                method,
                path,
                span: key.span,
                description,
                target,
                with: self.assignments(entries.get("with")),
                public,
                roles,
                per_ip,
                per_user,
                body_limit,
                timeout_ms,
            }));
        }
        for key in ["with", "description"] {
            if let Some(node) = entries.get(key) {
                self.d.error(
                    node.span,
                    format!("`{key}` is for routes backed by an RPC (`rpc:`)"),
                );
            }
        }
        let operations: Vec<(Operation, &Node)> = [
            Operation::Create,
            Operation::List,
            Operation::Get,
            Operation::Update,
            Operation::Delete,
        ]
        .into_iter()
        .filter_map(|op| entries.get(op.keyword()).map(|n| (op, n)))
        .collect();
        let (operation, entity_node) = match operations.as_slice() {
            [one] => *one,
            [] => {
                self.d.error(value.span, format!("route `{text}` does nothing"))
                    .hint("give it one operation: `create`, `list`, `get`, `update` or `delete`, with the entity as value, or `rpc: <Rpc>` to answer with an RPC");
                return None;
            }
            [_, second, ..] => {
                self.d.error(
                    second.1.span,
                    format!("route `{text}` has more than one operation"),
                );
                return None;
            }
        };
        let entity = self.name(entity_node, "entity name")?;
        let emit = entries.get("emit").and_then(|n| self.event_name(n));
        let mine = entries
            .get("mine")
            .and_then(|n| self.flag(n, "`mine`"))
            .unwrap_or(false);
        let filter = entries
            .get("filter")
            .map(|n| self.names(n, "field name"))
            .unwrap_or_default();
        let sort = entries
            .get("sort")
            .map(|n| self.names(n, "field name"))
            .unwrap_or_default();
        if operation != Operation::List
            && let Some((key, node)) = ["filter", "sort"]
                .iter()
                .find_map(|k| entries.get(k).map(|n| (k, n)))
        {
            self.d
                .error(node.span, format!("`{key}` is only for `list` routes"));
        }
        let input = entries
            .get("input")
            .map(|n| self.each(Some(n), "input", |r, k, v| r.field(k, v)));
        let steps = match entries.get("steps") {
            Some(node) => self.seq(node, "`steps`", |r, item| r.step(item)),
            None => Vec::new(),
        };
        let set = self.assignments(entries.get("set"));
        let when = self.assignments(entries.get("when"));
        if operation != Operation::Create
            && let Some(node) = entries.get("input")
        {
            self.d
                .error(node.span, "`input` is only for `create` routes");
        }
        if !matches!(operation, Operation::Create | Operation::Update)
            && let Some(node) = entries.get("set")
        {
            self.d.error(
                node.span,
                "`set` is for `create` routes and for `update` routes that change a row in a set way",
            );
        }
        if operation != Operation::Update
            && let Some(node) = entries.get("when")
        {
            self.d
                .error(node.span, "`when` is for `update` routes with `set`")
                .hint("e.g. `POST /orders/{id}/cancel: { update: order, set: { status: cancelled }, when: { status: pending } }`");
        }
        if matches!(operation, Operation::Create | Operation::List) && path.contains("{id}") {
            self.d
                .error(
                    key.span,
                    format!(
                        "a `{}` route has no row yet, so its path has no `{{id}}`",
                        operation.keyword()
                    ),
                )
                .hint("name the parent instead, e.g. `/posts/{post_id}/comments`");
        }
        Some(ServiceRoute::Entity(Route {
            method,
            path,
            span: key.span,
            operation,
            entity,
            emit,
            public,
            roles,
            mine,
            filter,
            sort,
            per_ip,
            per_user,
            body_limit,
            timeout_ms,
            input,
            steps,
            set,
            when,
        }))
    }

    /// `rate_limit: { per_ip, per_user }` of a route.
    fn route_limits(&mut self, entries: &Entries, text: &str) -> (Limit, Limit) {
        let Some(limits) = entries.get("rate_limit") else {
            return (Limit::Default, Limit::Default);
        };
        let limits = self.entries(
            limits,
            &format!("`rate_limit` of route `{text}`"),
            ROUTE_LIMIT_KEYS,
        );
        let per_ip = limits
            .get("per_ip")
            .map_or(Limit::Default, |n| self.limit(n));
        let per_user = limits
            .get("per_user")
            .map_or(Limit::Default, |n| self.limit(n));
        (per_ip, per_user)
    }

    /// The RPC of `rpc:`: `Name` (of the route's own service, which stays to be filled in) or
    /// `service.Name`.
    fn route_rpc(&mut self, node: &Node) -> Option<RpcRef> {
        let text = self.text(node, "RPC")?;
        if text.contains('.') {
            return self.rpc_ref(node);
        }
        Some(RpcRef {
            service: Name {
                value: String::new(),
                span: node.span,
            },
            rpc: Name {
                value: text,
                span: node.span,
            },
            span: node.span,
        })
    }

    pub(super) fn route_key(&mut self, key: &Node, text: &str) -> Option<(Method, String)> {
        let mut parts = text.split_whitespace();
        let (Some(method), Some(path), None) = (parts.next(), parts.next(), parts.next()) else {
            self.d.error(
                key.span,
                format!("route `{text}` must be written `METHOD /path`, e.g. `GET /notes`"),
            );
            return None;
        };
        let method = match method {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            other => {
                let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
                let hint = did_you_mean(&other.to_ascii_uppercase(), methods);
                self.d
                    .error(key.span, format!("unknown HTTP method `{other}`"))
                    .hint(hint.unwrap_or_else(|| "methods: GET, POST, PUT, PATCH, DELETE".into()));
                return None;
            }
        };
        let literal = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        };
        fn parameter(s: &str) -> Option<&str> {
            s.strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .filter(|name| crate::ident::is_snake(name))
        }
        let segments_ok = path.starts_with('/')
            && path.len() > 1
            && path[1..]
                .split('/')
                .all(|s| literal(s) || parameter(s).is_some());
        if !segments_ok {
            self.d
                .error(key.span, format!("`{path}` is not a route path"))
                .hint("use lower-case segments and parameters named like fields, e.g. `/posts/{post_id}/comments/{id}`");
            return None;
        }
        let names: Vec<&str> = path[1..].split('/').filter_map(parameter).collect();
        if let Some(twice) = names
            .iter()
            .enumerate()
            .find(|(i, name)| names[..*i].contains(name))
            .map(|(_, name)| name)
        {
            self.d.error(
                key.span,
                format!("`{path}` names the parameter `{twice}` twice"),
            );
            return None;
        }
        Some((method, path.to_string()))
    }
}
