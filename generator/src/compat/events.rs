//! Changes of the events: an event or a payload field gone, a field's type changed. Consumers
//! ignore fields they do not know, so a new field is safe. A breaking change of an event whose
//! `version` went up is acknowledged by the bump: consumers see the new version as a new
//! contract.

use super::{Change, Surface};
use crate::model::{System, Type};

/// The event changes from `old` to `new`.
pub(super) fn changes(old: &System, new: &System) -> Vec<Change> {
    let mut changes = Vec::new();
    for was in &old.events {
        let name = &was.name.value;
        let Some(now) = new.events.iter().find(|e| &e.name.value == name) else {
            changes.push(Change::breaking(Surface::Event, name, "removed"));
            continue;
        };
        let mut own = Vec::new();
        for field in &was.fields {
            let field_name = &field.name.value;
            match now.field(field_name) {
                None => own.push(Change::breaking(
                    Surface::Event,
                    name,
                    format!("field `{field_name}` removed"),
                )),
                Some(new_field) if new_field.ty != field.ty => {
                    // A consumer reads every value it read before only when the field keeps
                    // its type or loses only its `?`.
                    let safe =
                        matches!(&field.ty, Type::Optional(inner) if **inner == new_field.ty);
                    own.push(Change::new(
                        Surface::Event,
                        name,
                        format!(
                            "field `{field_name}` changes from `{}` to `{}`",
                            field.ty.spec_text(),
                            new_field.ty.spec_text()
                        ),
                        !safe,
                    ));
                }
                Some(_) => {}
            }
        }
        for field in now
            .fields
            .iter()
            .filter(|f| was.field(&f.name.value).is_none())
        {
            own.push(Change::safe(
                Surface::Event,
                name,
                format!("new field `{}`", field.name.value),
            ));
        }
        if now.version != was.version {
            let bumped = now.version > was.version;
            let note = format!("version {} → {}", was.version, now.version);
            for change in &mut own {
                change.acknowledged = change.breaking && bumped;
                change.note = Some(note.clone());
            }
            if !bumped {
                own.push(Change::breaking(Surface::Event, name, "version lowered"));
            } else if own.is_empty() {
                own.push(Change::safe(Surface::Event, name, note));
            }
        } else if own.iter().any(|c| c.breaking) {
            for change in own.iter_mut().filter(|c| c.breaking) {
                change.note = Some(format!("version still {}", now.version));
            }
        }
        changes.extend(own);
    }
    for now in new
        .events
        .iter()
        .filter(|e| !old.events.iter().any(|o| o.name.value == e.name.value))
    {
        changes.push(Change::safe(Surface::Event, &now.name.value, "added"));
    }
    changes
}
