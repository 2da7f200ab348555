drop table annex.entity_schemas;
