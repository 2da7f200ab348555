//! The site gates: every site (id, slug, status) and, per site, the extensions active there with
//! their config and config hash, in memory. The request path checks a request for
//! `/sites/<slug>/ext/<name>/…` with [`SiteGates::check`]: one atomic load and one hash lookup,
//! no lock, no database. The table is loaded at host start and reloaded one site at a time
//! (`NOTIFY annex_sites, '<site id>'`, or [`SiteGates::reload_site`] right after a local
//! activation commits), or whole (an empty payload, a reconnect of the listener).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::error::DbError;
use crate::extension::site::{Site, SiteScope};

/// The channel the sites domain notifies on, in the activation's transaction: the payload is
/// the site's id, or empty for "reload every site".
pub(crate) const CHANNEL: &str = "annex_sites";

/// What the gate says about one request for (site, extension).
#[derive(Debug)]
pub(crate) enum SiteGate {
    /// Active there: serve it with this site and config.
    Open(Arc<SiteScope>),
    /// No site has this slug.
    UnknownSite,
    /// The site is suspended.
    Suspended,
    /// The extension is not active at this site.
    NotActive,
}

/// One site as the gate sees it.
#[derive(Debug, Clone)]
struct SiteEntry {
    id: Uuid,
    slug: Arc<str>,
    suspended: bool,
    /// Indexed like [`SiteGates::extensions`]: `Some` where the extension is active here.
    active: Box<[Option<Arc<SiteScope>>]>,
}

/// Keys are the sites' slugs, never a client's, so a fast hasher cannot be flooded.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A slug held inline (slugs are at most 63 bytes, `annex.sites` checks it), so comparing keys
/// reads the bucket itself, not a string behind a pointer.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SlugKey {
    len: u8,
    bytes: [u8; 63],
}

impl SlugKey {
    /// `None` for a slug no site can have (too long).
    fn new(slug: &str) -> Option<Self> {
        let len = u8::try_from(slug.len()).ok().filter(|&l| l <= 63)?;
        let mut bytes = [0; 63];
        bytes[..slug.len()].copy_from_slice(slug.as_bytes());
        Some(Self { len, bytes })
    }
}

impl std::hash::Hash for SlugKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.bytes[..usize::from(self.len)]);
    }
}

impl std::fmt::Debug for SlugKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.bytes[..usize::from(self.len)]))
    }
}

#[derive(Debug, Default, Clone)]
struct Table {
    /// Keys and entries inline: a lookup reads the bucket, then the site's slots.
    by_slug: FastMap<SlugKey, SiteEntry>,
    /// The slug each site id is filed under, so a reload finds a renamed or deleted site.
    slug_of: FastMap<Uuid, SlugKey>,
}

impl Table {
    fn of(entries: Vec<SiteEntry>) -> Self {
        let mut table = Self::default();
        for entry in entries {
            table.insert(entry);
        }
        table
    }

    fn remove(&mut self, id: Uuid) {
        if let Some(slug) = self.slug_of.remove(&id) {
            self.by_slug.remove(&slug);
        }
    }

    fn insert(&mut self, entry: SiteEntry) {
        self.remove(entry.id);
        let id = entry.id;
        let Some(key) = SlugKey::new(&entry.slug) else {
            tracing::warn!(site = %id, slug = %entry.slug, "site gates: a slug over 63 bytes cannot be served");
            return;
        };
        self.slug_of.insert(id, key);
        // A stale entry under the same slug (a site since renamed, not reloaded yet) goes.
        if let Some(old) = self.by_slug.insert(key, entry)
            && old.id != id
        {
            self.slug_of.remove(&old.id);
        }
    }
}

/// One row of the load query: a site, and one extension active there (if any).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SiteRow {
    pub(crate) id: Uuid,
    pub(crate) slug: String,
    /// `active` or `suspended`.
    pub(crate) status: String,
    /// (extension, config, config hash) of one active extension; `None` for a site with none.
    pub(crate) active: Option<(String, serde_json::Value, String)>,
}

/// The gates of every site, for the extensions of this binary.
#[derive(Debug)]
pub(crate) struct SiteGates {
    /// The extensions of this binary, in the order of each site's `active` slots.
    extensions: Box<[Box<str>]>,
    table: ArcSwap<Table>,
    /// Serialises reloads, so an older read of the database never overwrites a newer one.
    reload: tokio::sync::Mutex<()>,
}

const SELECT: &str = r"
    select s.id, s.slug, s.status, e.extension, e.config, e.config_hash
    from annex.sites s
    left join annex.site_extensions e on e.site_id = s.id and e.state = 'active'";

type Row = (Uuid, String, String, Option<String>, Option<serde_json::Value>, Option<String>);

impl SiteGates {
    /// Gates for `extensions` (their names), with no site yet.
    pub(crate) fn new<'a>(extensions: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            extensions: extensions.into_iter().map(Box::from).collect(),
            table: ArcSwap::from_pointee(Table::default()),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    /// The slot of extension `name`, for [`SiteGates::check`]; resolved once per extension.
    pub(crate) fn slot_of(&self, name: &str) -> Option<usize> {
        self.extensions.iter().position(|n| &**n == name)
    }

    /// The gate for extension `slot` at the site `slug`: one atomic load, one hash lookup.
    pub(crate) fn check(&self, slug: &str, slot: usize) -> SiteGate {
        let Some(key) = SlugKey::new(slug) else { return SiteGate::UnknownSite };
        let table = self.table.load();
        let Some(site) = table.by_slug.get(&key) else { return SiteGate::UnknownSite };
        if site.suspended {
            return SiteGate::Suspended;
        }
        match site.active.get(slot) {
            Some(Some(scope)) => SiteGate::Open(scope.clone()),
            _ => SiteGate::NotActive,
        }
    }

    /// Reads every site from the database and replaces the whole table.
    pub(crate) async fn reload_all(&self, pool: &PgPool) -> Result<(), DbError> {
        let _one_at_a_time = self.reload.lock().await;
        let rows: Vec<Row> = sqlx::query_as(SELECT).fetch_all(pool).await?;
        let table = Table::of(self.entries(rows.into_iter().map(row)));
        tracing::debug!(sites = table.by_slug.len(), "site gates reloaded");
        self.table.store(Arc::new(table));
        Ok(())
    }

    /// Reads one site from the database and replaces its entry (removes it if it is gone). Call
    /// it right after a local activation, deactivation or suspension commits; other replicas
    /// follow the `NOTIFY annex_sites` sent in that transaction.
    pub(crate) async fn reload_site(&self, pool: &PgPool, id: Uuid) -> Result<(), DbError> {
        let _one_at_a_time = self.reload.lock().await;
        let rows: Vec<Row> =
            sqlx::query_as(&format!("{SELECT} where s.id = $1")).bind(id).fetch_all(pool).await?;
        let fresh = self.entries(rows.into_iter().map(row));
        let mut table = Table::clone(&self.table.load());
        table.remove(id);
        for entry in fresh {
            table.insert(entry);
        }
        self.table.store(Arc::new(table));
        tracing::debug!(site = %id, "site gate reloaded");
        Ok(())
    }

    /// Replaces the whole table with `rows` (tests and benches, without a database).
    #[cfg(any(test, feature = "bench"))]
    pub(crate) fn replace(&self, rows: impl IntoIterator<Item = SiteRow>) {
        self.table.store(Arc::new(Table::of(self.entries(rows))));
    }

    fn entries(&self, rows: impl IntoIterator<Item = SiteRow>) -> Vec<SiteEntry> {
        let mut sites: HashMap<Uuid, SiteEntry> = HashMap::new();
        for r in rows {
            let entry = sites.entry(r.id).or_insert_with(|| SiteEntry {
                id: r.id,
                slug: r.slug.as_str().into(),
                suspended: r.status != "active",
                active: vec![None; self.extensions.len()].into_boxed_slice(),
            });
            // An extension this binary does not have is not served here.
            let Some((extension, config, hash)) = r.active else { continue };
            let Some(slot) = self.slot_of(&extension) else { continue };
            let site = Site::new(r.id, entry.slug.clone(), hash.into());
            entry.active[slot] = Some(Arc::new(SiteScope { site, config: Arc::new(config) }));
        }
        sites.into_values().collect()
    }
}

fn row((id, slug, status, extension, config, hash): Row) -> SiteRow {
    let active = match (extension, config, hash) {
        (Some(e), Some(c), Some(h)) => Some((e, c, h)),
        _ => None,
    };
    SiteRow { id, slug, status, active }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(id: u128, slug: &str, status: &str, active: Option<&str>) -> SiteRow {
        SiteRow {
            id: Uuid::from_u128(id),
            slug: slug.into(),
            status: status.into(),
            active: active.map(|e| (e.to_owned(), json!({ "at": slug }), "h".repeat(64))),
        }
    }

    fn config_at(gates: &SiteGates, slug: &str, slot: usize) -> Option<serde_json::Value> {
        match gates.check(slug, slot) {
            SiteGate::Open(scope) => Some((*scope.config).clone()),
            _ => None,
        }
    }

    #[test]
    fn the_gate_knows_each_site_and_what_is_active_there() {
        let gates = SiteGates::new(["alpha", "beta"]);
        gates.replace([
            row(1, "one", "active", Some("alpha")),
            row(1, "one", "active", Some("not-in-this-binary")),
            row(2, "two", "suspended", Some("alpha")),
            row(3, "three", "active", None),
        ]);
        let (alpha, beta) = (gates.slot_of("alpha").unwrap_or(9), gates.slot_of("beta").unwrap_or(9));
        assert_eq!(config_at(&gates, "one", alpha), Some(json!({ "at": "one" })));
        assert!(matches!(gates.check("one", beta), SiteGate::NotActive));
        assert!(matches!(gates.check("two", alpha), SiteGate::Suspended));
        assert!(matches!(gates.check("three", alpha), SiteGate::NotActive));
        assert!(matches!(gates.check("four", alpha), SiteGate::UnknownSite));
        assert!(matches!(gates.check(&"x".repeat(64), alpha), SiteGate::UnknownSite));
        assert!(matches!(gates.check("one", usize::MAX), SiteGate::NotActive));
    }

    #[test]
    fn replacing_a_site_drops_its_old_slug_and_a_stale_holder_of_the_new_one() {
        let gates = SiteGates::new(["alpha"]);
        let entries = |rows: Vec<SiteRow>| gates.entries(rows);
        let mut table =
            Table::of(entries(vec![row(1, "one", "active", Some("alpha")), row(2, "two", "active", None)]));
        // Site 1 renamed to `uno`.
        for e in entries(vec![row(1, "uno", "active", Some("alpha"))]) {
            table.insert(e);
        }
        assert_eq!(SlugKey::new("one").map(|k| table.by_slug.contains_key(&k)), Some(false));
        assert_eq!(table.by_slug.len(), 2);
        // Site 1 takes `two` before site 2's rename was reloaded: site 2 is filed nowhere.
        for e in entries(vec![row(1, "two", "active", None)]) {
            table.insert(e);
        }
        assert_eq!(table.by_slug.len(), 1);
        assert_eq!(table.slug_of.len(), 1);
        // A deleted site goes.
        table.remove(Uuid::from_u128(1));
        assert!(table.by_slug.is_empty() && table.slug_of.is_empty());
    }
}
