//! Where each node of a YAML file is: an index from paths (`steps[2].action.input.model`) to
//! line, column and byte span.
//!
//! Serde deserialization keeps no positions, so after parsing, a light pass over the parser
//! events (the same `granit-parser` that serde-saphyr uses) records the position of every key
//! and value by path. Semantic checks then report problems by path and this index turns the
//! path into `file:line:col` and a span for the snippet. Nodes reached through YAML aliases
//! are indexed at the alias; paths below it fall back to the nearest indexed ancestor.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Marker, Parser, Span};

/// A position in the source: 1-based line and column (in characters) and a byte span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    /// Byte offset of the start.
    pub offset: usize,
    /// Length in bytes (at least 1 when the source is not empty).
    pub len: usize,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    value: Pos,
    key: Option<Pos>,
}

/// Path → position index of one YAML document.
#[derive(Debug, Default)]
pub(crate) struct SourceMap {
    nodes: HashMap<String, Node>,
    /// Every recorded position (keys and values) with its path, in document order.
    order: Vec<(Pos, String)>,
    /// Whether the YAML has a syntax error (indexing stopped there).
    pub(crate) syntax_error: bool,
}

/// Appends a mapping key to a path: `a.b`, or `a["odd key"]` when the key is not a plain word.
pub(crate) fn key_path(base: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && !key
            .chars()
            .any(|c| matches!(c, '.' | '[' | ']' | '"' | '\'') || c.is_whitespace() || c.is_control());
    match (base.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{base}.{key}"),
        (_, false) => format!("{base}[{key:?}]"),
    }
}

/// Appends a sequence index to a path: `steps[2]`.
pub(crate) fn index_path(base: &str, index: usize) -> String {
    format!("{base}[{index}]")
}

enum Frame {
    Map {
        path: String,
        key: Option<(String, Pos)>,
    },
    Seq {
        path: String,
        next: usize,
    },
    /// A collection used as a mapping key: not indexed.
    Ignored,
}

struct Builder<'a> {
    source: &'a str,
    line_starts: Vec<usize>,
    map: SourceMap,
    stack: Vec<Frame>,
    /// Paths of open collections, to set their length when they end.
    open: Vec<Option<String>>,
}

impl Builder<'_> {
    fn byte_offset(&self, m: &Marker) -> usize {
        if let Some(b) = m.byte_offset() {
            return b.min(self.source.len());
        }
        let line_start = self.line_starts.get(m.line().saturating_sub(1)).copied().unwrap_or(0);
        let rest = self.source.get(line_start..).unwrap_or_default();
        line_start + rest.char_indices().nth(m.col()).map_or(rest.len(), |(i, _)| i)
    }

    fn pos(&self, span: &Span) -> Pos {
        let offset = self.byte_offset(&span.start);
        let end = self.byte_offset(&span.end).max(offset);
        Pos { line: span.start.line(), col: span.start.col() + 1, offset, len: end - offset }
    }

    fn record(&mut self, path: String, value: Pos, key: Option<Pos>) {
        if let Some(k) = key {
            self.map.order.push((k, path.clone()));
        }
        self.map.order.push((value, path.clone()));
        self.map.nodes.insert(path, Node { value, key });
    }

    /// Handles a node event; returns the path of the node (None when not indexed).
    fn node(&mut self, pos: Pos, is_collection: bool) -> Option<String> {
        let (path, key) = match self.stack.last_mut() {
            None => (String::new(), None),
            Some(Frame::Ignored) => {
                if is_collection {
                    self.stack.push(Frame::Ignored);
                }
                return None;
            }
            Some(Frame::Map { key: key @ None, .. }) => {
                // A collection or alias used as a key: not addressable by path.
                *key = Some(("?".into(), pos));
                if is_collection {
                    self.stack.push(Frame::Ignored);
                }
                return None;
            }
            Some(Frame::Map { path, key: key @ Some(_) }) => {
                let (name, key_pos) = key.take().unwrap_or_default();
                (key_path(path, &name), Some(key_pos))
            }
            Some(Frame::Seq { path, next }) => {
                let p = index_path(path, *next);
                *next += 1;
                (p, None)
            }
        };
        self.record(path.clone(), pos, key);
        Some(path)
    }
}

impl SourceMap {
    /// Indexes `source`. Stops quietly at the first syntax error (the deserializer reports it).
    pub(crate) fn build(source: &str) -> SourceMap {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        let mut b =
            Builder { source, line_starts, map: SourceMap::default(), stack: Vec::new(), open: Vec::new() };
        let mut documents = 0;
        for event in Parser::new_from_str(source) {
            let Ok((event, span)) = event else {
                b.map.syntax_error = true;
                break;
            };
            let pos = b.pos(&span);
            match event {
                Event::DocumentStart(..) => {
                    documents += 1;
                    if documents > 1 {
                        break;
                    }
                }
                Event::Scalar(text, ..) => match b.stack.last_mut() {
                    Some(Frame::Map { key: key @ None, .. }) => *key = Some((text.into_owned(), pos)),
                    _ => {
                        b.node(pos, false);
                    }
                },
                Event::Alias(_) => {
                    b.node(pos, false);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let is_map = matches!(event, Event::MappingStart(..));
                    let ignored_before = b.stack.len();
                    let path = b.node(pos, true);
                    if b.stack.len() > ignored_before {
                        // node() pushed an Ignored frame for a collection key.
                        b.open.push(None);
                        continue;
                    }
                    match path {
                        Some(path) => {
                            b.open.push(Some(path.clone()));
                            b.stack.push(if is_map {
                                Frame::Map { path, key: None }
                            } else {
                                Frame::Seq { path, next: 0 }
                            });
                        }
                        None => {
                            b.open.push(None);
                            b.stack.push(Frame::Ignored);
                        }
                    }
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    b.stack.pop();
                    if let Some(Some(path)) = b.open.pop()
                        && let Some(node) = b.map.nodes.get_mut(&path)
                    {
                        node.value.len = pos.offset.saturating_sub(node.value.offset) + pos.len;
                    }
                }
                _ => {}
            }
        }
        b.map.order.sort_by_key(|(p, _)| (p.offset, p.line, p.col));
        b.map
    }

    /// Position of the value at `path`, or of its nearest indexed ancestor.
    pub(crate) fn value(&self, path: &str) -> Option<Pos> {
        self.lookup(path).map(|n| n.value)
    }

    /// Position of the key that introduces `path` (falls back to the value, then ancestors).
    pub(crate) fn key(&self, path: &str) -> Option<Pos> {
        self.lookup(path).map(|n| n.key.unwrap_or(n.value))
    }

    /// Whether `path` itself (not an ancestor) is in the file.
    pub(crate) fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(path)
    }

    fn lookup(&self, path: &str) -> Option<&Node> {
        let mut p = path;
        loop {
            if let Some(n) = self.nodes.get(p) {
                return Some(n);
            }
            if p.is_empty() {
                return None;
            }
            p = parent(p);
        }
    }

    /// The path of the node at a 1-based line and column: the last key or value that starts
    /// at or before that position.
    pub(crate) fn path_at(&self, line: usize, col: usize) -> Option<&str> {
        let mut best: Option<&(Pos, String)> = None;
        for entry in &self.order {
            let (p, _) = entry;
            if (p.line, p.col) <= (line, col) {
                let better = match best {
                    None => true,
                    Some((b, _)) => (p.line, p.col) >= (b.line, b.col),
                };
                if better {
                    best = Some(entry);
                }
            }
        }
        best.map(|(_, path)| path.as_str())
    }
}

/// The parent of a path: `a.b[2]` → `a.b`, `a.b` → `a`, `a` → ``.
pub(crate) fn parent(path: &str) -> &str {
    if let Some(stripped) = path.strip_suffix(']') {
        // Either `[N]` or `["key"]`: find the matching `[` outside quotes.
        let mut in_quotes = false;
        let mut escaped = false;
        for (i, c) in stripped.char_indices().rev() {
            match c {
                '\\' if in_quotes => escaped = !escaped,
                '"' if !escaped => in_quotes = !in_quotes,
                '[' if !in_quotes => return &path[..i],
                _ => escaped = false,
            }
        }
        return "";
    }
    match path.rfind(['.', ']']) {
        Some(i) if path.as_bytes()[i] == b']' => &path[..=i],
        Some(i) => &path[..i],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "flow: demo\nconnections:\n  jira:\n    connector: jira@^0.1\n    config: { base_url: \"x\", \"odd key\": 1 }\nsteps:\n  - id: a\n    map:\n      名前: record.name\n  - id: b\n    filter: record.x > 0\n";

    #[test]
    fn indexes_values_and_keys() {
        let m = SourceMap::build(YAML);
        let at = |p: &str| m.value(p).map(|p| (p.line, p.col));
        assert_eq!(at("flow"), Some((1, 7)));
        assert_eq!(at("connections.jira.connector"), Some((4, 16)));
        assert_eq!(at("connections.jira.config.base_url"), Some((5, 25)));
        assert_eq!(at("connections.jira.config[\"odd key\"]"), Some((5, 41)));
        assert_eq!(at("steps[1].filter"), Some((11, 13)));
        assert_eq!(at("steps[0].map.名前"), Some((9, 11)));
        assert_eq!(m.key("steps[1].filter").map(|p| (p.line, p.col)), Some((11, 5)));
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(at("steps[1].filter.nothing[3]"), Some((11, 13)));
        assert!(m.contains("steps[0].id") && !m.contains("steps[0].when"));
    }

    #[test]
    fn spans_cover_scalars_and_collections() {
        let m = SourceMap::build(YAML);
        let text = |p: &str| m.value(p).map(|p| &YAML[p.offset..p.offset + p.len]);
        assert_eq!(text("steps[1].filter"), Some("record.x > 0"));
        assert_eq!(text("connections.jira.config"), Some("{ base_url: \"x\", \"odd key\": 1 }"));
        assert_eq!(text("steps[0].map.名前"), Some("record.name"));
    }

    #[test]
    fn finds_path_at_position() {
        let m = SourceMap::build(YAML);
        assert_eq!(m.path_at(11, 5), Some("steps[1].filter"));
        assert_eq!(m.path_at(4, 5), Some("connections.jira.connector"));
        assert_eq!(m.path_at(1, 1), Some("flow"));
    }

    #[test]
    fn parents() {
        assert_eq!(parent("a.b[2]"), "a.b");
        assert_eq!(parent("a.b"), "a");
        assert_eq!(parent("a"), "");
        assert_eq!(parent("a[\"x.y\"]"), "a");
        assert_eq!(parent("a[\"x]\"]"), "a");
        assert_eq!(parent("a[1].b"), "a[1]");
    }

    #[test]
    fn survives_garbage_and_complex_keys() {
        let m = SourceMap::build("a: [1, 2\nb: {");
        assert!(m.value("a").is_some());
        let m = SourceMap::build("? [x, y]\n: 1\nz: 2\n");
        assert_eq!(m.value("z").map(|p| p.line), Some(3));
        let m = SourceMap::build("base: &b { x: 1 }\nother: *b\n");
        assert_eq!(m.value("other.x").map(|p| p.line), Some(2));
    }
}
