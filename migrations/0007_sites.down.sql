drop index if exists annex.audit_log_target_id;
drop function annex_api.annex_site_id();
drop table annex.site_snapshots;
drop table annex.site_conflicts;
drop table annex.compliance_signoffs;
drop function annex.signoffs_append_only();
drop table annex.site_extensions;
drop table annex.operators;
drop table annex.sites;
