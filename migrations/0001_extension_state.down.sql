drop table annex.extensions;
