//! Scalars and shapes: mappings with their allowed keys, names, texts, durations, sizes,
//! rates and the other values a spec writes in one word.

use super::*;

impl Resolver<'_> {
    pub(super) fn entries<'a>(
        &mut self,
        node: &'a Node,
        what: &str,
        known: &[&'a str],
    ) -> Entries<'a> {
        let mut entries = Vec::new();
        match &node.kind {
            Kind::Map(items) => {
                let written: Vec<&str> = items.iter().filter_map(|(k, _)| k.as_str()).collect();
                for (key, value) in items {
                    let Some(k) = key.as_str() else {
                        self.d
                            .error(key.span, format!("keys of {what} must be words"));
                        continue;
                    };
                    if known.contains(&k) {
                        entries.push((k, key, value));
                        continue;
                    }
                    let meant = closest(k, known.iter().copied());
                    let listed = known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    self.d
                        .error(key.span, format!("unknown key `{k}` in {what}"))
                        .hint(meant.map_or_else(
                            || format!("allowed here: {listed}"),
                            |m| format!("did you mean `{m}`?"),
                        ));
                    // Read a likely typo as the key it is close to, unless that key is written
                    // too: the rest of the spec is then checked as intended, without errors that
                    // only follow from the typo (a `stor:` reported again as a missing store).
                    if let Some(meant) = meant.filter(|m| !written.contains(m)) {
                        entries.push((meant, key, value));
                    }
                }
            }
            Kind::Null => {}
            _ => {
                self.d.error(
                    node.span,
                    format!("{what} must be a mapping, found {}", node.shape()),
                );
            }
        }
        Entries { entries }
    }

    /// Calls `each` for every entry of an optional mapping of named things.
    pub(super) fn each<T>(
        &mut self,
        node: Option<&Node>,
        what: &str,
        mut each: impl FnMut(&mut Self, &Node, &Node) -> Option<T>,
    ) -> Vec<T> {
        let Some(node) = node else { return Vec::new() };
        match &node.kind {
            Kind::Map(items) => items.iter().filter_map(|(k, v)| each(self, k, v)).collect(),
            Kind::Null => Vec::new(),
            _ => {
                self.d.error(
                    node.span,
                    format!("`{what}` must be a mapping, found {}", node.shape()),
                );
                Vec::new()
            }
        }
    }

    /// `brokers: [rabbitmq, nats]`; RabbitMQ when absent.
    pub(super) fn brokers(&mut self, node: Option<&Node>) -> Vec<Broker> {
        let Some(node) = node else {
            return vec![Broker::Rabbitmq];
        };
        let mut brokers = Vec::new();
        for (text, span) in self.texts(node, "brokers") {
            match text.as_str() {
                "rabbitmq" => brokers.push(Broker::Rabbitmq),
                "nats" => brokers.push(Broker::Nats),
                other => {
                    let hint = did_you_mean(other, ["rabbitmq", "nats"])
                        .unwrap_or_else(|| "brokers: `rabbitmq`, `nats`".into());
                    self.d
                        .error(span, format!("unknown broker `{other}`"))
                        .hint(hint);
                }
            }
        }
        if brokers.is_empty() {
            self.d
                .error(node.span, "`brokers` lists no broker")
                .hint("e.g. `brokers: [rabbitmq]`");
        }
        brokers.sort();
        brokers.dedup();
        brokers
    }

    /// A list of names, e.g. `[user, admin]`.
    pub(super) fn names(&mut self, node: &Node, what: &str) -> Vec<Name> {
        match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .filter_map(|item| self.name(item, what))
                .collect(),
            _ => {
                self.d.error(
                    node.span,
                    format!("a list of {what}s is expected, e.g. `[admin]`"),
                );
                Vec::new()
            }
        }
    }

    /// A list of free texts, e.g. origins.
    pub(super) fn texts(&mut self, node: &Node, what: &str) -> Vec<(String, Span)> {
        match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .filter_map(|item| self.text(item, what).map(|t| (t, item.span)))
                .collect(),
            _ => {
                self.d.error(node.span, format!("`{what}` must be a list"));
                Vec::new()
            }
        }
    }

    pub(super) fn cors(&mut self, node: &Node) -> Option<Cors> {
        let entries = self.entries(node, "`cors`", CORS_KEYS);
        let origins = entries
            .get("origins")
            .map(|n| self.texts(n, "origins"))
            .unwrap_or_default();
        let credentials = entries
            .get("credentials")
            .and_then(|n| self.flag(n, "`credentials`"))
            .unwrap_or(false);
        if origins.is_empty() {
            self.d
                .error(
                    node.span,
                    "`cors` needs `origins`: the web origins allowed to call the API",
                )
                .hint("e.g. `cors: { origins: [https://app.example.com] }`, or `[\"*\"]` for any");
        }
        for (origin, span) in &origins {
            let scheme = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let valid =
                origin == "*" || scheme.is_some_and(|host| !host.is_empty() && !host.contains('/'));
            if !valid {
                self.d
                    .error(*span, format!("`{origin}` is not an origin"))
                    .hint("write `https://host[:port]` without a path, or `*`");
            }
        }
        if origins.len() > 1 && origins.iter().any(|(o, _)| o == "*") {
            self.d
                .error(
                    node.span,
                    "origin `*` allows every origin and cannot be listed with others",
                )
                .hint("keep only `\"*\"`, or list the origins");
        }
        let methods = entries
            .get("methods")
            .map(|n| self.texts(n, "methods"))
            .unwrap_or_default();
        for (method, span) in &methods {
            if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
                .contains(&method.as_str())
            {
                self.d
                    .error(*span, format!("`{method}` is not an HTTP method"))
                    .hint("methods: GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS");
            }
        }
        let headers = entries
            .get("headers")
            .map(|n| self.texts(n, "headers"))
            .unwrap_or_default();
        for (header, span) in &headers {
            if header.is_empty()
                || !header
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                self.d
                    .error(*span, format!("`{header}` is not a header name"))
                    .hint("letters, digits and `-`, e.g. `x-request-id`");
            }
        }
        if credentials && origins.iter().any(|(o, _)| o == "*") {
            self.d
                .error(
                    node.span,
                    "`credentials: true` cannot be combined with origin `*`",
                )
                .hint("list the origins that may send credentials");
        }
        let max_age_secs = entries
            .get("max_age")
            .and_then(|n| self.duration(n))
            .map_or(600, |s| s as u64);
        let methods = entries
            .get("methods")
            .map(|n| self.texts(n, "methods"))
            .unwrap_or_default();
        let headers = entries
            .get("headers")
            .map(|n| self.texts(n, "headers"))
            .unwrap_or_default();
        Some(Cors {
            origins: origins.into_iter().map(|(o, _)| o).collect(),
            methods: methods.into_iter().map(|(m, _)| m).collect(),
            headers: headers.into_iter().map(|(h, _)| h).collect(),
            credentials,
            max_age_secs,
        })
    }

    /// `10/min`, `5/s`, `1000/h`, or `off`.
    pub(super) fn limit(&mut self, node: &Node) -> Limit {
        let Some(text) = self.text(node, "rate limit") else {
            return Limit::Default;
        };
        if text == "off" {
            return Limit::Off;
        }
        let parsed = text.split_once('/').and_then(|(count, unit)| {
            let requests: u32 = count.trim().parse().ok().filter(|n| *n > 0)?;
            let per_secs = match unit.trim() {
                "s" | "sec" | "second" => 1,
                "min" | "minute" => 60,
                "h" | "hour" => 3600,
                _ => return None,
            };
            Some(Limit::Rate { requests, per_secs })
        });
        parsed.unwrap_or_else(|| {
            self.d
                .error(node.span, format!("`{text}` is not a rate limit"))
                .hint("write requests per unit, e.g. `10/min`, `5/s`, `1000/h`, or `off`");
            Limit::Default
        })
    }

    /// `512KiB`, `1MiB`, `2000B`.
    pub(super) fn size(&mut self, node: &Node) -> Option<u64> {
        let text = self.text(node, "size")?;
        let (number, factor) = if let Some(n) = text.strip_suffix("MiB") {
            (n, 1024 * 1024)
        } else if let Some(n) = text.strip_suffix("KiB") {
            (n, 1024)
        } else if let Some(n) = text.strip_suffix('B') {
            (n, 1)
        } else {
            ("", 0)
        };
        let parsed = number
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .and_then(|n| n.checked_mul(factor));
        if parsed.is_none() {
            self.d
                .error(node.span, format!("`{text}` is not a size"))
                .hint("write a whole number and a unit: `64KiB`, `1MiB`, `5000B`");
        }
        parsed
    }

    /// A duration in milliseconds: `500ms`, `5s`, `2m`.
    pub(super) fn duration_ms(&mut self, node: &Node) -> Option<u64> {
        let millis = node
            .as_str()
            .and_then(|t| t.strip_suffix("ms"))
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n > 0);
        if millis.is_some() {
            return millis;
        }
        self.duration(node).map(|secs| secs as u64 * 1000)
    }

    pub(super) fn flag(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.as_str() {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => {
                self.d
                    .error(node.span, format!("{what} must be `true` or `false`"));
                None
            }
        }
    }

    pub(super) fn count(&mut self, node: &Node, what: &str, min: u32, max: u32) -> Option<u32> {
        let value = node
            .as_str()
            .and_then(|t| t.parse::<u32>().ok())
            .filter(|n| (min..=max).contains(n));
        if value.is_none() {
            self.d.error(
                node.span,
                format!("{what} must be a whole number from {min} to {max}"),
            );
        }
        value
    }

    pub(super) fn text(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.as_str() {
            Some(text) => Some(text.to_string()),
            None => {
                self.d.error(
                    node.span,
                    format!("{what} must be a single value, found {}", node.shape()),
                );
                None
            }
        }
    }

    pub(super) fn name(&mut self, node: &Node, what: &str) -> Option<Name> {
        let value = self.text(node, what)?;
        if let Some(problem) = ident::snake_problem(&value) {
            self.d
                .error(node.span, format!("invalid {what}: {problem}"));
            return None;
        }
        Some(Name {
            value,
            span: node.span,
        })
    }

    /// The name of something declared here: an invalid one is reported, and what it names is
    /// still read (under the name as written) so that its own problems are reported too.
    pub(super) fn declared_name(&mut self, node: &Node, what: &str) -> Option<Name> {
        let value = self.text(node, what)?;
        if let Some(problem) = ident::snake_problem(&value) {
            self.d
                .error(node.span, format!("invalid {what}: {problem}"));
        }
        Some(Name {
            value,
            span: node.span,
        })
    }

    pub(super) fn event_name(&mut self, node: &Node) -> Option<Name> {
        let value = self.text(node, "event name")?;
        let segments: Vec<&str> = value.split('.').collect();
        if segments.len() < 2 || segments.iter().any(|s| !ident::is_snake(s)) {
            let suggestion = ident::to_snake(&value).replacen('_', ".", 1);
            self.d.error(node.span, format!("invalid event name `{value}`: use dotted lower snake_case, e.g. `user.registered`"))
                .hint(format!("perhaps `{suggestion}`"));
            return None;
        }
        Some(Name {
            value,
            span: node.span,
        })
    }

    pub(super) fn duration(&mut self, node: &Node) -> Option<i64> {
        let text = self.text(node, "duration")?;
        let parsed = text.len().checked_sub(1).and_then(|split| {
            let (number, unit) = text.split_at(split);
            let n: i64 = number.parse().ok().filter(|n| *n > 0)?;
            let factor = match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                _ => return None,
            };
            n.checked_mul(factor)
        });
        if parsed.is_none() {
            self.d
                .error(node.span, format!("`{text}` is not a duration"))
                .hint("write a whole number and a unit: `90s`, `15m`, `12h`, `30d`");
        }
        parsed
    }
}
