//! Checks on the raw and parsed document that async-graphql does not make: nesting of
//! the raw text (before the recursive parser sees it), aliases per document, and the
//! kind of the operation to run (which decides READ ONLY or read-write).

use async_graphql::Positioned;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
};

/// Deepest bracket nesting accepted in the raw text. The parser recurses per level, so a
/// body of 100k `{` must be refused before parsing; real documents stay far below this.
pub const MAX_TEXT_NESTING: usize = 64;

/// The deepest `{`, `(` or `[` nesting of a document's text, ignoring strings and comments.
pub fn text_nesting(query: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' || c == '\r' {
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => {}
                    }
                }
            }
            '{' | '(' | '[' => {
                depth += 1;
                max = max.max(depth);
            }
            '}' | ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The operation a request will run: by name, or the only one.
pub fn operation_type(doc: &ExecutableDocument, name: Option<&str>) -> Option<OperationType> {
    chosen_operation(doc, name).map(|op| op.node.ty)
}

/// The operation `name` selects (or the only one).
fn chosen_operation<'d>(
    doc: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<&'d Positioned<OperationDefinition>> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => {
            ops.iter().find(|(n, _)| n.as_str() == name).map(|(_, op)| op)
        }
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        _ => None,
    }
}

/// Whether the chosen operation is a mutation whose root selection holds nothing but
/// fields named in `allowed` (fragments at the root are refused: they could hide other
/// fields). Used to confine a password-change token to `changePassword`.
pub fn mutation_limited_to(doc: &ExecutableDocument, name: Option<&str>, allowed: &[&str]) -> bool {
    let Some(operation) = chosen_operation(doc, name) else {
        return false;
    };
    operation.node.ty == OperationType::Mutation
        && operation
            .node
            .selection_set
            .node
            .items
            .iter()
            .all(|item| match &item.node {
                Selection::Field(f) => allowed.contains(&f.node.name.node.as_str()),
                _ => false,
            })
}

/// The root fields the chosen operation selects, each with how many times: aliases and
/// repeats each count, and fragments spread at the root are expanded (the rate limiter
/// counts every one, so ten aliased `login`s are ten sign-ins). `__typename` is left out.
pub fn root_field_hits(doc: &ExecutableDocument, name: Option<&str>) -> Vec<(String, u32)> {
    fn collect(doc: &ExecutableDocument, set: &SelectionSet, depth: usize, hits: &mut Vec<(String, u32)>) {
        // Fragment cycles are refused later by validation; stop expanding well before.
        if depth > 8 {
            return;
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let field = f.node.name.node.as_str();
                    if field == "__typename" {
                        continue;
                    }
                    match hits.iter_mut().find(|(name, _)| name == field) {
                        Some((_, n)) => *n += 1,
                        None => hits.push((field.to_string(), 1)),
                    }
                }
                Selection::InlineFragment(f) => collect(doc, &f.node.selection_set.node, depth + 1, hits),
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node) {
                        collect(doc, &fragment.node.selection_set.node, depth + 1, hits);
                    }
                }
            }
        }
    }
    let mut hits = Vec::new();
    if let Some(operation) = chosen_operation(doc, name) {
        collect(doc, &operation.node.selection_set.node, 0, &mut hits);
    }
    hits
}

/// Aliases written in the document (operations and fragment definitions, counted as
/// written: fragment expansion is bounded by the complexity limit instead).
pub fn alias_count(doc: &ExecutableDocument) -> usize {
    fn count(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(f) => {
                    usize::from(f.node.alias.is_some()) + count(&f.node.selection_set.node)
                }
                Selection::InlineFragment(f) => count(&f.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    let in_operations: usize = doc
        .operations
        .iter()
        .map(|(_, op)| count(&op.node.selection_set.node))
        .sum();
    let in_fragments: usize = doc
        .fragments
        .values()
        .map(|f| count(&f.node.selection_set.node))
        .sum();
    in_operations + in_fragments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_ignores_brackets_in_strings_and_comments() {
        assert_eq!(text_nesting("{ a { b(x: \"{{{{\") } } # {{{{"), 3);
        assert_eq!(text_nesting(&"{a".repeat(100)), 100);
    }

    #[test]
    fn aliases_are_counted_in_operations_and_fragments() {
        let doc = async_graphql::parser::parse_query(
            "query { a: me { id } b: me { ...F } } fragment F on User { x: id y: id }",
        )
        .expect("parses");
        assert_eq!(alias_count(&doc), 4);
        assert_eq!(operation_type(&doc, None), Some(OperationType::Query));
    }

    #[test]
    fn root_fields_count_aliases_repeats_and_fragments() {
        let doc = async_graphql::parser::parse_query(
            "mutation { a: login(x: 1) { ok } b: login(x: 2) { ok } ...F __typename } \
             fragment F on Mutation { login(x: 3) { ok } logout }",
        )
        .expect("parses");
        assert_eq!(
            root_field_hits(&doc, None),
            vec![("login".to_string(), 3), ("logout".to_string(), 1)]
        );
    }
}
