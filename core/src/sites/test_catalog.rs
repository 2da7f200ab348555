//! For unit tests: a catalog of extensions that are nothing but their metadata.

use std::sync::Arc;

use crate::extension::metadata::Metadata;
use crate::extension::{Extension, Registrar};
use crate::plan::catalog::Catalog;

struct Declared(Metadata);

#[async_trait::async_trait]
impl Extension for Declared {
    fn metadata(&self) -> Metadata {
        self.0.clone()
    }

    fn register(&self, _r: &mut Registrar) {}
}

/// The catalog of extensions declaring `all`.
pub(crate) fn catalog(all: Vec<Metadata>) -> Catalog {
    let extensions: Vec<Arc<dyn Extension>> =
        all.into_iter().map(|m| Arc::new(Declared(m)) as Arc<dyn Extension>).collect();
    Catalog::new(&extensions)
}
