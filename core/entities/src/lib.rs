//! The declaration format of annex's declarative entities (`entities.toml` / `.json`): the
//! types, parsing with line numbers, and validation that reports every problem at once with a
//! JSON pointer into the declaration. annex-core turns a valid declaration into SQL and a REST
//! API; `annex_core::entities!` runs the same validation at compile time.
//!
//! ```
//! let d = annex_entities::parse_toml(r#"
//! version = 1
//!
//! [enums.status]
//! values = ["open", "closed"]
//!
//! [entities.work_order.fields.title]
//! type = "string"
//! required = true
//! max_length = 200
//!
//! [entities.work_order.fields.status]
//! type = "enum"
//! enum = "status"
//! default = "open"
//! "#).expect("parses");
//! assert!(annex_entities::validate(&d, &annex_entities::Scope::alone("workorders")).is_empty());
//! ```
#![deny(missing_docs)]

mod diff;
mod filter;
mod model;
mod parse;
mod row;
mod validate;

pub use diff::{Change, PlannedChange, diff};
pub use filter::{Filter, FilterError, MAX_COMPARISONS, MAX_DEPTH, MAX_FILTER_LEN, Op, parse_filter};
pub use model::{
    Access, Declaration, Entity, EnumDecl, EnumExtension, Field, FieldType, Index, OnDelete, RelationKind,
};
pub use parse::{ParseError, parse_json, parse_toml};
pub use row::{EnumValues, FieldError, MAX_LINKS, Write, check_row, links, writable};
pub use validate::{Problem, RESERVED_FIELDS, Scope, valid_name, validate};
