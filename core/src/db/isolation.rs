//! Per-extension database isolation: schema `ext_<name>` owned by the extension's own LOGIN
//! role (or, in `schema` mode, search_path only), and the small pool the extension gets.
//!
//! Role names are cluster-wide, so they carry the database's oid: `annex_<oid>_<name>`. Two annex
//! databases on one cluster never share a role, and a role keeps its name when its database is
//! renamed. Passwords are HMAC-SHA256 of the role name under the host secret: replicas sharing
//! the secret derive the same password and nothing stores it.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgPool};

use crate::config::{Config, Isolation};

use crate::config::secret::{HostSecret, SecretError};
use crate::db::migrate::{self, Ledger};

/// Connections in an extension's pool when `quotas.db_connections` is not set.
pub(crate) const DEFAULT_POOL_SIZE: u32 = 2;

/// Extensions could not be given their own place in the database.
#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    /// `role` isolation needs a database user that may create roles.
    #[error(
        "database user `{user}` cannot create roles (it has neither CREATEROLE nor SUPERUSER), so \
         annex cannot give each extension its own role. Grant it (`ALTER ROLE \"{user}\" CREATEROLE`) \
         or set [database] isolation = \"schema\" in annex.toml (ANNEX_DATABASE_ISOLATION=schema), \
         which keeps extensions apart by search_path only and is weaker"
    )]
    CannotCreateRoles {
        /// The database user annex connects as.
        user: String,
    },
    /// The host secret, from which role passwords are derived, is unavailable.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A database call failed while preparing isolation.
    #[error("preparing the database schema of extension `{extension}` failed: {source}")]
    Provision {
        /// The extension (`*` for the database-wide step).
        extension: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// The extension's role could not log in.
    #[error(
        "extension `{extension}` cannot connect as its role `{role}`: {source}. Every replica must \
         share [server] secret (ANNEX_SECRET), and pg_hba.conf must allow password logins for it"
    )]
    Login {
        /// The extension.
        extension: String,
        /// Its role.
        role: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
}

/// Gives extensions their schema, role and pool. Holds the host's pool; never handed out.
#[derive(Debug, Clone)]
pub(crate) struct Isolator {
    mode: Isolation,
    admin: PgPool,
    options: PgConnectOptions,
    secret: Option<HostSecret>,
    database_oid: i64,
}

/// What one extension got.
#[derive(Debug)]
pub(crate) struct Provisioned {
    /// Its own pool: logged in as its role, search_path its schema.
    pub(crate) pool: PgPool,
    /// How that pool records migrations.
    pub(crate) ledger: Ledger,
}

fn provision_err(extension: &str) -> impl FnOnce(sqlx::Error) -> IsolationError + '_ {
    move |source| IsolationError::Provision { extension: extension.to_owned(), source }
}

/// The schema of an extension.
/// A privilege on another extension's table that an extension's entities need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForeignGrant {
    /// The extension owning the table.
    pub(crate) owner: String,
    /// The table in its schema.
    pub(crate) object: String,
    /// `references, select` or `select, insert, delete`.
    pub(crate) privileges: &'static str,
}

pub(crate) fn schema_name(extension: &str) -> String {
    format!("ext_{extension}")
}

impl Isolator {
    /// Checks that the configured isolation is possible and hardens the database for it:
    /// in `role` mode, nobody may create objects in `public`, create temporary tables, or
    /// connect unless annex granted it. In `schema` mode, warns loudly.
    pub(crate) async fn prepare(
        pool: &PgPool,
        options: &PgConnectOptions,
        config: &Config,
    ) -> Result<Self, IsolationError> {
        let admin = pool.clone();
        let err = provision_err("*");
        let database_oid: i64 =
            sqlx::query_scalar("select oid::int8 from pg_database where datname = current_database()")
                .fetch_one(&admin)
                .await
                .map_err(err)?;
        let mode = config.database.isolation;
        let secret = match mode {
            Isolation::Role => Some(HostSecret::load(config)?),
            Isolation::Schema => None,
        };
        let isolator = Self { mode, admin, options: options.clone(), secret, database_oid };
        match mode {
            Isolation::Role => isolator.harden().await?,
            Isolation::Schema => tracing::warn!(
                "database.isolation = \"schema\": ISOLATION IS WEAKER. Extensions share annex's \
                 database user and are kept apart by search_path only, so raw SQL in one extension \
                 can read and change another extension's schema and annex's own tables. Use \
                 isolation = \"role\" (the default) wherever the database user may create roles"
            ),
        }
        Ok(isolator)
    }

    async fn harden(&self) -> Result<(), IsolationError> {
        let err = provision_err("*");
        let (user, may_create_roles): (String, bool) = sqlx::query_as(
            "select rolname::text, rolsuper or rolcreaterole from pg_roles where rolname = current_user",
        )
        .fetch_one(&self.admin)
        .await
        .map_err(provision_err("*"))?;
        if !may_create_roles {
            return Err(IsolationError::CannotCreateRoles { user });
        }
        let mut tx = self.admin.begin().await.map_err(provision_err("*"))?;
        migrate::lock(&mut tx).await.map_err(provision_err("*"))?;
        // GRANT/REVOKE on the database are idempotent; the lock keeps replicas from racing on
        // the same catalog row ("tuple concurrently updated").
        (&mut *tx).execute(sqlx::raw_sql(
            r#"
            do $$
            begin
                execute format('grant connect, temporary on database %I to %I', current_database(), current_user);
                execute format('revoke connect, temporary on database %I from public', current_database());
                revoke create on schema public from public;
            end
            $$;
            "#,
        ))
        .await
        .map_err(err)?;
        tx.commit().await.map_err(provision_err("*"))
    }

    /// The cluster-wide role of `extension` in this database.
    pub(crate) fn role_name(&self, extension: &str) -> String {
        format!("annex_{}_{extension}", self.database_oid)
    }

    fn password(&self, role: &str) -> Option<String> {
        self.secret.as_ref().map(|s| s.derive(&format!("postgres-role:{role}")))
    }

    /// Creates (or checks) the extension's schema and role, and opens its pool of `size`.
    pub(crate) async fn provision(&self, extension: &str, size: u32) -> Result<Provisioned, IsolationError> {
        let schema = schema_name(extension);
        let size = size.max(1);
        match self.mode {
            Isolation::Schema => {
                self.locked_ddl(extension, &format!("create schema if not exists \"{schema}\"")).await?;
                let options = self.options.clone().options(pinned_settings(&schema));
                let pool =
                    pool_options(size).connect_with(options).await.map_err(provision_err(extension))?;
                Ok(Provisioned { pool, ledger: Ledger::Host })
            }
            Isolation::Role => {
                let role = self.role_name(extension);
                let password = self.password(&role).unwrap_or_default();
                if !self.in_place(extension, &role, &schema).await? {
                    self.create_role_and_schema(extension, &role, &schema, &password).await?;
                }
                self.reset_role_settings(extension, &role, &schema).await?;
                let options = self
                    .options
                    .clone()
                    .username(&role)
                    .password(&password)
                    .options(pinned_settings(&schema));
                let pool = match pool_options(size).connect_with(options.clone()).await {
                    Ok(pool) => pool,
                    Err(e) if is_bad_password(&e) => {
                        tracing::warn!(
                            extension,
                            role,
                            "the password of role {role} did not match this host's secret; resetting it. \
                             Every replica must share [server] secret (ANNEX_SECRET), or they lock each other out"
                        );
                        self.set_password(extension, &role, &password).await?;
                        pool_options(size).connect_with(options).await.map_err(|source| {
                            IsolationError::Login {
                                extension: extension.to_owned(),
                                role: role.clone(),
                                source,
                            }
                        })?
                    }
                    Err(source) => {
                        return Err(IsolationError::Login { extension: extension.to_owned(), role, source });
                    }
                };
                Ok(Provisioned { pool, ledger: Ledger::ExtensionRole })
            }
        }
    }

    /// Whether role, mapping and schema (owned by the role) exist: the usual restart, no DDL.
    async fn in_place(&self, extension: &str, role: &str, schema: &str) -> Result<bool, IsolationError> {
        let found: Option<bool> = sqlx::query_scalar(
            r#"
            select true from annex.extension_roles r
            join pg_roles pr on pr.rolname = r.role
            join pg_namespace n on n.nspname = $3 and n.nspowner = pr.oid
            where r.extension = $1 and r.role = $2
            "#,
        )
        .bind(extension)
        .bind(role)
        .bind(schema)
        .fetch_optional(&self.admin)
        .await
        .map_err(provision_err(extension))?;
        Ok(found.unwrap_or(false))
    }

    async fn create_role_and_schema(
        &self,
        extension: &str,
        role: &str,
        schema: &str,
        password: &str,
    ) -> Result<(), IsolationError> {
        let mut conn = self.admin.acquire().await.map_err(provision_err(extension))?;
        let mut tx = conn.begin().await.map_err(provision_err(extension))?;
        migrate::lock(&mut tx).await.map_err(provision_err(extension))?;
        let exists: bool = sqlx::query_scalar("select exists (select 1 from pg_roles where rolname = $1)")
            .bind(role)
            .fetch_one(&mut *tx)
            .await
            .map_err(provision_err(extension))?;
        // Identifiers come from validated names (^[a-z][a-z0-9_]*$) and the password is hex.
        let mut sql = String::new();
        if !exists {
            sql.push_str(&format!(
                "create role \"{role}\" login password '{password}' nosuperuser nocreatedb nocreaterole \
                 noinherit noreplication nobypassrls;\n"
            ));
        }
        sql.push_str(&format!(
            r#"
            do $$
            begin
                -- A non-superuser may only hand a schema to a role it is a member of.
                if not (select rolsuper from pg_roles where rolname = current_user)
                   and not pg_has_role(current_user, '{role}', 'member') then
                    execute format('grant %I to %I', '{role}', current_user);
                end if;
                execute format('grant connect on database %I to %I', current_database(), '{role}');
            end
            $$;
            alter role "{role}" set search_path = "{schema}";
            create schema if not exists "{schema}" authorization "{role}";
            alter schema "{schema}" owner to "{role}";
            revoke all on schema "{schema}" from public;
            grant usage on schema annex_api to "{role}";
            grant execute on all functions in schema annex_api to "{role}";
            "#
        ));
        (&mut *tx).execute(sqlx::raw_sql(&sql)).await.map_err(provision_err(extension))?;
        sqlx::query(
            "insert into annex.extension_roles (extension, role) values ($1, $2)
             on conflict (extension) do update set role = excluded.role",
        )
        .bind(extension)
        .bind(role)
        .execute(&mut *tx)
        .await
        .map_err(provision_err(extension))?;
        tx.commit().await.map_err(provision_err(extension))?;
        tracing::info!(extension, role, schema, "database role and schema ready");
        Ok(())
    }

    /// Removes role-level settings the host did not give the role. A role may `ALTER ROLE …
    /// SET` itself; its pool pins what the host relies on anyway (see [`pinned_settings`]), but
    /// a setting that outlives restarts is the extension overriding the operator, so every start
    /// puts back exactly what the host set: `search_path = ext_<name>`, for every database.
    async fn reset_role_settings(
        &self,
        extension: &str,
        role: &str,
        schema: &str,
    ) -> Result<(), IsolationError> {
        let rows: Vec<(bool, Vec<String>)> = sqlx::query_as(
            r#"
            select s.setdatabase = 0, s.setconfig from pg_db_role_setting s
              join pg_roles r on r.oid = s.setrole
             where r.rolname = $1
               and s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
            "#,
        )
        .bind(role)
        .fetch_all(&self.admin)
        .await
        .map_err(provision_err(extension))?;
        let ours = |setting: &str| {
            setting == format!("search_path={schema}") || setting == format!("search_path=\"{schema}\"")
        };
        let stray: Vec<&str> = rows
            .iter()
            .flat_map(|(_, settings)| settings.iter().map(String::as_str))
            .filter(|setting| !ours(setting))
            .collect();
        let in_place = rows.len() == 1 && rows[0].0 && rows[0].1.len() == 1 && stray.is_empty();
        if in_place {
            return Ok(());
        }
        if !stray.is_empty() {
            tracing::warn!(
                extension,
                role,
                settings = %stray.join(", "),
                "role {role} has settings annex did not give it (ALTER ROLE … SET); resetting them"
            );
        }
        // Identifiers come from validated names (^[a-z][a-z0-9_]*$).
        let sql = format!(
            r#"
            alter role "{role}" reset all;
            do $$
            begin
                execute format('alter role %I in database %I reset all', '{role}', current_database());
            end
            $$;
            alter role "{role}" set search_path = "{schema}";
            "#
        );
        self.locked_ddl(extension, &sql).await
    }

    async fn set_password(&self, extension: &str, role: &str, password: &str) -> Result<(), IsolationError> {
        // The password is hex (an HMAC), so it needs no quoting beyond the literal's quotes.
        self.locked_ddl(extension, &format!("alter role \"{role}\" password '{password}'")).await
    }

    /// Grants the role of `extension` what its generated entity step needs on other extensions'
    /// tables (`REFERENCES, SELECT` for a foreign key, `INSERT` on an enum it adds values to) and
    /// nothing more. In `schema` mode every extension is the host's user already.
    pub(crate) async fn grant_foreign(
        &self,
        extension: &str,
        grants: &[ForeignGrant],
    ) -> Result<(), IsolationError> {
        if self.mode == Isolation::Schema || grants.is_empty() {
            return Ok(());
        }
        let role = self.role_name(extension);
        let mut sql = String::new();
        for g in grants {
            // Names are validated extension and entity names: `^[a-z][a-z0-9_]*$`.
            let schema = schema_name(&g.owner);
            sql.push_str(&format!(
                "grant usage on schema \"{schema}\" to \"{role}\";\ngrant {} on \"{schema}\".\"{}\" to \"{role}\";\n",
                g.privileges, g.object
            ));
        }
        self.locked_ddl(extension, &sql).await
    }

    /// Runs `sql` in its own transaction under the migration advisory lock, so DDL from
    /// concurrent replicas never interleaves.
    async fn locked_ddl(&self, extension: &str, sql: &str) -> Result<(), IsolationError> {
        let mut tx = self.admin.begin().await.map_err(provision_err(extension))?;
        migrate::lock(&mut tx).await.map_err(provision_err(extension))?;
        (&mut *tx).execute(sqlx::raw_sql(sql)).await.map_err(provision_err(extension))?;
        tx.commit().await.map_err(provision_err(extension))
    }

    /// Drops the extension's schema (with all its data), its role, and its applied-migration
    /// records; returns the role if there was one, and how many records were dropped. The
    /// history of what was applied is kept.
    pub(crate) async fn purge(&self, extension: &str) -> Result<(Option<String>, u64), IsolationError> {
        let schema = schema_name(extension);
        let role = self.role_name(extension);
        let mut tx = self.admin.begin().await.map_err(provision_err(extension))?;
        migrate::lock(&mut tx).await.map_err(provision_err(extension))?;
        (&mut *tx)
            .execute(sqlx::raw_sql(&format!("drop schema if exists \"{schema}\" cascade")))
            .await
            .map_err(provision_err(extension))?;
        let exists: bool = sqlx::query_scalar("select exists (select 1 from pg_roles where rolname = $1)")
            .bind(&role)
            .fetch_one(&mut *tx)
            .await
            .map_err(provision_err(extension))?;
        if exists {
            // DROP OWNED also revokes what was granted to the role (CONNECT, annex_api).
            (&mut *tx)
                .execute(sqlx::raw_sql(&format!("drop owned by \"{role}\"; drop role \"{role}\"")))
                .await
                .map_err(provision_err(extension))?;
        }
        sqlx::query("delete from annex.extension_roles where extension = $1")
            .bind(extension)
            .execute(&mut *tx)
            .await
            .map_err(provision_err(extension))?;
        let forgotten = sqlx::query("delete from annex.migrations where scope = $1")
            .bind(extension)
            .execute(&mut *tx)
            .await
            .map_err(provision_err(extension))?
            .rows_affected();
        tx.commit().await.map_err(provision_err(extension))?;
        Ok((exists.then_some(role), forgotten))
    }
}

/// The settings every extension session starts with, sent as startup options: a client's
/// startup options outrank `ALTER ROLE … SET` and `ALTER DATABASE … SET`, so neither the
/// extension's role nor the database can change what the host relies on: unqualified names
/// resolve in the extension's schema; migrations (run through this pool) are not cut short by
/// timeouts, can write, and see read-committed snapshots (a step is re-checked under its lock).
/// The extension may still `SET` any of them in its own session.
fn pinned_settings(schema: &str) -> [(&'static str, String); 6] {
    [
        ("search_path", schema.to_owned()),
        ("statement_timeout", "0".to_owned()),
        ("lock_timeout", "0".to_owned()),
        ("idle_in_transaction_session_timeout", "0".to_owned()),
        ("default_transaction_read_only", "off".to_owned()),
        // A space in a startup option is escaped with a backslash.
        ("default_transaction_isolation", "read\\ committed".to_owned()),
    ]
}

fn pool_options(size: u32) -> PgPoolOptions {
    PgPoolOptions::new().max_connections(size).min_connections(0).acquire_timeout(Duration::from_secs(10))
}

fn is_bad_password(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "28P01")
}
