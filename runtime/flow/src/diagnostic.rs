//! Problems found in a flow file, each with `file:line:col`, a path and a message.
//!
//! [`Diagnostics`] prints one problem per line (`flows/a.yaml:12:7: steps[2].action.operation:
//! ...`), sorted by position, for logs, tests and golden files; [`Diagnostics::report`] and
//! [`Diagnostics::render_fancy`] render miette snippets for people at a terminal.

use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

/// One problem in a flow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name as given to the loader.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column in characters (0 when unknown).
    pub col: usize,
    /// Where in the flow (`steps[2].action.input.model`); empty for the whole file.
    pub path: String,
    /// What is wrong, lowercase, naming the thing and quoting the value.
    pub message: String,
    /// Byte offset and length in the source, for snippets.
    pub span: Option<(usize, usize)>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one flow file, sorted by position.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Sorts by line and column, keeping the order of discovery for equal positions.
    pub fn sort(&mut self) {
        self.0.sort_by_key(|d| (d.line, d.col));
        self.0.dedup();
    }

    /// Whether there is no problem.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The problems.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// A miette report with one snippet per problem, for terminals (colors follow miette's
    /// global hook).
    pub fn report(&self, source: &str) -> miette::Report {
        miette::Report::new(self.snippets(source))
    }

    /// The snippet rendering as plain text (no colors), for non-terminal output and tests.
    pub fn render_fancy(&self, source: &str) -> String {
        let mut out = String::new();
        let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_width(100);
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, &self.snippets(source));
        out
    }

    fn snippets(&self, source: &str) -> Snippets {
        let file = self.0.first().map(|d| d.file.clone()).unwrap_or_default();
        let named = NamedSource::new(&file, Arc::<str>::from(source));
        let problems = self
            .0
            .iter()
            .map(|d| Snippet { diagnostic: d.clone(), source: named.clone(), source_len: source.len() })
            .collect();
        Snippets { file, problems }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// The miette view: a header with every problem as a related diagnostic.
#[derive(Debug)]
struct Snippets {
    file: String,
    problems: Vec<Snippet>,
}

impl fmt::Display for Snippets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "flow file {:?} has {n} problem{}", self.file, if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Snippets {}

impl miette::Diagnostic for Snippets {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        Some(Box::new(self.problems.iter().map(|p| p as &dyn miette::Diagnostic)))
    }
}

#[derive(Debug)]
struct Snippet {
    diagnostic: Diagnostic,
    source: NamedSource<Arc<str>>,
    source_len: usize,
}

impl fmt::Display for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Snippet {}

impl miette::Diagnostic for Snippet {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (offset, len) = self.diagnostic.span?;
        let offset = offset.min(self.source_len);
        let len = len.min(self.source_len - offset);
        let label =
            if self.diagnostic.path.is_empty() { "here".to_string() } else { self.diagnostic.path.clone() };
        Some(Box::new(std::iter::once(LabeledSpan::new_primary_with_span(
            Some(label),
            SourceSpan::new(offset.into(), len),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(line: usize, col: usize, path: &str, message: &str) -> Diagnostic {
        Diagnostic {
            file: "f.yaml".into(),
            line,
            col,
            path: path.into(),
            message: message.into(),
            span: None,
        }
    }

    #[test]
    fn plain_rendering_is_sorted_one_per_line() {
        let mut d =
            Diagnostics(vec![diag(3, 1, "steps[0].id", "b"), diag(1, 7, "flow", "a"), diag(3, 1, "", "c")]);
        d.sort();
        assert_eq!(d.to_string(), "f.yaml:1:7: flow: a\nf.yaml:3:1: steps[0].id: b\nf.yaml:3:1: c\n");
    }

    #[test]
    fn fancy_rendering_shows_the_snippet() {
        let source = "flow: Bad_Id\nsteps: []\n";
        let mut d = diag(1, 7, "flow", "invalid flow id");
        d.span = Some((6, 6));
        let out = Diagnostics(vec![d]).render_fancy(source);
        assert!(out.contains("flow file \"f.yaml\" has 1 problem"), "{out}");
        assert!(out.contains("invalid flow id"), "{out}");
        assert!(out.contains("flow: Bad_Id"), "{out}");
        assert!(out.contains("f.yaml:1:7"), "{out}");
    }
}
