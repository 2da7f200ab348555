//! Who is acting: operators (people with roles, a site scope, an argon2id password and a
//! personal API token) and the [`Actor`] every admin-API call and CLI command runs as. The admin
//! token is the built-in superuser; everything else is an operator.

mod actor;
mod error;
pub mod operators;
pub(crate) mod password;
pub(crate) mod session;

pub use actor::{Action, Actor};
pub use error::AccessError;
pub use operators::{NewOperator, Operator, OperatorChange};
