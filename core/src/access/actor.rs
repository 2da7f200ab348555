//! [`Actor`]: who is calling, and [`Actor::authorize`], the one place that decides what a role
//! may do at a site. Handlers name an [`Action`]; they never compare role names themselves.

use uuid::Uuid;

use super::error::AccessError;
use super::operators::Operator;

/// Who a call runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The admin token (server.admin_token): the built-in superuser.
    Admin,
    /// The CLI on this machine, with the database's credentials: as powerful as the admin token.
    Cli,
    /// An operator with a personal token.
    Operator(Operator),
}

/// What a call wants to do. Roles map to actions here and only here:
///
/// | action | who |
/// |---|---|
/// | `Read` | any operator whose scope includes the site |
/// | `Inspect` (host-wide reads: extensions, config, health, metrics, audit, OpenAPI) | any operator with no site scope |
/// | `Validate` | the same (validation changes nothing) |
/// | `Sign` | any operator in scope; holding the aspect's role is checked by the sign-off itself |
/// | `Manage` (activate, deactivate, snapshots, restore) | `admin`, `site-admin` |
/// | `Administer` (create or suspend sites, operators, host-wide admin API) | `admin` |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// List and look: status, features, sign-offs, reports, audit trails.
    Read,
    /// Read the host-wide admin API (every extension, its config and health, the audit log):
    /// what the console shows a `viewer`. Needs no site scope, since it spans every site.
    Inspect,
    /// Validate a config or combination (changes nothing).
    Validate,
    /// Sign off a compliance aspect.
    Sign,
    /// Activate, deactivate, snapshot, restore.
    Manage,
    /// Sites themselves, operators, and the host-wide admin API.
    Administer,
}

impl Actor {
    /// The name written to the audit log: `admin`, `cli`, or `operator:<username>`.
    pub fn audit_name(&self) -> String {
        match self {
            Self::Admin => "admin".into(),
            Self::Cli => "cli".into(),
            Self::Operator(o) => format!("operator:{}", o.username),
        }
    }

    /// The operator behind the call, if it is one.
    pub fn operator(&self) -> Option<&Operator> {
        match self {
            Self::Operator(o) => Some(o),
            _ => None,
        }
    }

    /// Whether the caller may see site `site` at all. A caller who may not gets 404 for every
    /// resource of it, so a site's existence does not leak.
    pub fn sees_site(&self, site: Uuid) -> bool {
        match self {
            Self::Admin | Self::Cli => true,
            Self::Operator(o) => o.may_act_on(site),
        }
    }

    /// `Ok` if the caller may do `action` (at `site`, when it is about one). Callers check
    /// [`Actor::sees_site`] first and answer 404 when it is false.
    pub fn authorize(&self, action: Action, site: Option<Uuid>) -> Result<(), AccessError> {
        let Self::Operator(o) = self else { return Ok(()) };
        if let Some(site) = site
            && !o.may_act_on(site)
        {
            return Err(AccessError::Forbidden(format!(
                "operator `{}` may not act on this site",
                o.username
            )));
        }
        let allowed = match action {
            Action::Read | Action::Validate | Action::Sign => true,
            Action::Inspect => o.sites.is_none(),
            Action::Manage => o.has_role("admin") || o.has_role("site-admin"),
            Action::Administer => o.has_role("admin") && o.sites.is_none(),
        };
        if allowed {
            return Ok(());
        }
        let needs = match action {
            Action::Manage => "role `site-admin` or `admin`",
            Action::Inspect => "no site scope (host-wide data spans every site)",
            _ => "role `admin` with no site scope",
        };
        Err(AccessError::Forbidden(format!(
            "operator `{}` (roles: {}) may not do this: it needs {needs}",
            o.username,
            if o.roles.is_empty() { "none".to_owned() } else { o.roles.join(", ") }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operator(roles: &[&str], sites: Option<Vec<Uuid>>) -> Actor {
        Actor::Operator(Operator {
            id: Uuid::nil(),
            username: "ann".into(),
            printed_name: "Ann".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            sites,
            site_slugs: None,
            disabled: false,
            created_at: String::new(),
        })
    }

    #[test]
    fn roles_map_to_actions() {
        let site = Uuid::new_v4();
        let viewer = operator(&["viewer"], None);
        assert!(viewer.authorize(Action::Read, Some(site)).is_ok());
        assert!(viewer.authorize(Action::Manage, Some(site)).is_err());
        assert!(viewer.authorize(Action::Administer, None).is_err());
        assert!(viewer.authorize(Action::Inspect, None).is_ok(), "an unscoped viewer reads the host");
        assert!(operator(&["viewer"], Some(vec![site])).authorize(Action::Inspect, None).is_err());
        let site_admin = operator(&["site-admin"], Some(vec![site]));
        assert!(site_admin.authorize(Action::Manage, Some(site)).is_ok());
        assert!(site_admin.authorize(Action::Manage, Some(Uuid::new_v4())).is_err());
        assert!(!site_admin.sees_site(Uuid::new_v4()));
        let scoped_admin = operator(&["admin"], Some(vec![site]));
        assert!(scoped_admin.authorize(Action::Administer, None).is_err(), "a scoped admin is a site admin");
        assert!(operator(&["admin"], None).authorize(Action::Administer, None).is_ok());
        assert!(Actor::Admin.authorize(Action::Administer, None).is_ok());
    }
}
