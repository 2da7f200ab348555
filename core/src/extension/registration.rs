//! Compile-time registration of extensions through `inventory`, and the check that none was lost.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::extension::Extension;

/// One `register_extension!` call: the crate it came from and how to build the extension.
///
/// Built by [`register_extension!`](crate::register_extension); authors never write it by hand.
#[derive(Debug)]
pub struct Registration {
    /// `CARGO_PKG_NAME` of the crate that registered, such as `annex-ext-hello`.
    pub crate_name: &'static str,
    /// Builds the extension value.
    pub constructor: fn() -> Arc<dyn Extension>,
}

inventory::collect!(Registration);

/// Registers an extension type with the host. The type must implement [`Extension`] and
/// `Default`, or pass an expression that builds it.
///
/// ```ignore
/// annex_core::register_extension!(Hello);
/// annex_core::register_extension!(Hello, Hello::new());
/// ```
#[macro_export]
macro_rules! register_extension {
    ($ty:ty) => {
        $crate::register_extension!($ty, <$ty as ::core::default::Default>::default());
    };
    ($ty:ty, $ctor:expr) => {
        $crate::__private::inventory::submit! {
            $crate::__private::Registration {
                crate_name: ::core::env!("CARGO_PKG_NAME"),
                constructor: || -> ::std::sync::Arc<dyn $crate::Extension> {
                    let ext: $ty = $ctor;
                    ::std::sync::Arc::new(ext)
                },
            }
        }
    };
}

/// The extension crates build.rs expected did not all register, or unexpected ones did.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistrationError {
    /// A crate enabled by a Cargo feature registered nothing.
    #[error(
        "extension crate `{crate_name}` is enabled but registered no extension: the linker dropped \
         it or it never calls `annex_core::register_extension!`. Check that build.rs generated its \
         anchor (`use {anchor} as _;`) and that its lib.rs calls register_extension!"
    )]
    Missing {
        /// The crate's package name.
        crate_name: String,
        /// The Rust name used in the anchor.
        anchor: String,
    },
}

/// Every extension compiled into this binary, in a stable order (by crate, then registration).
///
/// `expected_crates` is the list build.rs wrote for the enabled `ext-<name>` features; a crate in
/// it that registered nothing is an error, so no extension is ever lost silently.
pub fn compiled_in(expected_crates: &[&str]) -> Result<Vec<Arc<dyn Extension>>, RegistrationError> {
    let mut regs: Vec<&Registration> = inventory::iter::<Registration>.into_iter().collect();
    regs.sort_by_key(|r| r.crate_name);
    check_expected(expected_crates, regs.iter().map(|r| r.crate_name))?;
    Ok(regs.into_iter().map(|r| (r.constructor)()).collect())
}

fn check_expected<'a>(
    expected: &[&str],
    collected: impl Iterator<Item = &'a str>,
) -> Result<(), RegistrationError> {
    let collected: BTreeSet<&str> = collected.collect();
    match expected.iter().find(|c| !collected.contains(**c)) {
        Some(missing) => Err(RegistrationError::Missing {
            crate_name: (*missing).to_owned(),
            anchor: missing.replace('-', "_"),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metadata;

    #[derive(Default)]
    struct Registered;

    #[async_trait::async_trait]
    impl Extension for Registered {
        fn metadata(&self) -> Metadata {
            Metadata::new("registered", "1.0.0")
        }
    }

    crate::register_extension!(Registered);

    #[test]
    fn a_registered_extension_is_collected_with_its_crate_name() {
        let all = compiled_in(&["annex-core"]).expect("annex-core registered one");
        assert!(all.iter().any(|e| e.metadata().name == "registered"));
    }

    #[test]
    fn an_expected_crate_that_registered_nothing_is_an_error_naming_it() {
        let err = compiled_in(&["annex-core", "annex-ext-ghost"]).err().expect("ghost is missing");
        assert_eq!(
            err,
            RegistrationError::Missing {
                crate_name: "annex-ext-ghost".into(),
                anchor: "annex_ext_ghost".into()
            }
        );
        assert!(err.to_string().contains("use annex_ext_ghost as _;"));
    }
}
