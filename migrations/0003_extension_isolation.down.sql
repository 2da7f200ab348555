drop schema annex_api cascade;
drop function annex.check_migration_scope(text);
drop table annex.extension_roles;
