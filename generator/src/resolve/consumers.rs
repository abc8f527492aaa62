//! Event consumers: what a service does when an event arrives, one action written inline or a
//! `do:` list of them.

use super::*;

impl Resolver<'_> {
    pub(super) fn consumer(&mut self, key: &Node, value: &Node) -> Option<Consumer> {
        let event = self.event_name(key)?;
        let what = format!("consumer of `{}`", event.value);
        let entries = self.entries(value, &what, CONSUMER_KEYS);
        let critical = entries
            .get("critical")
            .and_then(|n| self.flag(n, "`critical`"))
            .unwrap_or(false);
        let attempts = entries
            .get("attempts")
            .and_then(|n| self.count(n, "`attempts`", 1, 100))
            .unwrap_or(DEFAULT_ATTEMPTS);
        if entries.get("handler").is_some() {
            let default = format!("on_{}", event.value.replace('.', "_"));
            let custom = self.custom_code(&entries, &what, default, &["critical", "attempts"])?;
            return Some(Consumer {
                event,
                critical,
                attempts,
                actions: Vec::new(),
                custom: Some(custom),
            });
        }
        if let Some(node) = entries.get("name") {
            self.d
                .error(node.span, "`name` is for a consumer with `handler: custom`");
        }
        let inline = entries
            .entries
            .iter()
            .any(|(k, _, _)| ACTION_KEYWORDS.contains(k) || ACTION_MODIFIERS.contains(k));
        let nothing = |r: &mut Self| {
            r.d
                .error(value.span, format!("the {what} does nothing"))
                .hint("give it an action, e.g. `create: <entity>` with `set: { field: $event.field }`, or `notify: { user: user_id, kind: welcome, message: ... }`");
        };
        let actions = match (entries.get("do"), inline) {
            (Some(list), false) => {
                let actions = self.seq(list, "`do`", |r, item| {
                    let entries = r.entries(item, "an action", &action_keys());
                    r.action(item, &entries)
                });
                if actions.is_empty() && matches!(&list.kind, Kind::Seq(items) if items.is_empty())
                {
                    nothing(self);
                }
                actions
            }
            (Some(_), true) => {
                let at = entries
                    .entries
                    .iter()
                    .find(|(k, _, _)| *k == "do")
                    .map_or(value.span, |(_, key, _)| key.span);
                self.d
                    .error(
                        at,
                        format!("the {what} has actions both inline and in `do`"),
                    )
                    .hint("move the inline action into the `do` list");
                return None;
            }
            (None, true) => vec![self.action(value, &entries)?],
            (None, false) => {
                nothing(self);
                return None;
            }
        };
        Some(Consumer {
            event,
            critical,
            attempts,
            actions,
            custom: None,
        })
    }

    /// A scheduled job: `every` or `cron`, and a `do` list of actions.
    pub(super) fn job(&mut self, key: &Node, value: &Node) -> Option<Job> {
        let name = self.declared_name(key, "job name")?;
        let what = format!("job `{}`", name.value);
        let entries = self.entries(value, &what, JOB_KEYS);
        let description = entries
            .get("description")
            .and_then(|n| self.text(n, "description"));
        let schedule = match (entries.get("every"), entries.get("cron")) {
            (Some(every), None) => {
                let secs = self.duration(every)?;
                if secs < 1 {
                    self.d.error(every.span, "a job runs at most every second");
                    return None;
                }
                JobSchedule::Every(u64::try_from(secs).ok()?)
            }
            (None, Some(cron)) => {
                let text = self.text(cron, "cron expression")?;
                let problem = match svcgen_cron::Cron::parse(&text) {
                    Err(problem) => Some(problem),
                    Ok(parsed) if parsed.next_after(Default::default()).is_none() => {
                        Some("it names no time that ever comes".into())
                    }
                    Ok(_) => None,
                };
                if let Some(problem) = problem {
                    self.d
                        .error(cron.span, format!("bad cron expression `{text}`: {problem}"))
                        .hint("five fields in UTC: minute hour day-of-month month day-of-week, e.g. `0 3 * * *` for 03:00 every day");
                    return None;
                }
                JobSchedule::Cron(text)
            }
            (Some(_), Some(cron)) => {
                self.d
                    .error(cron.span, format!("{what} has both `every` and `cron`"))
                    .hint("keep one schedule");
                return None;
            }
            (None, None) => {
                self.d
                    .error(value.span, format!("{what} has no schedule"))
                    .hint("add `every: 1h` or `cron: \"0 3 * * *\"` (UTC)");
                return None;
            }
        };
        if entries.get("handler").is_some() {
            let custom = self.custom_code(
                &entries,
                &what,
                name.value.clone(),
                &["description", "every", "cron"],
            )?;
            return Some(Job {
                name,
                description,
                schedule,
                actions: Vec::new(),
                custom: Some(custom),
            });
        }
        for key in ["name", "emit"] {
            if let Some(node) = entries.get(key) {
                self.d.error(
                    node.span,
                    format!("`{key}` is for a job with `handler: custom`; its actions go in `do:`"),
                );
            }
        }
        let actions = match entries.get("do") {
            Some(list) => self.seq(list, "`do`", |r, item| {
                let entries = r.entries(item, "an action", &action_keys());
                r.action(item, &entries)
            }),
            None => {
                self.d
                    .error(value.span, format!("{what} does nothing"))
                    .hint("give it `do:`, a list of actions: `call`, `create`, `upsert`, `update`, `delete`, `sql`, `emit`");
                Vec::new()
            }
        };
        Some(Job {
            name,
            description,
            schedule,
            actions,
            custom: None,
        })
    }

    /// The events custom code may emit (`emit:`, a list or one name).
    pub(super) fn event_names(&mut self, node: Option<&Node>) -> Vec<Name> {
        match node {
            Some(node) if matches!(node.kind, Kind::Seq(_)) => {
                self.seq(node, "`emit`", |r, item| r.event_name(item))
            }
            Some(node) => self.event_name(node).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// `handler: custom` of a consumer or job (`what`): the function's `name` (`default`
    /// without one) and the events it may `emit`. Any key but those and `allowed` is an error.
    pub(super) fn custom_code(
        &mut self,
        entries: &Entries,
        what: &str,
        default: String,
        allowed: &[&str],
    ) -> Option<CustomCode> {
        let handler = entries.get("handler")?;
        if handler.as_str() != Some("custom") {
            self.d
                .error(
                    handler.span,
                    "`handler` is `custom`: the work is your own Rust code",
                )
                .hint("leave `handler` out and list the actions instead");
            return None;
        }
        for (key, node, _) in entries.entries.iter().copied() {
            if !["handler", "name", "emit"].contains(&key) && !allowed.contains(&key) {
                self.d
                    .error(node.span, format!("`{key}` does not go with `handler: custom`: the {what} is your code"))
                    .hint("a custom consumer or job takes `name` and `emit` (a list of events) beside its settings");
            }
        }
        let name = match entries.get("name") {
            Some(node) => self.name(node, "function name")?,
            None => Name {
                value: default,
                span: handler.span,
            },
        };
        let emit = self.event_names(entries.get("emit"));
        Some(CustomCode { name, emit })
    }

    /// One action: its keyword (exactly one of [`ACTION_KEYWORDS`]) and the modifiers it takes.
    fn action(&mut self, node: &Node, entries: &Entries) -> Option<Action> {
        let written: Vec<(&str, &Node, &Node)> = entries
            .entries
            .iter()
            .copied()
            .filter(|(k, _, _)| ACTION_KEYWORDS.contains(k))
            .collect();
        let (keyword, keyword_node, value) = match written.as_slice() {
            [one] => *one,
            [] => {
                self.d
                    .error(node.span, "an action needs one of `create`, `upsert`, `update`, `delete`, `sql`, `emit`, `call` or `notify`");
                return None;
            }
            [_, second, ..] => {
                self.d
                    .error(
                        second.1.span,
                        format!(
                            "one action per item: `{}` and `{}` are two",
                            written[0].0, second.0
                        ),
                    )
                    .hint("write each action as its own item of a `do:` list");
                return None;
            }
        };
        let allowed: &[&str] = match keyword {
            "create" => &["set"],
            "upsert" => &["set", "key"],
            "update" => &["set", "where"],
            "delete" => &["where"],
            "emit" => &["with"],
            "call" => &["with", "as"],
            _ => &[],
        };
        for (modifier, modifier_node, _) in entries.entries.iter().copied() {
            if ACTION_MODIFIERS.contains(&modifier) && !allowed.contains(&modifier) {
                let takes = if allowed.is_empty() {
                    "takes none".to_owned()
                } else {
                    format!(
                        "takes {}",
                        allowed
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    )
                };
                self.d.error(
                    modifier_node.span,
                    format!("`{modifier}` does not go with `{keyword}`: `{keyword}` {takes}"),
                );
            }
        }
        let span = keyword_node.span;
        match keyword {
            "notify" => self.notify(value),
            "sql" => Some(Action::Sql {
                sql: self.text(value, "`sql`")?,
                span: value.span,
            }),
            "emit" => Some(Action::Emit {
                event: self.event_name(value)?,
                with: self.values(entries.get("with"), "with"),
            }),
            "call" => Some(Action::Call {
                call: Call {
                    target: self.rpc_ref(value)?,
                    with: self.values(entries.get("with"), "with"),
                },
                name: entries.get("as").and_then(|n| self.name(n, "call name")),
            }),
            _ => {
                let entity = self.name(value, "entity name")?;
                let kind = match keyword {
                    "create" => WriteKind::Create,
                    "upsert" => {
                        let Some(key) = entries.get("key") else {
                            self.d
                                .error(span, format!("`upsert: {}` needs `key`: the unique key that finds the row to change", entity.value))
                                .hint("e.g. `key: user_id`, or `key: [post_id, user_id]`");
                            return None;
                        };
                        WriteKind::Upsert {
                            key: self.key_fields(key)?,
                        }
                    }
                    "update" => WriteKind::Update,
                    _ => WriteKind::Delete,
                };
                Some(Action::Write(Write {
                    kind,
                    entity,
                    set: self.values(entries.get("set"), "set"),
                    filter: self.values(entries.get("where"), "where"),
                    span,
                }))
            }
        }
    }

    /// `key: field` or `key: [field, ...]`.
    fn key_fields(&mut self, node: &Node) -> Option<Vec<Name>> {
        let fields = match &node.kind {
            Kind::Seq(_) => self.seq(node, "`key`", |r, item| r.name(item, "field name")),
            _ => vec![self.name(node, "field name")?],
        };
        (!fields.is_empty()).then_some(fields)
    }

    /// A mapping of field names to values (`set:`, `where:`, `with:`).
    fn values(&mut self, node: Option<&Node>, what: &str) -> Vec<(Name, Expr)> {
        self.each(node, what, |r, k, v| {
            let name = r.name(k, "field name")?;
            Some((name, r.expr(v)?))
        })
    }

    /// `notify: { user | role, kind, message }`.
    fn notify(&mut self, notify: &Node) -> Option<Action> {
        let fields = self.entries(notify, "`notify`", NOTIFY_KEYS);
        let required = |r: &mut Self, key: &str| match fields.get(key) {
            Some(node) => r.text(node, key).map(|value| Name {
                value,
                span: node.span,
            }),
            None => {
                r.d.error(notify.span, format!("`notify` needs `{key}`"));
                None
            }
        };
        let to = match (fields.get("user"), fields.get("role")) {
            (Some(user), None) => self.text(user, "user").map(|value| {
                Recipient::User(Name {
                    value,
                    span: user.span,
                })
            }),
            (None, Some(role)) => self.name(role, "role").map(Recipient::Role),
            (Some(_), Some(role)) => {
                self.d.error(
                    role.span,
                    "`notify` goes to a `user` or to a `role`, not both",
                );
                None
            }
            (None, None) => {
                self.d
                    .error(
                        notify.span,
                        "`notify` needs `user` (an event field) or `role`",
                    )
                    .hint("e.g. `user: user_id`, or `role: admin` for every admin");
                None
            }
        };
        let kind = required(self, "kind");
        let message = required(self, "message");
        if let Some((kind, problem)) = kind
            .as_ref()
            .and_then(|k| ident::snake_problem(&k.value).map(|p| (k, p)))
        {
            self.d.error(kind.span, problem);
        }
        Some(Action::Notify {
            to: to?,
            kind: kind?,
            message: message?,
        })
    }
}

/// The keys of a `do:` item.
fn action_keys() -> Vec<&'static str> {
    ACTION_KEYWORDS
        .iter()
        .chain(ACTION_MODIFIERS)
        .copied()
        .collect()
}
