//! [`Site`]: the site (tenant) a request was made for, as its handler sees it.

use std::sync::Arc;

use uuid::Uuid;

/// The site a request under `/sites/<slug>/ext/<name>/…` was made for, and the hash of the config
/// this extension runs with there. [`Context::site`](crate::Context::site) hands it out; outside
/// a site there is none.
///
/// ```
/// use annex_core::{ApiError, Context};
/// async fn whoami(cx: Context) -> Result<String, ApiError> {
///     let site = cx.site().ok_or_else(|| ApiError::bad_request("call me under /sites/<slug>/ext/…"))?;
///     Ok(format!("site {} ({}), config {}", site.slug(), site.id(), site.config_hash()))
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    id: Uuid,
    slug: Arc<str>,
    config_hash: Arc<str>,
}

impl Site {
    pub(crate) fn new(id: Uuid, slug: Arc<str>, config_hash: Arc<str>) -> Self {
        Self { id, slug, config_hash }
    }

    /// The site's id (`annex.sites.id`), the value `annex_api.annex_site_id()` returns inside
    /// [`Context::site_tx`](crate::Context::site_tx).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The site's slug, as in its URL: `/sites/<slug>/ext/…`.
    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// SHA-256 (hex) of the canonical JSON of this extension's config at this site: the hash
    /// compliance sign-offs name.
    pub fn config_hash(&self) -> &str {
        &self.config_hash
    }
}

/// One extension active at one site: the site and the config it runs with there. Built when the
/// site gates load, shared by every request to that (site, extension).
#[derive(Debug)]
pub(crate) struct SiteScope {
    pub(crate) site: Site,
    pub(crate) config: Arc<serde_json::Value>,
}

/// `/sites/<slug>/ext/<name>/…` → (`<slug>`, `/ext/<name>/…`); `None` for any other path. Hook
/// and middleware prefixes match the second part, so a prefix `/ext/shop` covers the shop's
/// routes under every site too.
pub(crate) fn split_site_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/sites/")?;
    let (slug, tail) = rest.split_at(rest.find('/')?);
    (!slug.is_empty() && tail.starts_with("/ext/")).then_some((slug, tail))
}

/// The path hook and middleware prefixes are matched against: the extension path of a site
/// request, the path itself otherwise.
pub(crate) fn placement_path(path: &str) -> &str {
    split_site_path(path).map_or(path, |(_, tail)| tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_path_splits_into_the_slug_and_the_extension_path() {
        assert_eq!(split_site_path("/sites/plant-1/ext/hello/ping"), Some(("plant-1", "/ext/hello/ping")));
        assert_eq!(split_site_path("/sites/a/ext/"), Some(("a", "/ext/")));
        assert_eq!(split_site_path("/sites//ext/hello"), None);
        assert_eq!(split_site_path("/sites/a/api/hello"), None);
        assert_eq!(split_site_path("/sites/a"), None);
        assert_eq!(split_site_path("/ext/hello/ping"), None);
        assert_eq!(placement_path("/sites/a/ext/hello/ping"), "/ext/hello/ping");
        assert_eq!(placement_path("/ext/hello/ping"), "/ext/hello/ping");
    }
}
