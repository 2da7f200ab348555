-- Processing pipelines: the stage registry, the pipelines composed from it, and each replica's
-- recent figures per stage. The model is in docs/pipelines.md; the code in core/src/pipelines/.

-- One stage: compiled in (an extension registered it; id `<extension>.<name>`) or remote (a NATS
-- subject). Compiled-in stages get a row with their spec's defaults at host start; operators edit
-- it from there and a restart never overwrites their edits.
create table annex.pipeline_stages (
    id          text primary key check (id ~ '^[a-z][a-z0-9_]{0,39}(\.[a-z][a-z0-9_]{0,63})?$'),
    kind        text not null check (kind in ('pre', 'validator', 'provider', 'post')),
    transport   text not null check (transport in ('compiled', 'remote')),
    extension   text,                            -- compiled: the extension that registered it
    subject     text unique,                     -- remote: annex.stage.<kind>.<name>.v<major>
    timeout_ms  integer not null check (timeout_ms between 1 and 600000),
    -- {"max_attempts": 2, "backoff_ms": 50, "max_backoff_ms": 1000}
    retry       jsonb not null check (jsonb_typeof(retry) = 'object'),
    on_error    text not null check (on_error in ('closed', 'open')),
    enabled     boolean not null default true,
    config      jsonb not null default '{}'::jsonb,
    -- {"description": …, "version": …, "config_schema": …} (the schema: remote stages only;
    -- a compiled stage's schema is its spec's)
    metadata    jsonb not null default '{}'::jsonb check (jsonb_typeof(metadata) = 'object'),
    -- {"consecutive_failures": 5, "failure_rate": 0.5, "min_calls": 20, "cooldown_ms": 5000}
    breaker     jsonb not null check (jsonb_typeof(breaker) = 'object'),
    updated_at  timestamptz not null default now(),
    check ((transport = 'compiled') = (extension is not null)),
    check ((transport = 'remote') = (subject is not null))
);

-- A pipeline: its stages by kind, in JSON:
-- {"pre": ["a.b"], "validators": [{"stage": "x.y", "order": 0}],
--  "providers": [{"stage": "p.q", "priority": 0}], "post": []}
-- Validators of equal order run concurrently; lower priority providers are tried first.
create table annex.pipelines (
    name        text primary key check (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
    stages      jsonb not null check (jsonb_typeof(stages) = 'object'),
    deadline_ms integer not null check (deadline_ms between 1 and 600000),
    updated_at  timestamptz not null default now()
);

-- What each replica saw of each stage recently, written now and then (the figures live in
-- memory; this is for the CLI and the other replicas).
create table annex.stage_health (
    stage      text not null references annex.pipeline_stages (id) on delete cascade,
    replica    text not null,
    calls      bigint not null,                  -- in the window
    failures   bigint not null,                  -- in the window
    score      double precision not null,        -- 1 = every recent call succeeded
    breaker    text not null check (breaker in ('closed', 'open', 'half_open')),
    updated_at timestamptz not null default now(),
    primary key (stage, replica)
);
