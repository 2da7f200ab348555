-- The audit log becomes a hash chain: every row stores the SHA-256 (lowercase hex) of its own
-- content and of the previous row's hash, so a row edited, removed or reordered by hand shows up
-- in `annex audit verify` / `GET /api/v1/audit/verify` (core/src/observe/audit.rs).
--
-- The bytes hashed for a row, in this order, each text as `<octet length>:<its UTF-8 bytes>`:
--   prev_hash, id, at (UTC with microseconds, `2026-12-01T08:00:00.123456Z`), actor, action,
--   target, details::text (jsonb's own canonical text), request_id (a bare `-` when null).
-- The verifier in observe/audit.rs rebuilds exactly these bytes in Rust; keep both in step.
-- The first row's prev_hash is 64 zeros.

-- One field: its length in bytes, a colon, the bytes. Null stays null (the caller marks it).
create function annex.audit_log_field(value text) returns bytea language sql immutable strict as $$
    select convert_to(octet_length(convert_to(value, 'UTF8'))::text || ':', 'UTF8')
           || convert_to(value, 'UTF8')
$$;

-- The hash of one row given its predecessor's hash.
create function annex.audit_log_hash(
    prev_hash text, id bigint, at timestamptz, actor text, action text, target text,
    details jsonb, request_id text
) returns text language sql stable as $$
    select encode(sha256(
        annex.audit_log_field(prev_hash)
        || annex.audit_log_field(id::text)
        || annex.audit_log_field(to_char(at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
        || annex.audit_log_field(actor)
        || annex.audit_log_field(action)
        || annex.audit_log_field(target)
        || annex.audit_log_field(details::text)
        || coalesce(annex.audit_log_field(request_id), convert_to('-', 'UTF8'))
    ), 'hex')
$$;

alter table annex.audit_log
    add column prev_hash text,   -- the previous row's `hash` (64 zeros for the first row)
    add column hash      text;   -- SHA-256 of this row's content and prev_hash, see above

-- Chain the rows already there, in id order. The table is locked by the alter table above until
-- this migration commits, so nothing is appended meanwhile.
alter table annex.audit_log disable trigger audit_log_no_update_delete;
do $$
declare
    r record;
    prev text := repeat('0', 64);
begin
    for r in select * from annex.audit_log order by id loop
        update annex.audit_log
           set prev_hash = prev,
               hash = annex.audit_log_hash(prev, r.id, r.at, r.actor, r.action, r.target, r.details, r.request_id)
         where id = r.id
        returning hash into prev;
    end loop;
end
$$;
alter table annex.audit_log enable trigger audit_log_no_update_delete;

alter table annex.audit_log
    alter column prev_hash set not null,
    alter column hash set not null,
    add constraint audit_log_hash_hex check (hash ~ '^[0-9a-f]{64}$' and prev_hash ~ '^[0-9a-f]{64}$');

-- Every insert, whoever makes it (host, CLI, another replica, a tool with plain SQL), is chained
-- here: under one transaction-level advisory lock it takes the id (so id order is chain order),
-- reads the last row's hash and computes its own. The lock is held until the inserting
-- transaction ends, so two writers never chain onto the same predecessor. A repeatable read or
-- serializable transaction could not see a row committed after its snapshot and would fork the
-- chain, so only read committed ones may append.
create function annex.audit_log_chain() returns trigger language plpgsql as $$
declare
    last_hash text;
begin
    if current_setting('transaction_isolation') <> 'read committed' then
        raise exception 'annex.audit_log is appended to in read committed transactions only (this one is %)',
            current_setting('transaction_isolation')
            using errcode = 'invalid_transaction_state',
                  hint = 'write the audit entry outside the repeatable read or serializable transaction';
    end if;
    perform pg_advisory_xact_lock(7020670251207587172); -- 'annexaud' as a big-endian bigint
    select l.hash into last_hash from annex.audit_log l order by l.id desc limit 1;
    new.id := nextval(pg_get_serial_sequence('annex.audit_log', 'id'));
    new.prev_hash := coalesce(last_hash, repeat('0', 64));
    new.hash := annex.audit_log_hash(new.prev_hash, new.id, new.at, new.actor, new.action,
                                     new.target, new.details, new.request_id);
    return new;
end
$$;
create trigger audit_log_chain before insert on annex.audit_log
    for each row execute function annex.audit_log_chain();
