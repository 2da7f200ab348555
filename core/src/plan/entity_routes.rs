//! The entity REST API joins each declaring extension's routes at registration, so the router,
//! validation (route conflicts) and the catalog see it like any route the extension declared.

use std::collections::BTreeMap;
use std::sync::Arc;

use annex_entities::Declaration;

use crate::entities::api;
use crate::extension::Entities;
use crate::extension::registrar::{Registrar, RouteSpec};

/// Appends to each extension's routes the API of its entities; `items` are (name, its
/// declaration if any, its routes). A declaration that does not parse adds nothing (startup
/// validation reports it).
pub(crate) fn add<'a>(
    items: impl IntoIterator<Item = (&'a str, Option<&'a Entities>, &'a mut Vec<RouteSpec>)>,
) {
    let items: Vec<_> = items.into_iter().collect();
    let all: BTreeMap<&str, &Declaration> =
        items.iter().filter_map(|(n, e, _)| e.and_then(|e| e.declaration().ok()).map(|d| (*n, d))).collect();
    for (name, entities, routes) in items {
        let Some(d) = entities.and_then(|e| e.declaration().ok()) else { continue };
        let enums = Arc::new(api::enum_values(name, d, &all));
        let mut registrar = Registrar::new(name);
        api::register(&mut registrar, d, &enums);
        routes.extend(registrar.routes);
    }
}
