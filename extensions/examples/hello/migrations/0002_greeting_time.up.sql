-- When they said it.
alter table greetings add column greeted_at timestamptz not null default now();
