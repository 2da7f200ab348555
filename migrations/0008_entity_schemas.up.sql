-- Every entity declaration applied, per extension and version: the next declaration is diffed
-- against the newest one here into a generated migration step (core/src/entities/).
create table annex.entity_schemas (
    extension  text not null,
    version    integer not null check (version > 0),
    definition jsonb not null,                     -- the declaration as applied
    checksum   text not null check (checksum ~ '^[0-9a-f]{64}$'), -- SHA-256 of its canonical JSON
    applied_at timestamptz not null default now(),
    primary key (extension, version)
);
