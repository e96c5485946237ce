//! The index's schema, its documents and its queries.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;

use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, TantivyDocument, Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Index, Order, Term, doc};
use voiceflow_schema::MessageRecord;
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::client::MessageType;
use voiceflow_wire::v1::search::{Has, IndexQuery, SearchHit, SearchSort};

use crate::{SearchError, Shared};

/// Longest snippet, in characters.
const SNIPPET_CHARS: usize = 200;

/// The fields of a message's document.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// Message id (the key an edit or deletion replaces).
    pub id: Field,
    /// Room id.
    pub room: Field,
    /// Author id.
    pub author: Field,
    /// Author's name at send time (shown, not searched).
    pub username: Field,
    /// Unix ms (date filters and newest-first order).
    pub created: Field,
    /// The text.
    pub content: Field,
    /// `file`, `link`.
    pub has: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        id: b.add_u64_field("id", INDEXED | STORED),
        room: b.add_u64_field("room", INDEXED | STORED),
        author: b.add_u64_field("author", INDEXED | STORED),
        username: b.add_text_field("username", STORED),
        created: b.add_u64_field("created", INDEXED | STORED | FAST),
        content: b.add_text_field("content", TEXT | STORED),
        has: b.add_text_field("has", STRING),
    };
    (b.build(), fields)
}

/// Opens or creates the index in `dir`, with the last indexed seq per room of its last commit.
pub(crate) fn open(dir: &Path) -> Result<(Index, Fields, HashMap<u64, u64>), SearchError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| SearchError::Dir(format!("{}: {e}", dir.display())))?;
    let (schema, fields) = schema();
    let directory = tantivy::directory::MmapDirectory::open(dir)
        .map_err(|e| SearchError::Dir(format!("{}: {e}", dir.display())))?;
    let index = Index::open_or_create(directory, schema)?;
    let seqs = index
        .load_metas()?
        .payload
        .as_deref()
        .map(decode_seqs)
        .unwrap_or_default();
    Ok((index, fields, seqs))
}

/// The commit payload: `{"<room id>": seq, …}`.
pub(crate) fn encode_seqs(seqs: &HashMap<u64, u64>) -> String {
    let map: HashMap<String, u64> = seqs.iter().map(|(r, s)| (r.to_string(), *s)).collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
}

fn decode_seqs(payload: &str) -> HashMap<u64, u64> {
    let map: HashMap<String, u64> = serde_json::from_str(payload).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "search index: unreadable progress, rooms will be re-read");
        HashMap::new()
    });
    map.into_iter()
        .filter_map(|(r, s)| Some((r.parse().ok()?, s)))
        .collect()
}

/// Whether a message is indexed at all: live user messages only.
pub(crate) fn indexable(m: &MessageRecord) -> bool {
    m.deleted_at.is_none() && m.kind != MessageType::System
}

/// The document of a live message.
pub(crate) fn document(f: &Fields, m: &MessageRecord) -> TantivyDocument {
    let mut d = doc!(
        f.id => m.id.0,
        f.room => m.room_id.0,
        f.author => m.user_id.0,
        f.username => m.username.as_str(),
        f.created => m.created_at,
        f.content => m.content.as_str(),
    );
    if m.extra.file_id.is_some() {
        d.add_text(f.has, Has::File.as_str());
    }
    if m.content.contains("http://") || m.content.contains("https://") {
        d.add_text(f.has, Has::Link.as_str());
    }
    d
}

/// The term that names a message's document.
pub(crate) fn id_term(f: &Fields, id: Snowflake) -> Term {
    Term::from_field_u64(f.id, id.0)
}

/// Terms of `text` as the content field's tokenizer cuts it.
fn tokens(index: &Index, f: &Fields, text: &str) -> Result<Vec<Term>, SearchError> {
    let mut analyzer = index.tokenizer_for_field(f.content)?;
    let mut stream = analyzer.token_stream(text);
    let mut terms = Vec::new();
    while let Some(token) = stream.next() {
        terms.push(Term::from_field_text(f.content, &token.text));
    }
    Ok(terms)
}

/// A word or phrase: one term, or its terms in order.
fn text_query(terms: Vec<Term>) -> Option<Box<dyn Query>> {
    match terms.len() {
        0 => None,
        1 => terms
            .into_iter()
            .next()
            .map(|t| Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs)) as Box<dyn Query>),
        _ => Some(Box::new(PhraseQuery::new(terms))),
    }
}

fn build(
    shared: &Shared,
    rooms: &[Snowflake],
    q: &IndexQuery,
) -> Result<BooleanQuery, SearchError> {
    let f = &shared.fields;
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let room_terms = rooms.iter().map(|r| Term::from_field_u64(f.room, r.0));
    clauses.push((Occur::Must, Box::new(TermSetQuery::new(room_terms))));
    for text in q.words.iter().chain(&q.phrases) {
        if let Some(query) = text_query(tokens(&shared.index, f, text)?) {
            clauses.push((Occur::Must, query));
        }
    }
    if let Some(author) = q.author {
        let term = Term::from_field_u64(f.author, author.0);
        clauses.push((
            Occur::Must,
            Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
        ));
    }
    for has in &q.has {
        let term = Term::from_field_text(f.has, has.as_str());
        clauses.push((
            Occur::Must,
            Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
        ));
    }
    if q.before.is_some() || q.after.is_some() {
        let lower = q.after.map_or(Bound::Unbounded, |ms| {
            Bound::Included(Term::from_field_u64(f.created, ms))
        });
        let upper = q.before.map_or(Bound::Unbounded, |ms| {
            Bound::Excluded(Term::from_field_u64(f.created, ms))
        });
        clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
    }
    Ok(BooleanQuery::new(clauses))
}

/// Runs `q` over `rooms` on the last committed index.
pub(crate) fn search(
    shared: &Shared,
    rooms: &[Snowflake],
    q: &IndexQuery,
) -> Result<Vec<SearchHit>, SearchError> {
    let limit = q.limit.max(1) as usize;
    if rooms.is_empty() {
        return Ok(Vec::new());
    }
    let query = build(shared, rooms, q)?;
    let searcher = shared.reader.searcher();
    // Deleted messages not yet gone from the committed index are dropped after the search.
    let deleted = shared.deleted.lock().clone();
    let fetch = limit + deleted.len().min(1000);
    let found: Vec<(f32, DocAddress)> = match q.sort {
        SearchSort::Newest => searcher
            .search(
                &query,
                &TopDocs::with_limit(fetch).order_by_fast_field::<u64>("created", Order::Desc),
            )?
            .into_iter()
            .map(|(_, addr)| (0.0, addr))
            .collect(),
        SearchSort::Relevance => searcher.search(&query, &TopDocs::with_limit(fetch))?,
    };
    let f = &shared.fields;
    let mut snippets = SnippetGenerator::create(&searcher, &query, f.content)?;
    snippets.set_max_num_chars(SNIPPET_CHARS);
    let mut hits = Vec::with_capacity(limit);
    for (score, addr) in found {
        let d: TantivyDocument = searcher.doc(addr)?;
        let num = |field| d.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0);
        let id = num(f.id);
        if deleted.contains(&id) {
            continue;
        }
        let text = |field| d.get_first(field).and_then(|v| v.as_str()).unwrap_or("");
        let content = text(f.content);
        let (snippet, highlights) = snippet_of(&snippets, content);
        hits.push(SearchHit {
            message_id: Snowflake(id),
            room_id: Snowflake(num(f.room)),
            user_id: Snowflake(num(f.author)),
            username: text(f.username).to_owned(),
            created_at: num(f.created),
            snippet,
            highlights,
            score,
        });
        if hits.len() == limit {
            break;
        }
    }
    Ok(hits)
}

/// A fragment around the matches, with the matches as code-point offsets into it; the
/// beginning of the text when nothing in it matched (a query of operators only).
fn snippet_of(generator: &SnippetGenerator, content: &str) -> (String, Vec<(u32, u32)>) {
    let snippet = generator.snippet(content);
    if snippet.fragment().is_empty() {
        return (content.chars().take(SNIPPET_CHARS).collect(), Vec::new());
    }
    let fragment = snippet.fragment();
    let at = |byte: usize| fragment.get(..byte).map_or(0, |s| s.chars().count()) as u32;
    let highlights = snippet
        .highlighted()
        .iter()
        .map(|r| (at(r.start), at(r.end)))
        .collect();
    (fragment.to_owned(), highlights)
}
