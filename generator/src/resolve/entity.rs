//! Entities and their fields: types, rules, indexes and keys.

use super::*;

impl Resolver<'_> {
    pub(super) fn entity(&mut self, key: &Node, value: &Node) -> Option<Entity> {
        let name = self.declared_name(key, "entity name")?;
        let entries = self.entries(value, &format!("entity `{}`", name.value), ENTITY_KEYS);
        let description = entries
            .get("description")
            .and_then(|n| self.text(n, "description"));
        let owner = entries
            .get("owner")
            .and_then(|n| self.name(n, "owner field"));
        if let Some(owner) = owner
            .as_ref()
            .filter(|o| IMPLICIT_FIELDS.contains(&o.value.as_str()))
        {
            self.d
                .error(
                    owner.span,
                    format!(
                        "the owner field cannot be `{}`: svcgen adds that field to every entity",
                        owner.value
                    ),
                )
                .hint("name it after the user, e.g. `owner_id`");
        }
        let fields = match entries.get("fields") {
            Some(node) => self.each(Some(node), "fields", |r, k, v| r.entity_field(k, v)),
            None => {
                self.d.error(
                    value.span,
                    format!("entity `{}` has no `fields`", name.value),
                );
                Vec::new()
            }
        };
        for field in &fields {
            if IMPLICIT_FIELDS.contains(&field.name.as_str())
                || owner.as_ref().is_some_and(|o| o.value == field.name.value)
            {
                self.d.error(field.name.span, format!("field `{}` is added by svcgen and cannot be declared", field.name.value))
                    .hint("every entity has `id`, `created_at`, `updated_at` and `version`; `owner:` adds the owner field");
            }
        }
        let read = self.read(entries.get("read"), owner.as_ref(), &name);
        let managers = entries
            .get("managers")
            .map(|n| self.names(n, "role"))
            .unwrap_or_default();
        if let (Some(node), None) = (entries.get("managers"), &owner) {
            self.d
                .error(
                    node.span,
                    format!(
                        "entity `{}` has no owner, so there is nothing for `managers` to override",
                        name.value
                    ),
                )
                .hint("without `owner` every caller the route admits changes every row; limit the routes with `roles`");
        }
        let search = entries
            .get("search")
            .map(|n| self.names(n, "field name"))
            .unwrap_or_default();
        let indexes = self.field_lists(entries.get("indexes"), "indexes", "an index");
        let unique = self.field_lists(entries.get("unique"), "unique", "a unique key");
        let removed = entries
            .get("removed")
            .map(|n| self.names(n, "field name"))
            .unwrap_or_default();
        let renamed_from = entries
            .get("renamed_from")
            .and_then(|n| self.name(n, "entity name"));
        Some(Entity {
            name,
            description,
            owner,
            read,
            managers,
            fields,
            indexes,
            unique,
            search,
            removed,
            renamed_from,
        })
    }

    /// `read: owner | all | { if: <bool field> }`; the default is `owner` with an owner, `all`
    /// without.
    fn read(&mut self, node: Option<&Node>, owner: Option<&Name>, entity: &Name) -> Read {
        let Some(node) = node else {
            return if owner.is_some() {
                Read::Owner
            } else {
                Read::All
            };
        };
        let read = match &node.kind {
            Kind::Scalar(word) if word == "owner" => Read::Owner,
            Kind::Scalar(word) if word == "all" => Read::All,
            Kind::Map(_) => {
                let entries = self.entries(node, "`read`", READ_KEYS);
                match entries.get("if").and_then(|n| self.name(n, "field name")) {
                    Some(field) => Read::If(field),
                    None => {
                        self.d.error(
                            node.span,
                            "`read` as a map names a `bool` field: `{ if: <field> }`",
                        );
                        Read::Owner
                    }
                }
            }
            _ => {
                self.d
                    .error(node.span, "`read` is `owner`, `all` or `{ if: <bool field> }`")
                    .hint("`all`: every caller the route admits reads every row; `{ if: published }`: everyone reads the rows whose `published` is true");
                Read::Owner
            }
        };
        if owner.is_none() && read != Read::All {
            self.d
                .error(
                    node.span,
                    format!(
                        "entity `{}` has no owner: its rows are read by everyone the route admits",
                        entity.value
                    ),
                )
                .hint("add `owner: <field>` to make rows belong to users");
            return Read::All;
        }
        read
    }

    /// `indexes:` or `unique:`: a list of field lists (`- [owner_id, created_at]`).
    fn field_lists(&mut self, node: Option<&Node>, key: &str, what: &str) -> Vec<Vec<Name>> {
        let mut lists = Vec::new();
        if let Some(node) = node {
            match &node.kind {
                Kind::Seq(items) => {
                    for item in items {
                        match &item.kind {
                            Kind::Seq(columns) if !columns.is_empty() => {
                                lists.push(
                                    columns
                                        .iter()
                                        .filter_map(|c| self.name(c, "field name"))
                                        .collect(),
                                );
                            }
                            _ => {
                                self.d.error(item.span, format!("{what} is a list of field names, e.g. `[owner_id, created_at]`"));
                            }
                        }
                    }
                }
                _ => {
                    self.d.error(
                        node.span,
                        format!(
                            "`{key}` must be a list of field lists, e.g. `- [owner_id, created_at]`"
                        ),
                    );
                }
            }
        }
        lists
    }

    /// A field of an entity: its type alone (`title: string(1..200)`), or the long form
    /// with rules (`handle: { type: string(3..30), unique: true }`).
    fn entity_field(&mut self, key: &Node, value: &Node) -> Option<Field> {
        if !matches!(value.kind, Kind::Map(_)) {
            return self.field(key, value);
        }
        let name = self.name(key, "field name")?;
        let entries = self.entries(value, &format!("field `{}`", name.value), FIELD_KEYS);
        let Some(type_node) = entries.get("type") else {
            self.d
                .error(value.span, format!("field `{}` has no `type`", name.value))
                .hint("the long form of a field is `{ type: <type>, ... }`");
            return None;
        };
        let ty = self.field_type(&name, type_node)?;
        let description = entries
            .get("description")
            .and_then(|n| self.text(n, "description"));
        let unique = entries
            .get("unique")
            .and_then(|n| self.flag(n, "unique"))
            .unwrap_or(false);
        let default = entries
            .get("default")
            .and_then(|n| self.default_value(&name, &ty, n));
        let references = match entries.get("references") {
            Some(node) => self.name(node, "entity name").map(|entity| Reference {
                entity,
                on_delete: entries
                    .get("on_delete")
                    .and_then(|n| self.on_delete(n))
                    .unwrap_or_default(),
            }),
            None => {
                if let Some(node) = entries.get("on_delete") {
                    self.d
                        .error(
                            node.span,
                            "`on_delete` belongs to a field with `references`",
                        )
                        .hint("add `references: <entity>`, or remove `on_delete`");
                }
                None
            }
        };
        let renamed_from = entries
            .get("renamed_from")
            .and_then(|n| self.name(n, "field name"));
        let backfill = entries
            .get("backfill")
            .and_then(|n| self.text(n, "backfill"));
        Some(Field {
            name,
            ty,
            rules: Rules {
                description,
                unique,
                default,
                references,
                renamed_from,
                backfill,
            },
        })
    }

    fn on_delete(&mut self, node: &Node) -> Option<OnDelete> {
        let text = self.text(node, "on_delete")?;
        let choices = [OnDelete::Restrict, OnDelete::Cascade, OnDelete::SetNull];
        match choices.into_iter().find(|c| c.keyword() == text) {
            Some(choice) => Some(choice),
            None => {
                let hint = did_you_mean(&text, choices.iter().map(|c| c.keyword()))
                    .unwrap_or_else(|| "one of `restrict`, `cascade`, `set_null`".into());
                self.d
                    .error(node.span, format!("unknown `on_delete` `{text}`"))
                    .hint(hint);
                None
            }
        }
    }

    /// A default, read as the field's type: a number for `int`, `true`/`false` for `bool`, a
    /// word of an `enum`, text for text, `$now` or `$now + <duration>` for a `timestamp`.
    fn default_value(&mut self, field: &Name, ty: &Type, node: &Node) -> Option<FieldDefault> {
        let text = self.text(node, "default")?;
        let span = node.span;
        let value = match ty {
            Type::Optional(_) => {
                self.d
                    .error(
                        span,
                        format!("optional field `{}` cannot have a default", field.value),
                    )
                    .hint(
                        "a field with a default always has a value: remove the `?`, or the default",
                    );
                return None;
            }
            Type::Int { min, max } => match text.parse::<i64>() {
                Ok(n) if min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m) => {
                    DefaultValue::Int(n)
                }
                Ok(n) => {
                    self.d.error(
                        span,
                        format!(
                            "the default {n} of `{}` is outside its type `{}`",
                            field.value,
                            ty.spec_text()
                        ),
                    );
                    return None;
                }
                Err(_) => {
                    self.d.error(
                        span,
                        format!(
                            "the default of `{}` must be a whole number, found `{text}`",
                            field.value
                        ),
                    );
                    return None;
                }
            },
            Type::Bool => match text.as_str() {
                "true" | "false" => DefaultValue::Bool(text == "true"),
                _ => {
                    self.d.error(
                        span,
                        format!(
                            "the default of `{}` must be `true` or `false`, found `{text}`",
                            field.value
                        ),
                    );
                    return None;
                }
            },
            Type::Enum(words) => {
                if !words.contains(&text) {
                    let hint = did_you_mean(&text, words.iter().map(String::as_str))
                        .unwrap_or_else(|| {
                            format!(
                                "one of {}",
                                words
                                    .iter()
                                    .map(|w| format!("`{w}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        });
                    self.d
                        .error(
                            span,
                            format!(
                                "the default `{text}` of `{}` is not a word of `{}`",
                                field.value,
                                ty.spec_text()
                            ),
                        )
                        .hint(hint);
                    return None;
                }
                DefaultValue::Text(text)
            }
            Type::String { min, max } => {
                let length = text.chars().count() as u32;
                if min.is_some_and(|m| length < m) || max.is_some_and(|m| length > m) {
                    self.d.error(
                        span,
                        format!(
                            "the default `{text}` of `{}` does not fit its type `{}`",
                            field.value,
                            ty.spec_text()
                        ),
                    );
                    return None;
                }
                DefaultValue::Text(text)
            }
            Type::Text => DefaultValue::Text(text),
            Type::Timestamp => {
                let plus_secs = match text.strip_prefix("$now") {
                    Some("") => Some(0),
                    Some(rest) => match rest.trim_start().strip_prefix('+') {
                        Some(duration) => self.duration(&Node {
                            kind: Kind::Scalar(duration.trim().to_owned()),
                            span,
                        }),
                        None => None,
                    },
                    None => None,
                };
                let Some(plus_secs) = plus_secs else {
                    self.d
                        .error(
                            span,
                            format!(
                                "the default of timestamp `{}` must be computed, found `{text}`",
                                field.value
                            ),
                        )
                        .hint("write `$now` or `$now + <duration>`, e.g. `$now + 14d`");
                    return None;
                };
                DefaultValue::Now { plus_secs }
            }
            other => {
                self.d
                    .error(
                        span,
                        format!(
                            "a field of type `{}` cannot have a default",
                            other.spec_text()
                        ),
                    )
                    .hint("defaults are for text, enum, int, bool and timestamp fields");
                return None;
            }
        };
        Some(FieldDefault { value, span })
    }

    pub(super) fn field(&mut self, key: &Node, value: &Node) -> Option<Field> {
        let name = self.name(key, "field name")?;
        if let Kind::Seq(items) = &value.kind {
            let inner = items.first().and_then(Node::as_str).unwrap_or("string");
            self.d
                .error(
                    value.span,
                    format!("the type of `{}` is written as a YAML list", name.value),
                )
                .hint(format!("quote list types: `{}: \"[{inner}]\"`", name.value));
            return None;
        }
        let ty = self.field_type(&name, value)?;
        Some(Field::plain(name, ty))
    }

    fn field_type(&mut self, name: &Name, node: &Node) -> Option<Type> {
        let text = self.text(node, &format!("type of `{}`", name.value))?;
        match parse_type(&text) {
            Ok(ty) => Some(ty),
            Err((message, hint)) => {
                self.d.error(node.span, message).hint(hint);
                None
            }
        }
    }
}
