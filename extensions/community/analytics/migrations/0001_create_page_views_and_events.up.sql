-- One row per finished request to an extension route, written in batches by the recorder.
create table page_views (
    id          bigint generated always as identity primary key,
    occurred_at timestamptz not null,           -- when the response was sent
    extension   text not null,                  -- the extension whose route answered
    route       text not null,                  -- the route template, never the raw path
    method      text not null,
    status      smallint not null,
    duration_us bigint not null,                -- time in the extension's request path
    referrer    text,                           -- scheme://host/path, query and fragment removed
    agent       text not null,                  -- user-agent family: chrome, firefox, …, bot, other
    identity    text                            -- the authenticated caller, if any
);
create index page_views_occurred_at on page_views (occurred_at);

-- Custom events posted to /ext/analytics/track.
create table events (
    id          bigint generated always as identity primary key,
    occurred_at timestamptz not null default now(),
    name        text not null,
    properties  jsonb not null default '{}',
    identity    text
);
create index events_occurred_at on events (occurred_at);
