//! Message search (`GET /api/v1/search`): the query language, parsed once into a typed
//! [`ParsedQuery`], and what an index is asked ([`IndexQuery`]) and answers ([`SearchHit`]).
//! [`IndexQuery`] and [`SearchHit`] also cross nodes (cluster protocol 10), so they encode
//! natively with bincode.
//!
//! Syntax of `q`: words (every one must occur, any order), `"quoted phrases"` (the words in
//! that order), and operators `from:username`, `in:roomId-or-name`, `has:file`, `has:link`,
//! `before:YYYY-MM-DD`, `after:YYYY-MM-DD` (UTC days; `before` excludes its day, `after`
//! excludes its day). Words and operators are separated by whitespace.

use serde::{Deserialize, Serialize};

use crate::error::ErrorBody;
use crate::ids::Snowflake;

/// What a message must have (`has:`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(rename_all = "lowercase")]
pub enum Has {
    /// An attachment (`file` and `voice_note` messages).
    File,
    /// An `http://` or `https://` link in its text.
    Link,
}

impl Has {
    /// The operand as written after `has:`.
    pub fn parse(text: &str) -> Option<Has> {
        match text.to_ascii_lowercase().as_str() {
            "file" => Some(Has::File),
            "link" => Some(Has::Link),
            _ => None,
        }
    }

    /// The word stored in the index for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Has::File => "file",
            Has::Link => "link",
        }
    }
}

/// The room an `in:` operator names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomScope {
    /// A room id.
    Id(Snowflake),
    /// A room's name (matched without regard to case among the caller's rooms).
    Name(String),
}

/// The order of results.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(rename_all = "lowercase")]
pub enum SearchSort {
    /// Newest message first.
    #[default]
    Newest,
    /// Best match first (BM25), newest first among equals.
    Relevance,
}

/// Limits of the query language (`[search]` in the node's config).
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// Longest `q`, in characters.
    pub max_chars: usize,
    /// Most words, phrases and operators in one `q`.
    pub max_terms: usize,
}

/// A `q` as the caller wrote it, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedQuery {
    /// Words that must all occur.
    pub words: Vec<String>,
    /// Phrases that must occur as written (each has at least one word).
    pub phrases: Vec<String>,
    /// `from:` a username.
    pub from: Option<String>,
    /// `in:` a room.
    pub in_room: Option<RoomScope>,
    /// `has:` requirements.
    pub has: Vec<Has>,
    /// `before:`: created strictly before this Unix ms.
    pub before: Option<u64>,
    /// `after:`: created at or after this Unix ms.
    pub after: Option<u64>,
}

/// Why a `q` was refused; [`QueryError::reason`] is its stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Nothing to search for.
    #[error("the query is empty")]
    Empty,
    /// Longer than the limit.
    #[error("the query is longer than {0} characters")]
    TooLong(usize),
    /// More terms than the limit.
    #[error("the query has more than {0} words, phrases and operators")]
    TooManyTerms(usize),
    /// A `"` without its closing one.
    #[error("a quoted phrase is not closed")]
    UnclosedQuote,
    /// `word:` that is not an operator.
    #[error("unknown operator `{0}:` (known: from, in, has, before, after)")]
    UnknownOperator(String),
    /// An operator without its operand, or with a bad one.
    #[error("`{0}` needs {1}")]
    BadOperand(String, &'static str),
    /// `from:`, `in:`, `before:` or `after:` given twice.
    #[error("`{0}:` may appear once")]
    Repeated(String),
}

impl QueryError {
    /// The stable reason, in `details.reason` of the VALIDATION_ERROR.
    pub fn reason(&self) -> &'static str {
        match self {
            QueryError::Empty => "EMPTY_QUERY",
            QueryError::TooLong(_) => "QUERY_TOO_LONG",
            QueryError::TooManyTerms(_) => "TOO_MANY_TERMS",
            QueryError::UnclosedQuote => "UNCLOSED_QUOTE",
            QueryError::UnknownOperator(_) => "UNKNOWN_OPERATOR",
            QueryError::BadOperand(..) => "BAD_OPERAND",
            QueryError::Repeated(_) => "REPEATED_OPERATOR",
        }
    }

    /// 400 VALIDATION_ERROR with `details: {field: "q", reason}`.
    pub fn to_body(&self) -> ErrorBody {
        let mut body = ErrorBody::field("q", self.to_string());
        if let Some(serde_json::Value::Object(details)) = body.details.as_mut() {
            details.insert("reason".into(), self.reason().into());
        }
        body
    }
}

impl ParsedQuery {
    /// Parses `q`. A query of operators only (`from:ann`) is accepted; an empty one is not.
    pub fn parse(q: &str, limits: QueryLimits) -> Result<ParsedQuery, QueryError> {
        if q.chars().count() > limits.max_chars {
            return Err(QueryError::TooLong(limits.max_chars));
        }
        let mut parsed = ParsedQuery::default();
        let mut terms = 0usize;
        let mut rest = q.trim_start();
        while !rest.is_empty() {
            terms += 1;
            if terms > limits.max_terms {
                return Err(QueryError::TooManyTerms(limits.max_terms));
            }
            if let Some(after_quote) = rest.strip_prefix('"') {
                let end = after_quote.find('"').ok_or(QueryError::UnclosedQuote)?;
                let phrase = after_quote[..end].split_whitespace().collect::<Vec<_>>();
                if !phrase.is_empty() {
                    parsed.phrases.push(phrase.join(" "));
                }
                rest = after_quote[end + 1..].trim_start();
                continue;
            }
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let token = &rest[..end];
            rest = rest[end..].trim_start();
            parsed.token(token)?;
        }
        if parsed.words.is_empty()
            && parsed.phrases.is_empty()
            && parsed.from.is_none()
            && parsed.in_room.is_none()
            && parsed.has.is_empty()
            && parsed.before.is_none()
            && parsed.after.is_none()
        {
            return Err(QueryError::Empty);
        }
        Ok(parsed)
    }

    fn token(&mut self, token: &str) -> Result<(), QueryError> {
        // A colon inside a word that is a link (`https://…`) is not an operator.
        let Some((op, value)) = token.split_once(':').filter(|(op, v)| {
            !op.is_empty() && op.chars().all(|c| c.is_ascii_alphabetic()) && !v.starts_with("//")
        }) else {
            self.words.push(token.to_owned());
            return Ok(());
        };
        let op = op.to_ascii_lowercase();
        let missing = |what| QueryError::BadOperand(format!("{op}:"), what);
        match op.as_str() {
            "from" => {
                let name = value.trim_start_matches('@');
                if name.is_empty() {
                    return Err(missing("a username"));
                }
                set_once(&mut self.from, name.to_owned(), &op)
            }
            "in" => {
                if value.is_empty() {
                    return Err(missing("a room id or name"));
                }
                let scope = match Snowflake::parse(value) {
                    Some(id) => RoomScope::Id(id),
                    None => RoomScope::Name(value.to_owned()),
                };
                set_once(&mut self.in_room, scope, &op)
            }
            "has" => {
                let has = Has::parse(value).ok_or_else(|| missing("`file` or `link`"))?;
                if !self.has.contains(&has) {
                    self.has.push(has);
                }
                Ok(())
            }
            "before" | "after" => {
                let day = day_start_ms(value).ok_or_else(|| missing("a date YYYY-MM-DD"))?;
                if op == "before" {
                    set_once(&mut self.before, day, &op)
                } else {
                    // After the whole day: from the next day's start.
                    set_once(&mut self.after, day + 86_400_000, &op)
                }
            }
            _ => Err(QueryError::UnknownOperator(op)),
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, op: &str) -> Result<(), QueryError> {
    if slot.is_some() {
        return Err(QueryError::Repeated(op.to_owned()));
    }
    *slot = Some(value);
    Ok(())
}

/// Unix ms of 00:00 UTC of `YYYY-MM-DD` (years 1970–9999), or `None`.
pub fn day_start_ms(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(r)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if y < 1970 || !(1..=12).contains(&m) || d < 1 || d > days_in[(m - 1) as usize] {
        return None;
    }
    // Days-from-civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400_000).ok()
}

/// What an index is asked: the parsed query with names resolved, over a set of rooms.
#[derive(
    Debug, Clone, PartialEq, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
pub struct IndexQuery {
    /// Words that must all occur.
    pub words: Vec<String>,
    /// Phrases that must occur.
    pub phrases: Vec<String>,
    /// Only messages of this author.
    pub author: Option<Snowflake>,
    /// What the messages must have.
    pub has: Vec<Has>,
    /// Created strictly before (Unix ms).
    pub before: Option<u64>,
    /// Created at or after (Unix ms).
    pub after: Option<u64>,
    /// Order.
    pub sort: SearchSort,
    /// Most hits.
    pub limit: u32,
}

/// One message found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    /// The message.
    pub message_id: Snowflake,
    /// Its room.
    pub room_id: Snowflake,
    /// Its author.
    pub user_id: Snowflake,
    /// The author's name when they posted it.
    pub username: String,
    /// When it was posted (Unix ms).
    pub created_at: u64,
    /// A fragment of its text around the matches (plain text, at most ~200 characters).
    pub snippet: String,
    /// The matched spans of `snippet`: `[start, end)` in Unicode scalar values (code points).
    pub highlights: Vec<(u32, u32)>,
    /// Its relevance score (BM25; 0 for a query of operators only).
    pub score: f32,
}

/// One result of `GET /search`, as clients read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResultView {
    /// The message.
    pub message_id: Snowflake,
    /// Its room.
    pub room_id: Snowflake,
    /// The room's name.
    pub room_name: String,
    /// Its author.
    pub user_id: Snowflake,
    /// The author's name when they posted it.
    pub username: String,
    /// When it was posted (RFC 3339).
    pub created_at: String,
    /// Plain text around the matches.
    pub snippet: String,
    /// Matched spans of `snippet`, `[start, end)` in code points.
    pub highlights: Vec<(u32, u32)>,
    /// Relevance (BM25; 0 when sorted by time).
    pub score: f32,
}

impl SearchResultView {
    /// A hit, shown with its room's name.
    pub fn of(hit: SearchHit, room_name: String) -> SearchResultView {
        SearchResultView {
            message_id: hit.message_id,
            room_id: hit.room_id,
            room_name,
            user_id: hit.user_id,
            username: hit.username,
            created_at: crate::time::rfc3339(hit.created_at),
            snippet: hit.snippet,
            highlights: hit.highlights,
            score: hit.score,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: QueryLimits = QueryLimits {
        max_chars: 256,
        max_terms: 16,
    };

    fn parse(q: &str) -> Result<ParsedQuery, QueryError> {
        ParsedQuery::parse(q, LIMITS)
    }

    #[test]
    fn words_phrases_and_operators() {
        let q = parse(r#"hello "big  world" from:@ann in:general has:link has:FILE after:2026-01-31 before:2026-03-01 https://x.y/z"#)
            .expect("parses");
        assert_eq!(q.words, vec!["hello", "https://x.y/z"]);
        assert_eq!(q.phrases, vec!["big world"]);
        assert_eq!(q.from.as_deref(), Some("ann"));
        assert_eq!(q.in_room, Some(RoomScope::Name("general".into())));
        assert_eq!(q.has, vec![Has::Link, Has::File]);
        assert_eq!(q.after, Some(day_start_ms("2026-02-01").expect("date")));
        assert_eq!(q.before, Some(day_start_ms("2026-03-01").expect("date")));
        let q = parse("in:12345").expect("parses");
        assert_eq!(q.in_room, Some(RoomScope::Id(Snowflake(12345))));
    }

    #[test]
    fn days_are_utc_midnights() {
        assert_eq!(day_start_ms("1970-01-01"), Some(0));
        assert_eq!(day_start_ms("2000-02-29"), Some(951_782_400_000));
        assert_eq!(day_start_ms("2001-02-29"), None);
        assert_eq!(day_start_ms("2026-13-01"), None);
        assert_eq!(day_start_ms("2026-1-01"), None);
        assert_eq!(day_start_ms("+026-01-01"), None);
    }

    #[test]
    fn bad_queries_have_stable_reasons() {
        let reason = |q: &str| parse(q).expect_err(q).reason();
        assert_eq!(reason("   "), "EMPTY_QUERY");
        assert_eq!(reason(r#""""#), "EMPTY_QUERY");
        assert_eq!(reason(&"a".repeat(257)), "QUERY_TOO_LONG");
        assert_eq!(reason(&"a ".repeat(17)), "TOO_MANY_TERMS");
        assert_eq!(reason(r#"say "hi"#), "UNCLOSED_QUOTE");
        assert_eq!(reason("to:ann"), "UNKNOWN_OPERATOR");
        assert_eq!(reason("has:gif"), "BAD_OPERAND");
        assert_eq!(reason("from:"), "BAD_OPERAND");
        assert_eq!(reason("before:yesterday"), "BAD_OPERAND");
        assert_eq!(reason("from:a from:b"), "REPEATED_OPERATOR");
        let body = parse("to:x").expect_err("bad").to_body();
        assert_eq!(body.code, crate::ErrorCode::ValidationError);
        let details = body.details.expect("details");
        assert_eq!(details["field"], "q");
        assert_eq!(details["reason"], "UNKNOWN_OPERATOR");
    }
}
