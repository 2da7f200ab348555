//! The operators table (`annex.operators`): add, list, disable, change password, and find by
//! personal token or by password. The CLI (`annex operators …`) and the admin API both call
//! these; nothing else writes the table.

use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::error::AccessError;
use super::password;

/// The prefix of every personal token (`annex_op_…`).
pub(crate) use super::password::TOKEN_PREFIX;
use crate::observe::audit::{self, AuditEntry};

/// An operator as shown (never the password or token hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operator {
    /// Stable id.
    pub id: Uuid,
    /// Login name.
    pub username: String,
    /// The name printed on every signature (21 CFR Part 11 §11.50).
    pub printed_name: String,
    /// Roles held: `admin`, `site-admin`, `viewer`, or any role a sign-off asks for
    /// (`quality-focal`, …).
    pub roles: Vec<String>,
    /// The sites they may act on; `None` is every site.
    pub sites: Option<Vec<Uuid>>,
    /// The slugs of those sites, for people.
    pub site_slugs: Option<Vec<String>>,
    /// A disabled operator cannot authenticate.
    pub disabled: bool,
    /// When added (UTC, RFC 3339).
    pub created_at: String,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for Operator {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            printed_name: row.try_get("printed_name")?,
            roles: row.try_get("roles")?,
            sites: row.try_get("sites")?,
            site_slugs: row.try_get("site_slugs")?,
            disabled: row.try_get("disabled")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

impl Operator {
    /// Whether they hold `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether their site scope includes `site`.
    pub fn may_act_on(&self, site: Uuid) -> bool {
        self.sites.as_ref().is_none_or(|sites| sites.contains(&site))
    }
}

/// What `add` needs.
#[derive(Debug, Clone)]
pub struct NewOperator {
    /// Login name, `^[a-z0-9][a-z0-9._-]{0,62}$`.
    pub username: String,
    /// Printed name.
    pub printed_name: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Site scope (slugs); `None` is every site.
    pub sites: Option<Vec<String>>,
    /// Password, 12 characters or more.
    pub password: String,
}

/// A change to an operator made by `update`.
#[derive(Debug, Clone)]
pub enum OperatorChange {
    /// Disable (`true`) or enable again.
    Disabled(bool),
    /// A new password.
    Password(String),
    /// A fresh personal token; the old one stops working.
    RotateToken,
}

const COLUMNS: &str = "id, username, printed_name, roles, sites, disabled, \
     case when o.sites is null then null else coalesce( \
         (select array_agg(s.slug order by s.slug) from annex.sites s where s.id = any(o.sites)), '{}') end as site_slugs, \
     to_char(created_at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') as created_at";

fn valid_username(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '0'..='9'))
        && name.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-'))
}

fn check_new(new: &NewOperator) -> Result<(), AccessError> {
    if !valid_username(&new.username) {
        return Err(AccessError::InvalidUsername(new.username.clone()));
    }
    let printed = new.printed_name.trim();
    if printed.is_empty() || printed.chars().count() > 200 {
        return Err(AccessError::InvalidPrintedName);
    }
    if let Some(bad) = new.roles.iter().find(|r| !crate::plan::valid_label(r)) {
        return Err(AccessError::InvalidRole(bad.clone()));
    }
    password::check_strength(&new.password)
}

/// Adds an operator; returns it with its personal token, which is shown this once.
pub async fn add(pool: &PgPool, actor: &str, new: &NewOperator) -> Result<(Operator, String), AccessError> {
    check_new(new)?;
    let hash = password::hash(&new.password)?;
    let token = password::new_token();
    let mut roles = new.roles.clone();
    roles.sort();
    roles.dedup();
    let mut tx = pool.begin().await?;
    let sites = match &new.sites {
        None => None,
        Some(slugs) => Some(site_ids(&mut tx, slugs).await?),
    };
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "insert into annex.operators (username, printed_name, roles, sites, password_hash, token_hash)
         values ($1, $2, $3, $4, $5, $6) on conflict (username) do nothing returning id",
    )
    .bind(&new.username)
    .bind(new.printed_name.trim())
    .bind(&roles)
    .bind(&sites)
    .bind(&hash)
    .bind(password::token_hash(&token))
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_none() {
        return Err(AccessError::UsernameTaken(new.username.clone()));
    }
    let operator = find(&mut *tx, &new.username).await?;
    let entry = AuditEntry::new(actor, "operator.added", format!("operators/{}", operator.username)).details(
        serde_json::json!({ "printed_name": operator.printed_name, "roles": operator.roles, "sites": operator.site_slugs }),
    );
    audit::record(&mut *tx, &entry).await?;
    tx.commit().await?;
    Ok((operator, token))
}

/// The ids of the sites named by `slugs`; an unknown slug is an error naming it.
async fn site_ids(conn: &mut sqlx::PgConnection, slugs: &[String]) -> Result<Vec<Uuid>, AccessError> {
    let found: Vec<(String, Uuid)> = sqlx::query_as("select slug, id from annex.sites where slug = any($1)")
        .bind(slugs)
        .fetch_all(&mut *conn)
        .await?;
    slugs
        .iter()
        .map(|slug| {
            found
                .iter()
                .find(|(s, _)| s == slug)
                .map(|(_, id)| *id)
                .ok_or_else(|| AccessError::UnknownSite(slug.clone()))
        })
        .collect()
}

/// Every operator, by username.
pub async fn list(pool: &PgPool) -> Result<Vec<Operator>, AccessError> {
    let rows =
        sqlx::query_as::<_, Operator>(&format!("select {COLUMNS} from annex.operators o order by username"))
            .fetch_all(pool)
            .await?;
    Ok(rows)
}

/// One operator by username.
pub async fn find(executor: impl PgExecutor<'_>, username: &str) -> Result<Operator, AccessError> {
    sqlx::query_as::<_, Operator>(&format!("select {COLUMNS} from annex.operators o where username = $1"))
        .bind(username)
        .fetch_optional(executor)
        .await?
        .ok_or_else(|| AccessError::UnknownOperator(username.to_owned()))
}

/// Changes one operator; returns it, and the new token for [`OperatorChange::RotateToken`].
pub async fn update(
    pool: &PgPool,
    actor: &str,
    username: &str,
    change: &OperatorChange,
) -> Result<(Operator, Option<String>), AccessError> {
    let mut tx = pool.begin().await?;
    let current = find(&mut *tx, username).await?;
    let mut token = None;
    let (action, query) = match change {
        OperatorChange::Disabled(disabled) => (
            if *disabled { "operator.disabled" } else { "operator.enabled" },
            sqlx::query("update annex.operators set disabled = $2, updated_at = now() where id = $1")
                .bind(current.id)
                .bind(*disabled),
        ),
        OperatorChange::Password(new) => {
            password::check_strength(new)?;
            (
                "operator.password_changed",
                sqlx::query(
                    "update annex.operators set password_hash = $2, updated_at = now() where id = $1",
                )
                .bind(current.id)
                .bind(password::hash(new)?),
            )
        }
        OperatorChange::RotateToken => {
            let fresh = password::new_token();
            let hash = password::token_hash(&fresh);
            token = Some(fresh);
            (
                "operator.token_rotated",
                sqlx::query("update annex.operators set token_hash = $2, updated_at = now() where id = $1")
                    .bind(current.id)
                    .bind(hash),
            )
        }
    };
    query.execute(&mut *tx).await?;
    audit::record(&mut *tx, &AuditEntry::new(actor, action, format!("operators/{username}"))).await?;
    let updated = find(&mut *tx, username).await?;
    tx.commit().await?;
    Ok((updated, token))
}

/// The enabled operator whose personal token this is, if any.
pub async fn by_token(pool: &PgPool, token: &str) -> Result<Option<Operator>, AccessError> {
    if !token.starts_with(password::TOKEN_PREFIX) {
        return Ok(None);
    }
    let found = sqlx::query_as::<_, Operator>(&format!(
        "select {COLUMNS} from annex.operators o where token_hash = $1 and not disabled"
    ))
    .bind(password::token_hash(token))
    .fetch_optional(pool)
    .await?;
    Ok(found)
}

/// Re-authentication: `Ok` if operator `id` is enabled and `password` is theirs. Asked for every
/// signature (21 CFR Part 11 §11.200: both components at each signing, never just a session).
pub async fn reauthenticate(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    password: &str,
) -> Result<(), AccessError> {
    let row: Option<(String, bool, String)> =
        sqlx::query_as("select password_hash, disabled, username from annex.operators where id = $1")
            .bind(id)
            .fetch_optional(executor)
            .await?;
    let Some((stored, disabled, username)) = row else {
        return Err(AccessError::UnknownOperator(id.to_string()));
    };
    if disabled {
        return Err(AccessError::Disabled(username));
    }
    // argon2 is CPU work (~20 ms optimised): off the async threads.
    let given = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || password::verify(&given, &stored))
        .await
        .map_err(|e| AccessError::Hashing(e.to_string()))?;
    if ok { Ok(()) } else { Err(AccessError::WrongPassword(username)) }
}

/// The enabled operator with id `id`, if any (a console session's operator).
pub async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<Operator>, AccessError> {
    let found = sqlx::query_as::<_, Operator>(&format!(
        "select {COLUMNS} from annex.operators o where id = $1 and not disabled"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(found)
}

/// Why a password login was refused. The caller answers all three the same way (no user
/// enumeration); the reason is for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    /// No operator has this username.
    UnknownUser,
    /// The operator is disabled.
    Disabled,
    /// The password is not theirs.
    WrongPassword,
}

impl LoginRefused {
    /// `unknown_user`, `disabled` or `wrong_password`.
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::Disabled => "disabled",
            Self::WrongPassword => "wrong_password",
        }
    }
}

/// Login with username and password. An unknown username still costs one argon2 verification,
/// so the answer's timing does not tell which usernames exist.
pub async fn login(
    pool: &PgPool,
    username: &str,
    password: &str,
) -> Result<Result<Operator, LoginRefused>, AccessError> {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let row: Option<(Uuid, String, bool)> =
        sqlx::query_as("select id, password_hash, disabled from annex.operators where username = $1")
            .bind(username)
            .fetch_optional(pool)
            .await?;
    let (stored, known) = match &row {
        Some((_, hash, _)) => (hash.clone(), true),
        None => {
            let dummy = tokio::task::spawn_blocking(|| {
                DUMMY.get_or_init(|| password::hash("not a password of anyone").unwrap_or_default()).clone()
            })
            .await
            .map_err(|e| AccessError::Hashing(e.to_string()))?;
            (dummy, false)
        }
    };
    let given = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || password::verify(&given, &stored))
        .await
        .map_err(|e| AccessError::Hashing(e.to_string()))?;
    let Some((id, _, disabled)) = row else { return Ok(Err(LoginRefused::UnknownUser)) };
    if !known || !ok {
        return Ok(Err(LoginRefused::WrongPassword));
    }
    if disabled {
        return Ok(Err(LoginRefused::Disabled));
    }
    match by_id(pool, id).await? {
        Some(operator) => Ok(Ok(operator)),
        None => Ok(Err(LoginRefused::Disabled)),
    }
}
