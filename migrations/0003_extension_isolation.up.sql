-- Per-extension database isolation: which role each extension logs in as, and the narrow door
-- through which those roles record their own migrations (they have no access to schema annex).

-- Role names are cluster-wide; annex derives them per database (annex_<database oid>_<name>).
create table annex.extension_roles (
    extension  text primary key,                    -- the extension's name
    role       text not null unique,                -- the LOGIN role it connects as
    created_at timestamptz not null default now()
);

-- Raises unless the login role is the one recorded for `p_scope`. Called only from annex_api.
create function annex.check_migration_scope(p_scope text) returns void
language plpgsql stable set search_path = pg_catalog, pg_temp as $$
begin
    if not exists (
        select 1 from annex.extension_roles r where r.extension = p_scope and r.role = session_user::text
    ) then
        raise exception 'role % may not touch the migrations of extension %', session_user, p_scope
            using errcode = 'insufficient_privilege';
    end if;
end
$$;

create schema annex_api;
revoke all on schema annex_api from public;

-- The applied steps of one extension: version and checksum.
create function annex_api.applied_migrations(p_scope text)
returns table (version bigint, checksum text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
begin
    perform annex.check_migration_scope(p_scope);
    return query select m.version, m.checksum from annex.migrations m where m.scope = p_scope order by m.version;
end
$$;

-- Records an applied step, in the caller's transaction (so it commits or rolls back with it).
create function annex_api.record_migration(
    p_scope text, p_version bigint, p_description text, p_checksum text, p_duration_ms bigint
) returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    perform annex.check_migration_scope(p_scope);
    insert into annex.migrations (scope, version, description, checksum, duration_ms)
        values (p_scope, p_version, p_description, p_checksum, p_duration_ms);
    insert into annex.migration_history (scope, version, description, checksum, action, duration_ms)
        values (p_scope, p_version, p_description, p_checksum, 'applied', p_duration_ms);
end
$$;

-- Records a reverted step, in the caller's transaction.
create function annex_api.record_rollback(p_scope text, p_version bigint, p_duration_ms bigint) returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    perform annex.check_migration_scope(p_scope);
    with gone as (
        delete from annex.migrations where scope = p_scope and version = p_version
        returning scope, version, description, checksum
    )
    insert into annex.migration_history (scope, version, description, checksum, action, duration_ms)
        select scope, version, description, checksum, 'rolled_back', p_duration_ms from gone;
end
$$;

revoke all on all functions in schema annex_api from public;
revoke all on function annex.check_migration_scope(text) from public;
