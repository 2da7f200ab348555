-- The outbox of host events that record a state change (extension.enabled, .disabled,
-- .config_changed, .migrated; site.extension_activated, _reconfigured, _deactivated,
-- site.signoff_recorded). A row is written in the same transaction as the change it
-- records, so a change and its event are stored together or not at all. Writers take the
-- advisory lock `annex.event_outbox` (pg_advisory_xact_lock) before inserting, so ids commit in
-- id order and a reader that has seen id N never later finds a smaller one committed.
create table annex.event_outbox (
    id          bigserial primary key,
    name        text not null,
    data        jsonb not null,
    origin      text not null,                    -- the replica that made the change, or `cli`
    created_at  timestamptz not null default now()
);

-- How far each durable consumer got: every outbox row with id <= last_id was handled. One row per
-- consumer (`<extension>/<pattern>`); a replica holds it `for update skip locked` while handling
-- the next rows, so two replicas never both take the same ones.
create table annex.event_cursors (
    consumer    text primary key,
    last_id     bigint not null default 0,
    updated_at  timestamptz not null default now()
);
