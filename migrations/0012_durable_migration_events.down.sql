-- Back to recording steps without their event (0003's body).
create or replace function annex_api.record_migration(
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
