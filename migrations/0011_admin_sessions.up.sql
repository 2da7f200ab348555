-- Sessions of the admin console (/admin/): one row per login, so every replica knows them. The
-- browser holds a random cookie value (`annex_session`); only its SHA-256 is kept here, as the id.
-- A session ends when revoked (logout), when idle too long (last_seen) or at expires_at (the
-- absolute limit); the console's code (admin/console/session.rs) holds both limits.
create table annex.admin_sessions (
    id          text primary key,                 -- SHA-256 (hex) of the cookie value
    actor_kind  text not null check (actor_kind in ('admin', 'operator')),
    operator_id uuid references annex.operators (id) on delete cascade,
    csrf_token  text not null,                    -- sent back as X-CSRF-Token on every change
    created_at  timestamptz not null default now(),
    last_seen   timestamptz not null default now(),
    expires_at  timestamptz not null,
    revoked_at  timestamptz,
    check ((actor_kind = 'operator') = (operator_id is not null))
);

create index admin_sessions_expires_at on annex.admin_sessions (expires_at);
