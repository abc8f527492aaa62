//! Who may see and change the rows of an entity that belongs to users.
//!
//! An owned entity's rows are read by their owner only, by everyone the route admits, or by
//! everyone when a `bool` field of the row says so (`read:` in the spec); only the owner changes
//! a row, and callers with one of the entity's manager roles read and change every row. The
//! generated SQL states those rules as conditions on two arguments, a [`Viewer`]'s `manages`
//! and `user`, so that one statement serves every caller.

use uuid::Uuid;

use crate::http::{ApiError, ApiResult};
use crate::identity::Caller;

/// The caller as the access rules of an entity see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    /// The caller's user id; the nil uuid for an anonymous caller, which owns no row.
    pub user: Uuid,
    /// Whether the caller holds one of the entity's manager roles: they read and change every
    /// row.
    pub manages: bool,
}

impl Viewer {
    /// A signed-in caller, given the entity's manager roles.
    pub fn of(caller: &Caller, managers: &[&str]) -> Viewer {
        Viewer {
            user: caller.user_id,
            manages: managers.iter().any(|role| caller.has_role(role)),
        }
    }

    /// The caller of a route open to anonymous callers.
    pub fn maybe(caller: Option<&Caller>, managers: &[&str]) -> Viewer {
        caller.map_or(Viewer::ANONYMOUS, |caller| Viewer::of(caller, managers))
    }

    /// Nobody signed in: sees only what everyone may see, changes nothing.
    pub const ANONYMOUS: Viewer = Viewer {
        user: Uuid::nil(),
        manages: false,
    };

    /// `Ok` when the viewer may change a row whose owner is `owner`; a 403 otherwise (the row
    /// is one the viewer may read, or the answer would have been a 404).
    pub fn may_change(&self, owner: Uuid, what: &str) -> ApiResult<()> {
        if self.manages || (owner == self.user && !owner.is_nil()) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this {what} belongs to another user: only its owner may change it"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn caller(roles: &[&str]) -> Caller {
        Caller {
            user_id: Uuid::now_v7(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn managers_are_callers_with_one_of_the_roles() {
        assert!(Viewer::of(&caller(&["user", "admin"]), &["admin"]).manages);
        assert!(!Viewer::of(&caller(&["user"]), &["admin"]).manages);
        // No manager roles: nobody manages (unlike a route's empty `roles`, which admit all).
        assert!(!Viewer::of(&caller(&["admin"]), &[]).manages);
        assert_eq!(Viewer::maybe(None, &["admin"]), Viewer::ANONYMOUS);
    }

    #[test]
    fn only_the_owner_or_a_manager_changes_a_row() {
        let owner = caller(&["user"]);
        let viewer = Viewer::of(&owner, &["admin"]);
        assert_eq!(viewer.may_change(owner.user_id, "post"), Ok(()));
        let error = viewer.may_change(Uuid::now_v7(), "post").unwrap_err();
        assert_eq!(error.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            error.message(),
            "this post belongs to another user: only its owner may change it"
        );
        let admin = Viewer::of(&caller(&["admin"]), &["admin"]);
        assert_eq!(admin.may_change(Uuid::now_v7(), "post"), Ok(()));
        // Nobody owns what the anonymous caller would: the nil owner is nobody's.
        assert!(Viewer::ANONYMOUS.may_change(Uuid::nil(), "post").is_err());
    }
}
