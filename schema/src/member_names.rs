//! The name index of community members (`community_member_names`: community ‖ lower-cased
//! username ‖ user id → username), which the member search reads: a prefix search is one
//! range read of at most a page of rows, never a scan of the members.
//!
//! The index follows the members (join, leave, kick, ban, community deletion) and the users
//! (a rename rewrites the user's entry in each of their communities). Entries are ordered by
//! the folded name, then the user id, and a page continues after a [`NameCursor`].

use std::fmt;
use std::str::FromStr;

use voiceflow_wire::Snowflake;

/// The index's form of a username: lower-cased, so that a search ignores case. Usernames are
/// ASCII (letters, digits, `_`), but folding is Unicode-aware so the rule stays right if the
/// alphabet ever widens.
pub fn fold_name(username: &str) -> String {
    username.to_lowercase()
}

/// What a search looks for: the start of a folded username. Built only by
/// [`NamePrefix::new`], so a store never sees an unfolded prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePrefix(String);

impl NamePrefix {
    /// Folds `text` (an empty prefix matches every member, in name order).
    pub fn new(text: &str) -> NamePrefix {
        NamePrefix(fold_name(text))
    }

    /// The folded prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a folded name starts with it.
    pub fn matches(&self, folded: &str) -> bool {
        folded.starts_with(&self.0)
    }
}

/// A position in the index: the folded name and user id of the last entry of a page. Written
/// `<userId>:<folded name>` (the id first: it has no `:`, so the name may hold anything).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NameCursor {
    /// The folded username (compared first, as the index orders).
    pub name: String,
    /// The user id (orders equal names).
    pub user_id: Snowflake,
}

/// A cursor that is not `<userId>:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a name cursor is <userId>:<lower-cased username>")]
pub struct BadCursor;

impl FromStr for NameCursor {
    type Err = BadCursor;

    fn from_str(s: &str) -> Result<NameCursor, BadCursor> {
        let (id, name) = s.split_once(':').ok_or(BadCursor)?;
        let user_id = id.parse::<u64>().map_err(|_| BadCursor)?;
        Ok(NameCursor {
            // Folded again: a cursor typed by hand in capitals still means the same place.
            name: fold_name(name),
            user_id: Snowflake(user_id),
        })
    }
}

impl fmt::Display for NameCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.user_id.0, self.name)
    }
}

/// One entry of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberName {
    /// The community.
    pub community_id: Snowflake,
    /// The member.
    pub user_id: Snowflake,
    /// Their username as they spell it (the key holds it folded).
    pub username: String,
}

impl MemberName {
    /// Where this entry sits in the index (a page's last entry continues the next page).
    pub fn cursor(&self) -> NameCursor {
        NameCursor {
            name: fold_name(&self.username),
            user_id: self.user_id,
        }
    }
}

/// Where a search starts reading: at the prefix, or after the cursor if that lies further on.
/// `None` when the cursor is already past every name with the prefix (the page is empty).
pub fn search_start(prefix: &NamePrefix, after: Option<&NameCursor>) -> Option<SearchStart> {
    match after {
        Some(cursor) if prefix.matches(&cursor.name) => Some(SearchStart::After(cursor.clone())),
        Some(cursor) if cursor.name.as_str() > prefix.as_str() => None,
        Some(_) | None => Some(SearchStart::From(prefix.as_str().to_owned())),
    }
}

/// The first entry a search reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchStart {
    /// The first name at or after this folded text.
    From(String),
    /// The first entry after this one.
    After(NameCursor),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = NameCursor {
            name: "ann:x".into(),
            user_id: Snowflake(42),
        };
        assert_eq!(c.to_string(), "42:ann:x");
        assert_eq!("42:ann:x".parse::<NameCursor>(), Ok(c));
        assert_eq!(
            "42:ANN".parse::<NameCursor>().map(|c| c.name),
            Ok("ann".into())
        );
        assert_eq!("ann".parse::<NameCursor>(), Err(BadCursor));
        assert_eq!("x:ann".parse::<NameCursor>(), Err(BadCursor));
    }

    #[test]
    fn a_search_starts_at_the_prefix_or_after_a_cursor_inside_it() {
        let prefix = NamePrefix::new("Bo");
        let at = |name: &str| NameCursor {
            name: name.into(),
            user_id: Snowflake(1),
        };
        assert_eq!(
            search_start(&prefix, None),
            Some(SearchStart::From("bo".into()))
        );
        assert_eq!(
            search_start(&prefix, Some(&at("bob"))),
            Some(SearchStart::After(at("bob")))
        );
        // A cursor before the prefix's names starts at the prefix; one past them reads nothing.
        assert_eq!(
            search_start(&prefix, Some(&at("alice"))),
            Some(SearchStart::From("bo".into()))
        );
        assert_eq!(search_start(&prefix, Some(&at("carl"))), None);
    }
}
