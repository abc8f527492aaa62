//! The rules of an entity's fields: indexes and unique keys name its fields, references name an
//! entity of the same store, and what a reference does on delete fits the field.

use crate::diag::{Diagnostics, did_you_mean};
use crate::model::*;

/// Checks every entity of `service`.
pub(super) fn check(system: &System, service: &Service, d: &mut Diagnostics) {
    for entity in &service.entities {
        if let Some(capability) = service.uses
            && crate::capability::tables(capability).contains(&entity.name.as_str())
        {
            d.error(
                entity.name.span,
                format!(
                    "entity `{}` has the name of a table of the `{}` capability in the same database",
                    entity.name.value,
                    super::capability_name(capability)
                ),
            )
            .hint("give the entity another name");
        }
        let columns = entity.columns();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        for index in &entity.indexes {
            for field in index {
                if !names.contains(&field.as_str()) {
                    d.error(
                        field.span,
                        format!(
                            "entity `{}` has no field `{}` to index",
                            entity.name.value, field.value
                        ),
                    )
                    .with_hint_opt_mut(did_you_mean(&field.value, names.iter().copied()));
                }
            }
        }
        let mysql = service
            .store
            .as_ref()
            .and_then(|store| system.stores.iter().find(|s| s.name.value == store.value))
            .is_some_and(|store| store.engine == Engine::Mysql);
        check_unique_keys(entity, &columns, mysql, d);
        check_read(entity, d);
        check_search(entity, d);
        super::check_roles(system, &entity.managers, d);
        for (field, reference) in entity.references() {
            check_reference(system, service, field, reference, d);
        }
        check_evolution(entity, &names, d);
    }
    for entity in &service.entities {
        if let Some(from) = &entity.renamed_from
            && (service.entity(&from.value).is_some()
                || service.removed.iter().any(|r| r.value == from.value))
        {
            d.error(
                from.span,
                format!(
                    "entity `{}` is `renamed_from: {}`, but `{}` is still an entity of the service or declared `removed`",
                    entity.name.value, from.value, from.value
                ),
            )
            .hint("`renamed_from` names the entity's earlier name, which no entity has now");
        }
    }
    // The search index takes names of its own: `<entity>_search` (SQLite) and the column
    // `svcgen_search`.
    for entity in &service.entities {
        if let Some(searched) = entity.name.value.strip_suffix("_search")
            && service
                .entity(searched)
                .is_some_and(|e| !e.search.is_empty())
        {
            d.error(
                entity.name.span,
                format!(
                    "entity `{}` has the name of the search index of `{searched}`",
                    entity.name.value
                ),
            )
            .hint("give the entity another name");
        }
        if let Some(field) = entity
            .fields
            .iter()
            .find(|f| f.name.value == "svcgen_search")
        {
            d.error(
                field.name.span,
                "`svcgen_search` is the column of an entity's search index",
            )
            .hint("give the field another name");
        }
    }
    for removed in &service.removed {
        if service.entity(&removed.value).is_some() {
            d.error(
                removed.span,
                format!(
                    "entity `{}` is declared `removed` but the service still has it",
                    removed.value
                ),
            )
            .hint("`removed:` lists entities the service had and has no more; remove the entity, or this name");
        }
    }
    check_reference_cycles(service, d);
}

/// `removed:` names fields the entity no longer has, and `renamed_from:` a name no other
/// field has.
fn check_evolution(entity: &Entity, columns: &[&str], d: &mut Diagnostics) {
    for removed in &entity.removed {
        if columns.contains(&removed.as_str()) {
            d.error(
                removed.span,
                format!(
                    "field `{}` is declared `removed` but `{}` still has it",
                    removed.value, entity.name.value
                ),
            )
            .hint("`removed:` lists fields the entity had and has no more; remove the field, or this name");
        }
    }
    for field in &entity.fields {
        let Some(from) = &field.rules.renamed_from else {
            continue;
        };
        if from.value == field.name.value || columns.contains(&from.as_str()) {
            d.error(
                from.span,
                format!(
                    "field `{}` is `renamed_from: {}`, but `{}` still has a field `{}`",
                    field.name.value, from.value, entity.name.value, from.value
                ),
            )
            .hint("`renamed_from` names the field's earlier name, which no field has now");
        }
        if entity.removed.iter().any(|r| r.value == from.value) {
            d.error(
                from.span,
                format!(
                    "`{}` is both the earlier name of `{}` and declared `removed`",
                    from.value, field.name.value
                ),
            )
            .hint("a renamed field keeps its values: remove it from `removed:`");
        }
    }
}

/// `search:` names text fields of the entity.
fn check_search(entity: &Entity, d: &mut Diagnostics) {
    for name in &entity.search {
        match entity.fields.iter().find(|f| f.name.value == name.value) {
            Some(field)
                if matches!(
                    field.ty.required(),
                    Type::String { .. } | Type::Text | Type::Email
                ) => {}
            Some(field) => {
                d.error(
                    name.span,
                    format!(
                        "`{}` is {}: search reads text fields (string, text)",
                        name.value,
                        field.ty.spec_text()
                    ),
                );
            }
            None => {
                d.error(
                    name.span,
                    format!(
                        "entity `{}` has no field `{}` to search",
                        entity.name.value, name.value
                    ),
                )
                .with_hint_opt_mut(did_you_mean(
                    &name.value,
                    entity.fields.iter().map(|f| f.name.as_str()),
                ));
            }
        }
    }
}

/// `read: { if: <field> }` names a `bool` field of the entity.
fn check_read(entity: &Entity, d: &mut Diagnostics) {
    let Read::If(name) = &entity.read else {
        return;
    };
    match entity.fields.iter().find(|f| f.name.value == name.value) {
        Some(field) if matches!(field.ty.required(), Type::Bool) => {}
        Some(field) => {
            d.error(
                name.span,
                format!(
                    "`read: {{ if: {} }}` needs a `bool` field, but `{}` is {}",
                    name.value,
                    name.value,
                    field.ty.spec_text()
                ),
            )
            .hint("e.g. `published: { type: bool, default: false }`");
        }
        None => {
            d.error(
                name.span,
                format!(
                    "entity `{}` has no field `{}` for `read`",
                    entity.name.value, name.value
                ),
            )
            .with_hint_opt_mut(did_you_mean(
                &name.value,
                entity.fields.iter().map(|f| f.name.as_str()),
            ));
        }
    }
}

/// The longest text MySQL compares whole in a unique key (a VARCHAR of an index).
const MYSQL_UNIQUE_TEXT: u32 = 255;

fn check_unique_keys(entity: &Entity, columns: &[Column], mysql: bool, d: &mut Diagnostics) {
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let mut keyed = entity
        .fields
        .iter()
        .filter(|f| f.rules.unique)
        .map(|f| (&f.name, &f.ty))
        .collect::<Vec<_>>();
    for key in &entity.unique {
        for field in key {
            match columns.iter().find(|c| c.name == field.value) {
                Some(column) => keyed.push((field, &column.ty)),
                None => {
                    d.error(
                        field.span,
                        format!(
                            "entity `{}` has no field `{}` to make unique",
                            entity.name.value, field.value
                        ),
                    )
                    .with_hint_opt_mut(did_you_mean(&field.value, names.iter().copied()));
                }
            }
        }
    }
    for (field, ty) in keyed {
        if matches!(ty.required(), Type::List(_) | Type::Message(_) | Type::Text) {
            d.error(
                field.span,
                format!(
                    "`{}` of type `{}` cannot be unique",
                    field.value,
                    ty.spec_text()
                ),
            )
            .hint("unique keys are made of single values: string, enum, int, bool, uuid, email or timestamp (a long `text` is not compared whole)");
        } else if mysql
            && matches!(ty.required(), Type::String { max, .. } if max.is_none_or(|m| m > MYSQL_UNIQUE_TEXT))
        {
            d.error(
                field.span,
                format!(
                    "`{}` of type `{}` is in a unique key on a MySQL store, which compares text of at most {MYSQL_UNIQUE_TEXT} characters there",
                    field.value,
                    ty.spec_text()
                ),
            )
            .hint(format!("give it a maximum length, e.g. `string(1..{MYSQL_UNIQUE_TEXT})`"));
        }
    }
}

fn check_reference(
    system: &System,
    service: &Service,
    field: &Field,
    reference: &Reference,
    d: &mut Diagnostics,
) {
    let target = reference.entity.as_str();
    if service.entity(target).is_none() {
        let elsewhere = system.services.iter().find(|s| {
            s.entity(target).is_some() || (s.uses == Some(Capability::Auth) && target == "user")
        });
        match elsewhere {
            Some(other) => {
                d.error(
                    reference.entity.span,
                    format!(
                        "`{}` references `{target}` of service `{}`: a reference joins entities of one store",
                        field.name.value, other.name.value
                    ),
                )
                .hint("keep the id as a plain `uuid` field and learn about the other service's rows from its events or RPCs");
            }
            None => {
                d.error(
                    reference.entity.span,
                    format!(
                        "`{}` references `{target}`, which service `{}` does not declare",
                        field.name.value, service.name.value
                    ),
                )
                .with_hint_opt_mut(did_you_mean(
                    target,
                    service.entities.iter().map(|e| e.name.as_str()),
                ));
            }
        }
    }
    if field.ty.required() != &Type::Uuid {
        d.error(
            field.name.span,
            format!(
                "`{}` references `{target}` and so holds its id: its type must be `uuid` or `uuid?`, not `{}`",
                field.name.value,
                field.ty.spec_text()
            ),
        );
    }
    if reference.on_delete == OnDelete::SetNull && !matches!(field.ty, Type::Optional(_)) {
        d.error(
            field.name.span,
            format!(
                "`{}` is cleared when its `{target}` is deleted (`on_delete: set_null`), so it must be optional",
                field.name.value
            ),
        )
        .hint(format!("make it `{}?`, or use `on_delete: cascade` or `restrict`", field.ty.spec_text()));
    }
}

/// Tables are created in an order where each comes after the tables it references; entities
/// that reference each other (other than an entity referencing itself) have no such order.
fn check_reference_cycles(service: &Service, d: &mut Diagnostics) {
    if let Err(unordered) = service.entities_in_reference_order() {
        let names = unordered
            .iter()
            .map(|e| format!("`{}`", e.name.value))
            .collect::<Vec<_>>()
            .join(", ");
        d.error(
            unordered[0].name.span,
            format!("entities reference each other in a cycle: {names}"),
        )
        .hint("keep one side of the cycle as a plain `uuid` field");
    }
}
