//! Field rules shared by the handlers.

use crate::error::ApiError;

/// 3–20 of letters, digits, underscore.
pub fn username(name: &str) -> Result<(), ApiError> {
    let len = name.chars().count();
    if !(3..=20).contains(&len) || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ApiError::field(
            "username",
            "username must be 3-20 letters, digits or underscores",
        ));
    }
    Ok(())
}

/// A plausible address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn email(email: &str) -> Result<(), ApiError> {
    let bad = || ApiError::field("email", "email is not a valid address");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return Err(bad());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
    {
        return Err(bad());
    }
    Ok(())
}

/// At least 8 characters (and at most 128, to bound hashing work).
pub fn password(password: &str) -> Result<(), ApiError> {
    let len = password.chars().count();
    if len < 8 {
        return Err(ApiError::field(
            "password",
            "password must be at least 8 characters",
        ));
    }
    if len > 128 {
        return Err(ApiError::field(
            "password",
            "password must be at most 128 characters",
        ));
    }
    Ok(())
}

/// An http(s) URL of at most 2048 bytes.
pub fn avatar_url(url: &str) -> Result<(), ApiError> {
    let ok = url.len() <= 2048
        && (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(ApiError::field(
            "avatarUrl",
            "avatarUrl must be an http(s) URL",
        ));
    }
    Ok(())
}

/// A string's length in characters within `min..=max`.
pub fn length(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(ApiError::field(
            field,
            format!("{field} must be {min}-{max} characters"),
        ));
    }
    Ok(())
}

/// A page size: `asked`, or `default` when absent; 400 on `limit` unless 1–`max`.
pub fn page_limit(asked: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = asked.unwrap_or(default);
    match (1..=max).contains(&limit) {
        true => Ok(limit),
        false => Err(ApiError::field("limit", format!("limit must be 1-{max}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(username("abc").is_ok());
        assert!(username("a_b_C_1234567890_xyz").is_ok());
        assert!(username("ab").is_err());
        assert!(username("has space").is_err());
        assert!(username("ümlaut").is_err());
        assert!(username("abcdefghijklmnopqrstu").is_err());
    }

    #[test]
    fn emails() {
        assert!(email("a@b.co").is_ok());
        assert!(email("a@b").is_err());
        assert!(email("@b.co").is_err());
        assert!(email("a b@c.de").is_err());
        assert!(email("a@@b.co").is_err());
        assert!(email("a@.co").is_err());
    }
}
