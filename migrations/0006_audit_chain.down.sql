drop trigger audit_log_chain on annex.audit_log;
drop function annex.audit_log_chain();
alter table annex.audit_log
    drop constraint audit_log_hash_hex,
    drop column hash,
    drop column prev_hash;
drop function annex.audit_log_hash(text, bigint, timestamptz, text, text, text, jsonb, text);
drop function annex.audit_log_field(text);
