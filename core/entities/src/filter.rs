//! The list filter: `(status='open' && qty>=5) || title~'bolt'`, parsed into a typed tree, never
//! into SQL text. Values stay values: the host binds each one as a query parameter.
//!
//! ```text
//! filter     := or
//! or         := and ( "||" and )*
//! and        := primary ( "&&" primary )*
//! primary    := "(" or ")" | comparison
//! comparison := field op value
//! op         := "=" | "!=" | ">" | ">=" | "<" | "<=" | "~" | "!~"
//! value      := 'text' (a quote doubled or backslash-escaped inside) | number | true | false | null
//! field      := a field name, or id, created_at, updated_at
//! ```
//! `~` and `!~` are "contains" / "does not contain" (case-insensitive) on text; `null` compares
//! with `=` and `!=` only.

use serde_json::Value;

use crate::model::{Entity, FieldType};

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// The deepest nesting of parentheses accepted.
pub const MAX_DEPTH: usize = 16;
/// The most comparisons in one filter.
pub const MAX_COMPARISONS: usize = 64;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `~`: contains, case-insensitive.
    Contains,
    /// `!~`: does not contain.
    NotContains,
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// All must hold.
    And(Vec<Filter>),
    /// One must hold.
    Or(Vec<Filter>),
    /// `field op value`; `value` is JSON null, a bool, a number or a string.
    Compare {
        /// The column compared (a field's column, or `id`, `created_at`, `updated_at`).
        column: String,
        /// The field's type.
        field_type: FieldType,
        /// The operator.
        op: Op,
        /// The value, to be bound.
        value: Value,
    },
}

/// A filter that could not be parsed or does not fit the entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// 1-based character position of the problem.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "filter, at character {}: {}", self.position, self.message)
    }
}

impl std::error::Error for FilterError {}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(serde_json::Number),
    Op(Op),
    And,
    Or,
    Open,
    Close,
}

struct Lexer<'s> {
    chars: Vec<(usize, char)>,
    at: usize,
    text: &'s str,
}

impl Lexer<'_> {
    fn error(&self, index: usize, message: impl Into<String>) -> FilterError {
        let position = self.chars.get(index).map_or_else(|| self.text.chars().count() + 1, |_| index + 1);
        FilterError { position, message: message.into() }
    }

    fn tokens(mut self) -> Result<Vec<(usize, Token)>, FilterError> {
        let mut out = Vec::new();
        while self.at < self.chars.len() {
            let (start, c) = (self.at, self.chars[self.at].1);
            let next = self.chars.get(self.at + 1).map(|p| p.1);
            let token = match c {
                c if c.is_whitespace() => {
                    self.at += 1;
                    continue;
                }
                '(' => (1, Token::Open),
                ')' => (1, Token::Close),
                '&' if next == Some('&') => (2, Token::And),
                '|' if next == Some('|') => (2, Token::Or),
                '=' => (1, Token::Op(Op::Eq)),
                '!' if next == Some('=') => (2, Token::Op(Op::Ne)),
                '!' if next == Some('~') => (2, Token::Op(Op::NotContains)),
                '~' => (1, Token::Op(Op::Contains)),
                '>' if next == Some('=') => (2, Token::Op(Op::Ge)),
                '>' => (1, Token::Op(Op::Gt)),
                '<' if next == Some('=') => (2, Token::Op(Op::Le)),
                '<' => (1, Token::Op(Op::Lt)),
                '\'' | '"' => {
                    let s = self.string(c)?;
                    out.push((start, Token::Str(s)));
                    continue;
                }
                c if c.is_ascii_digit() || c == '-' || c == '.' => {
                    let n = self.number()?;
                    out.push((start, Token::Num(n)));
                    continue;
                }
                c if c.is_ascii_alphabetic() || c == '_' => {
                    let mut end = self.at;
                    while self.chars.get(end).is_some_and(|p| p.1.is_ascii_alphanumeric() || p.1 == '_') {
                        end += 1;
                    }
                    let word: String = self.chars[self.at..end].iter().map(|p| p.1).collect();
                    self.at = end;
                    out.push((start, Token::Ident(word)));
                    continue;
                }
                other => return Err(self.error(start, format!("unexpected `{other}`"))),
            };
            self.at += token.0;
            out.push((start, token.1));
        }
        Ok(out)
    }

    fn string(&mut self, quote: char) -> Result<String, FilterError> {
        let start = self.at;
        self.at += 1;
        let mut s = String::new();
        loop {
            let Some(&(_, c)) = self.chars.get(self.at) else {
                return Err(self.error(start, format!("this string is not closed: add the closing {quote}")));
            };
            self.at += 1;
            match c {
                '\\' => match self.chars.get(self.at) {
                    Some(&(_, escaped)) => {
                        s.push(escaped);
                        self.at += 1;
                    }
                    None => return Err(self.error(start, "the string ends in a lone backslash")),
                },
                c if c == quote => {
                    if self.chars.get(self.at).is_some_and(|p| p.1 == quote) {
                        s.push(quote);
                        self.at += 1;
                    } else {
                        return Ok(s);
                    }
                }
                '\0' => return Err(self.error(self.at - 1, "text cannot contain NUL characters")),
                c => s.push(c),
            }
        }
    }

    fn number(&mut self) -> Result<serde_json::Number, FilterError> {
        let start = self.at;
        let mut end = self.at;
        while self.chars.get(end).is_some_and(|p| {
            p.1.is_ascii_digit()
                || matches!(p.1, '-' | '+' | '.' | 'e' | 'E')
                    && (end == start || p.1 != '-' || matches!(self.chars[end - 1].1, 'e' | 'E'))
        }) {
            end += 1;
        }
        let text: String = self.chars[start..end].iter().map(|p| p.1).collect();
        self.at = end;
        let parsed: Result<Value, _> = serde_json::from_str(&text);
        match parsed {
            Ok(Value::Number(n)) if n.as_f64().is_some_and(f64::is_finite) => Ok(n),
            _ => Err(self.error(start, format!("`{text}` is not a number"))),
        }
    }
}

struct Parser<'e> {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
    entity: &'e Entity,
    comparisons: usize,
}

impl Parser<'_> {
    fn position(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |t| t.0 + 1)
    }

    fn error(&self, message: impl Into<String>) -> FilterError {
        FilterError { position: self.position(), message: message.into() }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|t| &t.1)
    }

    fn or(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut parts = vec![self.and(depth)?];
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            parts.push(self.and(depth)?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Filter::Or(parts) })
    }

    fn and(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut parts = vec![self.primary(depth)?];
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            parts.push(self.primary(depth)?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Filter::And(parts) })
    }

    fn primary(&mut self, depth: usize) -> Result<Filter, FilterError> {
        match self.peek() {
            Some(Token::Open) => {
                if depth >= MAX_DEPTH {
                    return Err(self.error(format!("parentheses nest deeper than {MAX_DEPTH}")));
                }
                self.at += 1;
                let inner = self.or(depth + 1)?;
                if self.peek() != Some(&Token::Close) {
                    return Err(self.error("expected `)`"));
                }
                self.at += 1;
                Ok(inner)
            }
            Some(Token::Ident(_)) => self.comparison(),
            Some(_) => Err(self.error("expected a field name or `(`")),
            None => Err(self.error("the filter ends where a comparison was expected")),
        }
    }

    fn comparison(&mut self) -> Result<Filter, FilterError> {
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return Err(self.error(format!("more than {MAX_COMPARISONS} comparisons")));
        }
        let field_at = self.at;
        let Some(Token::Ident(name)) = self.peek().cloned() else {
            return Err(self.error("expected a field name"));
        };
        let (column, field_type) = self.field(&name).map_err(|m| self.error(m))?;
        self.at += 1;
        let Some(Token::Op(op)) = self.peek().cloned() else {
            return Err(self.error(format!("expected an operator after `{name}`: = != > >= < <= ~ !~")));
        };
        self.at += 1;
        let value_at = self.at;
        let value = match self.peek().cloned() {
            Some(Token::Str(s)) => Value::String(s),
            Some(Token::Num(n)) => Value::Number(n),
            Some(Token::Ident(w)) if w == "true" || w == "false" => Value::Bool(w == "true"),
            Some(Token::Ident(w)) if w == "null" => Value::Null,
            _ => return Err(self.error("expected a value: 'text', a number, true, false or null")),
        };
        self.at += 1;
        let fail = |parser: &mut Self, at: usize, message: String| {
            parser.at = at;
            Err(parser.error(message))
        };
        if let Err(why) = fits(field_type, op, &value) {
            return fail(self, value_at, format!("`{name}`: {why}"));
        }
        if field_type == FieldType::Relation && !matches!(op, Op::Eq | Op::Ne) {
            return fail(self, field_at, format!("`{name}` is a reference: compare it with = or != only"));
        }
        Ok(Filter::Compare { column, field_type, op, value })
    }

    fn field(&self, name: &str) -> Result<(String, FieldType), String> {
        match name {
            "id" => return Ok(("id".into(), FieldType::Uuid)),
            "created_at" | "updated_at" => return Ok((name.into(), FieldType::Datetime)),
            "site_id" if self.entity.site_scoped => return Ok(("site_id".into(), FieldType::Uuid)),
            _ => {}
        }
        let Some(f) = self.entity.fields.get(name) else {
            let known: Vec<&str> = self
                .entity
                .fields
                .iter()
                .filter(|(n, f)| f.column(n).is_some())
                .map(|(n, _)| n.as_str())
                .collect();
            return Err(format!(
                "unknown field `{name}`; filter on: id, created_at, updated_at, {}",
                known.join(", ")
            ));
        };
        let Some(column) = f.column(name) else {
            return Err(format!(
                "`{name}` is a {} relation, stored on the other side: filter there",
                if f.relation.is_some() { "to-many" } else { "derived" }
            ));
        };
        Ok((column, f.field_type))
    }
}

/// Whether `value` may be compared with `op` on a field of type `t`.
fn fits(t: FieldType, op: Op, value: &Value) -> Result<(), String> {
    let text = matches!(t, FieldType::String | FieldType::Text | FieldType::Enum);
    match value {
        Value::Null => {
            if matches!(op, Op::Eq | Op::Ne) {
                Ok(())
            } else {
                Err("null compares with = and != only".into())
            }
        }
        _ if matches!(op, Op::Contains | Op::NotContains) => {
            if text && value.is_string() {
                Ok(())
            } else {
                Err("~ and !~ take a 'text' value on a text field".into())
            }
        }
        Value::Bool(_) if t == FieldType::Boolean => {
            if matches!(op, Op::Eq | Op::Ne) {
                Ok(())
            } else {
                Err("true and false compare with = and != only".into())
            }
        }
        Value::Number(n) if matches!(t, FieldType::Int | FieldType::Bigint) => {
            if n.is_i64() || n.is_u64() {
                Ok(())
            } else {
                Err(format!("expected a whole number, got {n}"))
            }
        }
        Value::Number(_) if matches!(t, FieldType::Float | FieldType::Decimal) => Ok(()),
        Value::String(s) => match t {
            FieldType::String | FieldType::Text | FieldType::Enum => Ok(()),
            FieldType::Date | FieldType::Datetime => {
                if s.len() >= 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' {
                    Ok(())
                } else {
                    Err(format!("'{s}' is not a date (YYYY-MM-DD) or time (RFC 3339)"))
                }
            }
            FieldType::Uuid | FieldType::Relation => {
                if crate::validate::is_uuid(s) {
                    Ok(())
                } else {
                    Err(format!("'{s}' is not a uuid"))
                }
            }
            _ => Err("expected a number or true/false, not text".into()),
        },
        Value::Bool(_) => Err("true and false compare with boolean fields only".into()),
        Value::Number(_) => Err("a number compares with number fields only".into()),
        _ => Err("unsupported value".into()),
    }
}

/// Parses `text` as a filter on `entity`: every field must exist and every value fit its field.
pub fn parse_filter(text: &str, entity: &Entity) -> Result<Filter, FilterError> {
    if text.len() > MAX_FILTER_LEN {
        return Err(FilterError {
            position: MAX_FILTER_LEN,
            message: format!("a filter is at most {MAX_FILTER_LEN} bytes"),
        });
    }
    let lexer = Lexer { chars: text.char_indices().collect(), at: 0, text };
    let chars = lexer.chars.len();
    // Token positions are character indices (the lexer walks characters).
    let tokens: Vec<(usize, Token)> = lexer.tokens()?;
    if tokens.is_empty() {
        return Err(FilterError { position: 1, message: "the filter is empty".into() });
    }
    let mut parser = Parser { tokens, at: 0, end: chars + 1, entity, comparisons: 0 };
    let filter = parser.or(0)?;
    if parser.at < parser.tokens.len() {
        return Err(parser.error("expected `&&`, `||` or the end of the filter"));
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_toml;

    fn entity() -> Entity {
        let d = parse_toml(
            r#"
version = 1
[enums.status]
values = ["open", "closed"]
[entities.item.fields]
title = { type = "string" }
qty = { type = "int" }
price = { type = "float" }
done = { type = "boolean" }
due = { type = "date" }
status = { type = "enum", enum = "status" }
owner = { type = "relation", kind = "many-to-one", to = "item" }
"#,
        )
        .expect("parses");
        d.entities["item"].clone()
    }

    fn cmp(column: &str, field_type: FieldType, op: Op, value: Value) -> Filter {
        Filter::Compare { column: column.into(), field_type, op, value }
    }

    #[test]
    fn precedence_grouping_and_every_operator() {
        let e = entity();
        let f = parse_filter("(status='open' && qty>=5) || title~'bolt'", &e).expect("parses");
        assert_eq!(
            f,
            Filter::Or(vec![
                Filter::And(vec![
                    cmp("status", FieldType::Enum, Op::Eq, "open".into()),
                    cmp("qty", FieldType::Int, Op::Ge, 5.into()),
                ]),
                cmp("title", FieldType::String, Op::Contains, "bolt".into()),
            ])
        );
        let f = parse_filter("qty != 1 && qty > 1 && qty < 9 && qty <= 8 && title !~ \"x\" && done = true && due = null && price > -1.5e2 && owner = null", &e)
            .expect("parses");
        let Filter::And(parts) = f else { panic!("an and") };
        assert_eq!(parts.len(), 9);
        assert_eq!(parts[7], cmp("price", FieldType::Float, Op::Gt, serde_json::json!(-150.0)));
        assert_eq!(parts[8], cmp("owner_id", FieldType::Relation, Op::Eq, Value::Null));
    }

    #[test]
    fn quotes_inside_values_stay_values() {
        let e = entity();
        let f = parse_filter("title = 'it''s'' ; drop table item; --'", &e).expect("parses");
        assert_eq!(f, cmp("title", FieldType::String, Op::Eq, "it's' ; drop table item; --".into()));
        let f = parse_filter(r#"title = 'a\'b'"#, &e).expect("parses");
        assert_eq!(f, cmp("title", FieldType::String, Op::Eq, "a'b".into()));
    }

    #[test]
    fn errors_name_the_position() {
        let e = entity();
        let cases = [
            ("title = 'open", 9, "not closed"),
            ("qty >= ", 8, "expected a value"),
            ("colour = 'red'", 1, "unknown field `colour`"),
            ("qty = 'five'", 7, "`qty`: expected a number"),
            ("qty = 1.5", 7, "expected a whole number"),
            ("(qty = 1", 9, "expected `)`"),
            ("qty = 1 title = 'x'", 9, "expected `&&`, `||`"),
            ("done > true", 8, "compare with = and != only"),
            ("qty ~ 'x'", 7, "~ and !~ take a 'text' value"),
            ("qty = 1 ; drop table item", 9, "unexpected `;`"),
            ("", 1, "empty"),
            ("owner > '00000000-0000-0000-0000-000000000000'", 1, "compare it with = or != only"),
        ];
        for (text, position, needle) in cases {
            let err = parse_filter(text, &e).expect_err(text);
            assert!(err.message.contains(needle), "{text}: {err}");
            assert_eq!(err.position, position, "{text}: {err}");
        }
        let deep = format!("{}qty = 1{}", "(".repeat(20), ")".repeat(20));
        assert!(parse_filter(&deep, &e).expect_err("deep").message.contains("deeper than 16"));
        let long = "qty = 1 && ".repeat(500);
        assert!(parse_filter(&long, &e).expect_err("long").message.contains("at most 4096 bytes"));
    }

    #[test]
    fn arbitrary_input_never_panics() {
        // A deterministic sweep over many generated strings (a property test without a crate):
        // every input parses or fails with a position inside the text (or just after it).
        let e = entity();
        let alphabet: Vec<char> =
            "qty title status ()=!<>~&|'\"\\-.0123456789eE nul true \u{0}é😀;".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = usize::try_from(seed % 40).unwrap_or(0);
            let text: String = (0..len)
                .map(|i| {
                    let k = usize::try_from(
                        seed.rotate_left(u32::try_from(i).unwrap_or(0) * 5) % alphabet.len() as u64,
                    )
                    .unwrap_or(0);
                    alphabet[k]
                })
                .collect();
            if let Err(err) = parse_filter(&text, &e) {
                assert!(err.position >= 1 && err.position <= text.chars().count() + 1, "{text:?}: {err}");
            }
        }
    }
}
