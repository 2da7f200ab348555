-- Sites (tenants), operators, per-site activation of extensions, compliance sign-offs, detected
-- conflicts and snapshots. The model is in docs/sites.md; the code in core/src/sites/.

-- A tenant: a plant, a shop, a customer. Suspended: its extension routes answer 503.
create table annex.sites (
    id         uuid primary key default gen_random_uuid(),
    slug       text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name       text not null check (length(name) between 1 and 200),
    status     text not null default 'active' check (status in ('active', 'suspended')),
    -- Site policy, e.g. {"allow_one_signer_for_several_roles": true}; {} is the strict default.
    policy     jsonb not null default '{}'::jsonb check (jsonb_typeof(policy) = 'object'),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- People who operate annex. The admin token stays the built-in superuser; operators act with a
-- personal token (only its SHA-256 is stored) and re-enter their password to sign.
create table annex.operators (
    id            uuid primary key default gen_random_uuid(),
    username      text not null unique check (username ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    printed_name  text not null check (length(printed_name) between 1 and 200),
    roles         text[] not null default '{}',
    sites         uuid[],                        -- the sites they may act on; null = every site
    password_hash text not null,                 -- argon2id, PHC string
    token_hash    text unique check (token_hash ~ '^[0-9a-f]{64}$'),
    disabled      boolean not null default false,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);

-- One extension at one site: its config, the SHA-256 (hex) of that config's RFC 8785 canonical
-- JSON, and where it stands. A proposal (an activation refused for missing sign-offs) waits in
-- the proposed_* columns while the active config keeps running.
create table annex.site_extensions (
    site_id         uuid not null references annex.sites (id),
    extension       text not null,
    version         text not null,               -- the extension's version when activated
    config          jsonb not null,
    config_hash     text not null check (config_hash ~ '^[0-9a-f]{64}$'),
    config_version  integer not null default 1,  -- 1 for the first activation, +1 per change
    state           text not null check (state in ('active', 'pending', 'inactive')),
    proposed_config jsonb,
    proposed_hash   text check (proposed_hash ~ '^[0-9a-f]{64}$'),
    validation      jsonb not null default '{}'::jsonb, -- the last validation report
    activated_at    timestamptz,
    updated_at      timestamptz not null default now(),
    primary key (site_id, extension),
    check ((proposed_config is null) = (proposed_hash is null))
);
create index site_extensions_extension on annex.site_extensions (extension) where state = 'active';

-- Compliance sign-offs (21 CFR Part 11 §11.50, §11.70, §11.200): who signed what, in which role,
-- with which meaning, bound to the hash of the exact config approved. Append-only.
create table annex.compliance_signoffs (
    id           bigserial primary key,
    site_id      uuid not null references annex.sites (id),
    extension    text not null,
    aspect       text not null,
    role         text not null,
    meaning      text not null check (meaning in ('review', 'approval', 'responsibility', 'authorship')),
    config_hash  text not null check (config_hash ~ '^[0-9a-f]{64}$'),
    operator_id  uuid not null references annex.operators (id),
    username     text not null,
    printed_name text not null,
    notes        text not null default '',
    signed_at    timestamptz not null default now(),
    unique (site_id, extension, config_hash, aspect, role, operator_id)
);
create index compliance_signoffs_site_extension on annex.compliance_signoffs (site_id, extension, config_hash);

create function annex.signoffs_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'annex.compliance_signoffs is append-only: % is not allowed', tg_op
        using errcode = 'insufficient_privilege',
              hint = 'a sign-off is withdrawn by changing the config (a new hash), never by editing it';
end
$$;
create trigger compliance_signoffs_no_update_delete before update or delete on annex.compliance_signoffs
    for each row execute function annex.signoffs_append_only();
create trigger compliance_signoffs_no_truncate before truncate on annex.compliance_signoffs
    for each statement execute function annex.signoffs_append_only();

-- Conflicts detected by validation or refused activations, with how they were resolved.
create table annex.site_conflicts (
    id          bigserial primary key,
    site_id     uuid not null references annex.sites (id),
    extension   text not null,                   -- the extension being validated
    other       text not null,                   -- the extension (or capability) it conflicts with
    kind        text not null check (kind in ('explicit', 'exclusive_slot', 'dependency', 'version')),
    message     text not null,
    detected_at timestamptz not null default now(),
    resolved_at timestamptz,
    resolution  text
);
create unique index site_conflicts_open on annex.site_conflicts (site_id, extension, other, kind)
    where resolved_at is null;

-- A site's whole configuration and sign-offs at one moment; restored through validation.
create table annex.site_snapshots (
    id         uuid primary key default gen_random_uuid(),
    site_id    uuid not null references annex.sites (id),
    label      text not null default '',
    taken_by   text not null,
    taken_at   timestamptz not null default now(),
    content    jsonb not null
);
create index site_snapshots_site_taken on annex.site_snapshots (site_id, taken_at desc);

-- The audit trail of one extension at one site (`…/audit-trail`): its target's rows, newest id
-- first, a page at a time, however long the whole log is.
create index audit_log_target_id on annex.audit_log (target, id desc);

-- The site of the current transaction, for row-level-security policies in extension schemas:
--   create policy by_site on t using (site_id = annex_api.annex_site_id())
--       with check (site_id = annex_api.annex_site_id());
-- Context::site_tx sets `annex.site_id` transaction-locally; outside one it is null, so a
-- policy written this way shows no rows at all.
create function annex_api.annex_site_id() returns uuid language sql stable as $$
    select nullif(current_setting('annex.site_id', true), '')::uuid
$$;
grant execute on function annex_api.annex_site_id() to public;
