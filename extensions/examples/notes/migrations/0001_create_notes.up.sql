-- One notebook for every site, in this extension's schema (ext_notes). Each row belongs to the
-- site whose request wrote it; the policy below, forced even for the table's owner (this
-- extension's role), shows and accepts only the rows of the site set by Context::site_tx.
create table notes (
    id         bigserial primary key,
    site_id    uuid not null default annex_api.annex_site_id(),  -- annex.sites.id of the writer
    body       text not null check (length(body) between 1 and 2000),
    written_at timestamptz not null default now()
);
create index notes_site on notes (site_id, id);
alter table notes enable row level security;
alter table notes force row level security;
create policy by_site on notes
    using (site_id = annex_api.annex_site_id())
    with check (site_id = annex_api.annex_site_id());
