//! [`Entities`]: an extension's declared tables, enums and relations, as data. Embed a file with
//! `annex_core::entities!("entities.toml")` (checked at compile time) and return it from
//! [`Extension::entities`](crate::Extension::entities). The format is
//! [`entity_format`](crate::extension::entity_format) (docs/entities.md has a full example).

pub use annex_entities as entity_format;
use annex_entities::{Declaration, ParseError};

/// An extension's entity declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Entities {
    source: &'static str,
    parsed: Result<Declaration, ParseError>,
}

impl Entities {
    /// What `entities!` expands to: the file's text, parsed here (the macro already checked it
    /// parses; a failure is still reported, at startup, never a panic).
    #[doc(hidden)]
    pub fn embedded(source: &'static str, text: &str, json: bool) -> Self {
        let parsed = if json { annex_entities::parse_json(text) } else { annex_entities::parse_toml(text) };
        Self { source, parsed }
    }

    /// A declaration built in code.
    pub fn from_declaration(declaration: Declaration) -> Self {
        Self { source: "(built in code)", parsed: Ok(declaration) }
    }

    /// Where it came from: the embedded file's path, relative to the extension's crate.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// The declaration, or why it could not be read.
    pub fn declaration(&self) -> Result<&Declaration, &ParseError> {
        self.parsed.as_ref()
    }
}
