-- Subscriptions: where to send which events, signed with which secret.
create table subscriptions (
    id          bigserial primary key,
    url         text not null,                      -- http(s) target
    events      text[] not null,                    -- event-name patterns (`*`, `shop.*`, `shop.created`)
    secret      text not null,                      -- HMAC-SHA256 key; never returned in full
    active      boolean not null default true,      -- inactive: no new deliveries, queued ones wait
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

-- The durable queue: one row per (event, matching subscription).
create table deliveries (
    id               text primary key,              -- sent as X-Annex-Delivery
    subscription_id  bigint not null references subscriptions (id) on delete cascade,
    event_id         text not null,                 -- the event's id (body `id`), same across redeliveries
    event            text not null,                 -- the event's name (X-Annex-Event)
    payload          text not null,                 -- the exact body sent and signed
    status           text not null default 'pending'
                     check (status in ('pending', 'delivering', 'succeeded', 'failed')),
    attempts         integer not null default 0,    -- attempts started (counted at claim time)
    next_attempt_at  timestamptz not null default now(),
    claimed_by       text,                          -- worker holding the lease while `delivering`
    lease_until      timestamptz,                   -- after this, another worker may take it over
    last_status_code integer,
    last_error       text,
    redelivery_of    text references deliveries (id) on delete set null,
    created_at       timestamptz not null default now(),
    completed_at     timestamptz
);
create index deliveries_due on deliveries (next_attempt_at) where status in ('pending', 'delivering');
create index deliveries_by_subscription on deliveries (subscription_id, created_at desc);
create index deliveries_by_time on deliveries (created_at desc);

-- Every attempt, successful or not.
create table attempts (
    id           bigserial primary key,
    delivery_id  text not null references deliveries (id) on delete cascade,
    number       integer not null,                  -- 1 for the first attempt
    started_at   timestamptz not null,
    duration_ms  integer not null,
    status_code  integer,                           -- absent when no response arrived
    error        text,                              -- absent on a 2xx
    worker       text not null
);
create index attempts_by_delivery on attempts (delivery_id, number);
