drop table annex.replica_metrics;
drop table annex.extension_config_history;
drop table annex.extension_health;
