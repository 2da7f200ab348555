drop table annex.event_cursors;
drop table annex.event_outbox;
