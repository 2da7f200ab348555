-- `extension.migrated` becomes durable: each applied step of an extension writes its outbox event
-- in the step's own transaction (the one that runs the SQL and records the step), so a process
-- killed at any point loses no migration event and never stores one for a step that rolled back.
-- The writer lock and the NOTIFY are those of core/src/db/outbox.rs::record.
create or replace function annex_api.record_migration(
    p_scope text, p_version bigint, p_description text, p_checksum text, p_duration_ms bigint
) returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    v_id bigint;
begin
    perform annex.check_migration_scope(p_scope);
    insert into annex.migrations (scope, version, description, checksum, duration_ms)
        values (p_scope, p_version, p_description, p_checksum, p_duration_ms);
    insert into annex.migration_history (scope, version, description, checksum, action, duration_ms)
        values (p_scope, p_version, p_description, p_checksum, 'applied', p_duration_ms);
    perform pg_advisory_xact_lock(7020670251207454562); -- "annex_ob", outbox.rs WRITE_LOCK
    insert into annex.event_outbox (name, data, origin)
        values ('extension.migrated',
                jsonb_build_object('extension', p_scope, 'versions', jsonb_build_array(p_version),
                                   'description', p_description),
                'migration')
        returning id into v_id;
    perform pg_notify('annex_events', v_id::text);
end
$$;
revoke all on function annex_api.record_migration(text, bigint, text, text, bigint) from public;
