//! Parsed documents, remembered by their text.
//!
//! Clients send the same few documents over and over with other variables; parsing one
//! (a pest grammar) cost about as much as the rest of a small operation's gateway work.
//! A copy of the parsed tree is handed to the request instead, so async-graphql skips
//! its parse; everything after it (recursion depth and directive limits, validation
//! against the schema with the request's variables, our own document checks) runs on
//! every request as before. Only documents that parsed are remembered, keyed by their
//! exact text, so a cached tree is the one the parser would return.
//!
//! Bounded in entries and in text size: two generations of at most [`GENERATION`]
//! documents each; when the current one is full, it becomes the previous one and the
//! older one is dropped, and a hit in the previous generation moves back to the current.
//! A flood of one-off documents only costs the cache its hits.

use std::collections::HashMap;
use std::sync::Mutex;

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerError};

/// Documents per generation.
const GENERATION: usize = 128;
/// Longer documents are parsed every time (and not kept in memory).
const MAX_TEXT: usize = 8 * 1024;

#[derive(Default)]
struct Generations {
    current: HashMap<String, ExecutableDocument>,
    previous: HashMap<String, ExecutableDocument>,
}

#[derive(Default)]
pub struct ParsedDocuments {
    inner: Mutex<Generations>,
}

impl ParsedDocuments {
    pub fn new() -> ParsedDocuments {
        ParsedDocuments::default()
    }

    /// `request.parsed_query()`, from the cache when the same text was parsed before.
    pub fn parse<'r>(&self, request: &'r mut Request) -> Result<&'r ExecutableDocument, ServerError> {
        if request.query.len() <= MAX_TEXT {
            let known = {
                let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                inner.get(&request.query)
            };
            match known {
                Some(doc) => request.set_parsed_query(doc),
                None => {
                    if let Ok(doc) = request.parsed_query() {
                        let doc = doc.clone();
                        let text = request.query.clone();
                        self.inner
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(text, doc);
                    }
                }
            }
        }
        request.parsed_query()
    }
}

impl Generations {
    fn get(&mut self, text: &str) -> Option<ExecutableDocument> {
        if let Some(doc) = self.current.get(text) {
            return Some(doc.clone());
        }
        let (text, doc) = self.previous.remove_entry(text)?;
        let copy = doc.clone();
        self.insert(text, doc);
        Some(copy)
    }

    fn insert(&mut self, text: String, doc: ExecutableDocument) {
        if self.current.len() >= GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(text, doc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Request {
        Request::new(text)
    }

    #[test]
    fn a_document_seen_before_gives_the_tree_the_parser_gives() {
        let cache = ParsedDocuments::new();
        let text = "query($n: Int) { a(first: $n) { b ...F } } fragment F on T { c @include(if: true) }";
        let first = format!("{:?}", cache.parse(&mut request(text)).expect("parses"));
        let second = format!("{:?}", cache.parse(&mut request(text)).expect("parses"));
        let fresh = format!("{:?}", async_graphql::parser::parse_query(text).expect("parses"));
        assert_eq!(first, fresh);
        assert_eq!(second, fresh);
    }

    #[test]
    fn a_syntax_error_is_reported_every_time_and_never_cached() {
        let cache = ParsedDocuments::new();
        for _ in 0..2 {
            assert!(cache.parse(&mut request("{ a ")).is_err());
        }
        assert!(cache.inner.lock().unwrap().current.is_empty());
    }

    #[test]
    fn the_cache_holds_at_most_two_generations() {
        let cache = ParsedDocuments::new();
        for i in 0..(5 * GENERATION) {
            cache.parse(&mut request(&format!("{{ f{i} }}"))).expect("parses");
        }
        let inner = cache.inner.lock().unwrap();
        assert!(inner.current.len() <= GENERATION && inner.previous.len() <= GENERATION);
        // The most recent documents are still there.
        assert!(
            inner
                .current
                .contains_key(&format!("{{ f{} }}", 5 * GENERATION - 1))
        );
    }

    #[test]
    fn long_documents_are_parsed_but_not_kept() {
        let cache = ParsedDocuments::new();
        let text = format!("{{ a {} }}", "b ".repeat(MAX_TEXT));
        cache.parse(&mut request(&text)).expect("parses");
        assert!(cache.inner.lock().unwrap().current.is_empty());
    }
}
