drop table annex.audit_log;
drop function annex.audit_log_append_only();
