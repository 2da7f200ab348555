//! Reading a declaration from TOML or JSON, with the line and column of a problem.

use crate::model::Declaration;

/// A declaration that could not be read: not TOML/JSON, or not of the declaration's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ParseError {}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Parses a TOML declaration.
pub fn parse_toml(text: &str) -> Result<Declaration, ParseError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unzip();
        ParseError { line, column, message: e.message().to_owned() }
    })
}

/// Parses a JSON declaration (an object: serde would also read a struct from an array).
pub fn parse_json(text: &str) -> Result<Declaration, ParseError> {
    if !text.trim_start().starts_with('{') {
        return Err(ParseError {
            line: Some(1),
            column: None,
            message: "a declaration is a JSON object".into(),
        });
    }
    serde_json::from_str(text).map_err(|e| ParseError {
        line: Some(e.line()),
        column: Some(e.column()),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_names_its_line() {
        let e = parse_toml("version = 1\n[entities.a.fields.b]\ntype = \"strng\"\n").expect_err("bad type");
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("unknown variant `strng`"), "{e}");
        let e = parse_toml("version = 1\n[entities.a]\nfields = {}\ncolour = 1\n").expect_err("unknown key");
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
        let e = parse_json("{\"version\": 1,\n \"entities\": 3}").expect_err("json");
        assert_eq!(e.line, Some(2));
    }
}
