-- Operations: health check history, config history and per-replica metric snapshots.

-- One row per health check of one extension on one replica.
create table annex.extension_health (
    id          bigserial primary key,
    extension   text not null,                 -- extension name
    at          timestamptz not null default now(),
    replica     text not null,                 -- `<hostname>:<pid>` of the process that checked
    status      text not null,                 -- healthy | degraded | down
    message     text,                          -- the extension's message, or why the check failed
    failure     text,                          -- null, `timeout` or `panic`
    duration_ms double precision not null      -- how long health() took
);
create index extension_health_extension_at on annex.extension_health (extension, at desc);

-- Every accepted config change, with the config it replaced.
create table annex.extension_config_history (
    id         bigserial primary key,
    extension  text not null,
    at         timestamptz not null default now(),
    actor      text not null,                  -- `admin`, `cli`, …
    old_config jsonb,                          -- null for the first stored config
    new_config jsonb not null,
    request_id text                            -- the HTTP request that caused it, if any
);
create index extension_config_history_extension_at on annex.extension_config_history (extension, at desc);

-- The latest metric figures of each extension on each replica, refreshed with every health
-- round, so `annex extensions metrics` works against the database alone.
create table annex.replica_metrics (
    replica   text not null,
    extension text not null,
    at        timestamptz not null default now(),
    figures   jsonb not null,
    primary key (replica, extension)
);
