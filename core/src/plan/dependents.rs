//! Who depends on an extension, and the order to stop them in.

use std::collections::BTreeSet;

use crate::extension::metadata::Metadata;

/// The extensions that depend on `name`, directly or through others, among those `active` says
/// are on; ordered so each comes before anything it depends on (a safe stop order).
pub(crate) fn dependents_of(all: &[&Metadata], name: &str, active: impl Fn(&str) -> bool) -> Vec<String> {
    let mut found: BTreeSet<String> = BTreeSet::new();
    let mut frontier = vec![name.to_owned()];
    while let Some(current) = frontier.pop() {
        for m in all {
            if m.dependencies.iter().any(|d| d.name == current)
                && active(&m.name)
                && found.insert(m.name.clone())
            {
                frontier.push(m.name.clone());
            }
        }
    }
    stop_order(all, found)
}

/// Orders `set` so an extension comes before every extension of the set it depends on.
fn stop_order(all: &[&Metadata], mut set: BTreeSet<String>) -> Vec<String> {
    let mut ordered = Vec::with_capacity(set.len());
    while !set.is_empty() {
        // Something no remaining member depends on can stop now; a cycle (refused at start)
        // would fall back to name order.
        let next = set
            .iter()
            .find(|candidate| {
                !all.iter()
                    .any(|m| set.contains(&m.name) && m.dependencies.iter().any(|d| &d.name == *candidate))
            })
            .or_else(|| set.iter().next())
            .cloned();
        let Some(next) = next else { break };
        set.remove(&next);
        ordered.push(next);
    }
    ordered
}
