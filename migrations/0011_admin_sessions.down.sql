drop table annex.admin_sessions;
