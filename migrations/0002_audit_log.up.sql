-- The audit log: who did what to which extension, and when. Append-only, enforced by triggers.
create table annex.audit_log (
    id         bigserial primary key,
    at         timestamptz not null default now(),
    actor      text not null,        -- `host`, `cli`, `admin`, or `extension:<name>`
    action     text not null,        -- `extension.enabled`, `config.changed`, `<ext>.<action>`, …
    target     text not null,        -- usually an extension name
    details    jsonb not null default '{}'::jsonb,
    request_id text                  -- the HTTP request that caused it, if any
);
create index audit_log_target_at on annex.audit_log (target, at desc);
create index audit_log_at on annex.audit_log (at desc);

create function annex.audit_log_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'annex.audit_log is append-only: % is not allowed', tg_op
        using errcode = 'insufficient_privilege';
end
$$;
create trigger audit_log_no_update_delete before update or delete on annex.audit_log
    for each row execute function annex.audit_log_append_only();
create trigger audit_log_no_truncate before truncate on annex.audit_log
    for each statement execute function annex.audit_log_append_only();
