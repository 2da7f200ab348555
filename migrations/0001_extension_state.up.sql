-- What the host knows about each compiled-in extension. The CLI and every replica read it.
create table annex.extensions (
    name       text primary key,                    -- ^[a-z][a-z0-9_]{0,39}$
    version    text not null,                       -- semver of the compiled-in crate
    enabled    boolean not null default true,       -- operator's switch
    config     jsonb not null default '{}'::jsonb,  -- the extension's own config
    state      text not null default 'registered',  -- registered|running|failed|disabled|stopped
    last_error text,                                -- why it last failed, if it did
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
